"""The simulated customers and merchants, and the snapshot tables the source systems export.

A population is built once per run from its own random stream, so it is the same whatever the
window length; everything is a numpy array indexed by customer (or merchant) number.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from fraud_demo.generator import catalog
from fraud_demo.generator.config import GeneratorConfig, Stream, epoch_seconds, rng_for

DAY = 86_400  # seconds
YEAR = 365 * DAY
# Customers already with the bank signed up over the six years before the window; the rest sign
# up during the year after its start, so new customers keep appearing (and then start to pay).
EXISTING_HISTORY = 6 * YEAR
NEW_CUSTOMER_SHARE = 0.2
NEW_CUSTOMER_HORIZON = YEAR
BIRTH_YEAR_MISSING = 0.03  # share of customers whose birth year the CRM lacks
TRAVEL_PROBABILITY = 0.04  # chance a customer is away from home on a given day

NAME_WORDS = (
    "Oranje", "Kade", "Linden", "Molen", "Haven", "Tulp", "Delta", "Polder", "Duin", "Brug",
    "Noord", "Zuid", "Oost", "West", "Gracht", "Eik", "Klaver", "Zon", "Ster", "Vlinder",
)  # fmt: skip


@dataclass(frozen=True, eq=False)
class Customers:
    """The bank's cardholders (one card each), as parallel arrays indexed by customer number."""

    ids: pa.StringArray
    home_region: np.ndarray  # index into catalog.REGIONS
    segment: np.ndarray  # index into catalog.SEGMENTS
    birth_year: np.ndarray  # int32; meaningless where birth_year_missing
    birth_year_missing: np.ndarray  # bool
    signed_up_at: np.ndarray  # int64 epoch seconds
    typical_amount: np.ndarray  # EUR, a grocery-sized purchase for this customer
    activity: np.ndarray  # relative chance of making any given transaction
    channel_preference: np.ndarray  # (customers, 3) weights over catalog.CHANNELS
    category_cdf: np.ndarray  # (customers, categories) cumulative preference over CATEGORIES

    def __len__(self) -> int:
        return len(self.ids)


@dataclass(frozen=True, eq=False)
class Merchants:
    """Card-accepting merchants, as parallel arrays indexed by merchant number."""

    ids: pa.StringArray
    names: pa.StringArray
    category: np.ndarray  # index into catalog.ALL_CATEGORIES
    region: np.ndarray  # index into catalog.REGIONS
    risk_tier: np.ndarray  # index into catalog.RISK_TIERS
    onboarded_at: np.ndarray  # int64 epoch seconds
    popularity: np.ndarray  # relative share of its category's customers

    def __len__(self) -> int:
        return len(self.ids)


def build_customers(config: GeneratorConfig) -> Customers:
    """Draw the customer population of a run."""
    rng = rng_for(config.seed, Stream.CUSTOMERS)
    n = config.customer_count
    start = epoch_seconds(config.start_date)

    segment = rng.choice(
        len(catalog.SEGMENTS), size=n, p=_shares(s.share for s in catalog.SEGMENTS)
    )
    home_region = rng.choice(
        len(catalog.REGIONS), size=n, p=catalog.region_weights(catalog.HOME_DOMESTIC_SHARE)
    )

    low = np.array([s.birth_years[0] for s in catalog.SEGMENTS])[segment]
    high = np.array([s.birth_years[1] for s in catalog.SEGMENTS])[segment]
    birth_year = rng.integers(low, high + 1).astype(np.int32)
    birth_year_missing = rng.random(n) < BIRTH_YEAR_MISSING

    is_new = rng.random(n) < NEW_CUSTOMER_SHARE
    signed_up_at = np.where(
        is_new,
        start + rng.integers(0, NEW_CUSTOMER_HORIZON, size=n),
        start - rng.integers(1, EXISTING_HISTORY, size=n),
    )

    median = np.array([s.median_amount for s in catalog.SEGMENTS])[segment]
    typical_amount = median * rng.lognormal(0.0, 0.45, size=n)
    activity = np.array([s.activity for s in catalog.SEGMENTS])[segment] * rng.lognormal(
        0.0, 0.7, size=n
    )

    # Preferences scatter around the segment's (channels) or everybody's (categories) average;
    # a small Dirichlet concentration gives each customer a few favourite categories.
    channel_mean = np.array([s.channel_mix for s in catalog.SEGMENTS])[segment]
    channel_preference = _dirichlet_rows(rng, 10.0 * channel_mean)
    spend = _shares(c.spend_share for c in catalog.CATEGORIES)
    category_preference = _dirichlet_rows(rng, np.broadcast_to(8.0 * spend, (n, len(spend))))

    return Customers(
        ids=_ids("c", n, width=7),
        home_region=home_region,
        segment=segment,
        birth_year=birth_year,
        birth_year_missing=birth_year_missing,
        signed_up_at=signed_up_at.astype(np.int64),
        typical_amount=typical_amount,
        activity=activity,
        channel_preference=channel_preference,
        category_cdf=np.cumsum(category_preference, axis=1),
    )


