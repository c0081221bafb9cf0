"""Where the features asset starts its incremental run: the earliest day partition of a mart
materialised since the feature set last was (a corrected old day included)."""

import dagster as dg

from ml_assets.features.assets import earliest_changed_day

FEATURE = dg.AssetKey(["features", "transaction_features"])
LABELS = dg.AssetKey(["features", "fraud_labels"])
FACT = dg.AssetKey(["marts", "fct_transactions"])
DIM = dg.AssetKey(["marts", "dim_customers"])


def _materialized(instance: dg.DagsterInstance, key: dg.AssetKey, partition: str | None = None):
    instance.report_runless_asset_event(dg.AssetMaterialization(key, partition=partition))


def test_the_earliest_day_changed_since_the_last_build():
    instance = dg.DagsterInstance.ephemeral()
    built, upstream = {FEATURE, LABELS}, {FACT, DIM}
    _materialized(instance, FACT, "2025-03-01")
    # a feature table never built: no window (dbt builds it in full)
    assert earliest_changed_day(instance, built, upstream) is None
    _materialized(instance, FEATURE)
    _materialized(instance, LABELS)
    assert earliest_changed_day(instance, built, upstream) is None
    _materialized(instance, FACT, "2025-03-02")
    _materialized(instance, FACT, "2025-01-15")  # a corrected old day
    _materialized(instance, DIM)  # not a day: the tables go on from their last loaded day
    assert earliest_changed_day(instance, built, upstream) == "2025-01-15"
    # one of the feature tables built since, the other not: from the older build on
    _materialized(instance, FEATURE)
    assert earliest_changed_day(instance, built, upstream) == "2025-01-15"
    _materialized(instance, LABELS)
    assert earliest_changed_day(instance, built, upstream) is None
