"""`headwater replay`: a model's monitoring replayed day by day over periods of a built warehouse,
to measure its alarms: the false-alarm rate on stable days and the delay to flag a known shift.

For each period the model is trained as the platform trains it (`training_set`, `train.fit`,
`reference.drift_reference`) on the data known before the period, then every day is scored with
the champion (`scores.scoring.score_window`), its drift measured and judged
(`monitoring.window`, `monitoring.measure.measure_drift`) and its decay measured and judged
(`measure.read_performance_day`, `measure_performance`): the very functions the assets call,
with the spec's settings. Every `retrain_every` days, and the day after an ERROR (the monitor
sensor's retrain), a challenger is trained on the data known then and judged by the paired gate
(`evaluate.judge_on_test_window`); it replaces the champion only when the gate promotes it,
and a refusal re-bases the champion's drift reference and decay baseline on the challenger's
windows as the platform does (`rebaseline.rebaseline`, `monitoring.rebaseline_on_refusal`).

The warehouse is not written: the replay works on a copy in its output folder (scores and
monitoring tables included, so they can be queried). No Dagster, no MLflow.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import date, datetime, time, timedelta
from pathlib import Path

from headwater.replay_report import (
    ERROR,
    NOT_MEASURABLE,
    DayRecord,
    GateRecord,
    Period,
    as_dicts,
    summarise,
)


@dataclass
class Version:
    """A model trained during the replay, as the registry would hold it."""

    name: str
    fitted: object  # train.Fitted: the held-out twin judges, the refit serves
    table: object  # its training set (pyarrow), whose test window the gate judges on
    reference: object  # the drift reference (pandas)
    importance: dict[str, float]
    test_metrics: dict[str, float]
    trained_through: str


def days_of(first: str, last: str) -> list[str]:
    start, end = date.fromisoformat(first), date.fromisoformat(last)
    return [(start + timedelta(days=i)).isoformat() for i in range((end - start).days + 1)]


def _before(day: str, days: int = 1) -> str:
    return (date.fromisoformat(day) - timedelta(days=days)).isoformat()


def train_version(con, spec, known_before: str, name: str, folder: Path) -> Version:
    """A version trained on the rows whose labels had matured when `known_before` began, the
    way the training-set and model assets train it."""
    from ml_assets.models.evaluate import metrics_on_test_window
    from ml_assets.models.reference import drift_reference
    from ml_assets.models.train import EVENT_DATE_COLUMN, event_days, fit, training_set_sql
    from ml_assets.models.training_set import build_training_set

    cutoff = datetime.combine(date.fromisoformat(known_before), time.min)
    rows = con.sql(training_set_sql(spec).replace("$cutoff", "$1"), params=[cutoff])
    built = build_training_set(
        spec, cutoff, rows.to_arrow_table(), folder / "training_sets" / f"v{name}.parquet"
    )
    table = built.table
    fitted = fit(spec, table)
    return Version(
        name=name,
        fitted=fitted,
        table=table,
        reference=drift_reference(spec, fitted, event_days(table)).frame,
        importance=fitted.served.feature_importance,
        test_metrics=metrics_on_test_window(spec, table, fitted.frame, fitted.trained.booster),
        trained_through=str(max(table.column(EVENT_DATE_COLUMN).to_pylist())),
    )


def gate(
    spec, period: str, day: str, trigger: str, champion: Version, challenger: Version
) -> tuple[GateRecord, Version]:
    """The paired gate on the challenger's test window: its record, and the champion after it
    (the challenger if promoted; else the champion, re-based on the challenger's windows when
    the spec says so, by the platform's `rebaseline.rebaseline`)."""
    from ml_assets.models.evaluate import judge_on_test_window
    from ml_assets.models.rebaseline import rebaseline

    metrics, rows, decision = judge_on_test_window(
        spec,
        challenger.table,
        challenger.fitted.trained.booster,
        champion.fitted.trained.booster,
    )
    rebased = rebaseline(
        spec,
        decision,
        metrics["champion"],
        champion.fitted.served.booster,
        challenger.name,
        challenger.reference,
    )
    gain = decision.improvement
    record = GateRecord(
        period=period,
        day=day,
        trigger=trigger,
        champion=champion.name,
        challenger=challenger.name,
        metric=decision.metric,
        champion_value=float(metrics["champion"][decision.metric]),
        challenger_value=float(metrics["challenger"][decision.metric]),
        improvement=gain.value,
        lower=gain.lower,
        upper=gain.upper,
        test_rows=rows,
        promoted=decision.promote,
        reason=decision.reason,
        rebaselined=rebased is not None,
    )
    if decision.promote:
        return record, challenger
    if rebased is None:
        return record, champion
    return record, replace(champion, reference=rebased.reference, test_metrics=rebased.test_metrics)


def measure_day(con, spec, period: str, day: str, versions: dict[str, Version]) -> DayRecord | None:
    """Drift of the window up to `day` and decay over the trailing window, judged by the
    platform's functions and written to the copy's monitoring tables (None: a day with no
    rows, which the assets do not measure either)."""
    from ml_assets.monitoring import measure
    from ml_assets.monitoring import window as window_

    rule = spec.monitoring.drift
    window = window_.read_scored_window(con, spec, day)
    if window.day_rows == 0:
        return None
    version = versions[measure.scoring_version(window.rows)]
    reference = version.reference
    if rule.same_period_days is not None:
        reference = measure.scored_frame(window_.read_same_period(con, spec, window), spec)
    current = measure.scored_frame(window.rows, spec)
    drift = measure.measure_drift(spec, reference, current, version.importance)
    measure.write_drift(con, spec.name, day, version.name, drift.result, version.importance)

    # Decay only from labels known by the end of `day`: the copy holds later labels too, and
    # a model whose labels arrive late (the fraud model: 61 days) would be judged on the future.
    try:
        now = measure.day_after(date.fromisoformat(day))
        scored = measure.read_performance_day(con, spec, day, known_until=now)
    except measure.NotMeasurable as e:
        return _record(period, day, version, window, current, drift, spec, None, str(e))
    judged = versions[scored.version]
    perf = measure.measure_performance(
        spec, day, scored, judged.test_metrics, judged.trained_through
    )
    measure.write_performance(con, spec, day, judged.name, perf, judged.test_metrics)
    return _record(period, day, version, window, current, drift, spec, perf, "")


def _record(period, day, version, window, current, drift, spec, perf, not_measurable: str):
    """The day's record; `perf` None: its decay not measurable yet (`not_measurable` says why)."""
    nan = float("nan")
    w = perf.window if perf is not None else None
    return DayRecord(
        period=period,
        day=day,
        version=version.name,
        window=window.label,
        window_rows=len(current),
        drift_status=drift.result.status,
        drift_share=drift.share,
        drifted=drift.drifted,
        drift_level=drift.verdict.level,
        metric=spec.monitoring.performance.metric,
        value=w.value if w else nan,
        lower=w.lower if w else nan,
        upper=w.upper if w else nan,
        n_labels=w.n if w else 0,
        decay_level=perf.verdict.level if perf else NOT_MEASURABLE,
        decay_reason=perf.verdict.reason if perf else not_measurable,
        methods={f.column: f.method for f in drift.result.features},
    )


class _Counter:
    def __init__(self) -> None:
        self.n = 0

    def next(self) -> str:
        self.n += 1
        # zero-padded: the scoring version is the last in sorted order (measure.scoring_version)
        return f"{self.n:03d}"


def replay_period(
    con, spec, period: Period, retrain_every: int, folder: Path, counter: _Counter, echo
) -> tuple[list[DayRecord], list[GateRecord]]:
    """One period: a champion trained on what was known before its window's first day, then
    day by day: retrain and gate (every `retrain_every` days, and after an ERROR), score,
    measure."""
    from ml_assets.scores.scoring import score_window

    # The days before the period that its first window reaches back over are scored too.
    warm_up = spec.monitoring.drift.window_partitions - 1
    first_scored = _before(period.first, warm_up)
    champion = train_version(con, spec, first_scored, counter.next(), folder)
    versions = {champion.name: champion}
    echo(f"{period.name}: version {champion.name} trained through {champion.trained_through}")
    days, gates = [], []
    for day in days_of(first_scored, period.last):
        since = (date.fromisoformat(day) - date.fromisoformat(period.first)).days
        trigger = None
        if days and days[-1].level == ERROR:
            trigger = "after ERROR"
        elif since > 0 and since % retrain_every == 0:
            trigger = "scheduled"
        if trigger:
            challenger = train_version(con, spec, day, counter.next(), folder)
            versions[challenger.name] = challenger
            record, champion = gate(spec, period.name, day, trigger, champion, challenger)
            versions[champion.name] = champion  # re-based or promoted: monitoring reads it
            gates.append(record)
            rebased = f" (champion {champion.name} re-based)" if record.rebaselined else ""
            echo(f"{day}: {trigger} retrain {challenger.name}: {record.reason}{rebased}")
        end = (date.fromisoformat(day) + timedelta(days=1)).isoformat()
        score_window(con, spec, champion.fitted.served.booster, champion.name, (day, end))
        if day < period.first:
            continue
        d = measure_day(con, spec, period.name, day, versions)
        if d is None:
            echo(f"{day}: nothing scored, not measured")
            continue
        days.append(d)
        echo(f"{day}: drift {d.drift_share:.2f} {d.drift_level}, decay {d.decay_level}")
    return days, gates


def replay(
    warehouse: Path,
    spec,
    periods: list[Period],
    folder: Path,
    retrain_every: int = 7,
    echo: Callable[[str], None] = print,
) -> dict:
    """Replay `periods` on a copy of `warehouse`; the result as a JSON-ready dict (see
    `replay_report.render`)."""
    import duckdb

    folder.mkdir(parents=True, exist_ok=True)
    copy = folder / "replay.duckdb"
    shutil.copyfile(warehouse, copy)
    days, gates, summaries = [], [], []
    counter = _Counter()
    con = duckdb.connect(str(copy))
    try:
        # Start from nothing scored or measured: the copy's rows are the replay's own.
        for schema in ("scores", "monitoring"):
            con.execute(f"drop schema if exists {schema} cascade")
        for period in periods:
            mine, retrains = replay_period(con, spec, period, retrain_every, folder, counter, echo)
            days += mine
            gates += retrains
            summaries.append(summarise(period, mine))
    finally:
        con.close()
    return {
        "model": spec.name,
        "warehouse": str(warehouse),
        "retrain_every_days": retrain_every,
        "drift": _settings(spec),
        "summary": summaries,
        "days": as_dicts(days),
        "gates": as_dicts(gates),
    }


def _settings(spec) -> dict:
    rule = spec.monitoring.drift
    return {
        "reference": rule.reference_label,
        "window_partitions": rule.window_partitions,
        "min_rows": rule.min_rows,
        "warn_share": rule.warn_share,
        "error_share": rule.error_share,
        "exempt": list(rule.exempt),
    }


def add_arguments(parser) -> None:
    """`headwater replay`'s options."""
    parser.add_argument("--model", required=True, help="the model spec's name")
    parser.add_argument(
        "--period",
        action="append",
        required=True,
        metavar="NAME:FIRST:LAST[:SHIFT_START]",
        help="a span of days to replay; SHIFT_START: the first day of a known shift in it "
        "(the days before are stable); repeat for several periods",
    )
    parser.add_argument("--retrain-every", type=int, default=7, metavar="DAYS")
    parser.add_argument(
        "--out", type=Path, default=None, help="output folder (default <state>/replay/<model>)"
    )


def run_from_arguments(args) -> int:
    """Replay, print the markdown tables, write `replay.json` and `replay.md` to the folder."""
    import os

    from headwater.environment import configure_environment
    from headwater.errors import UserError
    from headwater.replay_report import render, to_json
    from ml_assets.models.spec import load_specs

    home = configure_environment()
    try:
        periods = [Period.parse(p) for p in args.period]
    except ValueError as e:
        raise UserError(f"--period: {e}") from e
    if args.retrain_every < 1:
        raise UserError(f"--retrain-every must be at least 1, got {args.retrain_every}")
    specs = {s.name: s for s in load_specs()}
    if args.model not in specs:
        raise UserError(f"no model spec named {args.model!r}; known: {sorted(specs)}")
    warehouse = Path(os.environ["HEADWATER_DUCKDB_PATH"])
    if not warehouse.is_file():
        raise UserError(f"no warehouse at {warehouse}: build it first (headwater materialize)")
    folder = (args.out or home / "replay" / args.model).resolve()
    result = replay(
        warehouse,
        specs[args.model],
        periods,
        folder,
        args.retrain_every,
        echo=lambda line: print(line, flush=True),
    )
    text = render(result)
    (folder / "replay.md").write_text(text)
    (folder / "replay.json").write_text(to_json(result))
    print(f"\n{text}\nwritten: {folder / 'replay.md'}, {folder / 'replay.json'}")
    return 0
