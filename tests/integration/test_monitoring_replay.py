"""Calibrated alarms, measured (issue 15, item 2): the bike-sharing example's monitoring replayed
day by day with `headwater replay` on the warehouse the example builds (real dbt), and its
figures held to the targets (Hurricane Sandy, 2012-10-29, flagged within its first week; at most
one ERROR per 30 stable days in October-November 2011) and, where docs/monitoring.md says it
misses by a day, to the measured figure (October 2012 before Sandy).

The warehouse is built as docs/bring_your_own_data.md tells a user to (a project from `headwater
init`, the example's yml, SQL and spec, hour.csv landed), raw to features only: the replay
trains its own versions on what was known before each day.
"""

import json
import os
import shutil

import pytest
import yaml

from tests.conftest import ROOT
from tests.integration.test_bring_your_own_data import copy_declarations, headwater

# The `calibration` tier (`python3 dev.py test -m calibration`): Sandy's two months and the 2011
# control months (the build about 75 s, each replay about 90 s on a quiet 2-core machine; 15
# minutes each before a refusal re-based the champion, when every ERROR day retrained). CI leaves
# it out; four weeks around Sandy are in its slow tier (test_replay_sandy_weeks.py).

EXAMPLE = ROOT / "examples" / "bike_sharing"
HOUR_CSV = ROOT.parent / "shared" / "data" / "bike_sharing" / "hour.csv"
FIRST, LAST, END_EXCLUSIVE = "2011-01-01", "2012-11-30", "2013-01-01"
WAREHOUSE_ONLY = "not group:models and not group:monitoring and not group:scores"
RETRAIN_EVERY = "14"  # days; as docs/monitoring.md measured it
SANDY = "sandy-2012:2012-10-01:2012-11-30:2012-10-29"
AUTUMN_2011 = "stable-2011:2011-10-01:2011-11-30"
# The targets of issue 15: a shift flagged within 7 days, one ERROR per 30 stable days.
MAX_DELAY_DAYS = 7
MAX_FALSE_ALARMS_PER_30 = 1.0


def build_warehouse(tmp) -> dict[str, str]:
    """The example's warehouse built in `tmp`, raw to features: the environment of its project."""
    project, state = tmp / "bikes", tmp / "state"
    env = {k: v for k, v in os.environ.items() if k not in ("DAGSTER_HOME", "MLFLOW_TRACKING_URI")}
    env.update(
        HEADWATER_PROJECT_DIR=str(project),
        HEADWATER_HOME=str(state),
        HEADWATER_DUCKDB_PATH=str(state / "warehouse.duckdb"),
        HEADWATER_LANDING_DIR=str(state / "landing"),
    )
    headwater(env, "init", str(project), log=tmp / "init.log")
    dbt_project_yml = project / "dbt_project" / "dbt_project.yml"
    settings = yaml.safe_load(dbt_project_yml.read_text())
    partitions = settings.setdefault("vars", {}).setdefault("headwater", {})
    partitions.setdefault("partitions", {}).update(start=FIRST, end=END_EXCLUSIVE, grain="daily")
    dbt_project_yml.write_text(yaml.safe_dump(settings, sort_keys=False))
    copy_declarations(EXAMPLE / "dbt_project", project / "dbt_project")
    copy_declarations(EXAMPLE / "model_specs", project / "model_specs")
    landing = state / "landing" / "bike_sharing"
    landing.mkdir(parents=True)
    shutil.copyfile(HOUR_CSV, landing / "hour.csv")

    return build_raw_to_features(env, FIRST, LAST, tmp)


def build_raw_to_features(env: dict, first: str, last: str, tmp) -> dict:
    """`headwater materialize` of first..last, raw to features (the replay trains its own
    versions); the environment it ran in."""
    headwater(
        env,
        *("materialize", "--start", first, "--end", last, "--select", WAREHOUSE_ONLY),
        log=tmp / "build.log",
    )
    return env


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> tuple:
    """The example's warehouse built, raw to features: (tmp, env)."""
    tmp = tmp_path_factory.mktemp("replay")
    return tmp, build_warehouse(tmp)


def replay(
    built: tuple, period: str, retrain_every: str = RETRAIN_EVERY, model: str = "bike_demand"
) -> dict:
    """The monitoring of one period replayed on the built warehouse; the replay's JSON."""
    tmp, env = built
    out = tmp / period.split(":")[0]
    headwater(
        env,
        *("replay", "--model", model, "--retrain-every", retrain_every),
        *("--period", period, "--out", str(out)),
        log=out.with_suffix(".log"),
    )
    assert (out / "replay.md").read_text().startswith(f"## Replay of `{model}`")
    return json.loads((out / "replay.json").read_text())


@pytest.fixture(scope="module")
def sandy(built) -> dict:
    return replay(built, SANDY)


@pytest.fixture(scope="module")
def autumn_2011(built) -> dict:
    return replay(built, AUTUMN_2011)


def _summary(result: dict, period: str) -> dict:
    (summary,) = [s for s in result["summary"] if s["period"] == period]
    return summary


@pytest.mark.calibration
def test_october_2012_raises_at_most_two_errors_before_sandy(sandy):
    """The target is one ERROR per 30 stable days: October 2012 meets it within a day
    (docs/monitoring.md, "Replay"), with a tolerance for the noise of the bootstrap and of
    LightGBM on another machine."""
    october_2012 = _summary(sandy, "sandy-2012")
    assert october_2012["stable_error_days"] <= 2, october_2012  # measured 1 of 28


@pytest.mark.calibration
def test_autumn_2011_raises_at_most_one_error_per_30_stable_days(autumn_2011):
    """Met since a refused retrain re-bases the champion's drift reference and decay baseline
    (docs/monitoring.md, "Replay"): before, the reference aged while the gate refused every
    retrain, and 24 of the 61 days were at ERROR."""
    summary = _summary(autumn_2011, "stable-2011")
    assert summary["false_alarms_per_30"] <= MAX_FALSE_ALARMS_PER_30, summary  # measured 0.49
    refused = [g for g in autumn_2011["gates"] if not g["promoted"]]
    assert refused and all(g["rebaselined"] for g in refused)


@pytest.mark.calibration
def test_sandy_is_flagged_within_its_first_week(sandy):
    summary = _summary(sandy, "sandy-2012")
    assert summary["detection_delay_days"] is not None, summary
    assert summary["detection_delay_days"] <= MAX_DELAY_DAYS, summary  # measured 7


@pytest.mark.calibration
def test_every_day_was_judged_with_its_interval_and_methods(sandy):
    replayed = sandy
    days = replayed["days"]
    assert len(days) == 61
    assert all(d["drift_status"] == "compared" for d in days)
    exempt = set(replayed["drift"]["exempt"])
    for d in days:
        assert {f for f, m in d["methods"].items() if m == "exempt"} == exempt
        if d["n_labels"]:
            assert d["lower"] <= d["value"] <= d["upper"]
    # weekly retrains went through the paired gate, each with its interval
    assert replayed["gates"]
    for g in replayed["gates"]:
        assert g["lower"] <= g["improvement"] <= g["upper"]
        assert g["test_rows"] > 600
