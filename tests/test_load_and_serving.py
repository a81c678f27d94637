"""Load (10 sweep jobs, 2 at a time: SQLite, a tracking server, PostgreSQL) and serving."""

from __future__ import annotations

import json
import math
import os
import sqlite3
import urllib.error
import urllib.request

import mlflow
import numpy as np
import pytest
from conftest import client_for, run_cli, sweep_runs
from servers import PG_BIN, free_port, mlflow_process, postgres_database, tracking_server

from kmeans_exp import data

pytestmark = pytest.mark.slow

JOBS = 10
STEPS = 3
SWEEP = [
    "-m",
    f"seed=range(0,{JOBS})",
    "k=5",
    f"steps={STEPS}",
    "tracking.log_model=false",
    "hydra/launcher=joblib",
    "hydra.launcher.n_jobs=2",
]


def check_children_of_the_sweep(client) -> None:
    experiment = client.get_experiment_by_name("kmeans_exp")
    runs = client.search_runs([experiment.experiment_id], max_results=1000)
    parent, children = sweep_runs(runs)
    assert parent.info.status == "FINISHED" and len(children) == JOBS == len(runs) - 1
    assert sorted(r.info.run_name for r in children) == sorted(f"seed={i}" for i in range(JOBS))
    assert all(r.info.status == "FINISHED" for r in children)
    for child in children:
        steps = [m.step for m in client.get_metric_history(child.info.run_id, "avg_distance")]
        assert steps == list(range(1, STEPS + 1))  # complete, no duplicates
    assert parent.data.metrics["jobs"] == JOBS


def test_parallel_jobs_on_a_fresh_sqlite_store(tmp_path):
    result = run_cli(SWEEP, tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    check_children_of_the_sweep(client_for(tmp_path))
    with sqlite3.connect(tmp_path / "mlflow.db") as db:
        (rows,) = db.execute("SELECT COUNT(*) FROM metrics WHERE key = 'avg_distance'").fetchone()
    assert rows == JOBS * STEPS


def test_parallel_jobs_against_a_tracking_server(tmp_path):
    with tracking_server(tmp_path) as url:
        result = run_cli(SWEEP, tmp_path, env={"MLFLOW_TRACKING_URI": url})
        assert result.returncode == 0, result.stderr[-3000:]
        check_children_of_the_sweep(mlflow.MlflowClient(url))
    assert not (tmp_path / "mlflow.db").exists()  # everything went to the server


@pytest.mark.skipif(
    os.geteuid() != 0 or not PG_BIN.is_dir(),
    reason="needs root (runuser) and Debian's postgresql (.ci/run installs it)",
)
def test_parallel_jobs_against_a_postgresql_backed_server(tmp_path):
    """The README's cluster recipe, for real: mlflow server on PostgreSQL, a joblib sweep."""
    psycopg = pytest.importorskip("psycopg", reason="pip install -e '.[postgres]'")
    with postgres_database() as database, tracking_server(tmp_path, database) as url:
        result = run_cli(SWEEP, tmp_path, env={"MLFLOW_TRACKING_URI": url})
        assert result.returncode == 0, result.stderr[-3000:]
        check_children_of_the_sweep(mlflow.MlflowClient(url))
        with psycopg.connect(database) as db:  # the rows really are in PostgreSQL
            query = "SELECT COUNT(*) FROM metrics WHERE key = 'avg_distance'"
            assert db.execute(query).fetchone()[0] == JOBS * STEPS
    assert not (tmp_path / "mlflow.db").exists()


def test_served_model_answers_like_the_loaded_one(tmp_path, mnist):
    assert run_cli(["k=10", "steps=3"], tmp_path).returncode == 0
    store = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = client_for(tmp_path)
    (run,) = client.search_runs([client.get_experiment_by_name("kmeans_exp").experiment_id])
    model_uri = run.data.tags["model_uri"]
    mlflow.set_tracking_uri(store)
    expected = mlflow.pyfunc.load_model(model_uri).predict(data.features(mnist.x_test[:200]))

    port = free_port()
    args = [
        "models",
        "serve",
        "-m",
        model_uri,
        "--env-manager",
        "local",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
    ]
    with mlflow_process(
        args, f"http://127.0.0.1:{port}/ping", tmp_path, {"MLFLOW_TRACKING_URI": store}
    ):
        served = np.asarray(invoke(port, data.features(mnist.x_test[:200]).tolist()))
        # Bad rows: a 400 whose message names the problem and the expected input.
        good = data.features(mnist.x_test[:1])[0].tolist()
        raw = mnist.x_test[1].astype(float).tolist()  # 0-255, not divided by 255
        bad = {
            "nan": ([good, [math.nan] * 784], "row 1 holds NaN or inf: expected finite values"),
            "inf": ([[math.inf, *good[1:]]], "row 0 holds NaN or inf"),
            "300": ([[300.0] * 784], "expected pixels divided by 255, in [0, 1]"),
            "raw": ([raw], "(raw 0-255 pixels?): expected pixels divided by 255"),
        }
        for name, (rows, message) in bad.items():
            with pytest.raises(urllib.error.HTTPError) as refused:
                invoke(port, rows)
            assert refused.value.code == 400, name
            assert message in refused.value.read().decode(), name
        assert invoke(port, [good]) == [expected[0]]  # still answers
    np.testing.assert_array_equal(served, expected)
    assert np.mean(served == mnist.y_test[:200]) > 0.4  # k=10 after 3 steps: about 0.5
    with pytest.raises(ValueError, match="row 0 holds values in"):
        mlflow.pyfunc.load_model(model_uri).predict(mnist.x_test[:1].astype(np.float32))


def invoke(port: int, rows: list) -> list:
    """The predictions of the model served on ``port`` for ``rows`` (NaN and inf written as
    JSON's NaN and Infinity, which MLflow's server reads)."""
    body = json.dumps({"inputs": rows}).encode()
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/invocations", body, {"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=60) as resp:
        return json.loads(resp.read())["predictions"]
