"""What `headwater replay` reports: the false-alarm rate and the detection delay of a replayed
period, and its days, methods and gate decisions as markdown tables (docs/monitoring.md holds
them verbatim) and JSON. Pure: no DuckDB, no Dagster.

A day's alarm is an ERROR of either check (drift or decay): both make the model retrain.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from datetime import date

# The targets of issue 15: at most one ERROR per 30 stable days, a real shift flagged within
# its first week.
MAX_FALSE_ALARMS_PER_30 = 1.0
MAX_DELAY_DAYS = 7
ERROR = "error"


@dataclass(frozen=True)
class Period:
    """A replayed span of days; `shift_start`: the first day of a known shift inside it (the
    days before it are stable), None for a stable period."""

    name: str
    first: str
    last: str
    shift_start: str | None = None

    @classmethod
    def parse(cls, text: str) -> Period:
        """`NAME:FIRST:LAST[:SHIFT_START]`, days as YYYY-MM-DD."""
        parts = text.split(":")
        if len(parts) not in (3, 4) or not parts[0]:
            raise ValueError(f"a period is NAME:FIRST:LAST[:SHIFT_START], got {text!r}")
        days = [date.fromisoformat(p) for p in parts[1:]]
        if days[1] < days[0] or (len(days) == 3 and not days[0] <= days[2] <= days[1]):
            raise ValueError(f"{text!r}: FIRST <= SHIFT_START <= LAST, in that order")
        return cls(*parts)


# A day whose labels had not matured by its end: its decay is not judged (the replay
# does not look ahead).
NOT_MEASURABLE = "not measurable"


@dataclass
class DayRecord:
    """One replayed day: drift of the window up to it and decay over the trailing window."""

    period: str
    day: str
    version: str
    window: str
    window_rows: int
    drift_status: str  # "compared" or "not enough data"
    drift_share: float  # the importance share of the drifted features
    drifted: list[str]
    drift_level: str
    metric: str
    value: float
    lower: float
    upper: float
    n_labels: int
    decay_level: str
    decay_reason: str
    methods: dict[str, str] = field(default_factory=dict)

    @property
    def level(self) -> str:
        """The day's alarm: ERROR if either check is at ERROR."""
        levels = (self.drift_level, self.decay_level)
        return ERROR if ERROR in levels else ("warn" if "warn" in levels else "ok")


@dataclass
class GateRecord:
    """A retrain during the replay and the paired gate's decision on it."""

    period: str
    day: str
    trigger: str  # "scheduled" or "after ERROR"
    champion: str
    challenger: str
    metric: str
    champion_value: float
    challenger_value: float
    improvement: float
    lower: float
    upper: float
    test_rows: int
    promoted: bool
    reason: str
    rebaselined: bool = False  # refused, and the champion's baseline moved to these windows


def _shifted(day: str, shift_start: str | None) -> bool:
    return shift_start is not None and day >= shift_start


def false_alarm_rate(levels: dict[str, str], shift_start: str | None = None) -> float:
    """ERROR days per 30 stable days: the days before `shift_start` (every day without one).
    NaN when no day is stable."""
    stable = [level for day, level in levels.items() if not _shifted(day, shift_start)]
    if not stable:
        return math.nan
    return 30.0 * sum(level == ERROR for level in stable) / len(stable)


def detection_delay(levels: dict[str, str], shift_start: str) -> int | None:
    """Days from `shift_start` to the first ERROR on or after it (0: flagged on the first day);
    None when the shift was never flagged."""
    flagged = sorted(day for day, level in levels.items() if day >= shift_start and level == ERROR)
    if not flagged:
        return None
    return (date.fromisoformat(flagged[0]) - date.fromisoformat(shift_start)).days


def summarise(period: Period, days: list[DayRecord]) -> dict:
    """The period's figures: days, ERROR days by check, the false-alarm rate and the delay."""
    levels = {d.day: d.level for d in days}
    stable = [d for d in days if not _shifted(d.day, period.shift_start)]
    delay = detection_delay(levels, period.shift_start) if period.shift_start else None
    return {
        "period": period.name,
        "first": period.first,
        "last": period.last,
        "shift_start": period.shift_start,
        "days": len(days),
        "stable_days": len(stable),
        "drift_error_days": sum(d.drift_level == ERROR for d in days),
        "decay_error_days": sum(d.decay_level == ERROR for d in days),
        "stable_error_days": sum(d.level == ERROR for d in stable),
        "false_alarms_per_30": false_alarm_rate(levels, period.shift_start),
        "detection_delay_days": delay,
    }


def _num(value: float | None, digits: int = 3) -> str:
    return (
        ""
        if value is None or (isinstance(value, float) and math.isnan(value))
        else (f"{value:.{digits}f}")
    )


