"""Crash recovery on the embedded instance, for real: a run killed with `kill -9` inside a step
of the `duckdb_warehouse` pool is found dead by the daemon's run monitoring, marked failed, and
its pool slot freed, so that the next run needing the slot completes without anyone stepping in.

The run is a headless-shaped one (one process, executed in process against the instance, as
`headwater materialize` runs); the daemon is a real `dagster-daemon run` on the same instance.
Run as a script, this file materialises its one asset: `python test_crash_recovery.py MARKER
hang|quick|recover` (`recover`: first what `headwater materialize` does about dead runs).
"""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import dagster as dg
import pytest

from headwater_core.names import DUCKDB_POOL

HERE = Path(__file__).resolve()
BIN = Path(sys.executable).parent
# How long recovery may take on the committed config: a monitoring pass finds the dead run,
# a later one frees its slot (run_monitoring in dagster_instance/embedded.yaml), plus the
# daemon's own start-up on a busy 2-core machine.
RECOVERY_SECONDS = 100


@dg.asset(pool=DUCKDB_POOL)
def pool_writer(context: dg.AssetExecutionContext) -> None:
    """Holds the pool's slot: says so in a marker file, then sleeps (`hang`) or returns."""
    marker, mode = Path(sys.argv[1]), sys.argv[2]
    marker.write_text(str(os.getpid()))
    if mode == "hang":
        time.sleep(600)


def _start_run(home: Path, marker: Path, mode: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, str(HERE), str(marker), mode],
        env={**os.environ, "DAGSTER_HOME": str(home)},
        start_new_session=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )


def _wait_for(predicate, seconds: float, what: str, proc: subprocess.Popen | None = None):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"{what}: the process exited ({proc.returncode})")
        time.sleep(0.5)
    raise AssertionError(f"{what}: not within {seconds} s")


def _claimed(instance: dg.DagsterInstance) -> list:
    return instance.event_log_storage.get_concurrency_info(DUCKDB_POOL).claimed_slots


def _only_run(instance: dg.DagsterInstance) -> dg.DagsterRun:
    (run,) = instance.get_runs()
    return run


def _embedded_home(tmp_path: Path, monkeypatch) -> Path:
    """A DAGSTER_HOME with the committed embedded config, as `headwater dev` sets it up."""
    from headwater.environment import configure_environment

    for name in ("DAGSTER_HOME", "HEADWATER_HOME", "HEADWATER_DUCKDB_PATH"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delenv("HEADWATER_LANDING_DIR", raising=False)
    configure_environment(tmp_path)
    return Path(os.environ["DAGSTER_HOME"])


def _kill_in_pool_step(instance, home: Path, marker: Path, processes: list) -> dg.DagsterRun:
    """Start a run, wait until its step holds the pool's slot, kill -9 its process."""
    proc = _start_run(home, marker, "hang")
    processes.append(proc)
    _wait_for(marker.exists, 60, "the first run's pool step", proc)
    assert len(_claimed(instance)) == 1, "the step holds the pool's slot"
    run = _only_run(instance)
    health = instance.run_launcher.check_run_worker_health(run)
    assert health.status.value == "RUNNING", health
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert instance.get_run_by_id(run.run_id).status == dg.DagsterRunStatus.STARTED
    return run


def _second_run_completes(
    instance, home: Path, marker: Path, killed, processes: list, mode: str = "quick"
) -> None:
    second = _start_run(home, marker, mode)
    processes.append(second)
    # Without recovery it would wait for the slot for ever ("Step still blocked by limit").
    output, _ = second.communicate(timeout=60)
    assert second.returncode == 0, output.decode(errors="replace")[-3000:]
    latest = instance.get_runs(limit=1)[0]
    assert latest.run_id != killed.run_id
    assert latest.status == dg.DagsterRunStatus.SUCCESS
    assert marker.exists() and not _claimed(instance)


# Slow tier: 36 s on the slowest machine of this kind yet (the default tier's 15 minutes).
@pytest.mark.slow
def test_a_run_killed_in_a_pool_step_is_failed_and_frees_its_slot(tmp_path, monkeypatch):
    """`headwater dev`'s daemon recovers, whatever the run's shape."""
    home = _embedded_home(tmp_path, monkeypatch)
    processes: list[subprocess.Popen] = []
    try:
        with dg.DagsterInstance.from_config(str(home)) as instance:
            run = _kill_in_pool_step(instance, home, tmp_path / "first", processes)

            daemon = subprocess.Popen(
                [str(BIN / "dagster-daemon"), "run", "--empty-workspace"],
                env={**os.environ, "DAGSTER_HOME": str(home)},
                start_new_session=True,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            processes.append(daemon)
            start = time.monotonic()
            _wait_for(
                lambda: instance.get_run_by_id(run.run_id).status == dg.DagsterRunStatus.FAILURE,
                RECOVERY_SECONDS,
                "the killed run marked failed",
                daemon,
            )
            _wait_for(
                lambda: not _claimed(instance),
                RECOVERY_SECONDS - (time.monotonic() - start),
                "the killed run's slot freed",
                daemon,
            )

            _second_run_completes(instance, home, tmp_path / "second", run, processes)
    finally:
        from tests.processes import stop_process_group

        for proc in processes:
            stop_process_group(proc)


def test_a_headless_run_recovers_a_killed_run_without_a_daemon(tmp_path, monkeypatch):
    """`headwater materialize` after a killed one, no `headwater dev` running: it fails the
    dead run and takes back its slot itself (headless.materialize_range)."""
    home = _embedded_home(tmp_path, monkeypatch)
    processes: list[subprocess.Popen] = []
    try:
        with dg.DagsterInstance.from_config(str(home)) as instance:
            run = _kill_in_pool_step(instance, home, tmp_path / "first", processes)
            _second_run_completes(
                instance, home, tmp_path / "second", run, processes, mode="recover"
            )
            killed = instance.get_run_by_id(run.run_id)
            assert killed.status == dg.DagsterRunStatus.FAILURE
    finally:
        from tests.processes import stop_process_group

        for proc in processes:
            stop_process_group(proc)


if __name__ == "__main__":
    with dg.DagsterInstance.get() as _instance:
        if sys.argv[2] == "recover":  # as headless.materialize_range does first
            from headwater.run_launcher import recover_dead_runs

            recover_dead_runs(_instance)
        _result = dg.materialize([pool_writer], instance=_instance, raise_on_error=False)
    sys.exit(0 if _result.success else 1)
