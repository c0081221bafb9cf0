"""How dbt models become Dagster assets: one vocabulary.

A model at `models/<layer>/.../<name>.sql` is the DuckDB table `<layer>.<name>`
(macros/generate_schema_name.sql) and the Dagster asset `<layer>/<name>` in group `<layer>`
(the rule is `headwater_core.names.dbt_key`). dbt sources carry `meta.dagster.asset_key`,
pointing at the raw assets, so the graph runs from raw files to marts with no gap.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import dagster as dg
from dagster_dbt import DagsterDbtTranslator, DagsterDbtTranslatorSettings

from headwater_core.freshness import freshness_policy
from headwater_core.names import PARTITION_COLUMN_METADATA, dbt_key


def dbt_layer(dbt_resource_props: Mapping[str, Any]) -> str | None:
    """The top-level folder under models/ (staging, intermediate, marts, features, ...)."""
    fqn = dbt_resource_props.get("fqn", [])
    if dbt_resource_props.get("resource_type") in ("model", "seed", "snapshot") and len(fqn) > 2:
        return fqn[1]
    return None


class HeadwaterDbtTranslator(DagsterDbtTranslator):
    """dbt folder = DuckDB schema = Dagster group = first part of the asset key."""

    def __init__(self) -> None:
        # dbt's source tests stay plain dbt tests: as Dagster checks on the raw assets they would
        # pull a dbt op into every run that materialises a raw asset. Ingestion enforces the same
        # contract and reports it with the raw assets' own check.
        super().__init__(settings=DagsterDbtTranslatorSettings(enable_code_references=True))

    def get_asset_key(self, dbt_resource_props: Mapping[str, Any]) -> dg.AssetKey:
        layer = dbt_layer(dbt_resource_props)
        if layer is None:  # sources: `meta.dagster.asset_key` points at the raw asset
            return super().get_asset_key(dbt_resource_props)
        return dg.AssetKey(dbt_key(layer, dbt_resource_props["name"]))

    def get_group_name(self, dbt_resource_props: Mapping[str, Any]) -> str | None:
        return dbt_layer(dbt_resource_props) or super().get_group_name(dbt_resource_props)

    def get_asset_spec(self, manifest, unique_id, project) -> dg.AssetSpec:
        """dagster-dbt's spec with `headwater_spec`'s additions, built once per manifest, node and
        project. dagster-dbt memoises its own part the same way, but asks again for every dbt
        result a run reads (each test's model, each model): rebuilding the additions each time
        cost a new day's three dbt steps about half a second (docs/benchmarks.md)."""
        memo = self.__dict__.setdefault("_headwater_specs", {})
        key = (id(manifest), unique_id, id(project))
        # The manifest and project are kept with the spec, so that their ids cannot be others'.
        kept = memo.get(key)
        if kept is None or kept[0] is not manifest or kept[1] is not project:
            spec = super().get_asset_spec(manifest, unique_id, project)
            props = self.get_resource_props(manifest, unique_id)
            kept = memo[key] = (manifest, project, self.headwater_spec(spec, props))
        return kept[2]

    def headwater_spec(self, spec: dg.AssetSpec, props: Mapping[str, Any]) -> dg.AssetSpec:
        """What the platform adds to a node's spec: its freshness policy
        (`meta.headwater_freshness`). Subclasses add theirs here, not in `get_asset_spec`, so
        that they are memoised too."""
        policy = freshness_policy(props.get("meta", {}).get("headwater_freshness"))
        return spec.replace_attributes(freshness_policy=policy) if policy else spec

    def get_metadata(self, dbt_resource_props: Mapping[str, Any]) -> Mapping[str, Any]:
        metadata = dict(super().get_metadata(dbt_resource_props))
        # Daily models name the date column their partition window filters on
        # (`meta.headwater.partition_column`); row counts per partition read it.
        headwater = dbt_resource_props.get("meta", {}).get("headwater", {})
        if "partition_column" in headwater:
            metadata[PARTITION_COLUMN_METADATA] = headwater["partition_column"]
        return metadata


TRANSLATOR = HeadwaterDbtTranslator()
