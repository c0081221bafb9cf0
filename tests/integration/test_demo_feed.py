"""The demo feed job lands the embedded demo's missing days up to yesterday, once, on a real
Dagster instance; it leaves a landing folder without a demo record alone."""

import hashlib
from datetime import timedelta
from pathlib import Path

import dagster as dg

from data_platform.demo_feed import build_demo_feed
from fraud_demo.feed import (
    DEMO_RECORD,
    extended_to,
    read_record,
    start_demo,
    yesterday_utc,
)
from fraud_demo.generator import GeneratorConfig, generate
from headwater_core.resources import LandingZone


def _files(landing: Path) -> dict[str, tuple[str, int]]:
    """Every file's content hash and mtime, by relative path: a rewrite changes the mtime."""
    return {
        str(p.relative_to(landing)): (
            hashlib.sha256(p.read_bytes()).hexdigest(),
            p.stat().st_mtime_ns,
        )
        for p in sorted(landing.rglob("*"))
        if p.is_file()
    }


def _run(job: dg.JobDefinition, instance, landing: Path) -> dg.ExecuteInProcessResult:
    result = job.execute_in_process(
        instance=instance, resources={"landing": LandingZone(path=str(landing))}
    )
    assert result.success
    return result


def test_the_feed_lands_the_missing_days_once(tmp_path, instance):
    job, schedule = build_demo_feed()
    landing = tmp_path / "landing"
    # A demo that `headwater dev` started a few days ago: its last day is 3 days back.
    three_days_ago = yesterday_utc() - timedelta(days=2)
    config = GeneratorConfig(
        seed=5, start_date=three_days_ago - timedelta(days=6), days=7, transactions=3_500
    )
    start_demo(config, landing, progress=False)
    before = _files(landing)

    result = _run(job, instance, landing)

    after = _files(landing)
    new_days = [yesterday_utc() - timedelta(days=1), yesterday_utc()]
    new = sorted(set(after) - set(before))
    new_daily = [n for n in new if n.startswith(("transactions/", "chargebacks/"))]
    assert [(n.split("/")[0], n.split("_")[-1].split(".")[0]) for n in new_daily] == [
        (kind, str(day)) for kind in ("chargebacks", "transactions") for day in new_days
    ]
    # The days already landed are untouched; the snapshots of the new last day are added.
    assert {k: after[k] for k in before if k != DEMO_RECORD} == {
        k: v for k, v in before.items() if k != DEMO_RECORD
    }
    assert f"customers/customers_{yesterday_utc()}.parquet" in new
    assert read_record(landing).end_date == yesterday_utc()
    (output,) = [e for e in result.all_events if e.is_successful_output]
    assert output.step_output_data.metadata["days_landed"].value == 2

    # The landing folder now holds what one run over the longer window writes.
    one_shot = tmp_path / "one_shot"
    generate(extended_to(read_record(landing), yesterday_utc()), one_shot, progress=False)
    expected = {k: v[0] for k, v in _files(one_shot).items()}
    assert {k: after[k][0] for k in expected} == expected

    # Same day, second run: nothing is written, not even rewritten.
    _run(job, instance, landing)
    assert _files(landing) == after

    # The schedule, as the daemon would see it.
    assert schedule.job_name == job.name == "demo_feed_job"
    assert (schedule.cron_schedule, schedule.execution_timezone) == ("15 0 * * *", "UTC")
    assert schedule.default_status == dg.DefaultScheduleStatus.RUNNING
    defs = dg.Definitions(
        jobs=[job], schedules=[schedule], resources={"landing": LandingZone(path=str(landing))}
    )
    dg.Definitions.validate_loadable(defs)


def test_the_feed_leaves_a_landing_folder_without_a_record_alone(tmp_path, instance):
    job, _ = build_demo_feed()
    landing = tmp_path / "landing"
    # Someone else's files (`headwater generate`, or a real export): no demo record beside them.
    config = GeneratorConfig(
        seed=5, start_date=yesterday_utc() - timedelta(days=9), days=5, transactions=2_500
    )
    generate(config, landing, progress=False)
    before = _files(landing)

    result = _run(job, instance, landing)

    assert _files(landing) == before
    assert not (landing / DEMO_RECORD).exists()
    logs = instance.all_logs(result.run_id)
    assert any(DEMO_RECORD in (e.user_message or "") for e in logs)
