"""The contract's rules as SQL: one row per broken rule of a staged file.

Each rule the contract declares (`not_null`, the column's `data_type`, `accepted_values`,
`unique` within the file and against other loaded partitions, the partition's date) becomes a
query over the staged rows (`_staged`), and the lines DuckDB could not split (`_csv_errors`)
join them as violations of their own. No Dagster import here.
"""

from __future__ import annotations

from data_platform.raw.contract import ColumnContract, SourceContract


def quote(value: str) -> str:
    """`value` as a SQL string literal."""
    return "'" + value.replace("'", "''") + "'"


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
            f"from _staged where trim({col}) <> '' and try_cast({col} as {c.data_type}) is null"
        )
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
                f"on t.{col} = try_cast(s.{col} as {c.data_type}) "
                f"where t._partition_date <> date {quote(partition_date)} "
                f"group by s._source_row, s.{col}"
            )
    return checks


def violations_sql(contract: SourceContract, partition_date: str | None) -> str:
    """SQL over `_staged` giving one row per broken rule: (source_row, column_name, reason, value).

    `partition_date` is the daily partition the file belongs to; rows whose partition column
    falls on another day break the contract. Duplicates are checked within the file and, for
    partitioned tables, against rows already loaded for other partitions.
    """
    checks = [q for c in contract.columns for q in _column_checks(contract, c, partition_date)]
    if contract.partition_column and partition_date is not None:
        col = f'"{contract.partition_column}"'
        checks.append(
            f"select _source_row, {quote(contract.partition_column)}, "
            f"{quote('outside partition ' + partition_date)}, {col} from _staged "
            f"where try_cast({col} as timestamp) is not null "
            f"and cast(try_cast({col} as timestamp) as date) <> date {quote(partition_date)}"
        )
    checks.append(
        "select line, column_name, error_type || ': ' || error_message, csv_line from _csv_errors"
    )
    return "\nunion all\n".join(checks)
