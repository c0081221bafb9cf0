"""The demo-data generator: deterministic, contract-shaped, learnable, and drift/bad-row aware."""

from __future__ import annotations

import hashlib
from dataclasses import replace
from datetime import date, datetime, timedelta
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq
import pytest
import yaml

from fraud_demo.feed import (
    DEMO_RECORD,
    extended_to,
    feed_demo,
    read_record,
    start_demo,
    with_whole_daily_volume,
)
from fraud_demo.generator import (
    DRIFT_SCENARIOS,
    DriftScenario,
    GeneratorConfig,
    generate,
    generate_if_absent,
    simulate,
)
from fraud_demo.generator.transactions import report_delays

REPO = Path(__file__).resolve().parents[2]
SOURCES = sorted((REPO / "dbt_project" / "models" / "staging").glob("*/_*__sources.yml"))
KINDS = ("transactions", "chargebacks", "customers", "merchants")
DAILY = ("transactions", "chargebacks")
ARROW_TYPES = {
    "varchar": pa.string(),
    "decimal(12, 2)": pa.decimal128(12, 2),
    "timestamp": pa.timestamp("s"),
    "integer": pa.int32(),
}

# 30 days of 1,000 payments; customers set explicitly so a few sign up inside the window.
BASE = GeneratorConfig(days=30, transactions=30_000, n_customers=1_000)
DRIFT_ONSET = BASE.start_date + timedelta(days=15)
HIGH_RISK_CATEGORIES = {"electronics", "gift_cards", "online_gaming"}


# --- helpers -------------------------------------------------------------------------------


def contract() -> dict[str, list[dict]]:
    """Raw contract columns by table name, read from the dbt sources files."""
    tables = {}
    for path in SOURCES:
        for source in yaml.safe_load(path.read_text())["sources"]:
            for table in source["tables"]:
                tables[table["name"]] = table
    return tables


