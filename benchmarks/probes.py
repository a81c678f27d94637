"""What this engine and the command line cost: steps, scaling, metrics, sweeps, memory, start-up."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from common import BenchData, K, median_spread


def ours_full_batch(x: np.ndarray, metric: str, iters: int, repeats: int) -> dict:
    from kmeans_exp.kmeans import KMeans

    KMeans(K, distance_metric=metric, init="random").fit(x, 2)  # compile once
    per_iter = []
    for r in range(repeats):
        model = KMeans(K, distance_metric=metric, init="random", seed=r).fit(x, iters)
        per_iter.append(float(np.median([s.seconds for s in model.history_])))
    return {"per_iter_s": median_spread(per_iter), "model": model}


def ours_mini_batch(x: np.ndarray, metric: str, batch: int, steps: int, repeats: int) -> dict:
    from kmeans_exp.kmeans import KMeans

    def make(seed: int) -> KMeans:
        return KMeans(
            K,
            distance_metric=metric,
            init="random",
            use_mini_batch=True,
            batch_size=batch,
            seed=seed,
        )

    make(0).fit(x, 2)
    per_step = []
    for r in range(repeats):
        model = make(r).fit(x, steps)
        per_step.append(float(np.mean([s.seconds for s in model.history_])))
    return {"per_step_s": median_spread(per_step)}


def ours_tutorial(x: np.ndarray, steps: int) -> dict:
    """``experiments=seed_tutorial`` training: init + compilation + whole-set steps."""
    from kmeans_exp.kmeans import KMeans

    start = time.perf_counter()
    model = KMeans(K, init="random", use_mini_batch=True, batch_size=None, seed=0).fit(x, steps)
    total = time.perf_counter() - start
    step = float(np.median([s.seconds for s in model.history_[1:]]))
    return {"total_s": total, "per_step_s": step, "model": model}


def scaling(x_full: np.ndarray, ks: list[int], ns: list[int], iters: int) -> list[dict]:
    """Full-batch cost per point-centre pair over n and k; a cell 1.5x the first is flagged."""
    from kmeans_exp.kmeans import KMeans

    rows = []
    for n in ns:
        for k in ks:
            model = KMeans(k, init="random", seed=0).fit(x_full[:n], iters + 1)
            per_iter = float(np.median([s.seconds for s in model.history_[1:]]))
            rows.append(
                {
                    "n": n,
                    "k": k,
                    "per_iter_s": per_iter,
                    "ns_per_point_centre": per_iter / (n * k) * 1e9,
                }
            )
    base = rows[0]["ns_per_point_centre"]
    for row in rows:
        row["flag"] = row["ns_per_point_centre"] > 1.5 * base
    return rows


def metrics_cost(bench: BenchData, repeats: int) -> dict:
    """Seconds for the clustering scores a run adds (NMI, ARI, AMI, matched accuracy on the
    test split, NMI on a validation-sized split, silhouette on its sample), at k=25."""
    from kmeans_exp import evaluate
    from kmeans_exp.kmeans import KMeans

    model = KMeans(K, seed=0).fit(bench.x, 5)
    test_idx = model.predict(bench.x_test)
    val_idx, y_val = test_idx[:5000], bench.y_test[:5000]

    def scores() -> None:
        evaluate.partition_scores(bench.y_test, test_idx)
        evaluate.nmi(y_val, val_idx)
        evaluate.silhouette(bench.x, model.labels_, "cosine", 0)

    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        scores()
        samples.append(time.perf_counter() - start)
    return {"seconds": median_spread(samples)}


# ``python -m kmeans_exp`` that reports its own peak RSS (VmHWM) at exit. The child's rusage
# would not do: a child forked from this (large) process counts the parent's RSS until exec.
CLI_WITH_PEAK_RSS = r"""
import atexit, runpy, sys
def report():
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            sys.stderr.write("PEAK_RSS_KB " + line.split()[1] + "\n")
atexit.register(report)
sys.argv = ["kmeans_exp", *sys.argv[1:]]
runpy.run_module("kmeans_exp", run_name="__main__", alter_sys=True)
"""


def run_cli(args: list[str], cwd: Path, timeout: float = 1800) -> tuple[float, float]:
    """Run ``python -m kmeans_exp ARGS``; return wall seconds and peak RSS (MB)."""
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-c", CLI_WITH_PEAK_RSS, *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    wall = time.perf_counter() - start
    if done.returncode != 0:
        raise RuntimeError(f"kmeans_exp {' '.join(args)} failed:\n{done.stderr[-2000:]}")
    lines = done.stderr.splitlines()
    peak_kb = next(int(line.split()[1]) for line in lines if line.startswith("PEAK_RSS_KB"))
    return wall, peak_kb / 1024


def sweep_overhead(ks: list[int]) -> dict:
    """Wall time of a sequential ``-m k=...`` sweep beyond its jobs' training and evaluation."""
    import mlflow

    with tempfile.TemporaryDirectory() as tmp:
        wall, _ = run_cli(["-m", f"k={','.join(map(str, ks))}"], Path(tmp))
        client = mlflow.MlflowClient(f"sqlite:///{tmp}/mlflow.db")
        runs = client.search_runs([e.experiment_id for e in client.search_experiments()])
        children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
        parent = next(r for r in runs if "mlflow.parentRunId" not in r.data.tags)
        work = sum(
            r.data.metrics["train_seconds"] + r.data.metrics["eval_seconds"] for r in children
        )
        parent_wall = (parent.info.end_time - parent.info.start_time) / 1000
    jobs = len(children)
    return {
        "ks": ",".join(map(str, ks)),
        "jobs": jobs,
        "wall_s": wall,
        "train_eval_s": work,
        "overhead_per_job_s": (wall - work) / jobs,
        "overhead_per_job_inside_sweep_s": (parent_wall - work) / jobs,
    }


def default_run() -> dict:
    """The default ``python -m kmeans_exp``, on a fresh store: wall time and peak memory."""
    with tempfile.TemporaryDirectory() as tmp:
        wall, peak_mb = run_cli([], Path(tmp))
    return {"wall_s": wall, "max_rss_mb": peak_mb}


STARTUP_PROBE = r"""
import json, time
t0 = time.perf_counter()
import kmeans_exp.app  # hydra, omegaconf, the config schema
t1 = time.perf_counter()
import mlflow
t2 = time.perf_counter()
from kmeans_exp.kmeans import KMeans  # tensorflow
t3 = time.perf_counter()
from kmeans_exp import data
splits = data.split(data.load_raw("bundled", None, "mnist"), 5000)
t4 = time.perf_counter()
model = KMeans(25, seed=0)
xs = model.prepare(splits.x_train)
t5 = time.perf_counter()
model.fit(splits.x_train, 3)
first, later = model.history_[0].seconds, model.history_[2].seconds
print(json.dumps({"python_and_hydra_s": t1 - t0, "mlflow_import_s": t2 - t1,
                  "tensorflow_import_s": t3 - t2, "data_load_s": t4 - t3,
                  "input_prepare_s": t5 - t4, "init_s": model.init_seconds_,
                  "trace_compile_s": first - later, "step_s": later}))
"""


def startup_breakdown() -> dict:
    """Seconds from process start to the first training step, part by part."""
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-c", STARTUP_PROBE],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
        check=True,
    )
    result = json.loads(done.stdout.strip().splitlines()[-1])
    result["process_wall_s"] = time.perf_counter() - start
    return result
