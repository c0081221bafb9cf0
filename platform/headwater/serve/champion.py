"""Each model's champion (and challenger) as the registry names it, followed while serving.

A poll thread asks the registry every `poll_seconds` which versions hold the `champion` and
`challenger` aliases. When one moved (a promotion or a rollback), it loads the new version in the
background, while requests go on being answered by the old one, then swaps the slot's reference
in one assignment: a request reads the slot once, so it is answered wholly by one version and
none is dropped. A failed load (MLflow down) keeps the old version and is retried at the next
poll.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from headwater.serve.features import FeatureSource, RequestField
from headwater.serve.model import ServedModel
from headwater_core.names import CHALLENGER, CHAMPION


@dataclass
class ModelSlot:
    """What the service holds for one model spec."""

    spec: object  # ml_assets.models.spec.ModelSpec
    source: FeatureSource
    champion: ServedModel | None = None
    challenger: ServedModel | None = None  # shadowed: a version other than the champion's
    error: str | None = None  # the last failed poll or load
    loaded_at: float | None = None

    def request_fields(self, model: ServedModel) -> dict[str, RequestField]:
        """The source's fields, categorical ones restricted to `model`'s vocabulary."""
        fields = dict(self.source.request_fields())
        for name, spec in fields.items():
            if spec.kind == "category" and spec.categories is None and name in model.categories:
                fields[name] = RequestField("category", model.categories[name], spec.required)
        return fields


Loader = Callable[[object, object, str], ServedModel]  # (spec, VersionRef, alias) -> model


class ChampionHolder:
    """Every spec's slot, kept on the versions the registry's aliases name."""

    def __init__(self, tracking, slots: dict[str, ModelSlot], loader: Loader, poll_seconds=5.0):
        self.tracking = tracking
        self.slots = slots
        self.loader = loader
        self.poll_seconds = poll_seconds
        self.polls = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def refresh(self) -> None:
        """One poll: load whatever alias moved, and swap it in."""
        for slot in self.slots.values():
            try:
                self._refresh_slot(slot)
                slot.error = None
            except Exception as e:  # the service keeps answering with what it has
                slot.error = f"{type(e).__name__}: {e}"[:500]
        self.polls += 1

    def _refresh_slot(self, slot: ModelSlot) -> None:
        name = slot.spec.registered_model_name
        champion = self.tracking.version_by_alias(name, CHAMPION)
        if champion is None:
            slot.champion, slot.challenger = None, None
            return
        current = slot.champion
        if current is None or current.version != champion.version:
            model = self.loader(slot.spec, champion, CHAMPION)
            model = dataclasses.replace(model, request_fields=slot.request_fields(model))
            slot.champion = model  # the swap: one assignment
            slot.loaded_at = time.time()
        challenger = self.tracking.version_by_alias(name, CHALLENGER)
        if challenger is None or challenger.version == champion.version:
            slot.challenger = None
        elif slot.challenger is None or slot.challenger.version != challenger.version:
            slot.challenger = self.loader(slot.spec, challenger, CHALLENGER)

    def start(self) -> None:
        """Poll in a daemon thread until `stop` (the first poll at once)."""
        self._thread = threading.Thread(target=self._loop, name="champion-poll", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.is_set():
            self.refresh()
            self._stop.wait(self.poll_seconds)

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
