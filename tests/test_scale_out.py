"""Sweeps through Hydra's cluster launchers, every job logging to one shared tracking server."""

from __future__ import annotations

import mlflow
import pytest
from conftest import run_cli, sweep_runs
from servers import ray_head, tracking_server

pytestmark = pytest.mark.slow


def check_children(url: str, names: list[str]) -> None:
    client = mlflow.MlflowClient(url)
    runs = client.search_runs([client.get_experiment_by_name("kmeans_exp").experiment_id])
    parent, children = sweep_runs(runs)
    assert len(children) == len(runs) - 1 and parent.info.status == "FINISHED"
    assert sorted(r.info.run_name for r in children) == sorted(names)
    assert all(r.info.status == "FINISHED" for r in children)
    assert all(0.3 < r.data.metrics["test_accuracy"] < 0.9 for r in children)


def test_submitit_local_sweep_logs_to_a_shared_server(tmp_path):
    pytest.importorskip("hydra_plugins.hydra_submitit_launcher")
    with tracking_server(tmp_path) as url:
        args = [
            "-m",
            "k=5,6,7",
            "steps=2",
            "tracking.log_model=false",
            "hydra/launcher=submitit_local",
            f"hydra.sweep.dir={tmp_path / 'sweep'}",
        ]
        result = run_cli(args, tmp_path, env={"MLFLOW_TRACKING_URI": url})
        assert result.returncode == 0, result.stderr[-3000:]
        check_children(url, ["k=5", "k=6", "k=7"])
    assert list((tmp_path / "sweep" / ".submitit").iterdir())  # submitit's own job folders


@pytest.mark.xdist_group("ray")  # never beside the distributed fit's Ray test
def test_ray_sweep_on_a_local_head_logs_to_a_shared_server(tmp_path):
    pytest.importorskip("hydra_plugins.hydra_ray_launcher")
    with tracking_server(tmp_path) as url, ray_head() as address:
        args = [
            "-m",
            "k=5,6,7",
            "steps=2",
            "tracking.log_model=false",
            "hydra/launcher=ray",
            f"+hydra.launcher.ray.init.address={address}",
            # The launcher always passes object_store_memory, which Ray refuses when connecting.
            "+hydra.launcher.ray.init.object_store_memory=null",
            # Workers of an existing cluster do not inherit the driver's environment.
            "+hydra.launcher.ray.init.runtime_env={env_vars:{KMEANS_EXP_SWEEP:${oc.env:KMEANS_EXP_SWEEP}}}",
            f"hydra.sweep.dir={tmp_path / 'sweep'}",
        ]
        env = {"MLFLOW_TRACKING_URI": url, "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}
        result = run_cli(args, tmp_path, env=env)
        assert result.returncode == 0, result.stderr[-3000:]
        check_children(url, ["k=5", "k=6", "k=7"])
