"""The tests declared on a source's columns, as rules ingestion enforces row by row, and the
`meta.headwater.file` dialect: parsed and checked when the contract is read.

A test is known (`ROW_TESTS`: dbt's `not_null`, `unique`, `accepted_values`, `relationships` and
the project's generic tests in dbt_project/tests/generic) or refused with `ContractError`, one
line naming the source, table, column and test. `relationships` is checked against the parent
raw table as loaded when the child's file is (a model is built after ingestion, so `to:` must
be a `source()` with a contract). Expressions are compiled once against the declared columns,
so a typo is refused before any file is read. No Dagster import here.
"""

from __future__ import annotations

import codecs
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from data_platform.raw.contract import SourceContract

# The dbt tests ingestion enforces row by row: dbt's four built-ins and the project's generic
# tests (dbt_project/tests/generic). `unique_combination_of_columns` is table-level only.
ROW_TESTS = (
    "not_null",
    "unique",
    "accepted_values",
    "relationships",
    "accepted_range",
    "expression_is_true",
    "unique_combination_of_columns",
)
_SOURCE_REF = re.compile(r"""^\s*source\(\s*['"](\w+)['"]\s*,\s*['"](\w+)['"]\s*\)\s*$""")


class ContractError(ValueError):
    """A contract ingestion cannot enforce as declared. The message is one line naming the
    yml, the source, table, column and test."""


@dataclass(frozen=True)
class FileDialect:
    """How a landing file is read (`meta.headwater.file`). What is unambiguous is detected:
    line endings (LF, CRLF, CR, mixed), a byte-order mark, gzip by its magic bytes, and the
    delimiter when exactly one candidate splits the header into the declared columns."""

    format: str | None = None
    """`csv` or `parquet`; by default from the file's extension (`.csv`, `.csv.gz`, `.parquet`)."""
    delimiter: str | None = None
    """One character; by default detected from the header among `,` `;` tab `|`."""
    quote: str = '"'
    """The quote character; empty for none (quotes are then plain text)."""
    escape: str | None = None
    """The character escaping a quote inside a quoted field; by default the quote doubled."""
    header: bool = True
    """Whether line 1 names the columns; without one, fields are in the contract's order."""
    encoding: str | None = None
    """A Python codec (`utf-8`, `latin-1`, `cp1252`...); by default UTF-8, with or without
    a byte-order mark (a UTF-16 one is honoured too)."""
    compression: str = "auto"
    """`auto` (gzip when the file starts with its magic bytes), `gzip` or `none`."""
    null_values: tuple[str, ...] = ("",)
    """Field texts read as null (the empty field by default)."""


@dataclass(frozen=True)
class RowTest:
    """A declared test beyond the column flags (`required`, `unique`, `accepted_values`), checked
    per row at ingestion: `relationships`, `accepted_range`, `expression_is_true`,
    `unique_combination_of_columns`. `column` is None for a table-level test."""

    name: str
    column: str | None
    args: tuple[tuple[str, Any], ...] = ()
    parent: SourceContract | None = None
    """For `relationships`: the raw table the value must be loaded in (set by `load_contracts`)."""

    def arg(self, key: str, default: Any = None) -> Any:
        return dict(self.args).get(key, default)

    def failing_sql(self) -> str:
        """SQL true for a row that fails the test, over the row's typed columns (as in dbt: a
        null passes `accepted_range` and `relationships`, and an expression that gives null)."""
        col = f'"{self.column}"'
        if self.name == "accepted_range":
            below, above = ("<", ">") if self.arg("inclusive", True) else ("<=", ">=")
            bounds = []
            if self.arg("min_value") is not None:
                bounds.append(f"{col} {below} ({self.arg('min_value')})")
            if self.arg("max_value") is not None:
                bounds.append(f"{col} {above} ({self.arg('max_value')})")
            return f"{col} is not null and ({' or '.join(bounds)})"
        if self.name == "expression_is_true":
            subject = f"{col} " if self.column else ""
            return f"not ({subject}{self.arg('expression')})"
        if self.name == "relationships":
            assert self.parent is not None, self  # resolved by load_contracts
            return (
                f'{col} is not null and {col} not in (select "{self.arg("field")}" '
                f'from {self.parent.qualified_name} where "{self.arg("field")}" is not null)'
            )
        raise ValueError(f"{self.name} is not a per-row condition")

    def describe(self) -> str:
        """The test as the quarantine's reason names it."""
        if self.name == "accepted_range":
            return (
                f"accepted_range: outside [{self.arg('min_value', '')}, "
                f"{self.arg('max_value', '')}]"
            )
        if self.name == "expression_is_true":
            return f"expression_is_true: {self.arg('expression')}"
        if self.name == "relationships":
            return f"relationships: not in {self.arg('to')}.{self.arg('field')}"
        return self.name


