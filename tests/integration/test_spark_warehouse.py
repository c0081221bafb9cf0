"""The dbt project on Spark: the same models, built on Spark SQL through dbt-spark's `session`
method (a local Spark in this process), give the same tables as the DuckDB build.

The demo world is ingested into DuckDB under the contract, exported to Parquet
(`data_platform.raw.parquet_export`), and built twice with `dbt build`: `--target local`
(DuckDB) and `--target spark` (profiles.yml), which differ only by their target. Every model
and raw source is then compared: same columns, same row count, the same rows (floats within
1e-6, timestamps as UTC wall-clock time). Slow tier: 10 to 18 minutes on 2 busy cores, most of
it Spark's per-query cost over 110 data tests and 16 models (docs/scale-out.md has the figures).
"""

from __future__ import annotations

import json
import math
import os
import shutil
import time
from datetime import date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import duckdb
import pytest

from headwater_core.config import dbt_project_dir, environ
from headwater_core.dbt.in_process import _close_duckdb
from tests.conftest import DEMO_FIRST_DAY, DEMO_LAST_DAY
from tests.processes import descendants, kill_all

pytestmark = pytest.mark.slow

LAYERS = ("staging", "intermediate", "marts", "features")
REL_TOL = ABS_TOL = 1e-6


def _dbt_build(target: str, target_path: Path, env: dict[str, str]) -> float:
    """`dbt build` of every model and data test on `target`, in this process; its seconds."""
    from dbt.cli.main import dbtRunner

    project = dbt_project_dir()
    started = time.perf_counter()
    with environ(env):
        result = dbtRunner().invoke(
            [
                "build",
                "--target",
                target,
                "--project-dir",
                str(project),
                "--profiles-dir",
                str(project),
                "--target-path",
                str(target_path),
                "--exclude-resource-type",
                "unit_test",
                "--quiet",
            ]
        )
    seconds = time.perf_counter() - started
    failed = [
        f"{r.node.unique_id}: {r.status} {r.message}"
        for r in (result.result or [])
        if str(r.status) not in ("success", "pass")
    ]
    assert result.success, failed or result.exception
    return seconds


