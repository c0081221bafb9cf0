"""The ML half on real parts: dbt features, LightGBM, a real MLflow store (SQLite), DuckDB scores.

One demo world is built once for the module (raw -> features -> models -> scores, through the
headless command's code path); the tests then train, gate, promote and roll back on it.
"""

import json
import os
import shutil
import subprocess
import sys
from datetime import date

import dagster as dg
import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

from fraud_demo.generator import GeneratorConfig, generate
from headwater.cli import EMBEDDED_INSTANCE_CONFIG
from headwater.headless import materialize_range
from headwater_core.dbt.resource import dbt_cli_resource
from headwater_core.names import DRIFT_CHECK, GATE_CHECK, PERFORMANCE_CHECK
from headwater_core.resources import LandingZone, Warehouse
from ml_assets.definitions import defs as ml_defs
from ml_assets.models.artifacts import ModelArtifacts
from ml_assets.models.engine import TrainingEngine
from ml_assets.models.rebaseline import BASELINE
from ml_assets.models.registry import history, rollback
from ml_assets.models.spec import load_specs
from ml_assets.models.tracking import CHALLENGER, CHAMPION, MlflowTracking
from ml_assets.monitoring.assets import MonitoringReports
from ml_assets.online.assets import OnlineStore
from ml_assets.scores import scoring
from tests.conftest import copy_project

WORLD = GeneratorConfig(seed=11, start_date=date(2025, 1, 1), days=100, transactions=40_000)
FIRST, LAST = "2025-01-01", "2025-04-10"
FRAUD = "headwater.fraud_classifier"


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("ml")
    landing = tmp / "landing"
    generate(WORLD, landing, progress=False)
    (tmp / "dagster_home").mkdir()
    resources = {
        "warehouse": Warehouse(path=str(tmp / "warehouse.duckdb")),
        "landing": LandingZone(path=str(landing)),
        "dbt": dbt_cli_resource(),
        "mlflow_tracking": MlflowTracking(tracking_uri=f"sqlite:///{tmp / 'mlflow.db'}"),
        "artifacts": ModelArtifacts(path=str(tmp / "ml")),
        "training_engine": TrainingEngine(),
        "online_store": OnlineStore(url=str(tmp / "online.sqlite")),
        "reports": MonitoringReports(path=str(tmp / "reports"), base_url="http://127.0.0.1:3001"),
    }
    overrides = yaml.safe_load(EMBEDDED_INSTANCE_CONFIG.read_text())
    with dg.instance_for_test(temp_dir=str(tmp / "dagster_home"), overrides=overrides) as inst:
        result = materialize_range(FIRST, LAST, instance=inst, resources=resources)
        yield {"result": result, "instance": inst, "resources": resources, "tmp": tmp}


def _materialize(world, *keys, partition_key=None):
    selection = dg.AssetSelection.assets(*[dg.AssetKey(k.split("/")) for k in keys])
    return dg.materialize(
        [a for a in ml_defs.assets if isinstance(a, dg.AssetsDefinition) and a.is_executable],
        selection=selection,
        instance=world["instance"],
        resources=world["resources"],
        partition_key=partition_key,
        raise_on_error=False,
    )


def _query(world, sql):
    con = duckdb.connect(str(world["resources"]["warehouse"].resolved_path()), read_only=True)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


def test_raw_to_scores_in_one_run(world):
    result = world["result"]
    assert result.success, result.failure
    tracking = world["resources"]["mlflow_tracking"]
    for spec in load_specs():
        champion = tracking.version_by_alias(spec.registered_model_name, CHAMPION)
        assert champion is not None, f"{spec.name} was not promoted on the demo data"
        assert champion.tags["headwater.gate"] == "passed"
        assert result.assets[f"models/{spec.name}/evaluation"].checks_failed == []
    # every transaction of the range is scored by the champion, with its version on the row
    champion = tracking.version_by_alias(FRAUD, CHAMPION)
    scored = _query(
        world,
        "select count(*), min(model_version), max(model_version) from scores.fraud_classifier",
    )
    features = _query(world, "select count(*) from features.transaction_features")
    assert scored[0] == (features[0][0], str(champion.version), str(champion.version))


