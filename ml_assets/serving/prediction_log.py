"""The served predictions' log: what `headwater serve` answered, kept for the graph.

The service appends one record per served (or shadow) prediction; the asset
`serving/<name>/predictions` reads a day of them back. The log is a folder of Parquet files,
`<log dir>/<model>/date=YYYY-MM-DD/<writer>-<seq>.parquet`, each written whole and renamed into
place, so a reader never sees half a file and a crashed service loses at most its unflushed
buffer (never a record of a request it did not answer: records are appended after the answer).

No Dagster import: the service process and the assets both use it.            (pure)
"""

from __future__ import annotations

import os
import threading
import uuid
from dataclasses import asdict, dataclass
from datetime import date, datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from headwater_core import config

ROLE_CHAMPION = "champion"
ROLE_SHADOW = "shadow"

SCHEMA = pa.schema(
    [
        ("request_id", pa.string()),
        ("served_at", pa.timestamp("us", tz="UTC")),
        ("score_date", pa.date32()),
        ("model_name", pa.string()),
        ("model_version", pa.string()),
        ("role", pa.string()),  # champion (answered) or shadow (logged only)
        ("keys_json", pa.string()),  # the spec's keys, {"transaction_id": ...}
        ("features_json", pa.string()),  # the features the model saw, by name
        ("score", pa.float64()),
        ("latency_ms", pa.float64()),
    ]
)


@dataclass(frozen=True)
class PredictionRecord:
    request_id: str
    served_at: datetime  # timezone-aware, UTC
    score_date: date  # the partition the prediction belongs to (the spec's score_date)
    model_name: str
    model_version: str
    role: str
    keys_json: str
    features_json: str
    score: float
    latency_ms: float


def log_dir() -> Path:
    """The log's root ($HEADWATER_SERVING_LOG_DIR, default `<state>/serving`)."""
    return Path(os.environ.get("HEADWATER_SERVING_LOG_DIR") or config.state_dir() / "serving")


def day_dir(root: Path, model_name: str, day: date) -> Path:
    return Path(root) / model_name / f"date={day.isoformat()}"


class PredictionLogWriter:
    """A buffer of records, flushed as one Parquet file per model and day. Thread-safe."""

    def __init__(self, root: Path, *, flush_rows: int = 1000) -> None:
        self.root = Path(root)
        self.flush_rows = flush_rows
        self._writer_id = uuid.uuid4().hex[:12]
        self._seq = 0
        self._buffer: list[PredictionRecord] = []
        self._lock = threading.Lock()

    def append(self, records: list[PredictionRecord]) -> None:
        with self._lock:
            self._buffer.extend(records)
            full = len(self._buffer) >= self.flush_rows
        if full:
            self.flush()

    def flush(self) -> int:
        """Write the buffer out; returns the number of records written."""
        with self._lock:
            records, self._buffer = self._buffer, []
            seq = self._seq
            self._seq += 1
        groups: dict[tuple[str, date], list[PredictionRecord]] = {}
        for record in records:
            groups.setdefault((record.model_name, record.score_date), []).append(record)
        for part, ((model_name, day), rows) in enumerate(sorted(groups.items())):
            target = day_dir(self.root, model_name, day)
            target.mkdir(parents=True, exist_ok=True)
            name = f"{self._writer_id}-{seq:06d}-{part:03d}.parquet"
            table = pa.Table.from_pylist([asdict(row) for row in rows], schema=SCHEMA)
            # written aside and renamed: a reader sees the whole file or none of it
            tmp = target / f".{name}.tmp"
            pq.write_table(table, tmp)
            tmp.replace(target / name)
        return len(records)


def read_day(root: Path, model_name: str, day: date) -> pa.Table:
    """Every record of a model's day (an empty table with the schema if there is none)."""
    files = sorted(day_dir(root, model_name, day).glob("*.parquet"))
    if not files:
        return SCHEMA.empty_table()
    return pa.concat_tables([pq.read_table(f, schema=SCHEMA) for f in files])
