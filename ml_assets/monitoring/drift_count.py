"""The count of drifted features in a drift report, from the report's own per-column results.

Evidently's `DriftedColumnsCount` computes every column's drift again (its legacy
`DatasetDriftMetric`), after each column's `ValueDrift` has computed it once: 40% of a report's
time at 5,000 rows a side (0.09 s of 0.37 s for 14 columns). `DriftedFeaturesCount` reads the
`ValueDrift` results instead, through Evidently's metric cache (the same metric, the same
fingerprint), and counts those whose drift test failed, Evidently's own verdict. Its count, its
share and its test (share below `drift_share`) are `DriftedColumnsCount`'s, and so is what the
report shows.

Imports Evidently: import it only where a report is built (`drift._run_report`), so that loading
the code location stays fast. Evidently is pinned (0.7.23); tests/unit/test_drift.py holds the
count to `DriftedColumnsCount`'s.
"""

from __future__ import annotations

from evidently.core.metric_types import BoundTest, CountCalculation, CountMetric
from evidently.legacy.tests.base_test import TestStatus
from evidently.metrics import ValueDrift
from evidently.tests import lt


class DriftedFeaturesCount(CountMetric):
    """How many of `drifts` (the report's `ValueDrift` metrics of the features) drifted, and
    their share; the report's test: the share below `drift_share`."""

    drifts: list[ValueDrift]
    drift_share: float = 0.5

    def _default_tests_with_reference(self, context) -> list[BoundTest]:
        # as DriftedColumnsCount's: the share (not the count) below drift_share
        return [lt(self.drift_share).bind_count(self.get_fingerprint(), is_count=False)]


class DriftedFeaturesCountCalculation(CountCalculation[DriftedFeaturesCount]):
    def calculate(self, context, current_data, reference_data):
        drifted = 0
        for metric in self.metric.drifts:
            # computed once per report: the context caches a metric's result by its fingerprint
            result = context.calculate_metric(metric.to_calculation())
            drifted += any(test.status == TestStatus.FAIL for test in result.tests)
        return self.result(drifted, drifted / len(self.metric.drifts)), None

    def display_name(self) -> str:
        return "Count of Drifted Columns"

    def share_display_name(self) -> str:
        return "Share of Drifted Columns"
