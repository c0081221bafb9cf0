"""The ML code location: feature sets, models, scores, monitoring and their automation.

It shares the warehouse file and the dbt project with the data-engineering location, and refers
to the marts by asset key only. Heavy libraries (lightgbm, mlflow, evidently) are imported inside
the assets that use them, so this location loads fast.
"""

import dagster as dg

from headwater_core.dbt.resource import dbt_cli_resource
from headwater_core.resources import Warehouse
from ml_assets.automation.conditions import build_automation_sensor
from ml_assets.automation.jobs import build_jobs
from ml_assets.automation.monitor import build_monitor_sensor
from ml_assets.features.assets import build_feature_assets
from ml_assets.models.artifacts import ModelArtifacts
from ml_assets.models.assets import build_model_assets
from ml_assets.models.spec import load_specs
from ml_assets.models.tracking import MlflowTracking
from ml_assets.monitoring.assets import MonitoringReports, build_monitoring_assets


def build_definitions() -> dg.Definitions:
    specs = load_specs()
    model_assets = [
        a for spec in specs for a in (*build_model_assets(spec), *build_monitoring_assets(spec))
    ]
    jobs = build_jobs(specs)
    return dg.Definitions(
        assets=dg.with_source_code_references([*build_feature_assets(), *model_assets]),
        jobs=jobs,
        sensors=[build_automation_sensor(), build_monitor_sensor(specs, jobs)],
        resources={
            "warehouse": Warehouse(),
            "dbt": dbt_cli_resource(),
            "mlflow_tracking": MlflowTracking(),
            "artifacts": ModelArtifacts(),
            "reports": MonitoringReports(),
        },
        # Steps that write the warehouse take turns anyway (one DuckDB writer); running them in
        # the run's own process saves a code load per step.
        executor=dg.in_process_executor,
    )


defs = build_definitions()
