"""Served predictions back in the graph, on real parts: the log written by `PredictionLogWriter`
as the service writes it, loaded by `serving/fraud_classifier/predictions` into a real DuckDB
file, measured by the served drift and performance assets (Evidently, a real MLflow store) and
compared champion vs shadow challenger.

A tiny world, built in DuckDB directly (no dbt, no training: fast): the fraud spec's feature set
and labels for 14 days, two registered versions with their tags and drift reference, and 3 days
of served traffic where the challenger's score tracks the label more closely than the champion's.
"""

import json
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta

import dagster as dg
import duckdb
import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import average_precision_score, roc_auc_score

from headwater_core.names import (
    CHALLENGER,
    CHAMPION,
    DRIFT_CHECK,
    PERFORMANCE_CHECK,
    REFERENCE_ARTIFACT,
    TAG_FEATURE_IMPORTANCE,
    TAG_GATE,
    TAG_SERVED_COMPARISON,
    TAG_TEST_METRICS,
    TAG_TRAINED_THROUGH,
)
from headwater_core.resources import Warehouse
from ml_assets.models.artifacts import ModelArtifacts
from ml_assets.models.assets import build_champion_asset
from ml_assets.models.spec import load_specs
from ml_assets.models.tracking import MlflowTracking
from ml_assets.monitoring.assets import MonitoringReports
from ml_assets.serving.assets import build_serving_assets
from ml_assets.serving.gate import served_gate
from ml_assets.serving.prediction_log import (
    ROLE_CHAMPION,
    ROLE_SHADOW,
    PredictionLogWriter,
    PredictionRecord,
)

SPEC = next(s for s in load_specs() if s.name == "fraud_classifier")
FIRST = date(2025, 3, 1)
DAYS = 14  # the feature set's days: the served days' labels (2 days' maturity) have matured
SERVED = [FIRST + timedelta(days=i) for i in range(3)]
ROWS_PER_DAY = 400
CATEGORIES = {"channel": ["web", "pos"], "merchant_category": ["food", "travel", "retail"]}


def _features(rng: np.random.Generator, n: int) -> pd.DataFrame:
    frame = pd.DataFrame({f: rng.gamma(2.0, 10.0, n) for f in SPEC.features})
    frame["amount"] = rng.lognormal(3.0, 1.0, n)
    frame["channel"] = rng.choice(CATEGORIES["channel"], n)
    frame["merchant_category"] = rng.choice(CATEGORIES["merchant_category"], n)
    frame["merchant_risk_tier"] = rng.choice(["low", "high"], n)
    for flag in ("is_night", "is_home_region", "is_new_merchant_for_customer"):
        frame[flag] = rng.random(n) < 0.3
    frame["hour_of_day"] = rng.integers(0, 24, n)
    return frame


def _build_world(tmp) -> dict:
    rng = np.random.default_rng(7)
    n = DAYS * ROWS_PER_DAY
    frame = _features(rng, n)
    frame.insert(0, "transaction_id", [f"t{i:06d}" for i in range(n)])
    days = np.repeat([FIRST + timedelta(days=i) for i in range(DAYS)], ROWS_PER_DAY)
    frame.insert(1, "transaction_date", days)
    frame.insert(1, "transacted_at", pd.to_datetime(days) + pd.Timedelta(hours=12))
    risk = rng.normal(0, 1, n) + (frame["merchant_risk_tier"] == "high") * 1.5
    is_fraud = risk > 1.6
    labels = pd.DataFrame(
        {
            "transaction_id": frame["transaction_id"],
            "is_fraud": is_fraud,
            "label_matures_at": frame["transacted_at"] + pd.Timedelta(days=2),
            "chargeback_reported_at": pd.Series([pd.NaT] * n, dtype="datetime64[ns]"),
        }
    )
    path = tmp / "warehouse.duckdb"
    con = duckdb.connect(str(path))
    con.execute("create schema features")
    con.register("f", frame)
    con.register("l", labels)
    con.execute("create table features.transaction_features as select * from f")
    con.execute("create table features.fraud_labels as select * from l")
    con.close()
    # champion: the risk through much noise; challenger: through little (it ranks better)
    champion = 1 / (1 + np.exp(-(risk + rng.normal(0, 1.5, n))))
    challenger = 1 / (1 + np.exp(-(risk + rng.normal(0, 0.3, n))))
    return {"frame": frame, "is_fraud": is_fraud, "champion": champion, "challenger": challenger}


def _register(tracking: MlflowTracking, frame: pd.DataFrame, tmp) -> None:
    """Versions 1 (champion) and 2 (challenger), tagged as training tags them, with a reference."""
    import mlflow

    client = tracking.client()
    client.create_registered_model(SPEC.registered_model_name)
    experiment = tracking.experiment_id("headwater/fraud_classifier")
    reference = frame[list(SPEC.features)].head(2000).assign(score=0.1)
    path = tmp / "reference.parquet"
    reference.to_parquet(path, index=False)
    importance = {f: 1.0 / len(SPEC.features) for f in SPEC.features}
    for _ in range(2):
        with mlflow.start_run(experiment_id=experiment) as run:
            mlflow.log_artifact(str(path), artifact_path=REFERENCE_ARTIFACT.split("/")[0])
        version = client.create_model_version(
            SPEC.registered_model_name, f"{run.info.artifact_uri}/reference", run.info.run_id
        )
        for tag, value in {
            TAG_FEATURE_IMPORTANCE: json.dumps(importance),
            TAG_TEST_METRICS: json.dumps({"roc_auc": 0.7}),
            TAG_TRAINED_THROUGH: "2025-02-01",
        }.items():
            client.set_model_version_tag(SPEC.registered_model_name, version.version, tag, value)


