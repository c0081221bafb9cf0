"""The spec's `monitoring.drift` block (window, reference, methods, exempt features): parsed,
refused with the file and the field named, and the window it makes drift read from DuckDB."""

from dataclasses import replace
from pathlib import Path

import pytest
import yaml

from ml_assets.models.spec import spec_from_yml
from ml_assets.monitoring.measure import scored_frame
from ml_assets.monitoring.window import read_same_period, read_scored_window
from ml_assets.scores.scoring import score_window
from tests.conftest import ROOT
from tests.unit.test_spec_identifiers import _booster, _keyword_spec, _keyword_warehouse

BIKE = ROOT / "examples" / "bike_sharing" / "model_specs" / "bike_demand.yml"
FRAUD = ROOT / "model_specs" / "fraud_classifier.yml"


def _spec_with_drift(tmp_path: Path, drift) -> Path:
    raw = yaml.safe_load(FRAUD.read_text())
    raw["monitoring"]["drift"] = drift
    path = tmp_path / "fraud_classifier.yml"
    path.write_text(yaml.safe_dump(raw))
    return path


def test_the_shipped_specs_set_their_drift():
    bike = spec_from_yml(BIKE).monitoring.drift
    assert (bike.window_partitions, bike.min_rows, bike.reference_days) == (7, 150, 28)
    assert {"hour_of_day", "day_of_week", "hour_of_week"} <= set(bike.exempt)
    assert bike.same_period_days is None
    fraud = spec_from_yml(FRAUD).monitoring.drift
    assert (fraud.window_partitions, fraud.min_rows, fraud.exempt) == (1, 200, ())
    assert bike.figures == fraud.figures == "drifted"


def test_a_full_drift_block_is_read(tmp_path: Path):
    drift = {
        "warn_share": 0.1,
        "error_share": 0.2,
        "window": {"partitions": 3, "min_rows": 500, "max_partitions": 10},
        "reference": {"same_period": "year"},
        "min_values": 30,
        "categories": {"max_levels": 50, "top_k": 5},
        "methods": {"amount": "ks", "merchant_category": {"method": "psi", "threshold": 0.2}},
        "exempt": ["hour_of_day"],
        "figures": "all",
    }
    rule = spec_from_yml(_spec_with_drift(tmp_path, drift)).monitoring.drift

    assert (rule.window_partitions, rule.min_rows, rule.max_partitions) == (3, 500, 10)
    assert rule.same_period_days == 364  # 52 weeks: weekdays line up
    assert (rule.min_values, rule.max_levels, rule.top_k) == (30, 50, 5)
    assert rule.methods == {"amount": "ks", "merchant_category": "psi"}
    assert rule.thresholds == {"amount": 0.05, "merchant_category": 0.2}
    assert rule.exempt == ("hour_of_day",)
    assert "364 days earlier" in rule.reference_label
    assert rule.figures == "all"


@pytest.mark.parametrize(
    ("drift", "field"),
    [
        ({"windw": {"partitions": 2}}, "unknown key(s) ['windw']"),
        ({"window": {"partitions": 0}}, "monitoring.drift.window.partitions"),
        ({"window": {"min_rows": "many"}}, "monitoring.drift.window.min_rows"),
        ({"window": {"partitions": 7, "max_partitions": 3}}, "window.max_partitions"),
        ({"reference": {"same_period": "month"}}, "monitoring.drift.reference"),
        ({"reference": "yesterday"}, "monitoring.drift.reference"),
        ({"methods": {"amount": "t-test"}}, "monitoring.drift.methods.amount"),
        ({"methods": {"nope": "ks"}}, "monitoring.drift.methods.nope"),
        ({"methods": {"amount": {"method": "ks", "threshold": "low"}}}, "amount.threshold"),
        ({"exempt": ["weekday"]}, "monitoring.drift.exempt"),
        ({"figures": "some"}, "monitoring.drift.figures"),
        ({"warn_share": 0.2, "error_share": 0.1}, "warn_share <= error_share"),
        ({"categories": {"top_k": -1}}, "monitoring.drift.categories.top_k"),
        ([1, 2], "monitoring.drift must be a mapping"),
    ],
)
def test_a_bad_drift_setting_names_the_file_and_the_field(tmp_path: Path, drift, field):
    path = _spec_with_drift(tmp_path, drift)

    with pytest.raises(ValueError) as refused:
        spec_from_yml(path)

    assert str(path) in str(refused.value)
    assert field in str(refused.value)


