"""The rewritten SQL shaped for a request's few rows: window aggregates over range frames as
correlated subqueries, which let the SQLite engine compute a request row's windows from an
index instead of every history row's, and import CTEs read in place (`inline_plain_ctes`).

SQLite evaluates a window function for every row of its partition, and the feature set's
windows run over an entity's whole history (100-350 rows) on each request: about 0.2 ms per
window definition, 1.5 ms of a median request. The request needs its own rows' values only. Over
`FROM t`, for each row of t,

    COUNT(*) OVER (PARTITION BY c ORDER BY o NULLS LAST RANGE BETWEEN a PRECEDING AND b PRECEDING)

equals

    (SELECT COUNT(*) FROM t AS hw_w WHERE hw_w.c IS t.c AND <the row's frame>)

where the frame of a row whose `o` is v is, as SQLite's and DuckDB's range frames have it:

    v not null   hw_w.o >= v - a (none for UNBOUNDED PRECEDING) and hw_w.o <= v - b (<= v for
                 CURRENT ROW): a null `o` is in no such frame
    v null       its null peers: the rows whose `o` is null (the whole partition for UNBOUNDED
                 PRECEDING, the nulls being last)

With no window function left, SQLite flattens the query into the one that reads it, so the
subqueries run for the answer's rows only, each a range scan of the engine's (entity, time)
index. The values are the same rows' aggregates (a float sum may differ in its last bits, as
summing in another order does; decimals are rounded to their scale on the way out).

Only what that equality covers is rewritten: COUNT, SUM, MIN and MAX (no DISTINCT, no FILTER)
over a RANGE frame from UNBOUNDED or n PRECEDING to n PRECEDING or CURRENT ROW, partitioned by
columns and ordered by one column ascending with nulls last, in a SELECT that reads one table
or CTE with no join, filter, grouping or DISTINCT. Anything else keeps SQLite's own window.
"""

from __future__ import annotations

INNER = "hw_w"


def windows_as_subqueries(sql: str) -> str:
    """`sql` (SQLite) with every window aggregate the equality above covers rewritten."""
    import sqlglot
    from sqlglot import exp

    tree = sqlglot.parse_one(sql, read="sqlite")
    for select in list(tree.find_all(exp.Select)):
        _rewrite_select(select)
    return tree.sql(dialect="sqlite")


def _rewrite_select(select) -> None:
    from sqlglot import exp

    table = _single_table(select)
    if table is None:
        return
    named = {w.this.name: w for w in select.args.get("windows") or []}
    for projection in select.expressions:
        for window in list(projection.find_all(exp.Window)):
            if window.find_ancestor(exp.Select) is not select:
                continue  # a nested query's window, over its own FROM
            definition = _definition(window, named)
            subquery = definition and _subquery(window.this, definition, table)
            if subquery is not None:
                window.replace(subquery)
    if not any(p.find(exp.Window) for p in select.expressions) and not (
        select.args.get("order") and select.args["order"].find(exp.Window)
    ):
        select.set("windows", None)


def _single_table(select):
    """The one table (or CTE) the SELECT reads, if that is all it does."""
    from sqlglot import exp

    source = select.args.get("from") or select.args.get("from_")
    where = select.args.get("where")
    plain_where = where is None or where.this == exp.true()
    busy = ("joins", "group", "having", "distinct", "qualify", "laterals")
    if source is None or not isinstance(source.this, exp.Table) or not plain_where:
        return None
    if any(select.args.get(k) for k in busy):
        return None
    return source.this


def _definition(window, named):
    """(partition columns, order column, frame) of a window, inline or named; None if the
    rewrite does not cover it."""
    from sqlglot import exp

    own = [window.args.get(k) for k in ("partition_by", "order", "spec")]
    if window.args.get("alias") is not None:
        if any(own) or window.args["alias"].name not in named:
            return None
        window = named[window.args["alias"].name]
        if window.args.get("alias") is not None:
            return None  # built on another named window: its partition would be lost
    partition, order, spec = (window.args.get(k) for k in ("partition_by", "order", "spec"))
    if not order or len(order.expressions) != 1 or spec is None:
        return None
    ordered = order.expressions[0]
    if ordered.args.get("desc") or ordered.args.get("nulls_first") is not False:
        return None
    if not isinstance(ordered.this, exp.Column):
        return None
    if not all(isinstance(p, exp.Column) for p in partition or []):
        return None
    frame = _frame(spec)
    return frame and ([p.name for p in partition or []], ordered.this.name, frame)


def _frame(spec):
    """(start offset, None for unbounded; end offset, 0 for the current row), or None."""
    from sqlglot import exp

    def offset(bound, side):
        if isinstance(bound, exp.Literal) and not bound.is_string:
            return int(bound.this) if str(side).upper() == "PRECEDING" else None
        return None

    if str(spec.args.get("kind")).upper() != "RANGE" or spec.args.get("exclude"):
        return None
    start, end = spec.args.get("start"), spec.args.get("end")
    if (
        str(start).upper() == "UNBOUNDED"
        and str(spec.args.get("start_side")).upper() == "PRECEDING"
    ):
        low = None
    elif (low := offset(start, spec.args.get("start_side"))) is None:
        return None
    if str(end).upper() == "CURRENT ROW":
        return low, 0
    high = offset(end, spec.args.get("end_side"))
    return None if high is None else (low, high)


def _subquery(function, definition, table):
    from sqlglot import exp

    aggregates = (exp.Count, exp.Sum, exp.Min, exp.Max)
    if type(function) not in aggregates or function.find(exp.Distinct, exp.Filter, exp.Select):
        return None
    partition, order, (low, high) = definition
    outer = table.alias_or_name
    inner_function = function.copy()
    for column in inner_function.find_all(exp.Column):
        column.set("table", exp.to_identifier(INNER))

    def inner(name):
        return exp.column(name, table=INNER)

    def outer_column(name):
        return exp.column(name, table=outer)

    upper = (
        inner(order) <= outer_column(order) - high if high else inner(order) <= outer_column(order)
    )
    if low is None:
        current = exp.or_(outer_column(order).is_(exp.null()), upper)
    else:
        lower = inner(order) >= outer_column(order) - low
        nulls = exp.and_(outer_column(order).is_(exp.null()), inner(order).is_(exp.null()))
        current = exp.or_(nulls, exp.and_(lower, upper))
    condition = exp.and_(
        *[exp.Is(this=inner(p), expression=outer_column(p)) for p in partition], current
    )
    source = table.copy()
    source.set("alias", exp.TableAlias(this=exp.to_identifier(INNER)))
    return exp.select(inner_function).from_(source).where(condition).subquery()


def inline_plain_ctes(sql: str) -> str:
    """`sql` with each CTE that only selects a table's rows (`select * from t [where ...]`,
    jaffle-shop's import CTEs) marked NOT MATERIALIZED: SQLite then reads the table itself,
    through its indexes, instead of copying it for every request. Rows are the same either way."""
    import sqlglot
    from sqlglot import exp

    tree = sqlglot.parse_one(sql, read="sqlite")
    for cte in tree.find_all(exp.CTE):
        body = cte.this
        plain = (
            isinstance(body, exp.Select)
            and [type(e) for e in body.expressions] == [exp.Star]
            and not any(body.args.get(k) for k in ("joins", "group", "distinct", "limit"))
        )
        if plain:
            cte.set("materialized", False)
    return tree.sql(dialect="sqlite")
