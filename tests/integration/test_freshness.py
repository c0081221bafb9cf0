"""Freshness policies come from declarations: the raw contract, dbt meta and model specs."""

from datetime import timedelta

import dagster as dg
import pytest

from data_platform.definitions import defs as data_defs
from headwater_core.freshness import freshness_policy
from ml_assets.definitions import defs as ml_defs


def test_a_declaration_becomes_a_time_window_policy():
    policy = freshness_policy({"warn_after_hours": 24, "fail_after_hours": 48})
    assert policy.fail_window.to_timedelta() == timedelta(hours=48)
    assert policy.warn_window.to_timedelta() == timedelta(hours=24)
    assert freshness_policy(None) is None


@pytest.mark.parametrize(
    "declared, message",
    [
        ({"warn_after_hours": 5}, "needs fail_after_hours"),
        ({"warn_after_hours": 50, "fail_after_hours": 48}, "must be below"),
    ],
)
def test_inconsistent_declarations_are_refused(declared, message):
    with pytest.raises(ValueError, match=message):
        freshness_policy(declared)


def _policy(defs: dg.Definitions, key: str):
    return defs.resolve_asset_graph().get(dg.AssetKey(key.split("/"))).freshness_policy


@pytest.mark.parametrize(
    "defs, key, fail_hours",
    [
        (data_defs, "raw/transactions", 50),  # from the sources yml (raw contract)
        (data_defs, "raw/customers", 50),
        (data_defs, "marts/fct_transactions", 50),  # from dbt meta, read by the translator
        (data_defs, "marts/dim_customers", 50),
        (ml_defs, "features/transaction_features", 50),
        (ml_defs, "models/fraud_classifier/model", 168),  # from the model spec
        (ml_defs, "models/customer_spend_30d/model", 168),
    ],
)
def test_policies_are_on_the_assets(defs, key, fail_hours):
    policy = _policy(defs, key)
    assert policy is not None, key
    assert policy.fail_window.to_timedelta() == timedelta(hours=fail_hours)


def test_a_models_own_meta_does_not_drop_the_folder_policy():
    # fct_transactions sets meta.headwater itself; the folder's policy is a separate key
    assert _policy(data_defs, "marts/fct_transactions") == _policy(data_defs, "marts/dim_customers")
