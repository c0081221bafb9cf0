"""The contract's rules as SQL: one row per broken rule of a staged file.

Each rule the contract declares (`not_null`, the column's `data_type`, `accepted_values`,
`unique` within the file and against other loaded partitions, the partition's date) becomes a
query over the staged rows (`_staged`), and the lines DuckDB could not split (`_csv_errors`)
join them as violations of their own. No Dagster import here.

A value is never changed quietly on its way in: a timestamp with a UTC offset or a time zone is
converted to UTC (a naive one is UTC already), and a decimal with more fractional digits than
its declared scale breaks the contract instead of being rounded.
"""

from __future__ import annotations

import re

from data_platform.raw.contract import ColumnContract, SourceContract

_DECIMAL = re.compile(r"(?:decimal|numeric)\s*\(\s*(\d+)\s*,\s*(\d+)\s*\)")
_TIMESTAMP_TYPES = ("timestamp", "datetime")


def quote(value: str) -> str:
    """`value` as a SQL string literal."""
    return "'" + value.replace("'", "''") + "'"


def typed(column: str, data_type: str, cast: str = "try_cast") -> str:
    """SQL for the text `column` as `data_type` (`cast` = `try_cast`: null where it is not one).

    A timestamp is read as TIMESTAMPTZ and given as its UTC time, so an offset or a zone in the
    text is applied instead of dropped. This needs the session's TimeZone to be UTC, so that a
    naive timestamp keeps its wall time (`ingest.load_file` sets it for the load)."""
    if data_type in _TIMESTAMP_TYPES:
        return f"timezone('UTC', {cast}({column} as timestamptz))"
    return f"{cast}({column} as {data_type})"


def in_window(contract: SourceContract, partition_key: str, at: str) -> str:
    """SQL true where the timestamp expression `at` falls in the partition's window (its
    [start, end) in UTC, at the project's grain)."""
    start, end = (
        f"timestamp '{t:%Y-%m-%d %H:%M:%S}'" for t in contract.partitions.window(partition_key)
    )
    return f"({at} >= {start} and {at} < {end})"


def other_partition(contract: SourceContract, partition_key: str, table: str) -> str:
    """SQL true where a loaded row of `table` belongs to another partition than `partition_key`
    (`_partition_date` is the partition's first day; hours of one day share it)."""
    other_day = f"{table}._partition_date <> date {quote(partition_key[:10])}"
    if contract.partitions.grain != "hourly" or not contract.partition_column:
        return other_day
    at = f'{table}."{contract.partition_column}"'
    return f"({other_day} or not {in_window(contract, partition_key, at)})"


def _finer_than_scale(col: str, data_type: str) -> str | None:
    """SQL true where a value that casts to the declared decimal had more fractional digits
    than its scale (the cast would round it); trailing zeros do not count."""
    match = _DECIMAL.fullmatch(data_type)
    if not match:
        return None
    scale = int(match.group(2))
    wide = f"decimal(38, {max(scale, 18)})"
    return (
        f"try_cast({col} as {data_type}) is not null and ("
        f"length(rtrim(regexp_extract(trim({col}), '\\.(\\d+)$', 1), '0')) > {scale} "
        f"or try_cast({col} as {wide}) <> try_cast({col} as {data_type}))"
    )


def _column_checks(
    contract: SourceContract, c: ColumnContract, partition_date: str | None
) -> list[str]:
    col = f'"{c.name}"'
    name = quote(c.name)
    checks: list[str] = []
    if c.required:
        checks.append(
            f"select _source_row, {name}, 'null in required column', {col} "
            f"from _staged where {col} is null or trim({col}) = ''"
        )
    if c.data_type != "varchar":
        checks.append(
            f"select _source_row, {name}, {quote('not a valid ' + c.data_type)}, {col} "
            f"from _staged where trim({col}) <> '' and {typed(col, c.data_type)} is null"
        )
    finer = _finer_than_scale(col, c.data_type)
    if finer:
        reason = quote("more decimal places than " + c.data_type)
        checks.append(f"select _source_row, {name}, {reason}, {col} from _staged where {finer}")
    if c.accepted_values:
        allowed = ", ".join(quote(v) for v in c.accepted_values)
        reason = quote(f"not one of {list(c.accepted_values)}")
        checks.append(
            f"select _source_row, {name}, {reason}, {col} "
            f"from _staged where {col} is not null and {col} not in ({allowed})"
        )
    if c.unique:
        checks.append(
            f"select _source_row, {name}, 'duplicate of row ' || first_row || ' in this file', "
            f"{col} from (select _source_row, {col}, "
            f"min(_source_row) over (partition by {col}) as first_row "
            f"from _staged where {col} is not null) where _source_row <> first_row"
        )
        if not contract.snapshot and partition_date is not None:
            checks.append(
                f"select s._source_row, {name}, "
                f"'duplicate of a row already loaded from ' || any_value(t._source_file), "
                f"s.{col} from _staged s join {contract.qualified_name} t "
                f"on t.{col} = {typed('s.' + col, c.data_type)} "
                f"where {other_partition(contract, partition_date, 't')} "
                f"group by s._source_row, s.{col}"
            )
    return checks


def violations_sql(contract: SourceContract, partition_date: str | None) -> str:
    """SQL over `_staged` giving one row per broken rule: (source_row, column_name, reason, value).

    `partition_date` is the key of the partition the file belongs to; rows whose partition
    column falls outside its window break the contract. Duplicates are checked within the file
    and, for partitioned tables, against rows already loaded for other partitions.
    """
    checks = [q for c in contract.columns for q in _column_checks(contract, c, partition_date)]
    if contract.partition_column and partition_date is not None:
        at = typed(f'"{contract.partition_column}"', "timestamp")
        checks.append(
            f"select _source_row, {quote(contract.partition_column)}, "
            f'{quote("outside partition " + partition_date)}, "{contract.partition_column}" '
            f"from _staged where {at} is not null "
            f"and not {in_window(contract, partition_date, at)}"
        )
    checks.append(
        "select line, column_name, error_type || ': ' || error_message, csv_line from _csv_errors"
    )
    return "\nunion all\n".join(checks)
