"""The production profile's files, checked where no server is needed: the instance config, the
workspace, the compose file, the Dockerfile, the Helm values and `headwater stack`'s commands.

There is no Docker daemon or Kubernetes cluster where the tests run; these checks hold the
invariants that would otherwise only show up on a deploy (tests/integration/
test_production_stack.py runs the same processes natively)."""

import re
from pathlib import Path

import yaml

from headwater.stack import (
    CODE_LOCATIONS,
    CODE_SERVER_ENV,
    PRODUCTION_INSTANCE_CONFIG,
    PRODUCTION_WORKSPACE,
    PgSettings,
    StackConfig,
    stack_commands,
    stack_environment,
)
from headwater_core.config import PROJECT_ROOT
from headwater_core.names import DUCKDB_POOL
from ml_assets.models.engine import DASK_SCHEDULER_ENV

DEPLOY = PROJECT_ROOT / "deploy"
COMPOSE = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
DOCKERFILE = (DEPLOY / "Dockerfile").read_text()
HELM = yaml.safe_load((DEPLOY / "helm" / "values.yaml").read_text())
DASK = yaml.safe_load((DEPLOY / "k8s" / "dask-cluster.yaml").read_text())
INSTANCE = yaml.safe_load(PRODUCTION_INSTANCE_CONFIG.read_text())
EMBEDDED = yaml.safe_load((PROJECT_ROOT / "dagster_instance" / "embedded.yaml").read_text())
MODULES = dict(CODE_LOCATIONS)
SECRET_NAME = re.compile(r"PASSWORD|SECRET|TOKEN|API_KEY", re.IGNORECASE)


def _walk(value, path=()):
    """Every (path, scalar) in a parsed YAML document."""
    if isinstance(value, dict):
        for k, v in value.items():
            yield from _walk(v, (*path, str(k)))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _walk(v, (*path, str(i)))
    else:
        yield path, value


# -- the instance ---------------------------------------------------------------------------------


def test_instance_storage_is_postgres_configured_from_the_environment_only():
    db = INSTANCE["storage"]["postgres"]["postgres_db"]
    for key in ("hostname", "port", "username", "password", "db_name"):
        assert set(db[key]) == {"env"}, f"{key} must come from the environment: {db[key]}"
    assert db["scheme"] == "postgresql+psycopg2"


def test_instance_queues_runs_limits_them_and_keeps_the_duckdb_pool():
    assert INSTANCE["run_coordinator"]["class"] == "QueuedRunCoordinator"
    runs = INSTANCE["concurrency"]["runs"]
    assert runs["max_concurrent_runs"] > 0
    assert {limit["key"] for limit in runs["tag_concurrency_limits"]} == {
        "dagster/backfill",
        "headwater/retrain",
    }
    # the one-writer rule is the same in both profiles
    assert INSTANCE["concurrency"]["pools"] == EMBEDDED["concurrency"]["pools"]
    assert INSTANCE["concurrency"]["pools"]["default_limit"] == 1
    assert DUCKDB_POOL == "duckdb_warehouse"


def test_instance_monitors_and_retries_crashed_runs_without_telemetry():
    assert INSTANCE["run_monitoring"]["enabled"] is True
    assert INSTANCE["run_monitoring"]["max_runtime_seconds"] > 0
    retries = INSTANCE["run_retries"]
    assert retries["enabled"] is True and retries["max_retries"] >= 1
    assert retries["retry_on_asset_or_op_failure"] is False
    assert INSTANCE["telemetry"]["enabled"] is False


def test_workspace_points_at_one_code_server_per_location():
    workspace = yaml.safe_load(PRODUCTION_WORKSPACE.read_text())
    servers = [entry["grpc_server"] for entry in workspace["load_from"]]
    assert [s["location_name"] for s in servers] == [name for name, _ in CODE_LOCATIONS]
    for server in servers:
        host_var, port_var = CODE_SERVER_ENV[server["location_name"]]
        assert server["host"] == {"env": host_var} and server["port"] == {"env": port_var}


# -- compose --------------------------------------------------------------------------------------


def test_compose_runs_every_process_with_a_health_check():
    services = COMPOSE["services"]
    assert set(services) == {
        "postgres",
        "mlflow",
        "code-data-platform",
        "code-ml-assets",
        "daemon",
        "webserver",
        "serve",
    }
    for name, service in services.items():
        assert service.get("healthcheck", {}).get("test"), f"{name} has no health check"


