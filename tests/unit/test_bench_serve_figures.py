"""The serve part's figures: the floor and both services at one rate, and the score check."""

from bench.report import serve_figures


def _service(p50: float, p99: float, rps: float) -> dict:
    return {"p50_ms": p50, "p99_ms": p99, "throughput_rps": rps, "failed": 0, "requests": 10}


def _part(difference: float) -> dict:
    return {
        "rate": 200.0,
        "floor": _service(0.3, 0.5, 200),
        "headwater": _service(1.8, 9.0, 200),
        "mlflow": _service(15.0, 50.0, 57),
        "mlflow_flavor": {"rows": 3, "refused": 3, "answer": "ValueError: ..."},
        "max_score_difference": difference,
        "compared_rows": 200,
    }


def test_all_three_are_reported_at_the_same_rate_with_the_flavors_refusals():
    names = {f.name: f for f in serve_figures(_part(0.0))}
    assert "floor: Booster.predict, one row, p99 at 200/s" in names
    assert names["floor: throughput"].formatted() == "200 calls/s"
    assert names["mlflow models serve: p50 at 200 req/s"].formatted() == "15.00 ms"
    assert names["mlflow lightgbm flavor: rows refused"].formatted() == "3"
    assert names["largest score difference, 200 rows"].status == "ok"


def test_a_score_difference_beyond_the_tolerance_is_missed():
    (difference,) = [f for f in serve_figures(_part(1e-6)) if f.name.startswith("largest")]
    assert difference.status == "missed"
