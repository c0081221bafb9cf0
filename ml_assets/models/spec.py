"""Model specs: a model is declared in YAML, not coded.

A spec in `ml_assets/model_specs/<name>.yml` names a feature set (a dbt model in the `features`
layer), its entity and event-time columns, the label and when it matures, the objective, the
LightGBM parameters, the time split and the promotion rule. `ml_assets.models.assets` turns each
spec into the same five assets (training set, model, evaluation, champion, scores), so a new
model is SQL plus a spec, with no Python. No Dagster import here.
"""

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from ml_assets.models.drift_spec import DriftSpec, parse_drift

SPECS_DIR = Path(__file__).resolve().parents[1] / "model_specs"

# Metrics where larger is better; every other metric is an error (smaller is better).
HIGHER_IS_BETTER = {"roc_auc", "pr_auc", "r2", "recall_at_top_k", "precision_at_top_k"}
CLASSIFIER_METRICS = ("roc_auc", "pr_auc", "log_loss", "brier", "recall_at_top_k")
REGRESSOR_METRICS = ("rmse", "mae", "r2")

# What a name a spec puts into SQL may be: a column, or a table as `schema.name` of two of them.
IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def ident(name: str) -> str:
    """A column name quoted for SQL (a spec's names are checked identifiers; a keyword such as
    `group` still needs the quotes)."""
    return '"' + name.replace('"', '""') + '"'


def table_ref(name: str) -> str:
    """A `schema.name` table quoted for SQL."""
    return ".".join(ident(part) for part in name.split("."))


@dataclass(frozen=True)
class LabelSpec:
    """Where the label lives and when a row's label can be trusted."""

    table: str
    column: str
    matures_at: str
    """Timestamp column: the row may train a model only once this is <= the training cut-off."""
    known_at: str | None = None
    """Timestamp column: when a positive label became known; a later one counts as unknown."""


@dataclass(frozen=True)
class SplitSpec:
    """Time windows, counted back in days from the last matured event: test, then validation,
    then training (all earlier matured rows when `train_days` is null)."""

    test_days: int
    validation_days: int
    train_days: int | None = None
    refit: bool = True
    """The gate judges the model trained on the train window; the version that serves is then
    refit on all three windows with the same number of rounds (false: the held-out model
    serves)."""


@dataclass(frozen=True)
class PromotionSpec:
    """A challenger replaces the champion only if it beats it (and the baseline) on `metric`
    by at least `min_improvement` on the same test window."""

    metric: str
    min_improvement: float = 0.0

    @property
    def higher_is_better(self) -> bool:
        return self.metric in HIGHER_IS_BETTER


@dataclass(frozen=True)
class PerformanceSpec:
    """When realised performance has decayed: `metric` on matured labels (over the trailing
    `window_days`) against the same metric on the model version's own test window, as a
    relative loss (0.05 = 5% worse).
    A decay of `warn_decay` warns; one of `error_decay` fails the check and the model retrains."""

    metric: str
    warn_decay: float
    error_decay: float
    min_rows: int = 200
    """A window with fewer scored rows (or, for a classifier, no positive) is not judged."""
    window_days: int = 7
    """The check judges the metric over this many days up to the measured one (the same version,
    matured labels): a single day's ROC-AUC on a few dozen frauds is mostly noise."""


@dataclass(frozen=True)
class MonitoringSpec:
    drift: DriftSpec = field(default_factory=DriftSpec)
    performance: PerformanceSpec | None = None


@dataclass(frozen=True)
class ModelSpec:
    name: str
    description: str
    feature_set: str
    """Schema-qualified table of the features layer, e.g. `features.transaction_features`."""
    keys: tuple[str, ...]
    """Columns that identify a row of the feature set (entity, and the as-of date if any)."""
    event_time: str
    label: LabelSpec
    objective: Literal["binary", "regression"]
    features: tuple[str, ...]
    categorical: tuple[str, ...]
    split: SplitSpec
    promotion: PromotionSpec
    baseline_feature: str
    """The simple baseline: the label's mean per decile of this one feature (train window)."""
    score_date: str
    """Date column of the feature set that the daily scores are partitioned by."""
    lightgbm: dict[str, Any] = field(default_factory=dict)
    early_stopping_rounds: int = 50
    top_k_share: float = 0.01
    owner: str = "team:ml"
    freshness: dict[str, float] | None = None
    """`{warn_after_hours, fail_after_hours}` for the trained model: a model older fails."""
    retrain_cron: str = "0 4 * * 1"
    """The backstop: the model retrains on this schedule whatever else happens (UTC)."""
    monitoring: MonitoringSpec = field(default_factory=MonitoringSpec)
    source: str = ""

    @property
    def metrics(self) -> tuple[str, ...]:
        return CLASSIFIER_METRICS if self.objective == "binary" else REGRESSOR_METRICS

    @property
    def registered_model_name(self) -> str:
        return f"headwater.{self.name}"


