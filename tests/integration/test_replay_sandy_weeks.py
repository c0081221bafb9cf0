"""A replay in CI's slow tier: the four weeks around Hurricane Sandy (two stable, two after
2012-10-29) replayed with `headwater replay` on the bike-sharing warehouse the example builds,
flagged within the shift's first week and with no ERROR on the stable days before it.

The two months of each period stay in the calibration tier (test_monitoring_replay.py); this
one takes about two minutes on a quiet 2-core machine (the build 75 s, the replay 35 s).
"""

import pytest

from tests.integration.test_monitoring_replay import MAX_DELAY_DAYS, build_warehouse
from tests.integration.test_monitoring_replay import replay as replay_period

# A retrain on Sandy's first day (every 14 days from 2012-10-15), as in the long replay.
SANDY_WEEKS = "sandy-weeks:2012-10-15:2012-11-11:2012-10-29"


@pytest.fixture(scope="module")
def sandy_weeks(tmp_path_factory) -> dict:
    tmp = tmp_path_factory.mktemp("replay_weeks")
    return replay_period((tmp, build_warehouse(tmp)), SANDY_WEEKS)


@pytest.mark.slow
def test_sandy_is_flagged_within_a_week_and_the_fortnight_before_is_quiet(sandy_weeks):
    (summary,) = sandy_weeks["summary"]
    assert summary["days"] == 28
    assert summary["stable_days"] == 14
    assert summary["stable_error_days"] == 0, summary  # measured 0
    assert summary["detection_delay_days"] is not None, summary
    assert summary["detection_delay_days"] <= MAX_DELAY_DAYS, summary  # measured 7
    # every gate decision carries its paired interval; a refusal re-based the champion
    gates = sandy_weeks["gates"]
    assert gates
    for g in gates:
        assert g["lower"] <= g["improvement"] <= g["upper"]
        assert g["rebaselined"] == (not g["promoted"])
