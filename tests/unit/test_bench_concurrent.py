"""The concurrent part's table: each step's seconds in each run, slowest first."""

from bench.concurrent import concurrent_table


def _run(index: int, wall: float, steps: dict[str, float]) -> dict:
    timed = [{"steps": [{"step": k, "seconds": v} for k, v in steps.items()]}]
    return {"run": index, "wall_seconds": wall, "runs": timed}


def test_the_table_puts_both_runs_steps_side_by_side_slowest_first():
    part = {"runs": [_run(1, 50.0, {"a": 1.0, "b": 9.0}), _run(2, 60.0, {"a": 12.0})]}
    lines = concurrent_table(part).splitlines()
    assert lines[0] == "| step | run 1 s | run 2 s |"
    assert lines[2] == "| process wall time | 50.0 | 60.0 |"
    assert lines[3:] == ["| a | 1.0 | 12.0 |", "| b | 9.0 |  |"]
