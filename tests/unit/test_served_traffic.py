"""The served traffic's pure parts: a day of the log loaded (checks, quarantine, idempotence,
refusal), the spec's `serving` block, the shadow comparison and the gate's served half."""

import json
from dataclasses import replace
from datetime import UTC, date, datetime

import duckdb
import numpy as np
import pyarrow as pa
import pytest

from ml_assets.models.serving_spec import ServingSpec, ShadowSpec, parse_serving
from ml_assets.models.spec import load_specs
from ml_assets.serving import load, shadow
from ml_assets.serving.gate import served_gate
from ml_assets.serving.prediction_log import SCHEMA, PredictionRecord

SPEC = next(s for s in load_specs() if s.name == "fraud_classifier")
DAY = date(2025, 3, 1)
FEATURES = {f: 1.0 for f in SPEC.features} | {
    "channel": "web",
    "merchant_category": "food",
    "merchant_risk_tier": "low",
}


def _records(n: int, day: date = DAY, start: int = 0, **changes) -> pa.Table:
    rows = []
    for i in range(start, start + n):
        for role, version in (("champion", "1"), ("shadow", "2")):
            record = PredictionRecord(
                request_id=f"r{i}",
                served_at=datetime(2025, 3, 1, 10, tzinfo=UTC),
                score_date=day,
                model_name=SPEC.name,
                model_version=version,
                role=role,
                keys_json=json.dumps({"transaction_id": f"t{i}"}),
                features_json=json.dumps(FEATURES | {"amount": float(i)}),
                score=i / (n + start),
                latency_ms=1.0,
            )
            rows.append(replace(record, **changes).__dict__)
    return pa.Table.from_pylist(rows, schema=SCHEMA)


@pytest.fixture
def con():
    connection = duckdb.connect()
    yield connection
    connection.close()


def test_a_day_loads_into_its_two_tables_and_again_replaces_it(con):
    for _ in range(2):
        loaded = load.load_day(con, SPEC, DAY, _records(50))
        assert (loaded.read, loaded.champion, loaded.shadow, loaded.quarantined) == (100, 50, 50, 0)
    assert con.execute("select count(*) from serving.fraud_classifier_predictions").fetchone() == (
        50,
    )
    assert con.execute(
        "select count(*), min(model_version) from serving.fraud_classifier_shadow_predictions"
    ).fetchone() == (50, "2")
    # keys and features are columns named as the spec names them
    row = con.execute(
        "select transaction_id, amount, channel, event_time from "
        "serving.fraud_classifier_predictions where request_id = 'r7'"
    ).fetchone()
    assert row == ("t7", 7.0, "web", datetime(2025, 3, 1))


def test_bad_and_duplicate_records_are_quarantined_with_their_reason(con):
    good = _records(60)
    bad = [
        _records(1, start=100, request_id=""),
        _records(1, start=101, score=float("nan")),
        _records(1, start=102, score_date=date(2025, 3, 2)),
        _records(1, start=103, keys_json="{}"),
        _records(1, start=104, features_json=json.dumps({"amount": 1.0})),
        _records(1, start=105, role="canary"),
        _records(1, start=5),  # request ids r5, served again
    ]
    loaded = load.load_day(con, SPEC, DAY, pa.concat_tables([good, *bad]), 0.5)
    assert loaded.read == loaded.champion + loaded.shadow + loaded.quarantined == 134
    assert loaded.champion == loaded.shadow == 60 and loaded.quarantined == 14
    reasons = dict(
        con.execute("select reason, count(*) from serving.quarantine group by all").fetchall()
    )
    assert reasons["request_id is missing"] == 2
    assert reasons["score is missing or NaN"] == 2
    assert reasons["score_date 2025-03-02 is not the day of its log folder"] == 2
    assert reasons["key transaction_id is missing"] == 2
    assert reasons["feature channel is missing"] == 2  # the first missing, in spec order
    assert reasons["role canary is neither champion nor shadow"] == 2
    assert sum(n for r, n in reasons.items() if r.startswith("duplicate request_id")) == 2


