"""Faults as users meet them, through the CLI: signals, dead servers, bad data, reproducibility."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import client_for, run_cli, sweep_runs, user_env

pytestmark = pytest.mark.slow


def default_signals() -> None:
    """In the child: SIGINT at its default disposition. A shell's background job starts with
    SIGINT ignored, and Python would inherit that; the test checks our handling, not the
    caller's shell."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def start_cli(args: list[str], cwd: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "kmeans_exp", *args],
        cwd=cwd,
        env=user_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        preexec_fn=default_signals,
    )


def wait_for_line(proc: subprocess.Popen, needle: str, timeout: float = 180) -> list[str]:
    seen: list[str] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line and proc.poll() is not None:
            break
        seen.append(line)
        if needle in line:
            return seen
    proc.kill()
    raise AssertionError(f"never saw {needle!r}:\n{''.join(seen)[-3000:]}")


@pytest.mark.parametrize("signum, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_signal_during_training_ends_the_run_killed_with_its_metrics(tmp_path, signum, code):
    proc = start_cli(["steps=400", "tracking.log_model=false"], tmp_path)
    wait_for_line(proc, "step 80/400")
    proc.send_signal(signum)
    output = proc.communicate(timeout=120)[0]
    assert proc.returncode == code, output[-2000:]
    assert "the MLflow run ended KILLED" in output
    client = client_for(tmp_path)
    (run,) = client.search_runs([client.get_experiment_by_name("kmeans_exp").experiment_id])
    assert run.info.status == "KILLED"
    steps = [m.step for m in client.get_metric_history(run.info.run_id, "avg_distance")]
    assert 80 <= len(steps) < 400 and steps == list(range(1, len(steps) + 1))


def test_sweep_parent_records_a_killed_job(tmp_path):
    proc = start_cli(["-m", "k=5,6", "steps=400", "tracking.log_model=false"], tmp_path)
    wait_for_line(proc, "step 80/400")
    proc.send_signal(signal.SIGTERM)
    proc.communicate(timeout=120)
    assert proc.returncode != 0
    client = client_for(tmp_path)
    runs = client.search_runs([client.get_experiment_by_name("kmeans_exp").experiment_id])
    by_name = {r.info.run_name: r for r in runs}
    assert by_name["k=5"].info.status == "KILLED"
    assert "k=6" not in by_name  # the sweep stopped
    parent = next(r for n, r in by_name.items() if n.startswith("sweep"))
    assert parent.info.status == "KILLED"
    assert parent.data.metrics["killed_jobs"] == 1 and parent.data.metrics["jobs"] == 1


@pytest.mark.parametrize(
    "uri, answer",
    [
        ("http://127.0.0.1:{port}", "no MLflow server answered"),
        ("postgresql://nobody@127.0.0.1:{port}/db", "no database server answered"),
    ],
    ids=["http", "postgresql"],
)
def test_dead_tracking_store_fails_fast_before_training(tmp_path, uri, answer):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    uri = uri.format(port=port)
    result = run_cli([], tmp_path, env={"MLFLOW_TRACKING_URI": uri}, timeout=60)
    assert result.returncode == 1
    (line,) = [line for line in result.stderr.splitlines() if "tracking URI" in line]
    assert line.startswith(f"tracking URI {uri}: {answer}")
    assert "Traceback" not in result.stderr and "step 1" not in result.stdout


@pytest.mark.parametrize(
    "args, expected",
    [
        (["data.source=idx", "data.path={tmp}"], "missing IDX file train-images-idx3-ubyte"),
        (["tracking.uri=sqlite:///{tmp}/no/such/dir/mlflow.db"], "/no/such/dir does not exist"),
    ],
    ids=["empty-idx-directory", "store-directory-missing"],
)
def test_bad_data_or_store_gives_one_line_and_no_run(tmp_path, args, expected):
    result = run_cli([a.format(tmp=tmp_path) for a in args], tmp_path)
    assert result.returncode == 1
    assert expected in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "mlflow.db").exists()


def histories(tmp_path: Path) -> list[tuple]:
    client = client_for(tmp_path)
    runs = client.search_runs([client.get_experiment_by_name("kmeans_exp").experiment_id])
    out = []
    for run in runs:
        if "mlflow.parentRunId" not in run.data.tags:
            continue
        history = [m.value for m in client.get_metric_history(run.info.run_id, "avg_distance")]
        metrics = run.data.metrics
        out.append((tuple(history), metrics["test_accuracy"], metrics["val_accuracy"]))
    return out


def test_same_config_and_seed_give_identical_metrics_across_runs_and_launchers(tmp_path):
    args = [
        "-m",
        "seed=3,3",
        "k=7",
        "steps=6",
        "use_mini_batch=true",
        "batch_size=512",
        "tracking.log_model=false",
    ]
    basic, joblib = tmp_path / "basic", tmp_path / "joblib"
    basic.mkdir()
    joblib.mkdir()
    assert run_cli(args, basic).returncode == 0
    assert (
        run_cli([*args, "hydra/launcher=joblib", "hydra.launcher.n_jobs=2"], joblib).returncode == 0
    )
    runs = histories(basic) + histories(joblib)
    assert len(runs) == 4 and len(runs[0][0]) == 6
    assert all(run == runs[0] for run in runs), runs


