"""The benchmark's figures, their targets and the markdown tables: pure functions over the
results the parts wrote (no measuring here)."""

from __future__ import annotations

from dataclasses import asdict, dataclass

GIB = 1024**3

# The targets (docs/benchmarks.md says where each comes from).
RATIO_TARGET = 1.3  # platform / floor at 1M transactions (issue 17; 1.5 before)
PEAK_MEMORY_TARGET_GIB = 4.0  # all processes of the platform run at 10M (issue 17; 6 before)
INCREMENTAL_SHARE_TARGET = 0.10  # one new day / the full rebuild
WARM_LOAD_TARGET_SECONDS = 3.0  # each code location, warm
TICK_TARGET_SECONDS = 1.0  # sensors and automation conditions evaluated once
SERVE_P50_TARGET_MS = 2.0  # `headwater serve`, one row per request at 200 requests/s
SERVE_P99_TARGET_MS = 10.0
SERVE_SCORE_TOLERANCE = 1e-9  # its scores against `mlflow models serve`'s, same model


@dataclass(frozen=True)
class Figure:
    """One line of the table: what was measured, its value and the target it is held to."""

    part: str
    name: str
    value: float | None
    unit: str  # "s", "ms", "GiB", "x" (a ratio), "%", "req/s", "calls/s", "n" (a count)
    # or "abs" (a difference)
    target: str = ""  # e.g. "<= 1.5x"; empty: no target, context only
    ok: bool | None = None  # None: no target, or not measured

    @property
    def status(self) -> str:
        if self.ok is None:
            return ""
        return "ok" if self.ok else "missed"

    def formatted(self) -> str:
        if self.value is None:
            return "not run"
        if self.unit == "%":
            return f"{self.value:.1%}"
        if self.unit == "x":
            return f"{self.value:.2f}x"
        if self.unit == "ms":
            return f"{self.value:.2f} ms"
        if self.unit in ("req/s", "calls/s"):
            return f"{self.value:.0f} {self.unit}"
        if self.unit == "n":
            return f"{self.value:.0f}"
        if self.unit == "abs":
            return f"{self.value:.1e}"
        if self.unit == "GiB":
            return f"{self.value:.2f} GiB"
        return f"{self.value:.1f} s"


def _at_most(value: float | None, limit: float) -> bool | None:
    return None if value is None else value <= limit


def figures(results: dict) -> list[Figure]:
    """Every figure of a harness run, in table order; parts not run are left out."""
    parts = results.get("parts", {})
    out: list[Figure] = []
    full, floor = parts.get("full"), parts.get("floor")
    if "generate" in parts:
        out.append(
            Figure(
                "data", "generation (not in either side)", parts["generate"]["wall_seconds"], "s"
            )
        )
    if full:
        out += [
            Figure("full", "platform: process wall time", full["wall_seconds"], "s"),
            Figure("full", "platform: imports and Definitions", full["import_seconds"], "s"),
            Figure("full", "platform: materialise + drift", full["compute_seconds"], "s"),
            Figure(
                "full",
                "platform: peak memory, all processes (RSS sum)",
                full["peak_rss_bytes"] / GIB,
                "GiB",
                f"<= {PEAK_MEMORY_TARGET_GIB:g} GiB (at 10M)",
                _at_most(full["peak_rss_bytes"] / GIB, PEAK_MEMORY_TARGET_GIB),
            ),
            Figure("full", "platform: peak memory (PSS sum)", full["peak_pss_bytes"] / GIB, "GiB"),
        ]
    if floor:
        out += [
            Figure("floor", "floor: process wall time", floor["wall_seconds"], "s"),
            Figure("floor", "floor: imports", floor["import_seconds"], "s"),
            Figure("floor", "floor: compute", floor["compute_seconds"], "s"),
            Figure("floor", "floor: peak memory (RSS sum)", floor["peak_rss_bytes"] / GIB, "GiB"),
        ]
    if full and floor:
        wall = full["wall_seconds"] / floor["wall_seconds"]
        compute = full["compute_seconds"] / floor["compute_seconds"]
        out += [
            Figure(
                "ratio",
                "platform / floor, process wall time",
                wall,
                "x",
                f"<= {RATIO_TARGET:g}x (at 1M)",
                _at_most(wall, RATIO_TARGET),
            ),
            Figure(
                "ratio",
                "platform / floor, compute (imports excluded)",
                compute,
                "x",
                f"<= {RATIO_TARGET:g}x (at 1M)",
                _at_most(compute, RATIO_TARGET),
            ),
        ]
    incremental = parts.get("incremental")
    if incremental:
        days = incremental["history_days"]
        out += [
            Figure(
                "incremental",
                f"full rebuild of {days} days (materialise + drift)",
                incremental["history"]["seconds"],
                "s",
            ),
            Figure("incremental", _new_day_label(incremental), incremental["day_seconds"], "s"),
            Figure(
                "incremental",
                "new day / full rebuild",
                incremental["day_share_of_full"],
                "%",
                f"<= {INCREMENTAL_SHARE_TARGET:.0%}",
                _at_most(incremental["day_share_of_full"], INCREMENTAL_SHARE_TARGET),
            ),
        ]
    startup = parts.get("startup")
    if startup:
        for location, load in startup["locations"].items():
            out += [
                Figure(
                    "startup",
                    f"{location}: load, cold (no bytecode)",
                    load["cold"]["load_seconds"],
                    "s",
                ),
                Figure(
                    "startup",
                    f"{location}: load, warm",
                    load["warm"]["load_seconds"],
                    "s",
                    f"<= {WARM_LOAD_TARGET_SECONDS:g} s",
                    _at_most(load["warm"]["load_seconds"], WARM_LOAD_TARGET_SECONDS),
                ),
                Figure(
                    "startup",
                    f"{location}: process, warm (interpreter included)",
                    load["warm"]["process_seconds"],
                    "s",
                ),
            ]
        out += [
            Figure(
                "startup", "dagster definitions validate (both)", startup["validate_seconds"], "s"
            ),
            Figure("startup", "dev.py up: UI answers", startup["ui"]["ui_answers_seconds"], "s"),
            Figure(
                "startup",
                "dev.py up: both locations loaded",
                startup["ui"]["locations_loaded_seconds"],
                "s",
            ),
        ]
    tick = parts.get("tick")
    if tick:
        for name, ticks in tick["ticks"].items():
            out.append(Figure("tick", f"{name}: first (no cursor)", ticks["first"]["seconds"], "s"))
            out.append(Figure("tick", f"{name}: steady", ticks["steady"]["seconds"], "s"))
        out.append(
            Figure(
                "tick",
                "one tick: both sensors + automation, steady",
                tick["steady_total_seconds"],
                "s",
                f"<= {TICK_TARGET_SECONDS:g} s",
                _at_most(tick["steady_total_seconds"], TICK_TARGET_SECONDS),
            )
        )
    if parts.get("serve"):
        out += serve_figures(parts["serve"])
    return out


