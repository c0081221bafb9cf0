"""The `monitoring.drift` block of a model spec: what a drift check compares and how. No Dagster.

monitoring:
  drift:
    warn_share: 0.05          # importance share of drifted features that warns
    error_share: 0.10         # ... that fails at ERROR (the model retrains)
    sample_rows: 5000         # rows compared per side at most
    reference_days: 14        # `reference: training` uses the newest days of training
    window: {partitions: 1, min_rows: 200, max_partitions: 28}
    reference: training       # or {same_period: week | year}
    min_values: 50            # a feature with fewer non-null values on a side: not judged
    categories: {max_levels: 20, top_k: 10}
    methods: {amount: wasserstein, merchant: {method: psi, threshold: 0.2}}
    exempt: [hour_of_day, day_of_week]
    figures: drifted          # the report's per-column figures: drifted columns only, or `all`
"""

from dataclasses import dataclass, field
from typing import Any

# Evidently 0.7 stat tests a spec may name, with the threshold used when the spec gives none
# (Evidently's own defaults: distances drift at >= 0.1, p-values at < 0.05).
METHODS = {
    "wasserstein": 0.1,
    "ks": 0.05,
    "jensenshannon": 0.1,
    "chisquare": 0.05,
    "psi": 0.1,
    "hellinger": 0.1,
    "kl_div": 0.1,
    "TVD": 0.05,
    "z": 0.05,
    "mannw": 0.05,
    "anderson": 0.05,
    "ed": 0.1,
}
# How Evidently names them in its report (it records the short name when one is asked for).
METHOD_NAMES = {
    "wasserstein": "Wasserstein distance (normed)",
    "ks": "K-S p_value",
    "jensenshannon": "Jensen-Shannon distance",
    "chisquare": "chi-square p_value",
    "psi": "PSI",
    "hellinger": "Hellinger distance",
    "kl_div": "Kullback-Leibler divergence",
    "TVD": "Total-Variation-Distance",
    "z": "Z-test p_value",
    "mannw": "Mann-Whitney U-rank test",
    "anderson": "Anderson-Darling",
    "ed": "Energy-distance",
}
# A same-period reference lies this many days earlier: a year is 52 weeks so weekdays line up.
CYCLES = {"week": 7, "year": 364}


@dataclass(frozen=True)
class DriftSpec:
    """When a scored window counts as drifted: the share of the model's importance (gain)
    carried by the features whose distribution moved away from the reference. At `warn_share`
    the drift check warns; at `error_share` it fails and the model retrains."""

    warn_share: float = 0.05
    error_share: float = 0.10
    sample_rows: int = 5000
    """Rows compared per side at most (Evidently slows badly on large frames)."""
    reference_days: int = 14
    """`reference: training`: the newest this many days of the version's training window."""
    window_partitions: int = 1
    """The current window: this many partitions up to the measured one..."""
    min_rows: int = 200
    """...grown back one partition at a time until it holds this many rows. A window (or a
    reference) with fewer rows is not judged: the check says "not enough data"."""
    max_partitions: int = 28
    """The window grows back over at most this many partitions."""
    same_period_days: int | None = None
    """None: the reference is the training sample. Else the same window this many days earlier
    (`reference: {same_period: week | year}`), read from the feature set."""
    min_values: int = 50
    """A feature with fewer non-null values on a side is not judged ("not enough data")."""
    max_levels: int = 20
    """A categorical feature with more reference levels is high-cardinality: compared on its
    `top_k` most frequent reference levels plus "other"."""
    top_k: int = 10
    methods: dict[str, str] = field(default_factory=dict)
    """Per feature: the Evidently stat test (a key of METHODS) instead of the default."""
    thresholds: dict[str, float] = field(default_factory=dict)
    exempt: tuple[str, ...] = ()
    """Features not compared (calendar and cyclical ones: their mix follows the window)."""
    figures: str = "drifted"
    """Which columns the HTML report draws figures for (distribution and drift over the window):
    `drifted`, the columns Evidently found drifted (every column keeps its verdict line), or
    `all`. Drawing costs about 25 ms a column, in every scheduled drift run."""

    @property
    def reference_label(self) -> str:
        if self.same_period_days is None:
            return f"the newest {self.reference_days} days of the training window"
        return f"the same dates {self.same_period_days} days earlier"


_KEYS = {"warn_share", "error_share", "sample_rows", "reference_days", "window", "reference"}
_KEYS |= {"min_values", "categories", "methods", "exempt", "figures"}
FIGURES = ("drifted", "all")


