"""The whole contract at ingestion, through the real raw assets and dbt (issue 14, item 4): a
delivery with values outside a source's `accepted_range` loads, its bad rows are quarantined
naming line, column and test, the dbt build of staging and marts passes, and so does the weekly
raw audit (dbt's source tests over all of `raw`), because dbt's own test of that range never
sees a row ingestion let through; a row written to `raw` some other way fails the audit.
(Before, ingestion skipped the range and dbt failed the whole warehouse step: "Got 18 results,
configured to fail if != 0".)"""

import csv
import os
import subprocess
import sys
from pathlib import Path

import dagster as dg
import duckdb
import pytest

from data_platform.raw.audit import build_raw_audit
from headwater.headless import materialize_range
from headwater_core.config import dbt_project_dir
from ml_assets.models.artifacts import ModelArtifacts
from ml_assets.models.engine import TrainingEngine
from ml_assets.models.tracking import MlflowTracking
from ml_assets.monitoring.assets import MonitoringReports
from ml_assets.online.assets import OnlineStore
from tests.conftest import query

WAREHOUSE = dg.AssetSelection.groups("raw", "staging", "intermediate", "marts")


def _negative_amounts(path: Path, lines: list[int]) -> int:
    """Write a negative amount on the given lines (the header is line 1); returns data lines."""
    with path.open(newline="") as f:
        rows = list(csv.reader(f))
    amount = rows[0].index("amount")
    for line in lines:
        rows[line - 1][amount] = "-" + rows[line - 1][amount]
    with path.open("w", newline="") as f:
        csv.writer(f).writerows(rows)
    return len(rows) - 1


def _audit(instance, resources) -> dg.ExecuteInProcessResult:
    """The weekly raw audit job, run once."""
    job, _ = build_raw_audit()
    return job.execute_in_process(
        instance=instance,
        resources={"dbt": resources["dbt"], "warehouse": resources["warehouse"]},
        raise_on_error=False,
    )


def _checked(result: dg.ExecuteInProcessResult) -> dict[str, bool]:
    """The audit's dbt tests of raw/transactions, by name: passed or not, as the check
    evaluations of that asset the run reported."""
    found = {}
    for event in result.get_asset_check_evaluations():
        if event.asset_key == dg.AssetKey(["raw", "transactions"]):
            found[event.check_name] = event.passed
    return found


def _dbt_source_tests(warehouse, tmp_path) -> subprocess.CompletedProcess:
    """dbt's own tests of the payments sources, run on the loaded raw tables."""
    return subprocess.run(
        [
            str(Path(sys.executable).parent / "dbt"),
            "test",
            "--select",
            "source:payments.transactions",
            "--target-path",
            str(tmp_path / "dbt_target"),
        ],
        cwd=dbt_project_dir(),
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "HEADWATER_DUCKDB_PATH": str(warehouse.resolved_path())},
    )


# Slow tier: 49 s on the slowest machine of this kind yet (the default tier's 15 minutes).
@pytest.mark.slow
def test_out_of_range_rows_are_quarantined_and_dbt_passes(
    instance, resources, warehouse, landing, tmp_path
):
    path = sorted((landing / "transactions").glob("*.csv"))[0]
    day = path.stem.split("_")[-1]
    data_lines = _negative_amounts(path, [7, 120])
    resources = {
        **resources,
        # not used by the selected layers, but every asset passed to a run needs its resources
        "mlflow_tracking": MlflowTracking(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}"),
        "artifacts": ModelArtifacts(path=str(tmp_path / "ml")),
        "training_engine": TrainingEngine(),
        "online_store": OnlineStore(url=str(tmp_path / "online.sqlite")),
        "reports": MonitoringReports(path=str(tmp_path / "reports")),
    }
    result = materialize_range(
        day, day, instance=instance, resources=resources, selection=WAREHOUSE
    )
    assert result.success, result.failure

    assert query(
        warehouse,
        "select source_row, column_name, reason, value like '-%' from raw.quarantine "
        "where source_table = 'raw.transactions' order by 1",
    ) == [
        (7, "amount", "accepted_range: outside [0, ]", True),
        (120, "amount", "accepted_range: outside [0, ]", True),
    ]
    loaded = data_lines - 2
    assert query(warehouse, "select count(*) from raw.transactions") == [(loaded,)]
    assert query(warehouse, "select count(*) from marts.fct_transactions") == [(loaded,)]

    # The daily build ran none of the sources' tests (dagster-dbt reported each as an
    # observation of its raw asset when it did): the weekly audit does, and passes ...
    observed = instance.fetch_observations(dg.AssetKey(["raw", "transactions"]), limit=100)
    assert not [
        r
        for r in observed.records
        if "source_" in str(r.event_log_entry.asset_observation.metadata.get("unique_id"))
    ], observed.records
    audited = _audit(instance, resources)
    assert audited.success
    checks = _checked(audited)
    assert checks["source_accepted_range_payments_transactions_amount__0"], checks
    assert checks["source_unique_payments_transactions_transaction_id"], checks
    # ... as do dbt's own tests of the same source, run by hand ...
    passed = _dbt_source_tests(warehouse, tmp_path)
    assert passed.returncode == 0, passed.stdout[-3000:]
    assert "source_accepted_range_payments_transactions_amount" in passed.stdout
    # ... where a row ingestion would have refused makes it fail
    con = duckdb.connect(str(warehouse.resolved_path()))
    try:
        con.execute(
            "insert into raw.transactions select * replace (-1 as amount, 'x' as transaction_id) "
            "from raw.transactions limit 1"
        )
    finally:
        con.close()
    failed = _dbt_source_tests(warehouse, tmp_path)
    assert (
        failed.returncode != 0
        and "source_accepted_range_payments_transactions_amount" in failed.stdout
    )
    # ... and the audit fails, naming the test, having reported every other test's result
    failed_audit = _audit(instance, resources)
    assert not failed_audit.success
    checks = _checked(failed_audit)
    assert not checks["source_accepted_range_payments_transactions_amount__0"], checks
    assert checks["source_unique_payments_transactions_transaction_id"], checks
    failure = failed_audit.get_step_failure_events()[0].event_specific_data.error
    assert "source_accepted_range_payments_transactions_amount" in str(failure), failure
