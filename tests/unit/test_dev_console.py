"""`headwater dev`'s console: what it shows of `dagster dev`'s output, the line per run, and the
MLflow UI's one setting (the port it binds is the address the run links name)."""

import io
import socket
from types import SimpleNamespace

import pytest

from headwater.console import FAILURE_LINES, Console, ConsoleFilter
from headwater.dev_server import DevConfig, serve
from headwater.mlflow_ui import MlflowUi, claim_port, embedded_store
from headwater.run_lines import RunWatcher, describe_selection, root_cause, run_line
from ml_assets.models.tracking import MlflowTracking

RUN_ID = "02c6afbd-f3de-4362-b548-bc5bdf4beae1"
STAMP = "\x1b[32m2026-11-30 11:47:58 +0000\x1b[0m"


def record(level: str, message: str, logger: str = "dagster") -> str:
    """A line as Dagster's colored console formatter writes it."""
    return f"{STAMP} - {logger} - \x1b[34m{level}\x1b[0m - {message}\n"


def shown(lines: list[str]) -> list[str]:
    console = ConsoleFilter("dev.log")
    return [out for line in lines for out in console.feed(line)]


def test_debug_and_info_records_are_dropped_with_what_is_printed_under_them():
    lines = [
        record("DEBUG", f"__ASSET_JOB - {RUN_ID} - 15072 - warehouse - STEP_START - Started"),
        "Running with dbt=1.11.16\n",
        "    select schema_name\n",
        record("INFO", "Checking for new runs", "dagster.daemon.QueuedRunCoordinatorDaemon"),
        "SQL status: OK in 0.001 seconds\n",
    ]
    assert shown(lines) == []


def test_a_warning_shows_its_first_line_without_colours():
    lines = [
        record("WARNING", f"__ASSET_JOB - {RUN_ID} - raw__transactions - 3 rows rejected"),
        "  a continuation line\n",
    ]
    assert shown(lines) == [
        f"2026-11-30 11:47:58 +0000 - dagster - WARNING - __ASSET_JOB - {RUN_ID} - "
        "raw__transactions - 3 rows rejected"
    ]


@pytest.mark.parametrize(
    "message",
    [
        "/x/dagster/_core/decorator_utils.py:232: BetaWarning: Parameter `backfill_policy` of "
        "function `asset` is currently in beta",
        "/x/source_code.py:94: PreviewWarning: Class `X` is currently in preview",
        f"__ASSET_JOB - {RUN_ID} - warehouse - Logging an `AssetObservation` instead of an "
        "`AssetCheckResult` for dbt test `source_accepted_values_x`.",
        "No cursor for event type DagsterEventType.RUN_FAILURE, ignoring older events",
    ],
)
def test_dagster_notices_are_dropped(message):
    assert shown([record("WARNING", message), "  return fn(*args, **kwargs)\n", "\n"]) == []


def test_a_service_error_shows_its_traceback_up_to_a_limit():
    trace = [f"  File 'x.py', line {n}\n" for n in range(FAILURE_LINES + 10)]
    lines = [record("ERROR", "Caught an error", "dagster.daemon.SensorDaemon"), *trace]
    out = shown([*lines, record("INFO", "next")])
    assert out[0].endswith("dagster.daemon.SensorDaemon - ERROR - Caught an error")
    assert out[1:FAILURE_LINES] == [line.rstrip("\n") for line in trace[: FAILURE_LINES - 1]]
    assert out[FAILURE_LINES:] == ["  ... (the rest in dev.log)"]


def test_a_runs_error_shows_one_line_its_run_line_says_why():
    lines = [
        record("ERROR", f"__ASSET_JOB - {RUN_ID} - 27245 - RUN_FAILURE - Execution failed."),
        "\n",
        "dagster._core.errors.DagsterExecutionInterruptedError\n",
        "Stack Trace:\n",
        "Traceback (most recent call last):\n",
    ]
    assert len(shown(lines)) == 1


def test_a_traceback_outside_any_record_is_shown_and_the_webserver_address():
    lines = [
        record("INFO", "Checking for new runs"),
        "Traceback (most recent call last):\n",
        '  File "grpc/_server.py", line 1320, in _serve\n',
        "RuntimeError: cannot schedule new futures after shutdown\n",
        record("INFO", "Serving dagster-webserver on http://127.0.0.1:3000 in process 7"),
    ]
    out = shown(lines)
    assert out[:3] == [line.rstrip("\n") for line in lines[1:4]]
    assert out[3].endswith("Serving dagster-webserver on http://127.0.0.1:3000 in process 7")
    assert len(out) == 4


