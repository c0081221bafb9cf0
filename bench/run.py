"""`python -m bench`: the platform's cost against the no-orchestration floor, in one command.

    .venv/bin/python -m bench                                   # 1M transactions, every part
    .venv/bin/python -m bench --transactions 10000000 --only full,floor
    .venv/bin/python -m bench --transactions 20000 --only full,floor --out /tmp/b.json

Each part runs in a fresh subprocess (`bench/parts.py`) with a fresh HEADWATER_HOME under one
temporary folder (removed afterwards unless --keep), so that no Dagster instance, warehouse,
MLflow store or imported module is shared between parts. While a part runs, this process samples
the memory of its whole process tree from /proc (`bench/procmem.py`). It prints a markdown table
(figure, value, target, status) and the per-step breakdowns, and writes everything as JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from bench.procmem import TreeSampler
from bench.report import GIB, figures_json, render
from bench.startup import without_state

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
PARTS = ("full", "floor", "incremental", "startup", "tick")
# Parts run only when named in --only: serve's figures mean something only at its full duration,
# concurrent is two full runs at once.
OPTIONAL_PARTS = ("serve", "concurrent")
# What --unbounded-threads sets: the libraries' own thread and memory settings, as the platform
# ran before its thread budget (headwater_core.compute), for a before/after in one harness.
UNBOUNDED = {
    "HEADWATER_SMALL_TRAINING_ROWS": "0",
    "HEADWATER_OPENMP_WAIT_POLICY": "default",
    "HEADWATER_DUCKDB_MEMORY_LIMIT": "80%",
}
# The first README command's demo (headwater.cli.DEMO_DAYS / DEMO_TRANSACTIONS).
UI_DEMO_DAYS = 150
UI_DEMO_TRANSACTIONS = 333_300


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--transactions", type=int, default=1_000_000, help="over the window")
    parser.add_argument(
        "--days",
        type=int,
        default=120,
        help="days in the window, ending yesterday (UTC); the fraud model needs > ~75 with "
        "the default label maturity of 61 days",
    )
    parser.add_argument(
        "--history-days",
        type=int,
        default=90,
        help="incremental: days materialised before the new ones (same daily volume)",
    )
    parser.add_argument(
        "--new-days",
        type=int,
        default=3,
        help="incremental: consecutive new days landed and run after the history, one by one; "
        "the figure is their median",
    )
    parser.add_argument(
        "--only",
        default=",".join(PARTS),
        help=f"comma-separated parts to run (default all: {','.join(PARTS)}; "
        f"also {','.join(OPTIONAL_PARTS)})",
    )
    parser.add_argument(
        "--unbounded-threads",
        action="store_true",
        help="every part with the libraries' own threads and memory (the platform before its "
        "thread budget): LightGBM on every core whatever the rows, OpenMP spinning, DuckDB 80%%",
    )
    parser.add_argument("--out", type=Path, default=None, help="JSON file (default bench/results/)")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument(
        "--label-maturity-days",
        type=int,
        default=None,
        help="days until a fraud label is final (default: the project's 61); a small world "
        "with fewer days needs less (the smoke test uses 7, as the simulation does)",
    )
    parser.add_argument("--warm-repeats", type=int, default=3, help="startup: warm loads timed")
    parser.add_argument("--ui-days", type=int, default=UI_DEMO_DAYS, help="startup: demo days")
    parser.add_argument(
        "--ui-transactions",
        type=int,
        default=UI_DEMO_TRANSACTIONS,
        help="startup: the demo `dev.py up` generates (default: the README's)",
    )
    parser.add_argument("--serve-rate", type=float, default=200, help="serve: requests/s")
    parser.add_argument("--serve-seconds", type=float, default=30, help="serve: seconds each")
    parser.add_argument(
        "--serve-port", type=int, default=18650, help="serve: first port tried (50 from it)"
    )
    parser.add_argument(
        "--pairs",
        type=int,
        default=1,
        help="full and floor run this many times, alternated (full, floor, full, ...); each "
        "side's figures are its median run's (by process wall time)",
    )
    parser.add_argument("--keep", action="store_true", help="keep the parts' state folders")
    parser.add_argument(
        "--bytecode",
        choices=("all", "imports"),
        default="all",
        help="compiled first: every module (all), or what the code locations import (imports)",
    )
    args = parser.parse_args(argv)
    args.parts = [p.strip() for p in args.only.split(",") if p.strip()]
    known = PARTS + OPTIONAL_PARTS
    unknown = sorted(set(args.parts) - set(known))
    if unknown:
        parser.error(f"unknown part(s) {unknown}; known: {', '.join(known)}")
    return args


def window(days: int, today: datetime | None = None) -> tuple[str, str]:
    """The day partitions of the window: `days` days ending yesterday (UTC), like the demo."""
    end = (today or datetime.now(UTC)).date() - timedelta(days=1)
    return (end - timedelta(days=days - 1)).isoformat(), end.isoformat()


# Imported once before the parts (`--bytecode imports`), so that every part finds compiled
# bytecode for what it imports at load time. What the parts import lazily, inside functions
# (dbt's tasks, MLflow's stores and migrations, Evidently's metrics), is not on it. Then the
# dbt project is parsed if its manifest is missing or stale, as loading a code location does
# once after a change: otherwise the first part on a fresh clone (the platform's) would pay a
# parse (about 6 s) that the floor, which starts from the partial parse it leaves, does not.
WARM_UP = (
    "import data_platform.definitions, ml_assets.definitions, bench.floor, duckdb, pyarrow, "
    "pandas, lightgbm, mlflow, mlflow.lightgbm, evidently, evidently.presets, dbt.cli.main, "
    "dagster_webserver; from headwater_core.dbt.project import ensure_manifest; "
    "ensure_manifest()"
)

# `--bytecode all` (the default): every module the parts could import compiled first, the
# standard library's and the environment's packages (their own tests left out) and the
# project's code, then WARM_UP imported. About 45 s on 2 cores.
COMPILE_ALL = """
import compileall, re, sys, sysconfig
paths = {sysconfig.get_paths()[k] for k in ("stdlib", "purelib", "platlib")} | set(sys.argv[1:])
skip = re.compile(r"[/\\\\](test|tests|idle_test)[/\\\\]")
for path in sorted(paths):
    compileall.compile_dir(path, quiet=2, workers=0, rx=skip)
