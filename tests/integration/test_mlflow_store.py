"""A new embedded MLflow store starts as a copy of an empty one (`ml_assets.models.mlflow_store`):
the copy is the store MLflow itself would have made, it works as one (tracking, registry,
aliases), and a store that exists is never touched."""

import sqlite3

import pytest

from ml_assets.models.mlflow_store import seed_store, template_path


@pytest.fixture(scope="module")
def templates(tmp_path_factory):
    """A template folder of this module's own, made once."""
    return tmp_path_factory.mktemp("templates")


def _schema(database) -> dict:
    """Every table's columns, indexes and foreign keys, and the alembic revision. Not the
    tables' SQL text: MLflow's migrations do not always leave the same text (seen: `runs`, in a
    process that had run the platform's model steps first), with the same columns, indexes and
    keys."""
    with sqlite3.connect(database) as con:
        tables = [
            name
            for (name,) in con.execute(
                "select name from sqlite_master where type = 'table' and name not like 'sqlite_%'"
            )
        ]
        schema = {
            table: (
                sorted(con.execute(f"pragma table_info('{table}')").fetchall()),
                sorted(
                    (
                        index[1],
                        index[2],
                        tuple(c[2] for c in con.execute(f"pragma index_info('{index[1]}')")),
                    )
                    for index in con.execute(f"pragma index_list('{table}')").fetchall()
                    if not index[1].startswith("sqlite_autoindex")
                ),
                sorted(con.execute(f"pragma foreign_key_list('{table}')").fetchall()),
            )
            for table in tables
        }
        schema["alembic"] = con.execute("select version_num from alembic_version").fetchall()
    con.close()
    return schema


def test_the_copy_is_the_store_mlflow_makes(templates, tmp_path):
    from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

    made = tmp_path / "made" / "mlflow.db"
    made.parent.mkdir()
    SqlAlchemyStore(f"sqlite:///{made}", (tmp_path / "made").as_uri()).engine.dispose()

    seeded = tmp_path / "seeded" / "mlflow.db"
    assert seed_store(seeded, templates)
    assert template_path(templates).exists()
    assert _schema(seeded) == _schema(made)


def test_a_seeded_store_tracks_and_registers(templates, tmp_path):
    import mlflow

    database = tmp_path / "state" / "mlflow" / "mlflow.db"
    assert seed_store(database, templates)
    client = mlflow.MlflowClient(f"sqlite:///{database}")
    default = client.get_experiment("0")
    # the Default experiment is this store's, not the template's
    assert default.artifact_location == (database.parent / "artifacts" / "0").as_uri()

    experiment = client.create_experiment("fraud", artifact_location=tmp_path.as_uri())
    run = client.create_run(experiment)
    client.log_metric(run.info.run_id, "roc_auc", 0.9)
    client.create_registered_model("fraud")
    version = client.create_model_version("fraud", f"runs:/{run.info.run_id}/m", run.info.run_id)
    client.set_registered_model_alias("fraud", "champion", version.version)
    assert client.get_model_version_by_alias("fraud", "champion").run_id == run.info.run_id
    assert client.get_run(run.info.run_id).data.metrics == {"roc_auc": 0.9}


def test_an_existing_store_is_left_as_it_is(templates, tmp_path):
    import mlflow

    database = tmp_path / "mlflow.db"
    assert seed_store(database, templates)
    client = mlflow.MlflowClient(f"sqlite:///{database}")
    client.create_experiment("kept")
    before = database.read_bytes()

    assert not seed_store(database, templates)
    assert database.read_bytes() == before
    assert [e.name for e in client.search_experiments()] == ["kept", "Default"]


def test_without_a_writable_template_folder_mlflow_makes_the_store(tmp_path):
    blocked = tmp_path / "not-a-folder"
    blocked.write_text("a file where the template folder would be")
    database = tmp_path / "mlflow.db"
    assert not seed_store(database, blocked)
    assert not database.exists()
