"""The dbt translator's specs: the platform's additions (freshness, the features' automation)
are built once per manifest and node, not again for every dbt result a run reads."""

import copy

import dagster as dg
import pytest

from headwater_core.dbt.project import dbt_project
from headwater_core.dbt.translator import HeadwaterDbtTranslator
from ml_assets.features.assets import FeaturesTranslator

FRESHNESS = {"warn_after_hours": 24, "fail_after_hours": 48}


def _model(name: str, layer: str, depends_on: tuple[str, ...] = (), meta=None) -> dict:
    """The fields of a manifest node that dagster-dbt's spec reads."""
    meta = meta or {}
    return {
        "unique_id": f"model.headwater.{name}",
        "resource_type": "model",
        "name": name,
        "fqn": ["headwater", layer, name],
        "meta": meta,
        "config": {"meta": meta, "tags": [], "materialized": "table"},
        "tags": [],
        "description": "",
        "original_file_path": f"models/{layer}/{name}.sql",
        "path": f"{layer}/{name}.sql",
        "depends_on": {"nodes": list(depends_on)},
        "package_name": "headwater",
        "schema": layer,
        "database": "warehouse",
        "alias": name,
        "columns": {},
    }


@pytest.fixture
def manifest() -> dict:
    nodes = [
        _model("fct_orders", "marts", meta={"headwater_freshness": FRESHNESS}),
        _model("order_features", "features", ("model.headwater.fct_orders",)),
    ]
    return {"nodes": {n["unique_id"]: n for n in nodes}, "sources": {}, "groups": {}}


class Counting(FeaturesTranslator):
    def __init__(self) -> None:
        super().__init__()
        self.built: list[str] = []

    def headwater_spec(self, spec, props):
        self.built.append(props["name"])
        return super().headwater_spec(spec, props)


def test_a_nodes_spec_is_built_once_per_manifest(manifest):
    translator, project = Counting(), dbt_project()
    first = translator.get_asset_spec(manifest, "model.headwater.order_features", project)
    # the upstream mart's spec was built on the way (dagster-dbt resolves deps through here)
    assert sorted(translator.built) == ["fct_orders", "order_features"]
    for _ in range(3):
        again = translator.get_asset_spec(manifest, "model.headwater.order_features", project)
        assert again is first
        translator.get_asset_spec(manifest, "model.headwater.fct_orders", project)
    assert sorted(translator.built) == ["fct_orders", "order_features"]

    # another manifest (a reload) gets specs of its own, even with the same content
    other = copy.deepcopy(manifest)
    translator.get_asset_spec(other, "model.headwater.order_features", project)
    assert sorted(translator.built) == ["fct_orders"] * 2 + ["order_features"] * 2


def test_the_memoised_specs_carry_the_platforms_additions(manifest):
    project = dbt_project()
    features = FeaturesTranslator()
    spec = features.get_asset_spec(manifest, "model.headwater.order_features", project)
    assert spec.key == dg.AssetKey(["features", "order_features"])
    assert spec.automation_condition is not None
    assert [dep.asset_key for dep in spec.deps] == [dg.AssetKey(["marts", "fct_orders"])]

    mart = HeadwaterDbtTranslator().get_asset_spec(manifest, "model.headwater.fct_orders", project)
    assert mart.freshness_policy is not None
    assert mart.freshness_policy.fail_window.to_timedelta().total_seconds() == 48 * 3600
    assert mart.automation_condition is None
