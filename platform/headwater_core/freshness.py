"""Freshness policies from declarations: dbt meta, the raw contract and model specs.

One shape everywhere, `{warn_after_hours: N, fail_after_hours: M}`, turned into Dagster's
`FreshnessPolicy.time_window`. dagster-dbt does not read the new policy itself, so the dbt
translator calls `freshness_policy` on the model's `meta.headwater_freshness`.
"""

from collections.abc import Mapping
from datetime import timedelta
from typing import Any

import dagster as dg


def freshness_policy(declared: Mapping[str, Any] | None) -> dg.FreshnessPolicy | None:
    """The policy a declaration asks for; None when nothing is declared."""
    if not declared:
        return None
    if "fail_after_hours" not in declared:
        raise ValueError(f"a freshness declaration needs fail_after_hours: {dict(declared)}")
    fail = timedelta(hours=float(declared["fail_after_hours"]))
    warn = declared.get("warn_after_hours")
    warn_window = timedelta(hours=float(warn)) if warn is not None else None
    if warn_window is not None and warn_window >= fail:
        raise ValueError(f"warn_after_hours must be below fail_after_hours: {dict(declared)}")
    return dg.FreshnessPolicy.time_window(fail_window=fail, warn_window=warn_window)
