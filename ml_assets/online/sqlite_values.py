"""Values between Arrow, Python and the SQLite engine (ml_assets/online/sqlite_engine.py).

SQLite has no date, timestamp or decimal type: dates are stored as day numbers, timestamps as
microseconds since 1970 (both as ml_assets/online/sqlite_sql.py rewrites the SQL that reads
them), decimals as each value's nearest double. On the way out, values take the feature
table's own Arrow types, or the plain Python values the DuckDB engine's answer gives.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from decimal import Decimal

from ml_assets.online.sqlite_sql import EPOCH, EPOCH_DAY, ONE_US, kind_of_type

# from this many rows on, a date or timestamp column is converted by one Arrow cast (which
# costs more than converting a few values one by one: most store entries hold 1-30 rows)
CAST_ROWS = 8


def arrow_schemas(schemas: dict[str, list[list[str]]]) -> dict:
    """table -> the Arrow schema DuckDB gives its columns (what the DuckDB engine returns)."""
    import duckdb

    con = duckdb.connect(":memory:")
    try:
        out = {}
        for table, columns in schemas.items():
            cols = ", ".join(f'"{name}" {kind}' for name, kind in columns)
            con.execute(f"create table t ({cols})")
            out[table] = con.sql("select * from t").to_arrow_table().schema
            con.execute("drop table t")
        return out
    finally:
        con.close()


def arrow_rows(arrow) -> list[tuple]:
    """An Arrow table's rows as SQLite values, column by column."""
    import pyarrow as pa

    columns = []
    for field in arrow.schema:
        column, kind = arrow.column(field.name), field.type
        if arrow.num_rows >= CAST_ROWS and pa.types.is_timestamp(kind):
            # microseconds since 1970 (UTC for a zoned timestamp): to_sqlite_value's integers
            column = column.cast(pa.timestamp("us", tz=kind.tz)).cast(pa.int64())
            columns.append(column.to_pylist())
            continue
        if arrow.num_rows >= CAST_ROWS and pa.types.is_date(kind):
            columns.append(column.cast(pa.date32()).cast(pa.int32()).to_pylist())
            continue
        convert = to_sqlite_value(kind)
        values = column.to_pylist()
        columns.append(values if convert is None else [convert(v) for v in values])
    return list(zip(*columns))


def to_sqlite_value(kind):
    """Python value (as Arrow's `to_pylist` gives it) -> SQLite value, for an Arrow `kind`
    (None: the value as it is)."""
    import pyarrow as pa

    if pa.types.is_timestamp(kind):
        return lambda v: None if v is None else (v.replace(tzinfo=None) - EPOCH) // ONE_US
    if pa.types.is_date(kind):
        return lambda v: None if v is None else (v - EPOCH_DAY).days
    if pa.types.is_decimal(kind):
        return lambda v: None if v is None else float(v)
    return None


def from_sqlite_column(values: list, kind):
    """SQLite values as an Arrow array of `kind`."""
    import pyarrow as pa

    if pa.types.is_timestamp(kind):
        return pa.array(values, pa.int64()).cast(kind)
    if pa.types.is_date(kind):
        return pa.array(values, pa.int32()).cast(kind)
    if pa.types.is_decimal(kind):
        text = f"{{:.{kind.scale}f}}"
        return pa.array([None if v is None else Decimal(text.format(v)) for v in values], kind)
    if pa.types.is_boolean(kind):
        return pa.array([None if v is None else bool(v) for v in values], kind)
    return pa.array(values, kind)


def request_value(value, data_type: str, field: str):
    """One request field as SQLite stores the source column (`data_type`, DuckDB's)."""
    if value is None:
        return None
    kind = kind_of_type(data_type)
    try:
        if kind == "timestamp":
            moment = datetime.fromisoformat(value) if isinstance(value, str) else value
            if not isinstance(moment, datetime):
                raise ValueError(f"not a timestamp: {value!r}")
            return (moment.replace(tzinfo=None) - EPOCH) // ONE_US
        if kind == "date":
            day = date.fromisoformat(value) if isinstance(value, str) else value
            return (day - EPOCH_DAY).days
        upper = data_type.upper()
        if upper.startswith(("DECIMAL", "NUMERIC", "DOUBLE", "FLOAT", "REAL")):
            return float(value)
        if upper.startswith(("INT", "BIGINT", "SMALLINT", "TINYINT", "HUGEINT", "UBIGINT")):
            return int(value)
        if upper.startswith("BOOL"):
            return bool(value)
        return str(value)
    except (TypeError, ValueError) as error:
        raise ValueError(f"field {field}: {error}") from error


def plain_converter(kind):
    """SQLite value -> the plain Python value the DuckDB engine's answer gives for an Arrow
    `kind` (after `source.plain`: decimals as floats)."""
    import pyarrow as pa

    if pa.types.is_timestamp(kind):
        return lambda v: None if v is None else EPOCH + v * ONE_US
    if pa.types.is_date(kind):
        return lambda v: None if v is None else EPOCH_DAY + timedelta(days=v)
    if pa.types.is_decimal(kind):
        scale = kind.scale
        return lambda v: None if v is None else round(float(v), scale)
    if pa.types.is_boolean(kind):
        return lambda v: None if v is None else bool(v)
    return None


class FreshRows:
    """A path table's fresh rows of one run, as SQLite gave them: converted to the table's
    Python values only when `record` asks (`to_pylist`, as an Arrow table's), after the
    answer."""

    def __init__(self, names: list[str], rows: list[tuple], schema) -> None:
        self.names, self.rows, self.schema = names, rows, schema

    @property
    def num_rows(self) -> int:
        return len(self.rows)

    def to_pylist(self) -> list[dict]:
        import pyarrow as pa

        convert = {}
        for field in self.schema:
            if pa.types.is_decimal(field.type):
                text = f"{{:.{field.type.scale}f}}"
                convert[field.name] = lambda v, t=text: None if v is None else Decimal(t.format(v))
            else:
                convert[field.name] = plain_converter(field.type)
        out = []
        for row in self.rows:
            values = dict(zip(self.names, row))
            out.append(
                {
                    f.name: (convert[f.name](values[f.name]) if convert[f.name] else values[f.name])
                    for f in self.schema
                }
            )
        return out
