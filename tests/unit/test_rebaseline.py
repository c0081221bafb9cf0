"""A refused retrain re-bases the champion's monitoring (`ml_assets.models.rebaseline`): the rule,
the re-based reference and decay baseline, and what monitoring reads back from the tags."""

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from headwater_core.names import REFERENCE_ARTIFACT, TAG_TEST_METRICS
from ml_assets.models import rebaseline as rebase
from ml_assets.models.evaluate import Decision
from ml_assets.models.spec import SpecError, spec_from_yml
from ml_assets.models.train import predict

SPEC_YML = Path(__file__).parents[2] / "model_specs" / "fraud_classifier.yml"
FEATURES = ("a", "b")


def _spec(**monitoring):
    spec = spec_from_yml(SPEC_YML)
    return replace(
        spec,
        features=FEATURES,
        categorical=(),
        monitoring=replace(spec.monitoring, **monitoring),
    )


def _booster(seed: int, slope: float):
    """A small LightGBM classifier whose score rises with `slope` * a + b."""
    import lightgbm as lgb

    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(rng.normal(size=(600, 2)), columns=list(FEATURES))
    label = (slope * frame["a"] + frame["b"] + rng.normal(scale=0.5, size=600) > 0).astype(int)
    params = {"objective": "binary", "verbose": -1, "num_threads": 1, "seed": seed}
    return lgb.train(params, lgb.Dataset(frame, label), num_boost_round=20)


def _decision(promote=False, broken=False) -> Decision:
    return Decision(
        promote=promote,
        reason="test",
        metric="roc_auc",
        challenger=0.71,
        champion=0.70,
        baseline=0.6,
        broken=broken,
    )


@pytest.fixture(scope="module")
def models():
    champion, challenger = _booster(1, 1.0), _booster(2, -1.0)
    rows = pd.DataFrame(np.random.default_rng(3).normal(size=(200, 2)), columns=list(FEATURES))
    # the challenger's reference: its training rows with its own scores
    reference = rows.assign(score=predict(challenger, rows, num_threads=1))
    return champion, challenger, reference


def test_a_refusal_rebases_on_the_challengers_rows_scored_by_the_champion(models):
    champion, _, reference = models
    metrics = {"roc_auc": 0.66, "pr_auc": 0.2}

    baseline = rebase.rebaseline(_spec(), _decision(), metrics, champion, "7", reference)

    assert baseline is not None
    assert baseline.from_version == "7"
    assert baseline.test_metrics == metrics
    # the challenger's rows, the champion's scores on them (not the challenger's)
    pd.testing.assert_frame_equal(baseline.reference[list(FEATURES)], reference[list(FEATURES)])
    expected = predict(champion, reference[list(FEATURES)], num_threads=1)
    np.testing.assert_allclose(baseline.reference["score"].to_numpy(), expected)
    assert not np.allclose(baseline.reference["score"], reference["score"])


@pytest.mark.parametrize(
    ("spec_settings", "decision", "champion_metrics"),
    [
        ({}, _decision(promote=True), {"roc_auc": 0.7}),  # promoted: the challenger serves
        ({}, _decision(broken=True), {"roc_auc": 0.7}),  # broken: says nothing of the champion
        ({}, _decision(), None),  # no champion judged
        ({"rebaseline_on_refusal": False}, _decision(), {"roc_auc": 0.7}),  # switched off
    ],
)
def test_no_rebaseline_when_the_rule_does_not_apply(
    models, spec_settings, decision, champion_metrics
):
    champion, _, reference = models
    spec = _spec(**spec_settings)
    assert not rebase.applies(spec, decision, champion_metrics)
    assert rebase.rebaseline(spec, decision, champion_metrics, champion, "7", reference) is None


def test_monitoring_reads_the_rebased_baseline_and_falls_back_to_the_versions_own(models):
    champion, _, reference = models
    own = {TAG_TEST_METRICS: json.dumps({"roc_auc": 0.78})}
    assert rebase.baseline_metrics(own) == {"roc_auc": 0.78}
    assert rebase.reference_artifact(own) == REFERENCE_ARTIFACT

    baseline = rebase.rebaseline(_spec(), _decision(), {"roc_auc": 0.65}, champion, "12", reference)
    tags = {**own, rebase.BASELINE: rebase.baseline_tag(baseline, "2026-11-30T21:00:00+00:00")}

    assert rebase.baseline_metrics(tags) == {"roc_auc": 0.65}
    assert rebase.reference_artifact(tags) == "reference/rebased_from_v12.parquet"
    assert json.loads(tags[rebase.BASELINE])["from_version"] == "12"


def test_the_spec_setting_defaults_to_on_and_must_be_a_boolean(tmp_path: Path):
    assert spec_from_yml(SPEC_YML).monitoring.rebaseline_on_refusal is True
    text = SPEC_YML.read_text()
    assert "\nmonitoring:\n" in text
    for value, expected in (("false", False), ("'no'", None)):
        path = tmp_path / "fraud_classifier.yml"
        path.write_text(
            text.replace("\nmonitoring:\n", f"\nmonitoring:\n  rebaseline_on_refusal: {value}\n")
        )
        if expected is None:
            with pytest.raises(SpecError, match="rebaseline_on_refusal must be true or false"):
                spec_from_yml(path)
        else:
            assert spec_from_yml(path).monitoring.rebaseline_on_refusal is expected
