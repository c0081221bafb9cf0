"""One day of card payments: everyday spending, fraud bursts and the crypto_wave drift.

Each function draws a whole day at once from that day's own random streams (see
`config.rng_for`); nothing loops over payments or customers.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np

from fraud_demo.generator import catalog
from fraud_demo.generator.config import Stream, rng_for
from fraud_demo.generator.population import DAY, MerchantIndex, away_regions, travel_regions
from fraud_demo.generator.world import World

MIN_CENTS, MAX_CENTS = 50, 2_000_000  # EUR 0.50 .. EUR 20,000.00
LEGIT_AMOUNT_SPREAD = 0.6  # sigma of the lognormal noise around a customer's usual amount

# crypto_wave: how the world changes from the onset on.
CRYPTO_AMOUNT_SHIFT = 1.3  # every amount goes up by 30%
CRYPTO_LEGIT_SHARE = 0.03  # share of everyday payments that now go to crypto exchanges
CRYPTO_LEGIT_MEDIAN_EUR = 150.0
CRYPTO_FRAUD_RELATIVE_RATE = 0.5  # extra fraud, relative to the base fraud rate
CRYPTO_FRAUD_SECOND_PAYMENT = 0.3  # chance a case makes a second payment
CRYPTO_FRAUD_MEDIAN_EUR, CRYPTO_FRAUD_RANGE_EUR = 120.0, (20.0, 400.0)
CRYPTO_FRAUD_HOURS = (9, 18)  # office hours: nothing looks like the night-time fraud of before


@dataclass(frozen=True, eq=False)
class Payments:
    """Simulated card payments, as parallel arrays (one entry per payment)."""

    customer: np.ndarray  # customer number
    merchant: np.ndarray  # merchant number
    amount_cents: np.ndarray  # int64
    channel: np.ndarray  # index into catalog.CHANNELS
    region: np.ndarray  # index into catalog.REGIONS, where the card was used
    second: np.ndarray  # seconds after midnight of the day
    is_fraud: np.ndarray  # bool: the ground truth the chargebacks reveal
    reason_code: np.ndarray  # index into catalog.REASON_CODES; -1 for legit payments
    report_delay: np.ndarray  # days until the chargeback arrives; 0 if never disputed

    def __len__(self) -> int:
        return len(self.customer)

    def take(self, index: np.ndarray) -> Payments:
        """The payments at `index`, in that order."""
        return Payments(**{f.name: getattr(self, f.name)[index] for f in fields(self)})

    @staticmethod
    def concat(parts: list[Payments]) -> Payments:
        """All `parts` after one another."""
        return Payments(
            **{
                f.name: np.concatenate([getattr(p, f.name) for p in parts])
                for f in fields(Payments)
            }
        )


def simulate_payments(world: World, day_index: int) -> Payments:
    """All payments of day `day_index`, in time order."""
    config = world.config
    day_start = config.day_start(day_index)
    n_day = config.transactions_on(day_index)

    fraud = fraud_payments(
        rng_for(config.seed, Stream.FRAUD, day_index), world, n_day * config.fraud_rate, day_start
    )
    legit = legit_payments(
        rng_for(config.seed, Stream.LEGIT, day_index), world, max(n_day - len(fraud), 0), day_start
    )
    parts = [legit, fraud]
    if config.drift_active(day_index) and world.crypto_shops is not None:
        drift_rng = rng_for(config.seed, Stream.DRIFT, day_index)
        parts = [
            shift_to_crypto(drift_rng, world, legit),
            fraud,
            crypto_fraud(drift_rng, world, n_day * config.fraud_rate, day_start),
        ]
    payments = Payments.concat(parts)
    if config.drift_active(day_index):
        # Prices went up across the board.
        shifted = np.round(payments.amount_cents * CRYPTO_AMOUNT_SHIFT).astype(np.int64)
        payments = Payments(
            **{**_as_dict(payments), "amount_cents": np.minimum(shifted, MAX_CENTS)}
        )
    # A processor exports in time order; the stable sort keeps equal timestamps deterministic.
    return payments.take(np.argsort(payments.second, kind="stable"))


def legit_payments(rng: np.random.Generator, world: World, n: int, day_start: int) -> Payments:
    """`n` everyday payments: customers buy in their favourite categories, mostly near home."""
    customers = world.customers
    # Active customers pay more often; only customers signed up before today can pay.
    weight = np.where(customers.signed_up_at < day_start, customers.activity, 0.0)
    cdf = np.cumsum(weight)
    if n and cdf[-1] <= 0:
        raise ValueError("no customer has signed up before this day")
    customer = np.searchsorted(cdf, rng.random(n) * cdf[-1], side="right")
    customer = np.minimum(customer, len(customers) - 1)

    category = sample_rows(customers.category_cdf[customer], rng.random(n))
    channel_weight = (
        customers.channel_preference[customer] * _category_column("channel_fit")[category]
    )
    channel = sample_rows(np.cumsum(channel_weight, axis=1), rng.random(n) * channel_weight.sum(1))
    # Where each customer is today (a few are travelling): that is where the card is used.
    region = travel_regions(rng, customers)[customer]
    merchant = pick_merchants(world.shops, rng.random(n), category, channel, region)

    usual = customers.typical_amount[customer] * _category_column("amount_factor")[category]
    cents = to_cents(usual * rng.lognormal(0.0, LEGIT_AMOUNT_SPREAD, size=n))
    # Above the contactless limit the terminal asks for the PIN: the payment is chip-and-PIN.
    over_limit = (channel == catalog.CONTACTLESS) & (cents > catalog.CONTACTLESS_LIMIT_CENTS)
    channel = np.where(over_limit, catalog.IN_STORE, channel)
    hour = rng.choice(24, size=n, p=_normalised(catalog.LEGIT_HOURS))
    second = hour * 3600 + rng.integers(0, 3600, size=n)
    return _legit(customer, merchant, cents, channel, region, second)


def fraud_payments(
    rng: np.random.Generator, world: World, expected_rows: float, day_start: int
) -> Payments:
    """Fraud bursts on compromised cards, about `expected_rows` payments in total.

    A case is one compromised card used in a burst: maybe a few tiny card-testing payments,
    then one or more real ones minutes apart. Its pattern (catalog.FRAUD_PATTERNS) decides how
    likely each signal is: night time, away from home, online, risky merchants, high amounts.
    """
    patterns = catalog.FRAUD_PATTERNS
    customers = world.customers
    eligible = np.flatnonzero(customers.signed_up_at < day_start)
    n_cases = rng.poisson(expected_rows / catalog.expected_burst_length())
    if n_cases == 0 or len(eligible) == 0:
        return _empty()

    pattern = rng.choice(len(patterns), size=n_cases, p=_normalised(p.share for p in patterns))
    victim = eligible[rng.integers(0, len(eligible), size=n_cases)]

    def per_case(attribute: str) -> np.ndarray:
        return np.array([getattr(p, attribute) for p in patterns])[pattern]

    # The burst: which payment of which case each row is.
    card_testing = rng.random(n_cases) < per_case("card_testing_probability")
    n_testing = np.where(card_testing, rng.integers(1, 4, size=n_cases), 0)
    n_main = np.minimum(rng.geometric(1.0 - per_case("burst_continue")), catalog.MAX_BURST_PAYMENTS)
    length = n_testing + n_main
    case = np.repeat(np.arange(n_cases), length)
    first_row = np.cumsum(length) - length
    position = np.arange(length.sum()) - first_row[case]
    testing = position < n_testing[case]
    rows = len(case)

    second = _burst_seconds(rng, per_case, case, position, first_row, length)

    # Where and how: one place per case (home or away), the pattern's channels and categories.
    home = customers.home_region[victim]
    away = rng.random(n_cases) < per_case("away_probability")
    fraud_places = catalog.region_weights(catalog.FRAUD_DOMESTIC_SHARE)
    case_region = np.where(away, away_regions(rng, home, fraud_places), home)
    channel_cdf = np.cumsum(np.array([p.channel_mix for p in patterns]), axis=1)
    channel = sample_rows(channel_cdf[pattern][case], rng.random(rows))
    category_cdf = np.cumsum(_pattern_category_mix(), axis=1)
    category = sample_rows(category_cdf[pattern][case], rng.random(rows))
    region = case_region[case]
    merchant = pick_merchants(world.fraud_shops, rng.random(rows), category, channel, region)

    usual = customers.typical_amount[victim][case] * _category_column("amount_factor")[category]
    cents = _fraud_cents(rng, usual * per_case("amount_multiplier")[case], testing, channel)

    # Whether and when the cardholder disputes: one delay per case, as the whole burst is
    # disputed together; small card tests often go unnoticed.
    report_probability = np.where(
        testing, catalog.REPORT_PROBABILITY_CARD_TESTING, catalog.REPORT_PROBABILITY
    )
    reported = rng.random(rows) < report_probability
    delay = report_delays(rng, n_cases, world.config.max_report_delay_days)
    return Payments(
        customer=victim[case],
        merchant=merchant,
        amount_cents=cents,
        channel=channel,
        region=region,
        second=second,
        is_fraud=np.ones(rows, dtype=bool),
        reason_code=per_case("reason_code")[case],
        report_delay=np.where(reported, delay[case], 0),
    )


def _burst_seconds(rng, per_case, case, position, first_row, length) -> np.ndarray:
    """When each payment of the bursts happens: minutes apart, starting at night for many cases,
    all within the day (seconds since the day's start)."""
    n_cases = len(length)
    gap = np.minimum(rng.exponential(per_case("gap_seconds")[case]), 3600).astype(np.int64)
    gap[position == 0] = 0
    elapsed = np.cumsum(gap)
    offset = elapsed - elapsed[first_row][case]
    duration = offset[first_row + length - 1]
    night_start = rng.integers(0, catalog.NIGHT_END_HOUR * 3600, size=n_cases)
    day_start_second = rng.integers(catalog.NIGHT_END_HOUR * 3600, DAY, size=n_cases)
    at_night = rng.random(n_cases) < per_case("night_probability")
    start = np.minimum(np.where(at_night, night_start, day_start_second), DAY - 1 - duration)
    return start[case] + offset


def _fraud_cents(rng, typical: np.ndarray, testing: np.ndarray, channel: np.ndarray) -> np.ndarray:
    """How much: well above the cardholder's usual (`typical` times the pattern's multiplier),
    except the tiny card tests."""
    rows = len(typical)
    amount = typical * rng.lognormal(0.0, 0.5, size=rows)
    amount = np.where(testing, rng.uniform(0.5, 3.0, size=rows), amount)
    cents = to_cents(amount)
    # A thief without the PIN stays under the contactless limit.
    under_limit = rng.integers(1_500, catalog.CONTACTLESS_LIMIT_CENTS + 1, size=rows)
    over_limit = (channel == catalog.CONTACTLESS) & (cents > catalog.CONTACTLESS_LIMIT_CENTS)
    return np.where(over_limit, under_limit, cents)


def shift_to_crypto(rng: np.random.Generator, world: World, legit: Payments) -> Payments:
    """crypto_wave: a share of everyday payments now buys crypto online, near home."""
    assert world.crypto_shops is not None
    n = len(legit)
    moved = rng.random(n) < CRYPTO_LEGIT_SHARE
    home = world.customers.home_region[legit.customer]
    merchant = world.crypto_shops.pick(rng.random(n), np.full(n, catalog.CRYPTO_CATEGORY), home)
    amount = to_cents(CRYPTO_LEGIT_MEDIAN_EUR * rng.lognormal(0.0, 0.8, size=n))
    return Payments(
        **{
            **_as_dict(legit),
            "merchant": np.where(moved, merchant, legit.merchant),
            "amount_cents": np.where(moved, amount, legit.amount_cents),
            "channel": np.where(moved, catalog.ONLINE, legit.channel),
            "region": np.where(moved, home, legit.region),
        }
    )


def crypto_fraud(
    rng: np.random.Generator, world: World, base_expected_rows: float, day_start: int
) -> Payments:
    """crypto_wave: a new fraud pattern, unlike anything before the onset.

    Accounts taken over to buy crypto: one or two online payments in office hours, in the
    cardholder's home region, for small-to-mid amounts, at merchants rated low or medium risk.
    """
    assert world.crypto_shops is not None
    customers = world.customers
    eligible = np.flatnonzero(customers.signed_up_at < day_start)
    mean_length = 1.0 + CRYPTO_FRAUD_SECOND_PAYMENT
    n_cases = rng.poisson(base_expected_rows * CRYPTO_FRAUD_RELATIVE_RATE / mean_length)
    if n_cases == 0 or len(eligible) == 0:
        return _empty()
    victim = eligible[rng.integers(0, len(eligible), size=n_cases)]
    length = 1 + (rng.random(n_cases) < CRYPTO_FRAUD_SECOND_PAYMENT)
    case = np.repeat(np.arange(n_cases), length)
    rows = len(case)
    first_hour, last_hour = CRYPTO_FRAUD_HOURS
    start = rng.integers(first_hour * 3600, last_hour * 3600, size=n_cases)
    second = start[case] + rng.integers(0, 1800, size=rows)  # the second one within half an hour
    home = customers.home_region[victim][case]
    merchant = world.crypto_shops.pick(
        rng.random(rows), np.full(rows, catalog.CRYPTO_CATEGORY), home
    )
    low, high = CRYPTO_FRAUD_RANGE_EUR
    amount = np.clip(CRYPTO_FRAUD_MEDIAN_EUR * rng.lognormal(0.0, 0.5, size=rows), low, high)
    reported = rng.random(rows) < catalog.REPORT_PROBABILITY
    delay = report_delays(rng, n_cases, world.config.max_report_delay_days)
    return Payments(
        customer=victim[case],
        merchant=merchant,
        amount_cents=to_cents(amount),
        channel=np.full(rows, catalog.ONLINE),
        region=home,
        second=second,
        is_fraud=np.ones(rows, dtype=bool),
        reason_code=np.zeros(rows, dtype=np.int64),  # fraud_card_not_present
        report_delay=np.where(reported, delay[case], 0),
    )


def report_delays(
    rng: np.random.Generator, n: int, max_days: int = catalog.MAX_REPORT_DELAY_DAYS
) -> np.ndarray:
    """Days from a fraudulent payment to its chargeback: 1-`max_days`, most within three weeks.

    The cap clips the same gamma draws, so the random stream (and every other column) does not
    depend on it.
    """
    raw = np.floor(rng.gamma(catalog.REPORT_DELAY_SHAPE, catalog.REPORT_DELAY_SCALE, size=n))
    return 1 + np.minimum(raw, max_days - 1).astype(np.int64)


def pick_merchants(
    shops: MerchantIndex,
    u: np.ndarray,
    category: np.ndarray,
    channel: np.ndarray,
    region: np.ndarray,
) -> np.ndarray:
    """Merchants for payments: in-person ones in the payment's region, online ones anywhere.

    Where a region has no merchant of the category, an in-person payment goes to one elsewhere:
    think of a chain, whose store is local but whose registered region is its head office.
    """
    merchant = np.empty(len(u), dtype=np.int64)
    online = channel == catalog.ONLINE
    merchant[online] = shops.pick(u[online], category[online], None)
    merchant[~online] = shops.pick(u[~online], category[~online], region[~online])
    return merchant


def sample_rows(cdf: np.ndarray, u: np.ndarray) -> np.ndarray:
    """For each row of cumulative weights `cdf`, the column the draw `u` (same scale) falls in."""
    return np.minimum((cdf <= u[:, None]).sum(axis=1), cdf.shape[1] - 1)


def to_cents(amount_eur: np.ndarray) -> np.ndarray:
    """Euro amounts rounded to whole cents, kept within the plausible range."""
    return np.clip(np.round(amount_eur * 100.0), MIN_CENTS, MAX_CENTS).astype(np.int64)


def _legit(customer, merchant, cents, channel, region, second) -> Payments:
    """Payments that are not fraud: no reason code, never disputed."""
    n = len(customer)
    return Payments(
        customer=customer,
        merchant=merchant,
        amount_cents=cents,
        channel=channel,
        region=region,
        second=second,
        is_fraud=np.zeros(n, dtype=bool),
        reason_code=np.full(n, -1, dtype=np.int64),
        report_delay=np.zeros(n, dtype=np.int64),
    )


def _empty() -> Payments:
    """No payments."""
    none = np.zeros(0, dtype=np.int64)
    return _legit(none, none, none, none, none, none)


def _as_dict(payments: Payments) -> dict[str, np.ndarray]:
    return {f.name: getattr(payments, f.name) for f in fields(payments)}


def _category_column(attribute: str) -> np.ndarray:
    """One attribute of every category (including crypto_exchange), indexed by category."""
    return np.array([getattr(c, attribute) for c in catalog.ALL_CATEGORIES])


def _pattern_category_mix() -> np.ndarray:
    """(patterns, categories) probabilities of where each fraud pattern spends."""
    names = [c.name for c in catalog.ALL_CATEGORIES]
    mix = np.zeros((len(catalog.FRAUD_PATTERNS), len(names)))
    for row, pattern in enumerate(catalog.FRAUD_PATTERNS):
        for name, share in pattern.category_mix.items():
            mix[row, names.index(name)] = share
    return mix / mix.sum(axis=1, keepdims=True)


def _normalised(values) -> np.ndarray:
    array = np.fromiter(values, dtype=float)
    return array / array.sum()
