"""The one module allowed Dagster internals still finds them in the Dagster it was written for."""

from headwater import dagster_internals


def test_the_installed_dagster_is_the_one_the_internals_adapter_was_written_for():
    problems = dagster_internals.compatibility_problems()
    assert not problems, "\n".join(
        ["platform/headwater/dagster_internals.py needs a review:", *problems]
    )


def test_a_missing_internal_is_named(monkeypatch):
    gone = ("dagster._core.test_utils", "no_such_thing")
    monkeypatch.setattr(dagster_internals, "INTERNALS", (*dagster_internals.INTERNALS, gone))
    assert dagster_internals.missing_internals() == ["dagster._core.test_utils.no_such_thing"]
    assert "dagster has no dagster._core.test_utils.no_such_thing any more" in (
        dagster_internals.compatibility_problems()
    )
