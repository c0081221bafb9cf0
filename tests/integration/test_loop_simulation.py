"""The loop on a small scale: `headwater simulate` with the crypto_wave drift, through the real
automation, real dbt, DuckDB, LightGBM, MLflow and Evidently (about 10 minutes on 2 cores).

The 30-day run with and without drift, and its table, are in docs/simulation.md.
"""

import json
import os
import subprocess
import sys
from datetime import date, timedelta

import pytest

pytestmark = pytest.mark.slow

DAYS, ONSET = 9, 2


@pytest.fixture(scope="module")
def simulation(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("simulation")
    out = tmp / "result.json"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HEADWATER_", "DAGSTER_"))}
    env.pop("MLFLOW_TRACKING_URI", None)
    completed = subprocess.run(
        [
            sys.executable,
            "-m",
            "headwater.cli",
            "simulate",
            "--home",
            str(tmp / "home"),
            "--days",
            str(DAYS),
            "--history-days",
            "45",
            "--transactions-per-day",
            "2500",
            "--drift-on-day",
            str(ONSET),
            "--json",
            str(out),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=1800,
    )
    assert completed.returncode == 0, completed.stdout[-3000:] + completed.stderr[-3000:]
    return json.loads(out.read_text()), completed.stdout


def _actions(day, prefix):
    return [a for a in day["actions"] if a.startswith(prefix)]


def test_every_day_is_scored_and_measured(simulation):
    result, stdout = simulation
    days = result["days"]
    assert len(days) == DAYS
    assert all(d["drift_share"] is not None and d["drift_check"] for d in days)
    assert "| day | drifted importance |" in stdout, "the table is printed"


def test_no_drift_alarm_and_no_drift_retrain_before_the_onset(simulation):
    days = simulation[0]["days"]
    for day in days[:ONSET]:
        assert day["drift_check"] != "error", day
        assert not _actions(day, "monitor: retrain"), day


def test_drift_is_detected_within_a_day_of_onset_and_retrains_automatically(simulation):
    days = simulation[0]["days"]
    detected = [i for i, d in enumerate(days) if d["drift_check"] == "error"]
    assert detected and detected[0] in (ONSET, ONSET + 1), [d["drift_check"] for d in days]
    retrains = [(i, a) for i, d in enumerate(days) for a in _actions(d, "monitor: retrain")]
    assert retrains, "the monitor sensor asked for a retrain"
    first, line = retrains[0]
    assert first == detected[0] and "drift_below_threshold failed at ERROR" in line


def test_a_new_champion_only_when_the_gate_passed(simulation):
    days = simulation[0]["days"]
    for before, day in zip(days, days[1:]):
        gates = _actions(day, "gate:")
        promoted = [g for g in gates if g.startswith("gate: promoted")]
        passed = [g for g in gates if g.startswith("gate: passed")]
        assert len(promoted) == len(passed), day
        assert all("beats" in g for g in passed)
        if day["champion"] != before["champion"]:
            assert promoted, day
    assert any(_actions(d, "gate:") for d in days[ONSET:]), "every retrain ends in the gate"


def test_realised_performance_is_measured_once_labels_mature(simulation):
    days = simulation[0]["days"]
    measured = [(d["day"], r) for d in days for r in d["realised"].split("), ") if r]
    assert measured, "realised performance appears within the run"
    for row_day, entry in measured:
        # "0.912 (02-20, v1": labels mature 7 days after a day, so a day measured on the row of
        # day D (data through D) is at most D - 6
        measured_day = date.fromisoformat(row_day[:5] + entry.split("(")[1][:5])
        assert measured_day <= date.fromisoformat(row_day) - timedelta(days=6), (row_day, entry)
