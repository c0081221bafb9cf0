"""The demo feed: every night, the embedded demo's landing zone gets the day that just ended.

Declarative automation and the freshness policies look at the newest daily partition,
yesterday, so the demo only looks live if its data reaches yesterday. `headwater dev` generates
the demo up to yesterday and records its generator config in the landing folder
(`fraud_demo/feed.py`); this job lands every day missing since, as the processor, the CRM and the
acquirer would deliver them, and the landing sensor takes it from there. A landing folder
without the record is a real one, fed by someone else: the job leaves it alone. A project
without the demo's sources (`headwater init`, `headwater demo remove`) gets neither.
"""

from collections.abc import Iterable
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import dagster as dg

from data_platform.raw.contract import SourceContract
from fraud_demo.project import has_demo_sources as _has_demo_sources
from headwater_core.resources import LandingZone

if TYPE_CHECKING:
    from fraud_demo.feed import FeedResult

# 00:15 UTC: the day is over (daily partitions are UTC days) and its partition exists.
DEMO_FEED_CRON = "15 0 * * *"


def has_demo_sources(contracts: Iterable[SourceContract]) -> bool:
    """Whether the project's raw contracts include every source the demo delivers to."""
    return _has_demo_sources({c.source_name for c in contracts})


def _landed_message(result: "FeedResult") -> str:
    if result.summary is None:
        return f"the demo already reaches {result.end}: nothing to land"
    return (
        f"landed {result.days_landed} day(s), {result.previous_end + timedelta(days=1)} to "
        f"{result.end}: {result.summary.transactions} transactions, "
        f"{result.summary.chargebacks_written} chargebacks"
    )


def _landed_metadata(landing_dir: Path, result: "FeedResult") -> dict:
    metadata = {
        "landing_dir": str(landing_dir),
        "days_landed": result.days_landed,
        "last_day": result.end.isoformat(),
    }
    if result.summary is not None:
        metadata["transactions"] = result.summary.transactions
        metadata["chargebacks"] = result.summary.chargebacks_written
    return metadata


def build_demo_feed() -> tuple[dg.JobDefinition, dg.ScheduleDefinition]:
    """The job that lands the demo's missing days, and its nightly schedule (running)."""

    @dg.op(
        name="land_missing_demo_days",
        description=(
            "Lands the embedded demo's days missing up to yesterday (UTC) into the landing "
            "folder and extends its record; does nothing for a landing folder without one."
        ),
        tags={"kind": "python"},
    )
    def land_missing_demo_days(
        context: dg.OpExecutionContext, landing: LandingZone
    ) -> dg.Output[None]:
        from fraud_demo.feed import DEMO_RECORD, feed_demo

        landing_dir = landing.resolved_path()
        result = feed_demo(landing_dir)
        if result is None:
            context.log.info(
                f"{landing_dir} has no {DEMO_RECORD}: not a generated demo landing zone, so "
                "nothing to land"
            )
            return dg.Output(None, metadata={"landing_dir": str(landing_dir), "days_landed": 0})
        context.log.info(_landed_message(result))
        return dg.Output(None, metadata=_landed_metadata(landing_dir, result))

    @dg.job(
        name="demo_feed_job",
        description="Lands the embedded demo's missing days up to yesterday (UTC).",
    )
    def demo_feed_job():
        land_missing_demo_days()

    schedule = dg.ScheduleDefinition(
        name="demo_feed_schedule",
        job=demo_feed_job,
        cron_schedule=DEMO_FEED_CRON,
        execution_timezone="UTC",
        default_status=dg.DefaultScheduleStatus.RUNNING,
        description="Every night at 00:15 UTC, the demo's landing zone gets the day that ended.",
    )
    return demo_feed_job, schedule
