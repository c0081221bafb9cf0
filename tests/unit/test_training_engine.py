"""The training engine's pure parts: which engine a setting chooses, how training rows are dealt
to the workers, a scheduler that does not answer, and scores computed by a given function.

The fits themselves run on a real two-worker cluster in
tests/integration/test_dask_training.py (slow tier)."""

import socket
import time

import numpy as np
import pytest

from ml_assets.models.dask_training import Placement, interleaved
from ml_assets.models.engine import (
    DASK_SCHEDULER_ENV,
    DaskUnreachable,
    SingleProcess,
    TrainingEngine,
)
from ml_assets.scores.scoring import score_window
from tests.unit.test_spec_identifiers import _keyword_spec, _keyword_warehouse


@pytest.mark.parametrize("rows, parts", [(10, 2), (11, 3), (2, 4), (0, 2), (1_000, 7)])
def test_rows_are_dealt_to_every_worker_once_in_near_equal_parts(rows, parts):
    dealt = interleaved(rows, parts)
    assert len(dealt) == parts
    assert sorted(np.concatenate(dealt).tolist()) == list(range(rows))
    sizes = [len(d) for d in dealt]
    assert max(sizes) - min(sizes) <= 1
    # round-robin, not contiguous: each part spans the whole (time-ordered) set
    if rows >= 2 * parts:
        assert all(d[-1] - d[0] >= rows - 2 * parts for d in dealt)


def test_the_machines_are_the_workers_holding_training_rows():
    assert Placement({"tcp://a:1": 1, "tcp://b:2": 1}).machines == 2
    assert Placement({"tcp://a:1": 1, "tcp://b:2": 0}).machines == 1


def test_no_scheduler_set_is_the_steps_own_process(monkeypatch):
    monkeypatch.delenv(DASK_SCHEDULER_ENV, raising=False)
    engine = TrainingEngine()
    assert engine.resolved_scheduler() == ""
    with engine.session() as session:
        assert isinstance(session, SingleProcess)
        assert session.predictor(object()) is None
        assert session.metadata() == {"training_engine": "single process"}


def test_the_field_wins_over_the_environment_read_when_a_step_starts(monkeypatch):
    engine = TrainingEngine()
    monkeypatch.setenv(DASK_SCHEDULER_ENV, "tcp://from-env:8786")
    assert engine.resolved_scheduler() == "tcp://from-env:8786"
    assert TrainingEngine(dask_scheduler="tcp://set:8786").resolved_scheduler() == (
        "tcp://set:8786"
    )


def test_a_scheduler_that_does_not_answer_fails_the_step_naming_it_and_the_setting():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        address = f"tcp://127.0.0.1:{s.getsockname()[1]}"
    # nothing listens there any more
    engine = TrainingEngine(dask_scheduler=address, connect_timeout_seconds=2)
    started = time.monotonic()
    with pytest.raises(DaskUnreachable) as raised:
        with engine.session():
            pass
    assert address in str(raised.value) and DASK_SCHEDULER_ENV in str(raised.value)
    assert time.monotonic() - started < 30


def test_a_window_is_scored_by_the_predictor_the_engine_gives():
    spec = _keyword_spec()
    con = _keyword_warehouse()
    frames = []

    def elsewhere(frame):
        frames.append(len(frame))
        return np.full(len(frame), 0.25)

    # no booster: the window's batches go to the engine's predictor alone
    scored = score_window(con, spec, None, "1", ("2025-01-05", "2025-01-07"), elsewhere)
    assert scored.rows == sum(frames) == 2 * 20
    assert scored.mean == pytest.approx(0.25)
    ((low, high),) = con.execute(
        "select min(score), max(score) from scores.fraud_classifier"
    ).fetchall()
    assert low == high == 0.25