def _latency(leg: str, figures: dict, rate: float, targets: bool) -> list[Figure]:
    """p50, p99 (against the issue's targets when `targets`), throughput and failures."""
    p50_target, p99_target = (
        (f"<= {SERVE_P50_TARGET_MS:g} ms", f"<= {SERVE_P99_TARGET_MS:g} ms")
        if targets
        else ("", "")
    )
    return [
        Figure(
            "serve", f"{leg}: p50 at {rate:g} req/s", figures["p50_ms"], "ms", p50_target,
            _at_most(figures["p50_ms"], SERVE_P50_TARGET_MS) if targets else None,
        ),
        Figure(
            "serve", f"{leg}: p99 at {rate:g} req/s", figures["p99_ms"], "ms", p99_target,
            _at_most(figures["p99_ms"], SERVE_P99_TARGET_MS) if targets else None,
        ),
        Figure("serve", f"{leg}: throughput", figures["throughput_rps"], "req/s"),
        Figure("serve", f"{leg}: failed requests", figures["failed"], "n"),
    ]  # fmt: skip


def _difference(label: str, difference: float, rows: int) -> Figure:
    return Figure(
        "serve",
        f"largest score difference against mlflow models serve, {label}, {rows} rows",
        difference,
        "abs",
        f"<= {SERVE_SCORE_TOLERANCE:g}",
        _at_most(difference, SERVE_SCORE_TOLERANCE),
    )


def serve_figures(serve: dict) -> list[Figure]:
    """Single-row latency: the floor, `headwater serve` with the features in the request and
    with online features (the issue's targets are the online leg's), `mlflow models serve`."""
    rate, floor = serve["rate"], serve["floor"]
    out = [
        Figure(
            "serve", f"floor: Booster.predict, one row, p50 at {rate:g}/s", floor["p50_ms"], "ms"
        ),
        Figure(
            "serve", f"floor: Booster.predict, one row, p99 at {rate:g}/s", floor["p99_ms"], "ms"
        ),
        Figure("serve", "floor: throughput", floor.get("throughput_rps"), "calls/s"),
    ]
    out += _latency("headwater serve, features in the request", serve["headwater"], rate, False)
    online = serve.get("headwater_online")
    if online:
        out += _latency("headwater serve, online features", online, rate, True)
    if serve.get("headwater_online_duckdb"):  # the same requests on the DuckDB engine
        label = "headwater serve, online features on DuckDB"
        out += _latency(label, serve["headwater_online_duckdb"], rate, False)
    flavor = serve.get("mlflow_flavor")
    if flavor:  # the registered lightgbm flavor, served as is: a categorical model's rows refused
        out.append(Figure("serve", "mlflow lightgbm flavor: rows refused", flavor["refused"], "n"))
    if serve.get("mlflow") is None:
        return out
    out += _latency("mlflow models serve", serve["mlflow"], rate, False)
    out.append(
        _difference(
            "features in the request", serve["max_score_difference"], serve["compared_rows"]
        )
    )
    if online:
        out.append(
            _difference(
                "online features",
                serve["online_max_score_difference"],
                serve["online_compared_rows"],
            )
        )
    if "online_duckdb_max_score_difference" in serve:
        out.append(
            _difference(
                "online features on DuckDB",
                serve["online_duckdb_max_score_difference"],
                serve["online_compared_rows"],
            )
        )
    return out


