"""A day of the served predictions' log loaded into the warehouse, every record accounted for.

The day's records (`prediction_log.read_day`) are staged, checked in SQL and written in one
transaction that replaces the day: the champion's records to `serving.<name>_predictions`, the
shadow challenger's to `serving.<name>_shadow_predictions` (a sibling table: drift and
performance read the champion's as they read batch scores, and the comparison pairs the two by
request id), and the refused ones to `serving.quarantine` with a reason naming the field, as the
raw layer does with landing files. Keys and features are unpacked from their JSON to columns
named and typed as the spec's feature set has them.

A record is refused when its request id is missing or already loaded (in this day's log, or on
another day, for the same role), its role, model, day or version is not what its file says, its
score is missing or NaN, or a key or feature is missing or not of its column's type. Over
`max_quarantined_share` of the day refused, the day's loaded rows stay as they were (only the
quarantine is replaced) and `LogRefused` says why; an empty log never empties a loaded day.
                                                                                        (pure)
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import date
from typing import TYPE_CHECKING

from headwater_core.names import (
    SERVING,
    SERVING_QUARANTINE_TABLE,
    predictions_table,
    shadow_predictions_table,
)
from ml_assets.models.spec import ModelSpec, ident
from ml_assets.serving.prediction_log import ROLE_CHAMPION, ROLE_SHADOW

if TYPE_CHECKING:
    import duckdb
    import pyarrow as pa

MAX_QUARANTINED_SHARE = 0.05
QUARANTINE_COLUMNS = (
    "model varchar, day date, role varchar, request_id varchar, reason varchar, "
    "record varchar, loaded_at timestamp"
)
# The columns every served table has besides the spec's keys and features.
FIXED_COLUMNS = (
    "request_id",
    "served_at",
    "score_date",
    "event_time",
    "model_version",
    "role",
    "score",
    "latency_ms",
    "loaded_at",
)
_STAGED = "served_log_day"


class LogRefused(Exception):
    """A day of the log with too many bad records: nothing of it replaced the loaded day."""


@dataclass(frozen=True)
class LoadedDay:
    """What loading a day of the log did: every record read is in exactly one count."""

    read: int
    champion: int
    shadow: int
    quarantined: int
    reasons: dict[str, int]  # quarantined records by reason (its first words)
    versions: dict[str, dict[str, int]]  # loaded records by role, then model version
    replaced: bool  # False: refused, the day's loaded rows were kept

    @property
    def quarantined_share(self) -> float:
        return self.quarantined / self.read if self.read else 0.0


def column_types(con: duckdb.DuckDBPyConnection, spec: ModelSpec) -> dict[str, str]:
    """The SQL type of each key and feature: the feature set's own where it exists (so served
    rows compare with batch rows like for like), else VARCHAR for keys and categoricals and
    DOUBLE for the rest."""
    schema, table = spec.feature_set.split(".")
    found = dict(
        con.execute(
            "select column_name, data_type from information_schema.columns "
            "where table_schema = $1 and table_name = $2",
            [schema, table],
        ).fetchall()
    )
    categorical = set(spec.categorical)
    return {
        c: found.get(c) or ("VARCHAR" if c in categorical or c in spec.keys else "DOUBLE")
        for c in (*spec.keys, *spec.features)
    }


def _text(column: str, name: str) -> str:
    return f"({column} ->> '$.{ident(name)}')"


def _fault_sql(spec: ModelSpec, types: dict[str, str]) -> str:
    """The first fault of a staged record, as a reason, or NULL for a good record."""
    cases = [
        ("request_id is null or trim(request_id) = ''", "'request_id is missing'"),
        (
            f"role is null or role not in ('{ROLE_CHAMPION}', '{ROLE_SHADOW}')",
            "'role ' || coalesce(role, 'null') || ' is neither champion nor shadow'",
        ),
        (
            "model_name is distinct from $model",
            "'model_name ' || coalesce(model_name, 'null') || ' is not ' || $model",
        ),
        (
            "score_date is distinct from $day",
            "'score_date ' || coalesce(cast(score_date as varchar), 'null') "
            "|| ' is not the day of its log folder'",
        ),
        ("coalesce(model_version, '') = ''", "'model_version is missing'"),
        ("score is null or isnan(score)", "'score is missing or NaN'"),
        ("not coalesce(json_valid(keys_json), false)", "'keys_json is not a JSON object'"),
        ("not coalesce(json_valid(features_json), false)", "'features_json is not a JSON object'"),
    ]
    for source, kind, names in (
        ("keys_json", "key", spec.keys),
        ("features_json", "feature", spec.features),
    ):
        for name in names:
            text, sql_type = _text(source, name), types[name]
            if kind == "key":
                cases.append((f"{text} is null", f"'key {name} is missing'"))
            else:
                cases.append(
                    (
                        f"not json_exists({source}, '$.{ident(name)}')",
                        f"'feature {name} is missing'",
                    )
                )
            cases.append(
                (
                    f"{text} is not null and try_cast({text} as {sql_type}) is null",
                    f"'{kind} {name}: ' || {text} || ' is not {sql_type}'",
                )
            )
    return "case " + " ".join(f"when {c} then {r}" for c, r in cases) + " end"


def _typed_select(spec: ModelSpec, types: dict[str, str]) -> str:
    """The staged records as a served table's row: keys and features as columns."""
    keys = [f"try_cast({_text('keys_json', k)} as {types[k]}) as {ident(k)}" for k in spec.keys]
    features = [
        f"try_cast({_text('features_json', f)} as {types[f]}) as {ident(f)}" for f in spec.features
    ]
    return ", ".join(
        [
            "request_id",
            "served_at",
            "score_date",
            "cast(score_date as timestamp) as event_time",
            "model_version",
            "role",
            *keys,
            *features,
            "score",
            "latency_ms",
            "cast(current_timestamp as timestamp) as loaded_at",
        ]
    )


