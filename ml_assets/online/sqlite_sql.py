"""The feature SQL dbt compiled for DuckDB, rewritten for SQLite: what the fast online engine
(ml_assets/online/sqlite_engine.py) runs. The feature logic stays written once, in dbt; this is
a mechanical translation of its compiled SQL, and the parity test holds the two to the same rows.

SQLite has no date or timestamp type, so the engine stores them as integers and this module
rewrites what reads them:

    TIMESTAMP   microseconds since 1970-01-01 (naive, as DuckDB's TIMESTAMP)
    DATE        days since 1970-01-01

    cast(ts as date)                  ts / 86400000000            (floor: after 1970)
    extract(hour from ts)             ts / 3600000000 % 24
    ts + interval 90 minutes          ts + 5400000000
    d + interval 60 days              d * 86400000000 + 5184000000000 (a timestamp, as in DuckDB)
    date_diff('second', a, b)         b / 1000000 - a / 1000000   (boundaries crossed, as DuckDB)
    date_diff('day', a, b)            on dates b - a; on timestamps b / 86400000000 - a / ...
    range between interval ...        the same offsets, in the order column's unit
    '2025-03-01' compared to a date   its day number (and a timestamp's microseconds)
    a date compared to a timestamp    the date's midnight (DuckDB's promotion)
    avg(x) of a DECIMAL column        hw_decimal_avg(exact sum, count, ...): DuckDB's rounding

Division is DuckDB's (always fractional: sqlglot writes `cast(a as real) / b`). Which columns are
dates or timestamps comes from the stored tables' column types (`kinds`): dbt projects name a
thing one way across models, and a name with two temporal types is refused. Anything this module
does not know how to rewrite raises `Untranslatable` (an unknown function, `date_trunc`, a month
interval, a cast to a fixed decimal scale, ...), and the service keeps the DuckDB engine.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta

DAY_US = 86_400_000_000
UNIT_US = {
    "MICROSECOND": 1,
    "MILLISECOND": 1_000,
    "SECOND": 1_000_000,
    "MINUTE": 60_000_000,
    "HOUR": 3_600_000_000,
    "DAY": DAY_US,
    "WEEK": 7 * DAY_US,
}
EPOCH_DAY = date(1970, 1, 1)
EPOCH = datetime(1970, 1, 1)
ONE_US = timedelta(microseconds=1)


class Untranslatable(ValueError):
    """The compiled SQL uses something the SQLite rewrite does not cover."""


def kind_of_type(data_type: str) -> str:
    """'timestamp', 'date' or 'other' for a DuckDB column type."""
    text = data_type.strip().upper()
    if text.startswith("TIMESTAMP WITH TIME ZONE") or text == "TIMESTAMPTZ":
        raise Untranslatable(f"time zone aware timestamps ({data_type}) are not rewritten")
    if text.startswith("TIMESTAMP"):
        return "timestamp"
    return "date" if text == "DATE" else "other"


def column_kinds(schemas: dict[str, list[list[str]]]) -> dict[str, str]:
    """column name -> its temporal kind, over every stored table; a name that is a date in one
    table and a timestamp in another cannot be rewritten by name."""
    kinds: dict[str, str] = {}
    for columns in schemas.values():
        for name, data_type in columns:
            kind = kind_of_type(data_type)
            if kinds.setdefault(name.lower(), kind) != kind:
                if "other" in (kinds[name.lower()], kind):
                    kinds[name.lower()] = "mixed"
                else:
                    raise Untranslatable(f"column {name} is both a date and a timestamp")
    return kinds


def _unit(node) -> str:
    unit = node.args.get("unit")
    name = (unit.name if unit is not None else "").upper().rstrip("S")
    if name not in UNIT_US:
        raise Untranslatable(f"interval unit {unit} is not rewritten")
    return name


def _interval_amount(interval, kind: str) -> int:
    """An interval literal in the unit of a `kind` value (days for a date)."""
    from sqlglot import exp

    value = interval.this
    if not isinstance(value, exp.Literal):
        raise Untranslatable(f"interval {interval.sql('duckdb')} is not a literal")
    micros = int(value.this) * UNIT_US[_unit(interval)]
    if kind == "timestamp":
        return micros
    if kind == "date" and micros % DAY_US == 0:
        return micros // DAY_US
    raise Untranslatable(f"interval {interval.sql('duckdb')} on a {kind} is not rewritten")


def decimal_scales(schemas: dict[str, list[list[str]]]) -> dict[str, int]:
    """column name -> its scale, for the DECIMAL columns of the stored tables."""
    import re

    scales = {}
    for columns in schemas.values():
        for name, data_type in columns:
            match = re.fullmatch(r"(?:DECIMAL|NUMERIC)\((\d+),\s*(\d+)\)", data_type.upper())
            if match:
                scales[name.lower()] = int(match.group(2))
    return scales


def decimal_average(total, count, scale, windowed):
    """DuckDB's `avg` of a DECIMAL column from the exact sum of its values in units of the
    scale, divided as DuckDB divides, so that an average is the same double on both engines (a
    plain float average differs in its last bit on about one set in five). Over a window DuckDB
    divides the sum by count x 10^scale in long double; a grouped `avg` its optimiser rewrites
    to sum / count (the sum as a double first). A SQLite function."""
    if not count:
        return None
    if not windowed:
        return (int(total) / 10**scale) / count
    import numpy as np

    return float(np.longdouble(int(total)) / np.longdouble(count * 10**scale))


DECIMAL_AVG = "hw_decimal_avg"


class _Rewriter:
    """One query's rewrite: each node after its children (`rewrite`), knowing which columns,
    and which of the query's own aliases, are dates or timestamps (`kinds`) and which are
    DECIMALs of which scale (`scales`)."""

    def __init__(self, kinds: dict[str, str], scales: dict[str, int] | None = None) -> None:
        self.kinds = kinds
        self.scales = scales or {}
        self.memo: dict[int, tuple] = {}

    def kind(self, node) -> str:
        """The temporal kind of an expression's value (of the node it replaced, if rewritten)."""
        from sqlglot import exp

        if id(node) in self.memo:
            return self.memo[id(node)][1]
        if isinstance(node, exp.Paren | exp.Alias):
            return self.kind(node.this)
        if isinstance(node, exp.Column):
            kind = self.kinds.get(node.name.lower(), "other")
            if kind == "mixed":
                raise Untranslatable(f"column {node.name} is temporal in one table only")
            return kind
        if isinstance(node, exp.Cast):
            target = node.to.this.name.upper()
            if target == "DATE":
                return "date"
            return "timestamp" if target.startswith("TIMESTAMP") else "other"
        if isinstance(node, exp.Coalesce):
            kinds = {self.kind(n) for n in [node.this, *node.expressions]} - {"other"}
            return kinds.pop() if len(kinds) == 1 else "other"
        if isinstance(node, exp.Max | exp.Min | exp.AnyValue | exp.First):
            return self.kind(node.this)
        if isinstance(node, exp.Window):
            return self.kind(node.this)
        if isinstance(node, exp.Add | exp.Sub):
            left, right = self.kind(node.this), self.kind(node.expression)
            if isinstance(node.expression, exp.Interval) and left != "other":
                return "timestamp"  # DuckDB: a date plus an interval is a timestamp
            if "other" not in (left, right):
                return "other"  # a difference of dates: days
            return left if left != "other" else right
        return "other"

    def number(self, value: int):
        from sqlglot import exp

        return exp.Literal.number(value)

    def rewrite(self, tree):
        """`tree` rewritten bottom-up: each node after its children, its kind taken from the
        node it replaces."""
        for node in reversed(list(tree.dfs())):
            kind = self.kind(node)
            new = self(node)
            self.memo[id(new)] = (new, kind)  # the node kept: its id is not reused
            if new is not node:
                if node is tree:
                    return new
                node.replace(new)
        return tree

    def __call__(self, node):
        from sqlglot import exp

        if isinstance(node, exp.Window | exp.Avg) and self.decimal_average(node) is not None:
            return self.decimal_average(node)
        if isinstance(node, exp.Cast):
            return self.cast(node)
        if isinstance(node, exp.Extract):
            return self.extract(node)
        if isinstance(node, exp.Add | exp.Sub):
            return self.arithmetic(node)
        if isinstance(node, exp.DateDiff):
            return self.date_diff(node)
        if isinstance(node, exp.WindowSpec):
            return node  # rewritten with its window (the order column's kind)
        if isinstance(node, exp.Window) and node.args.get("spec") is not None:
            return self.window(node)
        if isinstance(node, exp.Binary) and isinstance(node, exp.Predicate):
            return self.compare(node)
        consumed = exp.Add | exp.Sub | exp.WindowSpec
        if isinstance(node, exp.Interval) and isinstance(node.parent, consumed):
            return node  # rewritten with what it is added to, or its window
        if isinstance(node, exp.Interval | exp.CurrentDate | exp.CurrentTimestamp | exp.TsOrDsAdd):
            raise Untranslatable(f"{node.sql('duckdb')} is not rewritten")
        if isinstance(node, exp.Anonymous) and node.name.lower() != DECIMAL_AVG:
            # a function sqlglot does not know: nothing says SQLite has it, or means the same
            raise Untranslatable(f"{node.sql('duckdb')}: an unknown function")
        if isinstance(node, exp.DateTrunc | exp.TimestampTrunc | exp.DateAdd | exp.DateSub):
            raise Untranslatable(f"{node.sql('duckdb')} is not rewritten")
        return node

    def decimal_average(self, node):
        """`avg(x)` of a DECIMAL column (bare or over a window) as `hw_decimal_avg` of the exact
        sum in units of the scale and the count; None for anything else."""
        from sqlglot import exp

        average = node.this if isinstance(node, exp.Window) else node
        if isinstance(node, exp.Avg) and isinstance(node.parent, exp.Window):
            return None  # rewritten with its window
        if not isinstance(average, exp.Avg) or not isinstance(average.this, exp.Column):
            return None
        scale = self.scales.get(average.this.name.lower())
        if scale is None:
            return None
        units = exp.Round(this=exp.Mul(this=average.this.copy(), expression=self.number(10**scale)))
        total, count = exp.Sum(this=units), exp.Count(this=average.this.copy())
        if isinstance(node, exp.Window):
            total_window, count_window = node.copy(), node.copy()
            total_window.set("this", total)
            count_window.set("this", count)
            total, count = total_window, count_window
        windowed = self.number(int(isinstance(node, exp.Window)))
        return exp.Anonymous(
            this=DECIMAL_AVG, expressions=[total, count, self.number(scale), windowed]
        )

    def cast(self, node):
        from sqlglot import exp

        target = node.to.this.name.upper()
        source = self.kind(node.this)
        if isinstance(node.this, exp.Literal) and node.this.is_string:
            if target == "DATE" or target.startswith("TIMESTAMP"):
                kind = "date" if target == "DATE" else "timestamp"
                return self.number(literal_value(node.this.this, kind))  # date '2025-01-01'
        if target == "DATE":
            if source == "timestamp":
                return exp.Paren(
                    this=exp.Div(this=node.this, expression=self.number(DAY_US), typed=True)
                )
            if source == "date":
                return node.this
            raise Untranslatable(f"{node.sql('duckdb')}: only dates and timestamps cast to date")
        if target.startswith("TIMESTAMP"):
            if source == "date":
                return exp.Paren(this=exp.Mul(this=node.this, expression=self.number(DAY_US)))
            if source == "timestamp":
                return node.this
            raise Untranslatable(f"{node.sql('duckdb')}: only dates cast to timestamp")
        if source != "other":
            raise Untranslatable(f"{node.sql('duckdb')}: a {source} cast to {target}")
        if target in ("DECIMAL", "NUMERIC") and node.to.expressions:
            # DuckDB rounds to the scale there; SQLite's REAL would not
            raise Untranslatable(f"{node.sql('duckdb')}: a cast to a fixed scale")
        return node

    def extract(self, node):
        from sqlglot import exp

        part = node.this.name.upper()
        if part != "HOUR" or self.kind(node.expression) != "timestamp":
            raise Untranslatable(f"{node.sql('duckdb')} is not rewritten (hour of a timestamp)")
        hours = exp.Div(this=node.expression, expression=self.number(UNIT_US["HOUR"]), typed=True)
        return exp.Paren(this=exp.Mod(this=hours, expression=self.number(24)))

    def date_diff(self, node):
        from sqlglot import exp

        unit = _unit(node)
        end, start = node.this, node.expression
        kinds = {self.kind(end), self.kind(start)}
        if kinds == {"date"} and unit == "DAY":
            return exp.Paren(this=exp.Sub(this=end, expression=start))
        if kinds != {"timestamp"}:
            raise Untranslatable(f"{node.sql('duckdb')}: only dates in days, or timestamps")

        def boundary(value):
            return exp.Div(this=value, expression=self.number(UNIT_US[unit]), typed=True)

        return exp.Paren(this=exp.Sub(this=boundary(end), expression=boundary(start)))

    def window(self, node):
        spec = node.args["spec"]
        if str(spec.args.get("kind", "")).upper() != "RANGE":
            return node
        order = node.args.get("order")
        if order is None or len(order.expressions) != 1:
            raise Untranslatable(f"{node.sql('duckdb')}: a range frame orders by one column")
        kind = self.kind(order.expressions[0].this)
        for bound in ("start", "end"):
            value = spec.args.get(bound)
            if value is not None and not isinstance(value, str) and value.key == "interval":
                spec.set(bound, self.number(_interval_amount(value, kind)))
        return node

    def arithmetic(self, node):
        """A date or timestamp plus or minus an interval (a timestamp, as in DuckDB); a date
        minus a date (days); a timestamp minus a timestamp (an interval) is refused."""
        from sqlglot import exp

        left, right = self.kind(node.this), self.kind(node.expression)
        if isinstance(node.expression, exp.Interval):
            if left == "other":
                raise Untranslatable(f"{node.sql('duckdb')}: an interval added to a non-date")
            micros = _interval_amount(node.expression, "timestamp")
            this = self.to_timestamp(node.this, left)
            return exp.Paren(this=type(node)(this=this, expression=self.number(micros)))
        if isinstance(node, exp.Sub) and "timestamp" in (left, right):
            raise Untranslatable(f"{node.sql('duckdb')}: a difference of timestamps")
        return node

    def to_timestamp(self, value, kind: str):
        """A date as the timestamp of its midnight (DuckDB's promotion); a timestamp as is."""
        from sqlglot import exp

        if kind != "date":
            return value
        return exp.Paren(this=exp.Mul(this=value, expression=self.number(DAY_US)))

    def compare(self, node):
        """A date or timestamp compared to a string literal: the literal in the column's unit;
        a date compared to a timestamp: the date as its midnight, as DuckDB promotes it."""
        from sqlglot import exp

        left, right = node.this, node.expression
        for column, other in ((left, right), (right, left)):
            if isinstance(other, exp.Literal) and other.is_string:
                kind = self.kind(column)
                if kind != "other":
                    other.replace(self.number(literal_value(other.this, kind)))
        kinds = (self.kind(left), self.kind(right))
        if set(kinds) == {"date", "timestamp"}:
            side = left if kinds[0] == "date" else right
            side.replace(self.to_timestamp(side.copy(), "date"))
        return node


