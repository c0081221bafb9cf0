"""The project's time partitions as declared in `dbt_project/dbt_project.yml`, and their windows.

    vars:
      headwater:
        partitions: {start: "2025-01-01", end: null, grain: daily, timezone: UTC}

One declaration for both worlds: Dagster's partitions (`headwater_core.partitions`), ingestion's
check that a row falls in its file's partition, and dbt's window macro
(`macros/partition_window.sql`) all read it. No Dagster import here, so ingestion and the
benchmark floor use it without loading Dagster.
"""

from __future__ import annotations

import calendar
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml

GRAINS = ("hourly", "daily", "weekly", "monthly")
DEFAULTS = {"start": "2025-01-01", "end": None, "grain": "daily", "timezone": "UTC"}
SETTING = "vars.headwater.partitions"

# Partition keys: the partition's first instant, as Dagster formats it for the grain.
_DAY_FORMAT = "%Y-%m-%d"
_HOUR_FORMAT = "%Y-%m-%d-%H:%M"


class PartitionSettingsError(ValueError):
    """A partitions declaration that cannot be used; the message names the file and the key."""


@dataclass(frozen=True)
class PartitionSettings:
    """The project's time partitions: the first one starts at `start` (a date, 00:00 in
    `timezone`), `end` (exclusive) or none (up to the last complete partition), and the grain."""

    start: str = DEFAULTS["start"]
    end: str | None = None
    grain: str = "daily"
    timezone: str = "UTC"
    source: str = "dbt_project/dbt_project.yml"
    """Where it is declared, for messages."""

    @property
    def fmt(self) -> str:
        return _HOUR_FORMAT if self.grain == "hourly" else _DAY_FORMAT

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    def where(self, key: str) -> str:
        """`(vars.headwater.partitions.<key> in <file>)`: where a person changes it."""
        return f"({SETTING}.{key} in {self.source})"

    def window(self, key: str) -> tuple[datetime, datetime]:
        """The partition `key`'s [start, end) in UTC; a key not of this grain raises."""
        try:
            local = datetime.strptime(key, self.fmt).replace(tzinfo=self.zone)
        except ValueError:
            raise PartitionSettingsError(
                f"{key!r} is not a {self.grain} partition key (like {self.example_key()})"
            ) from None
        if self.floor(local) != local:
            raise PartitionSettingsError(
                f"{key!r} is not the start of a {self.grain} partition "
                f"(the one holding it is {self.key_of(local)})"
            )
        return local.astimezone(UTC), self.next_start(local).astimezone(UTC)

    def floor(self, moment: datetime) -> datetime:
        """The start of the partition holding `moment` (in the partitions' time zone)."""
        local = moment.astimezone(self.zone)
        if self.grain == "hourly":
            return local.replace(minute=0, second=0, microsecond=0)
        day = local.replace(hour=0, minute=0, second=0, microsecond=0)
        if self.grain == "weekly":  # weeks start on Monday (ISO), as DuckDB's date_trunc('week')
            day = day - timedelta(days=day.weekday())
        elif self.grain == "monthly":
            day = day.replace(day=1)
        return day.replace(tzinfo=self.zone)

    def next_start(self, start: datetime) -> datetime:
        """The start of the partition after the one starting at `start`."""
        if self.grain == "hourly":
            return (start.astimezone(UTC) + timedelta(hours=1)).astimezone(self.zone)
        if self.grain == "monthly":
            days = calendar.monthrange(start.year, start.month)[1]
            return (start.replace(day=1) + timedelta(days=days)).replace(tzinfo=self.zone)
        step = timedelta(days=7 if self.grain == "weekly" else 1)
        return (start.replace(tzinfo=None) + step).replace(tzinfo=self.zone)

    def next_key(self, key: str) -> str:
        """The key of the partition after `key`'s."""
        start = datetime.strptime(key, self.fmt).replace(tzinfo=self.zone)
        return self.next_start(start).strftime(self.fmt)

    def key_of(self, moment: datetime) -> str:
        """The key of the partition holding `moment` (naive: in the partitions' time zone)."""
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=self.zone)
        return self.floor(moment).strftime(self.fmt)

    def example_key(self) -> str:
        return self.key_of(datetime.fromisoformat(self.start))


def read_partition_settings(dbt_project_dir: Path) -> PartitionSettings:
    """The partitions declared in `<dbt_project_dir>/dbt_project.yml` (defaults where unset, or
    for a folder of source ymls that is not a whole dbt project)."""
    path = Path(dbt_project_dir) / "dbt_project.yml"
    doc = (yaml.safe_load(path.read_text()) if path.exists() else None) or {}
    declared = ((doc.get("vars") or {}).get("headwater") or {}).get("partitions") or {}
    source = f"{path.parent.name}/{path.name}"
    unknown = set(declared) - set(DEFAULTS)
    if unknown:
        raise PartitionSettingsError(
            f"{path}: {SETTING} has unknown key(s) {sorted(unknown)}; known: {sorted(DEFAULTS)}"
        )
    values = {**DEFAULTS, **{k: v for k, v in declared.items() if v is not None}}
    start, end = _date(path, "start", values["start"]), values["end"]
    grain, timezone = str(values["grain"]), str(values["timezone"])
    if grain not in GRAINS:
        raise PartitionSettingsError(
            f"{path}: {SETTING}.grain is {grain!r}; one of {', '.join(GRAINS)}"
        )
    try:
        ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError):
        raise PartitionSettingsError(
            f"{path}: {SETTING}.timezone {timezone!r} is not a time zone (like UTC, Europe/Paris)"
        ) from None
    if end is not None:
        end = _date(path, "end", end)
        if end <= start:
            raise PartitionSettingsError(f"{path}: {SETTING}.end {end} is not after start {start}")
    return PartitionSettings(start, end, grain, timezone, source)


def _date(path: Path, key: str, value: object) -> str:
    """An ISO date (YAML may have parsed it into a date already)."""
    text = value.isoformat() if isinstance(value, date) else str(value)
    try:
        return date.fromisoformat(text).isoformat()
    except ValueError:
        raise PartitionSettingsError(
            f"{path}: {SETTING}.{key} is {text!r}; a date like 2025-01-01"
        ) from None
