"""What this engine and the command line cost: steps, scaling, metrics, sweeps, memory, start-up."""

from __future__ import annotations

import atexit
import json
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from common import BenchData, K, median_spread


def ours_full_batch(x: np.ndarray, metric: str, iters: int, repeats: int, k: int = K) -> dict:
    from kmeans_exp.engine import KMeans

    KMeans(k, distance_metric=metric, init="random").fit(x, 2)  # compile once
    per_iter = []
    for r in range(repeats):
        model = KMeans(k, distance_metric=metric, init="random", seed=r).fit(x, iters)
        per_iter.append(float(np.median([s.seconds for s in model.history_])))
    return {"per_iter_s": median_spread(per_iter), "model": model}


def pass_parts(bench: BenchData, repeats: int) -> dict:
    """The whole-set cosine pass at k=25 against its two limits, each compiled by XLA: its
    product alone (centres times a float32 chunk of the pass's size, as many times as the pass
    has chunks; two chunks alternate, so the operand sits in cache as the pass's converted chunk
    does; the max over centres so that nothing large is written) and streaming the float32 set
    once in the pass's chunks (a column sum)."""
    from kmeans_exp.engine import passes
    from kmeans_exp.tf_runtime import tf

    x = tf.constant(bench.xn)
    centers = tf.constant(bench.xn[np.random.default_rng(0).integers(0, len(bench.xn), K)])

    def summed_over_chunks(part_fn):
        """A compiled ``(rows, *extra)`` -> the sum of ``part_fn(chunk, *extra)`` over the
        pass's row chunks."""

        def fold(rows, *extra):
            def body(start, size, carry):
                return (carry[0] + part_fn(passes.chunk(rows, start, size), *extra),)

            return passes.fold_rows(rows, body, (tf.constant(0.0),))[0]

        return tf.function(fold, jit_compile=True, autograph=False)

    size = passes.chunk_rows(x.shape[1])
    chunks = -(-x.shape[0] // size)

    @tf.function(jit_compile=True, autograph=False)
    def product(rows, c):
        def body(i, total):
            part = passes.chunk(rows, (i % 2) * size, size)
            dots = tf.matmul(c, part, transpose_b=True)
            return i + 1, total + tf.reduce_sum(tf.reduce_max(dots, 0))

        return tf.while_loop(lambda i, _: i < chunks, body, (tf.constant(0), 0.0))[1]

    stream = summed_over_chunks(lambda rows: tf.reduce_sum(tf.reduce_sum(rows, axis=0)))

    def timed(fn, *args) -> float:
        fn(*args).numpy()  # compile
        samples = []
        for _ in range(repeats * 4):
            start = time.perf_counter()
            fn(*args).numpy()
            samples.append(time.perf_counter() - start)
        return median_spread(samples)["median"]

    whole = ours_full_batch(bench.pixels, "cosine", 10, repeats)["per_iter_s"]["median"]
    product_s, stream_s = timed(product, x, centers), timed(stream, x)
    return {
        "pass_s": whole,
        "product_s": product_s,
        "stream_s": stream_s,
        "rest_over_stream": (whole - product_s) / stream_s,
    }


def ours_mini_batch(x: np.ndarray, metric: str, batch: int, steps: int, repeats: int) -> dict:
    from kmeans_exp.engine import KMeans

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
    from kmeans_exp.engine import KMeans

    start = time.perf_counter()
    model = KMeans(K, init="random", use_mini_batch=True, batch_size=None, seed=0).fit(x, steps)
    total = time.perf_counter() - start
    step = float(np.median([s.seconds for s in model.history_[1:]]))
    return {"total_s": total, "per_step_s": step, "model": model}


def scaling(x_full: np.ndarray, ks: list[int], ns: list[int], iters: int) -> list[dict]:
    """Full-batch cost per point-centre pair over n and k; a cell 1.5x the first is flagged."""
    from kmeans_exp.engine import KMeans

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
    from kmeans_exp.engine import KMeans

    model = KMeans(K, seed=0).fit(bench.pixels, 5)
    test_idx = model.predict(bench.pixels_test)
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


# Child processes report their own peak RSS (VmHWM) at exit. The child's rusage would not do:
# a child forked from this (large) process counts the parent's RSS until exec.
PEAK_RSS_AT_EXIT = r"""
import atexit, sys
def _report_peak_rss():
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            sys.stderr.write("PEAK_RSS_KB " + line.split()[1] + "\n")
atexit.register(_report_peak_rss)
"""
CLI = r"""
import runpy
sys.argv = ["kmeans_exp", *sys.argv[1:]]
runpy.run_module("kmeans_exp", run_name="__main__", alter_sys=True)
"""


# Compiled XLA programs of every CLI run here go to one folder of the benchmark's own, not the
# user's cache: the first default run finds it empty (cold), later runs find their programs.
XLA_CACHE = tempfile.mkdtemp(prefix="kmeans_bench_xla_")
atexit.register(shutil.rmtree, XLA_CACHE, True)


def _child_env() -> dict[str, str]:
    """This environment for a child run, with the benchmark's own compilation cache: not
    ``TF_XLA_FLAGS`` (this process's import of the engine put the user's cache folder there,
    and a flag already in it would win) nor ``MLFLOW_TRACKING_URI``."""
    drop = ("TF_XLA_FLAGS", "MLFLOW_TRACKING_URI")
    env = {k: v for k, v in os.environ.items() if k not in drop}
    env["KMEANS_EXP_XLA_CACHE"] = XLA_CACHE
    return env


def run_python(code: str, args: list[str], cwd: Path, timeout: float = 1800) -> tuple[float, float]:
    """Run ``python -c CODE ARGS`` reporting its peak RSS; return wall seconds and peak RSS (MB)."""
    env = _child_env()
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-c", PEAK_RSS_AT_EXIT + code, *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    wall = time.perf_counter() - start
    if done.returncode != 0:
        raise RuntimeError(f"python {' '.join(args)} failed:\n{done.stderr[-2000:]}")
    lines = done.stderr.splitlines()
    peak_kb = next(int(line.split()[1]) for line in lines if line.startswith("PEAK_RSS_KB"))
    return wall, peak_kb / 1024


def run_cli(args: list[str], cwd: Path, timeout: float = 1800) -> tuple[float, float]:
    """Run ``python -m kmeans_exp ARGS``; return wall seconds and peak RSS (MB)."""
    return run_python(CLI, args, cwd, timeout)


def _sweep_cost(args: list[str]) -> dict:
    """One sequential sweep: its wall time, its jobs' training and evaluation, its parent's."""
    import mlflow

    with tempfile.TemporaryDirectory() as tmp:
        wall, _ = run_cli(["-m", *args], Path(tmp))
        client = mlflow.MlflowClient(f"sqlite:///{tmp}/mlflow.db")
        runs = client.search_runs([e.experiment_id for e in client.search_experiments()])
        children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
        parent = next(r for r in runs if "mlflow.parentRunId" not in r.data.tags)
        work = sum(
            r.data.metrics["train_seconds"] + r.data.metrics["eval_seconds"] for r in children
        )
        parent_wall = (parent.info.end_time - parent.info.start_time) / 1000
    return {"jobs": len(children), "wall_s": wall, "train_eval_s": work, "parent_s": parent_wall}


def sweep_overhead(ks: list[int]) -> dict:
    """Wall time of a sequential ``-m k=...`` sweep beyond its jobs' training and evaluation,
    and what each job beyond those costs: the same sweep over three seeds (two more jobs per k;
    a run's noise is a few seconds, so the difference needs many jobs)."""
    once = _sweep_cost([f"k={','.join(map(str, ks))}"])
    tripled = _sweep_cost([f"k={','.join(map(str, ks))}", "seed=0,1,2"])
    jobs = once["jobs"]
    extra_jobs = tripled["jobs"] - jobs
    extra_overhead = (tripled["wall_s"] - tripled["train_eval_s"]) - (
        once["wall_s"] - once["train_eval_s"]
    )
    return {
        "ks": ",".join(map(str, ks)),
        "jobs": jobs,
        "wall_s": once["wall_s"],
        "train_eval_s": once["train_eval_s"],
        "overhead_per_job_s": (once["wall_s"] - once["train_eval_s"]) / jobs,
        "overhead_per_job_inside_sweep_s": (once["parent_s"] - once["train_eval_s"]) / jobs,
        "jobs_tripled": tripled["jobs"],
        "overhead_per_extra_job_s": extra_overhead / extra_jobs,
    }


def _newest_run(folder: Path):
    """The MLflow client of ``folder``'s store (a CLI run's ``./mlflow.db``) and its newest run."""
    import mlflow

    client = mlflow.MlflowClient(f"sqlite:///{folder}/mlflow.db")
    ids = [e.experiment_id for e in client.search_experiments()]
    return client, client.search_runs(ids, order_by=["attributes.start_time DESC"])[0]


def default_run() -> dict:
    """The default ``python -m kmeans_exp`` twice in one folder: first on a fresh store with no
    compiled programs cached (cold), then again on that store with them (warm)."""
    shutil.rmtree(XLA_CACHE, ignore_errors=True)
    result = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name in ("cold", "warm"):
            wall, peak_mb = run_cli([], Path(tmp))
            metrics = _newest_run(Path(tmp))[1].data.metrics
            result[name] = {
                "wall_s": wall,
                "max_rss_mb": peak_mb,
                "train_seconds": metrics["train_seconds"],
                "test_accuracy": metrics["test_accuracy"],
            }
    return result


# What both peer scripts start with (prepended when they run): the bundled MNIST, its first 5,000
# training images held out for validation as the runs do, rows normalised as the cosine runs see
# them; MLflow at argv[1].
PEER_PRELUDE = r"""
import sys, mlflow, numpy as np
from sklearn.cluster import KMeans
from kmeans_exp.data import bundled_path
with np.load(bundled_path()) as f:
    x_train, y_train, x_test, y_test = (f[k] for k in ("x_train", "y_train", "x_test", "y_test"))
def normalised(images):
    x = images.reshape(len(images), -1).astype(np.float32) / 255
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
x, y = normalised(x_train[5000:]), y_train[5000:]
mlflow.set_tracking_uri(sys.argv[1])
"""

# What a user would write instead of this tool: the default run's experiment with scikit-learn,
# logged to MLflow (params and final metrics), on the same bundled data.
SKLEARN_MLFLOW_SCRIPT = r"""
with mlflow.start_run():
    params = dict(n_clusters=25, init="k-means++", n_init=1, max_iter=15, random_state=0)
    mlflow.log_params(params)
    model = KMeans(algorithm="lloyd", tol=0, **params).fit(x)
    majority = np.array([np.bincount(y[model.labels_ == j], minlength=10).argmax()
                         for j in range(25)])
    accuracy = float(np.mean(majority[model.predict(normalised(x_test))] == y_test))
    mlflow.log_metrics({"test_accuracy": accuracy, "inertia": float(model.inertia_)})
print(accuracy)
"""


def sklearn_mlflow_script() -> dict:
    """The scikit-learn + MLflow script, on a fresh store and again on that store."""
    result = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name in ("fresh_store", "existing_store"):
            store = [f"sqlite:///{tmp}/mlflow.db"]
            wall, peak_mb = run_python(PEER_PRELUDE + SKLEARN_MLFLOW_SCRIPT, store, Path(tmp))
            result[name] = {"wall_s": wall, "max_rss_mb": peak_mb}
    return result


# The k_selection preset's study as a plain loop: the same 18 fits (scikit-learn's KMeans,
# k-means++, 15 Lloyd iterations, tol=0, normalised rows as the cosine runs see them), the same
# scores (inertia; validation accuracy and NMI; test accuracy, NMI, ARI, AMI, matched accuracy;
# silhouette of 2,000 training rows) and one MLflow child run per fit under a parent, in one
# process.
SKLEARN_K_SELECTION_LOOP = r"""
from scipy.optimize import linear_sum_assignment
from sklearn import metrics
x_val, y_val = normalised(x_train[:5000]), y_train[:5000]
x_test = normalised(x_test)
def matched(y_true, idx):
    table = metrics.confusion_matrix(y_true, idx)
    rows, cols = linear_sum_assignment(-table)
    return table[rows, cols].sum() / len(y_true)
with mlflow.start_run(run_name="k_selection"):
    for k in (5, 10, 15, 25, 50, 100):
        for seed in (0, 1, 2):
            with mlflow.start_run(run_name=f"k={k},seed={seed}", nested=True):
                params = dict(n_clusters=k, init="k-means++", n_init=1, max_iter=15,
                              random_state=seed)
                mlflow.log_params(params)
                model = KMeans(algorithm="lloyd", tol=0, **params).fit(x)
                majority = np.array([np.bincount(y[model.labels_ == j], minlength=10).argmax()
                                     for j in range(k)])
                val_idx, test_idx = model.predict(x_val), model.predict(x_test)
                sample = np.random.default_rng(seed).choice(len(x), 2000, replace=False)
                mlflow.log_metrics({
                    "inertia": float(model.inertia_),
                    "val_accuracy": float(np.mean(majority[val_idx] == y_val)),
                    "val_nmi": metrics.normalized_mutual_info_score(y_val, val_idx),
                    "test_accuracy": float(np.mean(majority[test_idx] == y_test)),
                    "test_nmi": metrics.normalized_mutual_info_score(y_test, test_idx),
                    "test_ari": metrics.adjusted_rand_score(y_test, test_idx),
                    "test_ami": metrics.adjusted_mutual_info_score(y_test, test_idx),
                    "test_matched_accuracy": matched(y_test, test_idx),
                    "silhouette": metrics.silhouette_score(
                        x[sample], model.labels_[sample], metric="cosine"),
                })
"""


def k_selection() -> dict:
    """``-m experiments=k_selection`` (18 sequential jobs) against the same study as a plain
    scikit-learn + MLflow loop in one process, each on a fresh store, with the time the
    study's runs spent training and evaluating."""
    result = {}
    with tempfile.TemporaryDirectory() as tmp:
        ours, peer = Path(tmp) / "ours", Path(tmp) / "peer"
        ours.mkdir()
        peer.mkdir()
        result["ours_wall_s"], _ = run_cli(["-m", "experiments=k_selection"], ours)
        client, _ = _newest_run(ours)
        runs = client.search_runs([e.experiment_id for e in client.search_experiments()])
        children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
        result["jobs"] = len(children)
        result["ours_train_eval_s"] = sum(
            r.data.metrics["train_seconds"] + r.data.metrics["eval_seconds"] for r in children
        )
        store = f"sqlite:///{peer}/mlflow.db"
        loop = PEER_PRELUDE + SKLEARN_K_SELECTION_LOOP
        result["sklearn_loop_wall_s"], _ = run_python(loop, [store], peer)
    result["ratio"] = result["ours_wall_s"] / result["sklearn_loop_wall_s"]
    return result


def _write_noisy_copies(directory: Path, copies: int, seed: int = 0) -> None:
    """An MNIST-like IDX set of ``copies`` x 60,000 training images: each copy of the bundled
    images plus uniform noise in [-8, 8], clipped to 0..255; the bundled test images as test."""
    from kmeans_exp import data

    raw = data.read_npz(data.bundled_path(), "mnist")
    rng = np.random.default_rng(seed)
    directory.mkdir(parents=True, exist_ok=True)
    n, rows, cols = raw.train_images.shape
    with open(directory / "train-images-idx3-ubyte", "wb") as f:
        f.write(struct.pack(">4I", data.IDX_IMAGES_MAGIC, n * copies, rows, cols))
        for _ in range(copies):
            noise = rng.integers(-8, 9, size=raw.train_images.shape, dtype=np.int16)
            noisy = np.clip(raw.train_images.astype(np.int16) + noise, 0, 255).astype(np.uint8)
            f.write(noisy.tobytes())
    labels = np.tile(raw.train_labels, copies)
    (directory / "train-labels-idx1-ubyte").write_bytes(data.idx_bytes(labels))
    (directory / "t10k-images-idx3-ubyte").write_bytes(data.idx_bytes(raw.test_images))
    (directory / "t10k-labels-idx1-ubyte").write_bytes(data.idx_bytes(raw.test_labels))


def _seconds_per_step(folder: Path) -> float:
    """Mean time per step between the first and last ``avg_distance`` points of the newest run
    (mini-batch steps are logged in bursts of one compiled call, so not their median gap)."""
    client, run = _newest_run(folder)
    stamps = sorted(m.timestamp for m in client.get_metric_history(run.info.run_id, "avg_distance"))
    return (stamps[-1] - stamps[0]) / (len(stamps) - 1) / 1000


def scale_10x(steps: int = 10) -> dict:
    """Full batch on the bundled set and on 10 noisy copies of it (IDX files, 470 MB of pixels),
    and mini-batch on the copies: peak RSS, wall and seconds per step."""
    result = {}
    with tempfile.TemporaryDirectory() as tmp:
        big = Path(tmp) / "mnist10x"
        _write_noisy_copies(big, 10)
        idx = ["data.source=idx", f"data.path={big}", "data.dataset=mnist10x"]
        cases = {
            "full_batch_1x": [f"steps={steps}"],
            "full_batch_10x": [*idx, f"steps={steps}"],
            "mini_batch_10x": [*idx, "use_mini_batch=true", "batch_size=1024", "steps=500"],
        }
        for name, args in cases.items():
            store = Path(tmp) / name
            store.mkdir()
            wall, peak_mb = run_cli(args, store)
            result[name] = {
                "wall_s": wall,
                "max_rss_mb": peak_mb,
                "seconds_per_step": _seconds_per_step(store),
            }
        result["data_mb"] = (big / "train-images-idx3-ubyte").stat().st_size / 2**20
    return result


STARTUP_PROBE = r"""
import json, time
t0 = time.perf_counter()
import kmeans_exp.hydra_app.app  # hydra, omegaconf, the config schema
t1 = time.perf_counter()
import mlflow
t2 = time.perf_counter()
from kmeans_exp.engine import KMeans  # tensorflow
t3 = time.perf_counter()
from kmeans_exp import data
splits = data.split(data.load_raw("bundled", None, "mnist"), 5000)
t4 = time.perf_counter()
model = KMeans(25, seed=0)
model.fit(splits.x_train, 3)
first, later = model.history_[0].seconds, model.history_[2].seconds
print(json.dumps({"python_and_hydra_s": t1 - t0, "mlflow_import_s": t2 - t1,
                  "tensorflow_import_s": t3 - t2, "data_load_s": t4 - t3,
                  "input_prepare_s": model.prepare_seconds_, "init_s": model.init_seconds_,
                  "trace_compile_s": first - later, "step_s": later}))
"""


def startup_breakdown() -> dict:
    """Seconds from process start to the first training step, part by part."""
    env = _child_env()  # a warm cache: the default runs compiled these programs
    env.pop("TF_CPP_MIN_LOG_LEVEL", None)
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
