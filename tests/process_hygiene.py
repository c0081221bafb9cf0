"""A pytest plugin: no test leaves a process behind, and a unit test starts none.

- Every process the tests start stays findable: pytest becomes a child subreaper (Linux), so a
  process whose parent exits is re-parented to pytest instead of init; and the sessions that
  the tests' processes lead are recorded as they appear.
- At the end of the run, anything still alive below pytest or in one of those sessions is
  listed (pid and command line), killed, and the run fails. Under pytest-xdist each worker
  checks its own processes and the controller reports them all.
- A test in tests/unit (marked `unit`) that starts a process, `dbt parse` included, fails; so
  does a unit test module that starts one when imported.
- SIGINT is given back its default handler when pytest inherited it ignored (`_restore_sigint`).

tests/conftest.py registers it; `-p tests.process_hygiene` loads it into any pytest run.
"""

from __future__ import annotations

import ctypes
import os
import platform
import signal
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.processes import Process, all_processes, descendants, kill_all

# Audit events (PEP 578) raised when this interpreter starts a process.
SPAWN_EVENTS = frozenset(
    {"subprocess.Popen", "os.fork", "os.forkpty", "os.posix_spawn", "os.spawn", "os.system"}
)
# The standard library's `platform` probes the machine with `uname -p` and `file -b` (MLflow asks
# at import): those are not the test's processes.
MACHINE_PROBES = (platform.__file__,)
PR_SET_CHILD_SUBREAPER = 36
UNIT_DIR = Path(__file__).resolve().parent / "unit"
LEAKED = "process_hygiene_leaked"  # keys of an xdist worker's output
WORKER_PID = "process_hygiene_pid"


@dataclass
class _State:
    own_sid: int = field(default_factory=lambda: os.getsid(0))
    # Sessions led by processes the tests started: their members stay in them once orphaned.
    sessions: set[int] = field(default_factory=set)
    spawned: bool = False  # a process was started since /proc was last read
    watching: str | None = None  # the unit test or unit module being run or imported
    spawns: list[str] = field(default_factory=list)  # what it started
    worker_pids: set[int] = field(default_factory=set)
    leaked: list[tuple[str, int, str]] = field(default_factory=list)  # (where, pid, cmdline)


_KEY = pytest.StashKey[_State]()
_state: _State | None = None
_hook_installed = False


def _audit(event: str, args: tuple) -> None:
    if event not in SPAWN_EVENTS or _state is None:
        return
    _state.spawned = True
    if _state.watching is not None and not _probing_the_machine():
        what = event
        if event == "subprocess.Popen":
            argv = args[1] if isinstance(args[1], list | tuple) else [args[1]]
            what = " ".join(map(str, argv))
        _state.spawns.append(what[:300])


def _probing_the_machine() -> bool:
    frame = sys._getframe(2)
    while frame is not None:
        if frame.f_code.co_filename in MACHINE_PROBES:
            return True
        frame = frame.f_back
    return False


def _restore_sigint() -> None:
    """Give SIGINT back its default handler if pytest was started with it ignored.

    A shell starts a background job (`cmd &` without job control) with SIGINT ignored, and an
    ignored signal stays ignored across fork and exec. Dagster's CLIs (`dagster code-server`,
    `dagster api grpc`, `dagster dev`, `dagster-daemon`) map SIGTERM to whatever SIGINT does
    (`dagster._utils.interrupts.setup_interrupt_handlers`), so a server a test started would
    ignore SIGTERM as well and run until killed. A handled signal is reset to its default at
    exec: with this, the processes the tests start get SIGINT, and so SIGTERM, at the default.
    """
    if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)


def _become_subreaper() -> None:
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
    except (OSError, AttributeError):  # not Linux: the recorded sessions still count
        pass


def _note_sessions(state: _State) -> None:
    """Record the sessions of the processes below pytest; reap the exited ones it adopted."""
    state.spawned = False
    below = descendants(os.getpid())
    state.sessions |= {p.sid for p in below.values() if p.sid != state.own_sid}
    _reap_adopted(below.values())


def _reap_adopted(processes) -> None:
    """Reap exited processes re-parented to pytest. A child pytest started itself (leading its
    own session, or in pytest's) is left to its Popen, whose exit code a test may read."""
    me, own_sid = os.getpid(), os.getsid(0)
    for p in processes:
        if p.ppid == me and p.state == "Z" and p.sid not in (p.pid, own_sid):
            try:
                os.waitpid(p.pid, os.WNOHANG)
            except ChildProcessError:
                pass


