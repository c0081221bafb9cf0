"""A bad partition does not sink the others (issue 14, item 5), through the real raw asset, the
real dbt warehouse and `headwater materialize`: a file that cannot be loaded fails its own
partition, which the run names; the other partitions land; re-running the failed one works. And
a raw partition whose blocking check failed stops the marts built from it, even when the run
leaves out the staging view between them."""

import csv
import os
import shutil
import time

import dagster as dg

from data_platform.definitions import defs
from data_platform.warehouse.assets import daily_keys
from headwater.headless import materialize_range
from tests.conftest import query

TRANSACTIONS = dg.AssetKey(["raw", "transactions"])
FCT_TRANSACTIONS = dg.AssetKey(["marts", "fct_transactions"])
AN_HOUR_AGO = time.time() - 3600


def _data_assets() -> list[dg.AssetsDefinition]:
    return [a for a in defs.assets if isinstance(a, dg.AssetsDefinition)]


def _warehouse() -> dg.AssetsDefinition:
    """The warehouse's one dbt op: views, dimensions and the daily facts."""
    (warehouse,) = [a for a in _data_assets() if a.node_def.name == "warehouse"]
    return warehouse


def _materialize(instance, resources, selection, first=None, last=None):
    tags = {}
    if first:
        tags = {
            "dagster/asset_partition_range_start": first,
            "dagster/asset_partition_range_end": last or first,
        }
    return dg.materialize(
        _data_assets(),
        selection=selection,
        instance=instance,
        resources=resources,
        tags=tags,
        raise_on_error=False,
    )


def _csv_days(landing) -> list:
    return sorted((landing / "transactions").glob("*.csv"))


def _day(path) -> str:
    return path.stem.split("_")[-1]


def _failures(result) -> list:
    return [
        e.event_specific_data for e in result.all_events if e.event_type_value == "STEP_FAILURE"
    ]


def _loaded_days(warehouse) -> set[str]:
    rows = query(warehouse, "select distinct _partition_date::varchar from raw.transactions")
    return {r[0] for r in rows}


def _mart_rows(warehouse) -> int:
    """The rows of marts.fct_transactions (0 while it was never built)."""
    (exists,) = query(
        warehouse,
        "select count(*) from information_schema.tables "
        "where table_schema = 'marts' and table_name = 'fct_transactions'",
    )[0]
    return query(warehouse, "select count(*) from marts.fct_transactions")[0][0] if exists else 0


def _unreadable(path) -> None:
    path.write_text("transaction_id;customer_id;amount\n1;2;3\n")  # wrong delimiter
    os.utime(path, (AN_HOUR_AGO, AN_HOUR_AGO))


def test_an_unreadable_file_fails_its_day_alone_and_the_day_reruns(
    instance, resources, warehouse, landing, demo_landing
):
    days = sorted(p for p in (landing / "transactions").iterdir())[:5]
    keys = [_day(p) for p in days]
    bad = _csv_days(landing)[1]
    _unreadable(bad)

    result = _materialize(instance, resources, [TRANSACTIONS], keys[0], keys[-1])
    assert not result.success
    (failure,) = _failures(result)
    assert f"1 partition(s) failed ({_day(bad)})" in failure.error.message
    assert str(bad) in failure.error.message
    assert failure.user_failure_data.metadata["failed_partitions"].value == [_day(bad)]
    # the other days landed, in the warehouse and as materialised partitions
    assert _loaded_days(warehouse) == set(keys) - {_day(bad)}
    assert instance.get_materialized_partitions(TRANSACTIONS) == set(keys) - {_day(bad)}
    mat = instance.get_latest_materialization_event(TRANSACTIONS).asset_materialization
    metadata = {k: v.value for k, v in mat.metadata.items()}
    assert metadata["rows_read"] == metadata["rows_loaded"] + metadata["rows_rejected"] > 0

    # the file fixed, re-running only the failed day works
    shutil.copyfile(demo_landing / "transactions" / bad.name, bad)
    os.utime(bad, (AN_HOUR_AGO, AN_HOUR_AGO))
    assert _materialize(instance, resources, [TRANSACTIONS], _day(bad)).success
    assert _loaded_days(warehouse) == set(keys)
    assert instance.get_materialized_partitions(TRANSACTIONS) == set(keys)