def _alive(pid: int) -> bool:
    """Whether `pid` still runs: a zombie (spark-class's short-lived shells, exited and not yet
    reaped by init) has nothing left to stop."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            state = stat.read().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def _stop_spark() -> dict[int, str]:
    """Stop the Spark session dbt-spark started in this process, and its JVM, for sure: the
    context stopped, the gateway shut, the JVM's stdin closed (it exits on EOF), then SIGKILL
    to whatever of it is left. Returns what had to be killed."""
    from pyspark import SparkContext
    from pyspark.sql import SparkSession

    gateway = SparkContext._gateway
    proc = getattr(gateway, "proc", None)
    jvm_tree = {}
    if proc is not None:
        jvm_tree = {
            proc.pid: "spark jvm",
            **{p: d.cmdline for p, d in descendants(proc.pid).items()},
        }
    try:
        if SparkContext._active_spark_context is not None:
            SparkContext._active_spark_context.stop()
    finally:
        if gateway is not None:
            gateway.shutdown()
        if proc is not None:
            if proc.stdin:
                proc.stdin.close()
            try:
                proc.wait(timeout=60)
            except Exception:
                pass
        left = {pid: cmd for pid, cmd in jvm_tree.items() if _alive(pid)}
        kill_all(list(left))
        if proc is not None:
            proc.poll()
        SparkContext._gateway = None
        SparkContext._jvm = None
        SparkSession._instantiatedSession = None
        SparkSession._activeSession = None
    return left


@pytest.fixture(scope="module")
def builds(tmp_path_factory, demo_landing):
    """The demo world built on DuckDB and on Spark: (duckdb file, spark session, manifest,
    seconds per build). The Spark session and its JVM are stopped when the module ends,
    whatever happened."""
    from bench.floor import ingest
    from data_platform.raw.contract import load_contracts
    from data_platform.raw.parquet_export import export_raw_parquet

    if shutil.which("java") is None and not os.environ.get("JAVA_HOME"):
        pytest.fail(
            "Spark needs Java 17 on PATH or JAVA_HOME (apt-get install openjdk-17-jre-headless)"
        )
    tmp = tmp_path_factory.mktemp("spark")
    duckdb_path = tmp / "warehouse.duckdb"
    parquet = tmp / "raw_parquet"
    con = duckdb.connect(str(duckdb_path))
    try:
        first, last = date.fromisoformat(DEMO_FIRST_DAY), date.fromisoformat(DEMO_LAST_DAY)
        days = [(first + timedelta(days=i)).isoformat() for i in range((last - first).days + 1)]
        ingest(con, demo_landing, days)
        exported = export_raw_parquet(con, load_contracts(dbt_project_dir()).values(), parquet)
    finally:
        con.close()
    assert exported["raw.transactions"] > 3_000

    seconds = {
        "duckdb": _dbt_build(
            "local", tmp / "target-duckdb", {"HEADWATER_DUCKDB_PATH": str(duckdb_path)}
        )
    }
    _close_duckdb()  # dbt-duckdb keeps the file open in this process; the comparison reads it
    spark_env = {
        "HEADWATER_RAW_PARQUET_DIR": str(parquet),
        "HEADWATER_SPARK_WAREHOUSE": str(tmp / "spark-warehouse"),
        "HEADWATER_SPARK_CATALOG": "in-memory",
        # a few thousand rows: one shuffle partition per core, not 200
        "HEADWATER_SPARK_SHUFFLE_PARTITIONS": "2",
    }
    try:
        seconds["spark"] = _dbt_build("spark", tmp / "target-spark", spark_env)
        from pyspark.sql import SparkSession

        spark = SparkSession.builder.getOrCreate()  # the session dbt-spark started
        manifest = json.loads((tmp / "target-duckdb" / "manifest.json").read_text())
        print(f"\ndbt build of the demo world: {seconds}")
        yield duckdb_path, spark, manifest, seconds
    finally:
        killed = _stop_spark()
        assert not killed, f"the Spark JVM had to be killed: {killed}"


def _relations(manifest: dict) -> list[str]:
    """Every table and view the build made, and every raw source, as schema.name."""
    found = [
        f"{node['schema']}.{node['alias']}"
        for node in manifest["nodes"].values()
        if node["resource_type"] == "model" and node["fqn"][1] in LAYERS
    ]
    found += [f"{s['schema']}.{s['identifier']}" for s in manifest["sources"].values()]
    return sorted(found)


def _value(v):
    """A value as both engines can agree on it: numbers as float, NaN as None."""
    if v is None:
        return None
    if isinstance(v, bool):
        return v
    if isinstance(v, (int, float, Decimal)):
        f = float(v)
        return None if math.isnan(f) else f
    return v


def _rows(raw_rows: list[tuple]) -> list[tuple]:
    rows = [tuple(_value(v) for v in row) for row in raw_rows]

    def key(row):
        return tuple(
            (1, "") if v is None else (0, round(v, 4) if isinstance(v, float) else v) for v in row
        )

    return sorted(rows, key=key)


def _spark_rows(spark, relation: str, columns: list[str]) -> list[tuple]:
    """The relation's rows in `columns` order; timestamps cast to UTC wall-clock time (the
    session time zone is UTC), as DuckDB stores them."""
    df = spark.table(relation)
    kinds = dict(df.dtypes)
    select = [
        f"cast(`{c}` as timestamp_ntz) as `{c}`" if kinds[c] == "timestamp" else f"`{c}`"
        for c in columns
    ]
    return [tuple(r) for r in df.selectExpr(*select).collect()]


def _same(a, b) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        return math.isclose(a, b, rel_tol=REL_TOL, abs_tol=ABS_TOL)
    if isinstance(a, datetime) and isinstance(b, datetime):
        return a.replace(tzinfo=None) == b.replace(tzinfo=None)
    return a == b


def test_every_table_on_spark_equals_the_duckdb_build(builds):
    duckdb_path, spark, manifest, _ = builds
    relations = _relations(manifest)
    assert len(relations) >= 20
    con = duckdb.connect(str(duckdb_path), read_only=True)
    differences = {}
    try:
        for relation in relations:
            result = con.execute(f"select * from {relation}")
            columns = [d[0] for d in result.description]
            expected = _rows(result.fetchall())
            spark_columns = spark.table(relation).columns
            if sorted(spark_columns) != sorted(columns):
                differences[relation] = f"columns {spark_columns} != {columns}"
                continue
            actual = _rows(_spark_rows(spark, relation, columns))
            if len(actual) != len(expected):
                differences[relation] = f"{len(actual)} rows on Spark, {len(expected)} on DuckDB"
                continue
            for e_row, a_row in zip(expected, actual, strict=True):
                bad = [
                    f"{c}: {e!r} vs {a!r}"
                    for c, e, a in zip(columns, e_row, a_row, strict=True)
                    if not _same(e, a)
                ]
                if bad:
                    differences[relation] = f"first differing row: {bad[:5]}"
                    break
    finally:
        con.close()
    assert not differences, differences
    # the comparison means something: the widest feature table is full on both sides
    with duckdb.connect(str(duckdb_path), read_only=True) as con:
        ((n,),) = con.execute("select count(*) from features.transaction_features").fetchall()
    assert n > 3_000
