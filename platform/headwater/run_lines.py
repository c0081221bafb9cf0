"""One console line per run for `headwater dev`: started, succeeded, failed or canceled, with the
run's id, what it materialises and, for a failure, the error's first line and the run's page.

Read from the instance's run storage (`DagsterInstance.get_run_records`), the record Dagster
keeps of every run whoever launched it (a sensor, automation, the UI, a backfill), rather than
parsed from the runs' console output.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime, timedelta

# The run statuses worth a line, and the word for each.
STATUS_WORDS = {
    "STARTED": "started",
    "SUCCESS": "succeeded",
    "FAILURE": "failed",
    "CANCELED": "canceled",
}
ENDED = ("SUCCESS", "FAILURE", "CANCELED")
# How many asset keys a line names before it counts the rest.
NAMED_ASSETS = 3
POLL_SECONDS = 2.0


def describe_selection(
    assets: Iterable[str] | None, checks: Iterable[str] | None, job: str, tags: Mapping[str, str]
) -> str:
    """What a run materialises and its partitions: its assets (`raw/transactions,
    raw/customers`), or how many of each group's (`9 assets: marts 4, raw 4, intermediate 1`),
    else its checks or its job's name; then `[2025-01-01..2025-01-03]`."""
    keys = sorted(assets or ())
    if len(keys) > NAMED_ASSETS:
        groups = Counter(key.split("/")[0] for key in keys)
        what = f"{len(keys)} assets: " + ", ".join(f"{g} {n}" for g, n in groups.most_common())
    elif keys:
        what = ", ".join(keys)
    elif checks:
        what = f"checks {', '.join(sorted(checks))}"
    else:
        what = job
    partition = tags.get("dagster/partition")
    first = tags.get("dagster/asset_partition_range_start")
    last = tags.get("dagster/asset_partition_range_end")
    if partition:
        what += f" [{partition}]"
    elif first and last:
        what += f" [{first}..{last}]" if first != last else f" [{first}]"
    return what


def run_line(
    run_id: str,
    status: str,
    selection: str,
    seconds: float | None = None,
    error: str = "",
    url: str = "",
) -> str:
    """The console line of one run status, e.g.
    `run 02df2863 failed after 41 s: models/x/model: ValueError: ... (http://.../runs/02df...)`."""
    line = f"run {run_id[:8]} {STATUS_WORDS[status]}"
    if seconds is not None and status in ENDED:
        line += f" after {seconds:.0f} s"
    line += f": {selection}"
    if error:
        line += f" - {error}"
    if url and status == "FAILURE":
        line += f" ({url.rstrip('/')}/runs/{run_id})"
    return line


def root_cause(error) -> str:
    """The first line of the innermost cause of a Dagster `SerializableErrorInfo`: the user's
    exception rather than Dagster's wrapper around it."""
    while error.cause is not None:
        error = error.cause
    message = error.message.strip().splitlines()
    return message[0] if message else error.cls_name or ""


class RunWatcher:
    """Polls the instance every POLL_SECONDS from a thread and calls `emit` with a line for each
    run status it has not reported yet. Runs that changed before it started are not reported."""

    def __init__(self, emit: Callable[[str], None], ui_url: str = "") -> None:
        self._emit = emit
        self._ui_url = ui_url
        self._stop = threading.Event()
        self._reported: set[tuple[str, str]] = set()
        self._since = datetime.now(UTC)
        self._started = self._since.timestamp()
        self._thread = threading.Thread(target=self._loop, name="headwater-runs", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Report what changed since the last poll, then stop."""
        self._stop.set()
        self._thread.join(timeout=30)

    def _loop(self) -> None:
        import dagster as dg

        instance = None
        failing = False
        try:
            while True:
                stopping = self._stop.wait(POLL_SECONDS)
                try:
                    # Opened at the first poll: on a new instance, after the daemon made its
                    # storage.
                    instance = instance or dg.DagsterInstance.get()
                    self._poll(instance)
                    failing = False
                except Exception as e:  # a busy SQLite file: the next poll sees the same runs
                    if not failing:
                        self._emit(f"headwater: cannot read the runs ({type(e).__name__}: {e})")
                    failing = True
                if stopping:
                    return
        finally:
            if instance is not None:
                instance.dispose()

    def _poll(self, instance) -> None:
        import dagster as dg

        # A margin, because a run's update time is written before its transaction commits.
        now = datetime.now(UTC)
        since = self._since - timedelta(seconds=5)
        records = instance.get_run_records(filters=dg.RunsFilter(updated_after=since))
        self._since = now
        for record in sorted(records, key=lambda r: r.update_timestamp):
            status = self._new_status(record)
            if status:
                self._emit(self._line(instance, record, status))

    def _new_status(self, record) -> str | None:
        """The status of a run to report now, if any: only once, and only if it changed since
        the watcher started (a run that ended before is not news because the daemon touched
        it). A run that started and ended between two polls has only its end reported."""
        run = record.dagster_run
        status = run.status.value
        if status not in STATUS_WORDS or (run.run_id, status) in self._reported:
            return None
        self._reported.add((run.run_id, status))
        happened = record.end_time if status in ENDED else record.start_time
        if happened is not None and happened < self._started:
            return None
        return status

    def _line(self, instance, record, status: str) -> str:
        run = record.dagster_run
        selection = describe_selection(
            (key.to_user_string() for key in run.asset_selection or ()),
            (key.to_user_string() for key in run.asset_check_selection or ()),
            run.job_name,
            run.tags,
        )
        seconds = None
        if record.start_time and record.end_time:
            seconds = record.end_time - record.start_time
        error = _failure(instance, run.run_id) if status == "FAILURE" else ""
        return time.strftime("%H:%M:%S ") + run_line(
            run.run_id, status, selection, seconds, error, self._ui_url
        )


def _failure(instance, run_id: str) -> str:
    """`step: cause` of a failed run's first failed step, else its run failure message."""
    import dagster as dg

    for entry in instance.all_logs(run_id, of_type=dg.DagsterEventType.STEP_FAILURE):
        event = entry.dagster_event
        data = event.step_failure_data
        if data is not None and data.error is not None:
            return f"{event.step_key}: {root_cause(data.error)}"
    for entry in instance.all_logs(run_id, of_type=dg.DagsterEventType.RUN_FAILURE):
        return entry.message.splitlines()[0] if entry.message else ""
    return ""
