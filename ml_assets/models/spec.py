"""Model specs: a model is declared in YAML, not coded.

A spec in the project's `model_specs/<name>.yml` names a feature set (a dbt model in the `features`
layer), its entity and event-time columns, the label and when it matures, the objective, the
LightGBM parameters, the time split and the promotion rule. `ml_assets.models.assets` turns each
spec into the same five assets (training set, model, evaluation, champion, scores), so a new
model is SQL plus a spec, with no Python. No Dagster import here.
"""

import re
from dataclasses import dataclass, field, fields
from datetime import date
from pathlib import Path
from typing import Any, Literal

import yaml

from headwater_core.config import model_specs_dir
from ml_assets.models.drift_spec import DriftSpec, parse_drift
from ml_assets.models.sampling_spec import SamplingSpec, parse_sampling
from ml_assets.models.serving_spec import ServingSpec, parse_serving

# Metrics where larger is better; every other metric is an error (smaller is better).
HIGHER_IS_BETTER = {"roc_auc", "pr_auc", "r2", "recall_at_top_k", "precision_at_top_k"}
CLASSIFIER_METRICS = ("roc_auc", "pr_auc", "log_loss", "brier", "recall_at_top_k")
REGRESSOR_METRICS = ("rmse", "mae", "r2")

# What a name a spec puts into SQL may be: a column, or a table as `schema.name` of two of them.
IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
PINNED_WINDOWS = ("train", "validation", "test")


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


class SpecError(ValueError):
    """A model spec that cannot be used; the message names its file and the field."""


@dataclass(frozen=True)
class DateWindow:
    """A window of event dates pinned in the spec, both ends inclusive; no start: every earlier
    matured row (the training window only)."""

    start: date | None
    end: date


@dataclass(frozen=True)
class SplitSpec:
    """Time windows of the training set: counted back in days from the last matured event
    (test, then validation, then training: all earlier matured rows when `train_days` is null),
    or pinned by date (`train`, `validation`, `test`, each `{start, end}`)."""

    test_days: int | None = None
    validation_days: int | None = None
    train_days: int | None = None
    refit: bool = True
    """The gate judges the model trained on the train window; the version that serves is then
    refit on all three windows with the same number of rounds (false: the held-out model
    serves)."""
    train: DateWindow | None = None
    validation: DateWindow | None = None
    test: DateWindow | None = None

    @property
    def pinned(self) -> bool:
        """Whether the windows are dates rather than day counts."""
        return self.test is not None


def split_from_yml(raw: dict, where: str) -> SplitSpec:
    """The `split:` block: day counts, or the three windows pinned by date, checked to be
    ordered and not to overlap (whether they hold data is known only when training)."""
    if not isinstance(raw, dict):
        raise SpecError(f"{where}: split must be a mapping")
    pinned = [w for w in PINNED_WINDOWS if w in raw]
    if not pinned:
        split = SplitSpec(**raw)
        for field_name in ("test_days", "validation_days"):
            value = getattr(split, field_name)
            if not (isinstance(value, int) and value > 0):
                raise SpecError(
                    f"{where}: split.{field_name} must be a whole number of days above 0 "
                    "(or pin the windows: split.train, split.validation, split.test)"
                )
        return split
    counted = sorted(k for k in raw if k.endswith("_days") and raw[k] is not None)
    if counted:
        raise SpecError(
            f"{where}: split pins {', '.join(pinned)} by date and also counts "
            f"{', '.join(counted)}: give one or the other"
        )
    missing = [w for w in PINNED_WINDOWS if w not in raw]
    if missing:
        raise SpecError(
            f"{where}: split pins {', '.join(pinned)} by date but not "
            f"{', '.join(missing)}: pin all three ({{start, end}} each)"
        )
    windows = {w: _date_window(raw[w], f"split.{w}", where) for w in PINNED_WINDOWS}
    for earlier, later in (("train", "validation"), ("validation", "test")):
        if windows[later].start is None or windows[later].start <= windows[earlier].end:
            raise SpecError(
                f"{where}: split.{later}.start ({windows[later].start}) must be after "
                f"split.{earlier}.end ({windows[earlier].end}): the windows come in the order "
                "train, validation, test and do not overlap"
            )
    rest = {k: v for k, v in raw.items() if k not in PINNED_WINDOWS}
    return SplitSpec(**rest, **windows)