def test_a_request_id_loaded_on_another_day_is_refused(con):
    load.load_day(con, SPEC, DAY, _records(50))
    other = date(2025, 3, 2)
    loaded = load.load_day(con, SPEC, other, _records(50, other, start=49), 0.5)
    assert loaded.quarantined == 2  # r49, champion and shadow
    (reason,) = con.execute(
        "select distinct reason from serving.quarantine where day = '2025-03-02'"
    ).fetchone()
    assert reason == "request_id already loaded on 2025-03-01"


def test_too_many_bad_records_refuse_the_day_and_keep_its_rows(con):
    load.load_day(con, SPEC, DAY, _records(50))
    worse = pa.concat_tables([_records(50), _records(10, start=200, keys_json="[")])
    with pytest.raises(load.LogRefused, match="20 of 120 served records refused"):
        load.load_day(con, SPEC, DAY, worse)
    assert con.execute("select count(*) from serving.fraud_classifier_predictions").fetchone() == (
        50,
    )
    assert con.execute("select count(*) from serving.quarantine").fetchone() == (20,)


def test_an_empty_log_loads_an_empty_day_but_never_empties_a_loaded_one(con):
    empty = SCHEMA.empty_table()
    assert load.load_day(con, SPEC, DAY, empty).read == 0
    load.load_day(con, SPEC, DAY, _records(5))
    with pytest.raises(load.LogRefused, match="no record of the day, but 5 served rows"):
        load.load_day(con, SPEC, DAY, empty)
    assert con.execute("select count(*) from serving.fraud_classifier_predictions").fetchone() == (
        5,
    )


def test_the_serving_block_is_checked():
    assert parse_serving(None, "x.yml") == ServingSpec()
    rule = parse_serving({"shadow": {"window_days": 7, "gate": True}}, "x.yml").shadow
    assert rule == ShadowSpec(window_days=7, gate=True)
    for bad, words in (
        ({"shadow": {"windows": 3}}, "serving.shadow.windows is not a known key"),
        ({"shadow": {"min_labelled_rows": 0}}, "min_labelled_rows must be an integer >= 1"),
        ({"shadow": {"gate": "yes"}}, "gate must be true or false"),
        ({"canary": {}}, "one key `shadow`"),
    ):
        with pytest.raises(ValueError, match=words):
            parse_serving(bad, "x.yml")


def _pairs(n: int, labelled: bool) -> pa.Table:
    rng = np.random.default_rng(0)
    y = rng.random(n) < 0.2
    champion = y + rng.normal(0, 1.0, n)
    challenger = y + rng.normal(0, 0.2, n)
    return pa.table(
        {
            "champion": champion,
            "challenger": challenger,
            "champion_version": ["1"] * n,
            "challenger_version": ["2"] * n,
            "label": pa.array([float(v) if labelled else None for v in y], pa.float64()),
        }
    )


def test_before_labels_mature_the_comparison_is_agreement_only():
    compared = shadow.compare(SPEC, "2025-03-28", _pairs(500, labelled=False))
    assert compared.pairs == 500 and compared.labelled == 0
    assert 0 < compared.correlation < 1 and np.isnan(compared.improvement)
    assert compared.first_day == "2025-03-01" and not compared.enough_labels
    assert "no matured label yet" in compared.said()
    assert compared.as_tag()["improvement"] is None  # JSON has no NaN


def test_on_matured_labels_the_better_challenger_clears_the_gate():
    compared = shadow.compare(SPEC, "2025-03-28", _pairs(2000, labelled=True))
    assert compared.enough_labels and 0 < compared.lower < compared.improvement
    gated = replace(SPEC, serving=ServingSpec(ShadowSpec(gate=True)))
    tag = json.loads(json.dumps(compared.as_tag()))
    assert served_gate(gated, "2", tag)[0] is True
    assert served_gate(SPEC, "2", tag) == (True, "")  # gate off: not asked
    strict = replace(gated, promotion=replace(SPEC.promotion, min_improvement=compared.upper))
    promote, reason = served_gate(strict, "2", tag)
    assert not promote and "does not clear" in reason
    # another version's comparison, or too few labels: the offline gate decides alone
    assert served_gate(strict, "3", tag) == (
        True,
        "no served comparison of version 3 yet: the offline gate decides",
    )
    few = served_gate(strict, "2", tag | {"enough_labels": False})
    assert few[0] and "the offline gate decides" in few[1]
