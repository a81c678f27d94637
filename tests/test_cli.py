"""End to end: the CLI as a user runs it, read back through MlflowClient (slow: minutes)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pytest
import reference
from conftest import ROOT, client_for, run_cli, sweep_runs

from kmeans_exp import data

pytestmark = pytest.mark.slow


def artifact_json(client, run_id: str, path: str) -> dict:
    return json.loads(Path(client.download_artifacts(run_id, path)).read_text())


def only_experiment(client):
    experiments = [e for e in client.search_experiments() if e.name == "kmeans_exp"]
    assert len(experiments) == 1
    return experiments[0].experiment_id


def runs_by_name(client):
    runs = client.search_runs([only_experiment(client)])
    return {r.info.run_name: r for r in runs}


def test_single_run_logs_everything_and_its_model_reproduces_it(tmp_path, mnist):
    result = run_cli(["k=12", "steps=4"], tmp_path)
    assert result.returncode == 0, result.stderr
    client = client_for(tmp_path)
    runs = runs_by_name(client)
    assert list(runs) == ["k=12 cosine full-batch"]
    run = runs["k=12 cosine full-batch"]
    assert run.info.status == "FINISHED"
    assert run.info.run_id in result.stdout  # the end summary names the run
    for noise in ("absl::InitializeLog", "cuInit", "oneDNN", "Traceback"):
        assert noise not in result.stderr

    params = run.data.params
    assert params["k"] == "12" and params["steps"] == "4"
    assert params["distance_metric"] == "cosine" and params["batch_size"] == "null"
    assert params["data.source"] == "bundled" and params["tracking.experiment_name"] == "kmeans_exp"

    history = client.get_metric_history(run.info.run_id, "avg_distance")
    assert [m.step for m in history] == [1, 2, 3, 4]
    distances = [m.value for m in history]
    assert distances == sorted(distances, reverse=True) and 0.15 < distances[-1] < 0.35
    metrics = run.data.metrics
    assert 0.55 < metrics["test_accuracy"] < 0.85
    assert 0.55 < metrics["val_accuracy"] < 0.85 and 0.55 < metrics["train_accuracy"] < 0.85
    for name in ("inertia", "train_seconds", "data_seconds", "eval_seconds"):
        assert metrics[name] > 0

    tags = run.data.tags
    assert tags["hydra.overrides"] == "k=12 steps=4"
    head = subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.strip()
    assert tags["mlflow.source.git.commit"].split("-")[0] == head  # "-dirty" when edited

    artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"centroids.png", "confusion_matrix.png", "clusters.json", "confusion_matrix.json"} <= (
        artifacts
    )
    hydra_files = {a.path for a in client.list_artifacts(run.info.run_id, "hydra")}
    assert {"hydra/config.yaml", "hydra/overrides.yaml"} <= hydra_files
    clusters = artifact_json(client, run.info.run_id, "clusters.json")
    rows = [dict(zip(clusters["columns"], row, strict=True)) for row in clusters["data"]]
    assert sum(row["size"] for row in rows) == 55000  # sizes cover the training set
    assert all(row["class"] == str(row["label"]) for row in rows)  # MNIST's classes: digits
    confusion = np.array(
        artifact_json(client, run.info.run_id, "confusion_matrix.json")["confusion_matrix"]
    )
    assert confusion.shape == (10, 10)
    assert np.trace(confusion) / 10000 == pytest.approx(metrics["test_accuracy"])

    contexts = {i.tags[0].value for i in run.inputs.dataset_inputs}
    assert contexts == {"train", "validation", "test"}

    import mlflow

    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'mlflow.db'}")
    model = mlflow.pyfunc.load_model(tags["model_uri"])
    predicted = model.predict(data.features(mnist.x_test))  # it serves [0, 1] floats
    assert float(np.mean(predicted == mnist.y_test)) == pytest.approx(
        metrics["test_accuracy"], abs=2e-4
    )


def check_sweep(client, names: list[str], key: str) -> dict:
    parent, found = sweep_runs(client.search_runs([only_experiment(client)]))
    assert len(found) == len(client.search_runs([only_experiment(client)])) - 1  # no stray run
    children = {r.info.run_name: r for r in found}
    assert sorted(children) == sorted(names)
    assert all(r.info.status == "FINISHED" for r in children.values())
    assert parent.info.status == "FINISHED"
    assert parent.data.metrics["jobs"] == len(names) and parent.data.metrics["failed_jobs"] == 0
    summary = artifact_json(client, parent.info.run_id, "sweep_summary.json")
    table = dict(zip(summary["columns"], zip(*summary["data"], strict=True), strict=True))
    by_value = dict(zip(table[key], table["test_accuracy"], strict=True))
    for name, child in children.items():
        assert by_value[name.split("=", 1)[1]] == child.data.metrics["test_accuracy"]
    assert "sweep_summary.png" in {a.path for a in client.list_artifacts(parent.info.run_id)}
    return children


@pytest.mark.parametrize("launcher", ["basic", "joblib"])
def test_sweep_has_one_parent_and_a_child_per_value(tmp_path, launcher):
    args = ["-m", "k=8,12,16", "steps=2", "tracking.log_model=false"]
    if launcher == "joblib":
        args += ["hydra/launcher=joblib", "hydra.launcher.n_jobs=2"]
    result = run_cli(args, tmp_path)
    assert result.returncode == 0, result.stderr
    children = check_sweep(client_for(tmp_path), ["k=8", "k=12", "k=16"], "k")
    accuracies = [children[f"k={k}"].data.metrics["test_accuracy"] for k in (8, 12, 16)]
    assert all(0.4 < a < 0.85 for a in accuracies)


def test_a_failing_job_does_not_stop_the_others_and_the_parent_counts_it(tmp_path):
    """k=55001 passes the config checks but not the data's (55,000 training images)."""
    result = run_cli(["-m", "k=55001,9", "steps=2", "tracking.log_model=false"], tmp_path)
    assert result.returncode == 1
    message = "k=55001: more clusters than the 55000 training rows"
    assert message in result.stderr
    runs = runs_by_name(client_for(tmp_path))
    assert runs["k=9"].info.status == "FINISHED"
    assert runs["k=55001"].info.status == "FAILED"
    assert message in runs["k=55001"].data.tags["error"]
    assert runs["k=55001"].data.tags["kmeans_exp.swept.k"] == "55001"
    parent = next(r for n, r in runs.items() if n.startswith("sweep"))
    assert parent.info.status == "FAILED"
    assert parent.data.metrics["jobs"] == 2 and parent.data.metrics["failed_jobs"] == 1