def _log_traffic(root, world) -> int:
    """The served days' requests, logged as the service logs them: the champion's answer and the
    shadow's score per request, appended after the answer, flushed per batch. Returns the
    number of requests."""
    writer = PredictionLogWriter(root, flush_rows=250)
    frame = world["frame"]
    served = frame[frame["transaction_date"].isin(SERVED)]
    rows = served.to_dict("records")
    for i, row in zip(served.index, rows, strict=True):
        features = {
            f: (row[f].item() if hasattr(row[f], "item") else row[f]) for f in SPEC.features
        }
        common = dict(
            request_id=f"req-{i}",
            served_at=datetime.now(UTC),
            score_date=row["transaction_date"],
            model_name=SPEC.name,
            keys_json=json.dumps({"transaction_id": row["transaction_id"]}),
            features_json=json.dumps(features),
            latency_ms=1.0,
        )
        writer.append(
            [
                PredictionRecord(
                    **common,
                    model_version="1",
                    role=ROLE_CHAMPION,
                    score=float(world["champion"][i]),
                ),
                PredictionRecord(
                    **common,
                    model_version="2",
                    role=ROLE_SHADOW,
                    score=float(world["challenger"][i]),
                ),
            ]
        )
        if i == served.index[0]:  # a service that logged a request twice, and a broken record
            writer.append(
                [
                    PredictionRecord(
                        **common,
                        model_version="1",
                        role=ROLE_CHAMPION,
                        score=float(world["champion"][i]),
                    )
                ]
            )
            broken = {**common, "features_json": json.dumps({**features, "amount": "abc"})}
            broken["request_id"] = "req-broken"
            writer.append(
                [PredictionRecord(**broken, model_version="1", role=ROLE_CHAMPION, score=0.5)]
            )
    writer.flush()
    return len(served)


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("served")
    world = _build_world(tmp)
    tracking = MlflowTracking(tracking_uri=f"sqlite:///{tmp / 'mlflow.db'}")
    _register(tracking, world["frame"], tmp)
    requests = _log_traffic(tmp / "log", world)
    resources = {
        "warehouse": Warehouse(path=str(tmp / "warehouse.duckdb")),
        "mlflow_tracking": tracking,
        "artifacts": ModelArtifacts(path=str(tmp / "ml")),
        "reports": MonitoringReports(path=str(tmp / "reports"), base_url="http://127.0.0.1:3001"),
    }
    return {"world": world, "tmp": tmp, "resources": resources, "requests": requests}


def _materialize(served, role: str, day: date):
    assets = build_serving_assets(SPEC)
    key = dg.AssetKey(["serving", SPEC.name, role])
    log = {"log_dir": str(served["tmp"] / "log")}
    return dg.materialize(
        assets,
        selection=dg.AssetSelection.assets(key),
        resources=served["resources"],
        run_config={"ops": {"serving__fraud_classifier__predictions": {"config": log}}}
        if role == "predictions"
        else None,
        partition_key=day.isoformat(),
        raise_on_error=False,
    )


def _meta(result) -> dict:
    (event,) = result.get_asset_materialization_events()
    return {k: v.value for k, v in event.event_specific_data.materialization.metadata.items()}


def _checks(result) -> list:
    return [
        e.event_specific_data
        for e in result.all_events
        if e.event_type_value == "ASSET_CHECK_EVALUATION"
    ]


def _query(served, sql: str) -> list[tuple]:
    con = duckdb.connect(str(served["tmp"] / "warehouse.duckdb"), read_only=True)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


