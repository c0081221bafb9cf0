"""Reading a delimited text file (CSV and its dialects) as records, each with its line number.

The file is read under the contract's `FileDialect`. What is unambiguous is detected: gzip by its
magic bytes, a byte-order mark, line endings (LF, CRLF, CR, or a mix: each line ends where it
ends), and the delimiter when exactly one of `,` `;` tab `|` splits the header into the declared
columns. What is not (an encoding other than UTF-8, no header, a backslash escape) is declared.

A record is normally one line; a quoted field may hold line breaks, and the record then spans
lines. A record that cannot be split into the declared fields is `Rejected` with the line it
starts on and why: too few or too many fields, a stray or unterminated quote, bytes that are not
in the file's encoding. A quote left open makes a CSV reader run on past its line and swallow
the lines after it; here a record that spans lines and does not give the declared fields is
taken as exactly that, so its first line alone is rejected (it is the line that opens the
quote) and reading starts again on the next line. So every line of the file is accounted for:
a blank line, or part of exactly one record, loaded or rejected. No Dagster import here.
"""

from __future__ import annotations

import codecs
import csv
import gzip
import re
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from data_platform.raw.contract import FileDialect, SourceContract
from data_platform.raw.landing import LandingFileError

_LINE = re.compile(r"[^\r\n]*(?:\r\n|\r|\n)|[^\r\n]+\Z")
_UNDECODABLE = re.compile("[\udc80-\udcff]")
_DELIMITERS = (",", ";", "\t", "|")
_GZIP_MAGIC = b"\x1f\x8b"


@dataclass(frozen=True)
class Rejected:
    """A record that could not be split into the declared fields."""

    line: int
    column_name: str | None
    error_type: str
    message: str
    text: str


@dataclass
class Records:
    """A file's records: the texts of the good ones by column (contract order; a null value is
    still its text, see `FileDialect.null_values`), their line numbers, and the rejected ones."""

    values: list[tuple[str, ...]]
    lines: list[int] = field(default_factory=list)
    rejected: list[Rejected] = field(default_factory=list)
    data_lines: int = 0
    """The file's non-blank lines after the header: each is part of exactly one record."""


def check_columns(path: Path, contract: SourceContract, found: list[str]) -> None:
    """Refuse a file whose columns are not exactly the contract's (in any order)."""
    missing = [c for c in contract.column_names if c not in found]
    unexpected = [c for c in found if c not in contract.column_names]
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f"missing columns {missing}")
        if unexpected:
            parts.append(f"unexpected columns {unexpected}")
        raise LandingFileError(
            f"{path}: wrong columns for {contract.qualified_name}: {'; '.join(parts)} "
            f"(expected {list(contract.column_names)})"
        )


def _text(path: Path, dialect: FileDialect) -> tuple[str, str]:
    """The file's text and the encoding it was read with. A byte that is not in the encoding
    becomes a lone surrogate (`surrogateescape`), so its record, not the file, is rejected."""
    data = path.read_bytes()
    compressed = dialect.compression == "gzip" or (
        dialect.compression == "auto" and data[:2] == _GZIP_MAGIC
    )
    if compressed:
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError, zlib.error) as e:
            raise LandingFileError(f"{path}: not a readable gzip file ({e})") from e
    encoding = dialect.encoding or "utf-8"
    if dialect.encoding is None and data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        encoding = "utf-16"
    elif codecs.lookup(encoding).name == "utf-8":
        encoding = "utf-8-sig"  # a UTF-8 byte-order mark is never data
    try:
        return data.decode(encoding, errors="surrogateescape"), encoding
    except UnicodeDecodeError as e:
        line = data[: e.start].count(b"\n") + 1
        raise LandingFileError(f"{path}: line {line} is not valid {encoding} ({e.reason})") from e


def _reader(lines: Iterator[str], dialect: FileDialect, delimiter: str) -> Iterator[list[str]]:
    escape = dialect.escape if dialect.escape != dialect.quote else None
    return csv.reader(
        lines,
        delimiter=delimiter,
        quotechar=dialect.quote or None,
        escapechar=escape,
        doublequote=escape is None,
        quoting=csv.QUOTE_MINIMAL if dialect.quote else csv.QUOTE_NONE,
        strict=True,
    )