def parse_drift(raw: Any, where: str, features: tuple[str, ...]) -> DriftSpec:
    """The spec's `monitoring.drift` mapping as a DriftSpec; a bad value is a ValueError naming
    the spec file and the field."""
    raw = raw or {}
    field_ = "monitoring.drift"
    _mapping(raw, where, field_)
    unknown = sorted(set(raw) - _KEYS)
    if unknown:
        raise ValueError(f"{where}: {field_} has unknown key(s) {unknown}")
    window = raw.get("window") or {}
    _mapping(window, where, f"{field_}.window")
    unknown = sorted(set(window) - {"partitions", "min_rows", "max_partitions"})
    if unknown:
        raise ValueError(f"{where}: {field_}.window has unknown key(s) {unknown}")
    categories = raw.get("categories") or {}
    _mapping(categories, where, f"{field_}.categories")
    methods, thresholds = _methods(raw.get("methods") or {}, where, features)
    exempt = raw.get("exempt") or []
    if not isinstance(exempt, list) or not set(exempt) <= set(features):
        raise ValueError(f"{where}: {field_}.exempt must list features of the spec, got {exempt}")
    figures = raw.get("figures", "drifted")
    if figures not in FIGURES:
        raise ValueError(
            f"{where}: {field_}.figures must be one of {list(FIGURES)}, got {figures!r}"
        )
    ints = {
        "sample_rows": raw.get("sample_rows", 5000),
        "reference_days": raw.get("reference_days", 14),
        "window.partitions": window.get("partitions", 1),
        "window.min_rows": window.get("min_rows", 200),
        "window.max_partitions": window.get("max_partitions", 28),
        "min_values": raw.get("min_values", 50),
        "categories.max_levels": categories.get("max_levels", 20),
        "categories.top_k": categories.get("top_k", 10),
    }
    for name, value in ints.items():
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{where}: {field_}.{name} must be a whole number >= 1, got {value!r}")
    if ints["window.max_partitions"] < ints["window.partitions"]:
        raise ValueError(f"{where}: {field_}.window.max_partitions must be >= partitions")
    spec = DriftSpec(
        warn_share=_share(raw.get("warn_share", 0.05), where, f"{field_}.warn_share"),
        error_share=_share(raw.get("error_share", 0.10), where, f"{field_}.error_share"),
        sample_rows=ints["sample_rows"],
        reference_days=ints["reference_days"],
        window_partitions=ints["window.partitions"],
        min_rows=ints["window.min_rows"],
        max_partitions=ints["window.max_partitions"],
        same_period_days=_reference(raw.get("reference", "training"), where),
        min_values=ints["min_values"],
        max_levels=ints["categories.max_levels"],
        top_k=ints["categories.top_k"],
        methods=methods,
        thresholds=thresholds,
        exempt=tuple(exempt),
        figures=figures,
    )
    if not 0 < spec.warn_share <= spec.error_share <= 1:
        raise ValueError(f"{where}: {field_} needs 0 < warn_share <= error_share <= 1")
    return spec


def _mapping(value: Any, where: str, name: str) -> None:
    if not isinstance(value, dict):
        raise ValueError(f"{where}: {name} must be a mapping, got {value!r}")


def _share(value: Any, where: str, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{where}: {name} must be a number, got {value!r}")
    return float(value)


def _reference(value: Any, where: str) -> int | None:
    if value == "training":
        return None
    cycle = value.get("same_period") if isinstance(value, dict) and len(value) == 1 else None
    if cycle not in CYCLES:
        raise ValueError(
            f"{where}: monitoring.drift.reference must be `training` or "
            f"{{same_period: {' | '.join(CYCLES)}}}, got {value!r}"
        )
    return CYCLES[cycle]


def _methods(
    raw: Any, where: str, features: tuple[str, ...]
) -> tuple[dict[str, str], dict[str, float]]:
    """`methods:` maps a feature to a method name, or to `{method, threshold}`."""
    _mapping(raw, where, "monitoring.drift.methods")
    methods, thresholds = {}, {}
    for feature, value in raw.items():
        name = f"monitoring.drift.methods.{feature}"
        if feature not in features:
            raise ValueError(f"{where}: {name}: {feature!r} is not a feature of the spec")
        setting = value if isinstance(value, dict) else {"method": value}
        if set(setting) - {"method", "threshold"} or setting.get("method") not in METHODS:
            raise ValueError(
                f"{where}: {name} must be one of {sorted(METHODS)} or {{method, threshold}}, "
                f"got {value!r}"
            )
        methods[feature] = setting["method"]
        threshold = setting.get("threshold", METHODS[setting["method"]])
        thresholds[feature] = _share(threshold, where, f"{name}.threshold")
    return methods, thresholds