def test_compose_code_servers_serve_the_workspace_locations():
    services = COMPOSE["services"]
    env = services["webserver"]["environment"]
    for location, module in CODE_LOCATIONS:
        host_var, port_var = CODE_SERVER_ENV[location]
        server = services[env[host_var]]
        command = server["command"]
        assert command[:3] == ["dagster", "code-server", "start"]
        assert command[command.index("-m") + 1] == module
        assert command[command.index("-p") + 1] == env[port_var]
        assert command[command.index("--location-name") + 1] == location
        assert server["healthcheck"]["test"][-1] == env[port_var]
        # runs execute in the code-server containers: they must share the warehouse
        assert any(v.endswith(":/var/lib/headwater") for v in server["volumes"])
    assert services["daemon"]["command"] == ["dagster-daemon", "run", "-w", "deploy/workspace.yaml"]


def test_compose_publishes_only_on_the_loopback_by_default():
    published = [
        port for service in COMPOSE["services"].values() for port in service.get("ports", [])
    ]
    # the UI, MLflow and the prediction service; nothing else leaves the compose network
    assert len(published) == 3
    assert all(p.startswith("${HEADWATER_PUBLISH_HOST:-127.0.0.1}:") for p in published)


def test_compose_serves_the_champions_from_the_mlflow_server_into_the_shared_state(tmp_path):
    serve = COMPOSE["services"]["serve"]
    command = serve["command"]
    assert command[:2] == ["headwater", "serve"]
    port = command[command.index("--port") + 1]
    assert command[command.index("--host") + 1] == "0.0.0.0"
    assert (
        serve["ports"][0].endswith(f":{port}")
        and f":{port}/health" in serve["healthcheck"]["test"][-1]
    )
    assert serve["environment"]["MLFLOW_TRACKING_URI"] == "http://mlflow:5000"
    # the prediction log lands where the ML code server's runs read it
    assert "headwater_state:/var/lib/headwater" in serve["volumes"]
    assert serve["environment"]["HEADWATER_HOME"] == "/var/lib/headwater"
    stack = stack_commands(StackConfig(state=tmp_path), PgSettings(), Path("/venv/bin"))["serve"]
    assert stack[1:2] == command[1:2] and "--port" in stack


def test_helm_serve_manifest_runs_the_service_beside_the_chart():
    docs = {d["kind"]: d for d in yaml.safe_load_all((DEPLOY / "helm" / "serve.yaml").read_text())}
    container = docs["Deployment"]["spec"]["template"]["spec"]["containers"][0]
    assert container["args"][:2] == ["headwater", "serve"]
    port = int(container["args"][container["args"].index("--port") + 1])
    assert container["ports"][0]["containerPort"] == port
    assert container["readinessProbe"]["httpGet"]["path"] == "/ready"
    assert container["livenessProbe"]["httpGet"]["path"] == "/health"
    assert docs["Service"]["spec"]["type"] == "ClusterIP"
    assert docs["Service"]["spec"]["ports"][0]["targetPort"] == port
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["MLFLOW_TRACKING_URI"] == "http://headwater-mlflow:5000"


def test_compose_holds_no_secret_and_keeps_passwords_off_command_lines():
    for path, value in _walk(COMPOSE):
        if SECRET_NAME.search(path[-1]) and isinstance(value, str):
            assert value.startswith("${") and ":?" in value, f"{'.'.join(path)}: {value}"
    mlflow = COMPOSE["services"]["mlflow"]["command"]
    uri = mlflow[mlflow.index("--backend-store-uri") + 1]
    assert uri.startswith("postgresql+psycopg2://") and ":${" not in uri.split("@")[0]
    assert "PGPASSWORD" in COMPOSE["services"]["mlflow"]["environment"]


def test_env_example_holds_no_password_and_env_files_are_ignored():
    example = dict(
        line.split("=", 1)
        for line in (DEPLOY / ".env.example").read_text().splitlines()
        if line and not line.startswith("#")
    )
    assert example["POSTGRES_PASSWORD"] == ""
    assert {k for k in example if SECRET_NAME.search(k)} == {"POSTGRES_PASSWORD"}
    ignored = (PROJECT_ROOT / ".gitignore").read_text().splitlines()
    assert "deploy/.env" in ignored and ".env" in ignored


# -- the image ------------------------------------------------------------------------------------


def _stages(dockerfile: str) -> list[str]:
    """The Dockerfile's stages, each from its FROM line to the next."""
    return re.split(r"^FROM ", dockerfile, flags=re.MULTILINE)[1:]