def _split(line: str, dialect: FileDialect, delimiter: str) -> list[str]:
    try:
        return next(_reader(iter([line]), dialect, delimiter), [])
    except csv.Error:
        return []


def _header(
    path: Path, lines: list[str], dialect: FileDialect, columns: tuple[str, ...]
) -> tuple[str, list[str]]:
    """(delimiter, column names of the file). The delimiter, when not declared, is the one
    candidate that splits the header into the declared columns (without a header: the first
    non-blank line into as many fields as the contract declares)."""
    if dialect.header and not (lines and lines[0].strip()):
        raise LandingFileError(f"{path}: file is empty (no header line)")
    first = lines[0] if dialect.header else next((ln for ln in lines if ln.strip()), "")
    candidates = [dialect.delimiter] if dialect.delimiter else list(_DELIMITERS)
    if dialect.header:
        split = {d: [f.strip() for f in _split(first, dialect, d)] for d in candidates}
        fits = [d for d in candidates if sorted(split[d]) == sorted(columns)]
        # No exact fit: the wrong columns are named as split by the likeliest delimiter.
        fits = fits or [max(candidates, key=lambda d: len(split[d]))]
    else:
        fits = [d for d in candidates if len(_split(first, dialect, d)) == len(columns)]
        if len(fits) != 1 and first:
            raise LandingFileError(
                f"{path}: cannot tell the delimiter of a file without a header "
                f"(candidates {fits or candidates}); declare meta.headwater.file.delimiter"
            )
    delimiter = fits[0] if len(fits) == 1 else candidates[0]
    names = [f.strip() for f in _split(first, dialect, delimiter)] if dialect.header else columns
    return delimiter, list(names)


class _Feed:
    """The file's lines for the CSV reader, from a position that can be moved back."""

    def __init__(self, lines: list[str], start: int) -> None:
        self.lines = lines
        self.at = start

    def __iter__(self) -> _Feed:
        return self

    def __next__(self) -> str:
        if self.at >= len(self.lines):
            raise StopIteration
        self.at += 1
        return self.lines[self.at - 1]


def _shown(text: str) -> str:
    """The record's text with its undecodable bytes written as `\\xNN`."""
    return _UNDECODABLE.sub(lambda m: f"\\x{ord(m.group()) - 0xDC00:02x}", text.rstrip("\r\n"))


def _odd_quotes(text: str, dialect: FileDialect) -> bool:
    if not dialect.quote:
        return False
    if dialect.escape and dialect.escape != dialect.quote:
        text = text.replace(dialect.escape + dialect.quote, "")
    return text.count(dialect.quote) % 2 == 1


def _bad_text(
    span: list[str], dialect: FileDialect, encoding: str
) -> tuple[str | None, str, str] | None:
    """A record that splits into the declared fields but holds a stray quote (one line with an
    odd number of them) or bytes that are not in the file's encoding."""
    if len(span) == 1 and _odd_quotes(span[0], dialect):
        return None, "STRAY QUOTE", "a quote inside an unquoted field"
    if _UNDECODABLE.search("".join(span)):
        return (
            None,
            "INVALID ENCODING",
            (
                f"bytes that are not {encoding}; if the file is in another encoding, declare it as "
                "meta.headwater.file.encoding"
            ),
        )
    return None


def _fault(
    fields: list[str] | None, error: str, span: list[str], n: int, columns: tuple[str, ...]
) -> tuple[str | None, str, str] | None:
    """(column, type, message) of a record that does not give the declared fields, else None."""
    if fields is not None and len(fields) == n:
        return None
    if len(span) > 1:
        return (
            None,
            "UNTERMINATED QUOTE",
            f"a quote opened on this line runs past its end ({len(span) - 1} more lines) into a "
            f"record of {'unsplittable' if fields is None else len(fields)} fields, not {n}; "
            "the lines after it were read again on their own",
        )
    if fields is None:
        kind = "UNTERMINATED QUOTE" if "end of data" in error else "INVALID QUOTING"
        return None, kind, error
    if len(fields) < n:
        return columns[len(fields)], "MISSING COLUMNS", f"expected {n} fields, found {len(fields)}"
    return None, "TOO MANY COLUMNS", f"expected {n} fields, found {len(fields)}"