def _date_window(raw, field_name: str, where: str) -> DateWindow:
    if not isinstance(raw, dict) or set(raw) - {"start", "end"} or "end" not in raw:
        raise SpecError(f"{where}: {field_name} must be {{start: YYYY-MM-DD, end: YYYY-MM-DD}}")
    ends = {}
    for edge in ("start", "end"):
        value = raw.get(edge)
        if value is None or isinstance(value, date):
            ends[edge] = value
            continue
        try:
            ends[edge] = date.fromisoformat(str(value))
        except ValueError:
            raise SpecError(
                f"{where}: {field_name}.{edge} {value!r} is not a date (YYYY-MM-DD)"
            ) from None
    if ends["end"] is None:
        raise SpecError(f"{where}: {field_name}.end is missing")
    if field_name != "split.train" and ends["start"] is None:
        raise SpecError(f"{where}: {field_name}.start is missing (only train may leave it out)")
    if ends["start"] is not None and ends["start"] > ends["end"]:
        raise SpecError(
            f"{where}: {field_name}.start ({ends['start']}) is after its end ({ends['end']})"
        )
    return DateWindow(ends["start"], ends["end"])


@dataclass(frozen=True)
class PromotionSpec:
    """A challenger replaces the champion only if it beats it on `metric` on the same test rows,
    clear of noise: the lower bound of the paired bootstrap interval of the improvement (at
    `confidence`, two-sided) must reach `min_improvement` and be above zero. The first version
    (no champion) must beat the decile baseline."""

    metric: str
    min_improvement: float = 0.0
    confidence: float = 0.90
    """Two-sided level of the improvement's interval: 0.90 makes its lower bound a one-sided 95%
    bound."""
    resamples: int = 1000

    @property
    def higher_is_better(self) -> bool:
        return self.metric in HIGHER_IS_BETTER


@dataclass(frozen=True)
class PerformanceSpec:
    """When realised performance has decayed: `metric` on matured labels (over the trailing
    `window_days`) against the same metric on the model version's own test window, as a
    relative loss (0.05 = 5% worse). The realised metric carries a bootstrap interval at
    `confidence` (two-sided); the check warns when even its best bound is `warn_decay` worse,
    and fails (the model retrains) when it is `error_decay` worse: a decay clear of noise."""

    metric: str
    warn_decay: float
    error_decay: float
    min_labels: int = 200
    """A window with fewer matured labels is not judged ("not enough labels")."""
    min_positives: int = 10
    """Nor, for a classifier, one with fewer positive labels."""
    window_days: int = 7
    """The check judges the metric over this many days up to the measured one (the same version,
    matured labels): a single day's ROC-AUC on a few dozen frauds is mostly noise."""
    confidence: float = 0.90
    resamples: int = 1000


@dataclass(frozen=True)
class MonitoringSpec:
    drift: DriftSpec = field(default_factory=DriftSpec)
    performance: PerformanceSpec | None = None
    rebaseline_on_refusal: bool = True
    """A refused challenger moves the champion's drift reference and decay baseline to the
    windows it was judged on (`rebaseline`)."""


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
    serving: ServingSpec = field(default_factory=ServingSpec)  # the shadow comparison's block
    sampling: SamplingSpec | None = None  # the train window's row budget (None: every row)
    source: str = ""

    @property
    def metrics(self) -> tuple[str, ...]:
        return CLASSIFIER_METRICS if self.objective == "binary" else REGRESSOR_METRICS

    @property
    def registered_model_name(self) -> str:
        return f"headwater.{self.name}"


