"""The online feature store as the service's feature source (`--feature-source online`).

The store's `OnlineFeatureSource` (ml_assets/online/source.py) computes a request's history
features with the feature set's own dbt SQL; this adapter only translates the raw contract's
column types into the service's request fields, so validation (422 naming the field) happens
before the SQL runs.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from typing import Literal, get_args, get_origin

from headwater.serve.features import RequestField

log = logging.getLogger(__name__)


def request_fields_of(types: dict[str, object]) -> dict[str, RequestField]:
    """The service's fields for the store's (name -> Python type or `Literal[...]`): accepted
    values are categories, numbers and booleans numbers, anything else (ids, timestamps as ISO
    strings) a key the SQL casts as ingestion casts a file."""
    fields: dict[str, RequestField] = {}
    for name, kind in types.items():
        if get_origin(kind) is Literal:
            fields[name] = RequestField("category", tuple(str(v) for v in get_args(kind)))
        elif kind in (int, float, bool):
            fields[name] = RequestField("number", nullable=True)
        else:
            fields[name] = RequestField("key")
    return fields


class OnlineRequestSource:
    """The service's `FeatureSource` over the online store of one model spec's feature set.

    Answered rows become history in the order of the answers: `record` queues them as each
    answer is built, and they are applied (the path's SQL run again, the entities' rows
    appended in the store) by the logger's worker after the answer is sent (`catch_up`), or,
    if the next request comes first, by that request before its features are computed. So a
    request sees every request answered before it, as the feature table's windows see every
    earlier transaction, and pays for the recording only when it follows too closely to
    have let the worker do it.
    """

    def __init__(self, source) -> None:
        self.source = source  # ml_assets.online.source.OnlineFeatureSource
        self._pending: deque[list[dict]] = deque()  # answered, not yet in the store
        self._applying = threading.Lock()  # one applier at a time: the answers' order holds
        self.record_errors = 0
        self.last_record_error: str | None = None

    @classmethod
    def open(cls, spec, store_url: str = "", engine: str = "auto"):
        """The store named by `store_url`, else $HEADWATER_ONLINE_STORE, else the embedded
        SQLite file (the `online_store` resource's own rule); `engine` runs the feature SQL
        (ml_assets.online.source.ENGINES)."""
        from ml_assets.online.assets import OnlineStore
        from ml_assets.online.source import OnlineFeatureSource

        return cls(OnlineFeatureSource(OnlineStore(url=store_url).open(), spec, engine))

    def request_fields(self) -> dict[str, RequestField]:
        return request_fields_of(self.source.request_fields())

    def features(self, rows: list[dict]) -> list[dict]:
        self.catch_up()
        return self.source.features(rows)

    def record(self, rows: list[dict]) -> None:
        self._pending.append(rows)

    def catch_up(self) -> None:
        with self._applying:
            while self._pending:
                rows = self._pending.popleft()
                try:
                    self.source.record(rows)
                except Exception as error:  # e.g. a new snapshot already holds their day:
                    # not this request's fault, and the next ones still count
                    self.record_errors += 1
                    self.last_record_error = f"{type(error).__name__}: {error}"
                    log.warning("a served request was not added to the history: %s", error)

    def health(self) -> dict:
        """What `GET /v1/models/{name}` shows of the history's upkeep: served requests that
        could not be added to it (their features are missing from later requests' windows)."""
        return {"record_errors": self.record_errors, "last_record_error": self.last_record_error}