def spec_from_yml(path: Path) -> ModelSpec:
    raw = yaml.safe_load(path.read_text()) or {}
    where = str(path)
    try:
        label = LabelSpec(**raw["label"])
        split = SplitSpec(**raw["split"])
        promotion = PromotionSpec(**raw["promotion"])
        monitoring_raw = raw.get("monitoring") or {}
        monitoring = MonitoringSpec(
            drift=parse_drift(monitoring_raw.get("drift"), where, tuple(raw["features"])),
            performance=(
                PerformanceSpec(**monitoring_raw["performance"])
                if monitoring_raw.get("performance")
                else None
            ),
        )
        spec = ModelSpec(
            name=raw["name"],
            description=" ".join(str(raw.get("description", "")).split()),
            feature_set=raw["feature_set"],
            keys=tuple(raw["keys"]),
            event_time=raw["event_time"],
            label=label,
            objective=raw["objective"],
            features=tuple(raw["features"]),
            categorical=tuple(raw.get("categorical", [])),
            split=split,
            promotion=promotion,
            baseline_feature=raw["baseline_feature"],
            score_date=raw["score_date"],
            lightgbm=dict(raw.get("lightgbm", {})),
            early_stopping_rounds=int(raw.get("early_stopping_rounds", 50)),
            top_k_share=float(raw.get("top_k_share", 0.01)),
            owner=raw.get("owner", "team:ml"),
            freshness=raw.get("freshness"),
            retrain_cron=raw.get("retrain_cron", "0 4 * * 1"),
            monitoring=monitoring,
            source=where,
        )
    except (KeyError, TypeError) as e:
        raise ValueError(f"{where}: invalid model spec ({e})") from e
    _check_names(spec, where)
    if spec.name != path.stem:
        raise ValueError(f"{where}: spec name {spec.name!r} must match its file name")
    if spec.objective not in ("binary", "regression"):
        raise ValueError(f"{where}: objective must be binary or regression")
    if spec.promotion.metric not in spec.metrics:
        raise ValueError(f"{where}: promotion metric must be one of {spec.metrics}")
    unknown = set(spec.categorical) - set(spec.features)
    if unknown:
        raise ValueError(f"{where}: categorical columns {sorted(unknown)} are not features")
    if spec.baseline_feature not in spec.features:
        raise ValueError(f"{where}: baseline_feature must be one of the features")
    performance = spec.monitoring.performance
    if performance is not None:
        if performance.metric not in spec.metrics:
            raise ValueError(
                f"{where}: monitoring.performance.metric must be one of {spec.metrics}"
            )
        if not 0 <= performance.warn_decay <= performance.error_decay:
            raise ValueError(
                f"{where}: monitoring.performance needs 0 <= warn_decay <= error_decay"
            )
    return spec


def _check_names(spec: ModelSpec, where: str) -> None:
    """Every name the spec puts into SQL is an identifier, each table `schema.name`: a spec is
    pasted into queries, and anything else could smuggle SQL into them."""
    label = spec.label
    columns = {
        "name": (spec.name,),  # the scores table is `scores.<name>`
        "features": spec.features,
        "categorical": spec.categorical,
        "keys": spec.keys,
        "event_time": (spec.event_time,),
        "score_date": (spec.score_date,),
        "label.column": (label.column,),
        "label.matures_at": (label.matures_at,),
        "label.known_at": (label.known_at,) if label.known_at is not None else (),
        "baseline_feature": (spec.baseline_feature,),
    }
    tables = {"feature_set": spec.feature_set, "label.table": label.table}
    for name, values in columns.items():
        for value in values:
            if not (isinstance(value, str) and IDENTIFIER.fullmatch(value)):
                raise ValueError(
                    f"{where}: {name} {value!r} is not an identifier (letters, digits and "
                    "underscores, not starting with a digit)"
                )
    for name, value in tables.items():
        parts = value.split(".") if isinstance(value, str) else []
        if len(parts) != 2 or not all(IDENTIFIER.fullmatch(p) for p in parts):
            raise ValueError(
                f"{where}: {name} {value!r} is not a table as schema.name (each part letters, "
                "digits and underscores, not starting with a digit)"
            )


def load_specs(folder: Path = SPECS_DIR) -> list[ModelSpec]:
    """Every model spec in the folder, by name."""
    return [spec_from_yml(p) for p in sorted(folder.glob("*.yml"))]