def test_the_mlflow_run_carries_lineage(world):
    tracking = world["resources"]["mlflow_tracking"]
    client = tracking.client()
    version = tracking.version_by_alias(FRAUD, CHAMPION)
    run = client.get_run(version.run_id)
    assert run.data.tags["dagster.asset_key"] == "models/fraud_classifier/model"
    assert run.data.tags["dagster.run_id"] == world["result"].run_id
    assert run.data.tags["headwater.training_data_version"]
    assert {"learning_rate", "num_leaves", "best_iteration", "seed"} <= set(run.data.params)
    assert {"test_roc_auc", "test_pr_auc", "test_log_loss", "test_brier"} <= set(run.data.metrics)
    # artifacts live beside the SQLite store, not in ./mlruns of whatever directory ran it
    assert run.info.artifact_uri.startswith((world["tmp"] / "artifacts").as_uri())
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert "feature_importance.svg" in artifacts
    # the served version is the refit; its held-out twin, which the gate judged, is beside it
    assert version.tags["headwater.holdout_artifact"] == "holdout/model.txt"
    assert run.data.params["refit_on_all_windows"] == "True"
    assert {a.path for a in client.list_artifacts(run.info.run_id, "holdout")} == {
        "holdout/model.txt"
    }
    evaluation = (
        world["instance"]
        .get_latest_materialization_event(dg.AssetKey(["models", "fraud_classifier", "evaluation"]))
        .asset_materialization.metadata
    )
    assert evaluation["challenger_version"].value == version.version
    assert evaluation["challenger_pr_auc"].value == pytest.approx(run.data.metrics["test_pr_auc"])
    (dataset_input,) = run.inputs.dataset_inputs
    assert dataset_input.dataset.name.startswith("features.transaction_features@")


def test_demo_models_beat_their_baselines(world):
    instance = world["instance"]
    for spec in load_specs():
        key = dg.AssetKey(["models", spec.name, "evaluation"])
        metadata = instance.get_latest_materialization_event(key).asset_materialization.metadata
        m = spec.promotion.metric
        challenger, baseline = metadata[f"challenger_{m}"].value, metadata[f"baseline_{m}"].value
        if spec.promotion.higher_is_better:
            assert challenger > baseline
        else:
            assert challenger < baseline
    fraud = instance.get_latest_materialization_event(
        dg.AssetKey(["models", "fraud_classifier", "evaluation"])
    ).asset_materialization.metadata
    assert fraud["challenger_roc_auc"].value > 0.8


def test_training_is_deterministic(world):
    from ml_assets.models.evaluate import metrics_for
    from ml_assets.models.train import LABEL_COLUMN, SPLIT_COLUMN, predict, to_frame, train

    spec = next(s for s in load_specs() if s.name == "fraud_classifier")
    table = pq.read_table(world["tmp"] / "ml" / "fraud_classifier" / "training_set.parquet")
    test = table.column(SPLIT_COLUMN).to_numpy(zero_copy_only=False) == "test"
    label = table.column(LABEL_COLUMN).to_numpy()[test]
    runs = []
    for _ in range(2):
        trained = train(spec, table)
        runs.append(metrics_for(spec, label, predict(trained.booster, to_frame(table, spec)[test])))
    assert runs[0] == runs[1]


