"""Where a request's features come from: the `FeatureSource` interface and its default, the
request itself.

A source says what a request must carry (`request_fields`), turns request rows into the model's
feature values (`features`) and learns what was answered (`record`, as each answer is built;
`catch_up`, the work that can wait, after it is sent). The online
feature store implements the same interface: history features computed by the feature set's own
SQL from what the request carries.                                              (pure)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Protocol

# The kinds of value a request field takes: a number (int, float or bool; booleans are 1.0 /
# 0.0 as batch scoring makes them), a category (a string of a known vocabulary), or a key (a
# string or an integer that identifies the row and is logged, never scored).
Kind = Literal["number", "category", "key", "date"]


@dataclass(frozen=True)
class RequestField:
    """One field a request row carries."""

    kind: Kind
    categories: tuple[str, ...] | None = None  # the allowed values of a category, if known
    required: bool = True
    nullable: bool = False  # a number may be null: a missing value, as in the feature table


class FeatureSource(Protocol):
    """What a request carries and the features a model sees for it."""

    def request_fields(self) -> dict[str, RequestField]:
        """Each field a request row must (or may) carry, by name."""
        ...

    def features(self, rows: list[dict]) -> list[dict]:
        """The model's feature values for each (validated) request row, by feature name."""
        ...

    def record(self, rows: list[dict]) -> None:
        """Called with each answer's rows as the answer is built, before it is sent, in the
        order of the answers: from then on they are history, which the next request's
        features must see (a burst of payments seconds apart is what a fraud window is for).
        Must be cheap: a source keeping history (the online store) queues them."""
        ...

    def catch_up(self) -> None:
        """Called by the prediction logger's worker after the answer is sent: the work
        `record` queued, off the request's path."""
        ...


class RequestFeatureSource:
    """The request carries the spec's keys and features itself (nothing is looked up)."""

    def __init__(
        self,
        keys: tuple[str, ...],
        features: tuple[str, ...],
        categories: dict[str, tuple[str, ...] | None],
        score_date: str | None = None,
    ) -> None:
        self.keys = tuple(keys)
        self.feature_names = tuple(features)
        self.categories = dict(categories)
        self.score_date = score_date

    @classmethod
    def for_spec(cls, spec, categories: dict[str, tuple[str, ...]] | None = None):
        """The fields of a model spec: its keys and features; `categories` are the served
        model's vocabularies (a categorical feature without one accepts any string)."""
        known = categories or {}
        return cls(
            spec.keys,
            spec.features,
            {c: known.get(c) for c in spec.categorical},
            None if spec.score_date in spec.keys else spec.score_date,
        )

    def request_fields(self) -> dict[str, RequestField]:
        fields = {key: RequestField("key") for key in self.keys}
        if self.score_date:
            # the day the prediction belongs to in the log (default: today, UTC)
            fields[self.score_date] = RequestField("date", required=False)
        for name in self.feature_names:
            if name in self.categories:
                fields[name] = RequestField("category", self.categories[name])
            else:
                fields[name] = RequestField("number", nullable=True)
        return fields

    def features(self, rows: list[dict]) -> list[dict]:
        return [{name: row.get(name) for name in self.feature_names} for row in rows]

    def record(self, rows: list[dict]) -> None:
        """Nothing to learn: every feature arrived with its request."""

    def catch_up(self) -> None:
        """Nothing was queued."""
