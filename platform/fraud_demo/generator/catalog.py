"""The fixed vocabulary of the simulated world: regions, segments, categories and fraud patterns.

Everything here is a plain constant (tuples and small frozen records); the simulation turns
them into numpy arrays where it needs them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# The card payment channels, in the order the simulation numbers them.
CHANNELS = ("in_store", "online", "contactless")
IN_STORE, ONLINE, CONTACTLESS = 0, 1, 2

REASON_CODES = ("fraud_card_not_present", "fraud_card_present", "stolen_card")

# The bank is Dutch: twelve domestic provinces (ISO 3166-2), then eight nearby Eurozone regions
# where its customers travel and where stolen card data gets used.
REGIONS = (
    "NL-ZH", "NL-NH", "NL-NB", "NL-GE", "NL-UT", "NL-OV",
    "NL-LI", "NL-GR", "NL-FR", "NL-DR", "NL-FL", "NL-ZE",
    "BE-BRU", "BE-VAN", "DE-NW", "DE-BE", "FR-IDF", "ES-CT", "IT-MI", "IE-D",
)  # fmt: skip
N_DOMESTIC = 12
# Population share of the domestic provinces; the rest of the customers live abroad.
DOMESTIC_POPULATION = (0.21, 0.16, 0.15, 0.12, 0.08, 0.07, 0.06, 0.03, 0.035, 0.03, 0.025, 0.02)


def region_weights(domestic_share: float) -> np.ndarray:
    """Probabilities over REGIONS: `domestic_share` spread by population, the rest evenly abroad."""
    domestic = np.asarray(DOMESTIC_POPULATION) / sum(DOMESTIC_POPULATION)
    foreign = np.full(len(REGIONS) - N_DOMESTIC, 1.0 / (len(REGIONS) - N_DOMESTIC))
    return np.concatenate([domestic_share * domestic, (1.0 - domestic_share) * foreign])


# Where customers live, where merchants are, where customers travel to, and where fraudsters
# use stolen card details (mostly abroad).
HOME_DOMESTIC_SHARE = 0.98
MERCHANT_DOMESTIC_SHARE = 0.80
TRAVEL_DOMESTIC_SHARE = 0.60
FRAUD_DOMESTIC_SHARE = 0.15


@dataclass(frozen=True)
class Segment:
    """A customer segment: how many customers it has and how they typically spend."""

    name: str
    share: float
    median_amount: float  # a typical grocery-sized purchase, in EUR
    channel_mix: tuple[float, float, float]  # in_store, online, contactless
    activity: float  # relative number of transactions per customer
    birth_years: tuple[int, int]  # inclusive range


SEGMENTS = (
    Segment("mass", 0.60, 28.0, (0.40, 0.25, 0.35), 1.0, (1950, 2002)),
    Segment("affluent", 0.15, 65.0, (0.35, 0.35, 0.30), 1.3, (1950, 1995)),
    Segment("student", 0.15, 14.0, (0.20, 0.45, 0.35), 1.1, (1998, 2007)),
    Segment("business", 0.10, 90.0, (0.35, 0.45, 0.20), 1.6, (1955, 1998)),
)


@dataclass(frozen=True)
class Category:
    """A merchant category: how common it is and how money is spent there."""

    name: str
    label: str  # a word for merchant names
    merchant_share: float  # share of merchants in this category
    spend_share: float  # average share of a customer's transactions in this category
    amount_factor: float  # typical amount relative to the customer's grocery-sized purchase
    channel_fit: tuple[float, float, float]  # how well in_store, online, contactless fit
    risk_mix: tuple[float, float, float]  # probability of risk tier low, medium, high


CATEGORIES = (
    Category("grocery", "Market", 0.20, 0.26, 1.0, (1.0, 0.10, 1.3), (0.90, 0.09, 0.01)),
    Category("restaurants", "Bistro", 0.17, 0.15, 1.2, (1.0, 0.25, 1.0), (0.85, 0.13, 0.02)),
    Category("fuel", "Fuel", 0.07, 0.08, 2.0, (1.0, 0.0, 0.8), (0.80, 0.17, 0.03)),
    Category("pharmacy", "Apotheek", 0.06, 0.05, 0.9, (1.0, 0.2, 1.0), (0.90, 0.09, 0.01)),
    Category("transport", "Transit", 0.05, 0.08, 0.5, (0.4, 0.6, 1.4), (0.85, 0.13, 0.02)),
    Category("fashion", "Fashion", 0.12, 0.09, 2.5, (1.0, 1.0, 0.5), (0.60, 0.32, 0.08)),
    Category("home_garden", "Home & Garden", 0.07, 0.05, 3.0, (1.0, 0.6, 0.4), (0.75, 0.22, 0.03)),
    Category("entertainment", "Tickets", 0.07, 0.07, 1.4, (0.6, 1.0, 0.6), (0.60, 0.32, 0.08)),
    Category("electronics", "Electronics", 0.06, 0.04, 6.0, (1.0, 1.2, 0.2), (0.25, 0.50, 0.25)),
    Category("travel", "Travel", 0.05, 0.03, 9.0, (0.3, 1.5, 0.1), (0.30, 0.50, 0.20)),
    Category("gift_cards", "Gift Cards", 0.03, 0.015, 2.0, (0.4, 1.5, 0.1), (0.05, 0.30, 0.65)),
    Category("online_gaming", "Games", 0.03, 0.025, 0.8, (0.0, 1.0, 0.0), (0.05, 0.35, 0.60)),
)
# Only the crypto_wave drift creates merchants of this category. The risk team has not caught up
# with it yet, so most of its merchants are rated low or medium risk.
CRYPTO = Category("crypto_exchange", "Crypto", 0.0, 0.0, 4.0, (0.0, 1.0, 0.0), (0.30, 0.60, 0.10))
ALL_CATEGORIES = (*CATEGORIES, CRYPTO)
CRYPTO_CATEGORY = len(CATEGORIES)  # its index in ALL_CATEGORIES

RISK_TIERS = ("low", "medium", "high")
# How much more a fraudster prefers a merchant of each risk tier (weak checks, resellable goods).
FRAUD_RISK_PREFERENCE = (1.0, 3.0, 10.0)

# Relative number of legit transactions per hour of day (00..23): few at night.
LEGIT_HOURS = (
    0.6, 0.35, 0.2, 0.15, 0.15, 0.35, 1.2, 2.5, 3.8, 4.2, 4.8, 5.6,
    6.6, 6.0, 5.2, 5.2, 5.8, 6.8, 6.6, 5.6, 4.4, 3.4, 2.2, 1.2,
)  # fmt: skip
NIGHT_END_HOUR = 6  # "night" is 00:00-05:59


@dataclass(frozen=True)
class FraudPattern:
    """One way a compromised card gets used: a burst of transactions and the signals it shows.

    Each signal is a probability, not a rule, so not every fraud shows every signal.
    """

    name: str
    share: float  # share of fraud cases
    reason_code: int  # index into REASON_CODES of the chargeback it leads to
    channel_mix: tuple[float, float, float]  # in_store, online, contactless
    away_probability: float  # used outside the cardholder's home region
    night_probability: float  # the burst starts at night
    card_testing_probability: float  # the burst opens with 1-3 tiny "does it work" payments
    burst_continue: float  # after each payment, the chance of another (geometric length)
    gap_seconds: float  # mean time between payments of a burst
    amount_multiplier: float  # amount relative to the cardholder's usual in that category
    category_mix: dict[str, float]


FRAUD_PATTERNS = (
    # Card details bought online and used for resellable goods, often by bots, often at night.
    FraudPattern(
        "card_not_present", 0.55, 0, (0.0, 1.0, 0.0), 0.6, 0.5, 0.5, 0.55, 240.0, 3.0,
        {"electronics": 0.3, "gift_cards": 0.25, "online_gaming": 0.2, "travel": 0.1,
         "fashion": 0.1, "entertainment": 0.05},
    ),
    # A skimmed card cloned and used in shops abroad.
    FraudPattern(
        "counterfeit", 0.20, 1, (1.0, 0.0, 0.0), 1.0, 0.35, 0.2, 0.5, 900.0, 2.5,
        {"electronics": 0.3, "fashion": 0.25, "gift_cards": 0.1, "fuel": 0.1, "grocery": 0.1,
         "restaurants": 0.05, "home_garden": 0.1},
    ),
    # A stolen physical card tapped around town before the owner notices: the hardest to see.
    FraudPattern(
        "stolen_card", 0.25, 2, (0.3, 0.0, 0.7), 0.0, 0.4, 0.0, 0.7, 600.0, 1.2,
        {"grocery": 0.2, "fuel": 0.15, "pharmacy": 0.1, "fashion": 0.15, "electronics": 0.15,
         "restaurants": 0.15, "transport": 0.1},
    ),
)  # fmt: skip
MAX_BURST_PAYMENTS = 10  # main payments per burst, after any card testing
CONTACTLESS_LIMIT_CENTS = 5_000  # contactless payments above EUR 50 need a PIN

# Chargebacks: the share of fraudulent payments the cardholder disputes (tiny card-testing
# payments often go unnoticed), and the delay in days (gamma-shaped: most within three weeks).
REPORT_PROBABILITY = 0.95
REPORT_PROBABILITY_CARD_TESTING = 0.7
REPORT_DELAY_SHAPE, REPORT_DELAY_SCALE = 1.5, 6.0
MAX_REPORT_DELAY_DAYS = 60


def expected_burst_length() -> float:
    """Average number of payments per fraud case, used to turn a fraud rate into a case count."""
    total = 0.0
    for pattern in FRAUD_PATTERNS:
        card_testing = pattern.card_testing_probability * 2.0  # 1-3 payments, 2 on average
        main = 1.0 / (1.0 - pattern.burst_continue)  # mean of the geometric length
        total += pattern.share * (card_testing + main)
    return total
