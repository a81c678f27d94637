"""Side-by-side K-Means timings on the bundled MNIST: this engine against the peers users pick.

    pip install -e '.[bench]'
    python benchmarks/bench.py                # the full run (~5 minutes here), tables + JSON
    python benchmarks/bench.py --quick        # a smoke run on small data (what the tests run)

Peers, on the same float32 data (55,000 x 784 MNIST training images) with the same thread count:
faiss-cpu ``Kmeans`` (spherical for cosine, on L2-normalised rows, every point used), scikit-learn
``KMeans`` (lloyd) and ``MiniBatchKMeans``, and the tutorial's own path: TensorFlow's legacy
``clustering_ops.KMeans`` in a tf.compat.v1 graph with the data fed each step. faiss ships an
OpenBLAS that may not recognise this CPU and fall back to a generic kernel; it is measured as
installed and, in a child process, with ``OPENBLAS_CORETYPE`` set to this CPU's kernel, and the
targets are checked against the faster of the two. Warm-up (first call, compilation) is excluded
from per-iteration times; every timing is the median of several repeats, with its spread.
Results go to ``benchmarks/results/latest.{json,md}``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

THREADS = int(os.environ.get("KMEANS_BENCH_THREADS", "2"))
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, str(THREADS))

import numpy as np  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
K = 25


# ---------------------------------------------------------------------------------------------
# helpers


def median_spread(samples: list[float]) -> dict[str, float]:
    arr = np.asarray(samples, dtype=np.float64)
    return {"median": float(np.median(arr)), "min": float(arr.min()), "max": float(arr.max())}


def timed(fn: Callable[[], object], repeats: int) -> list[float]:
    out = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        out.append(time.perf_counter() - start)
    return out


def majority_accuracy(train_idx, y_train, test_idx, y_test, k: int) -> float:
    from kmeans_exp import evaluate

    labels = evaluate.label_clusters(np.asarray(train_idx), y_train, k, 10)
    return evaluate.accuracy(y_test, labels.predict(np.asarray(test_idx)))


def normalise(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def openblas_kernel_for_this_cpu() -> str:
    """The kernel numpy's (current) OpenBLAS picked here, e.g. SkylakeX."""
    from threadpoolctl import threadpool_info

    for info in threadpool_info():
        if info.get("internal_api") == "openblas" and "numpy" in info.get("filepath", ""):
            return info.get("architecture") or ""
    return ""


# ---------------------------------------------------------------------------------------------
# this engine


def ours_full_batch(x, metric: str, iters: int, repeats: int) -> dict:
    from kmeans_exp.kmeans import KMeans

    KMeans(K, distance_metric=metric, init="random").fit(x, 2)  # compile once
    per_iter = []
    for r in range(repeats):
        model = KMeans(K, distance_metric=metric, init="random", seed=r).fit(x, iters)
        per_iter.append(float(np.median([s.seconds for s in model.history_])))
    return {"per_iter_s": median_spread(per_iter), "model": model}


def ours_mini_batch(x, metric: str, batch: int, steps: int, repeats: int) -> dict:
    from kmeans_exp.kmeans import KMeans

    def make(seed):
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


def ours_tutorial(x, steps: int) -> dict:
    """``experiments=seed_tutorial`` training: init + compilation + 50 whole-set steps."""
    from kmeans_exp.kmeans import KMeans

    start = time.perf_counter()
    model = KMeans(K, init="random", use_mini_batch=True, batch_size=None, seed=0).fit(x, steps)
    total = time.perf_counter() - start
    step = float(np.median([s.seconds for s in model.history_[1:]]))
    return {"total_s": total, "per_step_s": step, "model": model}


# ---------------------------------------------------------------------------------------------
# peers


