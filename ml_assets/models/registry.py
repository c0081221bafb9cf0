"""Moving the champion alias, with a record of every decision on the model versions' tags."""

from datetime import UTC, datetime

from headwater_core.names import (
    CHAMPION,
    HOLDOUT_ARTIFACT,
    REFERENCE_ARTIFACT,
    TAG_COMPLETE,
    TAG_FEATURE_IMPORTANCE,
    TAG_HOLDOUT_ARTIFACT,
    TAG_PREVIOUS_CHAMPION,
    TAG_TEST_METRICS,
    TAG_TRAINED_THROUGH,
)
from ml_assets.models.tracking import MlflowTracking, VersionRef

# What the gate, the champion and monitoring read from a version: registration writes them all
# before TAG_COMPLETE, and TAG_COMPLETE before the `challenger` alias (`mlflow_run`).
REQUIRED_TAGS = (TAG_TEST_METRICS, TAG_TRAINED_THROUGH, TAG_FEATURE_IMPORTANCE)


class IncompleteVersionError(ValueError):
    """A model version whose registration did not finish: no gate or alias may use it."""


def missing_parts(
    tracking: MlflowTracking, model_name: str, version: VersionRef, *, marker: bool = True
) -> list[str]:
    """What a version lacks of a finished registration (empty when it is complete): required
    tags, the held-out twin of a refit model (tag and artifact), the drift reference and, with
    `marker`, TAG_COMPLETE (versions registered before the marker existed have all the rest)."""
    tags = REQUIRED_TAGS + ((TAG_COMPLETE,) if marker else ())
    missing = [tag for tag in tags if not version.tags.get(tag)]
    client = tracking.client()
    refit = client.get_run(version.run_id).data.params.get("refit_on_all_windows") == "True"
    holdout = version.tags.get(TAG_HOLDOUT_ARTIFACT)
    if refit and not holdout:
        missing.append(TAG_HOLDOUT_ARTIFACT)
    artifacts = {"drift reference artifact": REFERENCE_ARTIFACT}
    if refit:
        artifacts["holdout artifact"] = holdout or HOLDOUT_ARTIFACT
    for what, artifact in artifacts.items():
        folder = artifact.rpartition("/")[0] or None
        if artifact not in {a.path for a in client.list_artifacts(version.run_id, folder)}:
            missing.append(f"{what} {artifact}")
    return missing


def require_complete(
    tracking: MlflowTracking, model_name: str, version: VersionRef, *, marker: bool = True
) -> None:
    """Raise IncompleteVersionError, naming the version and what it lacks, unless its
    registration finished (`missing_parts`)."""
    missing = missing_parts(tracking, model_name, version, marker=marker)
    if missing:
        raise IncompleteVersionError(
            f"version {version.version} of {model_name} is half-registered (missing: "
            f"{', '.join(missing)}): the run that registered it did not finish, so it can be "
            "neither judged nor promoted. Train the model again, or roll the alias back to a "
            "complete version."
        )


def record(tracking: MlflowTracking, model_name: str, version: str, tags: dict[str, str]) -> None:
    client = tracking.client()
    for key, value in tags.items():
        client.set_model_version_tag(model_name, version, key, str(value))


def move_champion(
    tracking: MlflowTracking, model_name: str, version: str, action: str, reason: str
) -> str | None:
    """Point `champion` at `version` (a completely registered one); returns the version that
    held it before (None if none).

    A promotion needs the completion marker; a rollback, a deliberate move to a version that
    served before, accepts one registered before the marker existed if nothing else is
    missing."""
    target = tracking.version_of(model_name, version)
    require_complete(tracking, model_name, target, marker=action != "rolled_back")
    previous = tracking.version_by_alias(model_name, CHAMPION)
    tracking.client().set_registered_model_alias(model_name, CHAMPION, version)
    record(
        tracking,
        model_name,
        version,
        {
            f"headwater.{action}_at": datetime.now(UTC).isoformat(timespec="seconds"),
            f"headwater.{action}_reason": reason,
            TAG_PREVIOUS_CHAMPION: previous.version if previous else "",
        },
    )
    return previous.version if previous else None


def rollback(tracking: MlflowTracking, model_name: str, to_version: str, reason: str) -> str | None:
    """Move `champion` back to a named earlier version (it must exist)."""
    return move_champion(tracking, model_name, to_version, "rolled_back", reason)


def history(tracking: MlflowTracking, model_name: str) -> list[dict[str, str]]:
    """Every version with its gate decision and promotion record, newest first."""
    client = tracking.client()
    versions = client.search_model_versions(f"name = '{model_name}'")
    aliases = {}
    for alias, version in (client.get_registered_model(model_name).aliases or {}).items():
        aliases.setdefault(str(version), []).append(alias)
    rows = []
    for v in sorted(versions, key=lambda v: int(v.version), reverse=True):
        rows.append(
            {
                "version": str(v.version),
                "aliases": ",".join(aliases.get(str(v.version), [])),
                **{k: val for k, val in v.tags.items() if k.startswith("headwater.")},
            }
        )
    return rows