def test_seed_tutorial_preset_reproduces_the_tutorial(tmp_path):
    result = run_cli(["experiments=seed_tutorial", "tracking.log_model=false"], tmp_path)
    assert result.returncode == 0, result.stderr
    client = client_for(tmp_path)
    (run,) = runs_by_name(client).values()
    assert run.data.params["init"] == "random" and run.data.params["use_mini_batch"] == "True"
    assert len(client.get_metric_history(run.info.run_id, "avg_distance")) == 50
    low, high = reference.TUTORIAL_BAND  # printed by benchmarks/accuracy_bands.py
    assert low <= run.data.metrics["test_accuracy"] <= high


def test_k_sweep_preset_shortened(tmp_path):
    args = ["-m", "experiments=k_sweep", "k=10,20", "steps=2"]  # the command line wins
    result = run_cli([*args, "tracking.log_model=false"], tmp_path)
    assert result.returncode == 0, result.stderr
    check_sweep(client_for(tmp_path), ["k=10", "k=20"], "k")


def test_metric_comparison_preset_shortened(tmp_path):
    args = ["-m", "experiments=metric_comparison", "steps=2", "tracking.log_model=false"]
    result = run_cli(args, tmp_path)
    assert result.returncode == 0, result.stderr
    children = check_sweep(
        client_for(tmp_path),
        ["distance_metric=cosine", "distance_metric=squared_euclidean"],
        "distance_metric",
    )
    assert children["distance_metric=cosine"].data.params["distance_metric"] == "cosine"