"""
PROJECT_CODE = ("platform", "ml_assets", "bench")


def base_environment(pycache: Path) -> dict[str, str]:
    """This process's environment without any state setting, compiled bytecode kept in
    `pycache` (PYTHONDONTWRITEBYTECODE, if set, would make every import compile from source)."""
    env = without_state(os.environ)
    env["PYTHONPYCACHEPREFIX"] = str(pycache)
    return env


def warm_bytecode(pycache: Path, everything: bool = True) -> float:
    """Compile into `pycache` what the parts import: every module there is (`everything`,
    COMPILE_ALL), else what WARM_UP imports; seconds it took."""
    started = time.perf_counter()
    commands = [[sys.executable, "-c", WARM_UP]]
    if everything:
        project = [str(ROOT / folder) for folder in PROJECT_CODE]
        commands.insert(0, [sys.executable, "-c", COMPILE_ALL, *project])
    for command in commands:
        done = subprocess.run(
            command,
            cwd=ROOT,
            env=base_environment(pycache),
            capture_output=True,  # the libraries' import-time warnings: noise here
            text=True,
        )
        if done.returncode != 0:
            raise RuntimeError(f"compiling the parts' imports failed:\n{done.stderr[-3000:]}")
    return time.perf_counter() - started


def part_environment(
    home: Path, landing: Path | None, maturity: int | None, pycache: Path, unbounded: bool = False
) -> dict[str, str]:
    """A clean environment for one part: its own state folder, nothing inherited that points
    at another state (instance, warehouse, landing folder, MLflow store)."""
    env = base_environment(pycache)
    if unbounded:
        env.update(UNBOUNDED)
    env["HEADWATER_HOME"] = str(home)
    if landing is not None:
        env["HEADWATER_LANDING_DIR"] = str(landing)
    if maturity:
        env["HEADWATER_LABEL_MATURITY_DAYS"] = str(maturity)
    return env


def part_order(parts: list[str], pairs: int = 1) -> list[str]:
    """The parts in the order they run: the demo generated first if a part reads it, full and
    floor `pairs` times, alternated, then the others in PARTS order."""
    named = [p for p in PARTS + OPTIONAL_PARTS if p in parts]
    paired = [p for p in ("full", "floor") if p in parts]
    order = ["generate"] if {"full", "floor", "concurrent"} & set(parts) else []
    order += paired * max(1, pairs)
    return order + [p for p in named if p not in paired]


def median_run(runs: list[dict]) -> dict:
    """The run of median process wall time (the lower middle one of an even count), with every
    run's wall time beside its figures."""
    ranked = sorted(runs, key=lambda r: r["wall_seconds"])
    chosen = ranked[(len(ranked) - 1) // 2]
    return {**chosen, "walls_seconds": [r["wall_seconds"] for r in runs]}


def run_part(
    part: str, config: dict, env: dict[str, str], folder: Path, label: str | None = None
) -> dict:
    """Run one part in a fresh subprocess; its figures plus wall time and peak memory. Its
    JSON and log are `<label>.json` and `<label>.log` in `folder` (label: the part's name)."""
    out = folder / f"{label or part}.json"
    log = folder / f"{label or part}.log"
    command = [sys.executable, "-m", "bench.parts", part, "--config", json.dumps(config)]
    started = time.perf_counter()
    with log.open("w") as sink:
        child = subprocess.Popen(
            [*command, "--out", str(out)], cwd=ROOT, env=env, stdout=sink, stderr=subprocess.STDOUT
        )
        sampler = TreeSampler(child.pid).start()
        code = child.wait()
        peak = sampler.stop()
    wall = time.perf_counter() - started
    if code != 0:
        raise RuntimeError(
            f"part {part} failed (exit {code}); the end of {log}:\n" + log.read_text()[-4000:]
        )
    return {
        **json.loads(out.read_text()),
        "wall_seconds": wall,
        "peak_rss_bytes": peak.rss_bytes,
        "peak_pss_bytes": peak.pss_bytes,
        "memory_samples": peak.samples,
        "load_average_end": os.getloadavg(),
        "max_processes": peak.max_processes,
    }


def machine() -> dict:
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    return {
        "cpus": os.cpu_count(),
        "memory_gib": memory / GIB,
        # the machine's load when the harness started: the figures' noise on a shared machine
        "load_average": os.getloadavg(),
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    start, end = window(args.days)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    config = {
        "transactions": args.transactions,
        "days": args.days,
        "start": start,
        "end": end,
        "seed": args.seed,
        "history_days": args.history_days,
        "new_days": args.new_days,
        "label_maturity_days": args.label_maturity_days,
        "warm_repeats": args.warm_repeats,
        "ui_days": args.ui_days,
        "ui_transactions": args.ui_transactions,
        "serve_rate": args.serve_rate,
        "serve_seconds": args.serve_seconds,
        "serve_port": args.serve_port,
        "unbounded_threads": args.unbounded_threads,
        "pairs": args.pairs,
    }
    results: dict = {
        "meta": {**config, "parts": args.parts, "started_at": stamp, **machine()},
        "parts": {},
    }
    folder = Path(tempfile.mkdtemp(prefix="headwater-bench-"))
    print(
        f"bench: {args.transactions:,} transactions, {start}..{end}, parts {args.parts}; "
        f"state in {folder}",
        flush=True,
    )
    try:
        pycache = folder / "pycache"
        results["meta"]["bytecode_warmup_seconds"] = warm_bytecode(
            pycache, everything=args.bytecode == "all"
        )
        config["pycache"] = str(pycache)
        landing = folder / "landing"
        order = part_order(args.parts, args.pairs)
        repeats: dict[str, list[dict]] = {}
        for part in order:
            label = part if part not in repeats else f"{part}-{len(repeats[part]) + 1}"
            home = folder / label
            shared = landing if part in ("generate", "full", "floor", "concurrent") else None
            part_config = config
            if part == "tick" and "incremental" in args.parts:
                # Ticks are measured against the state the incremental part left behind.
                home = folder / "incremental"
                part_config = {**config, "state_from_incremental": True}
            env = part_environment(
                home, shared, args.label_maturity_days, pycache, args.unbounded_threads
            )
            print(f"bench: {part} ...", flush=True)
            done = run_part(part, part_config, env, folder, label)
            repeats.setdefault(part, []).append(done)
            results["parts"][part] = median_run(repeats[part])
            print(f"bench: {part} done in {done['wall_seconds']:.1f} s", flush=True)
    finally:
        if not args.keep:
            shutil.rmtree(folder, ignore_errors=True)
    results["meta"]["load_average_end"] = os.getloadavg()
    results["figures"] = figures_json(results)
    out = args.out or RESULTS / f"{stamp}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2, default=str))
    print()
    print(render(results))
    print(f"\nJSON: {out}")
    return 0
