"""A training set's train window sampled by the spec's `sampling` rule, in SQL: the rows the rule
drops are never read into Python. No Dagster.

When the train window holds more matured rows than `sampling.max_train_rows`, a binary
classifier keeps every positive row and a hash sample of its negative rows, at the rate that
brings the window to about the budget; a regressor keeps a hash sample of all its rows. A row is
kept when `unit_hash` of the seed and its keys (the first 52 bits of an md5, as a number in
[0, 1)) is below the rate, so a re-run keeps the same rows, and a row kept at one rate is kept at
every higher one (the sample grows with the budget, it is not redrawn). Each row kept at rate r
carries the weight 1/r (`train.WEIGHT_COLUMN`, every other row 1), so LightGBM sees the window's
real class balance and a classifier's probabilities stay calibrated. The validation and test
windows are never sampled: early stopping, the test metrics and the promotion gate see every row.

What the rule did (`Sample`) travels with the rows as the Arrow schema's metadata, into the
training set's Parquet file and from there to the model's MLflow run.
"""

import hashlib
import json
from dataclasses import asdict, dataclass
from datetime import date, datetime

import pyarrow as pa
import pyarrow.compute as pc

from ml_assets.models.spec import ModelSpec, ident
from ml_assets.models.train import (
    EVENT_DATE_COLUMN,
    LABEL_COLUMN,
    WEIGHT_COLUMN,
    training_rows_sql,
    training_set_sql,
)

METADATA_KEY = b"headwater.sampling"
HASH_BITS = 52  # as many as a double holds exactly: the SQL and Python hashes agree


@dataclass(frozen=True)
class Sample:
    """What the sampling rule did to one training set's train window."""

    rule: str
    rate: float
    """Share of the sampled rows kept (a classifier's negatives, a regressor's rows); 1: the
    window was within the budget and nothing was dropped."""
    train_rows_before: int
    train_rows_after: int
    train_positives: int
    """Positive rows of the train window (a classifier's; 0 for a regressor), all kept."""

    def as_metadata(self) -> dict[str, str | float | int]:
        """The figures under the names the training-set asset and the MLflow run show."""
        return {f"sampling_{k}": v for k, v in asdict(self).items()}


def rule_of(spec: ModelSpec) -> str:
    """The spec's rule in words (what a reader of the run sees)."""
    rule = spec.sampling
    kept = "every positive row, negatives" if spec.objective == "binary" else "rows"
    return (
        f"train window capped at {rule.max_train_rows:,} rows: {kept} kept by md5 hash of "
        f"({', '.join(spec.keys)}) with seed {rule.seed}, weighted 1/rate"
    )


def unit_hash_sql(spec: ModelSpec) -> str:
    """SQL for each row's number in [0, 1): the first HASH_BITS bits of md5('seed|key|...')."""
    keys = ", ".join(f"cast({ident(k)} as varchar)" for k in spec.keys)
    digits = HASH_BITS // 4
    return (
        f"cast('0x' || left(md5(concat_ws('|', '{int(spec.sampling.seed)}', {keys})), {digits})"
        f" as bigint) / {float(2**HASH_BITS)!r}"
    )


def unit_hash(seed: int, *keys) -> float:
    """`unit_hash_sql` in Python, for keys whose text is the same in DuckDB (integers, text)."""
    text = "|".join([str(seed), *(str(k) for k in keys)])
    return int(hashlib.md5(text.encode()).hexdigest()[: HASH_BITS // 4], 16) / 2**HASH_BITS


def sample_rate(spec: ModelSpec, rows: int, positives: int) -> float:
    """The rate that brings a train window of `rows` (`positives` of them positive) to about
    `sampling.max_train_rows`; 1 when it is within the budget."""
    budget = spec.sampling.max_train_rows
    if rows <= budget:
        return 1.0
    if spec.objective != "binary":
        return budget / rows
    if positives >= budget:
        raise ValueError(
            f"{spec.source or spec.name}: sampling.max_train_rows ({budget:,}) is not above the "
            f"train window's {positives:,} positive rows, which are all kept: raise it"
        )
    return (budget - positives) / (rows - positives)


def _sampled(spec: ModelSpec) -> str:
    """The condition of a row the rule may drop: a train-window row, negative for a classifier
    (rows before `$since` are not read at all)."""
    sampled = f"{EVENT_DATE_COLUMN} < $until"
    return sampled + (f" and {LABEL_COLUMN} = 0" if spec.objective == "binary" else "")


def counts_sql(spec: ModelSpec, since: bool) -> str:
    """The train window's matured rows and positive rows (before $until)."""
    return f"""
        select count(*), count(*) filter (where {LABEL_COLUMN} = 1)
        from ({training_rows_sql(spec, since)}) t
        where {EVENT_DATE_COLUMN} < $until
    """


def sampled_sql(spec: ModelSpec, since: bool) -> str:
    """`training_set_sql`'s rows, the train window's sampled at $rate, with their weight."""
    keys = ", ".join(ident(k) for k in spec.keys)
    sampled = _sampled(spec)
    return f"""
        select *, case when {sampled} then 1.0 / $rate else 1.0 end as {WEIGHT_COLUMN}
        from ({training_rows_sql(spec, since)}) t
        where not ({sampled}) or {unit_hash_sql(spec)} < $rate
        order by _event_time, {keys}
    """


def _run(con, sql: str, values: dict):
    """`sql` with the $name parameters it uses bound (as DuckDB's positional ones)."""
    used = [name for name in values if f"${name}" in sql]
    for position, name in enumerate(used, start=1):
        sql = sql.replace(f"${name}", f"${position}")
    return con.sql(sql, params=[values[name] for name in used])


def sampled_rows(
    con, spec: ModelSpec, cutoff: datetime, since: date | None, until: date
) -> pa.Table:
    """The matured rows as `training_set.matured_rows` reads them, the train window (events
    before `until`) sampled by the spec's rule; what it did is in the schema's metadata
    (`sample_of`)."""
    values: dict = {"cutoff": cutoff, "until": until}
    if since is not None:
        values["since"] = since
    ((rows, positives),) = _run(con, counts_sql(spec, since is not None), values).fetchall()
    rate = sample_rate(spec, rows, positives)
    if rate < 1:
        sql = sampled_sql(spec, since is not None)
        table = _run(con, sql, {**values, "rate": rate}).to_arrow_table()
    else:
        table = _run(con, training_set_sql(spec, since is not None), values).to_arrow_table()
    in_train = pc.less(table.column(EVENT_DATE_COLUMN), pa.scalar(until, pa.date32()))
    sample = Sample(
        rule=rule_of(spec),
        rate=rate,
        train_rows_before=int(rows),
        train_rows_after=int(pc.sum(pc.cast(in_train, pa.int64())).as_py() or 0),
        train_positives=int(positives) if spec.objective == "binary" else 0,
    )
    metadata = {**(table.schema.metadata or {}), METADATA_KEY: json.dumps(asdict(sample))}
    return table.replace_schema_metadata(metadata)


def sample_of(table: pa.Table) -> Sample | None:
    """What the sampling rule did to a training set (None: the spec has no rule)."""
    raw = (table.schema.metadata or {}).get(METADATA_KEY)
    return None if raw is None else Sample(**json.loads(raw))
