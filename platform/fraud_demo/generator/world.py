"""The simulated world of one run: its configuration, population and merchant samplers."""

from __future__ import annotations

from dataclasses import dataclass

from fraud_demo.generator.config import GeneratorConfig
from fraud_demo.generator.population import (
    Customers,
    MerchantIndex,
    Merchants,
    build_crypto_merchants,
    build_customers,
    build_merchants,
    concat_merchants,
    fraud_weights,
)


@dataclass(frozen=True, eq=False)
class World:
    """Everything that stays fixed while the days of a run are simulated."""

    config: GeneratorConfig
    customers: Customers
    merchants: Merchants  # all merchants, including any the drift onboards later
    shops: MerchantIndex  # existing merchants as customers choose them
    fraud_shops: MerchantIndex  # existing merchants as fraudsters choose them
    crypto_shops: MerchantIndex | None  # the drift's crypto exchanges, if any


def build_world(config: GeneratorConfig) -> World:
    """Draw the population of a run."""
    customers = build_customers(config)
    merchants = build_merchants(config)
    shops = MerchantIndex(merchants, merchants.popularity)
    fraud_shops = MerchantIndex(merchants, fraud_weights(merchants))
    crypto_shops = None
    # Crypto exchanges get their own index (numbered after the existing merchants), so the
    # existing merchants' samplers, and thus the days before the onset, are unchanged.
    if config.drift is not None and config.drift.name == "crypto_wave":
        crypto = build_crypto_merchants(config, first_number=len(merchants) + 1)
        crypto_shops = MerchantIndex(crypto, crypto.popularity, first=len(merchants))
        merchants = concat_merchants(merchants, crypto)
    return World(config, customers, merchants, shops, fraud_shops, crypto_shops)
