"""The contract's rules as SQL: one row per broken rule of a staged file.

Each rule the contract declares becomes a query over the staged rows (`_staged`): the column's
`data_type`, the partition's date, and every declared test (`not_null`, `accepted_values`,
`unique` and `unique_combination_of_columns` within the file and against other loaded
partitions, `relationships` against the loaded parent table, `accepted_range` and
`expression_is_true` on the typed values). A violation's reason starts with the test's name.
The lines the reader could not split (`_csv_errors`) join them as violations of their own.
No Dagster import here.

A value is never changed quietly on its way in: a timestamp with a UTC offset or a time zone is
converted to UTC (a naive one is UTC already), and a decimal with more fractional digits than
its declared scale breaks the contract instead of being rounded.
"""

from __future__ import annotations

import re

from data_platform.raw.contract import ColumnContract, RowTest, SourceContract

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
            f"select _source_row, {name}, 'not_null: null in required column', {col} "
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
        reason = quote(f"accepted_values: not one of {list(c.accepted_values)}")
        checks.append(
            f"select _source_row, {name}, {reason}, {col} "
            f"from _staged where {col} is not null and {col} not in ({allowed})"
        )
    if c.unique:
        checks.append(
            f"select _source_row, {name}, "
            f"'unique: duplicate of row ' || first_row || ' in this file', {col} "
            f"from (select _source_row, {col}, "
            f"min(_source_row) over (partition by {col}) as first_row "
            f"from _staged where {col} is not null) where _source_row <> first_row"
        )
        if not contract.snapshot and partition_date is not None:
            checks.append(
                f"select s._source_row, {name}, "
                f"'unique: duplicate of a row already loaded from ' || any_value(t._source_file), "
                f"s.{col} from _staged s join {contract.qualified_name} t "
                f"on t.{col} = {typed('s.' + col, c.data_type)} "
                f"where {other_partition(contract, partition_date, 't')} "
                f"group by s._source_row, s.{col}"
            )
    return checks


def _typed_rows(contract: SourceContract) -> str:
    """The staged rows with every column as its declared type (null where it is not one)."""
    typed_columns = ", ".join(
        f'{typed(chr(34) + c.name + chr(34), c.data_type)} as "{c.name}"' for c in contract.columns
    )
    return f"(select _source_row, {typed_columns} from _staged)"


def _named_columns(contract: SourceContract, test: RowTest) -> str:
    """The column a test is on; for a table-level one, the declared columns it names."""
    if test.column:
        return test.column
    if test.name == "unique_combination_of_columns":
        return ", ".join(test.arg("combination_of_columns"))
    expression = str(test.arg("expression"))
    return ", ".join(c for c in contract.column_names if re.search(rf"\b{c}\b", expression))


def _row_test_checks(contract: SourceContract, partition_date: str | None) -> list[str]:
    """The declared `RowTest`s: a row fails where its typed values make the test's SQL true;
    a combination of columns must be unique in the file and against other loaded partitions."""
    checks = []
    for test in contract.row_tests:
        name = quote(_named_columns(contract, test))
        value = f'"{test.column}"' if test.column else "null"
        if test.name != "unique_combination_of_columns":
            checks.append(
                f"select _source_row, {name}, {quote(test.describe())}, {value} from _staged "
                f"where _source_row in (select _source_row from {_typed_rows(contract)} "
                f"where {test.failing_sql()})"
            )
            continue
        key = ", ".join(f'"{c}"' for c in test.arg("combination_of_columns"))
        checks.append(
            f"select _source_row, {name}, 'unique_combination_of_columns: duplicate of row ' "
            f"|| first_row || ' in this file', null from (select _source_row, min(_source_row) "
            f"over (partition by {key}) as first_row from _staged) where _source_row <> first_row"
        )
        if not contract.snapshot and partition_date is not None:
            checks.append(
                f"select s._source_row, {name}, 'unique_combination_of_columns: duplicate of a "
                f"row already loaded from ' || any_value(t._source_file), null "
                f"from {_typed_rows(contract)} s join {contract.qualified_name} t "
                f"using ({key}) where t._partition_date <> date {quote(partition_date)} "
                f"group by s._source_row"
            )
    return checks


def violations_sql(contract: SourceContract, partition_date: str | None) -> str:
    """SQL over `_staged` giving one row per broken rule: (source_row, column_name, reason, value).

    `partition_date` is the key of the partition the file belongs to; rows whose partition
    column falls outside its window break the contract. Duplicates are checked within the file
    and, for partitioned tables, against rows already loaded for other partitions.
    """
    checks = [q for c in contract.columns for q in _column_checks(contract, c, partition_date)]
    checks += _row_test_checks(contract, partition_date)
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
