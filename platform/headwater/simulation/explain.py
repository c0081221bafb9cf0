"""What a tick of the automation did and why, in the words of the simulation's table."""

import dagster as dg

from headwater_core import names

RETRAIN = "retrain"
# The roles a run's assets play in the loop, in the order a day's line names them.
ROLES = (names.FEATURES, RETRAIN, names.SCORES, *names.MONITORING_ROLES)
# Roles measured per day: their line names the day.
DAILY_ROLES = (names.SCORES, *names.MONITORING_ROLES)


def role(key: dg.AssetKey) -> str:
    """What an asset is in the loop: features, retrain, scores, drift or performance."""
    if key.path[0] == names.MODELS:
        return RETRAIN
    if key.path[0] == names.MONITORING:
        return key.path[-1]
    return key.path[0]


def _is_training_set(key: dg.AssetKey) -> bool:
    return key.path[0] == names.MODELS and (
        tuple(key.path) == names.model_keys(key.path[1])["training_set"]
    )


def describe(keys, reasons: dict, partition: str | None) -> str:
    """'features (marts updated); retrain (weekly backstop)' for one run's assets."""
    parts = []
    for name in ROLES:
        of_role = [k for k in keys if role(k) == name]
        if not of_role:
            continue
        first = min(of_role, key=lambda k: (not _is_training_set(k), str(k)))
        why = reasons.get(first, "")
        day = f" {partition}" if partition and name in DAILY_ROLES else ""
        parts.append(f"{name}{day}" + (f" ({why})" if why else ""))
    return "; ".join(parts)


# Labels of the sub-conditions worth naming when saying why automation asked for something.
_REASONS = (
    "no model yet",
    "model failed its freshness policy",
    "weekly backstop",
    "features updated",
    "a champion for unscored days",
    "scores updated",
    "any_deps_updated",
)
_PLAIN = {"any_deps_updated": "marts updated"}


def why(node) -> str:
    """The named sub-conditions that were true, from the evaluation tree (what the UI shows)."""
    found: list[str] = []

    def walk(n) -> None:
        label = n.condition.get_label() or ""
        if n.true_subset.size and any(label.startswith(r) for r in _REASONS):
            found.append(label)
            return
        for child in n.child_results:
            walk(child)

    walk(node)
    return ", ".join(dict.fromkeys(_PLAIN.get(f, f) for f in found))


def gate_outcome(result: dg.ExecuteInProcessResult, champion: dg.AssetKey) -> list[str]:
    """What a run's promotion gate decided: the evaluation's check, and a champion
    materialisation that moved the alias."""
    lines = []
    for evaluation in result.get_asset_check_evaluations():
        if evaluation.check_name == names.GATE_CHECK:
            verdict = "passed" if evaluation.passed else "refused"
            lines.append(f"gate: {verdict}: {evaluation.description}")
    for event in result.get_asset_materialization_events():
        mat = event.event_specific_data.materialization
        meta = {k: v.value for k, v in mat.metadata.items()}
        if mat.asset_key == champion and meta.get("promoted"):  # a refusal records the kept one
            lines.append(
                f"gate: promoted v{meta['champion_version']} "
                f"(was v{meta['previous_champion_version']})"
            )
    return lines