def _with_drift(spec, **changes):
    return replace(
        spec, monitoring=replace(spec.monitoring, drift=replace(spec.monitoring.drift, **changes))
    )


@pytest.fixture(scope="module")
def scored():
    """20 scored rows a day, 2025-01-08 .. 2025-01-30, in an in-memory warehouse."""
    spec = _keyword_spec()
    con = _keyword_warehouse()
    score_window(con, spec, _booster(spec, con), "1", ("2025-01-08", "2025-01-31"))
    return spec, con


def test_the_window_grows_back_until_it_has_min_rows(scored):
    spec, con = scored

    one_day = read_scored_window(
        con, _with_drift(spec, window_partitions=1, min_rows=20), "2025-01-20"
    )
    grown = read_scored_window(
        con, _with_drift(spec, window_partitions=1, min_rows=50), "2025-01-20"
    )
    week = read_scored_window(con, _with_drift(spec, window_partitions=7, min_rows=1), "2025-01-20")

    assert (one_day.label, one_day.rows.num_rows, one_day.day_rows) == ("2025-01-20", 20, 20)
    assert (grown.label, grown.rows.num_rows) == ("2025-01-18..2025-01-20", 60)
    assert (week.first_day, week.rows.num_rows) == ("2025-01-14", 140)


def test_the_window_stops_growing_at_max_partitions(scored):
    spec, con = scored
    rule = {"window_partitions": 1, "min_rows": 10_000, "max_partitions": 5}

    window = read_scored_window(con, _with_drift(spec, **rule), "2025-01-10")

    # 2025-01-06 .. 07 were not scored: 3 scored days of the 5 looked at
    assert (window.first_day, window.rows.num_rows) == ("2025-01-06", 60)


def test_the_same_period_reference_is_the_window_a_cycle_earlier(scored):
    spec, con = scored
    spec = _with_drift(spec, window_partitions=2, min_rows=1, same_period_days=7)
    window = read_scored_window(con, spec, "2025-01-20")

    reference = scored_frame(read_same_period(con, spec, window), spec)

    assert len(reference) == 40  # 2025-01-12 .. 13
    assert reference["score"].notna().all()
    early = scored_frame(
        read_same_period(con, spec, read_scored_window(con, spec, "2025-01-09")), spec
    )
    assert len(early) == 40 and early["score"].isna().all()  # 01-01 .. 02: never scored


def test_the_check_and_the_metadata_table_show_methods_and_not_enough_data():
    import dagster as dg
    import pandas as pd

    from ml_assets.monitoring.assets import _drift_check_spec
    from ml_assets.monitoring.drift import compute_drift
    from ml_assets.monitoring.metadata import columns_table

    spec = spec_from_yml(BIKE)
    described = _drift_check_spec(spec, dg.AssetKey(["d"])).description
    assert "Window: 7 day(s), grown back to 150 rows" in described
    assert "exempt: hour_of_day, day_of_week" in described
    assert "not enough data" in described

    frame = pd.DataFrame({"x": range(10), "hour": range(10), "score": [0.5] * 10})
    result = compute_drift(
        frame, frame, ["x", "hour"], [], rule=replace(spec.monitoring.drift, exempt=("hour",))
    )
    table = columns_table(result, {"x": 0.7, "hour": 0.3})
    assert "| x | 0.700 | not enough data | - | - | not judged |" in table
    assert "| hour | 0.300 | exempt | - | - | not judged |" in table
