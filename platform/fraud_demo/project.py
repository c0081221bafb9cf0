"""The demo's part of a headwater project, listed once: its sources and the files that are its.

`headwater demo remove` deletes exactly these files from a project (the folders stay, empty,
as `headwater init` makes them), and the data location registers the demo's feed job and
schedule only for a project that declares every demo source. The generator (this package)
stays installed: it is what writes the demo's landing files, and inert without them.
"""

# The dbt sources the demo's files are delivered to.
DEMO_SOURCES = ("payments", "crm", "acquirer")

# Paths relative to the project folder: the demo's yml, SQL and specs.
DEMO_FILES = (
    "dbt_project/models/staging/payments",
    "dbt_project/models/staging/crm",
    "dbt_project/models/staging/acquirer",
    "dbt_project/models/intermediate/_intermediate__models.yml",
    "dbt_project/models/intermediate/_intermediate__unit_tests.yml",
    "dbt_project/models/intermediate/int_chargebacks_joined_to_transactions.sql",
    "dbt_project/models/marts/_marts__models.yml",
    "dbt_project/models/marts/_marts__unit_tests.yml",
    "dbt_project/models/marts/dim_customers.sql",
    "dbt_project/models/marts/dim_merchants.sql",
    "dbt_project/models/marts/fct_chargebacks.sql",
    "dbt_project/models/marts/fct_daily_merchant_activity.sql",
    "dbt_project/models/marts/fct_transactions.sql",
    "dbt_project/models/features/_features__models.yml",
    "dbt_project/models/features/customer_spend_labels.sql",
    "dbt_project/models/features/customer_weekly_features.sql",
    "dbt_project/models/features/customer_weekly_spine.sql",
    "dbt_project/models/features/fraud_labels.sql",
    "dbt_project/models/features/merchant_daily_label_stats.sql",
    "dbt_project/models/features/transaction_features.sql",
    "dbt_project/macros/label_maturity_days.sql",
    # the demo's feature lookbacks (its windows and label maturity), declared once
    "dbt_project/macros/feature_window.sql",
    "model_specs/customer_spend_30d.yml",
    "model_specs/fraud_classifier.yml",
)


def has_demo_sources(source_names: set[str]) -> bool:
    """Whether a project declaring these dbt sources holds the demo (all of its sources)."""
    return set(DEMO_SOURCES) <= set(source_names)
