"""Every name the platform gives a thing, in one place: asset keys, warehouse tables, groups,
checks, jobs, tags, pools and MLflow aliases.

One vocabulary: a dbt model's folder is its DuckDB schema, its Dagster group and the first part
of its asset key (`models/marts/fct_transactions.sql` -> table `marts.fct_transactions` -> asset
`marts/fct_transactions` in group `marts`); the ML location's assets follow the same rule
(`features.transaction_features`, `scores.fraud_classifier`). Keys are returned as tuples of
strings, so this module imports no Dagster and the benchmark floor can use it too; Dagster code
wraps them in `dg.AssetKey(...)`.
"""

from __future__ import annotations

# -- layers: dbt folder = DuckDB schema = Dagster group = asset key prefix -----------------------
RAW = "raw"
STAGING = "staging"
INTERMEDIATE = "intermediate"
MARTS = "marts"
FEATURES = "features"
MODELS = "models"
SCORES = "scores"
MONITORING = "monitoring"
# what `headwater serve` answered, back in the graph (ml_assets/serving)
SERVING = "serving"
# the online feature stores the graph keeps fresh (ml_assets/online)
ONLINE = "online"

# Every step that writes the warehouse DuckDB file runs in this Dagster pool; the instance config
# (dagster_instance/embedded.yaml, deploy/dagster.yaml) limits it to one step at a time, because
# DuckDB allows one writing process per file.
DUCKDB_POOL = "duckdb_warehouse"

OWNER_DATA_PLATFORM = "team:data-platform"


def table_key(table: str) -> tuple[str, ...]:
    """The asset key of a schema-qualified warehouse table (`features.x` -> features/x)."""
    return tuple(table.split("."))


def dbt_key(layer: str, model: str) -> tuple[str, str]:
    """The asset key of a dbt model in `models/<layer>/<model>.sql`."""
    return (layer, model)


def raw_key(table: str) -> tuple[str, str]:
    """The default asset key of a landed source table (a source may name another with
    `meta.dagster.asset_key`)."""
    return (RAW, table)


# -- raw ---------------------------------------------------------------------------------------
QUARANTINE_TABLE = f"{RAW}.quarantine"
# The last cursor value loaded from each database-served raw table (data_platform.raw.database).
DATABASE_CURSORS_TABLE = f"{RAW}.database_cursors"
REJECTED_SHARE_CHECK = "rejected_share_below_threshold"
DAILY_WAREHOUSE_JOB = "daily_warehouse_job"
# dbt's source tests over all of `raw`, weekly (data_platform.raw.audit)
RAW_AUDIT_JOB = "raw_contract_audit"

# -- models: the assets one spec produces, by role ----------------------------------------------
MODEL_ROLES = ("training_set", "model", "evaluation", "champion")
MONITORING_ROLES = ("drift", "performance")


def model_keys(name: str) -> dict[str, tuple[str, ...]]:
    """The asset keys one model spec produces, by role, in lineage order."""
    return {
        **{role: (MODELS, name, role) for role in MODEL_ROLES},
        "scores": (SCORES, name),
        **{role: (MONITORING, name, role) for role in MONITORING_ROLES},
    }


def scores_table(name: str) -> str:
    return f"{SCORES}.{name}"


def online_key(feature_set: str) -> tuple[str, str]:
    """The asset key of a feature set's online store (`features.x` -> online/x)."""
    return (ONLINE, feature_set.split(".")[-1])


DRIFT_TABLE = f"{MONITORING}.drift"
PERFORMANCE_TABLE = f"{MONITORING}.performance"

# -- serving: the served predictions of a spec, by role, and what is measured on them ----------
SERVING_ROLES = ("predictions", "drift", "performance", "shadow_comparison")


def serving_keys(name: str) -> dict[str, tuple[str, ...]]:
    """The asset keys of a model's served traffic (`serving/<name>/<role>`), by role."""
    return {role: (SERVING, name, role) for role in SERVING_ROLES}


def predictions_table(name: str) -> str:
    """The champion's served predictions (what the service answered), one row per request."""
    return f"{SERVING}.{name}_predictions"


