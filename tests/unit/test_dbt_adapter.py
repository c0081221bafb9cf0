"""What the in-process dbt adapter (headwater_core/dbt/in_process.py) assumes of dagster-dbt,
dbt-core and dbt-duckdb, checked against what is installed.

The adapter runs a copy of dagster-dbt's `DbtCliResource.cli` whose `DbtCliInvocation.run`
runs dbt through `dbtRunner` here, and releases dbt-duckdb's database after the run. Each test
names what to re-check when one of these packages is upgraded. No subprocess, no dbt parse.
"""

import dataclasses
import dis
import functools
import importlib.metadata
import inspect
import os
import re

import pytest
from dagster_dbt import DagsterDbtTranslator, DbtCliInvocation, DbtCliResource
from dagster_dbt.core import resource as dagster_dbt_resource
from dagster_dbt.errors import DagsterDbtCliRuntimeError
from packaging import version

from headwater_core.dbt import in_process
from headwater_core.dbt.resource import dbt_cli_resource

UPGRADE = (
    "headwater_core/dbt/in_process.py was written against dagster-dbt "
    f"{in_process.DAGSTER_DBT_VERSION}, dbt-core {in_process.DBT_CORE_VERSION} and dbt-duckdb "
    f"{in_process.DBT_DUCKDB_VERSION}. On an upgrade, re-check every assumption this file tests "
    "(and run tests/integration/test_warehouse_build.py, which compares in-process and "
    "subprocess builds), then update the version constants in that module."
)

# What `cli` passes to `DbtCliInvocation.run`, all by keyword.
RUN_PARAMETERS = (
    "args",
    "env",
    "manifest",
    "dagster_dbt_translator",
    "project_dir",
    "target_path",
    "raise_on_error",
    "context",
    "adapter",
    "cli_version",
    "dbt_project",
)
# The invocation's constructor: `run`'s keywords but args, env and dbt_project (= project),
# plus the process.
INVOCATION_FIELDS = {
    "process",
    "manifest",
    "dagster_dbt_translator",
    "project_dir",
    "target_path",
    "raise_on_error",
    "cli_version",
    "project",
    "context",
    "adapter",
}
# What `DbtCliInvocation` uses of its process; `in_process.FinishedDbt` provides each.
PROCESS_ATTRIBUTES = {"args", "stdout", "returncode", "wait", "send_signal"}


@pytest.mark.parametrize(
    ("package", "pinned"),
    [
        ("dagster-dbt", in_process.DAGSTER_DBT_VERSION),
        ("dbt-core", in_process.DBT_CORE_VERSION),
        ("dbt-duckdb", in_process.DBT_DUCKDB_VERSION),
    ],
)
def test_the_installed_versions_are_the_ones_the_adapter_was_written_against(package, pinned):
    installed = importlib.metadata.version(package)
    assert installed == pinned, f"{package} is {installed}, not {pinned}. {UPGRADE}"


def test_cli_builds_its_invocation_through_one_global_name_with_keywords():
    """`cli` looks `DbtCliInvocation` up as a global of its module, once, to call `run` with
    every parameter by keyword: the copy of `cli` rebinds that one name."""
    cli = DbtCliResource.cli
    assert inspect.isfunction(cli) and not hasattr(cli, "__wrapped__"), (
        f"DbtCliResource.cli is no longer a plain function. {UPGRADE}"
    )
    instructions = list(dis.get_instructions(cli))
    lookups = [
        (ins.opname, instructions[i + 1].argval)
        for i, ins in enumerate(instructions)
        if ins.argval == "DbtCliInvocation"
    ]
    assert lookups == [("LOAD_GLOBAL", "run")], (
        f"DbtCliResource.cli uses DbtCliInvocation as {lookups}, not once as "
        f"`DbtCliInvocation.run(...)`. {UPGRADE}"
    )
    assert RUN_PARAMETERS in cli.__code__.co_consts, (
        f"DbtCliResource.cli no longer calls DbtCliInvocation.run with the keywords "
        f"{RUN_PARAMETERS}. {UPGRADE}"
    )


def test_run_takes_the_invocation_fields_as_keywords():
    parameters = tuple(inspect.signature(DbtCliInvocation.run).parameters)
    assert parameters == RUN_PARAMETERS, (
        f"DbtCliInvocation.run takes {parameters}, not {RUN_PARAMETERS}. {UPGRADE}"
    )
    fields = {f.name for f in dataclasses.fields(DbtCliInvocation) if f.init}
    assert fields == INVOCATION_FIELDS, (
        f"DbtCliInvocation's constructor takes {sorted(fields)}, not "
        f"{sorted(INVOCATION_FIELDS)}. {UPGRADE}"
    )
    assert set(RUN_PARAMETERS) - {"args", "env", "dbt_project"} == fields - {"process", "project"}