def faiss_full_batch(x, spherical: bool, iters: int, repeats: int) -> dict:
    import faiss

    faiss.omp_set_num_threads(THREADS)
    d = x.shape[1]

    def make(seed):
        return faiss.Kmeans(
            d,
            K,
            niter=iters,
            spherical=spherical,
            seed=seed,
            max_points_per_centroid=10**9,
            verbose=False,
        )

    make(0).train(x)
    per_iter = []
    for r in range(repeats):
        km = make(r + 1)
        start = time.perf_counter()
        km.train(x)
        per_iter.append((time.perf_counter() - start) / iters)
    return {"per_iter_s": median_spread(per_iter), "index": km}


def faiss_in_child(coretype: str, iters: int, repeats: int, quick: bool) -> dict | None:
    """faiss again in a fresh process whose OpenBLAS uses ``coretype``."""
    env = {**os.environ, "OPENBLAS_CORETYPE": coretype}
    args = [
        sys.executable,
        __file__,
        "--faiss-only",
        "--iters",
        str(iters),
        "--repeats",
        str(repeats),
    ] + (["--quick"] if quick else [])
    done = subprocess.run(args, capture_output=True, text=True, env=env, timeout=900)
    if done.returncode != 0:
        print(f"faiss with OPENBLAS_CORETYPE={coretype} failed: {done.stderr[-500:]}")
        return None
    return json.loads(done.stdout.strip().splitlines()[-1])


def sklearn_full_batch(x, init: np.ndarray, iters: int, repeats: int) -> dict:
    from sklearn.cluster import KMeans as SkKMeans
    from threadpoolctl import threadpool_limits

    per_iter = []
    with threadpool_limits(THREADS):
        SkKMeans(K, init=init, n_init=1, max_iter=2, tol=0, algorithm="lloyd").fit(x)
        for _ in range(repeats):
            km = SkKMeans(K, init=init, n_init=1, max_iter=iters, tol=0, algorithm="lloyd")
            start = time.perf_counter()
            km.fit(x)
            per_iter.append((time.perf_counter() - start) / km.n_iter_)
    return {"per_iter_s": median_spread(per_iter), "model": km}