def _stage(con: duckdb.DuckDBPyConnection, records: pa.Table) -> None:
    import pyarrow as pa
    import pyarrow.compute as pc

    # served_at as naive UTC: the warehouse's timestamps carry no zone
    served_at = pc.cast(records.column("served_at"), pa.timestamp("us"))
    staged = records.set_column(records.schema.get_field_index("served_at"), "served_at", served_at)
    staged = staged.append_column("line", pa.array(range(staged.num_rows), pa.int64()))
    con.register(_STAGED, staged)


def _judge(con, spec: ModelSpec, types: dict[str, str], day: date) -> None:
    """`served_log_judged`: each staged record with its reason (NULL: loaded)."""
    tables = {
        ROLE_CHAMPION: predictions_table(spec.name),
        ROLE_SHADOW: shadow_predictions_table(spec.name),
    }
    elsewhere = " union all ".join(
        f"select '{role}' as role, request_id, min(score_date) as loaded_on from {table} "
        "where score_date <> $day group by request_id"
        for role, table in tables.items()
    )
    con.execute(
        f"create or replace temp table served_log_judged as "
        f"with faults as (select *, {_fault_sql(spec, types)} as fault from {_STAGED}), "
        "ranked as (select *, row_number() over (partition by role, request_id "
        "order by served_at, line) as copy, min(served_at) over (partition by role, request_id) "
        "as first_served from faults where fault is null) "
        "select f.*, coalesce(f.fault, case "
        "when r.copy > 1 then 'duplicate request_id: first served at ' || r.first_served "
        "when e.loaded_on is not null then 'request_id already loaded on ' || e.loaded_on "
        "end) as reason "
        "from faults f left join ranked r using (line) "
        f"left join ({elsewhere}) e on e.role = f.role and e.request_id = f.request_id",
        {"model": spec.name, "day": day},
    )


def _create_tables(con, spec: ModelSpec, types: dict[str, str]) -> None:
    clash = set(FIXED_COLUMNS) & {*spec.keys, *spec.features}
    if clash:
        raise ValueError(
            f"{spec.source}: a served table cannot have a key or feature {sorted(clash)}"
        )
    con.execute(f"create schema if not exists {SERVING}")
    select = _typed_select(spec, types)
    for table in (predictions_table(spec.name), shadow_predictions_table(spec.name)):
        con.execute(
            f"create table if not exists {table} as select {select} from {_STAGED} where false"
        )
    con.execute(f"create table if not exists {SERVING_QUARANTINE_TABLE} ({QUARANTINE_COLUMNS})")


