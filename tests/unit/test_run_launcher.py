"""The embedded instance's run launcher: which process a run recorded, and whether it lives.
The kill -9 itself is tests/integration/test_crash_recovery.py."""

import os
import shutil
import time

import dagster as dg
import yaml

from headwater.dagster_internals import worker_health
from headwater.environment import EMBEDDED_INSTANCE_CONFIG
from headwater.run_launcher import LocalRunLauncher, process_alive


def test_the_health_answers_run_monitoring_reads():
    running, failed = worker_health(True, "alive"), worker_health(False, "gone")
    assert (running.status.name, failed.status.name) == ("RUNNING", "FAILED")
    assert failed.msg == "gone"


def test_a_live_process_is_alive_only_if_it_existed_when_the_run_recorded_it():
    now = time.time()
    assert process_alive(os.getpid(), now)
    # the same id recorded before this process started belonged to another process
    assert not process_alive(os.getpid(), now - 365 * 86400)


def test_a_process_id_nobody_has_is_dead():
    with open("/proc/sys/kernel/pid_max") as f:
        pid_max = int(f.read())
    assert not process_alive(pid_max + 1, time.time())


def test_the_embedded_instance_uses_it_with_run_monitoring(tmp_path):
    shutil.copyfile(EMBEDDED_INSTANCE_CONFIG, tmp_path / "dagster.yaml")
    config = yaml.safe_load(EMBEDDED_INSTANCE_CONFIG.read_text())
    assert config["run_launcher"]["class"] == LocalRunLauncher.__name__
    with dg.DagsterInstance.from_config(str(tmp_path)) as instance:
        assert isinstance(instance.run_launcher, LocalRunLauncher)
        assert instance.run_launcher.supports_check_run_worker_health
        assert instance.run_monitoring_enabled
        assert instance.run_monitoring_settings["free_slots_after_run_end_seconds"] > 0
        assert "MONITORING" in instance.get_required_daemon_types()


def test_both_instances_give_back_the_slots_of_ended_runs():
    from headwater.stack import PRODUCTION_INSTANCE_CONFIG

    for path in (EMBEDDED_INSTANCE_CONFIG, PRODUCTION_INSTANCE_CONFIG):
        monitoring = yaml.safe_load(path.read_text())["run_monitoring"]
        assert monitoring["enabled"] is True, path
        assert monitoring["free_slots_after_run_end_seconds"] > 0, path
    # process ids mean nothing across the production profile's containers
    assert "run_launcher" not in yaml.safe_load(PRODUCTION_INSTANCE_CONFIG.read_text())