def test_image_is_multi_stage_from_the_lockfile():
    build, runtime = _stages(DOCKERFILE)
    assert "COPY pyproject.toml uv.lock" in build
    installs = re.findall(r"uv sync[^\n]*", build)
    assert installs and all("--frozen" in i and "--no-dev" in i for i in installs), installs
    assert "pip install" not in runtime and "uv " not in runtime


def test_image_runs_as_a_non_root_user_and_holds_no_secret():
    runtime = _stages(DOCKERFILE)[-1]
    users = re.findall(r"^USER (\S+)", runtime, flags=re.MULTILINE)
    assert users and users[-1] not in ("root", "0"), users
    for line in DOCKERFILE.splitlines():
        if line.startswith(("ENV", "ARG")) or line.startswith("    "):
            assert not SECRET_NAME.search(line), line
    # only named folders are copied: no .env, state folder or virtualenv from the build context
    copies = re.findall(r"^COPY (?!--from)(.+) \S+$", DOCKERFILE, flags=re.MULTILINE)
    sources = {s for line in copies for s in line.split()}
    assert not {".", "./", ".env", "deploy/.env", ".headwater", ".venv"} & sources, sources


def test_image_default_command_serves_the_ui_on_the_loopback():
    cmd = re.findall(r"^CMD (.+)$", DOCKERFILE, flags=re.MULTILINE)[-1]
    assert '"dagster-webserver"' in cmd and '"-h", "127.0.0.1"' in cmd


# -- Helm -----------------------------------------------------------------------------------------


def test_helm_values_launch_runs_on_kubernetes_against_the_code_servers():
    assert HELM["runLauncher"]["type"] == "K8sRunLauncher"
    servers = HELM["dagsterWebserver"]["workspace"]["servers"]
    deployments = {d["name"]: d for d in HELM["dagster-user-deployments"]["deployments"]}
    assert [s["name"] for s in servers] == [name for name, _ in CODE_LOCATIONS]
    for server in servers:
        args = deployments[server["host"]]["codeServerArgs"]
        assert args[args.index("-m") + 1] == MODULES[server["name"]]
        assert deployments[server["host"]]["port"] == server["port"]


def test_helm_values_match_the_instance_and_take_secrets_from_kubernetes():
    assert HELM["telemetry"]["enabled"] is False
    assert HELM["generatePostgresqlPasswordSecret"] is False
    assert HELM["global"]["postgresqlSecretName"]
    assert (
        HELM["postgresql"]["postgresqlScheme"]
        == INSTANCE["storage"]["postgres"]["postgres_db"]["scheme"]
    )
    pools = HELM["concurrency"]["pools"]
    assert (pools["defaultLimit"], pools["granularity"]) == (1, "op")
    assert HELM["dagsterDaemon"]["runRetries"]["retryOnAssetOrOpFailure"] is False
    for path, value in _walk(HELM):
        # The names of Kubernetes Secrets are fine; a value would not be.
        is_reference = "envSecrets" in path or path[-1].endswith(("SecretName", "Secret"))
        if SECRET_NAME.search(path[-1]) and not is_reference:
            assert value == "unused", f"{'.'.join(path)} holds a value: set it in a Secret"
    assert HELM["dagsterWebserver"]["service"]["type"] == "ClusterIP"


def _deployments() -> dict:
    return {d["name"]: d for d in HELM["dagster-user-deployments"]["deployments"]}


def test_helm_values_run_every_step_of_a_run_in_its_pod_under_the_same_pools_and_queue():
    launcher = HELM["runLauncher"]["config"]["k8sRunLauncher"]
    # every run pod that may write the warehouse mounts the one state volume
    assert [m["mountPath"] for m in launcher["volumeMounts"]] == ["/var/lib/headwater"]
    assert HELM["dagsterDaemon"]["runCoordinator"]["type"] == "QueuedRunCoordinator"
    limits = HELM["concurrency"]["runs"]["tagConcurrencyLimits"]
    assert {limit["key"] for limit in limits} == {
        limit["key"] for limit in INSTANCE["concurrency"]["runs"]["tag_concurrency_limits"]
    }
    assert (
        HELM["concurrency"]["runs"]["maxConcurrentRuns"]
        >= (INSTANCE["concurrency"]["runs"]["max_concurrent_runs"])
    )