@dataclass
class _Parse:
    """What reading the data lines gave: good records (fields, line), rejected ones, the blank
    lines skipped and the lines the records cover."""

    rows: list[list[str]] = field(default_factory=list)
    lines: list[int] = field(default_factory=list)
    rejected: list[Rejected] = field(default_factory=list)
    blank: int = 0
    accounted: int = 0


def _quoted(
    lines: list[str], start: int, dialect: FileDialect, delimiter: str, names: list, encoding: str
) -> _Parse:
    """The data lines through the CSV reader: quotes, escapes and records spanning lines."""
    parse, n = _Parse(), len(names)
    feed = _Feed(lines, start)
    reader = _reader(feed, dialect, delimiter)
    while feed.at < len(lines):
        first = feed.at
        fields: list[str] | None
        try:
            fields, error = next(reader), ""
        except csv.Error as e:
            fields, error = None, str(e)
        span = lines[first : feed.at]
        if fields == [] and len(span) == 1:
            parse.blank += 1
            continue
        fault = _fault(fields, error, span, n, names) or _bad_text(span, dialect, encoding)
        if fault is not None and len(span) > 1 and fault[1] == "UNTERMINATED QUOTE":
            feed.at = first + 1  # the swallowed lines are read again, each on its own
            span = span[:1]
        parse.accounted += len(span)
        if fault is not None:
            column, kind, message = fault
            parse.rejected.append(Rejected(first + 1, column, kind, message, _shown(span[0])))
        else:
            parse.lines.append(first + 1)
            parse.rows.append(fields)
    return parse


def _plain(
    lines: list[str], start: int, delimiter: str, names: list, encoding: str, undecodable: bool
) -> _Parse:
    """The data lines of a file with no quote or escape character: one record per line, split
    at the delimiter (what the CSV reader would do, several times faster)."""
    parse, n = _Parse(), len(names)
    for number, line in enumerate(lines[start:], start=start + 1):
        fields = line.rstrip("\r\n").split(delimiter)
        if fields == [""]:
            parse.blank += 1
            continue
        parse.accounted += 1
        fault = _fault(fields, "", [line], n, names)
        if fault is None and undecodable:
            fault = _bad_text([line], FileDialect(quote=""), encoding)
        if fault is not None:
            column, kind, message = fault
            parse.rejected.append(Rejected(number, column, kind, message, _shown(line)))
        else:
            parse.lines.append(number)
            parse.rows.append(fields)
    return parse


def read_records(path: Path, contract: SourceContract) -> Records:
    """Every record of the delimited file `path`, under the contract's `file` dialect."""
    dialect = contract.file
    text, encoding = _text(path, dialect)
    lines = _LINE.findall(text)
    delimiter, names = _header(path, lines, dialect, contract.column_names)
    check_columns(path, contract, names)
    start = 1 if dialect.header else 0
    special = [c for c in (dialect.quote, dialect.escape) if c]
    if any(c in text for c in special):
        parse = _quoted(lines, start, dialect, delimiter, names, encoding)
    else:
        undecodable = bool(_UNDECODABLE.search(text))
        parse = _plain(lines, start, delimiter, names, encoding, undecodable)
    columns = list(zip(*parse.rows)) or [()] * len(names)
    data_lines = len(lines) - start - parse.blank
    if parse.accounted != data_lines:
        raise LandingFileError(
            f"{path}: {parse.accounted} lines read as records out of {data_lines} data lines; "
            "nothing of the file was loaded"
        )
    return Records(
        values=[columns[names.index(c)] for c in contract.column_names],
        lines=parse.lines,
        rejected=parse.rejected,
        data_lines=data_lines,
    )