def test_a_model_on_shuffled_labels_is_refused_and_the_champion_stays(world):
    tracking = world["resources"]["mlflow_tracking"]
    before = str(tracking.version_by_alias(FRAUD, CHAMPION).version)
    path = world["tmp"] / "ml" / "fraud_classifier" / "training_set.parquet"
    original = path.read_bytes()
    table = pq.read_table(path)
    shuffled = np.random.default_rng(0).permutation(table.column("_label").to_numpy())
    index = table.schema.get_field_index("_label")
    pq.write_table(table.set_column(index, "_label", pa.array(shuffled)), path)
    try:
        result = _materialize(
            world,
            "models/fraud_classifier/model",
            "models/fraud_classifier/evaluation",
            "models/fraud_classifier/champion",
        )
    finally:
        path.write_bytes(original)
    assert not result.success  # the blocking gate stopped the run before the champion step
    (gate,) = [e for e in result.get_asset_check_evaluations() if e.check_name == GATE_CHECK]
    assert not gate.passed
    challenger = tracking.version_by_alias(FRAUD, CHALLENGER)
    assert str(challenger.version) != before
    assert challenger.tags["headwater.gate"] == "refused"
    assert str(tracking.version_by_alias(FRAUD, CHAMPION).version) == before
    # a broken challenger (worse than the baseline) says nothing of the champion: not re-based
    assert BASELINE not in tracking.version_of(FRAUD, before).tags
    # materialised on its own, the champion asset still honours the gate
    alone = _materialize(world, "models/fraud_classifier/champion")
    assert alone.success
    # no promotion: the decision is recorded with the champion kept (so scores follow it)
    (kept,) = alone.get_asset_materialization_events()
    kept_meta = kept.event_specific_data.materialization.metadata
    assert kept_meta["promoted"].value is False
    assert kept_meta["champion_version"].value == before
    logs = [e.message for e in world["instance"].all_logs(alone.run_id)]
    assert any(f"champion stays {before}" in (m or "") for m in logs)
    assert str(tracking.version_by_alias(FRAUD, CHAMPION).version) == before

    # a rollback names the version; the history records who held the alias and why
    rollback(tracking, FRAUD, str(challenger.version), "test: roll to the refused version")
    assert str(tracking.version_by_alias(FRAUD, CHAMPION).version) == str(challenger.version)
    rollback(tracking, FRAUD, before, "test: and back")
    assert str(tracking.version_by_alias(FRAUD, CHAMPION).version) == before
    rows = {row["version"]: row for row in history(tracking, FRAUD)}
    assert rows[before]["aliases"] == CHAMPION
    assert rows[before]["headwater.previous_champion"] == str(challenger.version)
    assert rows[str(challenger.version)]["headwater.gate"] == "refused"


def test_scoring_without_a_champion_says_so_and_writes_nothing(world, tmp_path):
    resources = {
        **world["resources"],
        "mlflow_tracking": MlflowTracking(tracking_uri=f"sqlite:///{tmp_path / 'empty.db'}"),
    }
    before = _query(world, "select count(*) from scores.fraud_classifier")
    result = dg.materialize(
        [a for a in ml_defs.assets if isinstance(a, dg.AssetsDefinition) and a.is_executable],
        selection=dg.AssetSelection.assets(["scores", "fraud_classifier"]),
        instance=world["instance"],
        resources=resources,
        partition_key="2025-04-01",
    )
    assert result.success
    assert result.get_asset_materialization_events() == []
    logs = [e.user_message for e in world["instance"].all_logs(result.run_id)]
    assert any("no champion for headwater.fraud_classifier yet" in (m or "") for m in logs)
    assert _query(world, "select count(*) from scores.fraud_classifier") == before