def load_day(
    con: duckdb.DuckDBPyConnection,
    spec: ModelSpec,
    day: date,
    records: pa.Table,
    max_quarantined_share: float = MAX_QUARANTINED_SHARE,
) -> LoadedDay:
    """Replace the day's served rows of `spec` with the day's log `records`, in one transaction.

    Raises LogRefused (after recording the day's quarantine) when more than
    `max_quarantined_share` of the records were refused."""
    types = column_types(con, spec)
    _stage(con, records)
    _create_tables(con, spec, types)
    if records.num_rows == 0:
        _refuse_emptying(con, spec, day)
    _judge(con, spec, types, day)
    counted = con.execute(
        "select coalesce(reason, ''), role, model_version, count(*) "
        "from served_log_judged group by all"
    ).fetchall()
    reasons: Counter[str] = Counter()
    versions: dict[str, dict[str, int]] = {ROLE_CHAMPION: {}, ROLE_SHADOW: {}}
    for reason, role, version, n in counted:
        if reason:
            reasons[reason.split(":")[0]] += n
        else:
            versions[role][version] = versions[role].get(version, 0) + n
    loaded = {role: sum(v.values()) for role, v in versions.items()}
    quarantined = sum(reasons.values())
    refused = records.num_rows > 0 and quarantined / records.num_rows > max_quarantined_share
    _write(con, spec, day, types, replace_day=not refused)
    con.unregister(_STAGED)
    result = LoadedDay(
        read=records.num_rows,
        champion=loaded[ROLE_CHAMPION],
        shadow=loaded[ROLE_SHADOW],
        quarantined=quarantined,
        reasons=dict(reasons.most_common()),
        versions=versions,
        replaced=not refused,
    )
    if result.read != result.champion + result.shadow + result.quarantined:
        raise AssertionError(f"{spec.name} {day}: the log's records do not reconcile: {result}")
    if refused:
        raise LogRefused(
            f"{spec.name} {day}: {quarantined} of {records.num_rows} served records refused "
            f"({result.quarantined_share:.1%} > {max_quarantined_share:.1%}; "
            + ", ".join(f"{r}: {n}" for r, n in reasons.most_common(3))
            + f"); the day's loaded rows are kept, the refused records are in "
            f"{SERVING_QUARANTINE_TABLE}"
        )
    return result


def _refuse_emptying(con, spec: ModelSpec, day: date) -> None:
    """An empty log never empties a loaded day: the log folder may be the wrong one, or pruned."""
    ((loaded,),) = con.execute(
        f"select count(*) from {predictions_table(spec.name)} where score_date = $1", [day]
    ).fetchall()
    if loaded:
        con.unregister(_STAGED)
        raise LogRefused(
            f"{spec.name} {day}: the log holds no record of the day, but {loaded} served rows "
            "are loaded: kept (is the log folder the service's?)"
        )


def _write(con, spec: ModelSpec, day: date, types: dict[str, str], replace_day: bool) -> None:
    select = _typed_select(spec, types)
    con.execute("begin transaction")
    con.execute(
        f"delete from {SERVING_QUARANTINE_TABLE} where model = $1 and day = $2", [spec.name, day]
    )
    con.execute(
        f"insert into {SERVING_QUARANTINE_TABLE} select $1, $2, role, request_id, reason, "
        "to_json(struct_pack(request_id, served_at, score_date, model_name, model_version, role, "
        "keys_json, features_json, score, latency_ms)), cast(current_timestamp as timestamp) "
        "from served_log_judged where reason is not null order by line",
        [spec.name, day],
    )
    if replace_day:
        for role, table in (
            (ROLE_CHAMPION, predictions_table(spec.name)),
            (ROLE_SHADOW, shadow_predictions_table(spec.name)),
        ):
            con.execute(f"delete from {table} where score_date = $1", [day])
            con.execute(
                f"insert into {table} by name select {select} from served_log_judged "
                "where reason is null and role = $1 order by served_at, line",
                [role],
            )
    con.execute("commit")