def _interval(value: float, lower: float, upper: float, digits: int = 3, signed=False) -> str:
    if math.isnan(value):
        return "n/a"
    f = f"{{:{'+' if signed else ''}.{digits}f}}"
    return f"{f.format(value)} [{f.format(lower)}, {f.format(upper)}]"


def _level(level: str) -> str:
    return level.upper() if level != "ok" else "ok"


def days_table(days: list[DayRecord]) -> str:
    """Per day: the window, drift share and verdict, the realised metric with its interval and
    matured-label count, the decay verdict."""
    lines = [
        "| day | version | window (rows) | drift share | drifted | drift | metric [90%] "
        "| labels | decay |",
        "|---|---|---|---:|---|---|---|---:|---|",
    ]
    for d in days:
        share = "not enough data" if d.drift_status != "compared" else f"{d.drift_share:.2f}"
        decay = "not enough labels" if d.decay_reason.startswith("not enough") else d.decay_level
        lines.append(
            f"| {d.day} | {d.version} | {d.window} ({d.window_rows}) | {share} "
            f"| {', '.join(d.drifted)} | {_level(d.drift_level)} "
            f"| {_interval(d.value, d.lower, d.upper)} | {d.n_labels} "
            f"| {'labels not matured' if decay == NOT_MEASURABLE else _level(decay)} |"
        )
    return "\n".join(lines)


def methods_table(days: list[DayRecord]) -> str:
    """The test each feature got over the period (several when it changed with the window)."""
    seen: dict[str, dict[str, int]] = {}
    for d in days:
        for column, method in d.methods.items():
            seen.setdefault(column, {}).setdefault(method, 0)
            seen[column][method] += 1
    lines = ["| feature | test (days) |", "|---|---|"]
    for column, methods in seen.items():
        said = "; ".join(f"{m} ({n})" for m, n in methods.items())
        lines.append(f"| {column} | {said} |")
    return "\n".join(lines)


def gates_table(gates: list[GateRecord]) -> str:
    lines = [
        "| day | trigger | champion | challenger | champion metric | challenger metric "
        "| improvement [90%, paired] | test rows | decision |",
        "|---|---|---|---|---:|---:|---|---:|---|",
    ]
    for g in gates:
        lines.append(
            f"| {g.day} | {g.trigger} | {g.champion} | {g.challenger} "
            f"| {_num(g.champion_value, 4)} | {_num(g.challenger_value, 4)} "
            f"| {_interval(g.improvement, g.lower, g.upper, 4, signed=True)} | {g.test_rows} "
            f"| {'promoted' if g.promoted else 'refused'}"
            f"{', champion re-based' if g.rebaselined else ''} |"
        )
    return "\n".join(lines)


def summary_table(summaries: list[dict]) -> str:
    lines = [
        "| period | days | shift from | drift ERROR days | decay ERROR days | stable days "
        "| ERROR on stable days | false alarms / 30 stable days | detection delay (days) |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for s in summaries:
        delay = s["detection_delay_days"]
        if s["shift_start"] is None:
            delay_said = ""
        else:
            delay_said = "not flagged" if delay is None else str(delay)
        lines.append(
            f"| {s['period']} | {s['first']}..{s['last']} | {s['shift_start'] or ''} "
            f"| {s['drift_error_days']} | {s['decay_error_days']} | {s['stable_days']} "
            f"| {s['stable_error_days']} | {_num(s['false_alarms_per_30'], 2)} | {delay_said} |"
        )
    return "\n".join(lines)


def render(result: dict) -> str:
    """The replay as markdown: the summary, then per period its days, methods and gates."""
    days = [DayRecord(**d) for d in result["days"]]
    gates = [GateRecord(**g) for g in result["gates"]]
    parts = [f"## Replay of `{result['model']}`", "", summary_table(result["summary"])]
    for s in result["summary"]:
        name = s["period"]
        mine = [d for d in days if d.period == name]
        parts += ["", f"### {name}: days", "", days_table(mine)]
        parts += ["", f"### {name}: test per feature", "", methods_table(mine)]
        retrains = [g for g in gates if g.period == name]
        if retrains:
            parts += ["", f"### {name}: retrains and the gate", "", gates_table(retrains)]
    return "\n".join(parts) + "\n"


def to_json(result: dict) -> str:
    """The replay as JSON (NaN written as null)."""

    def clean(value):
        if isinstance(value, float) and not math.isfinite(value):
            return None
        if isinstance(value, dict):
            return {k: clean(v) for k, v in value.items()}
        if isinstance(value, list):
            return [clean(v) for v in value]
        return value

    return json.dumps(clean(result), indent=2)


def as_dicts(records) -> list[dict]:
    return [asdict(r) for r in records]
