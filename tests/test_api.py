"""The Hydra-free API: run_experiment and compose, read back through MlflowClient."""

from __future__ import annotations

import logging
import re
import subprocess
import sys
from pathlib import Path

import mlflow
import numpy as np
import pytest
from conftest import ROOT, user_env

import kmeans_exp
from kmeans_exp.errors import ConfigError


@pytest.fixture()
def store(tmp_path):
    """A run_experiment override that sends runs to a store of the test's own."""
    return {"uri": f"sqlite:///{tmp_path / 'mlflow.db'}", "experiment_name": "api"}


def test_run_experiment_returns_what_it_logged(store):
    result = kmeans_exp.run_experiment(k=6, steps=3, seed=2, tracking=store)
    client = mlflow.MlflowClient(store["uri"])
    run = client.get_run(result.run_id)
    assert run.info.status == "FINISHED" and run.info.run_name == "k=6 cosine full-batch"
    assert run.data.params["k"] == "6" and run.data.params["seed"] == "2"
    for name, value in result.metrics.items():
        assert run.data.metrics[name] == pytest.approx(value, rel=1e-9), name
    assert 0.4 < result.metrics["test_accuracy"] < 0.8
    assert 0.3 < result.metrics["test_nmi"] < 0.7
    assert result.model.cluster_centers_.shape == (6, 784)
    assert result.config.k == 6 and result.tracking_uri == store["uri"]
    history = client.get_metric_history(result.run_id, "avg_distance")
    assert [m.value for m in history] == [s.avg_distance for s in result.model.history_]
    artifacts = {a.path for a in client.list_artifacts(result.run_id)}
    assert {"config.yaml", "centroids.png", "clusters.json"} <= artifacts  # no Hydra folder
    logged = client.download_artifacts(result.run_id, "config.yaml")
    assert "k: 6" in Path(logged).read_text()


def test_restarts_log_each_inertia_and_keep_the_best(store):
    result = kmeans_exp.run_experiment(k=8, steps=2, n_init=3, tracking=store)
    client = mlflow.MlflowClient(store["uri"])
    restarts = client.get_metric_history(result.run_id, "restart_inertia")
    inertias = [m.value for m in sorted(restarts, key=lambda m: m.step)]
    assert [m.step for m in sorted(restarts, key=lambda m: m.step)] == [0, 1, 2]
    assert inertias == pytest.approx(result.model.restart_inertia_)
    best = int(client.get_run(result.run_id).data.metrics["best_restart"])
    assert inertias[best] == pytest.approx(min(inertias))
    assert result.metrics["inertia"] == pytest.approx(min(inertias))
    near = sum(1 for inertia in inertias if inertia <= 1.01 * min(inertias))
    assert 1 <= near <= 3
    assert client.get_run(result.run_id).data.metrics["restarts_near_best"] == near
    for i in range(3):  # every restart's steps, and the kept one's as avg_distance
        assert len(client.get_metric_history(result.run_id, f"avg_distance_restart_{i}")) == 2
    kept = client.get_metric_history(result.run_id, f"avg_distance_restart_{best}")
    chosen = client.get_metric_history(result.run_id, "avg_distance")
    assert [m.value for m in chosen] == [m.value for m in kept]


def test_tracking_off_logs_nothing(tmp_path, monkeypatch, caplog):
    monkeypatch.chdir(tmp_path)
    caplog.set_level(logging.DEBUG, logger="kmeans_exp")
    result = kmeans_exp.run_experiment(k=5, steps=2, tracking={"enabled": False})
    assert result.run_id is None and result.tracking_uri is None
    assert 0.3 < result.metrics["test_accuracy"] < 0.8
    assert list(tmp_path.iterdir()) == []  # no store, no artifacts
    (line,) = [r.getMessage() for r in caplog.records if "first training step" in r.getMessage()]
    parts = ("data", "tracking store", "tensorflow import", "input prepare", "init", "first step")
    assert all(f"{part} " in line for part in parts), line
    assert not any("MLflow run" in r.getMessage() for r in caplog.records)


def test_without_a_validation_split_there_are_no_validation_scores():
    result = kmeans_exp.run_experiment(
        k=5, steps=2, data={"validation_size": 0}, tracking={"enabled": False}
    )
    assert not any(name.startswith("val_") for name in result.metrics)
    assert 0.3 < result.metrics["test_accuracy"] < 0.8 and len(result.model.labels_) == 60_000


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"k": 0}, "k=0: expected an integer >= 1 (the number of clusters)"),
        ({"k": 55_001}, "k=55001: more clusters than the 55000 training rows"),
        ({"foo": 1}, "Key 'foo' not in 'ExperimentConfig'"),
        ({"distance_metric": "manhattan"}, "Invalid value 'manhattan'"),
    ],
)
def test_bad_overrides_raise_one_line_and_create_nothing(store, tmp_path, overrides, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        kmeans_exp.run_experiment(**overrides, tracking=store)
    assert not (tmp_path / "mlflow.db").exists()


def test_compose_takes_presets_and_command_line_overrides():
    exp = kmeans_exp.compose(["experiments=seed_tutorial", "k=30"])
    assert (exp.k, exp.init.value, exp.use_mini_batch, exp.steps) == (30, "random", True, 50)


@pytest.mark.slow
def test_readme_python_example_runs_as_written(tmp_path):
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## From Python / a notebook", 1)[1].split("\n## ", 1)[0]
    (code,) = re.findall(r"```python\n(.+?)```", section, re.S)
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, env=user_env(), capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr[-3000:]
    accuracy, nmi, run_id = done.stdout.splitlines()[0].split()
    run = mlflow.MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}").get_run(run_id)
    assert run.data.params["k"] == "50" and run.data.params["seed"] == "1"
    assert run.data.metrics["test_accuracy"] == pytest.approx(float(accuracy))
    assert run.data.metrics["test_nmi"] == pytest.approx(float(nmi))
    digits = np.array(done.stdout.splitlines()[1].strip("[]").split(), dtype=int)
    assert len(digits) == 10 and set(digits) <= set(range(10))