def test_the_finished_run_offers_all_the_invocation_reads_of_its_process():
    used = set(re.findall(r"self\.process\.(\w+)", inspect.getsource(DbtCliInvocation)))
    assert used <= PROCESS_ATTRIBUTES, (
        f"DbtCliInvocation now uses {sorted(used - PROCESS_ATTRIBUTES)} of its process, which "
        f"in_process.FinishedDbt does not provide. {UPGRADE}"
    )
    finished = in_process.FinishedDbt(["build"], [], 0)
    assert all(hasattr(finished, name) for name in PROCESS_ATTRIBUTES)


def test_the_copy_of_cli_leaves_dagster_dbt_as_installed():
    copy = in_process._in_process_cli()
    cli = DbtCliResource.cli
    assert copy is not cli and copy.__code__ is cli.__code__
    assert copy.__globals__["DbtCliInvocation"] is in_process._InProcessInvocations
    assert copy.__kwdefaults__ == cli.__kwdefaults__
    assert dagster_dbt_resource.DbtCliInvocation is DbtCliInvocation
    assert DbtCliResource.cli is cli


def test_headwater_dbt_cli_answers_the_dbt_version_from_package_metadata():
    """HeadwaterDbtCli overrides dagster-dbt's private `_cli_version`, which `cli` reads."""
    cli_version = inspect.getattr_static(DbtCliResource, "_cli_version")
    assert isinstance(cli_version, functools.cached_property), (
        f"DbtCliResource._cli_version is no longer a cached property. {UPGRADE}"
    )
    assert "self._cli_version" in inspect.getsource(DbtCliResource.cli), UPGRADE
    assert dbt_cli_resource()._cli_version == version.parse(in_process.DBT_CORE_VERSION)


def test_an_invocation_reads_a_finished_run_as_it_reads_a_process(monkeypatch, tmp_path):
    """`run` with dbt's run replaced by its result: dagster-dbt's invocation reads the lines,
    the exit code and the error line the adapter writes for dbt's exception."""
    finished = []

    def fake_run(args, env, project_dir, target_path):
        error = in_process._error_line(RuntimeError("Compilation Error in model x"))
        finished.append(in_process.FinishedDbt(args, [error], 2))
        return finished[-1]

    monkeypatch.setattr(in_process, "run_dbt_in_process", fake_run)
    invocation = in_process._InProcessInvocations.run(
        **{
            "args": ["dbt", "build"],
            "env": {},
            "manifest": {},
            "dagster_dbt_translator": DagsterDbtTranslator(),
            "project_dir": tmp_path,
            "target_path": tmp_path,
            "raise_on_error": True,
            "context": None,
            "adapter": None,
            "cli_version": version.parse(in_process.DBT_CORE_VERSION),
            "dbt_project": None,
        }
    )
    assert type(invocation) is DbtCliInvocation and invocation.process is finished[0]
    assert invocation.dbt_command == "build"
    error = invocation.get_error()
    assert isinstance(error, DagsterDbtCliRuntimeError)
    assert "exit code `2`" in str(error) and "Compilation Error in model x" in str(error)


def test_dbt_core_offers_what_the_adapter_calls():
    from dbt.cli.main import dbtRunner, dbtRunnerResult
    from dbt_common.events.functions import msg_to_dict

    assert {"manifest", "callbacks"} <= set(inspect.signature(dbtRunner).parameters), UPGRADE
    result_fields = {f.name for f in dataclasses.fields(dbtRunnerResult)}
    assert {"success", "exception", "result"} <= result_fields, UPGRADE
    assert list(inspect.signature(msg_to_dict).parameters) == ["msg"], UPGRADE


def test_dbt_duckdb_lets_the_adapter_release_the_database():
    """`_close_duckdb` uses dbt-duckdb's `env()`, `close_all_connections()` (its exit hook)
    and the environment's `close()`; with no run having opened the database, it does nothing."""
    from dbt.adapters.duckdb.connections import DuckDBConnectionManager
    from dbt.adapters.duckdb.environments import Environment

    for name in ("env", "close_all_connections"):
        method = inspect.getattr_static(DuckDBConnectionManager, name)
        assert isinstance(method, classmethod), f"DuckDBConnectionManager.{name}: {UPGRADE}"
        assert not inspect.signature(getattr(DuckDBConnectionManager, name)).parameters, UPGRADE
    assert list(inspect.signature(Environment.close).parameters) == ["self"], UPGRADE
    with pytest.raises(Exception, match="before creation"):
        DuckDBConnectionManager.env()
    in_process._close_duckdb()