def test_helm_values_point_the_ml_runs_at_the_dask_clusters_scheduler():
    ml = next(d for d in _deployments().values() if MODULES["ml_assets"] in d["codeServerArgs"])
    # the runs of the location inherit the deployment's env, the scheduler's address included
    assert ml["includeConfigInLaunchedRuns"]["enabled"] is True
    (port,) = [
        p["port"] for p in DASK["spec"]["scheduler"]["service"]["ports"] if p["name"] == "tcp-comm"
    ]
    service = f"{DASK['metadata']['name']}-scheduler"
    assert ml["env"][DASK_SCHEDULER_ENV] == f"tcp://{service}:{port}"
    data = next(d for d in _deployments().values() if d is not ml)
    assert DASK_SCHEDULER_ENV not in data["env"]


def test_the_dask_cluster_runs_the_headwater_image_inside_the_cluster_only():
    assert (DASK["apiVersion"], DASK["kind"]) == ("kubernetes.dask.org/v1", "DaskCluster")
    image = _deployments()["headwater-ml-assets"]["image"]
    expected = f"{image['repository']}:{image['tag']}"
    scheduler = DASK["spec"]["scheduler"]
    worker = DASK["spec"]["worker"]
    (scheduler_container,) = scheduler["spec"]["containers"]
    (worker_container,) = worker["spec"]["containers"]
    # the workers unpickle boosters and import ml_assets: the code servers' exact image
    assert scheduler_container["image"] == worker_container["image"] == expected
    assert worker_container["args"][:2] == ["dask", "worker"]
    assert scheduler_container["args"][:2] == ["dask", "scheduler"]
    assert scheduler["service"]["type"] == "ClusterIP"
    assert scheduler["service"]["selector"]["dask.org/cluster-name"] == DASK["metadata"]["name"]
    # every worker holds training rows: LightGBM runs on as many machines as there are replicas
    assert worker["replicas"] >= 2
    for pod in (scheduler["spec"], worker["spec"]):
        assert pod["securityContext"]["runAsNonRoot"] is True


def test_the_image_installs_the_scale_out_group():
    build = _stages(DOCKERFILE)[0]
    for install in re.findall(r"uv sync[^\n]*", build):
        assert "--no-default-groups" not in install and "--only-group" not in install, install


# -- `headwater stack` ----------------------------------------------------------------------------


def test_stack_serves_the_ui_on_the_loopback_unless_told_otherwise(tmp_path):
    bin_dir = Path("/venv/bin")
    default = stack_commands(StackConfig(state=tmp_path), PgSettings(), bin_dir)["webserver"]
    assert default[default.index("-h") + 1] == "127.0.0.1" and "--read-only" not in default
    exposed = stack_commands(
        StackConfig(state=tmp_path, host="0.0.0.0", read_only=True), PgSettings(), bin_dir
    )["webserver"]
    assert exposed[exposed.index("-h") + 1] == "0.0.0.0" and exposed[-1] == "--read-only"


def test_stack_passes_the_password_in_the_environment_not_on_a_command_line(tmp_path):
    pg = PgSettings.from_env({"DAGSTER_PG_PASSWORD": "s3cr3t-value", "DAGSTER_PG_DB": "d"})
    config = StackConfig(state=tmp_path)
    commands = stack_commands(config, pg, Path("/venv/bin"))
    assert not [c for command in commands.values() for c in command if "s3cr3t-value" in c]
    env = stack_environment(config, pg, {"PATH": "/bin"})
    assert env["DAGSTER_PG_PASSWORD"] == env["PGPASSWORD"] == "s3cr3t-value"
    assert env["DAGSTER_PG_DB"] == "d" and env["DAGSTER_HOME"] == str(config.dagster_home)
    assert env["MLFLOW_TRACKING_URI"] == config.mlflow_uri


def test_stack_starts_a_code_server_per_location_and_the_mlflow_server(tmp_path):
    config = StackConfig(state=tmp_path, data_code_port=4100, ml_code_port=4101)
    commands = stack_commands(config, PgSettings(mlflow_db="m"), Path("/venv/bin"))
    assert list(commands) == [
        "mlflow",
        "code-server:data_platform",
        "code-server:ml_assets",
        "serve",
        "daemon",
        "webserver",
    ]
    env = stack_environment(config, PgSettings(), {})
    for location, module in CODE_LOCATIONS:
        command = commands[f"code-server:{location}"]
        assert command[command.index("-m") + 1] == module
        host_var, port_var = CODE_SERVER_ENV[location]
        assert command[command.index("-p") + 1] == env[port_var]
        assert env[host_var] == "127.0.0.1"
    mlflow = commands["mlflow"]
    assert mlflow[mlflow.index("--backend-store-uri") + 1] == (
        "postgresql+psycopg2://postgres@127.0.0.1:5432/m"
    )
    assert mlflow[mlflow.index("--artifacts-destination") + 1] == config.mlflow_artifacts.as_uri()
