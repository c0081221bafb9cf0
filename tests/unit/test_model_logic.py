"""Pure ML logic: specs, time split, metrics, baseline and the promotion decision."""

from dataclasses import replace
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from ml_assets.models.evaluate import DecileBaseline, classifier_metrics, regressor_metrics
from ml_assets.models.spec import SplitSpec, load_specs, spec_from_yml
from ml_assets.models.train import assign_splits, split_windows, training_set_sql


def test_demo_specs_load_and_declare_two_objectives():
    specs = {s.name: s for s in load_specs()}
    assert set(specs) == {"fraud_classifier", "customer_spend_30d"}
    assert specs["fraud_classifier"].objective == "binary"
    assert specs["customer_spend_30d"].objective == "regression"
    assert specs["customer_spend_30d"].keys == ("customer_id", "as_of_date")


def test_a_spec_with_an_unknown_promotion_metric_is_refused(tmp_path: Path):
    good = (Path(__file__).parents[2] / "model_specs/fraud_classifier.yml").read_text()
    bad = tmp_path / "fraud_classifier.yml"
    bad.write_text(good.replace("metric: pr_auc", "metric: rmse"))
    with pytest.raises(ValueError, match="promotion.metric must be one of"):
        spec_from_yml(bad)


def test_split_windows_count_back_from_the_last_matured_day():
    w = split_windows(date(2025, 3, 31), SplitSpec(test_days=7, validation_days=7, train_days=30))
    assert w.test == (date(2025, 3, 25), date(2025, 4, 1))
    assert w.validation == (date(2025, 3, 18), date(2025, 3, 25))
    assert w.train == (date(2025, 2, 16), date(2025, 3, 18))


def test_assign_splits_drops_rows_outside_every_window():
    days = [date(2025, 2, 1), date(2025, 3, 20), date(2025, 3, 26), date(2025, 4, 2)]
    table = pa.table({"_event_date": days, "x": [1, 2, 3, 4]})
    w = split_windows(date(2025, 3, 31), SplitSpec(test_days=7, validation_days=7, train_days=30))
    out = assign_splits(table, w)
    assert out.column("x").to_pylist() == [2, 3]
    assert out.column("_split").to_pylist() == ["validation", "test"]


def test_training_rows_need_a_matured_label_and_a_known_one():
    spec = next(s for s in load_specs() if s.name == "fraud_classifier")
    sql = training_set_sql(spec)
    assert 'l."label_matures_at" <= $cutoff' in sql
    assert 'coalesce(l."chargeback_reported_at" <= $cutoff, true)' in sql


def test_classifier_metrics_on_a_perfect_and_a_useless_ranking():
    y = np.array([0, 0, 0, 1, 1])
    perfect = classifier_metrics(y, np.array([0.1, 0.2, 0.3, 0.8, 0.9]), top_k_share=0.4)
    assert perfect["roc_auc"] == 1.0 and perfect["pr_auc"] == 1.0
    assert perfect["recall_at_top_k"] == 1.0
    useless = classifier_metrics(y, np.full(5, 0.4), top_k_share=0.4)
    assert useless["roc_auc"] == 0.5
    assert useless["brier"] > perfect["brier"]


def test_regressor_metrics():
    m = regressor_metrics(np.array([1.0, 2.0, 3.0]), np.array([1.0, 2.0, 5.0]))
    assert m["mae"] == pytest.approx(2 / 3)
    assert m["rmse"] == pytest.approx(np.sqrt(4 / 3))
    assert m["r2"] == pytest.approx(1 - 4 / 2)


def test_decile_baseline_predicts_the_bin_mean_and_the_overall_mean_for_nulls():
    x = np.arange(100, dtype=float)
    y = (x >= 90).astype(float)
    baseline = DecileBaseline.fit(x, y)
    pred = baseline.predict(np.array([5.0, 95.0, np.nan]))
    assert pred[0] == 0.0 and pred[1] == 1.0 and pred[2] == pytest.approx(0.1)


def _world_that_changes(rows_per_day: int = 300) -> pa.Table:
    """30 days where fraud follows `x1`, then 7 test days where it follows `x2` instead."""
    rng = np.random.default_rng(0)
    days = [date(2025, 1, 1) + timedelta(days=i) for i in range(37)]
    event_date = np.repeat(np.array(days, dtype="datetime64[D]"), rows_per_day)
    x1, x2 = rng.normal(size=len(event_date)), rng.normal(size=len(event_date))
    changed = event_date >= np.datetime64(days[30])
    label = np.where(changed, x2 > 1.0, x1 > 1.0).astype(float)
    split = np.where(
        changed, "test", np.where(event_date >= np.datetime64(days[23]), "validation", "train")
    )
    return pa.table(
        {
            "_event_date": pa.array(event_date.astype("datetime64[D]").tolist(), pa.date32()),
            "x1": x1,
            "x2": x2,
            "_label": label,
            "_split": split.tolist(),
        }
    )


def test_the_refit_keeps_the_held_out_rounds_and_learns_the_newest_days():
    from ml_assets.models.train import refit, train

    fraud = next(s for s in load_specs() if s.name == "fraud_classifier")
    spec = replace(
        fraud,
        features=("x1", "x2"),
        categorical=(),
        lightgbm={**fraud.lightgbm, "num_boost_round": 200},
    )
    table = _world_that_changes()
    held_out = train(spec, table)
    served = refit(spec, table, held_out.best_iteration)
    assert served.booster.current_iteration() == held_out.best_iteration
    # the held-out model never saw the test window, where x2 decides; the refit did
    assert held_out.feature_importance["x1"] > 0.9
    assert held_out.feature_importance["x2"] < 0.05
    assert served.feature_importance["x2"] > 0.1
    again = refit(spec, table, held_out.best_iteration)
    assert again.feature_importance == served.feature_importance