def figures_table(items: list[Figure]) -> str:
    lines = ["| figure | value | target | status |", "|---|---:|---|---|"]
    lines += [f"| {f.name} | {f.formatted()} | {f.target} | {f.status} |" for f in items]
    return "\n".join(lines)


def steps_table(runs: list[dict]) -> str:
    """Per-step seconds of platform runs, slowest first, with the assets each step made."""
    rows = [(s["seconds"], r["label"], s) for r in runs for s in r["steps"]]
    lines = ["| run | step | s | assets |", "|---|---|---:|---|"]
    for seconds, label, step in sorted(rows, key=lambda row: -row[0]):
        assets = step["assets"]
        shown = ", ".join(assets[:3]) + (f" (+{len(assets) - 3})" if len(assets) > 3 else "")
        lines.append(f"| {label} | {step['step']} | {seconds:.1f} | {shown} |")
    return "\n".join(lines)


def runs_table(runs: list[dict]) -> str:
    """Per run: its time, the share outside any step, and what it logged before the first."""
    lines = [
        "| run | s | outside steps s | before first step s | planned-materialisation events |",
        "|---|---:|---:|---:|---:|",
    ]
    lines += [
        f"| {r['label']} | {r['seconds']:.1f} | {r['outside_steps_seconds']:.1f} | "
        f"{r['before_first_step_seconds']:.1f} | {r['planned_events']} |"
        for r in runs
    ]
    return "\n".join(lines)


def stages_table(stages: dict[str, float]) -> str:
    lines = ["| floor stage | s |", "|---|---:|"]
    lines += [f"| {name} | {seconds:.1f} |" for name, seconds in stages.items()]
    return "\n".join(lines)


def _load(values) -> str:
    return "/".join(f"{v:.1f}" for v in values) if values else "?"


def render(results: dict) -> str:
    """The whole report: figures, then the breakdowns of the parts that ran."""
    meta = results["meta"]
    out = [
        f"headwater bench: {meta['transactions']:,} transactions over {meta['days']} days "
        f"({meta['start']}..{meta['end']}), {meta['cpus']} CPUs, "
        f"{meta['memory_gib']:.0f} GiB, {meta['started_at']}; bytecode compiled first in "
        f"{meta.get('bytecode_warmup_seconds', 0):.0f} s (not counted); load average "
        f"{_load(meta.get('load_average'))} at the start, {_load(meta.get('load_average_end'))} "
        f"at the end; threads {'unbounded' if meta.get('unbounded_threads') else 'bounded'}",
        "",
        figures_table(figures(results)),
    ]
    parts = results["parts"]
    if meta.get("pairs", 1) > 1 and "full" in parts and "floor" in parts:
        walls = {side: parts[side]["walls_seconds"] for side in ("full", "floor")}
        out += [
            "",
            f"Platform and floor alternated {meta['pairs']} times; each side's figures are its "
            "median run's. Process wall times, in order: platform "
            + ", ".join(f"{w:.1f}" for w in walls["full"])
            + " s; floor "
            + ", ".join(f"{w:.1f}" for w in walls["floor"])
            + " s; ratio of each pair "
            + ", ".join(f"{a / b:.2f}x" for a, b in zip(walls["full"], walls["floor"], strict=True))
            + ".",
        ]
    if "full" in parts:
        runs = parts["full"]["runs"]
        out += ["", "Full run, per run and per step:", "", runs_table(runs), "", steps_table(runs)]
    if "floor" in parts:
        out += ["", "Floor, per stage:", "", stages_table(parts["floor"]["stages"])]
    if "incremental" in parts:
        runs = parts["incremental"]["runs"]
        out += ["", "New day, per run and per step:", "", runs_table(runs), "", steps_table(runs)]
    if "concurrent" in parts:
        from bench.concurrent import concurrent_table

        out += ["", "Two full runs at once, per step:", "", concurrent_table(parts["concurrent"])]
    return "\n".join(out)


def _new_day_label(incremental: dict) -> str:
    each = [day["seconds"] for day in incremental.get("days", [])]
    if len(each) < 2:
        return "one new day through the graph"
    days = ", ".join(f"{s:.1f}" for s in each)
    return f"one new day through the graph (median of {len(each)} consecutive: {days} s)"


def figures_json(results: dict) -> list[dict]:
    return [{**asdict(f), "status": f.status} for f in figures(results)]
