"""The time partitions of landed data, shared by both code locations.

Declared once, in the project's `dbt_project/dbt_project.yml` (`vars.headwater.partitions`:
start, end, grain, timezone; `headwater_core.partition_settings` reads it). The first partition
is fixed by `start` so that partition keys never move; without an `end`, the last partition is
the last complete one (a day's file lands after the day is over).
"""

from __future__ import annotations

from datetime import datetime
from functools import cache
from pathlib import Path

import dagster as dg

from headwater_core.config import dbt_project_dir
from headwater_core.partition_settings import PartitionSettings, read_partition_settings

_DEFINITIONS = {
    "hourly": dg.HourlyPartitionsDefinition,
    "daily": dg.DailyPartitionsDefinition,
    "weekly": dg.WeeklyPartitionsDefinition,
    "monthly": dg.MonthlyPartitionsDefinition,
}


class PartitionRangeError(ValueError):
    """A range that is not inside the partitions; the message names the setting to change."""


def partition_settings(dbt_dir: Path | None = None) -> PartitionSettings:
    """The partitions declared by the project's dbt project (default: the configured one)."""
    return _settings(Path(dbt_dir or dbt_project_dir()).resolve())


@cache
def _settings(dbt_dir: Path) -> PartitionSettings:
    return read_partition_settings(dbt_dir)


def partitions_def(dbt_dir: Path | None = None) -> dg.TimeWindowPartitionsDefinition:
    """The Dagster partitions of the project's time-partitioned assets, one per project."""
    return _definition(partition_settings(dbt_dir))


@cache
def _definition(settings: PartitionSettings) -> dg.TimeWindowPartitionsDefinition:
    start = datetime.fromisoformat(settings.start)
    end = datetime.fromisoformat(settings.end) if settings.end else None
    kwargs = {"day_offset": 1} if settings.grain == "weekly" else {}  # weeks start on Monday
    return _DEFINITIONS[settings.grain](
        start_date=start.strftime(settings.fmt),
        end_date=end.strftime(settings.fmt) if end else None,
        timezone=settings.timezone,
        **kwargs,
    )


def partition_keys_between(start: str, end: str, dbt_dir: Path | None = None) -> list[str]:
    """The keys of the partitions holding `start` through `end` (dates, or keys; an end date
    of an hourly project means its last hour). A range outside the partitions raises
    `PartitionRangeError` naming the setting that bounds it."""
    settings = partition_settings(dbt_dir)
    definition = partitions_def(dbt_dir)
    first, last = _moment(settings, start, "start"), _moment(settings, end, "end")
    if settings.grain == "hourly" and len(end) == len("YYYY-MM-DD"):
        last = last.replace(hour=23)
    if last < first:
        raise PartitionRangeError(f"the range ends ({end}) before it starts ({start})")
    keys = definition.get_partition_keys()
    if not keys:
        raise PartitionRangeError(
            f"there is no complete {settings.grain} partition yet: the first one, from "
            f"{settings.start}, is still open {settings.where('start')}"
        )
    first_key, last_key = settings.key_of(first), settings.key_of(last)
    if first_key < keys[0]:
        raise PartitionRangeError(
            f"{start} is before the first partition {keys[0]} {settings.where('start')}"
        )
    if last_key > keys[-1]:
        bound = settings.where("end") if settings.end else "(the last complete one)"
        raise PartitionRangeError(f"{end} is after the last partition {keys[-1]} {bound}")
    return definition.get_partition_keys_in_range(dg.PartitionKeyRange(first_key, last_key))


def _moment(settings: PartitionSettings, value: str, which: str) -> datetime:
    for fmt in (settings.fmt, "%Y-%m-%d"):
        try:
            return datetime.strptime(value, fmt)
        except ValueError:
            continue
    raise PartitionRangeError(
        f"--{which} {value!r} is neither a date (YYYY-MM-DD) nor a {settings.grain} partition "
        f"key (like {settings.example_key()})"
    )


def run_partition_window(
    tags: dict[str, str], dbt_dir: Path | None = None
) -> tuple[datetime, datetime] | None:
    """The time window of the partitions a run was launched for, from its tags (one partition,
    or a single-run backfill's range); None for a run of no partition."""
    first = tags.get("dagster/asset_partition_range_start") or tags.get("dagster/partition")
    last = tags.get("dagster/asset_partition_range_end") or first
    if not first:
        return None
    definition = partitions_def(dbt_dir)
    try:
        start = definition.time_window_for_partition_key(first).start
        end = definition.time_window_for_partition_key(last).end
    except ValueError:  # a key of another partitioning (a model's, a static one): no window
        return None
    return start, end