def sklearn_mini_batch(x, init: np.ndarray, batch: int, steps: int, repeats: int) -> dict:
    from sklearn.cluster import MiniBatchKMeans
    from threadpoolctl import threadpool_limits

    epochs = max(1, steps * batch // len(x))

    def make(seed):
        return MiniBatchKMeans(
            K,
            init=init,
            n_init=1,
            batch_size=batch,
            max_iter=epochs,
            max_no_improvement=None,
            tol=0,
            compute_labels=False,
            random_state=seed,
        )

    per_step = []
    with threadpool_limits(THREADS):
        make(0).fit(x)
        for r in range(repeats):
            km = make(r + 1)
            start = time.perf_counter()
            km.fit(x)
            per_step.append((time.perf_counter() - start) / km.n_steps_)
    return {"per_step_s": median_spread(per_step)}


def legacy_tf(x, x_test, init: np.ndarray, metric: str, batches: list[np.ndarray]) -> dict:
    """TensorFlow's ``clustering_ops.KMeans`` in a graph, each batch fed by feed_dict.

    Returns the time (variables, init, every step), the median step, and the final cluster
    ids of the training and test images for the accuracy.
    """
    from tensorflow.python.ops import clustering_ops

    from kmeans_exp.tf_import import tf

    graph = tf.Graph()
    with graph.as_default():
        inputs = tf.compat.v1.placeholder(tf.float32, shape=[None, x.shape[1]])
        km = clustering_ops.KMeans(
            inputs, K, initial_clusters=init, distance_metric=metric, use_mini_batch=True
        )
        _, cluster_idx, scores, _, init_op, train_op = km.training_graph()
        avg = tf.reduce_mean(scores[0])
        config = tf.compat.v1.ConfigProto(
            intra_op_parallelism_threads=THREADS, inter_op_parallelism_threads=THREADS
        )
        with tf.compat.v1.Session(graph=graph, config=config) as sess:
            start = time.perf_counter()
            sess.run(tf.compat.v1.global_variables_initializer(), feed_dict={inputs: x})
            sess.run(init_op, feed_dict={inputs: x})
            step_times = []
            for batch in batches:
                t = time.perf_counter()
                sess.run([avg, train_op], feed_dict={inputs: batch})
                step_times.append(time.perf_counter() - t)
            total = time.perf_counter() - start
            train_idx = sess.run(cluster_idx[0], feed_dict={inputs: x})
            test_idx = sess.run(cluster_idx[0], feed_dict={inputs: x_test})
    return {
        "total_s": total,
        "per_step_s": float(np.median(step_times[1:] or step_times)),
        "train_idx": train_idx,
        "test_idx": test_idx,
    }


# ---------------------------------------------------------------------------------------------
# scaling, sweeps, memory, start-up


def scaling(x_full, ks: list[int], ns: list[int], iters: int) -> list[dict]:
    from kmeans_exp.kmeans import KMeans

    rows = []
    for n in ns:
        for k in ks:
            x = x_full[:n]
            model = KMeans(k, init="random", seed=0).fit(x, iters + 1)
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
        # Cost per point-centre pair should not grow with n or k (it shrinks as work amortises).
        row["flag"] = row["ns_per_point_centre"] > 1.5 * base
    return rows


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


def run_cli(args: list[str], cwd: Path, timeout: float = 1800) -> tuple[float, float, str]:
    """Run ``python -m kmeans_exp ARGS``; return wall seconds, peak RSS (MB) and output."""
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
    peak_kb = next(
        int(line.split()[1]) for line in done.stderr.splitlines() if line.startswith("PEAK_RSS_KB")
    )
    return wall, peak_kb / 1024, done.stdout + done.stderr


def sweep_overhead(ks: list[int], extra: list[str]) -> dict:
    import mlflow

    with tempfile.TemporaryDirectory() as tmp:
        wall, _, _ = run_cli(["-m", f"k={','.join(map(str, ks))}", *extra], Path(tmp))
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
        "jobs": jobs,
        "wall_s": wall,
        "train_eval_s": work,
        "overhead_per_job_s": (wall - work) / jobs,
        "overhead_per_job_inside_sweep_s": (parent_wall - work) / jobs,
    }


def default_run_memory(extra: list[str]) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        wall, peak_mb, _ = run_cli(list(extra), Path(tmp))
    return {"wall_s": wall, "max_rss_mb": peak_mb}


