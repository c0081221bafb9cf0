"""A new embedded MLflow store, started as a copy of an empty one instead of migrated anew.

MLflow creates a SQLite store by running every one of its schema migrations in turn (alembic,
about 2-3 s on 2 cores, each revision rewriting tables), and every new state folder paid it: a
new project's first model step, each test with its own store, each benchmark part. The
migrations' result depends only on the MLflow version, so the first store made with a version
is kept, empty, as a template beside the environment that has that version
(`<sys.prefix>/var/headwater/mlflow-<version>.db`), and a new store is a copy of it, with its
Default experiment given the new store's own artifact folder and creation time.

A store that exists is never touched, and two processes seeding the same path at once end with
one of the copies, whole (`os.link` does not replace an existing file). When the template cannot
be written (a read-only environment), MLflow creates the store itself, as before.
"""

from __future__ import annotations

import importlib.metadata
import os
import shutil
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

DEFAULT_EXPERIMENT_ID = 0


def template_path(folder: Path | None = None) -> Path:
    """Where the empty store of the installed MLflow version is kept."""
    folder = folder or Path(sys.prefix) / "var" / "headwater"
    return folder / f"mlflow-{importlib.metadata.version('mlflow')}.db"


def ensure_template(folder: Path | None = None) -> Path:
    """The template of the installed MLflow version, made by MLflow itself if missing."""
    path = template_path(folder)
    if path.exists():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

    with tempfile.TemporaryDirectory(dir=path.parent) as scratch:
        database = Path(scratch) / "mlflow.db"
        # The tracking store's migrations create the registry's tables too (one schema).
        store = SqlAlchemyStore(f"sqlite:///{database}", Path(scratch).as_uri())
        store.engine.dispose()
        os.replace(database, path)  # whole or not at all, if another process races this one
    return path


def seed_store(database: Path, template_folder: Path | None = None) -> bool:
    """Start the SQLite store `database` as a copy of the template; False (and nothing done)
    when it exists already or no template could be made, MLflow then creating it itself."""
    if database.exists():
        return False
    try:
        template = ensure_template(template_folder)
    except OSError:
        return False
    database.parent.mkdir(parents=True, exist_ok=True)
    staged = database.with_name(f".{database.name}.{os.getpid()}.seed")
    try:
        shutil.copyfile(template, staged)
        _own_default_experiment(staged, database.parent / "artifacts")
        os.link(staged, database)  # fails, changing nothing, if the store appeared meanwhile
    except FileExistsError:
        return False
    finally:
        staged.unlink(missing_ok=True)
    return True


def _own_default_experiment(database: Path, artifacts: Path) -> None:
    """The copied Default experiment, as MLflow would have made it for this store: its
    artifacts under the store's artifact folder, created now."""
    now = int(time.time() * 1000)
    location = (artifacts / str(DEFAULT_EXPERIMENT_ID)).as_uri()
    with sqlite3.connect(database) as con:
        con.execute(
            "update experiments set artifact_location = ?, creation_time = ?, "
            "last_update_time = ? where experiment_id = ?",
            (location, now, now, DEFAULT_EXPERIMENT_ID),
        )
    con.close()
