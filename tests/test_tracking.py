"""The MLflow side on its own: store checks, run end states, the sweep hand-off."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time

import mlflow
import pytest

from kmeans_exp import tracking
from kmeans_exp.errors import TrackingError


@pytest.fixture()
def store(tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    experiment_id = tracking.setup_experiment(uri, "unit")
    yield uri, experiment_id
    mlflow.set_tracking_uri(os.environ["MLFLOW_TRACKING_URI"])


def status_of(uri: str, run_id: str) -> str:
    return mlflow.MlflowClient(uri).get_run(run_id).info.status


def test_run_ends_finished_failed_or_killed_keeping_its_metrics(store):
    uri, experiment_id = store
    with tracking.mlflow_run(experiment_id, "ok") as run:
        mlflow.log_metric("m", 1.0)
    assert status_of(uri, run.info.run_id) == "FINISHED"

    with pytest.raises(ZeroDivisionError), tracking.mlflow_run(experiment_id, "boom") as run:
        mlflow.log_metric("m", 2.0, step=1, synchronous=False)
        _ = 1 / 0
    assert status_of(uri, run.info.run_id) == "FAILED"
    assert mlflow.MlflowClient(uri).get_run(run.info.run_id).data.metrics["m"] == 2.0

    with pytest.raises(KeyboardInterrupt), tracking.mlflow_run(experiment_id, "ctrl-c") as run:
        raise KeyboardInterrupt
    assert status_of(uri, run.info.run_id) == "KILLED"


def test_sigterm_ends_the_run_killed_and_restores_the_handler(store):
    uri, experiment_id = store
    before = signal.getsignal(signal.SIGTERM)
    with pytest.raises(tracking.Terminated), tracking.mlflow_run(experiment_id, "term") as run:
        for step in range(3):
            mlflow.log_metric("avg_distance", 0.5 - step / 10, step=step + 1, synchronous=False)
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(5)  # the signal interrupts this
    assert status_of(uri, run.info.run_id) == "KILLED"
    history = mlflow.MlflowClient(uri).get_metric_history(run.info.run_id, "avg_distance")
    assert len(history) == 3
    assert signal.getsignal(signal.SIGTERM) == before


def test_dead_server_fails_fast_with_one_line():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: nothing listens there
    with pytest.raises(TrackingError, match=f"http://127.0.0.1:{port}: no MLflow server answered"):
        tracking.check_store(f"http://127.0.0.1:{port}")


def test_silent_server_times_out():
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)  # accepts the connection, never answers
        uri = f"http://127.0.0.1:{listener.getsockname()[1]}"
        with pytest.raises(TrackingError, match="within 1 s"):  # the timeout, not a hang
            tracking.check_store(uri, timeout_s=1.0)


def test_unusable_sqlite_locations(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    with pytest.raises(TrackingError, match="does not exist"):
        tracking.check_store(f"sqlite:///{blocker / 'mlflow.db'}")
    if os.geteuid() != 0:  # root may write anywhere
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o500)
        with pytest.raises(TrackingError, match="cannot write"):
            tracking.check_store(f"sqlite:///{locked / 'mlflow.db'}")


def test_resolve_uri_prefers_config_then_environment_then_default(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI")
    assert tracking.resolve_uri(None) == f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:5999")
    assert tracking.resolve_uri(None) == "http://127.0.0.1:5999"
    assert tracking.resolve_uri("sqlite:///x.db") == f"sqlite:///{tmp_path / 'x.db'}"


def test_sweep_context_round_trips_through_the_environment(monkeypatch):
    context = tracking.SweepContext("sqlite:////tmp/m.db", "3", "abc", ["k", "seed"])
    monkeypatch.setenv(tracking.SWEEP_ENV, context.to_env())
    assert tracking.SweepContext.from_env() == context
    monkeypatch.setenv(tracking.SWEEP_ENV, "{not json")
    with pytest.raises(TrackingError, match="KMEANS_EXP_SWEEP"):
        tracking.SweepContext.from_env()


def test_dataset_digest_is_mlflows_without_copying_the_data(mnist):
    """``numpy_digest`` gives ``mlflow.data.from_numpy``'s own digest (it hashes the first
    10,000 values and the shapes), for the logged splits."""
    from mlflow.data.digest_utils import compute_numpy_digest

    from kmeans_exp.tracking.run import numpy_digest

    for x, y in ((mnist.x_train, mnist.y_train), (mnist.x_test[:7], mnist.y_test[:7])):
        assert numpy_digest(x, y) == compute_numpy_digest(x, y)
    assert numpy_digest(mnist.x_test, mnist.y_test) != numpy_digest(mnist.x_val, mnist.y_val)


def test_dead_database_store_fails_fast_with_one_line_naming_it():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    uri = f"postgresql://nobody:secret@127.0.0.1:{port}/db"
    start = time.monotonic()
    with pytest.raises(TrackingError) as error:
        tracking.open_store(uri, "kmeans_exp")
    message = str(error.value)
    assert f"no database server answered at 127.0.0.1:{port}" in message
    assert f"postgresql://nobody:***@127.0.0.1:{port}/db" in message  # the password is not shown
    assert "secret" not in message and "\n" not in message
    assert time.monotonic() - start < 60  # MLflow alone retries for ~107 s


def test_a_summary_that_fails_still_ends_the_parent_failed_with_the_error(store, monkeypatch):
    uri, experiment_id = store
    sweep = tracking.open_parent(
        tracking.Store(uri, experiment_id), "sweep", {}, {"k": "5,6"}, "val_accuracy"
    )

    def broken(*args):
        raise RuntimeError("no figure today")

    monkeypatch.setattr(tracking.parent_run, "_log_summary", broken)
    with pytest.raises(TrackingError, match="its summary failed .RuntimeError: no figure today"):
        tracking.close_parent(sweep, interrupted=False)
    parent = mlflow.MlflowClient(uri).get_run(sweep.parent_run_id)
    assert parent.info.status == "FAILED"
    assert parent.data.tags["error"] == "RuntimeError: no figure today"


def test_a_summary_without_validation_scores_reports_the_score_that_chose(store):
    """The fault of a silhouette sweep with no validation split: the parent stayed RUNNING."""
    uri, experiment_id = store
    client = mlflow.MlflowClient(uri)
    sweep = tracking.open_parent(
        tracking.Store(uri, experiment_id), "sweep", {}, {"seed": "0,1"}, "silhouette"
    )
    for seed, silhouette in (("0", 0.10), ("1", 0.14)):
        tags = {"mlflow.parentRunId": sweep.parent_run_id, "kmeans_exp.swept.seed": seed}
        run = client.create_run(experiment_id, tags=tags)
        client.log_metric(run.info.run_id, "silhouette", silhouette)
        client.log_metric(run.info.run_id, "test_accuracy", 0.5)
        client.set_terminated(run.info.run_id, "FINISHED")
    assert tracking.close_parent(sweep, interrupted=False) == "FINISHED"
    parent = client.get_run(sweep.parent_run_id)
    assert parent.data.metrics["best_silhouette_mean"] == pytest.approx(0.12)
    assert parent.data.metrics["best_test_accuracy_mean"] == pytest.approx(0.5)
    assert parent.data.metrics["best_silhouette"] == pytest.approx(0.14)
    assert "best_val_accuracy_mean" not in parent.data.metrics
    assert parent.data.tags["best_group"] == "all"


def test_runs_of_dead_processes_on_this_host_end_killed_and_no_others(store):
    uri, experiment_id = store
    client = mlflow.MlflowClient(uri)
    gone = subprocess.Popen(["true"])
    gone.wait()
    host = socket.gethostname()
    mine = tracking.liveness.process_tags()
    runs = {
        "dead": {"kmeans_exp.host": host, "kmeans_exp.pid": str(gone.pid)},
        "reused pid": {**mine, "kmeans_exp.process_start": "1"},  # this pid, another start
        "alive": mine,
        "other host": {"kmeans_exp.host": "elsewhere", "kmeans_exp.pid": str(gone.pid)},
        "untagged": {},
    }
    ids = {
        name: client.create_run(experiment_id, tags=tags).info.run_id for name, tags in runs.items()
    }
    tracking.setup_experiment(uri, "unit")  # what a new run or sweep does first
    status = {name: client.get_run(run_id).info.status for name, run_id in ids.items()}
    assert status == {
        "dead": "KILLED",
        "reused pid": "KILLED",
        "alive": "RUNNING",
        "other host": "RUNNING",
        "untagged": "RUNNING",
    }
    reason = client.get_run(ids["dead"]).data.tags["kmeans_exp.killed_reason"]
    assert reason.startswith(f"process {gone.pid} on {host} ended without closing this run")
