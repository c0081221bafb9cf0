"""The ML code location: feature sets, models, scores, monitoring, served traffic and their
automation.

It shares the warehouse file and the dbt project with the data-engineering location, and refers
to the marts by asset key only. Heavy libraries (lightgbm, mlflow, evidently) are imported inside
the assets that use them, so this location loads fast.

The definitions are those of the configured project (`HEADWATER_PROJECT_DIR`, default this
repository: its model specs and feature sets), built when Dagster loads the location
(`project_definitions`), not at import. `from ml_assets.definitions import defs` gives the same
object.
"""

import dagster as dg

from headwater_core.config import model_specs_dir, once_per_project
from headwater_core.dbt.resource import dbt_cli_resource
from headwater_core.resources import Warehouse
from ml_assets.automation.conditions import build_automation_sensor
from ml_assets.automation.jobs import build_jobs
from ml_assets.automation.monitor import build_monitor_sensor
from ml_assets.features.assets import build_feature_assets
from ml_assets.models.artifacts import ModelArtifacts
from ml_assets.models.assets import build_model_assets
from ml_assets.models.engine import TrainingEngine
from ml_assets.models.spec import load_specs
from ml_assets.models.tracking import MlflowTracking
from ml_assets.monitoring.assets import MonitoringReports, build_monitoring_assets
from ml_assets.online.assets import OnlineStore, build_online_assets
from ml_assets.serving.assets import build_serving_assets


def build_definitions() -> dg.Definitions:
    """The location's definitions for the configured project."""
    specs = load_specs(model_specs_dir())
    model_assets = [
        a
        for spec in specs
        for a in (
            *build_model_assets(spec),
            *build_monitoring_assets(spec),
            *build_serving_assets(spec),
        )
    ]
    online_assets = build_online_assets(specs)
    jobs = build_jobs(specs)
    return dg.Definitions(
        assets=dg.with_source_code_references(
            [*build_feature_assets(), *model_assets, *online_assets]
        ),
        jobs=jobs,
        sensors=[build_automation_sensor(), build_monitor_sensor(specs, jobs)],
        resources={
            "warehouse": Warehouse(),
            "dbt": dbt_cli_resource(),
            "mlflow_tracking": MlflowTracking(),
            "artifacts": ModelArtifacts(),
            # $HEADWATER_DASK_SCHEDULER set: models train and score on that Dask cluster
            "training_engine": TrainingEngine(),
            "reports": MonitoringReports(),
            "online_store": OnlineStore(),
        },
        # Steps that write the warehouse take turns anyway (one DuckDB writer); running them in
        # the run's own process saves a code load per step.
        executor=dg.in_process_executor,
    )


_definitions = once_per_project(build_definitions)


@dg.definitions
def project_definitions() -> dg.Definitions:
    """What Dagster loads: the configured project's definitions, built once per project folder."""
    return _definitions()


def __getattr__(name: str) -> dg.Definitions:
    # `defs`, built on first use (PEP 562) rather than at import, which reads no environment.
    if name == "defs":
        return project_definitions()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
