"""The benchmark harness works end to end, at a tiny scale: every part runs, and the JSON holds
every figure, positive, with the platform and the floor having done the same work.

Not a timed test: nothing here compares a figure with a target (docs/benchmarks.md holds the
figures of a full-scale run)."""

import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

import pytest

from bench.procmem import descendants
from bench.report import figures
from tests.processes import stop_process_group

ROOT = Path(__file__).resolve().parents[2]

# 20k transactions over 80 days, fraud labels mature in 7 (chargebacks within 6), as in the
# simulation's world: both models (the spend model's label takes 30 days) have matured labels
# for a time split, and the harness stays small.
TINY = [
    "--transactions",
    "20000",
    "--days",
    "80",
    "--history-days",
    "76",
    "--new-days",
    "2",
    "--label-maturity-days",
    "7",
    "--warm-repeats",
    "1",
    "--ui-days",
    "3",
    "--ui-transactions",
    "1500",
]


def test_descendants_follow_parent_links():
    parents = {1: 0, 10: 1, 11: 10, 12: 11, 20: 1, 30: 99}
    assert descendants(10, parents) == {10, 11, 12}
    assert descendants(30, parents) == {30}


# In the slow tier since the serving and incremental-features tests joined the default one: it
# costs about 4 minutes, fixed costs nearly all of it.
def _harness(args: list[str], out: Path, timeout: int) -> str:
    """`python -m bench <args> --out <out>` with no HEADWATER_ / DAGSTER_ setting; its stdout."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HEADWATER_", "DAGSTER_"))}
    # Its own session: the parts and the servers it starts go with it if it fails or hangs.
    harness = subprocess.Popen(
        [sys.executable, "-m", "bench", *args, "--out", str(out)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        stdout, stderr = harness.communicate(timeout=timeout)
    finally:
        stop_process_group(harness, timeout=30)
    assert harness.returncode == 0, stdout[-3000:] + stderr[-3000:]
    assert "| figure | value | target | status |" in stdout
    return stdout


# In the slow tier since the serving and incremental-features tests joined the default one: it
# costs about 4 minutes, fixed costs nearly all of it.
@pytest.mark.slow
@pytest.mark.bench
def test_bench_runs_every_part_at_tiny_scale(tmp_path):
    out = tmp_path / "bench.json"
    _harness(TINY, out, timeout=1500)
    check_results(json.loads(out.read_text()))


# About 2 minutes: the serve world is built (dbt twice, the online asset) whatever the duration.
@pytest.mark.slow
@pytest.mark.bench
def test_bench_serve_part_scores_every_leg_alike(tmp_path):
    """The serve part end to end, one second a leg: each online leg (SQLite and DuckDB engines)
    sent every transaction of its day once and got the scores `mlflow models serve` gives the
    offline feature rows."""
    out = tmp_path / "bench.json"
    _harness(
        ["--only", "serve", "--serve-seconds", "1", "--serve-port", "19350"]
        + ["--bytecode", "imports"],
        out,
        900,
    )
    serve = json.loads(out.read_text())["parts"]["serve"]
    for leg in ("floor", "headwater", "headwater_online", "headwater_online_duckdb", "mlflow"):
        assert serve[leg]["requests"] > 0 and serve[leg].get("failed", 0) == 0, leg
    assert serve["online_compared_rows"] == serve["headwater_online"]["requests"] > 100
    assert serve["headwater_online_duckdb"]["requests"] == serve["online_compared_rows"]
    assert serve["online_max_score_difference"] <= 1e-9
    assert serve["online_duckdb_max_score_difference"] <= 1e-9
    assert serve["max_score_difference"] <= 1e-9 and serve["scores_match"]
    assert serve["mlflow_flavor"]["refused"] == serve["mlflow_flavor"]["rows"]


def check_results(results: dict) -> None:
    """What every harness run must hold, at any scale."""
    parts = results["parts"]
    assert set(parts) == {"generate", "full", "floor", "incremental", "startup", "tick"}

    # Every figure measured, and positive; the targets are reported, never asserted.
    listed = results["figures"]
    assert [f["name"] for f in listed] == [f.name for f in figures(results)]
    assert len(listed) >= 25
    for figure in listed:
        assert figure["value"] is not None and figure["value"] > 0, figure

    # Memory: the whole tree was sampled; shared pages counted once is at most counted per
    # process.
    for part in ("full", "floor", "incremental"):
        assert parts[part]["memory_samples"] > 0
        assert 0 < parts[part]["peak_pss_bytes"] <= parts[part]["peak_rss_bytes"]
    # The part's own subprocesses (Dagster's compute-log capture, multiprocessing's resource
    # tracker) are in the sampled tree too.
    assert parts["full"]["max_processes"] > 1

    # The platform and the floor did the same work on the same data.
    full, floor = parts["full"], parts["floor"]
    assert full["rows"] == floor["rows"]
    assert full["rows"]["raw.transactions"] == parts["generate"]["transactions"]
    assert full["rows"]["scores.fraud_classifier"] == full["rows"]["raw.transactions"]
    assert full["rows"]["scores.customer_spend_30d"] > 0
    assert full["online_rows"] == floor["online_rows"]
    assert floor["online_rows"]["features.transaction_features"] > 0
    # the floor ran each model's gate, as the evaluation asset does
    assert floor["models"] and all(m["gate"] for m in floor["models"].values())
    assert not floor["dagster_imported"]
    assert set(floor["drift"]) == {"fraud_classifier", "customer_spend_30d"}
    assert floor["compute_seconds"] < floor["wall_seconds"]

    # Per-step breakdown from the event log: every materialised asset of the run is in a step.
    steps = [s for run in full["runs"] for s in run["steps"]]
    assets = {a for s in steps for a in s["assets"]}
    assert {
        "raw/transactions",
        "marts/fct_transactions",
        "features/transaction_features",
        "models/fraud_classifier/model",
        "scores/fraud_classifier",
        "monitoring/fraud_classifier/drift",
    } <= assets
    assert all(s["seconds"] > 0 and s["status"] == "success" for s in steps)
    # What a run does before its first step is measured too (one planned event per asset and
    # partition of a range run).
    materialise = full["runs"][0]
    assert materialise["planned_events"] > 0
    assert 0 <= materialise["before_first_step_seconds"] <= materialise["seconds"]

    # Incremental: consecutive days, each landed by the demo feed and run through the graph
    # without retraining; the figure is their median; the history is the longer run.
    incremental = parts["incremental"]
    days = incremental["days"]
    assert [d["days_landed"] for d in days] == [1] * len(days) and len(days) >= 2
    assert [d["day"] for d in days] == sorted({d["day"] for d in days})
    assert days[-1]["day"] == results["meta"]["end"]
    assert days[0]["day"] > incremental["history"]["end"]
    each = [d["seconds"] for d in days]
    assert incremental["day_seconds"] == statistics.median(each) and min(each) > 0
    day_assets = {a for run in incremental["runs"] for s in run["steps"] for a in s["assets"]}
    assert {"raw/transactions", "scores/fraud_classifier"} <= day_assets
    assert not any(a.startswith("models/") for a in day_assets)
    assert incremental["rows"]["scores.fraud_classifier"] == incremental["rows"]["raw.transactions"]
    assert 0 < incremental["day_share_of_full"]

    # Start-up: both locations, cold and warm; the UI answered before both locations loaded.
    startup = parts["startup"]
    assert set(startup["locations"]) == {"data_platform", "ml_assets"}
    ui = startup["ui"]
    assert 0 < ui["ui_answers_seconds"] <= ui["locations_loaded_seconds"]

    # Ticks against the incremental part's state: its newest day is already handled.
    ticks = parts["tick"]["ticks"]
    assert set(ticks) == {"landing_sensor", "automation", "model_monitor"}
    assert parts["tick"]["own_history"] is None
