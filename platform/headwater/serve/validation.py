"""A prediction request checked before anything is scored: every problem named by row and field,
so the answer is a 422 that says what to fix, and nothing reaches the model or the log.  (pure)
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import date

from headwater.serve.features import RequestField

# Problems listed in one answer at most (a 10,000-row batch of bad rows is not a 10,000-line
# answer).
MAX_PROBLEMS = 20


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a request: where (row index, field) and what."""

    message: str
    field: str | None = None
    row: int | None = None

    def as_dict(self) -> dict:
        out: dict = {}
        if self.row is not None:
            out["row"] = self.row
        if self.field is not None:
            out["field"] = self.field
        out["message"] = self.message
        return out


class InvalidRequest(ValueError):
    """The request cannot be scored; `problems` name each field."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems[:MAX_PROBLEMS]
        super().__init__("; ".join(_describe(p) for p in self.problems))


def _describe(p: Problem) -> str:
    where = ".".join(x for x in (f"rows[{p.row}]" if p.row is not None else "", p.field or "") if x)
    return f"{where}: {p.message}" if where else p.message


def request_rows(body: object, max_rows: int) -> list[dict]:
    """The rows of a request body: `{"rows": [{...}, ...]}` or `{"row": {...}}`."""
    if not isinstance(body, dict) or not ({"rows", "row"} & set(body)):
        raise InvalidRequest([Problem('the body must be {"rows": [{...}, ...]} or {"row": {...}}')])
    extra = sorted(set(body) - {"rows", "row"})
    if extra or len(body) != 1:
        field = extra[0] if extra else "row"
        raise InvalidRequest([Problem('give either "rows" or "row", nothing else', field)])
    rows = body["rows"] if "rows" in body else [body["row"]]
    if not isinstance(rows, list) or not rows:
        raise InvalidRequest([Problem("must be a non-empty list of objects", "rows")])
    if len(rows) > max_rows:
        raise InvalidRequest(
            [Problem(f"{len(rows)} rows in one request; at most {max_rows} are accepted", "rows")]
        )
    problems = [
        Problem("must be an object", row=i) for i, r in enumerate(rows) if not isinstance(r, dict)
    ]
    if problems:
        raise InvalidRequest(problems)
    return rows


def check_rows(rows: list[dict], fields: dict[str, RequestField]) -> None:
    """Raise InvalidRequest unless every row carries exactly the fields, each of its kind."""
    problems: list[Problem] = []
    for i, row in enumerate(rows):
        for name in sorted(set(row) - set(fields)):
            problems.append(Problem("unknown field", name, i))
        for name, spec in fields.items():
            if name not in row:
                if spec.required:
                    problems.append(Problem("missing", name, i))
                continue
            message = value_problem(row[name], spec)
            if message:
                problems.append(Problem(message, name, i))
        if len(problems) >= MAX_PROBLEMS:
            break
    if problems:
        raise InvalidRequest(problems)


def value_problem(value: object, spec: RequestField) -> str | None:
    """What is wrong with one value of a field (None: nothing)."""
    if value is None:
        return None if spec.nullable or not spec.required else "must not be null"
    if spec.kind == "number":
        if isinstance(value, bool):
            return None
        if not isinstance(value, int | float):
            return f"must be a number, got {type(value).__name__} {value!r:.40}"
        if isinstance(value, float) and not math.isfinite(value):
            return f"must be a finite number, got {value}"
        return None
    if spec.kind == "category":
        if not isinstance(value, str):
            return f"must be a string, got {type(value).__name__} {value!r:.40}"
        if spec.categories is not None and value not in spec.categories:
            shown = ", ".join(spec.categories[:20])
            return f"unknown category {value!r:.40}; the model knows: {shown}"
        return None
    if spec.kind == "date":
        try:
            date.fromisoformat(value) if isinstance(value, str) else None
        except ValueError:
            return f"must be a date YYYY-MM-DD, got {value!r:.40}"
        return None if isinstance(value, str) else "must be a date string YYYY-MM-DD"
    # a key
    if isinstance(value, bool) or not isinstance(value, str | int):
        return f"must be a string or an integer, got {type(value).__name__}"
    return None
