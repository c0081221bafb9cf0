"""After the answer: every served prediction logged, the challenger scored in the shadow.

The request handler only puts what it served on a queue (after its response is sent); one
worker thread appends the champion's records to the prediction log, scores the challenger on
the same features and logs those as `shadow` records, and lets the feature source catch up
with the answers it was told of (`FeatureSource.catch_up`: the online store's recording). The
answer never waits for any of it, and nothing that was not served is logged. The log is
flushed every `flush_seconds`, every `flush_rows` records and when the service stops.
"""

from __future__ import annotations

import json
import queue
import threading
import time
from dataclasses import dataclass
from datetime import UTC, date, datetime

from headwater.serve.champion import ModelSlot
from headwater.serve.model import ServedModel
from ml_assets.serving.prediction_log import (
    ROLE_CHAMPION,
    ROLE_SHADOW,
    PredictionLogWriter,
    PredictionRecord,
)


@dataclass(frozen=True)
class Served:
    """One answered request, as the handler hands it over."""

    slot: ModelSlot
    model: ServedModel
    challenger: ServedModel | None
    request_id: str
    served_at: datetime
    rows: list[dict]
    features: list[dict]
    scores: list[float]
    latency_ms: float


class PredictionLogger:
    """The queue and the worker that logs served predictions and scores the shadow."""

    def __init__(self, writer: PredictionLogWriter, flush_seconds: float = 1.0) -> None:
        self.writer = writer
        self.flush_seconds = flush_seconds
        self.errors = 0
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="prediction-log", daemon=True)

    def start(self) -> PredictionLogger:
        self._thread.start()
        return self

    def submit(self, served: Served) -> None:
        self._queue.put(served)

    def stop(self) -> None:
        """Log everything queued, flush, and stop the worker."""
        self._queue.put(None)
        self._thread.join(timeout=60)
        self.writer.flush()

    def _run(self) -> None:
        last_flush = time.monotonic()
        while True:
            try:
                item = self._queue.get(timeout=self.flush_seconds)
            except queue.Empty:
                item = ...
            if item is None:
                return
            if item is not ...:
                try:
                    self._log(item)
                except Exception:  # a bad record must not stop the log of the next ones
                    self.errors += 1
            if time.monotonic() - last_flush >= self.flush_seconds:
                self.writer.flush()
                last_flush = time.monotonic()

    def _log(self, served: Served) -> None:
        records = _records(served, served.model, ROLE_CHAMPION, served.scores, served.latency_ms)
        if served.challenger is not None:
            started = time.perf_counter()
            scores = served.challenger.predict(served.features)
            latency = (time.perf_counter() - started) * 1000
            records += _records(served, served.challenger, ROLE_SHADOW, scores, latency)
        self.writer.append(records)
        served.slot.source.catch_up()


def _records(
    served: Served, model: ServedModel, role: str, scores: list[float], latency_ms: float
) -> list[PredictionRecord]:
    spec = served.slot.spec
    records = []
    for row, features, score in zip(served.rows, served.features, scores):
        records.append(
            PredictionRecord(
                request_id=served.request_id,
                served_at=served.served_at,
                score_date=_score_date(row.get(spec.score_date), served.served_at),
                model_name=spec.name,
                model_version=model.version,
                role=role,
                keys_json=json.dumps({k: row.get(k) for k in spec.keys}, default=str),
                features_json=json.dumps(features, default=str),
                score=float(score),
                latency_ms=latency_ms,
            )
        )
    return records


def _score_date(value: object, served_at: datetime) -> date:
    """The log partition of a row: its score date if it carries one, else the day served."""
    if isinstance(value, str):
        try:
            return date.fromisoformat(value[:10])
        except ValueError:
            pass
    return served_at.date()


def now_utc() -> datetime:
    return datetime.now(UTC)
