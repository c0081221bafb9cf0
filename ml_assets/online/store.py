"""The online store's backends: lists of byte strings by key, and single values.

Three backends with one interface, chosen by a URL (`open_store`):

    memory://                   this process only (tests, a notebook)
    /path/online.sqlite         a local file (the embedded default, `<state>/online.sqlite`):
                                SQLite in WAL mode, so the asset writes while the service reads
    redis://127.0.0.1:6379/0    production: Redis lists and strings

Every key is prefixed (`prefix`), so several stores share one Redis. No Dagster; `redis` is
imported only by the Redis backend.
"""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path
from typing import Protocol


class KeyValueStore(Protocol):
    """What the online feature store needs of a backend."""

    def get(self, key: str) -> bytes | None: ...

    def set(self, key: str, value: bytes) -> None: ...

    def push(self, items: list[tuple[str, bytes]]) -> None:
        """Append each value to the list at its key (created if missing)."""

    def lists(self, keys: list[str]) -> list[list[bytes]]:
        """The lists at `keys`, in order (an empty list for a missing key)."""

    def delete_prefix(self, prefix: str) -> int:
        """Delete every key starting with `prefix` (after the store's own); how many."""


class MemoryStore:
    """A store in this process's memory."""

    def __init__(self, prefix: str = "") -> None:
        self.prefix = prefix
        self._values: dict[str, bytes] = {}
        self._lists: dict[str, list[bytes]] = {}

    def get(self, key: str) -> bytes | None:
        return self._values.get(self.prefix + key)

    def set(self, key: str, value: bytes) -> None:
        self._values[self.prefix + key] = value

    def push(self, items: list[tuple[str, bytes]]) -> None:
        for key, value in items:
            self._lists.setdefault(self.prefix + key, []).append(value)

    def lists(self, keys: list[str]) -> list[list[bytes]]:
        return [list(self._lists.get(self.prefix + key, ())) for key in keys]

    def delete_prefix(self, prefix: str) -> int:
        full = self.prefix + prefix
        gone = [k for k in (*self._values, *self._lists) if k.startswith(full)]
        for key in gone:
            self._values.pop(key, None)
            self._lists.pop(key, None)
        return len(gone)


# SQLite's largest page size: see `SqliteStore.__init__`.
SQLITE_PAGE_SIZE = 65536


class SqliteStore:
    """A store in one SQLite file; one connection per thread."""

    def __init__(self, path: Path | str, prefix: str = "") -> None:
        self.path = Path(path)
        self.prefix = prefix
        self._local = threading.local()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        con = self._con()
        # Before anything is written (an existing file keeps its page size): an entity's list
        # entry is a few KB of Arrow, which at SQLite's default 4 KB pages spills into overflow
        # pages, which a delete walks one by one. With 64 KB pages, a day's snapshot (11k
        # entries, 55 MB) deletes the previous one in 0.07-0.19 s instead of 0.33-0.37 s; its
        # writes and an entity's lookup cost the same (docs/benchmarks.md).
        con.execute(f"pragma page_size={SQLITE_PAGE_SIZE}")
        con.execute("pragma journal_mode=wal")
        con.execute("create table if not exists kv (key text primary key, value blob)")
        con.execute(
            "create table if not exists lists (seq integer primary key autoincrement, "
            "key text not null, value blob)"
        )
        con.execute("create index if not exists lists_key on lists (key, seq)")
        con.commit()

    def _con(self) -> sqlite3.Connection:
        con = getattr(self._local, "con", None)
        if con is None:
            con = sqlite3.connect(self.path, timeout=30)
            # WAL without a sync per commit: a power cut may lose the last writes, never
            # corrupt the file; the store is rebuilt from the warehouse by the online asset
            con.execute("pragma synchronous=normal")
            self._local.con = con
        return con

    def get(self, key: str) -> bytes | None:
        row = self._con().execute("select value from kv where key = ?", (self.prefix + key,))
        found = row.fetchone()
        return None if found is None else bytes(found[0])

    def set(self, key: str, value: bytes) -> None:
        con = self._con()
        con.execute("insert or replace into kv values (?, ?)", (self.prefix + key, value))
        con.commit()

    def push(self, items: list[tuple[str, bytes]]) -> None:
        con = self._con()
        con.executemany(
            "insert into lists (key, value) values (?, ?)",
            [(self.prefix + k, v) for k, v in items],
        )
        con.commit()

    def lists(self, keys: list[str]) -> list[list[bytes]]:
        full = [self.prefix + k for k in keys]
        found: dict[str, list[bytes]] = {k: [] for k in full}
        marks = ",".join("?" * len(full))
        rows = self._con().execute(
            f"select key, value from lists where key in ({marks}) order by seq", full
        )
        for key, value in rows:
            found[key].append(bytes(value))
        return [found[k] for k in full]

    def delete_prefix(self, prefix: str) -> int:
        # keys are compared as text: [prefix, prefix + U+10FFFF) holds exactly those starting so
        low, high = self.prefix + prefix, self.prefix + prefix + "\U0010ffff"
        con = self._con()
        ((lists,),) = con.execute(
            "select count(distinct key) from lists where key >= ? and key < ?", (low, high)
        ).fetchall()
        n = con.execute("delete from kv where key >= ? and key < ?", (low, high)).rowcount
        con.execute("delete from lists where key >= ? and key < ?", (low, high))
        con.commit()
        return n + lists


class RedisStore:
    """A store in Redis: lists (RPUSH / LRANGE) and strings, one round trip per call."""

    def __init__(self, url: str, prefix: str = "") -> None:
        import redis

        self.prefix = prefix
        self.client = redis.Redis.from_url(url)

    def get(self, key: str) -> bytes | None:
        return self.client.get(self.prefix + key)

    def set(self, key: str, value: bytes) -> None:
        self.client.set(self.prefix + key, value)

    def push(self, items: list[tuple[str, bytes]]) -> None:
        # in pipelines of bounded size: a snapshot is one push per entity
        for start in range(0, len(items), 5000):
            pipe = self.client.pipeline(transaction=False)
            for key, value in items[start : start + 5000]:
                pipe.rpush(self.prefix + key, value)
            pipe.execute()

    def lists(self, keys: list[str]) -> list[list[bytes]]:
        pipe = self.client.pipeline(transaction=False)
        for key in keys:
            pipe.lrange(self.prefix + key, 0, -1)
        return pipe.execute()

    def delete_prefix(self, prefix: str) -> int:
        n = 0
        batch: list[bytes] = []
        for key in self.client.scan_iter(
            match=_glob_escape(self.prefix + prefix) + "*", count=1000
        ):
            batch.append(key)
            if len(batch) >= 1000:
                n += self.client.unlink(*batch)
                batch = []
        if batch:
            n += self.client.unlink(*batch)
        return n


def _glob_escape(text: str) -> str:
    """`text` as a literal in a Redis MATCH pattern."""
    return "".join("\\" + c if c in "*?[]\\" else c for c in text)


def open_store(url: str, prefix: str = "") -> KeyValueStore:
    """The backend a URL names: `memory://`, `redis://...` / `rediss://...`, or a file path
    (`sqlite:///abs/path` or a plain path)."""
    if url.startswith("memory://"):
        return MemoryStore(prefix)
    if url.startswith(("redis://", "rediss://", "unix://")):
        return RedisStore(url, prefix)
    path = url.removeprefix("sqlite://") if url.startswith("sqlite://") else url
    return SqliteStore(path, prefix)
