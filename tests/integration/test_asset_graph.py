"""The asset graph: both code locations load, join into one graph, and match the snapshot.

A change to keys, groups, deps or checks shows up as a diff of tests/snapshots/asset_graph.json
in review. After an intended change, refresh it with:

    HEADWATER_UPDATE_SNAPSHOTS=1 python3 dev.py test tests/integration/test_asset_graph.py
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest

from data_platform.definitions import defs as data_defs
from ml_assets.definitions import defs as ml_defs
from tests.conftest import copy_project

ROOT = Path(__file__).resolve().parents[2]
SNAPSHOT = ROOT / "tests" / "snapshots" / "asset_graph.json"


def _graph_snapshot(*all_defs: dg.Definitions) -> dict:
    snapshot: dict = {}
    for location, defs in zip(("data_platform", "ml_assets"), all_defs):
        graph = defs.resolve_asset_graph()
        for key in sorted(graph.get_all_asset_keys()):
            node = graph.get(key)
            if not node.is_materializable:
                continue
            snapshot[key.to_user_string()] = {
                "location": location,
                "group": node.group_name,
                "deps": sorted(k.to_user_string() for k in node.parent_keys),
                "checks": sorted(c.name for c in node.check_keys),
                "kinds": sorted(node.kinds),
                "partitioned": node.partitions_def is not None,
                "freshness_fail_hours": (
                    node.freshness_policy.fail_window.to_timedelta().total_seconds() / 3600
                    if node.freshness_policy is not None
                    else None
                ),
                # what moves it unattended (the landing sensor moves raw and the daily facts)
                "automation": (
                    node.automation_condition.get_label()
                    if node.automation_condition is not None
                    else None
                ),
            }
    return snapshot


def test_asset_graph_matches_snapshot():
    current = _graph_snapshot(data_defs, ml_defs)
    if os.environ.get("HEADWATER_UPDATE_SNAPSHOTS"):
        SNAPSHOT.parent.mkdir(exist_ok=True)
        SNAPSHOT.write_text(json.dumps(current, indent=2, sort_keys=True) + "\n")
    expected = json.loads(SNAPSHOT.read_text())
    assert current == expected, (
        "the asset graph changed; if intended, refresh tests/snapshots/asset_graph.json "
        "(see this module's docstring)"
    )


def test_two_locations_form_one_unbroken_graph():
    data_graph = data_defs.resolve_asset_graph()
    ml_graph = ml_defs.resolve_asset_graph()
    data_keys = {k for k in data_graph.get_all_asset_keys() if data_graph.get(k).is_materializable}
    ml_keys = {k for k in ml_graph.get_all_asset_keys() if ml_graph.get(k).is_materializable}
    assert data_keys and ml_keys and not data_keys & ml_keys, "an asset defined twice"
    # every dependency of the ML location is an asset of the data location, by key
    ml_external = {
        parent
        for key in ml_keys
        for parent in ml_graph.get(key).parent_keys
        if parent not in ml_keys
    }
    assert ml_external, "the ML location should read the marts"
    assert ml_external <= data_keys, ml_external - data_keys
    # and nothing in either location depends on a key that no location defines
    for graph, own in ((data_graph, data_keys), (ml_graph, ml_keys)):
        for key in own:
            assert graph.get(key).parent_keys <= data_keys | ml_keys


def test_the_graph_runs_raw_to_features_without_gaps():
    graph = {**_graph_snapshot(data_defs, ml_defs)}

    def upstream(key: str) -> set[str]:
        seen, todo = set(), [key]
        while todo:
            for dep in graph[todo.pop()]["deps"]:
                if dep not in seen:
                    seen.add(dep)
                    todo.append(dep)
        return seen

    assert {"raw/transactions", "raw/customers", "raw/merchants"} <= upstream(
        "features/transaction_features"
    )
    assert "raw/chargebacks" in upstream("marts/fct_chargebacks")


def test_groups_follow_the_dbt_folders_and_every_asset_is_described():
    for defs in (data_defs, ml_defs):
        graph = defs.resolve_asset_graph()
        for key in graph.get_all_asset_keys():
            node = graph.get(key)
            if not node.is_materializable:
                continue
            assert node.group_name == key.path[0], key
            assert node.description and node.description.strip(), f"{key} has no description"
            assert node.owners, f"{key} has no owner"
            assert node.kinds & {"dbt", "python"}, (key, node.kinds)
            # and what it computes with or stores in
            assert node.kinds & {"duckdb", "mlflow", "lightgbm", "parquet"}, (key, node.kinds)


# Slow tier: 28 s on the slowest machine of this kind yet (the default tier's 15 minutes).
@pytest.mark.slow
def test_an_analysts_new_model_appears_without_python_changes(tmp_path):
    """Copy the project, add a SQL model and its yml, load the location fresh: it is there."""
    copy_project(tmp_path)
    (tmp_path / "dbt_project" / "models" / "marts" / "fct_customer_daily_spend.sql").write_text(
        "select customer_id, transaction_date, sum(amount) as spend\n"
        "from {{ ref('fct_transactions') }}\ngroup by 1, 2\n"
    )
    (tmp_path / "dbt_project" / "models" / "marts" / "_fct_customer_daily_spend.yml").write_text(
        "models:\n  - name: fct_customer_daily_spend\n"
        "    description: Spend per customer and day.\n"
    )
    code = (
        "from data_platform.definitions import defs\n"
        "import data_platform\n"
        f"assert data_platform.__file__.startswith({str(tmp_path)!r})\n"
        "g = defs.resolve_asset_graph()\n"
        "k = [k for k in g.get_all_asset_keys() if k.path[-1] == 'fct_customer_daily_spend'][0]\n"
        "print(k.to_user_string(), g.get(k).group_name, "
        "sorted(p.to_user_string() for p in g.get(k).parent_keys))\n"
    )
    out = subprocess.run(
        [sys.executable, "-W", "ignore", "-c", code],
        env={**os.environ, "PYTHONPATH": f"{tmp_path / 'platform'}:{tmp_path}"},
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.split() == [
        "marts/fct_customer_daily_spend",
        "marts",
        "['marts/fct_transactions']",
    ]


@pytest.mark.parametrize("module", ["data_platform.definitions", "ml_assets.definitions"])
def test_each_code_location_loads_without_heavy_ml_libraries(module):
    code = (
        f"import sys, {module}\n"
        f"{module}.defs.resolve_asset_graph()\n"
        "heavy = [m for m in ('mlflow', 'lightgbm', 'evidently') if m in sys.modules]\n"
        "print(','.join(heavy))\n"
    )
    out = subprocess.run(
        [sys.executable, "-W", "ignore", "-c", code], capture_output=True, text=True, timeout=300
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.strip() == ""
