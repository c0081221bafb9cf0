"""Calibrated alarms on the demo's drift scenario (issue 15, item 2): a generated fraud world with
`crypto_wave` switched on at a known day, built raw to features by `headwater materialize`, and
`fraud_classifier`'s monitoring replayed with `headwater replay` over the two weeks before the
onset and the week after it; its figures held to the targets (the onset flagged within 7 days)
and to what docs/monitoring.md ("Demo drift scenario") measured on the stable days (no ERROR
in the 30 days before the onset).

The world is generated as docs/monitoring.md tells (`python -m fraud_demo.generator`, the
partitions of the demo project); it reaches 62 days past the last replayed day because the
replay judges each day's decay on its labels, which mature 61 days later.
"""

import os
import subprocess
import sys

import pytest

from tests.integration.test_monitoring_replay import build_raw_to_features, replay

# The `calibration` tier (`python3 dev.py test -m calibration`): 222 s measured on a 2-core
# machine, the build about 75 s and the replay of these three weeks the rest (the documented six
# weeks, 30 stable days and 14 shifted, replay in about 4 minutes). CI leaves it out.

FIRST, LAST = "2025-01-01", "2025-09-03"  # 246 days
ONSET = "2025-06-20"  # crypto_wave's first day (day 170)
PERIOD = f"crypto-wave-weeks:2025-06-06:2025-06-27:{ONSET}"  # 14 stable days, 8 shifted
# The targets of issue 15: a shift flagged within 7 days, one ERROR per 30 stable days.
MAX_DELAY_DAYS = 7
MAX_FALSE_ALARMS_PER_30 = 1.0


def generate_and_build(tmp) -> dict[str, str]:
    """The drifting world generated into `tmp` and built raw to features: the environment."""
    state = tmp / "state"
    env = {k: v for k, v in os.environ.items() if k not in ("DAGSTER_HOME", "MLFLOW_TRACKING_URI")}
    env.update(
        HEADWATER_HOME=str(state),
        HEADWATER_DUCKDB_PATH=str(state / "warehouse.duckdb"),
        HEADWATER_LANDING_DIR=str(state / "landing"),
    )
    generator = [
        sys.executable,
        *("-m", "fraud_demo.generator", "--landing-dir", env["HEADWATER_LANDING_DIR"]),
        *("--start-date", FIRST, "--days", "246", "--transactions", "492000", "--seed", "7"),
        *("--drift", "crypto_wave", "--drift-start", ONSET, "--no-progress"),
    ]
    subprocess.run(generator, env=env, check=True, capture_output=True, timeout=300)
    return build_raw_to_features(env, FIRST, LAST, tmp)


@pytest.fixture(scope="module")
def replayed(tmp_path_factory) -> dict:
    """The replay's JSON for the period around the onset."""
    tmp = tmp_path_factory.mktemp("demo_replay")
    return replay((tmp, generate_and_build(tmp)), PERIOD, "7", model="fraud_classifier")


@pytest.mark.calibration
def test_the_crypto_wave_is_flagged_within_its_first_week(replayed):
    (summary,) = replayed["summary"]
    assert summary["detection_delay_days"] is not None, summary
    assert summary["detection_delay_days"] <= MAX_DELAY_DAYS, summary  # measured 0
    onset = next(d for d in replayed["days"] if d["day"] == ONSET)
    assert {"amount", "merchant_category"} <= set(onset["drifted"]), onset


@pytest.mark.calibration
def test_the_stable_days_before_the_onset_raise_no_error(replayed):
    """At most one ERROR per 30 stable days: on 14 days, one ERROR would already be 2.1 per 30.
    The documented six weeks measured none in 30 stable days."""
    (summary,) = replayed["summary"]
    assert summary["stable_days"] == 14, summary
    assert summary["stable_error_days"] == 0, summary
    assert summary["false_alarms_per_30"] <= MAX_FALSE_ALARMS_PER_30, summary
