"""The landing sensor against a real instance and real landing files."""

import os
import time

import dagster as dg

from data_platform.definitions import defs
from data_platform.warehouse.assets import daily_keys
from headwater_core.resources import LandingZone

SENSOR = defs.get_sensor_def("landing_sensor")
# The warehouse's unpartitioned models (views, dimensions): what a snapshot run builds.
_WAREHOUSE = defs.get_assets_def(dg.AssetKey(["marts", "dim_customers"]))
WAREHOUSE_KEYS = set(_WAREHOUSE.keys) - daily_keys(_WAREHOUSE)


def _tick(instance, landing, cursor):
    context = dg.build_sensor_context(
        instance=instance, cursor=cursor, resources={"landing": LandingZone(path=str(landing))}
    )
    result = SENSOR(context)
    requests = result if isinstance(result, list) else []
    return requests, context.cursor, result


def _age(path, seconds: float) -> None:
    stamp = time.time() - seconds
    os.utime(path, (stamp, stamp))


def test_snapshots_first_then_one_run_per_new_or_changed_day(instance, landing):
    for path in landing.rglob("*.*"):  # delivered an hour ago: settled
        _age(path, 3600)
    requests, cursor, _ = _tick(instance, landing, None)
    # fresh instance: only the snapshot run, which builds the unpartitioned warehouse
    assert len(requests) == 1
    (snapshot,) = requests
    assert snapshot.partition_key is None
    assert {dg.AssetKey(["raw", "customers"]), dg.AssetKey(["raw", "merchants"])} <= set(
        snapshot.asset_selection
    )
    assert WAREHOUSE_KEYS <= set(snapshot.asset_selection)

    # until the warehouse has been built, day files wait (and are not marked as seen)
    requests, cursor, result = _tick(instance, landing, cursor)
    assert requests == [] and "wait for the warehouse" in result.skip_message

    for key in WAREHOUSE_KEYS:  # the snapshot run succeeded
        instance.report_runless_asset_event(dg.AssetMaterialization(key))
    requests, cursor, _ = _tick(instance, landing, cursor)
    days = sorted(p.stem.split("_")[-1] for p in (landing / "transactions").iterdir())
    # Both sources have the same new days: one run for the whole window, with both raw tables
    # and both facts (one dbt invocation builds fct_transactions before fct_chargebacks' tests).
    (run,) = requests
    assert (run.partition_key_range.start, run.partition_key_range.end) == (days[0], days[-1])
    for key in (["raw", "transactions"], ["raw", "chargebacks"]):
        assert dg.AssetKey(key) in run.asset_selection
    for fact in ("fct_transactions", "fct_chargebacks"):
        assert dg.AssetKey(["marts", fact]) in run.asset_selection

    # nothing new: nothing requested
    requests, cursor, result = _tick(instance, landing, cursor)
    assert requests == [] and result.skip_message == "no new landing files"

    # a re-delivered day asks for exactly that day again
    redelivered = sorted((landing / "transactions").iterdir())[2]
    redelivered.touch()
    # modified just now, it may still be written: a later tick asks for it
    requests, cursor, result = _tick(instance, landing, cursor)
    assert requests == [] and "may still be written" in result.skip_message
    assert str(redelivered) in result.skip_message
    _age(redelivered, 60)  # unchanged for a minute
    requests, cursor, _ = _tick(instance, landing, cursor)
    day = redelivered.stem.split("_")[-1]
    assert [(r.partition_key_range.start, r.partition_key_range.end) for r in requests] == [
        (day, day)
    ]
    assert dg.AssetKey(["raw", "chargebacks"]) not in requests[0].asset_selection
