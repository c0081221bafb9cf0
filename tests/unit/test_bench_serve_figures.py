"""The serve part's figures: the floor and both services at one rate, and the score check."""

from bench.report import serve_figures


def _service(p50: float, p99: float, rps: float) -> dict:
    return {"p50_ms": p50, "p99_ms": p99, "throughput_rps": rps, "failed": 0, "requests": 10}


def _part(difference: float) -> dict:
    return {
        "rate": 200.0,
        "floor": _service(0.3, 0.5, 200),
        "headwater": _service(0.5, 0.9, 200),
        "headwater_online": _service(1.8, 12.0, 60),
        "headwater_online_duckdb": _service(40.0, 80.0, 20),
        "mlflow": _service(15.0, 50.0, 57),
        "mlflow_flavor": {"rows": 3, "refused": 3, "answer": "ValueError: ..."},
        "max_score_difference": difference,
        "compared_rows": 200,
        "online_max_score_difference": difference,
        "online_compared_rows": 570,
        "online_duckdb_max_score_difference": difference,
    }


def test_all_three_are_reported_at_the_same_rate_with_the_flavors_refusals():
    names = {f.name: f for f in serve_figures(_part(0.0))}
    assert "floor: Booster.predict, one row, p99 at 200/s" in names
    assert names["floor: throughput"].formatted() == "200 calls/s"
    assert names["mlflow models serve: p50 at 200 req/s"].formatted() == "15.00 ms"
    assert names["mlflow lightgbm flavor: rows refused"].formatted() == "3"
    against = "largest score difference against mlflow models serve"
    assert names[f"{against}, features in the request, 200 rows"].status == "ok"


def test_the_targets_are_the_online_legs():
    names = {f.name: f for f in serve_figures(_part(0.0))}
    online = "headwater serve, online features"
    assert names[f"{online}: p50 at 200 req/s"].status == "ok"
    assert names[f"{online}: p99 at 200 req/s"].status == "missed"
    assert names[f"{online}: throughput"].formatted() == "60 req/s"
    carried = names["headwater serve, features in the request: p50 at 200 req/s"]
    assert (carried.target, carried.status) == ("", "")
    # the DuckDB engine's leg is shown beside it, without the targets (the default is SQLite)
    duckdb = names[f"{online} on DuckDB: p50 at 200 req/s"]
    assert (duckdb.formatted(), duckdb.status) == ("40.00 ms", "")


def test_a_score_difference_beyond_the_tolerance_is_missed():
    differences = [f for f in serve_figures(_part(1e-6)) if f.name.startswith("largest")]
    assert [f.status for f in differences] == ["missed", "missed", "missed"]
    assert differences[1].name.endswith("online features, 570 rows")
    assert differences[2].name.endswith("online features on DuckDB, 570 rows")
