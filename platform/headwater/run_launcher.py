"""The embedded instance's run launcher: Dagster's default one, plus the answer to "is this
run's process still alive?", so that run monitoring fails a run whose process was killed and
frees its `duckdb_warehouse` slot without anyone stepping in.

Dagster's `DefaultRunLauncher` cannot say whether a run worker lives (only the container
launchers can), so a run whose process died by `kill -9`, an out-of-memory kill or a power cut
stayed STARTED and kept its pool slot for ever. Every run on the embedded instance runs on this
machine: a code server's run worker (`headwater dev`) or the `headwater materialize` process.
Each writes its process id into the run's event log when it starts executing steps, so the
daemon's run monitoring can look the process up here. A run with no such event yet is taken as
alive. A process id that now belongs to a process started after that event is not the run's.
(The event's time is Dagster's clock, which `headwater simulate` freezes in the past; it runs
its runs one at a time in one process, so no live run of its instance is ever looked up.)

Not for `deploy/dagster.yaml`: there the daemon and the run workers may be in different
containers, where a process id means nothing.

Uses Dagster internals `CheckRunHealthResult` and `WorkerStatus` (`dagster._core.launcher`),
which the run-monitoring interface of Dagster 1.13 is written in; tests/unit/test_run_launcher.py
fails if they are gone.
"""

from __future__ import annotations

import os
from pathlib import Path

import dagster as dg

from headwater.dagster_internals import worker_health

# The clock of /proc/stat's boot time is in whole seconds.
_START_TIME_SLACK_SECONDS = 2.0
_ENDED = [dg.DagsterRunStatus.SUCCESS, dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED]


class LocalRunLauncher(dg.DefaultRunLauncher):
    """`DefaultRunLauncher` that tells run monitoring when a run's process is gone."""

    @property
    def supports_check_run_worker_health(self) -> bool:
        return True

    def check_run_worker_health(self, run: dg.DagsterRun):
        worker = run_worker(self._instance, run.run_id)
        if worker is None:
            return worker_health(True, "no process recorded yet")
        pid, since = worker
        if process_alive(pid, since):
            return worker_health(True, f"process {pid} is alive")
        return worker_health(False, f"the run's process {pid} is gone (killed or crashed)")


def run_worker(instance: dg.DagsterInstance, run_id: str) -> tuple[int, float] | None:
    """The process id the run last recorded as executing it, and when; None if none yet.

    Dagster records one in an engine event when a run worker starts ("Started process for
    run") and when its executor starts ("Executing steps in process"); step events are left
    out (a multiprocess executor's step processes are its children).
    """
    worker = None
    for entry in instance.all_logs(run_id, of_type=dg.DagsterEventType.ENGINE_EVENT):
        event = entry.dagster_event
        if event is None or event.step_key is not None:
            continue
        pid = event.engine_event_data.metadata.get("pid")
        if pid is not None and str(pid.value).isdigit():
            worker = (int(pid.value), entry.timestamp)
    return worker


def process_alive(pid: int, since: float) -> bool:
    """Whether process `pid` runs and is the one that existed at time `since` (epoch s)."""
    proc = Path("/proc")
    if not proc.is_dir():  # not Linux: no start time to compare, liveness only
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True
    try:
        stat = (proc / str(pid) / "stat").read_text()
        boot = next(
            float(line.split()[1])
            for line in (proc / "stat").read_text().splitlines()
            if line.startswith("btime ")
        )
    except (OSError, StopIteration):
        return False
    # Fields after the command name, which may hold spaces: state is field 3, starttime 22.
    fields = stat[stat.rindex(")") + 2 :].split()
    if fields[0] in ("Z", "X"):  # exited, not reaped yet
        return False
    started = boot + int(fields[19]) / os.sysconf("SC_CLK_TCK")
    return started <= since + _START_TIME_SLACK_SECONDS


def recover_dead_runs(instance: dg.DagsterInstance) -> list[str]:
    """Once, what the daemon's run monitoring does, for a process about to run without one
    (`headwater materialize`): fail every STARTED run whose process is gone, and give back the
    pool slots every ended run still holds. Returns the ids of the runs it failed.

    A run killed in a pool step keeps the slot until someone frees it, and an in-process run
    waits for that slot for ever; with no daemon running, nobody would.
    """
    launcher = instance.run_launcher
    if not isinstance(launcher, LocalRunLauncher):
        return []
    failed = []
    started = dg.RunsFilter(statuses=[dg.DagsterRunStatus.STARTED])
    for record in instance.get_run_records(filters=started):
        health = launcher.check_run_worker_health(record.dagster_run)
        if health.status.value == "FAILED":
            instance.report_run_failed(record.dagster_run, f"Run monitoring: {health.msg}.")
            failed.append(record.dagster_run.run_id)
    storage = instance.event_log_storage
    if storage.supports_global_concurrency_limits:
        holding = storage.get_concurrency_run_ids()
        if holding:
            ended = dg.RunsFilter(run_ids=list(holding), statuses=_ENDED)
            for record in instance.get_run_records(filters=ended):
                storage.free_concurrency_slots_for_run(record.dagster_run.run_id)
    return failed