def test_k_selection_preset_shortened_groups_seeds_and_suggests_a_k(tmp_path):
    args = ["-m", "experiments=k_selection", "k=5,8", "seed=0,1", "steps=2"]
    result = run_cli(args, tmp_path)
    assert result.returncode == 0, result.stderr
    client = client_for(tmp_path)
    parent, children = sweep_runs(client.search_runs([only_experiment(client)]))
    assert len(children) == 4 and all(r.info.status == "FINISHED" for r in children)
    for child in children:  # the swept values travel as tags, not in the run name
        assert child.data.tags["kmeans_exp.swept.k"] == child.data.params["k"]
        assert child.data.tags["kmeans_exp.swept.seed"] == child.data.params["seed"]

    artifacts = {a.path for a in client.list_artifacts(parent.info.run_id)}
    assert {"k_selection.png", "sweep_groups.json", "sweep_groups.png"} <= artifacts
    groups = artifact_json(client, parent.info.run_id, "sweep_groups.json")
    table = [dict(zip(groups["columns"], row, strict=True)) for row in groups["data"]]
    assert [g["k"] for g in table] == ["5", "8"] and [g["n"] for g in table] == [2, 2]
    for group in table:
        members = [c for c in children if c.data.params["k"] == group["k"]]
        for metric in ("val_accuracy", "test_nmi", "test_matched_accuracy", "inertia"):
            values = [c.data.metrics[metric] for c in members]
            assert group[f"{metric}_mean"] == pytest.approx(np.mean(values))
            assert group[f"{metric}_std"] == pytest.approx(np.std(values, ddof=1))

    best = max(table, key=lambda g: g["val_accuracy_mean"])
    tags = parent.data.tags
    assert tags["best_group"] == f"k={best['k']}"
    best_run = client.get_run(tags["best_run_id"])
    assert best_run.data.params["k"] == best["k"]
    silhouettes = {
        k: np.mean([c.data.metrics["silhouette"] for c in children if c.data.params["k"] == k])
        for k in ("5", "8")
    }
    assert tags["suggested_k"] == max(silhouettes, key=silhouettes.get)


def test_k_search_preset_shortened_tags_the_best_trial_by_the_optimized_metric(tmp_path):
    pytest.importorskip("hydra_plugins.hydra_optuna_sweeper", reason="pip install -e '.[optuna]'")
    args = ["-m", "experiments=k_search", "hydra.sweeper.n_trials=3", "k=int(interval(5,12))"]
    result = run_cli([*args, "steps=2", "optimized_metric=val_nmi"], tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    client = client_for(tmp_path)
    parent, trials = sweep_runs(client.search_runs([only_experiment(client)]))
    assert len(trials) == 3 and all(r.info.status == "FINISHED" for r in trials)
    assert all(5 <= int(r.data.params["k"]) <= 12 for r in trials)
    best = max(trials, key=lambda r: r.data.metrics["val_nmi"])
    tags = parent.data.tags
    assert tags["kmeans_exp.optimized_metric"] == "val_nmi"
    assert (
        client.get_run(tags["best_run_id"]).data.metrics["val_nmi"] == best.data.metrics["val_nmi"]
    )
    assert tags["best_params"] == f"k={best.data.params['k']}"
    assert parent.data.metrics["best_val_nmi"] == best.data.metrics["val_nmi"]
    assert parent.data.params["sweep.k"] == "int(interval(5,12))"
    assert "Best parameters" in result.stdout + result.stderr  # Optuna's own report


def test_a_sweep_with_tracking_off_runs_and_logs_nothing(tmp_path):
    result = run_cli(["-m", "k=5,6", "steps=1", "tracking.enabled=false"], tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.count("accuracy: train") == 2 and "MLflow run" not in result.stdout
    assert not (tmp_path / "mlflow.db").exists() and not (tmp_path / "mlruns").exists()
