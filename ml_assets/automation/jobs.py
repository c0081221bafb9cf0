"""The jobs the monitor sensor launches, two per model spec: a retrain and a day's realised
performance."""

from collections.abc import Sequence

import dagster as dg

from headwater_core.names import RETRAIN_TAG, performance_job, retrain_job
from ml_assets.automation.keys import keys_of
from ml_assets.models.spec import ModelSpec


def build_jobs(specs: Sequence[ModelSpec]) -> list[dg.JobDefinition]:
    """Per model, the two jobs the monitor sensor launches."""
    jobs = []
    for spec in specs:
        k = keys_of(spec.name)
        jobs.append(
            dg.define_asset_job(
                retrain_job(spec.name),
                selection=dg.AssetSelection.assets(
                    k["training_set"], k["model"], k["evaluation"], k["champion"]
                ),
                description=f"Retrain {spec.name}: a new challenger through the promotion gate.",
                tags={RETRAIN_TAG: spec.name},
            )
        )
        jobs.append(
            dg.define_asset_job(
                performance_job(spec.name),
                selection=dg.AssetSelection.assets(k["performance"]),
                description=f"Realised performance of {spec.name} on a day's matured labels.",
            )
        )
    return jobs