def file_hashes(landing: Path) -> dict[str, str]:
    """sha256 of every file under `landing`, by relative path."""
    return {
        str(p.relative_to(landing)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(landing.rglob("*"))
        if p.is_file()
    }


def daily_files(landing: Path, kind: str) -> list[Path]:
    return sorted((landing / kind).glob(f"{kind}_*.*"))


def file_day(path: Path) -> date:
    return date.fromisoformat(path.stem.split("_")[-1])


def read_typed(landing: Path, kind: str) -> pa.Table:
    """All files of `kind`, cast to the contract types (clean data only)."""
    columns = [c["name"] for c in contract()[kind]["columns"]]
    schema = pa.schema(
        [(c["name"], ARROW_TYPES[c["data_type"]]) for c in contract()[kind]["columns"]]
    )
    tables = []
    for path in daily_files(landing, kind):
        if path.suffix == ".csv":
            options = pa_csv.ConvertOptions(column_types=schema, include_columns=columns)
            table = pa_csv.read_csv(path, convert_options=options)
        else:
            table = pq.read_table(path)
        tables.append(table.select(columns).cast(schema))
    return pa.concat_tables(tables)


def read_as_written(path: Path) -> pa.Table:
    """A landing file's rows as written (CSV as text, so damaged rows read too)."""
    return read_strings(path) if path.suffix == ".csv" else pq.read_table(path)


def read_strings(path: Path) -> pa.Table:
    """A CSV file with every column as text (empty fields as null)."""
    with path.open("rb") as handle:
        header = handle.readline().decode().strip().replace('"', "").split(",")
    options = pa_csv.ConvertOptions(
        column_types={name: pa.string() for name in header}, strings_can_be_null=True
    )
    return pa_csv.read_csv(path, convert_options=options)


def epoch(values: pa.ChunkedArray | pa.Array) -> np.ndarray:
    return pc.cast(values, pa.timestamp("s")).cast(pa.int64()).to_numpy()


def merchant_categories(landing: Path) -> dict[str, str]:
    merchants = read_typed(landing, "merchants")
    return dict(zip(merchants["merchant_id"].to_pylist(), merchants["category"].to_pylist()))


@pytest.fixture(scope="module")
def base(tmp_path_factory) -> tuple[Path, object]:
    landing = tmp_path_factory.mktemp("base")
    return landing, generate(BASE, landing, progress=False)


@pytest.fixture(scope="module")
def truth() -> list:
    """The simulated days of BASE, with their fraud ground truth."""
    return list(simulate(BASE))


# --- determinism and incremental generation ------------------------------------------------


def test_same_config_writes_identical_bytes(base, tmp_path):
    landing, _ = base
    generate(BASE, tmp_path, progress=False)
    assert file_hashes(tmp_path) == file_hashes(landing)


def test_another_seed_writes_other_data(base, tmp_path):
    landing, _ = base
    generate(replace(BASE, seed=BASE.seed + 1), tmp_path, progress=False)
    first = "transactions/" + daily_files(landing, "transactions")[0].name
    assert file_hashes(tmp_path).get(first) != file_hashes(landing)[first]


def test_a_longer_window_reproduces_the_shared_days(base, tmp_path):
    landing, _ = base
    short = replace(BASE, days=12, transactions=12_000)  # same daily volume
    assert (short.customer_count, short.merchant_count) == (
        BASE.customer_count,
        BASE.merchant_count,
    )
    generate(short, tmp_path, progress=False)
    before = file_hashes(tmp_path)
    shared = {k: v for k, v in before.items() if k.split("/")[0] in DAILY}
    assert len(shared) == 2 * short.days

    generate(BASE, tmp_path, progress=False)  # extend the same folder to 30 days
    after = file_hashes(tmp_path)
    full = file_hashes(landing)
    for name, digest in shared.items():
        assert after[name] == digest == full[name], name
    assert {k: after[k] for k in full} == full


def test_landing_day_by_day_writes_what_one_run_writes(tmp_path):
    # Short label delays, so the days before the first one written are only partly simulated;
    # a drift starting and bad rows inside the fed days.
    config = replace(
        BASE,
        days=14,
        transactions=14_000,
        max_report_delay_days=4,
        bad_row_share=0.02,
        drift=DriftScenario("crypto_wave", BASE.start_date + timedelta(days=9)),
    )
    one_shot = tmp_path / "one_shot"
    generate(config, one_shot, progress=False)

    fed = tmp_path / "fed"
    generate(replace(config, days=6, transactions=6_000), fed, progress=False)
    for days in range(7, config.days + 1):
        window = replace(config, days=days, transactions=1_000 * days)
        summary = generate(window, fed, progress=False, first_day=window.end_date)
        assert summary.files_written == {
            "transactions": 1,
            "chargebacks": 1,
            "customers": 1,
            "merchants": 1,
        }
        (day_file,) = (fed / "transactions").glob(f"transactions_{window.end_date}.*")
        assert summary.transactions == read_as_written(day_file).num_rows

    expected, landed = file_hashes(one_shot), file_hashes(fed)
    # Every daily file, and the newest snapshots, as the one run wrote them.
    assert {k: v for k, v in landed.items() if k in expected} == expected
    # Plus one snapshot per earlier delivery, each as of its own last day.
    older = sorted(set(landed) - set(expected))
    assert older == sorted(
        f"{kind}/{kind}_{BASE.start_date + timedelta(days=d - 1)}.{suffix}"
        for kind, suffix in (("customers", "parquet"), ("merchants", "csv"))
        for d in range(6, config.days)
    )
    for kind in DAILY:
        for path in daily_files(one_shot, kind):
            assert read_as_written(fed / kind / path.name).equals(read_as_written(path)), path


def test_a_partial_run_writes_only_its_days_and_refuses_days_outside_the_window(tmp_path):
    summary = generate(BASE, tmp_path, progress=False, first_day=BASE.end_date - timedelta(2))
    assert summary.files_written["transactions"] == summary.files_written["chargebacks"] == 3
    assert [file_day(p) for p in daily_files(tmp_path, "transactions")] == [
        BASE.end_date - timedelta(days=k) for k in (2, 1, 0)
    ]
    for outside in (BASE.start_date - timedelta(1), BASE.end_date + timedelta(1)):
        with pytest.raises(ValueError, match="outside the window"):
            generate(BASE, tmp_path, progress=False, first_day=outside)


def test_the_demo_record_feeds_the_missing_days_once(tmp_path):
    # 5,000 over 7 days is not a whole daily volume: the demo rounds it so it can be extended.
    config = replace(BASE, days=7, transactions=5_000)
    assert start_demo(config, tmp_path, progress=False) is not None
    recorded = read_record(tmp_path)
    assert recorded == with_whole_daily_volume(config) == replace(config, transactions=4_998)
    assert start_demo(config, tmp_path, progress=False) is None  # not an empty folder

    last_day = config.end_date + timedelta(days=3)
    result = feed_demo(tmp_path, last_day)
    assert (result.previous_end, result.end, result.days_landed) == (
        config.end_date,
        last_day,
        3,
    )
    assert read_record(tmp_path) == extended_to(recorded, last_day)
    assert read_record(tmp_path).transactions == 714 * 10
    before = file_hashes(tmp_path)
    again = feed_demo(tmp_path, last_day)
    assert again.days_landed == 0 and again.summary is None
    assert file_hashes(tmp_path) == before

    one_shot = tmp_path.parent / "one_shot"
    generate(extended_to(recorded, last_day), one_shot, progress=False)
    expected = file_hashes(one_shot)
    assert {k: v for k, v in before.items() if k in expected} == expected
    assert DEMO_RECORD in before  # the record is in the folder, outside every landing pattern

    assert feed_demo(one_shot, last_day) is None  # no record: not a demo folder
    with pytest.raises(ValueError, match="whole number per day"):
        extended_to(config, last_day)


def test_the_config_round_trips_through_json():
    import json

    config = replace(
        BASE, drift=DriftScenario("crypto_wave", DRIFT_ONSET), max_report_delay_days=14
    )
    assert GeneratorConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config
    assert GeneratorConfig.from_dict(BASE.to_dict()) == BASE
    with pytest.raises(ValueError, match="unknown"):
        GeneratorConfig.from_dict({"seed": 1, "volume": 3})


def test_default_population_follows_the_daily_volume():
    a = GeneratorConfig(days=10, transactions=50_000)
    b = GeneratorConfig(days=20, transactions=100_000)
    assert a.customer_count == b.customer_count == 3_750
    assert a.merchant_count == b.merchant_count == 188
    assert GeneratorConfig(transactions=1_000).customer_count == 200  # clipped
    assert GeneratorConfig(days=1, transactions=10_000_000).customer_count == 500_000


# --- the contract --------------------------------------------------------------------------


def test_every_file_kind_matches_the_contract_columns_and_types(base):
    landing, _ = base
    tables = contract()
    assert set(KINDS) <= set(tables)
    for kind in KINDS:
        meta = tables[kind]["config"]["meta"]["headwater"]
        paths = sorted(landing.glob(meta["landing_pattern"].replace("{date}", "*")))
        assert paths, kind
        expected = [c["name"] for c in tables[kind]["columns"]]
        for path in paths:
            if path.suffix == ".parquet":
                schema = pq.read_schema(path)
                assert schema.names == expected, path
                for column in tables[kind]["columns"]:
                    wanted = ARROW_TYPES[column["data_type"]]
                    actual = schema.field(column["name"]).type
                    if pa.types.is_timestamp(wanted):
                        assert pa.types.is_timestamp(actual) and actual.tz is None, path
                    else:
                        assert actual == wanted, (path, column["name"])
                relation = f"read_parquet('{path}')"
            else:
                assert read_strings(path).column_names == expected, path
                relation = f"read_csv('{path}', all_varchar=true, header=true)"
            # Every value survives the cast ingestion will apply.
            failures = " + ".join(
                f'count(*) FILTER (WHERE "{c["name"]}" IS NOT NULL AND '
                f'TRY_CAST("{c["name"]}" AS {c["data_type"]}) IS NULL)'
                for c in tables[kind]["columns"]
            )
            assert duckdb.sql(f"SELECT {failures} FROM {relation}").fetchall() == [(0,)], path


def test_clean_data_passes_the_contract_data_tests(base):
    landing, _ = base
    for kind, table_contract in contract().items():
        table = read_typed(landing, kind)
        assert table.num_rows > 0, kind
        for column in table_contract["columns"]:
            values = table[column["name"]]
            for data_test in column.get("data_tests", []):
                if data_test == "not_null":
                    assert values.null_count == 0, (kind, column["name"])
                elif data_test == "unique":
                    assert pc.count_distinct(values).as_py() == len(values), (kind, column["name"])
                elif isinstance(data_test, dict) and "accepted_values" in data_test:
                    spec = data_test["accepted_values"]
                    accepted = spec.get("arguments", spec)["values"]
                    assert set(pc.unique(values).to_pylist()) <= set(accepted), column["name"]


def test_amounts_are_positive_with_two_decimals_in_eur(base):
    landing, _ = base
    transactions = read_typed(landing, "transactions")
    amounts = transactions["amount"]
    assert pc.min(amounts).as_py() > 0
    assert set(transactions["currency"].unique().to_pylist()) == {"EUR"}
    csv_path = next(p for p in daily_files(landing, "transactions") if p.suffix == ".csv")
    raw = read_strings(csv_path)["amount"].to_pylist()
    assert all(len(a.split(".")[1]) == 2 for a in raw)


def test_transaction_ids_are_unique_across_days(base):
    landing, _ = base
    ids = read_typed(landing, "transactions")["transaction_id"]
    assert pc.count_distinct(ids).as_py() == len(ids) > 0


def test_each_day_is_one_file_and_both_formats_appear(base):
    landing, _ = base
    transactions = daily_files(landing, "transactions")
    days = [file_day(p) for p in transactions]
    assert days == [BASE.start_date + timedelta(days=i) for i in range(BASE.days)]
    assert {p.suffix for p in transactions} == {".csv", ".parquet"}
    chargebacks = daily_files(landing, "chargebacks")
    assert [file_day(p) for p in chargebacks] == days  # header-only files included
    assert {p.suffix for p in chargebacks} == {".csv"}
    for kind, suffix in (("customers", ".parquet"), ("merchants", ".csv")):
        (snapshot,) = daily_files(landing, kind)
        assert (file_day(snapshot), snapshot.suffix) == (BASE.end_date, suffix)
    assert not [p for p in landing.rglob(".*")]  # no temporary files left behind


def test_timestamps_fall_within_their_file_day(base):
    landing, _ = base
    for kind, column in (("transactions", "transacted_at"), ("chargebacks", "reported_at")):
        for path in daily_files(landing, kind):
            if path.suffix == ".csv":
                values = pa_csv.read_csv(
                    path,
                    convert_options=pa_csv.ConvertOptions(column_types={column: pa.timestamp("s")}),
                )[column]
            else:
                values = pq.read_table(path)[column]
            if len(values) == 0:
                continue
            start = (file_day(path) - date(1970, 1, 1)).days * 86_400
            seconds = epoch(values)
            assert seconds.min() >= start and seconds.max() < start + 86_400, path


# --- chargebacks and customers -------------------------------------------------------------


def test_chargebacks_follow_fraud_within_1_to_60_days_and_never_after_the_window(base, truth):
    landing, summary = base
    transactions = read_typed(landing, "transactions")
    chargebacks = read_typed(landing, "chargebacks")
    assert chargebacks.num_rows > 0

    fraud_ids = set()
    for day in truth:
        ids = day.transactions["transaction_id"].to_numpy(zero_copy_only=False)
        fraud_ids.update(ids[day.is_fraud].tolist())
    disputed = chargebacks["transaction_id"].to_pylist()
    assert set(disputed) <= fraud_ids  # only fraud is disputed
    assert len(set(disputed)) == len(disputed)

    # Most fraud gets disputed eventually, but not all of it.
    decided = summary.chargebacks_written + summary.chargebacks_pending
    assert 0.8 * summary.frauds < decided < summary.frauds

    when = dict(
        zip(transactions["transaction_id"].to_pylist(), epoch(transactions["transacted_at"]))
    )
    paid = np.array([when[t] for t in disputed]) // 86_400
    reported = epoch(chargebacks["reported_at"]) // 86_400
    delay = reported - paid
    assert delay.min() == 1 and delay.max() <= 60
    assert np.median(delay) <= 14 and (delay <= 21).mean() > 0.8  # skewed towards early
    window_end = (BASE.end_date - date(1970, 1, 1)).days
    assert reported.max() <= window_end

    amounts = dict(
        zip(transactions["transaction_id"].to_pylist(), transactions["amount"].to_pylist())
    )
    assert [amounts[t] for t in disputed] == chargebacks["amount"].to_pylist()


def test_report_delays_span_1_to_60_days():
    delays = report_delays(np.random.default_rng(0), 500_000)
    assert delays.min() == 1 and delays.max() == 60
    assert (delays <= 21).mean() > 0.9
    capped = report_delays(np.random.default_rng(0), 500_000, max_days=14)
    assert capped.min() == 1 and capped.max() == 14
    assert (capped == np.minimum(delays, 14)).all()  # the same draws, clipped


def test_a_shorter_label_delay_changes_only_the_chargebacks(base, tmp_path):
    landing, summary = base
    config = replace(BASE, max_report_delay_days=14)
    short = generate(config, tmp_path, progress=False)
    clean, capped = file_hashes(landing), file_hashes(tmp_path)
    assert {k: v for k, v in capped.items() if not k.startswith("chargebacks")} == {
        k: v for k, v in clean.items() if not k.startswith("chargebacks")
    }
    # The same disputes, each arriving within 14 days; more of them within the window.
    transactions = read_typed(tmp_path, "transactions")
    chargebacks = read_typed(tmp_path, "chargebacks")
    when = dict(
        zip(transactions["transaction_id"].to_pylist(), epoch(transactions["transacted_at"]))
    )
    paid = np.array([when[t] for t in chargebacks["transaction_id"].to_pylist()]) // 86_400
    delay = epoch(chargebacks["reported_at"]) // 86_400 - paid
    assert delay.min() == 1 and delay.max() == 14
    decided = short.chargebacks_written + short.chargebacks_pending
    assert decided == summary.chargebacks_written + summary.chargebacks_pending
    assert short.chargebacks_written > summary.chargebacks_written


def test_chargeback_files_hold_the_chargebacks_reported_that_day(base):
    landing, _ = base
    for path in daily_files(landing, "chargebacks"):
        rows = pa_csv.read_csv(
            path,
            convert_options=pa_csv.ConvertOptions(column_types={"reported_at": pa.timestamp("s")}),
        )
        days = set((epoch(rows["reported_at"]) // 86_400).tolist())
        assert days <= {(file_day(path) - date(1970, 1, 1)).days}, path


def test_customers_pay_only_after_signing_up(base):
    landing, _ = base
    customers = read_typed(landing, "customers")
    signed_up = dict(zip(customers["customer_id"].to_pylist(), epoch(customers["signed_up_at"])))
    snapshot_end = (BASE.end_date - date(1970, 1, 1)).days * 86_400 + 86_400
    assert max(signed_up.values()) < snapshot_end  # only customers signed up by the snapshot

    transactions = read_typed(landing, "transactions")
    paid_at = epoch(transactions["transacted_at"])
    customer = transactions["customer_id"].to_pylist()
    assert set(customer) <= set(signed_up)
    signup = np.array([signed_up[c] for c in customer])
    assert (paid_at > signup).all()

    # The check means something: some customers join during the window and then pay.
    window_start = (BASE.start_date - date(1970, 1, 1)).days * 86_400
    assert (signup >= window_start).sum() > 0
    assert customers["birth_year"].null_count > 0  # birth_year is optional


# --- fraud ---------------------------------------------------------------------------------


def test_fraud_share_is_sane(base):
    _, summary = base
    assert 0.005 < summary.fraud_share < 0.02
    assert abs(summary.transactions - BASE.transactions) < BASE.transactions * 0.01


def test_no_fraud_rate_means_no_fraud(tmp_path):
    summary = generate(
        replace(BASE, days=5, transactions=5_000, fraud_rate=0.0), tmp_path, progress=False
    )
    assert summary.frauds == 0 and summary.chargebacks_written == 0


def test_fraud_differs_from_legit_on_learnable_signals(base, truth):
    landing, _ = base
    category = merchant_categories(landing)
    customers = read_typed(landing, "customers")
    home = dict(zip(customers["customer_id"].to_pylist(), customers["home_region"].to_pylist()))
    table = pa.concat_tables(day.transactions for day in truth)
    fraud = np.concatenate([day.is_fraud for day in truth])
    assert 100 < fraud.sum() < 0.05 * len(fraud)

    hour = pc.hour(table["transacted_at"]).to_numpy()
    night = hour < 6
    risky = np.array(
        [category[m] in HIGH_RISK_CATEGORIES for m in table["merchant_id"].to_pylist()]
    )
    away = np.array(
        [
            home[c] != r
            for c, r in zip(table["customer_id"].to_pylist(), table["region_code"].to_pylist())
        ]
    )
    online = table["channel"].to_numpy(zero_copy_only=False) == "online"
    for signal, factor in ((night, 5), (risky, 3), (away, 5), (online, 2)):
        assert signal[fraud].mean() > factor * signal[~fraud].mean()
        # Not a giveaway: some legit payments show each signal, some fraud lacks it.
        assert signal[~fraud].sum() > 0 and (~signal[fraud]).sum() > 0

    amount = table["amount"].cast(pa.float64()).to_numpy()
    assert np.median(amount[fraud]) > np.median(amount[~fraud])


def test_fraud_comes_in_bursts_on_one_card(truth):
    # Cards with fraud often pay again within the hour: the burst a model can count.
    bursts = 0
    for day in truth:
        fraud = day.transactions.filter(pa.array(day.is_fraud))
        customers = fraud["customer_id"].to_numpy(zero_copy_only=False)
        seconds = epoch(fraud["transacted_at"])
        order = np.lexsort((seconds, customers))
        same = customers[order][1:] == customers[order][:-1]
        quick = np.diff(seconds[order]) < 3600
        bursts += int((same & quick).sum())
    assert bursts > 50


# --- drift ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def drifted(tmp_path_factory) -> tuple[Path, GeneratorConfig]:
    config = replace(BASE, drift=DriftScenario("crypto_wave", DRIFT_ONSET))
    landing = tmp_path_factory.mktemp("drift")
    generate(config, landing, progress=False)
    return landing, config


def test_drift_scenarios_are_registered_and_checked():
    assert "crypto_wave" in DRIFT_SCENARIOS
    with pytest.raises(ValueError):
        DriftScenario("no_such_drift", DRIFT_ONSET)


def test_drift_leaves_the_days_before_its_onset_untouched(base, drifted):
    landing, _ = base
    drift_landing, _ = drifted
    clean, drift = file_hashes(landing), file_hashes(drift_landing)
    for name in clean:
        kind = name.split("/")[0]
        if kind not in DAILY:
            continue
        day = date.fromisoformat(name.split("_")[-1].split(".")[0])
        if day < DRIFT_ONSET:
            assert drift[name] == clean[name], name
        elif kind == "transactions":
            assert drift[name] != clean[name], name


def test_drift_brings_crypto_exchanges_higher_amounts_and_new_fraud(base, drifted):
    landing, _ = base
    drift_landing, config = drifted
    merchants = read_typed(drift_landing, "merchants")
    crypto = merchants.filter(pc.equal(merchants["category"], "crypto_exchange"))
    assert crypto.num_rows > 0
    onset = datetime(DRIFT_ONSET.year, DRIFT_ONSET.month, DRIFT_ONSET.day)
    assert set(crypto["onboarded_at"].to_pylist()) == {onset}
    assert "crypto_exchange" not in merchant_categories(landing).values()

    crypto_ids = set(crypto["merchant_id"].to_pylist())
    transactions = read_typed(drift_landing, "transactions")
    at_crypto = np.array([m in crypto_ids for m in transactions["merchant_id"].to_pylist()])
    paid = transactions["transacted_at"].to_pylist()
    assert at_crypto.sum() > 0
    assert min(p for p, c in zip(paid, at_crypto) if c) >= onset

    # Amounts shift up from the onset (same days, with and without the drift).
    def median_after_onset(table: pa.Table) -> float:
        after = pc.greater_equal(table["transacted_at"], pa.scalar(onset, pa.timestamp("s")))
        return float(np.median(table.filter(after)["amount"].cast(pa.float64()).to_numpy()))

    assert median_after_onset(transactions) > 1.2 * median_after_onset(
        read_typed(landing, "transactions")
    )

    # The new fraud pattern: daytime online fraud at crypto exchanges, near home.
    days = [d for d in simulate(config) if d.day >= DRIFT_ONSET]
    table = pa.concat_tables(d.transactions for d in days)
    fraud = np.concatenate([d.is_fraud for d in days])
    crypto_fraud = fraud & np.array([m in crypto_ids for m in table["merchant_id"].to_pylist()])
    assert crypto_fraud.sum() > 10
    hours = pc.hour(table["transacted_at"]).to_numpy()[crypto_fraud]
    assert hours.min() >= 9 and hours.max() < 19
    assert set(table["channel"].to_numpy(zero_copy_only=False)[crypto_fraud]) == {"online"}


# --- bad rows ------------------------------------------------------------------------------


def test_bad_rows_damage_csv_days_only_in_the_documented_ways(base, tmp_path):
    landing, clean_summary = base
    config = replace(BASE, bad_row_share=0.05)
    summary = generate(config, tmp_path, progress=False)
    assert clean_summary.bad_rows == 0
    clean, damaged = file_hashes(landing), file_hashes(tmp_path)

    csv_rows = 0
    found = dict.fromkeys(
        ["null_customer", "bad_amount", "unknown_channel", "duplicate_id", "outside_day"], 0
    )
    for path in daily_files(tmp_path, "transactions"):
        name = f"transactions/{path.name}"
        if path.suffix == ".parquet":
            assert damaged[name] == clean[name]  # Parquet days stay clean
            continue
        assert damaged[name] != clean[name]
        table = read_strings(path)
        csv_rows += table.num_rows
        found["null_customer"] += table["customer_id"].null_count
        amounts = table["amount"].to_pylist()
        found["bad_amount"] += sum(1 for a in amounts if a.endswith("€") and "," in a)
        channels = set(table["channel"].to_pylist())
        found["unknown_channel"] += len(channels - {"in_store", "online", "contactless"})
        ids = table["transaction_id"]
        found["duplicate_id"] += len(ids) - pc.count_distinct(ids).as_py()
        day = file_day(path).isoformat()
        found["outside_day"] += sum(1 for t in table["transacted_at"].to_pylist() if t[:10] != day)

    assert all(count > 0 for count in found.values()), found
    assert summary.bad_rows == pytest.approx(0.05 * csv_rows, rel=0.05)
    # Everything else about the run is unchanged.
    for kind in ("chargebacks", "customers", "merchants"):
        assert {k: v for k, v in damaged.items() if k.startswith(kind)} == {
            k: v for k, v in clean.items() if k.startswith(kind)
        }


# --- entry points --------------------------------------------------------------------------


def test_generate_if_absent_leaves_an_existing_landing_folder_alone(tmp_path):
    config = replace(BASE, days=3, transactions=3_000)
    first = generate_if_absent(config, tmp_path, progress=False)
    assert first is not None and first.files_written["transactions"] == 3
    before = file_hashes(tmp_path)
    assert generate_if_absent(replace(config, seed=1), tmp_path, progress=False) is None
    assert file_hashes(tmp_path) == before


def test_cli_writes_the_files_and_prints_a_summary(tmp_path, capsys):
    from fraud_demo.generator.__main__ import main

    main(
        [
            "--landing-dir", str(tmp_path), "--start-date", "2025-03-01", "--days", "4",
            "--transactions", "2000", "--seed", "3", "--drift", "crypto_wave",
            "--drift-start", "2025-03-03", "--bad-row-share", "0.01", "--no-progress",
        ]
    )  # fmt: skip
    output = capsys.readouterr().out
    for label in ("files:", "transactions:", "fraud:", "chargebacks:", "elapsed:"):
        assert label in output
    assert len(daily_files(tmp_path, "transactions")) == 4
    assert file_day(daily_files(tmp_path, "merchants")[0]) == date(2025, 3, 4)


def test_invalid_configs_are_refused():
    with pytest.raises(ValueError):
        GeneratorConfig(days=0)
    with pytest.raises(ValueError):
        GeneratorConfig(bad_row_share=0.9)
    with pytest.raises(ValueError):
        GeneratorConfig(fraud_rate=-0.1)
    with pytest.raises(ValueError):
        GeneratorConfig(max_report_delay_days=0)
