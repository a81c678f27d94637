"""``python -m kmeans_exp.report`` against a real sweep, in every format, checked against MLflow."""

from __future__ import annotations

import csv
import io
import json

import mlflow
import pytest
from conftest import run_cli

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("report")]  # one sweep, one worker


def report(args: list[str], cwd, env: dict[str, str] | None = None):
    return run_cli(args, cwd, timeout=120, env=env, module="kmeans_exp.report")


@pytest.fixture(scope="module")
def swept(tmp_path_factory):
    """Two sweeps in one store: over k alone, then over k and seed."""
    cwd = tmp_path_factory.mktemp("report")
    common = ["steps=2", "tracking.log_model=false", f"tracking.uri=sqlite:///{cwd / 'm.db'}"]
    for args in (["-m", "k=5,7", *common], ["-m", "k=5,7", "seed=0,1", *common]):
        result = run_cli(args, cwd)
        assert result.returncode == 0, result.stderr[-3000:]
    client = mlflow.MlflowClient(f"sqlite:///{cwd / 'm.db'}")
    runs = client.search_runs([client.get_experiment_by_name("kmeans_exp").experiment_id])
    parents = sorted(
        (r for r in runs if r.data.tags.get("kmeans_exp.sweep") == "parent"),
        key=lambda r: r.info.start_time,
    )
    children = {
        p.info.run_id: [r for r in runs if r.data.tags.get("mlflow.parentRunId") == p.info.run_id]
        for p in parents
    }
    return cwd, [p.info.run_id for p in parents], children


def test_json_rows_match_the_children_and_mark_the_best(swept):
    cwd, (by_k, _), children = swept
    done = report([by_k, "--format", "json", "--tracking-uri", f"sqlite:///{cwd / 'm.db'}"], cwd)
    assert done.returncode == 0, done.stderr
    rows = json.loads(done.stdout)["rows"]
    runs = {r.info.run_id: r for r in children[by_k]}
    assert sorted(row["k"] for row in rows) == ["5", "7"]
    for row in rows:
        run = runs[row["run_id"]]
        assert row["k"] == run.data.params["k"] and row["status"] == "FINISHED"
        for metric in ("val_accuracy", "test_accuracy", "test_nmi", "inertia", "train_seconds"):
            assert row[metric] == run.data.metrics[metric]
    best = max(children[by_k], key=lambda r: r.data.metrics["val_accuracy"])
    assert [row["run_id"] for row in rows if row["best"]] == [best.info.run_id]


def test_seed_sweeps_report_groups_in_csv(swept):
    cwd, (_, seeds), children = swept
    env = {"MLFLOW_TRACKING_URI": f"sqlite:///{cwd / 'm.db'}"}
    done = report(["--format", "csv"], cwd, env)  # no id: the newest sweep, the one over seeds
    assert done.returncode == 0, done.stderr
    rows = list(csv.DictReader(io.StringIO(done.stdout)))
    assert [(row["k"], row["n"]) for row in rows] == [("5", "2"), ("7", "2")]
    for row in rows:
        members = [r for r in children[seeds] if r.data.params["k"] == row["k"]]
        mean = sum(r.data.metrics["test_accuracy"] for r in members) / 2
        assert float(row["test_accuracy_mean"]) == pytest.approx(mean)
        assert row["status"] == "2/2 FINISHED"


def test_table_and_markdown_show_the_same_numbers(swept):
    cwd, (by_k, _), children = swept
    uri = ["--tracking-uri", f"sqlite:///{cwd / 'm.db'}"]
    table = report([by_k, *uri], cwd)
    markdown = report([by_k, "--format", "markdown", *uri], cwd)
    assert table.returncode == 0 and markdown.returncode == 0
    assert markdown.stdout.startswith("| k | val_accuracy | test_accuracy |")
    for run in children[by_k]:
        accuracy = f"{run.data.metrics['test_accuracy']:.4f}"
        assert accuracy in table.stdout and accuracy in markdown.stdout
        assert run.info.run_id in table.stdout


def test_nothing_to_report_is_one_line(tmp_path):
    done = report([], tmp_path)
    assert done.returncode == 1
    assert done.stderr.strip() == (
        f"kmeans_exp.report: nothing to report: no tracking store at sqlite:///{tmp_path}/mlflow.db"
    )
    assert not (tmp_path / "mlflow.db").exists()
