"""A spec's `sampling` rule (issue 17, item 5): the train window of a training set capped at
`max_train_rows` in SQL, deterministically, every positive kept and the negatives weighted by
1/rate; validation and test whole; no block, the training set of before."""

from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path

import duckdb
import numpy as np
import pyarrow.parquet as pq
import pytest

from ml_assets.models.evaluate import DecileBaseline
from ml_assets.models.reference import drift_reference
from ml_assets.models.sampling import sample_of, sample_rate, unit_hash
from ml_assets.models.sampling_spec import SamplingSpec
from ml_assets.models.spec import load_specs, spec_from_yml
from ml_assets.models.train import WEIGHT_COLUMN, event_days, fit, predict, split_of
from ml_assets.models.training_set import build_training_set, matured_rows
from tests.feature_tables import feature_warehouse

FIRST = datetime(2025, 1, 1, 8)
DAYS, PER_DAY, MATURES_AFTER = 45, 120, timedelta(days=10)


def _fraud_spec(sampling: SamplingSpec | None = None):
    spec = next(s for s in load_specs() if s.name == "fraud_classifier")
    return replace(spec, sampling=sampling)


def _warehouse(spec) -> duckdb.DuckDBPyConnection:
    return feature_warehouse(spec, FIRST, DAYS, PER_DAY, timedelta(seconds=60), MATURES_AFTER)


def _split_rows(table, name: str):
    return table.filter(np.asarray(split_of(table) == name))


def _built(spec, con, path: Path):
    cutoff, rows = matured_rows(con, spec)
    return build_training_set(spec, cutoff, rows, path)


def test_no_sampling_block_builds_the_training_set_of_before(tmp_path: Path):
    plain, roomy = _fraud_spec(), _fraud_spec(SamplingSpec(max_train_rows=10**9))
    con = _warehouse(plain)
    before = _built(plain, con, tmp_path / "plain.parquet")
    within = _built(roomy, con, tmp_path / "roomy.parquet")

    assert WEIGHT_COLUMN not in before.table.column_names
    assert before.sample is None and sample_of(pq.read_table(before.path)) is None
    # a budget the window fits in: the same rows, no weights, only the record of the rule
    assert within.table.equals(before.table)
    assert within.sample.rate == 1.0
    assert within.sample.train_rows_before == within.sample.train_rows_after
    assert within.sample.train_rows_after == before.rows["train"]


def test_the_sample_keeps_every_positive_about_the_rate_of_negatives_and_only_in_train(
    tmp_path: Path,
):
    spec = _fraud_spec(SamplingSpec(max_train_rows=900, seed=3))
    con = _warehouse(spec)
    whole = _built(_fraud_spec(), con, tmp_path / "whole.parquet")
    built = _built(spec, con, tmp_path / "sampled.parquet")
    sample, table = built.sample, built.table

    train, train_all = _split_rows(table, "train"), _split_rows(whole.table, "train")
    label, label_all = train.column("_label").to_numpy(), train_all.column("_label").to_numpy()
    positives = int(label_all.sum())
    assert sample.train_rows_before == train_all.num_rows
    assert sample.train_positives == positives == int(label.sum())
    assert sample.train_rows_after == train.num_rows
    assert sample.rate == pytest.approx((900 - positives) / (train_all.num_rows - positives))
    kept_negatives = int((label == 0).sum())
    expected = sample.rate * (train_all.num_rows - positives)
    assert abs(kept_negatives - expected) < 4 * np.sqrt(expected)
    # the kept negatives are exactly those whose key hashes below the rate
    ids = train_all.column("transaction_id").to_numpy()[label_all == 0]
    kept = {int(i) for i in ids if unit_hash(3, int(i)) < sample.rate}
    negatives = train.column("transaction_id").to_numpy()[label == 0]
    assert set(negatives.tolist()) == kept
    # weights: 1/rate on the kept negatives, 1 on every other row
    weight = table.column(WEIGHT_COLUMN).to_numpy()
    is_negative_train = (split_of(table) == "train") & (table.column("_label").to_numpy() == 0)
    assert np.allclose(weight[is_negative_train], 1 / sample.rate)
    assert np.all(weight[~is_negative_train] == 1.0)
    # validation and test: every row, as without the rule; the same windows
    for name in ("validation", "test"):
        assert (
            _split_rows(table, name)
            .drop_columns([WEIGHT_COLUMN])
            .equals(_split_rows(whole.table, name))
        )
    assert built.windows == whole.windows
    # the window's label mean, not the sample's
    assert built.label_mean == pytest.approx(whole.label_mean, abs=0.01)
    # deterministic: a second build is the same file, and the record travels with it
    again = _built(spec, con, tmp_path / "again.parquet")
    assert again.data_version == built.data_version
    assert sample_of(pq.read_table(built.path)) == sample