STARTUP_PROBE = r"""
import json, sys, time
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


# ---------------------------------------------------------------------------------------------
# report


def fmt_ms(seconds: float) -> str:
    return f"{seconds * 1e3:.1f}"


def markdown(report: dict) -> str:
    env = report["environment"]
    lines = [
        f"Measured {env['date']} on {env['cpu']} ({env['cores']} cores), {env['threads']} threads "
        f"for every implementation; TensorFlow {env['tensorflow']} on {env['device']}; "
        f"faiss {env['faiss']}, scikit-learn {env['sklearn']}; data {env['data']}.",
        "",
        "| full-batch iteration, k=25 | ms/iter (median, min-max) | ours ÷ peer | test acc |",
        "| --- | --- | --- | --- |",
    ]
    for row in report["full_batch"]:
        t = row["per_iter_s"]
        ratio = "" if row.get("ratio") is None else f"{row['ratio']:.2f}"
        acc = "" if row.get("test_accuracy") is None else f"{row['test_accuracy']:.4f}"
        lines.append(
            f"| {row['name']} | {fmt_ms(t['median'])} ({fmt_ms(t['min'])}–"
            f"{fmt_ms(t['max'])}) | {ratio} | {acc} |"
        )
    lines += [
        "",
        "| mini-batch step, batch 1024, k=25 | ms/step (median) | ours ÷ peer |",
        "| --- | --- | --- |",
    ]
    for row in report["mini_batch"]:
        ratio = "" if row.get("ratio") is None else f"{row['ratio']:.2f}"
        lines.append(f"| {row['name']} | {row['per_step_s'] * 1e3:.3f} | {ratio} |")
    tut = report["tutorial"]
    lines += [
        "",
        "| tutorial (k=25, cosine, whole set each step, 50 steps) | total s | ms/step | test acc |",
        "| --- | --- | --- | --- |",
        f"| TF legacy op, tf.compat.v1 graph + feed_dict | {tut['legacy']['total_s']:.2f} | "
        f"{fmt_ms(tut['legacy']['per_step_s'])} | {tut['legacy']['test_accuracy']:.4f} |",
        f"| this engine (`experiments=seed_tutorial`) | {tut['ours']['total_s']:.2f} | "
        f"{fmt_ms(tut['ours']['per_step_s'])} | {tut['ours']['test_accuracy']:.4f} |",
        f"| speed-up | {tut['speedup']:.1f}x | | |",
        "",
        "| full-batch scaling (cosine) | "
        + " | ".join(f"k={k}" for k in report["scaling_ks"])
        + " |",
        "| --- |" + " --- |" * len(report["scaling_ks"]),
    ]
    for n in report["scaling_ns"]:
        cells = []
        for row in (r for r in report["scaling"] if r["n"] == n):
            flag = " ⚠" if row["flag"] else ""
            cells.append(
                f"{fmt_ms(row['per_iter_s'])} ms ({row['ns_per_point_centre']:.2f} ns/pt·ctr){flag}"
            )
        lines.append(f"| n={n:,} | " + " | ".join(cells) + " |")
    if "sweep" in report:
        sw = report["sweep"]
        lines += [
            "",
            f"Sequential sweep `-m k={sw['ks']}`: {sw['wall_s']:.1f} s wall, "
            f"{sw['train_eval_s']:.1f} s of train+eval, per-job overhead "
            f"{sw['overhead_per_job_s']:.2f} s (from the command; "
            f"{sw['overhead_per_job_inside_sweep_s']:.2f} s inside the parent run).",
        ]
    if "memory" in report:
        lines += [
            "",
            f"Default `python -m kmeans_exp`: {report['memory']['wall_s']:.1f} s wall, "
            f"peak memory (max RSS) {report['memory']['max_rss_mb']:.0f} MB.",
        ]
    if "startup" in report:
        s = report["startup"]
        lines += [
            "",
            "Start-up to the first training step: "
            + ", ".join(f"{k.removesuffix('_s').replace('_', ' ')} {v:.2f} s" for k, v in s.items())
            + ".",
        ]
    lines += ["", "Targets:"] + [
        f"- {'met' if ok else 'NOT met'}: {text}" for text, ok in report["targets"]
    ]
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small data, few repeats (smoke)")
    parser.add_argument("--faiss-only", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--iters", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()

    from kmeans_exp import data

    splits = data.split(data.load_raw("bundled", None, "mnist"), 5000)
    x, x_test = splits.x_train, splits.x_test
    if args.quick:
        x, splits_y = x[:3000], splits.y_train[:3000]
        args.iters, args.repeats = 3, 2
    else:
        splits_y = splits.y_train
    xn, xn_test = normalise(x), normalise(x_test)

    if args.faiss_only:
        rows = {}
        for name, data_in, spherical in (("cosine", xn, True), ("squared_euclidean", x, False)):
            rows[name] = faiss_full_batch(data_in, spherical, args.iters, args.repeats)[
                "per_iter_s"
            ]
        print(json.dumps(rows))
        return

    from kmeans_exp.tf_import import tf

    tf.config.threading.set_intra_op_parallelism_threads(THREADS)
    tf.config.threading.set_inter_op_parallelism_threads(THREADS)
    import faiss
    import sklearn

    device = (tf.config.list_logical_devices("GPU") or tf.config.list_logical_devices("CPU"))[0]
    report: dict = {
        "environment": {
            "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
            "cpu": cpu_name(),
            "cores": os.cpu_count(),
            "threads": THREADS,
            "tensorflow": tf.__version__,
            "device": device.name,
            "faiss": faiss.__version__,
            "sklearn": sklearn.__version__,
            "data": f"{x.shape[0]:,} x {x.shape[1]} float32",
            "quick": args.quick,
        }
    }
    targets: list[tuple[str, bool]] = []
    iters, repeats = args.iters, args.repeats

    # The tutorial first, so that our compilation of its step is counted (cold, not cached).
    tut_steps = 3 if args.quick else 50
    ours_tut = ours_tutorial(x, tut_steps)
    init = x[np.random.default_rng(0).integers(0, len(x), K)]
    legacy = legacy_tf(x, x_test, init, "cosine", [x] * tut_steps)
    ours_model = ours_tut["model"]

    def acc_of(train_idx, test_idx):
        return majority_accuracy(train_idx, splits_y, test_idx, splits.y_test, K)

    report["tutorial"] = {
        "steps": tut_steps,
        "legacy": {
            "total_s": legacy["total_s"],
            "per_step_s": legacy["per_step_s"],
            "test_accuracy": acc_of(legacy["train_idx"], legacy["test_idx"]),
        },
        "ours": {
            "total_s": ours_tut["total_s"],
            "per_step_s": ours_tut["per_step_s"],
            "test_accuracy": acc_of(ours_model.predict(x), ours_model.predict(x_test)),
        },
        "speedup": legacy["total_s"] / ours_tut["total_s"],
    }
    targets.append(
        (
            f"seed_tutorial training >= 8x faster than the legacy TF path "
            f"({report['tutorial']['speedup']:.1f}x)",
            report["tutorial"]["speedup"] >= 8,
        )
    )

    # Full batch.
    rows = []
    ours_cos = ours_full_batch(x, "cosine", iters, repeats)
    ours_sq = ours_full_batch(x, "squared_euclidean", iters, repeats)
    f_cos = faiss_full_batch(xn, True, iters, repeats)
    f_sq = faiss_full_batch(x, False, iters, repeats)
    kernel = openblas_kernel_for_this_cpu()
    tuned = faiss_in_child(kernel, iters, repeats, args.quick) if kernel else None
    sk_cos = sklearn_full_batch(xn, normalise(init), iters, repeats)
    sk_sq = sklearn_full_batch(x, init, iters, repeats)

    def faiss_acc(index, xtr, xte):
        return acc_of(index.index.search(xtr, 1)[1][:, 0], index.index.search(xte, 1)[1][:, 0])

    for metric, ours, fa, sk, xtr, xte in (
        ("cosine", ours_cos, f_cos, sk_cos, xn, xn_test),
        ("squared_euclidean", ours_sq, f_sq, sk_sq, x, x_test),
    ):
        mine = ours["per_iter_s"]["median"]
        rows.append(
            {
                "name": f"this engine, {metric}",
                "per_iter_s": ours["per_iter_s"],
                "test_accuracy": acc_of(ours["model"].predict(x), ours["model"].predict(x_test)),
            }
        )
        label = "spherical" if metric == "cosine" else "L2"
        rows.append(
            {
                "name": f"faiss-cpu {label} (OpenBLAS as installed)",
                "per_iter_s": fa["per_iter_s"],
                "ratio": mine / fa["per_iter_s"]["median"],
                "test_accuracy": faiss_acc(fa["index"], xtr, xte),
            }
        )
        best_faiss = fa["per_iter_s"]["median"]
        if tuned:
            t = tuned[metric]
            rows.append(
                {
                    "name": f"faiss-cpu {label} (OPENBLAS_CORETYPE={kernel})",
                    "per_iter_s": t,
                    "ratio": mine / t["median"],
                }
            )
            best_faiss = min(best_faiss, t["median"])
        rows.append(
            {
                "name": "scikit-learn KMeans lloyd" + (" (normalised rows)" if xtr is xn else ""),
                "per_iter_s": sk["per_iter_s"],
                "ratio": mine / sk["per_iter_s"]["median"],
                "test_accuracy": acc_of(sk["model"].predict(xtr), sk["model"].predict(xte)),
            }
        )
        targets.append(
            (
                f"full-batch {metric} iteration <= 0.8x the faster faiss "
                f"({mine * 1e3:.1f} ms vs {best_faiss * 1e3:.1f} ms: "
                f"{mine / best_faiss:.2f}x)",
                mine <= 0.8 * best_faiss,
            )
        )
    report["full_batch"] = rows

    # Mini-batch, batch 1024.
    batch = 256 if args.quick else 1024
    mb_steps = 20 if args.quick else 640
    ours_mb = {
        m: ours_mini_batch(x, m, batch, mb_steps, repeats)["per_step_s"]["median"]
        for m in ("cosine", "squared_euclidean")
    }
    sk_mb = sklearn_mini_batch(x, init, batch, mb_steps, repeats)["per_step_s"]["median"]
    rng = np.random.default_rng(1)
    legacy_batches = [x[rng.integers(0, len(x), batch)] for _ in range(20 if args.quick else 200)]
    legacy_mb = legacy_tf(x, x_test, init, "cosine", legacy_batches)["per_step_s"]
    report["mini_batch"] = [
        {"name": "this engine, cosine", "per_step_s": ours_mb["cosine"]},
        {"name": "this engine, squared_euclidean", "per_step_s": ours_mb["squared_euclidean"]},
        {
            "name": "TF legacy op (cosine, feed_dict)",
            "per_step_s": legacy_mb,
            "ratio": ours_mb["cosine"] / legacy_mb,
        },
        {
            "name": "scikit-learn MiniBatchKMeans (squared Euclidean)",
            "per_step_s": sk_mb,
            "ratio": ours_mb["squared_euclidean"] / sk_mb,
        },
    ]
    targets.append(
        (
            f"mini-batch step >= 4x faster than the legacy op "
            f"({legacy_mb / ours_mb['cosine']:.1f}x)",
            legacy_mb / ours_mb["cosine"] >= 4,
        )
    )
    targets.append(
        (
            f"mini-batch step no slower than scikit-learn's MiniBatchKMeans "
            f"({ours_mb['squared_euclidean'] * 1e3:.3f} vs {sk_mb * 1e3:.3f} ms)",
            ours_mb["squared_euclidean"] <= sk_mb,
        )
    )

    # Scaling.
    ks = [5, 10] if args.quick else [10, 25, 100, 400, 1000]
    ns = [1000, len(x)] if args.quick else [10_000, len(x)]
    report["scaling_ks"], report["scaling_ns"] = ks, ns
    report["scaling"] = scaling(x, ks, ns, 2 if args.quick else 5)
    flagged = [r for r in report["scaling"] if r["flag"]]
    targets.append(
        (f"full-batch cost grows no faster than n*k ({len(flagged)} flagged)", not flagged)
    )

    if not args.quick:
        sw = sweep_overhead([10, 25, 50, 100], [])
        sw["ks"] = "10,25,50,100"
        report["sweep"] = sw
        targets.append(
            (
                f"sequential sweep per-job overhead <= 1.5 s ({sw['overhead_per_job_s']:.2f} s)",
                sw["overhead_per_job_s"] <= 1.5,
            )
        )
        report["memory"] = default_run_memory([])
        targets.append(
            (
                f"default run peak memory <= 1.5 GB ({report['memory']['max_rss_mb']:.0f} MB)",
                report["memory"]["max_rss_mb"] <= 1536,
            )
        )
        report["startup"] = startup_breakdown()
    report["targets"] = targets

    args.out.mkdir(parents=True, exist_ok=True)
    table = markdown(report)
    suffix = "-quick" if args.quick else ""
    (args.out / f"latest{suffix}.md").write_text(table)
    (args.out / f"latest{suffix}.json").write_text(json.dumps(report, indent=2, default=str))
    print(table)


if __name__ == "__main__":
    main()