def build_merchants(config: GeneratorConfig) -> Merchants:
    """Draw the merchants that already accept cards when the window starts."""
    rng = rng_for(config.seed, Stream.MERCHANTS)
    n = config.merchant_count
    n_categories = len(catalog.CATEGORIES)
    # The first merchants cover every category once, so every category can be shopped at.
    drawn = rng.choice(
        n_categories,
        size=n - n_categories,
        p=_shares(c.merchant_share for c in catalog.CATEGORIES),
    )
    category = np.concatenate([np.arange(n_categories), drawn])
    region = rng.choice(
        len(catalog.REGIONS), size=n, p=catalog.region_weights(catalog.MERCHANT_DOMESTIC_SHARE)
    )
    start = epoch_seconds(config.start_date)
    onboarded_at = start - rng.integers(DAY, 10 * YEAR, size=n)
    return _merchants(
        rng, first_number=1, category=category, region=region, onboarded_at=onboarded_at
    )


def build_crypto_merchants(config: GeneratorConfig, first_number: int) -> Merchants:
    """The crypto exchanges the crypto_wave drift onboards at midnight of its first day.

    They are numbered after the existing merchants and drawn from their own stream, so adding
    them changes nothing about the rest of the world.
    """
    assert config.drift is not None
    rng = rng_for(config.seed, Stream.DRIFT_MERCHANTS)
    # One exchange per domestic province, so that most customers have a "local" one, plus some.
    n = catalog.N_DOMESTIC + max(3, config.merchant_count // 100)
    region = np.concatenate(
        [
            np.arange(catalog.N_DOMESTIC),
            rng.choice(
                len(catalog.REGIONS),
                size=n - catalog.N_DOMESTIC,
                p=catalog.region_weights(catalog.MERCHANT_DOMESTIC_SHARE),
            ),
        ]
    )
    onboarded_at = np.full(n, epoch_seconds(config.drift.starts_on), dtype=np.int64)
    category = np.full(n, catalog.CRYPTO_CATEGORY)
    return _merchants(
        rng, first_number, category=category, region=region, onboarded_at=onboarded_at
    )


def customers_table(customers: Customers, as_of_end: int) -> pa.Table:
    """The CRM snapshot: every customer signed up before `as_of_end` (epoch seconds)."""
    keep = np.flatnonzero(customers.signed_up_at < as_of_end)
    segment_names = pa.array([s.name for s in catalog.SEGMENTS])
    return pa.table(
        {
            "customer_id": customers.ids.take(keep),
            "home_region": pa.array(catalog.REGIONS).take(customers.home_region[keep]),
            "segment": segment_names.take(customers.segment[keep]),
            "birth_year": pa.array(
                customers.birth_year[keep], mask=customers.birth_year_missing[keep], type=pa.int32()
            ),
            "signed_up_at": pa.array(customers.signed_up_at[keep], type=pa.timestamp("s")),
        }
    )


def merchants_table(merchants: Merchants, as_of_end: int) -> pa.Table:
    """The acquirer's reference file: every merchant onboarded before `as_of_end`."""
    keep = np.flatnonzero(merchants.onboarded_at < as_of_end)
    return pa.table(
        {
            "merchant_id": merchants.ids.take(keep),
            "merchant_name": merchants.names.take(keep),
            "category": pa.array([c.name for c in catalog.ALL_CATEGORIES]).take(
                merchants.category[keep]
            ),
            "region_code": pa.array(catalog.REGIONS).take(merchants.region[keep]),
            "risk_tier": pa.array(catalog.RISK_TIERS).take(merchants.risk_tier[keep]),
            "onboarded_at": pa.array(merchants.onboarded_at[keep], type=pa.timestamp("s")),
        }
    )


def concat_merchants(first: Merchants, second: Merchants) -> Merchants:
    """Both merchant sets as one, numbered in order."""
    return Merchants(
        ids=pa.concat_arrays([first.ids, second.ids]),
        names=pa.concat_arrays([first.names, second.names]),
        category=np.concatenate([first.category, second.category]),
        region=np.concatenate([first.region, second.region]),
        risk_tier=np.concatenate([first.risk_tier, second.risk_tier]),
        onboarded_at=np.concatenate([first.onboarded_at, second.onboarded_at]),
        popularity=np.concatenate([first.popularity, second.popularity]),
    )


def travel_regions(rng: np.random.Generator, customers: Customers) -> np.ndarray:
    """Where each customer pays in person today: home, or for a few the place they travel to."""
    travelling = rng.random(len(customers)) < TRAVEL_PROBABILITY
    destination = away_regions(
        rng, customers.home_region, catalog.region_weights(catalog.TRAVEL_DOMESTIC_SHARE)
    )
    return np.where(travelling, destination, customers.home_region)


def away_regions(rng: np.random.Generator, home: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """One region per entry of `home`, drawn from `weights` but never equal to that home.

    A draw that hits the home region is replaced by a uniformly chosen other region: slightly
    off the weights, but it stays one vectorised draw.
    """
    n_regions = len(weights)
    drawn = rng.choice(n_regions, size=len(home), p=weights)
    other = (home + rng.integers(1, n_regions, size=len(home))) % n_regions
    return np.where(drawn == home, other, drawn)


class MerchantIndex:
    """Weighted sampling of merchants by category, optionally within a region.

    Merchants are sorted by (category, region); every category and every (category, region)
    group is then a contiguous slice, and sampling within a slice is a binary search in the
    cumulative weights. Where a region has no merchant of a category, the whole category is used.
    """

    def __init__(self, merchants: Merchants, weights: np.ndarray, first: int = 0) -> None:
        """Index `merchants` with sampling `weights`; returned numbers are offset by `first`."""
        self.n_regions = len(catalog.REGIONS)
        n_groups = len(catalog.ALL_CATEGORIES) * self.n_regions
        keys = merchants.category * self.n_regions + merchants.region
        self.order = np.argsort(keys, kind="stable") + first
        self.cumulative = np.cumsum(weights[self.order - first])
        self.bounds = np.searchsorted(keys[self.order - first], np.arange(n_groups + 1))

    def pick(self, u: np.ndarray, category: np.ndarray, region: np.ndarray | None) -> np.ndarray:
        """Merchant numbers for uniform draws `u` in the given categories (and regions)."""
        category_lo = self.bounds[category * self.n_regions]
        category_hi = self.bounds[(category + 1) * self.n_regions]
        if np.any(category_hi == category_lo):
            raise ValueError("a requested category has no merchants")
        if region is None:
            lo, hi = category_lo, category_hi
        else:
            group = category * self.n_regions + region
            lo, hi = self.bounds[group], self.bounds[group + 1]
            empty = hi == lo
            lo = np.where(empty, category_lo, lo)
            hi = np.where(empty, category_hi, hi)
        before = np.where(lo > 0, self.cumulative[lo - 1], 0.0)
        total = self.cumulative[hi - 1] - before
        position = np.searchsorted(self.cumulative, before + u * total, side="right")
        # Rounding can land exactly on a slice's upper edge; keep it inside the slice.
        return self.order[np.clip(position, lo, hi - 1)]


def fraud_weights(merchants: Merchants) -> np.ndarray:
    """Sampling weights of merchants for fraudsters: popular ones, much more if high-risk."""
    return merchants.popularity * np.asarray(catalog.FRAUD_RISK_PREFERENCE)[merchants.risk_tier]


def _merchants(
    rng: np.random.Generator,
    first_number: int,
    category: np.ndarray,
    region: np.ndarray,
    onboarded_at: np.ndarray,
) -> Merchants:
    """Merchants of the given categories and regions, with drawn risk tiers, names and sizes."""
    n = len(category)
    risk_cdf = np.cumsum(np.array([c.risk_mix for c in catalog.ALL_CATEGORIES]), axis=1)[category]
    risk_tier = np.minimum((risk_cdf < rng.random(n)[:, None]).sum(axis=1), 2)
    words = np.array(NAME_WORDS)[rng.integers(0, len(NAME_WORDS), size=n)]
    labels = np.array([c.label for c in catalog.ALL_CATEGORIES])[category]
    names = np.char.add(np.char.add(words, " "), labels)
    return Merchants(
        ids=_ids("m", n, width=6, first=first_number),
        names=pa.array(names.tolist(), type=pa.string()),
        category=category,
        region=region,
        risk_tier=risk_tier,
        onboarded_at=onboarded_at.astype(np.int64),
        popularity=rng.lognormal(0.0, 1.0, size=n),
    )


def _ids(prefix: str, n: int, width: int, first: int = 1) -> pa.StringArray:
    """Identifiers `prefix` + zero-padded number, numbered from `first`."""
    numbers = pa.array(np.arange(first, first + n)).cast(pa.string())
    return pc.binary_join_element_wise(prefix, pc.utf8_lpad(numbers, width, "0"), "")


def _shares(values) -> np.ndarray:
    """`values` normalised to sum to one."""
    array = np.fromiter(values, dtype=float)
    return array / array.sum()


def _dirichlet_rows(rng: np.random.Generator, alpha: np.ndarray) -> np.ndarray:
    """One Dirichlet draw per row of `alpha` (normalised gamma draws, all rows at once)."""
    draws = rng.gamma(alpha)
    return draws / draws.sum(axis=1, keepdims=True)


def snapshot_end(config: GeneratorConfig) -> int:
    """End of the last generated day: snapshots hold what existed by then."""
    return epoch_seconds(config.end_date + timedelta(days=1))