def test_an_interrupted_sweep_resumed_with_skip_finished_trains_only_the_missing_jobs(tmp_path):
    args = ["-m", "k=5,6,7", "steps=200", "tracking.log_model=false"]
    proc = start_cli(args, tmp_path)
    wait_for_line(proc, "step 40/200")  # the first job (k=5) ...
    wait_for_line(proc, "step 40/200")  # ... has finished: the second is training
    proc.send_signal(signal.SIGTERM)
    proc.communicate(timeout=120)
    client = client_for(tmp_path)
    experiment_id = client.get_experiment_by_name("kmeans_exp").experiment_id
    first = {r.info.run_name: r for r in client.search_runs([experiment_id])}
    assert first["k=5"].info.status == "FINISHED" and first["k=6"].info.status == "KILLED"
    assert "k=7" not in first

    result = run_cli([*args, "tracking.skip_finished=true"], tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"already FINISHED in MLflow run {first['k=5'].info.run_id}" in result.stdout
    runs = client.search_runs([experiment_id])
    trained = [r for r in runs if "train_seconds" in r.data.metrics]
    assert sorted(r.data.params["k"] for r in trained) == ["5", "6", "7"]  # k=5 once, not twice
    assert len({r.data.tags["kmeans_exp.config_hash"] for r in trained}) == 3

    parents = [r for r in runs if r.data.tags.get("kmeans_exp.sweep") == "parent"]
    resumed = max(parents, key=lambda r: r.info.start_time)
    assert resumed.info.status == "FINISHED" and resumed.data.metrics["jobs"] == 3
    path = client.download_artifacts(resumed.info.run_id, "sweep_summary.json")
    summary = json.loads(Path(path).read_text())
    rows = [dict(zip(summary["columns"], row, strict=True)) for row in summary["data"]]
    by_k = {row["k"]: row for row in rows}
    assert sorted(by_k) == ["5", "6", "7"]
    assert by_k["5"]["run_id"] == first["k=5"].info.run_id and by_k["5"]["reused"] is True
    assert by_k["5"]["test_accuracy"] == first["k=5"].data.metrics["test_accuracy"]
    for k in ("6", "7"):  # trained now, as children of the new parent
        child = client.get_run(by_k[k]["run_id"])
        assert child.data.tags["mlflow.parentRunId"] == resumed.info.run_id
        assert by_k[k]["reused"] is False and child.info.status == "FINISHED"


def test_a_silhouette_sweep_without_validation_ends_its_parent_and_reports_the_score(tmp_path):
    """The command that left its parent RUNNING with exit 0: now the parent ends FINISHED."""
    args = [
        "-m",
        "seed=0,1",
        "k=5",
        "steps=2",
        "data.validation_size=0",
        "optimized_metric=silhouette",
        "tracking.log_model=false",
    ]
    result = run_cli(args, tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "raised" not in result.stderr  # no callback warning from Hydra
    client = client_for(tmp_path)
    runs = client.search_runs([client.get_experiment_by_name("kmeans_exp").experiment_id])
    parent, children = sweep_runs(runs)
    assert parent.info.status == "FINISHED"
    silhouettes = [r.data.metrics["silhouette"] for r in children]
    assert len(children) == 2 and all(0.0 < s < 1.0 for s in silhouettes)
    assert parent.data.metrics["best_silhouette_mean"] == pytest.approx(sum(silhouettes) / 2)
    assert "best_val_accuracy_mean" not in parent.data.metrics


def test_runs_left_running_by_kill_9_are_marked_killed_by_the_next_run(tmp_path):
    proc = start_cli(["steps=400", "tracking.log_model=false"], tmp_path)
    wait_for_line(proc, "step 40/400")
    proc.kill()  # SIGKILL: nothing in the process can close its run
    proc.communicate(timeout=60)
    client = client_for(tmp_path)
    experiment_id = client.get_experiment_by_name("kmeans_exp").experiment_id
    (orphan,) = client.search_runs([experiment_id])
    assert orphan.info.status == "RUNNING"
    assert orphan.data.tags["kmeans_exp.pid"] == str(proc.pid)

    result = run_cli(["k=5", "steps=2", "tracking.log_model=false"], tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"marked 1 run(s) KILLED whose process on {socket.gethostname()} is gone" in (
        result.stdout + result.stderr
    )
    orphan = client.get_run(orphan.info.run_id)
    assert orphan.info.status == "KILLED"
    assert f"process {proc.pid} on" in orphan.data.tags["kmeans_exp.killed_reason"]
    statuses = sorted(r.info.status for r in client.search_runs([experiment_id]))
    assert statuses == ["FINISHED", "KILLED"]