def test_served_days_land_once_measured_and_compared(served):
    # each served day loaded twice: the second run replaces the day, nothing doubles
    for day in SERVED:
        for _ in range(2):
            result = _materialize(served, "predictions", day)
            assert result.success
    first = _meta(_materialize(served, "predictions", SERVED[0]))
    assert first["champion_rows"] == first["shadow_rows"] == ROWS_PER_DAY
    assert first["quarantined"] == 2 and first["rows_reconciled"] is True
    assert first["records_read"] == 2 * ROWS_PER_DAY + 2
    assert set(first["quarantine_reasons"]) == {"duplicate request_id", "feature amount"}
    assert _query(
        served,
        "select count(*), count(distinct request_id) from serving.fraud_classifier_predictions",
    ) == [(3 * ROWS_PER_DAY, 3 * ROWS_PER_DAY)]
    assert _query(
        served, "select reason from serving.quarantine where request_id = 'req-broken'"
    ) == [("feature amount: abc is not DOUBLE",)]
    # features unpacked to the spec's columns, typed as the feature set types them
    row = _query(
        served,
        "select p.amount = f.amount, p.channel = f.channel, p.is_night = f.is_night "
        "from serving.fraud_classifier_predictions p join features.transaction_features f "
        "using (transaction_id) limit 1",
    )
    assert row == [(True, True, True)]

    # drift of the served day: the monitoring asset's metadata and check, on served rows
    day = SERVED[-1]
    drift = _materialize(served, "drift", day)
    assert drift.success
    meta = _meta(drift)
    assert meta["model_version"] == "1" and meta["scored_rows"] == ROWS_PER_DAY
    assert {f"drift_score/{f}" for f in ("amount", "channel")} <= set(meta)
    (check,) = _checks(drift)
    assert check.check_name == DRIFT_CHECK
    assert _query(served, f"select count(*) from serving.drift where day = '{day}'") == [
        (len(SPEC.features) + 1,)
    ]
    assert (served["tmp"] / "reports" / SPEC.name / "served_drift" / f"{day}.html").exists()

    # realised performance on the served requests, labels matured
    performance = _materialize(served, "performance", day)
    assert performance.success
    meta = _meta(performance)
    world, frame = served["world"], served["world"]["frame"]
    on_day = (frame["transaction_date"] == day).to_numpy()
    expected = roc_auc_score(world["is_fraud"][on_day], world["champion"][on_day])
    assert meta["roc_auc"] == pytest.approx(expected, abs=1e-9)
    (check,) = _checks(performance)
    assert check.check_name == PERFORMANCE_CHECK

    # the shadow challenger against the champion on the same requests
    comparison = _materialize(served, "shadow_comparison", day)
    assert comparison.success
    meta = _meta(comparison)
    both = frame["transaction_date"].isin(SERVED).to_numpy()
    assert meta["pairs"] == meta["labelled"] == 3 * ROWS_PER_DAY
    assert meta["challenger_version"] == "2" and meta["champion_versions"] == "1"
    assert meta["mean_difference"] == pytest.approx(
        float((world["challenger"][both] - world["champion"][both]).mean()), abs=1e-9
    )
    # the promotion metric (pr_auc for this spec), paired on the same requests
    assert meta["metric"] == SPEC.promotion.metric == "pr_auc"
    gain = average_precision_score(
        world["is_fraud"][both], world["challenger"][both]
    ) - average_precision_score(world["is_fraud"][both], world["champion"][both])
    assert meta["improvement"] == pytest.approx(gain, abs=1e-9)
    assert 0 < meta["lower"] < gain < meta["upper"]
    assert meta["enough_labels"] is True

    # the gate reads it from the challenger's version
    tag = served["resources"]["mlflow_tracking"].version_of(SPEC.registered_model_name, "2")
    stored = json.loads(tag.tags[TAG_SERVED_COMPARISON])
    gated = replace(
        SPEC, serving=replace(SPEC.serving, shadow=replace(SPEC.serving.shadow, gate=True))
    )
    assert served_gate(gated, "2", stored)[0] is True
    strict = replace(gated, promotion=replace(SPEC.promotion, min_improvement=meta["upper"]))
    promote, reason = served_gate(strict, "2", stored)
    assert promote is False and "does not clear" in reason
    # the champion step asks it: a challenger the offline gate passed stays out
    tracking = served["resources"]["mlflow_tracking"]
    client = tracking.client()
    client.set_registered_model_alias(SPEC.registered_model_name, CHAMPION, "1")
    client.set_registered_model_alias(SPEC.registered_model_name, CHALLENGER, "2")
    client.set_model_version_tag(SPEC.registered_model_name, "2", TAG_GATE, "passed")
    kept = dg.materialize([build_champion_asset(strict)], resources={"mlflow_tracking": tracking})
    meta = _meta(kept)
    assert meta["champion_version"] == "1" and meta["promoted"] is False
    assert "served pr_auc improvement on 1,200 matured requests" in meta["reason"]
    assert tracking.version_by_alias(SPEC.registered_model_name, CHAMPION).version == "1"


def test_a_day_with_too_many_bad_records_is_refused_and_keeps_its_rows(served):
    day = SERVED[1]
    assert _materialize(served, "predictions", day).success
    writer = PredictionLogWriter(served["tmp"] / "log")
    writer.append(
        [
            PredictionRecord(
                f"bad-{i}",
                datetime.now(UTC),
                day,
                SPEC.name,
                "1",
                ROLE_CHAMPION,
                "{}",
                "{}",
                0.5,
                1.0,
            )
            for i in range(100)
        ]
    )
    writer.flush()
    result = _materialize(served, "predictions", day)
    assert not result.success
    failure = next(e for e in result.all_events if e.event_type_value == "STEP_FAILURE")
    assert "100 of 900 served records refused" in failure.event_specific_data.error.message
    assert _query(
        served,
        f"select count(*) from serving.fraud_classifier_predictions where score_date = '{day}'",
    ) == [(ROWS_PER_DAY,)]
    assert _query(
        served,
        f"select count(*) from serving.quarantine where day = '{day}' "
        "and reason = 'key transaction_id is missing'",
    ) == [(100,)]