def test_the_run_passes_on_what_a_dbt_process_prints_and_what_dagster_dbt_reads():
    """dbt's events reach dagster-dbt as its process's output would: info and above, plus the
    node results and column metadata dagster-dbt reads at any level; debug events (each SQL
    statement) stay in dbt's log file."""
    from dagster_dbt.core.dbt_cli_event import DbtCoreCliEventMessage
    from dbt.adapters.events.types import SQLQuery
    from dbt.events.types import JinjaLogInfo, LogModelResult, LogTestResult
    from dbt_common.events.base_types import EventLevel, msg_from_base_event

    def passed(event, level=None) -> bool:
        msg = msg_from_base_event(event, level=level)
        return in_process.printed(msg.info.level, msg.info.name)

    assert not passed(SQLQuery(conn_name="model.x", sql="select 1", node_info={}))
    assert passed(JinjaLogInfo(msg='{"columns": {}}'), EventLevel.DEBUG)
    result = {"description": "m", "index": 1, "total": 1, "execution_time": 0.1}
    assert passed(LogModelResult(status="OK", **result), EventLevel.DEBUG)
    assert passed(LogModelResult(status="OK", **result), EventLevel.INFO)
    test = LogTestResult(name="t", status="fail", index=1, num_models=1, num_failures=1)
    assert passed(test, EventLevel.ERROR)
    # every name dagster-dbt reads as a node result is passed at any level
    raw = {"info": {"name": "", "level": "debug"}, "data": {"node_info": {"unique_id": "model.x"}}}
    for name in in_process.READ_AT_ANY_LEVEL - {"JinjaLogInfo"}:
        raw["info"]["name"] = name
        assert DbtCoreCliEventMessage(raw_event=raw, event_history_metadata={}).is_result_event
        assert in_process.printed("debug", name)


def test_dbt_duckdb_names_the_database_after_the_file_not_its_folder():
    """The parse is kept per warehouse file name (`_parse_key`): what dbt writes into every
    relation is the database dbt-duckdb derives from the path, the file's stem alone."""
    from dbt.adapters.duckdb.credentials import DuckDBCredentials

    def database(path: str) -> str:
        return DuckDBCredentials.from_dict({"path": path, "schema": "main"}).database

    assert database("/runs/a/warehouse.duckdb") == database("/tmp/x/warehouse.duckdb")
    assert database("/tmp/x/warehouse.duckdb") != database("/tmp/x/compile.duckdb")


def test_a_parse_is_kept_for_the_file_name_and_the_settings_dbt_parses_with(monkeypatch, tmp_path):
    """A compile against a scratch file of the warehouse's name reuses the run's parse; a
    setting that `env_var()` reads at parse time, or another file name, parses again; the
    settings dbt reads only to run do not."""
    for name in [n for n in os.environ if n.startswith("HEADWATER_")]:
        monkeypatch.delenv(name)
    (tmp_path / "dbt_project.yml").write_text("name: p\n")
    (tmp_path / "profiles.yml").write_text("p: {}\n")
    monkeypatch.setenv("HEADWATER_DUCKDB_PATH", "/state/warehouse.duckdb")
    monkeypatch.setenv("HEADWATER_DUCKDB_THREADS", "2")
    run = in_process._parse_key(tmp_path, None)
    monkeypatch.setenv("HEADWATER_DUCKDB_PATH", str(tmp_path / "scratch" / "warehouse.duckdb"))
    monkeypatch.delenv("HEADWATER_DUCKDB_THREADS")
    assert in_process._parse_key(tmp_path, None) == run
    monkeypatch.setenv("HEADWATER_LABEL_MATURITY_DAYS", "14")
    assert in_process._parse_key(tmp_path, None) != run
    monkeypatch.delenv("HEADWATER_LABEL_MATURITY_DAYS")
    monkeypatch.setenv("HEADWATER_DUCKDB_PATH", "/state/other.duckdb")
    assert in_process._parse_key(tmp_path, None) != run
    assert in_process._parse_key(tmp_path, "spark") != in_process._parse_key(tmp_path, None)
