"""A model spec's names reach SQL: each is refused unless it is an identifier (a table: schema
and name), and each is quoted where it is put into a query, so a name that is also a SQL
keyword still works (issue 13, case 7: a `features` entry once dropped a table)."""

from dataclasses import replace
from datetime import date, datetime, timedelta
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import pytest
import yaml

from ml_assets.models.spec import load_specs, spec_from_yml
from ml_assets.models.train import LABEL_COLUMN, training_set_sql
from ml_assets.monitoring.measure import NotMeasurable, read_performance_day, read_scored_day
from ml_assets.scores.scoring import score_window

SPECS = Path(__file__).parents[2] / "model_specs"
INJECTION = (
    "amount from features.transaction_features limit 0; drop table raw.customers; select amount"
)


def _write_spec(tmp_path: Path, change) -> Path:
    raw = yaml.safe_load((SPECS / "fraud_classifier.yml").read_text())
    change(raw)
    path = tmp_path / "fraud_classifier.yml"
    path.write_text(yaml.safe_dump(raw))
    return path


def test_a_feature_that_smuggles_sql_is_refused_naming_the_file_and_the_field(tmp_path: Path):
    path = _write_spec(tmp_path, lambda raw: raw["features"].append(INJECTION))
    with pytest.raises(ValueError) as refused:
        spec_from_yml(path)
    message = str(refused.value)
    assert str(path) in message
    assert "features" in message
    assert "drop table raw.customers" in message


def _set(field: str, value):
    """A change to the spec's YAML: `field` (dotted) set to `value`."""
    *parents, name = field.split(".")

    def change(raw: dict) -> None:
        target = raw
        for part in parents:
            target = target[part]
        target[name] = value

    return change


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("name", "fraud_classifier; drop table t"),
        ("categorical", ["channel", "x;drop table t"]),
        ("keys", ["transaction_id", "1id"]),
        ("event_time", "transacted_at--"),
        ("score_date", "transaction_date or 1=1"),
        ("feature_set", "features.transaction_features f; drop table t"),
        ("feature_set", "transaction_features"),
        ("label.table", "features.fraud_labels l"),
        ("label.column", 'is_fraud"'),
        ("label.matures_at", "label matures at"),
        ("label.known_at", "chargeback_reported_at)"),
        ("baseline_feature", "amount.x"),
    ],
)
def test_every_name_a_spec_puts_into_sql_is_checked(tmp_path: Path, field: str, value):
    path = _write_spec(tmp_path, _set(field, value))
    with pytest.raises(ValueError, match=rf"^{path}: {field} "):
        spec_from_yml(path)


def test_the_demo_specs_pass_the_check():
    assert len(load_specs()) == 2


# -- quoting: names that are identifiers and SQL keywords at once --------------------------------


def _keyword_spec():
    """A classifier spec whose key, event time, date, features and label are SQL keywords."""
    base = next(s for s in load_specs() if s.name == "fraud_classifier")
    return replace(
        base,
        feature_set="features.order",
        keys=("select",),
        event_time="from",
        score_date="where",
        features=("group", "limit"),
        categorical=("limit",),
        baseline_feature="group",
        label=replace(
            base.label, table="features.table", column="order", matures_at="end", known_at="join"
        ),
    )


def _keyword_warehouse(days: int = 30, per_day: int = 20) -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    con.execute("create schema features")
    rng = np.random.default_rng(0)
    start = datetime(2025, 1, 1)
    n = days * per_day
    times = [start + timedelta(days=i // per_day, minutes=i % per_day) for i in range(n)]
    group = rng.random(n)
    features = pa.table(
        {
            "select": pa.array(range(n), pa.int64()),
            "from": times,
            "where": [t.date() for t in times],
            "group": group,
            "limit": rng.choice(["a", "b"], n),
        }
    )
    labels = pa.table(
        {
            "select": pa.array(range(n), pa.int64()),
            "order": group + rng.random(n) > 1.0,
            "end": [t + timedelta(days=1) for t in times],
            "join": [t + timedelta(hours=1) for t in times],
        }
    )
    con.register("f", features)
    con.register("l", labels)
    con.execute('create table features."order" as select * from f')
    con.execute('create table features."table" as select * from l')
    return con


def _booster(spec, con):
    import lightgbm as lgb

    from ml_assets.models.train import to_frame

    rows = con.sql(
        training_set_sql(spec).replace("$cutoff", "$1"), params=[datetime(2025, 3, 1)]
    ).to_arrow_table()
    return lgb.train(
        {"objective": "binary", "verbosity": -1, "min_data_in_leaf": 5},
        lgb.Dataset(
            to_frame(rows, spec),
            rows.column(LABEL_COLUMN).to_numpy(),
            categorical_feature=list(spec.categorical),
        ),
        num_boost_round=5,
    )


def test_names_that_are_sql_keywords_train_score_and_measure():
    spec = _keyword_spec()
    con = _keyword_warehouse()
    rows = con.sql(
        training_set_sql(spec).replace("$cutoff", "$1"), params=[datetime(2025, 1, 10)]
    ).to_arrow_table()
    # matured by the cut-off: the first 8 days and Jan 9 00:00 (a label matures a day later)
    assert rows.num_rows == 8 * 20 + 1
    assert {"select", "group", "limit", LABEL_COLUMN} <= set(rows.column_names)

    booster = _booster(spec, con)
    scored = score_window(con, spec, booster, "1", ("2025-01-05", "2025-01-07"))
    assert scored.rows == 2 * 20
    assert scored.label_lag_days == 1

    day = read_scored_day(con, spec, "2025-01-05")
    assert day.num_rows == 20
    assert {"group", "limit", "score"} <= set(day.column_names)

    performance = read_performance_day(con, spec, "2025-01-06")
    assert performance.rows.num_rows == 20
    assert performance.version == "1"
    assert performance.window.num_rows == 2 * 20
    assert date(2025, 1, 6) <= performance.matures_at.date()


def test_a_replay_does_not_judge_a_day_on_labels_from_after_its_now():
    # `known_until` is a replay's "now": the warehouse already holds later labels.
    spec = _keyword_spec()
    con = _keyword_warehouse()
    score_window(con, spec, _booster(spec, con), "1", ("2025-01-05", "2025-01-07"))
    # the labels of Jan 6 mature a day later, so at the end of Jan 6 they are not known yet
    with pytest.raises(NotMeasurable, match="mature at"):
        read_performance_day(con, spec, "2025-01-06", known_until=datetime(2025, 1, 7))
    known = read_performance_day(con, spec, "2025-01-06", known_until=datetime(2025, 1, 9))
    assert known.rows.num_rows == 20