def test_headless_names_the_failed_day_and_loads_the_others(
    instance, resources, warehouse, landing
):
    days = sorted(p for p in (landing / "transactions").iterdir())[:4]
    keys = [_day(p) for p in days]
    bad = _csv_days(landing)[0]
    _unreadable(bad)
    from ml_assets.definitions import defs as ml_defs

    result = materialize_range(
        keys[0],
        keys[-1],
        instance=instance,
        resources={**ml_defs.resources, **resources},
        selection=dg.AssetSelection.assets(TRANSACTIONS),
    )
    assert not result.success
    assert f"partition(s) failed ({_day(bad)})" in result.failure
    assert _loaded_days(warehouse) == set(keys) - {_day(bad)}


def _break_rows(path, n: int) -> None:
    with path.open(newline="") as f:
        rows = list(csv.reader(f))
    amount = rows[0].index("amount")
    for row in rows[1 : 1 + n]:
        row[amount] = "twelve"
    with path.open("w", newline="") as f:
        csv.writer(f).writerows(rows)
    os.utime(path, (AN_HOUR_AGO, AN_HOUR_AGO))


def test_a_failed_blocking_check_stops_the_mart_without_the_staging_view(
    instance, resources, warehouse, landing, demo_landing
):
    # the warehouse built once: snapshots, staging views, dimensions
    snapshots = [
        k for a in _data_assets() if not a.partitions_def for k in a.keys if k.path[0] == "raw"
    ]
    unpartitioned = sorted(_warehouse().keys - daily_keys(_warehouse()))
    assert _materialize(instance, resources, snapshots + unpartitioned).success

    path = _csv_days(landing)[0]
    day = _day(path)
    _break_rows(path, 30)  # over the 1% threshold: the day's load is refused
    result = _materialize(instance, resources, [TRANSACTIONS, FCT_TRANSACTIONS], day)
    assert not result.success
    checks = result.get_asset_check_evaluations()
    assert checks and not checks[0].passed
    assert _mart_rows(warehouse) == 0
    assert not instance.get_materialized_partitions(FCT_TRANSACTIONS)

    # the mart alone, the raw day not re-run: refused, naming the day
    result = _materialize(instance, resources, [FCT_TRANSACTIONS], day)
    assert not result.success
    (failure,) = _failures(result)
    assert "refused or failed" in failure.error.message
    assert f"raw.transactions {day}: refused" in failure.error.message
    assert failure.user_failure_data.metadata["refused_partitions"].value == [
        {"table": "raw.transactions", "partition": day, "status": "refused"}
    ]
    assert _mart_rows(warehouse) == 0
    assert not instance.get_materialized_partitions(FCT_TRANSACTIONS)

    # a good re-delivery of the day: the raw day loads, and then the marts build (all the daily
    # ones: fct_chargebacks' relationship test reads fct_transactions)
    shutil.copyfile(demo_landing / "transactions" / path.name, path)
    os.utime(path, (AN_HOUR_AGO, AN_HOUR_AGO))
    daily = sorted(daily_keys(_warehouse()))
    selection = [TRANSACTIONS, dg.AssetKey(["raw", "chargebacks"]), *daily]
    assert _materialize(instance, resources, selection, day).success
    assert _mart_rows(warehouse) > 0
    assert instance.get_materialized_partitions(FCT_TRANSACTIONS) == {day}


def test_a_new_days_warehouse_is_one_step_and_one_dbt_invocation(
    instance, resources, warehouse, landing
):
    """Raw files, views, dims and the day's facts in one run: the warehouse's models are built by
    one step and one dbt invocation; the facts carry the day, the views and dims no partition."""
    day = _day(_csv_days(landing)[0])
    raw = [k for a in _data_assets() for k in a.keys if k.path[0] == "raw"]
    result = _materialize(instance, resources, [*raw, *_warehouse().keys], day)
    assert result.success
    built = [
        e.event_specific_data.materialization
        for e in result.all_events
        if e.event_type_value == "ASSET_MATERIALIZATION" and e.step_key == "warehouse"
    ]
    assert {m.asset_key for m in built} == set(_warehouse().keys)
    assert len({m.metadata["invocation_id"].value for m in built}) == 1, "one dbt invocation"
    partitions = {m.asset_key: m.partition for m in built}
    assert {k for k, p in partitions.items() if p == day} == daily_keys(_warehouse())
    assert {k for k, p in partitions.items() if p is None} == (
        _warehouse().keys - daily_keys(_warehouse())
    )
    # the facts' relationships tests ran, against the dims built in the same invocation
    checks = result.get_asset_check_evaluations()
    relationships = [c for c in checks if c.check_name.startswith("relationships_")]
    assert relationships and all(c.passed for c in relationships)
    assert _mart_rows(warehouse) > 0