def literal_value(text: str, kind: str) -> int:
    """An ISO date or timestamp as the engine stores it."""
    if kind == "date":
        return (date.fromisoformat(text[:10]) - EPOCH_DAY).days
    moment = datetime.fromisoformat(text)
    return (moment.replace(tzinfo=None) - EPOCH) // ONE_US


def _with_aliases(tree, kinds: dict[str, str]) -> dict[str, str]:
    """`kinds` and the temporal kind of each column the query's own selects name (a CTE's
    `max(transacted_at) as customer_prev_transacted_at`), until no new one is found."""
    from sqlglot import exp

    kinds = dict(kinds)
    while True:
        rewriter = _Rewriter(kinds)
        found = {
            alias.alias.lower(): kind
            for alias in tree.find_all(exp.Alias)
            if alias.alias.lower() not in kinds and (kind := rewriter.kind(alias.this)) != "other"
        }
        if not found:
            return kinds
        kinds.update(found)


def to_sqlite(sql: str, kinds: dict[str, str], scales: dict[str, int] | None = None) -> str:
    """`sql` (DuckDB, as dbt compiled it) as SQLite over integer dates and timestamps; the
    averages of the DECIMAL columns in `scales` call `decimal_average` (registered by the
    engine as `hw_decimal_avg`)."""
    import sqlglot
    from sqlglot.errors import SqlglotError

    try:
        tree = sqlglot.parse_one(sql, read="duckdb")
        tree = _Rewriter(_with_aliases(tree, kinds), scales).rewrite(tree)
        return tree.sql(dialect="sqlite")
    except SqlglotError as error:
        raise Untranslatable(str(error)) from error