def test_scoring_a_day_again_replaces_that_day(world, monkeypatch):
    """Re-scored in batches of 7 rows (the range run scored it in one batch): the same rows,
    the same scores, nothing duplicated."""
    day = "select transaction_id, score, model_version from scores.fraud_classifier "
    day += "where cast(event_time as date) = '2025-03-03' order by transaction_id"
    before = _query(
        world, "select count(*), count(distinct transaction_id) from scores.fraud_classifier"
    )
    day_before = _query(world, day)
    assert len(day_before) > 7 * 3
    monkeypatch.setattr(scoring, "SCORE_BATCH_ROWS", 7)
    result = _materialize(world, "scores/fraud_classifier", partition_key="2025-03-03")
    assert result.success
    assert (
        _query(
            world, "select count(*), count(distinct transaction_id) from scores.fraud_classifier"
        )
        == before
    )
    assert _query(world, day) == day_before
    (scores,) = result.get_asset_materialization_events()
    metadata = scores.event_specific_data.materialization.metadata
    assert metadata["dagster/partition_row_count"].value == len(day_before)
    assert metadata["mean_score"].value == pytest.approx(
        sum(s for _, s, _ in day_before) / len(day_before)
    )


@pytest.mark.slow  # 48 s: a copy of the project, parsed and trained end to end
def test_a_third_model_from_sql_and_a_spec_only(world, tmp_path):
    """No Python: a label model in SQL and a spec file; the copy of the project trains it."""
    copy_project(tmp_path)
    (tmp_path / "dbt_project" / "models" / "features" / "high_value_labels.sql").write_text(
        "select transaction_id, amount >= 200 as is_high_value,\n"
        "       transacted_at as label_matures_at\n"
        "from {{ ref('fct_transactions') }}\n"
    )
    (tmp_path / "model_specs" / "high_value.yml").write_text(
        yaml.safe_dump(
            {
                "name": "high_value",
                "description": "Will this transaction be of 200 EUR or more?",
                "feature_set": "features.transaction_features",
                "keys": ["transaction_id"],
                "event_time": "transacted_at",
                "score_date": "transaction_date",
                "label": {
                    "table": "features.high_value_labels",
                    "column": "is_high_value",
                    "matures_at": "label_matures_at",
                },
                "objective": "binary",
                "features": [
                    "merchant_category",
                    "channel",
                    "hour_of_day",
                    "customer_avg_amount_30d",
                ],
                "categorical": ["merchant_category", "channel"],
                "baseline_feature": "customer_avg_amount_30d",
                "split": {"test_days": 10, "validation_days": 10},
                "lightgbm": {"num_boost_round": 50, "seed": 1},
                "promotion": {"metric": "roc_auc", "min_improvement": 0.0},
            }
        )
    )
    home = tmp_path / "state"
    (home / "dagster_home").mkdir(parents=True)
    shutil.copyfile(world["resources"]["warehouse"].resolved_path(), home / "warehouse.duckdb")
    code = (
        "import dagster as dg\n"
        "from headwater.headless import materialize_range\n"
        "sel = dg.AssetSelection.assets(['features', 'high_value_labels'])"
        " | dg.AssetSelection.key_prefixes(['models', 'high_value'], ['scores', 'high_value'])\n"
        "r = materialize_range('2025-04-01', '2025-04-10', selection=sel)\n"
        "print('OK' if r.success else 'FAILED ' + r.failure)\n"
    )
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("HEADWATER_", "DAGSTER_", "MLFLOW_"))
    }
    env.update(
        PYTHONPATH=f"{tmp_path / 'platform'}:{tmp_path}",
        HEADWATER_HOME=str(home),
        DAGSTER_HOME=str(home / "dagster_home"),
        HEADWATER_DUCKDB_PATH=str(home / "warehouse.duckdb"),
    )
    out = subprocess.run(
        [sys.executable, "-W", "ignore", "-c", code],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert out.stdout.strip().endswith("OK"), (out.stdout + out.stderr)[-4000:]
    con = duckdb.connect(str(home / "warehouse.duckdb"), read_only=True)
    try:
        (scored,) = con.execute("select count(*) from scores.high_value").fetchone()
    finally:
        con.close()
    assert scored > 0


# -- monitoring -------------------------------------------------------------------------------


def _check_evaluations(result):
    return [
        e.event_specific_data
        for e in result.all_events
        if e.event_type_value == "ASSET_CHECK_EVALUATION"
    ]


def test_drift_of_a_scored_day_with_its_evidently_report(world):
    day = "2025-04-10"
    result = _materialize(world, "monitoring/fraud_classifier/drift", partition_key=day)
    assert result.success, _first_error(result)
    (event,) = result.get_asset_materialization_events()
    meta = {k: v.value for k, v in event.event_specific_data.materialization.metadata.items()}
    spec = next(s for s in load_specs() if s.name == "fraud_classifier")
    assert 0.0 <= meta["drift_share"] <= 1.0
    assert {f"drift_score/{f}" for f in spec.features} <= set(meta)
    assert (
        meta["scored_rows"]
        == _query(
            world,
            "select count(*) from scores.fraud_classifier "
            f"where cast(event_time as date) = '{day}'",
        )[0][0]
    )
    # The HTML report is one click away (the report server's address) and on disk, with JSON.
    assert meta["report"] == f"http://127.0.0.1:3001/fraud_classifier/drift/{day}.html"
    html = world["tmp"] / "reports" / "fraud_classifier" / "drift" / f"{day}.html"
    assert html.stat().st_size > 100_000
    assert "metrics" in json.loads(html.with_suffix(".json").read_text())
    (check,) = _check_evaluations(result)
    assert check.check_name == DRIFT_CHECK and "features drifted" in check.description

    # Queryable history, one row per feature and one for the score; a re-run replaces the day.
    count = f"select count(*) from monitoring.drift where day = '{day}'"
    assert _query(world, count) == [(len(spec.features) + 1,)]
    assert _materialize(world, "monitoring/fraud_classifier/drift", partition_key=day).success
    assert _query(world, count) == [(len(spec.features) + 1,)]


def test_realised_performance_of_a_day_whose_labels_have_matured(world):
    day = "2025-02-03"  # matures 61 days later, 2025-04-05; the world runs to 2025-04-10
    result = _materialize(world, "monitoring/fraud_classifier/performance", partition_key=day)
    assert result.success, _first_error(result)
    (event,) = result.get_asset_materialization_events()
    meta = {k: v.value for k, v in event.event_specific_data.materialization.metadata.items()}
    assert 0.5 < meta["roc_auc"] <= 1.0
    assert 0.0 <= meta["ece"] <= 1.0 and 0.0 <= meta["pr_auc"] <= 1.0
    (positives,) = _query(
        world,
        "select count(*) from scores.fraud_classifier s join features.fraud_labels l "
        f"using (transaction_id) where cast(s.event_time as date) = '{day}' and l.is_fraud",
    )[0]
    assert meta["positives"] == positives > 0
    (check,) = _check_evaluations(result)
    assert check.check_name == PERFORMANCE_CHECK and "roc_auc" in check.description
    # Every matured day of this world trained the champion that scored it: not a realised score,
    # so not judged (the simulation measures days scored after training).
    assert meta["seen_in_training"] is True and "not judged" in check.description
    assert _query(
        world,
        "select count(*) from monitoring.performance where model = 'fraud_classifier' "
        f"and day = '{day}' and metric = 'roc_auc'",
    ) == [(1,)]


def test_performance_of_a_day_whose_labels_have_not_matured_is_refused(world):
    result = _materialize(
        world, "monitoring/fraud_classifier/performance", partition_key="2025-03-20"
    )
    assert not result.success
    assert "mature at 2025-05-20" in _first_error(result)


def _first_error(result) -> str:
    for event in result.all_events:
        if event.event_type_value == "STEP_FAILURE":
            return str(event.event_specific_data.error)
    return ""


# -- a run whose gate refuses ------------------------------------------------------------------


def test_a_headless_run_whose_gate_refuses_still_scores_with_the_champion(world):
    """The same graph over the same data again: the retrained fraud challenger is the same
    model, so it does not beat the champion by the margin (WARN) and the champion stays; the
    range's days are scored by that champion all the same (they were not, before: the champion
    step materialised nothing and Dagster skipped the scores step after it)."""
    tracking = world["resources"]["mlflow_tracking"]
    champion = str(tracking.version_by_alias(FRAUD, CHAMPION).version)
    first, last = "2025-04-08", "2025-04-09"
    days = f"between '{first}' and '{last}'"
    scored_days = f"cast(event_time as date) {days}"
    con = duckdb.connect(str(world["resources"]["warehouse"].resolved_path()))
    try:
        con.execute(f"delete from scores.fraud_classifier where {scored_days}")
    finally:
        con.close()

    result = materialize_range(
        first, last, instance=world["instance"], resources=world["resources"]
    )

    assert result.success, result.failure
    assert result.assets["models/fraud_classifier/evaluation"].checks_failed == [GATE_CHECK]
    assert str(tracking.version_by_alias(FRAUD, CHAMPION).version) == champion
    assert str(tracking.version_by_alias(FRAUD, CHALLENGER).version) != champion
    (features,) = _query(
        world, f"select count(*) from features.transaction_features where transaction_date {days}"
    )
    assert features[0] > 0
    scored = _query(
        world,
        "select count(*), min(model_version), max(model_version) from scores.fraud_classifier "
        f"where {scored_days}",
    )
    assert scored == [(features[0], champion, champion)]
    assert result.assets["scores/fraud_classifier"].partition_row_count == features[0]
    _the_refusal_rebased_the_champion(world, champion)


def _the_refusal_rebased_the_champion(world, champion: str) -> None:
    """The refused retrain moved the champion's monitoring baseline to the challenger's windows
    (`monitoring.rebaseline_on_refusal`, on by default): its decay baseline is its metric on the
    challenger's test window, its drift reference the challenger's rows scored by the champion,
    and monitoring reads both from the champion version (issue 15)."""
    from ml_assets.models.rebaseline import baseline_metrics, reference_artifact
    from ml_assets.models.tracking import load_booster
    from ml_assets.models.train import predict
    from ml_assets.monitoring.measure import load_reference

    tracking = world["resources"]["mlflow_tracking"]
    refused = tracking.version_by_alias(FRAUD, CHALLENGER)
    version = tracking.version_of(FRAUD, champion)
    rebased = json.loads(version.tags[BASELINE])
    assert rebased["from_version"] == str(refused.version)
    gate_metrics = json.loads(refused.tags["headwater.gate_metrics"])
    assert baseline_metrics(version.tags) == pytest.approx(gate_metrics["champion"])
    # the gate's decision says so, in the evaluation's metadata and its check's
    evaluation = (
        world["instance"]
        .get_latest_materialization_event(dg.AssetKey(["models", "fraud_classifier", "evaluation"]))
        .asset_materialization.metadata
    )
    said = evaluation["rebaselined"].value
    assert said.startswith(f"champion version {champion}'s drift reference and decay baseline")
    assert f"moved to version {refused.version}'s windows" in said

    folder = world["tmp"] / "ml" / "fraud_classifier"
    uri = tracking.resolved_uri()
    artifact = reference_artifact(version.tags)
    assert artifact == f"reference/rebased_from_v{refused.version}.parquet"
    moved = load_reference(folder, champion, version.run_id, uri, artifact)
    own = load_reference(folder, champion, version.run_id, uri)
    theirs = load_reference(folder, str(refused.version), refused.run_id, uri)
    features = [c for c in theirs.columns if c != "score"]
    # the challenger's rows, scored by the champion's served model, not by the challenger
    assert moved[features].equals(theirs[features])
    served = load_booster(tracking, FRAUD, champion)
    np.testing.assert_allclose(moved["score"], predict(served, moved[features]), rtol=1e-9)
    assert len(own) > 0 and version.tags["headwater.test_metrics"]  # the originals stay
