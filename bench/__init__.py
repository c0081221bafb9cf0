"""The benchmark harness: the platform's cost against the no-orchestration floor.

`python -m bench` (see `run.py` and docs/benchmarks.md) runs each selected part in a fresh
subprocess with its own state folder, samples the memory of that subprocess's whole process tree,
and prints a markdown table of figures against the project's targets; the JSON goes to
`bench/results/`. The parts live in `parts.py`, the floor in `floor.py`.
"""