def _expected(state: _State) -> set[int]:
    """Processes that live as long as pytest by design: xdist's workers, and the helpers of
    pytest's own multiprocessing (dbt's manifest takes a multiprocessing lock)."""
    import multiprocessing.forkserver
    import multiprocessing.resource_tracker

    expected = set(state.worker_pids)
    expected.add(getattr(multiprocessing.resource_tracker._resource_tracker, "_pid", None))
    expected.add(getattr(multiprocessing.forkserver._forkserver, "_forkserver_pid", None))
    return {pid for pid in expected if pid}


def find_leaks(state: _State) -> dict[int, Process]:
    """Processes alive below pytest or in a session that a test's process led."""
    processes = all_processes()
    me = os.getpid()
    below = descendants(me, processes)
    excluded: set[int] = set()
    for pid in _expected(state):
        if pid in processes:
            excluded |= {pid, *descendants(pid, processes)}
    sessions = state.sessions | {p.sid for p in below.values() if p.sid != state.own_sid}
    return {
        p.pid: p
        for p in processes.values()
        if (p.pid in below or (p.sid in sessions and p.pid != me))
        and p.state != "Z"
        and p.pid not in excluded
    }


def _watch(state: _State, what: str | None) -> list[str]:
    """Watch for processes started on behalf of `what` (None: stop watching); returns what the
    previous watch saw."""
    seen, state.watching, state.spawns = state.spawns, what, []
    return seen


def _unit_failure(spawns: list[str]) -> str:
    return (
        "a unit test starts no process and parses no dbt project (tests/integration is the "
        "place for it); this started:\n  " + "\n  ".join(spawns)
    )


def pytest_configure(config: pytest.Config) -> None:
    global _state, _hook_installed
    _restore_sigint()
    _become_subreaper()
    _state = _State()
    config.stash[_KEY] = _state
    if not _hook_installed:  # an audit hook cannot be removed: one per interpreter
        sys.addaudithook(_audit)
        _hook_installed = True


@pytest.hookimpl(wrapper=True)
def pytest_make_collect_report(collector: pytest.Collector):
    """A unit test module that starts a process when imported (say, a code location that
    parses dbt) fails to collect."""
    state = collector.config.stash[_KEY]
    path = getattr(collector, "path", None)
    unit = isinstance(collector, pytest.Module) and path.is_relative_to(UNIT_DIR)
    _watch(state, str(path) if unit else None)
    report = yield
    spawns = _watch(state, None)
    if spawns:
        report.outcome = "failed"
        report.longrepr = _unit_failure(spawns)
    return report


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    _watch(item.config.stash[_KEY], item.nodeid if item.get_closest_marker("unit") else None)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_teardown(item: pytest.Item, nextitem: pytest.Item | None):
    """A unit test that started a process (itself or through its fixtures) fails here; the
    sessions of any test's processes are noted."""
    state = item.config.stash[_KEY]
    try:
        result = yield
    finally:
        spawns = _watch(state, None)
        if state.spawned:
            _note_sessions(state)
    if spawns:
        pytest.fail(_unit_failure(spawns), pytrace=False)
    return result


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node, error) -> None:
    """xdist controller: what a worker found left behind."""
    state = node.config.stash[_KEY]
    output = getattr(node, "workeroutput", None) or {}
    if WORKER_PID in output:
        state.worker_pids.add(output[WORKER_PID])
    for pid, cmdline in output.get(LEAKED, []):
        state.leaked.append((f"worker {node.gateway.id}", pid, cmdline))


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session: pytest.Session) -> None:
    state = session.config.stash[_KEY]
    leaks = find_leaks(state)
    kill_all(list(leaks))
    _reap_adopted(descendants(os.getpid()).values())
    found = [(pid, p.cmdline) for pid, p in sorted(leaks.items())]
    workeroutput = getattr(session.config, "workeroutput", None)
    if workeroutput is not None:  # an xdist worker: the controller reports and fails the run
        workeroutput[WORKER_PID] = os.getpid()
        workeroutput[LEAKED] = found
        return
    state.leaked += [("pytest", pid, cmdline) for pid, cmdline in found]
    if state.leaked and session.exitstatus in (
        pytest.ExitCode.OK,
        pytest.ExitCode.NO_TESTS_COLLECTED,
    ):
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter, config: pytest.Config) -> None:
    state = config.stash.get(_KEY, None)
    if not state or not state.leaked:
        return
    terminalreporter.section("processes left behind by the tests", red=True, bold=True)
    for where, pid, cmdline in state.leaked:
        terminalreporter.line(f"{where}: pid {pid}: {cmdline[:300]}", red=True)
    terminalreporter.line(
        f"{len(state.leaked)} process(es) still alive at the end of the run, now killed: the "
        "run fails. Stop every process a test starts in a finally (tests/processes.py).",
        red=True,
    )
