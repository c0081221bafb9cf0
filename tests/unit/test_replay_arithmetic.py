"""The replay's figures (headwater.replay_report): the false-alarm rate per 30 stable days, the
detection delay, the period syntax and the tables docs/monitoring.md holds."""

import math

import pytest

from headwater.replay_report import (
    DayRecord,
    GateRecord,
    Period,
    detection_delay,
    false_alarm_rate,
    render,
    summarise,
    to_json,
)


def _days(levels: list[str], first_day: int = 1) -> dict[str, str]:
    return {f"2012-10-{first_day + i:02d}": level for i, level in enumerate(levels)}


def test_false_alarm_rate_is_error_days_per_30_stable_days():
    assert false_alarm_rate(_days(["ok"] * 30)) == 0.0
    assert false_alarm_rate(_days(["ok"] * 29 + ["error"])) == 1.0
    # a WARN is not an alarm; 2 ERRORs in 20 days is 3 per 30
    assert false_alarm_rate(_days(["warn"] * 18 + ["error", "error"])) == pytest.approx(3.0)


def test_false_alarm_rate_counts_only_the_days_before_the_shift():
    levels = _days(["ok"] * 14 + ["error"] + ["error"] * 10)  # 10-01..10-25, shift 10-15
    assert false_alarm_rate(levels, shift_start="2012-10-15") == 0.0
    levels["2012-10-03"] = "error"
    assert false_alarm_rate(levels, shift_start="2012-10-15") == pytest.approx(30 / 14)
    assert math.isnan(false_alarm_rate(levels, shift_start="2012-10-01"))


def test_detection_delay_is_days_from_the_shift_to_its_first_error():
    levels = _days(["error", "ok", "ok", "warn", "ok", "error", "error"])  # 10-01..10-07
    # an ERROR before the shift is a false alarm, not a detection
    assert detection_delay(levels, "2012-10-02") == 4
    assert detection_delay(levels, "2012-10-06") == 0
    assert detection_delay(_days(["ok"] * 7), "2012-10-02") is None


def test_period_syntax():
    assert Period.parse("sandy:2012-10-01:2012-11-15:2012-10-29") == Period(
        "sandy", "2012-10-01", "2012-11-15", "2012-10-29"
    )
    assert Period.parse("stable:2011-10-01:2011-11-30").shift_start is None
    for bad in (
        "stable:2011-10-01",
        "x:2011-10-02:2011-10-01",
        "x:2011-10-01:2011-10-09:2011-11-01",
    ):
        with pytest.raises(ValueError):
            Period.parse(bad)


def _day(day: str, drift: str, decay: str = "ok") -> DayRecord:
    return DayRecord(
        period="p",
        day=day,
        version="001",
        window=f"{day}..{day}",
        window_rows=168,
        drift_status="compared",
        drift_share=0.2 if drift == "error" else 0.0,
        drifted=["temperature_norm"] if drift == "error" else [],
        drift_level=drift,
        metric="roc_auc",
        value=0.8,
        lower=0.75,
        upper=0.85,
        n_labels=300,
        decay_level=decay,
        decay_reason="roc_auc ...",
        methods={"temperature_norm": "K-S p_value", "season": "exempt"},
    )


def test_summary_and_tables_count_either_check_at_error():
    days = [
        _day("2012-10-01", "ok"),
        _day("2012-10-02", "ok", "error"),
        _day("2012-10-03", "error"),
    ]
    summary = summarise(Period("p", "2012-10-01", "2012-10-03", "2012-10-03"), days)
    assert summary["stable_days"] == 2 and summary["stable_error_days"] == 1
    assert summary["false_alarms_per_30"] == pytest.approx(15.0)
    assert summary["detection_delay_days"] == 0
    assert (summary["drift_error_days"], summary["decay_error_days"]) == (1, 1)
    gate = GateRecord(
        "p",
        "2012-10-02",
        "after ERROR",
        "001",
        "002",
        "roc_auc",
        0.8,
        0.81,
        0.01,
        -0.002,
        0.02,
        672,
        False,
        "refused",
    )
    result = {
        "model": "m",
        "summary": [summary],
        "days": [vars(d) for d in days],
        "gates": [vars(gate)],
    }
    text = render(result)
    assert "| p | 2012-10-01..2012-10-03 | 2012-10-03 | 1 | 1 | 2 | 1 | 15.00 | 0 |" in text
    assert (
        "| 2012-10-03 | 001 | 2012-10-03..2012-10-03 (168) | 0.20 | temperature_norm | ERROR"
        in text
    )
    assert "+0.0100 [-0.0020, +0.0200] | 672 | refused |" in text
    assert "| temperature_norm | K-S p_value (3) |" in text
    assert '"detection_delay_days": 0' in to_json(result)