def shadow_predictions_table(name: str) -> str:
    """The shadow challenger's predictions on the same requests (logged, never answered)."""
    return f"{SERVING}.{name}_shadow_predictions"


# Log records the predictions asset refused (bad or duplicate request ids, unreadable features)
SERVING_QUARANTINE_TABLE = f"{SERVING}.quarantine"
# Drift and realised performance measured on served traffic (the columns of monitoring.*)
SERVED_DRIFT_TABLE = f"{SERVING}.drift"
SERVED_PERFORMANCE_TABLE = f"{SERVING}.performance"
SHADOW_COMPARISON_TABLE = f"{SERVING}.shadow_comparison"

# -- checks ------------------------------------------------------------------------------------
GATE_CHECK = "challenger_beats_champion"
DRIFT_CHECK = "drift_below_threshold"
PERFORMANCE_CHECK = "performance_not_decayed"

# -- jobs and run tags ---------------------------------------------------------------------------


def retrain_job(name: str) -> str:
    return f"retrain_{name}"


def performance_job(name: str) -> str:
    return f"performance_{name}"


RETRAIN_TAG = "headwater/retrain"
REASON_TAG = "headwater/retrain_reason"
# why the monitor sensor asked for a day's performance
PERFORMANCE_REASON_TAG = "headwater/reason"
# who launched a run: landing_sensor, headless, simulation, bench
TRIGGER_TAG = "headwater/trigger"

# -- sensors -------------------------------------------------------------------------------------
LANDING_SENSOR = "landing_sensor"
AUTOMATION_SENSOR = "ml_automation"
MONITOR_SENSOR = "model_monitor"

# -- dbt metadata ------------------------------------------------------------------------------
# the dbt tag of the warehouse's time-partitioned models (incremental facts, dbt_project.yml)
DAILY_MODEL_TAG = "daily"
# a daily model's date column, from `meta.headwater.partition_column`: row counts per partition
PARTITION_COLUMN_METADATA = "headwater/partition_column"
# the profiles.yml outputs: DuckDB (the default) and Spark (docs/scale-out.md); the variable
# that chooses one when the dbt resource names none (dbt_project/profiles.yml reads it too)
DBT_TARGET_DUCKDB = "local"
DBT_TARGET_SPARK = "spark"
DBT_TARGET_VARIABLE = "HEADWATER_DBT_TARGET"

# -- MLflow ------------------------------------------------------------------------------------
CHALLENGER = "challenger"
CHAMPION = "champion"


def experiment_name(model: str) -> str:
    return f"headwater/{model}"


# Tags on a registered model version: what the gate, monitoring and rollback read back.
TAG_GATE = "headwater.gate"
TAG_GATE_REASON = "headwater.gate_reason"
TAG_GATE_CHAMPION_VERSION = "headwater.gate_champion_version"
TAG_GATE_METRICS = "headwater.gate_metrics"
TAG_GATE_TEST = "headwater.gate_test"
TAG_TEST_METRICS = "headwater.test_metrics"
TAG_TRAINED_THROUGH = "headwater.trained_through"
TAG_FEATURE_IMPORTANCE = "headwater.feature_importance"
TAG_HOLDOUT_ARTIFACT = "headwater.holdout_artifact"
TAG_MODEL = "headwater.model"
TAG_TRAINING_DATA_VERSION = "headwater.training_data_version"
# What a spec's sampling rule did to the train window (JSON), on a run and its version.
TAG_TRAINING_SAMPLE = "headwater.training_sample"
TAG_PREVIOUS_CHAMPION = "headwater.previous_champion"
# The newest comparison with the champion on served traffic (serving/<name>/shadow_comparison)
TAG_SERVED_COMPARISON = "headwater.served_comparison"
# Set last, just before the `challenger` alias: every tag and artifact above exists.
TAG_COMPLETE = "headwater.complete"

# Artifacts stored with a model's MLflow run.
HOLDOUT_ARTIFACT = "holdout/model.txt"
REFERENCE_ARTIFACT = "reference/reference.parquet"
FEATURE_IMPORTANCE_ARTIFACT = "feature_importance.svg"