def test_the_console_logs_every_line_and_shows_the_filtered_ones():
    log, screen = io.StringIO(), io.StringIO()
    console = Console(log, screen, "dev.log")
    console.child_line(record("DEBUG", "step started"))
    console.child_line(record("WARNING", "a warning"))
    console.child_line(record("WARNING", "said while stopping"), quiet=True)
    console.say("run 02c6afbd started: raw/transactions")
    assert len(log.getvalue().splitlines()) == 4 and "\x1b" not in log.getvalue()
    assert screen.getvalue().splitlines() == [
        "2026-11-30 11:47:58 +0000 - dagster - WARNING - a warning",
        "run 02c6afbd started: raw/transactions",
    ]


def test_a_run_line_names_the_run_its_assets_and_partitions():
    tags = {
        "dagster/asset_partition_range_start": "2025-01-01",
        "dagster/asset_partition_range_end": "2025-01-03",
    }
    keys = ["raw/transactions", "raw/customers", "marts/fct_transactions", "raw/merchants"]
    selection = describe_selection(keys, None, "__ASSET_JOB", tags)
    assert selection == "4 assets: raw 3, marts 1 [2025-01-01..2025-01-03]"
    assert describe_selection(keys[:2], None, "__ASSET_JOB", {}) == (
        "raw/customers, raw/transactions"
    )
    assert run_line(RUN_ID, "STARTED", selection) == f"run 02c6afbd started: {selection}"
    assert describe_selection(None, None, "demo_feed_job", {"dagster/partition": "2025-01-04"}) == (
        "demo_feed_job [2025-01-04]"
    )
    failed = run_line(
        RUN_ID, "FAILURE", "models/x/model", 41.2, "model: ValueError: bad", "http://h:1/"
    )
    assert failed == (
        f"run 02c6afbd failed after 41 s: models/x/model - model: ValueError: bad "
        f"(http://h:1/runs/{RUN_ID})"
    )


def test_a_failure_is_told_by_its_innermost_cause():
    inner = SimpleNamespace(message="ValueError: labels missing\nmore", cause=None, cls_name="E")
    outer = SimpleNamespace(message="Error occurred while executing op", cause=inner)
    assert root_cause(outer) == "ValueError: labels missing"


def test_the_mlflow_ui_serves_the_embedded_store_and_its_port_is_the_links_base(
    tmp_path, monkeypatch
):
    store = f"sqlite:///{tmp_path}/mlflow/mlflow.db"
    assert embedded_store(store) == (store, tmp_path / "mlflow" / "artifacts")
    assert embedded_store("http://mlflow:5000") is None
    ui = MlflowUi(store, tmp_path / "a", "0.0.0.0", 5170, tmp_path / "mlflow.log")
    command = ui.command(tmp_path)
    assert command[command.index("--port") + 1] == "5170"
    assert command[command.index("--backend-store-uri") + 1] == store
    assert ui.url == "http://127.0.0.1:5170"

    monkeypatch.setenv("HEADWATER_MLFLOW_UI_URL", ui.url)
    link = MlflowTracking(tracking_uri=store).run_link("3", "abc")
    assert link == "http://127.0.0.1:5170/#/experiments/3/runs/abc"
    monkeypatch.delenv("HEADWATER_MLFLOW_UI_URL")
    assert (
        MlflowTracking(tracking_uri=store).run_link("3", "abc").startswith("http://127.0.0.1:5000/")
    )
    # A tracking server's runs link to the server itself.
    assert (
        MlflowTracking(tracking_uri="http://mlflow:5000")
        .run_link("3", "abc")
        .startswith("http://mlflow:5000/#/")
    )


def test_a_busy_mlflow_port_is_refused_before_anything_starts(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        busy = taken.getsockname()[1]
        with pytest.raises(OSError):
            claim_port("127.0.0.1", busy)
        prepared = []
        config = DevConfig(tmp_path, "127.0.0.1", claim_port("127.0.0.1", 0), 0, busy)
        with pytest.raises(SystemExit) as refused:
            serve(config, f"sqlite:///{tmp_path}/mlflow.db", lambda: prepared.append(1))
    assert str(refused.value) == (
        f"headwater: cannot serve the MLflow UI on 127.0.0.1:{busy} (Address already in use); "
        "pass another --mlflow-port"
    )
    assert prepared == []


def test_each_run_status_is_told_once_and_only_if_it_changed_while_watching():
    watcher = RunWatcher(lambda line: None)
    since = watcher._started

    def record(run_id: str, status: str, start: float, end: float | None = None):
        run = SimpleNamespace(run_id=run_id, status=SimpleNamespace(value=status))
        return SimpleNamespace(dagster_run=run, start_time=start, end_time=end)

    assert watcher._new_status(record("a", "STARTED", since + 1)) == "STARTED"
    assert watcher._new_status(record("a", "STARTED", since + 1)) is None
    assert watcher._new_status(record("a", "SUCCESS", since + 1, since + 9)) == "SUCCESS"
    assert watcher._new_status(record("b", "QUEUED", since + 1)) is None
    # ended before `headwater dev` started, and touched since by the daemon: not news
    assert watcher._new_status(record("c", "FAILURE", since - 60, since - 30)) is None
