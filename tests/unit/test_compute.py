"""The thread and memory rules (headwater_core.compute) and the resources that carry them."""

import duckdb
import pytest

from headwater_core import compute
from headwater_core.resources import Warehouse
from ml_assets.models.tracking import MlflowTracking

VARIABLES = (
    compute.THREADS_VARIABLE,
    compute.DUCKDB_THREADS_VARIABLE,
    compute.DUCKDB_MEMORY_VARIABLE,
    compute.SMALL_ROWS_VARIABLE,
    compute.WAIT_POLICY_VARIABLE,
)


@pytest.fixture(autouse=True)
def _no_settings(monkeypatch):
    for name in VARIABLES:
        monkeypatch.delenv(name, raising=False)


def test_a_small_training_set_gets_one_thread_and_a_large_one_the_budget(monkeypatch):
    monkeypatch.setenv(compute.THREADS_VARIABLE, "3")
    assert compute.training_threads(compute.SMALL_TRAINING_ROWS - 1) == 1
    assert compute.training_threads(compute.SMALL_TRAINING_ROWS) == 3
    # the resource's values win over the variables; small_rows 0 turns the rule off
    assert compute.training_threads(10, value=4, small_rows=0) == 4
    assert MlflowTracking(training_threads=5, small_training_rows=50).threads_for(49) == 1
    assert MlflowTracking(training_threads=5, small_training_rows=50).threads_for(50) == 5


def test_the_thread_budget_defaults_to_the_cores_this_process_may_use():
    assert compute.threads() == compute.available_cores() >= 1
    assert compute.duckdb_threads() == compute.threads()


def test_every_warehouse_connection_gets_the_resource_threads_and_memory_limit(tmp_path):
    warehouse = Warehouse(path=str(tmp_path / "w.duckdb"), threads=1, memory_limit="512MB")
    with warehouse.connect() as con:
        ((threads, limit),) = con.sql(
            "select current_setting('threads'), current_setting('memory_limit')"
        ).fetchall()
    assert threads == 1
    assert limit.startswith("488.") and limit.endswith("MiB")  # 512 MB
    assert warehouse.duckdb_settings() == {
        compute.DUCKDB_THREADS_VARIABLE: "1",
        compute.DUCKDB_MEMORY_VARIABLE: "512MB",
    }


def test_the_memory_limit_defaults_to_the_declared_one_and_follows_the_variable(monkeypatch):
    assert compute.duckdb_memory_limit() == compute.DEFAULT_DUCKDB_MEMORY_LIMIT
    monkeypatch.setenv(compute.DUCKDB_MEMORY_VARIABLE, "3GB")
    con = duckdb.connect()
    compute.apply_duckdb_settings(con)
    ((limit,),) = con.sql("select current_setting('memory_limit')").fetchall()
    assert limit.startswith("2.7") and limit.endswith("GiB")  # 3 GB


def test_openmp_waits_passively_unless_the_environment_says_otherwise(monkeypatch):
    monkeypatch.delenv("OMP_WAIT_POLICY", raising=False)
    compute.prepare_openmp()
    assert compute.os.environ["OMP_WAIT_POLICY"] == "PASSIVE"
    monkeypatch.setenv("OMP_WAIT_POLICY", "ACTIVE")
    compute.prepare_openmp()
    assert compute.os.environ["OMP_WAIT_POLICY"] == "ACTIVE"
    monkeypatch.delenv("OMP_WAIT_POLICY")
    compute.prepare_openmp("default")
    assert "OMP_WAIT_POLICY" not in compute.os.environ


def test_a_frozen_heap_is_left_out_of_full_collections_and_given_back_after():
    """What was alive when the block began is frozen (not scanned by a full collection), what
    the block makes is collected as usual, and everything is given back at its end, nested
    blocks and a failing block included."""
    import gc

    frozen_heap = compute.frozen_heap

    class Cycle:
        def __init__(self):
            self.me = self

    assert gc.get_freeze_count() == 0
    with frozen_heap():
        frozen = gc.get_freeze_count()
        assert frozen > 1000  # the interpreter's and the libraries' objects
        Cycle()  # garbage made inside the block
        assert gc.collect() >= 1
        # Nested: nothing more frozen (a second freeze would take these 1,000 in), nothing given
        # back early. The count may still drop a little: a frozen object freed by reference
        # counting (in any thread) leaves the frozen set on its own.
        made = [Cycle() for _ in range(1000)]
        with frozen_heap():
            assert 0 < gc.get_freeze_count() <= frozen
        assert 0 < gc.get_freeze_count() <= frozen
        del made
    assert gc.get_freeze_count() == 0
    with pytest.raises(RuntimeError), frozen_heap():
        raise RuntimeError("a failing run")
    assert gc.get_freeze_count() == 0