def _test_name_and_args(test: Any) -> tuple[str, dict[str, Any], dict[str, Any]]:
    """A dbt data test is a bare name or `{name: {arguments: {...}, config: {...}}}` (dbt >=
    1.10; before, the arguments sit beside `config`). Returns (name, arguments, config)."""
    if isinstance(test, str):
        return test, {}, {}
    ((name, body),) = test.items()
    body = dict(body or {})
    config = dict(body.pop("config", None) or {})
    body.pop("name", None)
    return name, dict(body.get("arguments", body)), config


def refuse(where: str, column: str | None, name: str, why: str) -> ContractError:
    on = f"column {column}" if column else "table-level"
    return ContractError(f"{where}, {on}: test {name!r} cannot be enforced at ingestion: {why}")


def row_test(name: str, args: dict[str, Any], column: str | None, where: str) -> RowTest:
    """The declared test as a `RowTest`, its arguments checked; refused when not enforceable."""
    need = {
        "accepted_range": ("min_value", "max_value"),
        "expression_is_true": ("expression",),
        "relationships": ("to", "field"),
        "unique_combination_of_columns": ("combination_of_columns",),
    }[name]
    given = [k for k in need if args.get(k) is not None]
    if name == "accepted_range" and not given or name != "accepted_range" and given != list(need):
        raise refuse(where, column, name, f"it needs the arguments {list(need)}")
    if name == "unique_combination_of_columns" and column is not None:
        raise refuse(where, column, name, "it is a table-level test only")
    if name == "relationships" and not _SOURCE_REF.match(str(args["to"])):
        raise refuse(
            where,
            column,
            name,
            f"`to: {args['to']}` is not a source(); ingestion checks a "
            "parent raw table only (a model is built after ingestion)",
        )
    return RowTest(name=name, column=column, args=tuple(sorted(args.items(), key=str)))


def declared_tests(
    tests: list[Any] | None, column: str | None, where: str
) -> list[tuple[str, dict[str, Any]]]:
    """The enabled tests of a column (or of the table), every one known to ingestion."""
    found = []
    for test in tests or []:
        name, args, config = _test_name_and_args(test)
        if config.get("enabled") is False:
            continue
        if name not in ROW_TESTS:
            raise refuse(where, column, name, f"ingestion knows only {list(ROW_TESTS)}")
        if config.get("where"):
            raise refuse(where, column, name, "a `where` config is not applied at ingestion")
        found.append((name, args))
    return found


_FILE_KEYS = {f for f in FileDialect.__dataclass_fields__}


def file_dialect(raw: dict[str, Any] | None, where: str) -> FileDialect:
    """`meta.headwater.file`, checked: an unknown key or value is refused, not ignored."""
    raw = dict(raw or {})
    unknown = sorted(set(raw) - _FILE_KEYS)
    if unknown:
        raise ContractError(f"{where}: meta.headwater.file has unknown keys {unknown}")
    if "null_values" in raw:
        raw["null_values"] = tuple(str(v) for v in raw["null_values"] or ())
    dialect = FileDialect(**raw)
    if dialect.format not in (None, "csv", "parquet"):
        raise ContractError(f"{where}: meta.headwater.file.format must be csv or parquet")
    if dialect.compression not in ("auto", "gzip", "none"):
        raise ContractError(f"{where}: meta.headwater.file.compression must be auto|gzip|none")
    for key in ("delimiter", "escape"):
        if getattr(dialect, key) is not None and len(getattr(dialect, key)) != 1:
            raise ContractError(f"{where}: meta.headwater.file.{key} must be one character")
    if len(dialect.quote) > 1:
        raise ContractError(f"{where}: meta.headwater.file.quote must be one character or ''")
    if dialect.encoding is not None:
        try:
            codecs.lookup(dialect.encoding)
        except LookupError:
            raise ContractError(
                f"{where}: meta.headwater.file.encoding {dialect.encoding!r} is not a known codec"
            ) from None
    return dialect


def relationship_parent(test: RowTest) -> tuple[str, str]:
    """(source name, table) of a `relationships` test's `to: source('<source>', '<table>')`."""
    match = _SOURCE_REF.match(str(test.arg("to")))
    assert match, test  # checked when the contract was read
    return match.group(1), match.group(2)


def check_sql(contract: SourceContract) -> None:
    """Refuse a range bound or an expression that does not run as SQL over the declared columns
    (typed), by running each on no rows in an in-memory DuckDB."""
    import duckdb

    from headwater_core.attached import FILES

    tests = [t for t in contract.row_tests if t.name in ("accepted_range", "expression_is_true")]
    if not tests:
        return
    typed = ", ".join(f'null::{c.data_type} as "{c.name}"' for c in contract.columns)
    # the process's kept in-memory database: starting one costs 12 ms, and every step that
    # loads or builds from the contracts reads (and checks) them
    con = FILES.scratch()
    try:
        for test in tests:
            try:
                con.execute(f"select count(*) from (select {typed}) where {test.failing_sql()}")
            except duckdb.Error as e:
                error = str(e).splitlines()[0]
                raise refuse(
                    f"source {contract.source_name}.{contract.table}",
                    test.column,
                    test.name,
                    f"its SQL does not run ({error})",
                ) from None
    finally:
        con.close()
