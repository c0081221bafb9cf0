"""Moving the champion alias, with a record of every decision on the model versions' tags."""

from datetime import UTC, datetime

from headwater_core.names import CHAMPION, TAG_PREVIOUS_CHAMPION
from ml_assets.models.tracking import MlflowTracking


def record(tracking: MlflowTracking, model_name: str, version: str, tags: dict[str, str]) -> None:
    client = tracking.client()
    for key, value in tags.items():
        client.set_model_version_tag(model_name, version, key, str(value))


def move_champion(
    tracking: MlflowTracking, model_name: str, version: str, action: str, reason: str
) -> str | None:
    """Point `champion` at `version`; returns the version that held it before (None if none)."""
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
    tracking.client().get_model_version(model_name, to_version)  # raises if unknown
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
