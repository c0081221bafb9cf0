"""The gate predicts from a feature frame of the test window's rows only
(`evaluate.judge_on_test_window`); LightGBM maps that frame's categories onto the booster's, so
its scores and metrics equal those of the whole training set's frame, even when the test window
lacks categories the train window had and lists the others in another order."""

from dataclasses import replace

import lightgbm as lgb
import numpy as np
import pyarrow as pa

from ml_assets.models.evaluate import (
    DecileBaseline,
    judge_on_test_window,
    metrics_for,
    metrics_on_test_window,
)
from ml_assets.models.spec import load_specs
from ml_assets.models.train import LABEL_COLUMN, SPLIT_COLUMN, predict, to_frame


def _table(rows: int = 3_000) -> pa.Table:
    rng = np.random.default_rng(7)
    windows = [("train", rows // 2), ("validation", rows // 4), ("test", rows - 3 * rows // 4)]
    split = np.array([name for name, count in windows for _ in range(count)])
    test = split == "test"
    # "zz" only before the test window; the test window's first row is "c", so its own
    # categories come in another order than the whole set's
    kind = rng.choice(["a", "b", "c", "zz"], rows)
    kind[test] = rng.choice(["c", "a", "b"], test.sum())
    kind[np.argmax(test)] = "c"
    amount = rng.gamma(2.0, 50.0, rows)
    label = (amount / 200 + (kind == "zz") * 0.5 + (kind == "c") * 0.3 + rng.random(rows)) > 1.1
    return pa.table(
        {
            "amount": amount,
            "kind": kind,
            LABEL_COLUMN: label,
            SPLIT_COLUMN: split,
        }
    )


def _spec():
    base = next(s for s in load_specs() if s.name == "fraud_classifier")
    return replace(
        base, features=("amount", "kind"), categorical=("kind",), baseline_feature="amount"
    )


def test_the_gate_scores_the_test_rows_as_the_whole_frame_does():
    spec, table = _spec(), _table()
    frame = to_frame(table, spec)
    split = table.column(SPLIT_COLUMN).to_numpy(zero_copy_only=False)
    train = split == "train"
    label = table.column(LABEL_COLUMN).to_numpy()
    params = {"objective": "binary", "verbosity": -1, "num_threads": 1, "seed": 1}
    booster = lgb.train(params, lgb.Dataset(frame[train], label[train]), num_boost_round=30)

    test_only = to_frame(table.filter(pa.array(split == "test")), spec)
    assert list(test_only["kind"].cat.categories) != list(frame["kind"].cat.categories)
    whole = predict(booster, frame[split == "test"])
    assert np.array_equal(predict(booster, test_only), whole)

    metrics, rows, decision = judge_on_test_window(spec, table, booster)
    assert rows == int((split == "test").sum())
    assert metrics["challenger"] == metrics_on_test_window(spec, table, frame, booster)
    # the baseline as fitted on the whole set's frame: its feature column, train rows
    feature = frame["amount"].astype("float64").to_numpy()
    test = split == "test"
    baseline = DecileBaseline.fit(feature[train], label[train], None).predict(feature[test])
    assert metrics["baseline"] == metrics_for(spec, label[test], baseline)
    assert metrics["champion"] is None and decision.reason
