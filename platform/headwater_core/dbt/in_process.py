"""dbt run inside the step's own process instead of a `dbt` subprocess.

dagster-dbt starts a new `dbt` process for every invocation, which pays dbt's imports (~2.8 s on
2 cores) and a parse of the project (1-2 s) before the first model runs; a day through the graph
has three invocations, so that fixed cost was most of a new day's time (docs/benchmarks.md).
Here the invocation runs through dbt's Python API (`dbtRunner`) in the process that runs the
step, which has imported dbt already (dagster-dbt builds an adapter handle in-process), with the
project parsed once per process and passed to every later invocation.

Everything else stays dagster-dbt's: the selection it computes from the step's context, the
environment and target folder it prepares, and the reading of dbt's structured events into
Dagster events. `InProcessDbtCliInvocation.run` replaces only the `subprocess.Popen` of
`DbtCliInvocation.run`: dbt runs to the end and the invocation reads its events, as JSON lines,
exactly as it would read a finished process's output.
"""

from __future__ import annotations

import io
import json
import os
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from dagster_dbt.core import resource as dagster_dbt_resource
from dagster_dbt.core.dbt_cli_invocation import DbtCliInvocation

from headwater_core.config import environ
from headwater_core.dbt.project import newest_input_mtime

# Parsed projects of this process: (project dir, warehouse file, newest input mtime) -> Manifest.
_MANIFESTS: dict[tuple[str, str, float], Any] = {}


class FinishedDbt:
    """What `DbtCliInvocation` reads of its dbt process, for a dbt run that already ended."""

    def __init__(self, args: Sequence[str], lines: list[str], returncode: int) -> None:
        self.args = list(args)
        self.stdout = io.BytesIO("".join(f"{line}\n" for line in lines).encode())
        self.returncode = returncode

    def wait(self, timeout: float | None = None) -> int:
        return self.returncode

    def send_signal(self, signal: int) -> None:
        """Nothing to interrupt: the run has ended by the time anybody could ask."""


def _close_duckdb() -> None:
    """Release the warehouse file. dbt-duckdb keeps its database open in a class attribute after
    a run, and DuckDB refuses another connection to the same file with other settings (the
    read-only one that reads row counts next) while one is open in the process."""
    from dbt.adapters.duckdb.connections import DuckDBConnectionManager

    environment = DuckDBConnectionManager._ENV
    DuckDBConnectionManager._ENV = None
    if environment is not None:
        environment.close()


def _manifest(project_dir: Path, target_path: Path) -> Any:
    """The parsed project, once per process and warehouse file (dbt writes the file's name into
    every relation), and again when a model, macro or yml changed. The parse has no vars: the
    daily window is read when models run, not when they are parsed."""
    from dbt.cli.main import dbtRunner

    key = (
        str(project_dir),
        os.environ.get("HEADWATER_DUCKDB_PATH", ""),
        newest_input_mtime(project_dir),
    )
    if key not in _MANIFESTS:
        result = dbtRunner().invoke(["parse", "--quiet", "--target-path", str(target_path)])
        if not result.success:
            raise RuntimeError(f"dbt parse failed in {project_dir}: {result.exception}")
        _MANIFESTS.clear()
        _MANIFESTS[key] = result.result
    return _MANIFESTS[key]


def run_dbt_in_process(
    args: Sequence[str], env: Mapping[str, str], project_dir: Path, target_path: Path
) -> FinishedDbt:
    """Run `dbt <args>` (args without the executable) here; its events as dbt's JSON log lines."""
    from dbt.cli.main import dbtRunner
    from dbt_common.events.functions import msg_to_dict

    lines: list[str] = []

    def collect(event) -> None:
        lines.append(json.dumps(msg_to_dict(event)))

    # The environment a dbt subprocess would have had (dagster-dbt's DBT_* settings and the
    # warehouse path): dbt reads its flags and `env_var()` from os.environ.
    with environ(env):
        try:
            manifest = _manifest(project_dir, target_path)
            # --quiet: the events reach the callback, not this process's stdout as well; no
            # colours: dbt's messages end up in the step's failure text.
            result = dbtRunner(manifest=manifest, callbacks=[collect]).invoke(
                [*args, "--quiet", "--no-use-colors"]
            )
            returncode = 0 if result.success else (2 if result.exception else 1)
            if result.exception is not None:
                # dagster-dbt collects error-level lines into the step's failure message.
                lines.append(
                    json.dumps(
                        {
                            "info": {
                                "level": "error",
                                "msg": str(result.exception),
                                "name": "MainEncounteredError",
                            },
                            "data": {},
                        }
                    )
                )
        finally:
            _close_duckdb()
    return FinishedDbt(args, lines, returncode)


class InProcessDbtCliInvocation(DbtCliInvocation):
    """`DbtCliInvocation` whose dbt ran in this process (see the module's docstring)."""

    @classmethod
    def run(  # type: ignore[override]
        cls,
        args: Sequence[str],
        env: dict[str, str],
        manifest: Mapping[str, Any],
        dagster_dbt_translator,
        project_dir: Path,
        target_path: Path,
        raise_on_error: bool,
        context,
        adapter,
        cli_version,
        dbt_project=None,
    ) -> DbtCliInvocation:
        # args[0] is the dbt executable dagster-dbt would have started.
        process = run_dbt_in_process(args[1:], env, project_dir, target_path)
        return cls(
            process=process,  # type: ignore[arg-type]
            manifest=manifest,
            project=dbt_project,
            dagster_dbt_translator=dagster_dbt_translator,
            project_dir=project_dir,
            target_path=target_path,
            raise_on_error=raise_on_error,
            context=context,
            adapter=adapter,
            cli_version=cli_version,
        )


@contextmanager
def in_process_invocations() -> Iterator[None]:
    """Make dagster-dbt's `DbtCliResource.cli` build its invocation with the class above.

    `cli` looks `DbtCliInvocation` up in its module when it is called, so swapping that one name
    for the call keeps all of `cli`'s own logic (selection, environment, target folder)."""
    original = dagster_dbt_resource.DbtCliInvocation
    dagster_dbt_resource.DbtCliInvocation = InProcessDbtCliInvocation
    try:
        yield
    finally:
        dagster_dbt_resource.DbtCliInvocation = original
