"""Throwaway databases on the real PostgreSQL (127.0.0.1:5432, user postgres) and MariaDB
(127.0.0.1:3306, user root) servers, and the bike-sharing `hour.csv` put into a table.

    with postgres_database("h_mytest") as url:       # a new database, dropped at the end
        hour_csv_into_table(url, "public.bike_hours")  # 17,379 rows, the file's columns

`url` is a SQLAlchemy URL, what a contract's `database.connection_env` variable holds.
"""

import csv
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.conftest import ROOT

HOUR_CSV = ROOT.parent / "shared" / "data" / "bike_sharing" / "hour.csv"

# hour.csv's columns as SQL types (the contract of the bike-sharing example declares the same).
HOUR_COLUMNS = {
    "instant": "integer",
    "dteday": "date",
    **{c: "integer" for c in ("season", "yr", "mnth", "hr", "holiday", "weekday")},
    **{c: "integer" for c in ("workingday", "weathersit")},
    **{c: "double precision" for c in ("temp", "atemp", "hum", "windspeed")},
    **{c: "integer" for c in ("casual", "registered", "cnt")},
}


def postgres_url(database: str) -> str:
    return f"postgresql+psycopg2://postgres@127.0.0.1:5432/{database}"


def mariadb_url(database: str) -> str:
    return f"mysql+pymysql://root@127.0.0.1:3306/{database}"


def _server_execute(url: str, statement: str) -> None:
    """One statement on the server's maintenance database, outside a transaction."""
    import sqlalchemy as sa

    engine = sa.create_engine(url, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as con:
            con.execute(sa.text(statement))
    finally:
        engine.dispose()


@contextmanager
def postgres_database(prefix: str) -> Iterator[str]:
    """A new PostgreSQL database named `<prefix>_<random>`, dropped on the way out."""
    name = f"{prefix}_{uuid.uuid4().hex[:8]}"
    _server_execute(postgres_url("postgres"), f"create database {name}")
    try:
        yield postgres_url(name)
    finally:
        _server_execute(postgres_url("postgres"), f"drop database if exists {name} with (force)")


@contextmanager
def mariadb_database(prefix: str) -> Iterator[str]:
    """A new MariaDB database (schema) named `<prefix>_<random>`, dropped on the way out."""
    name = f"{prefix}_{uuid.uuid4().hex[:8]}"
    _server_execute(mariadb_url(""), f"create database {name}")
    try:
        yield mariadb_url(name)
    finally:
        _server_execute(mariadb_url(""), f"drop database if exists {name}")


def execute(url: str, *statements: str, rows: list[dict] | None = None) -> None:
    """Statements run in one transaction; `rows` are the parameters of the last one."""
    import sqlalchemy as sa

    engine = sa.create_engine(url)
    try:
        with engine.begin() as con:
            for statement in statements[:-1]:
                con.execute(sa.text(statement))
            con.execute(sa.text(statements[-1]), rows or {})
    finally:
        engine.dispose()


def hour_csv_into_table(url: str, table: str, path: Path = HOUR_CSV) -> int:
    """`hour.csv` as the table `table` (created, `instant` its primary key); returns the rows."""
    with path.open(newline="") as f:
        records = list(csv.DictReader(f))
    columns = ", ".join(f"{name} {sql_type}" for name, sql_type in HOUR_COLUMNS.items())
    names = ", ".join(HOUR_COLUMNS)
    values = ", ".join(f":{name}" for name in HOUR_COLUMNS)
    execute(
        url,
        f"create table {table} ({columns}, primary key (instant))",
        f"insert into {table} ({names}) values ({values})",
        rows=records,
    )
    return len(records)