def test_a_regressor_samples_its_train_rows_uniformly(tmp_path: Path):
    spec = replace(_fraud_spec(SamplingSpec(max_train_rows=1000)), objective="regression")
    con = _warehouse(spec)
    built = _built(spec, con, tmp_path / "regression.parquet")
    sample = built.sample
    assert sample.train_positives == 0
    assert sample.rate == pytest.approx(1000 / sample.train_rows_before)
    assert abs(sample.train_rows_after - 1000) < 4 * np.sqrt(1000)
    train = split_of(built.table) == "train"
    assert np.allclose(built.table.column(WEIGHT_COLUMN).to_numpy()[train], 1 / sample.rate)


def test_a_budget_below_the_positives_is_refused_naming_the_field():
    spec = _fraud_spec(SamplingSpec(max_train_rows=100))
    assert sample_rate(spec, 1000, 50) == pytest.approx(50 / 950)
    with pytest.raises(ValueError, match="sampling.max_train_rows"):
        sample_rate(spec, 1000, 100)


def test_weighted_negatives_keep_the_predicted_probability_calibrated(tmp_path: Path):
    """Every feature is constant: the model predicts its training rows' (weighted) fraud rate,
    which the weights bring back from the sample's to the window's (1 in 7)."""
    spec = _fraud_spec(SamplingSpec(max_train_rows=1200))
    con = _warehouse(spec)
    built = _built(spec, con, tmp_path / "calibrated.parquet")
    assert built.table.column("_label").to_numpy()[split_of(built.table) == "train"].mean() > 0.2
    fitted = fit(spec, built.table, threads=1)
    assert predict(fitted.trained.booster, fitted.frame.head(1), 1)[0] == pytest.approx(
        1 / 7, abs=0.01
    )


def test_the_drift_reference_of_a_sampled_train_window_is_a_plain_sample_of_its_days(
    tmp_path: Path,
):
    """Held-out model serving (no refit): the reference is the train window's newest 14 days,
    whose kept positives are thinned to the negatives' rate."""
    spec = _fraud_spec(SamplingSpec(max_train_rows=1200))
    spec = replace(spec, split=replace(spec.split, refit=False))
    con = _warehouse(spec)
    built = _built(spec, con, tmp_path / "reference.parquet")
    fitted = fit(spec, built.table, threads=1)
    reference = drift_reference(spec, fitted, event_days(built.table))
    expected = built.sample.rate * spec.monitoring.drift.reference_days * PER_DAY
    assert abs(len(reference.frame) - expected) < 4 * np.sqrt(expected)


def test_the_decile_baseline_weighs_its_rows():
    feature = np.array([1.0, 1.0, 1.0, 2.0])
    label = np.array([1.0, 0.0, 0.0, 0.0])
    plain = DecileBaseline.fit(feature, label)
    weighted = DecileBaseline.fit(feature, label, np.array([1.0, 3.0, 3.0, 3.0]))
    assert plain.overall == pytest.approx(0.25)
    assert weighted.overall == pytest.approx(0.1)


@pytest.mark.parametrize(
    ("block", "field"),
    [
        ("sampling: 5", "sampling must be a mapping"),
        ("sampling: {seed: 1}", "sampling.max_train_rows is missing"),
        ("sampling: {max_train_rows: 0}", "sampling.max_train_rows must be an integer >= 1"),
        ("sampling: {max_train_rows: 1.5e6}", "sampling.max_train_rows must be an integer"),
        ("sampling: {max_train_rows: 10, seed: -1}", "sampling.seed must be an integer >= 0"),
        ("sampling: {max_train_rows: 10, rate: 0.1}", "sampling.rate is not a known key"),
    ],
)
def test_a_bad_sampling_block_is_refused_naming_the_field(tmp_path: Path, block, field):
    spec = _fraud_spec()
    path = tmp_path / "fraud_classifier.yml"
    path.write_text(Path(spec.source).read_text() + "\n" + block + "\n")
    with pytest.raises(ValueError, match=field):
        spec_from_yml(path)


def test_a_sampling_block_is_read_from_the_spec(tmp_path: Path):
    spec = _fraud_spec()
    path = tmp_path / "fraud_classifier.yml"
    path.write_text(Path(spec.source).read_text() + "\nsampling: {max_train_rows: 5000000}\n")
    assert spec_from_yml(path).sampling == SamplingSpec(max_train_rows=5_000_000, seed=0)
    assert spec.sampling is None