def spec_from_yml(path: Path) -> ModelSpec:
    where = str(path)
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as e:
        raise SpecError(f"{where}: not valid YAML ({e})") from e
    try:
        label = LabelSpec(**raw["label"])
        split = split_from_yml(raw["split"], where)
        promotion = _block(PromotionSpec, raw["promotion"], where, "promotion")
        monitoring_raw = raw.get("monitoring") or {}
        monitoring = MonitoringSpec(
            drift=parse_drift(monitoring_raw.get("drift"), where, tuple(raw["features"])),
            performance=_block(
                PerformanceSpec, monitoring_raw["performance"], where, "monitoring.performance"
            )
            if monitoring_raw.get("performance")
            else None,
            rebaseline_on_refusal=monitoring_raw.get("rebaseline_on_refusal", True),
        )
        if not isinstance(monitoring.rebaseline_on_refusal, bool):
            raise SpecError(f"{where}: monitoring.rebaseline_on_refusal must be true or false")
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
            serving=parse_serving(raw.get("serving"), where),
            sampling=parse_sampling(raw.get("sampling"), where),
            source=where,
        )
    except KeyError as e:
        raise SpecError(f"{where}: invalid model spec (field {e} is missing)") from e
    except TypeError as e:
        raise SpecError(f"{where}: invalid model spec ({e})") from e
    _check_names(spec, where)
    if spec.name != path.stem:
        raise SpecError(f"{where}: spec name {spec.name!r} must match its file name")
    if spec.objective not in ("binary", "regression"):
        raise SpecError(f"{where}: objective must be binary or regression")
    unknown = set(spec.categorical) - set(spec.features)
    if unknown:
        raise SpecError(f"{where}: categorical columns {sorted(unknown)} are not features")
    if spec.baseline_feature not in spec.features:
        raise SpecError(f"{where}: baseline_feature must be one of the features")
    _check_promotion(spec, where)
    _check_performance(spec, where)
    return spec


def _block(cls, raw, where: str, name: str):
    """A spec block (a mapping) as its dataclass; an unknown key is named with the block."""
    if not isinstance(raw, dict):
        raise SpecError(f"{where}: {name} must be a mapping")
    known = [f.name for f in fields(cls)]
    unknown = sorted(set(raw) - set(known))
    if unknown:
        raise SpecError(f"{where}: {name}.{unknown[0]} is not a known key (known: {known})")
    return cls(**raw)


def _check_interval_keys(rule, where: str, name: str) -> None:
    """The bootstrap keys every interval-carrying block shares."""
    if not (isinstance(rule.confidence, float | int) and 0.5 <= rule.confidence < 1):
        raise SpecError(
            f"{where}: {name}.confidence must be a number in [0.5, 1) (got {rule.confidence!r})"
        )
    if not (isinstance(rule.resamples, int) and rule.resamples >= 100):
        raise SpecError(
            f"{where}: {name}.resamples must be an integer >= 100 (got {rule.resamples!r})"
        )


def _check_promotion(spec: ModelSpec, where: str) -> None:
    rule = spec.promotion
    if rule.metric not in spec.metrics:
        raise SpecError(f"{where}: promotion.metric must be one of {spec.metrics}")
    if not (isinstance(rule.min_improvement, float | int) and rule.min_improvement >= 0):
        raise SpecError(
            f"{where}: promotion.min_improvement must be a number >= 0 "
            f"(got {rule.min_improvement!r})"
        )
    _check_interval_keys(rule, where, "promotion")


def _check_performance(spec: ModelSpec, where: str) -> None:
    if (rule := spec.monitoring.performance) is None:
        return
    name = "monitoring.performance"
    if rule.metric not in spec.metrics:
        raise SpecError(f"{where}: {name}.metric must be one of {spec.metrics}")
    if not 0 <= rule.warn_decay <= rule.error_decay:
        raise SpecError(f"{where}: {name} needs 0 <= warn_decay <= error_decay")
    for key in ("min_labels", "min_positives", "window_days"):
        value = getattr(rule, key)
        if not (isinstance(value, int) and value >= 1):
            raise SpecError(f"{where}: {name}.{key} must be an integer >= 1 (got {value!r})")
    _check_interval_keys(rule, where, name)


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
                raise SpecError(
                    f"{where}: {name} {value!r} is not an identifier (letters, digits and "
                    "underscores, not starting with a digit)"
                )
    for name, value in tables.items():
        parts = value.split(".") if isinstance(value, str) else []
        if len(parts) != 2 or not all(IDENTIFIER.fullmatch(p) for p in parts):
            raise SpecError(
                f"{where}: {name} {value!r} is not a table as schema.name (each part letters, "
                "digits and underscores, not starting with a digit)"
            )


def load_specs(folder: Path | None = None) -> list[ModelSpec]:
    """Every model spec in the folder (default: the configured project's), by name."""
    return [spec_from_yml(p) for p in sorted((folder or model_specs_dir()).glob("*.yml"))]
