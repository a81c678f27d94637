"""Side-by-side K-Means timings on the bundled MNIST: this engine against the peers users pick.

    pip install -e '.[bench]'
    python benchmarks/bench.py                # the full run (~15 minutes), tables + JSON
    python benchmarks/bench.py --quick        # a smoke run on small data (what the tests run)
    KMEANS_BENCH_ISA=avx2 python benchmarks/bench.py --engine-only
                                              # an AVX-512 host run as AVX2, the engine parts

The parts: ``common`` (threads, data, the ISA profile), ``peers`` (faiss-cpu, scikit-learn,
TF's legacy op), ``probes`` (this engine and the command line), ``targets`` (the bounds, one
table) and ``report`` (Markdown and JSON in ``benchmarks/results/<profile>/``, one folder per
ISA profile: ``avx512``, ``avx2``, ``avx512-as-avx2``; a run on one kind of CPU never
overwrites another's). Warm-up (first call, compilation) is excluded from per-iteration times;
timings are medians of several repeats with their spread, except the alternating rounds against
scikit-learn (each side's best round).
"""

from __future__ import annotations

# isort: off
import common  # first: it pins the BLAS thread pools before NumPy loads

# isort: on
import argparse
import os
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import peers
import probes
import report
import targets
from common import (
    THREADS,
    BenchData,
    K,
    cpu_name,
    load_data,
    majority_accuracy,
    nearest_cosine,
    normalise,
    profile_name,
)

RESULTS = Path(__file__).resolve().parent / "results"


def environment(bench: BenchData, quick: bool) -> dict:
    import faiss
    import sklearn

    from kmeans_exp.engine import passes
    from kmeans_exp.tf_runtime import tf

    device = (tf.config.list_logical_devices("GPU") or tf.config.list_logical_devices("CPU"))[0]
    return {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "cpu": cpu_name(),
        "cores": os.cpu_count(),
        "threads": THREADS,
        "tensorflow": tf.__version__,
        "device": device.name,
        "faiss": faiss.__version__,
        "sklearn": sklearn.__version__,
        "data": f"{bench.x.shape[0]:,} x {bench.x.shape[1]} (uint8 pixels for this engine, "
        "float32 features for the peers)",
        "pass_chunk": f"{passes.chunk_rows(bench.x.shape[1]):,} rows (L2 cache "
        f"{passes.l2_cache_bytes() // 2**10:,} KB per core)",
        "openblas_kernel": common.openblas_kernel_for_this_cpu(),
        "quick": quick,
    }


def tutorial(bench: BenchData, init: np.ndarray, steps: int) -> dict:
    """Ours first, so that its compilation is counted cold; then the legacy op."""
    ours = probes.ours_tutorial(bench.pixels, steps)
    legacy = peers.legacy_tf(bench.x, init, [bench.x] * steps)
    model, centers = ours["model"], legacy["run"].centers
    return {
        "steps": steps,
        "legacy": {
            "total_s": legacy["total_s"],
            "per_step_s": legacy["per_step_s"],
            "test_accuracy": majority_accuracy(
                nearest_cosine(bench.x, centers), nearest_cosine(bench.x_test, centers), bench
            ),
        },
        "ours": {
            "total_s": ours["total_s"],
            "per_step_s": ours["per_step_s"],
            "test_accuracy": majority_accuracy(
                model.predict(bench.pixels), model.predict(bench.pixels_test), bench
            ),
        },
        "speedup": legacy["total_s"] / ours["total_s"],
    }


def full_batch(bench: BenchData, init: np.ndarray, iters: int, repeats: int, quick: bool):
    kernel = common.openblas_kernel_for_this_cpu()  # faiss again, with numpy's BLAS kernel
    tuned = peers.faiss_in_child(kernel, iters, repeats, quick) if kernel else None
    rows = []
    for metric, x, x_test, spherical in (
        ("cosine", bench.xn, bench.xn_test, True),
        ("squared_euclidean", bench.x, bench.x_test, False),
    ):
        ours = probes.ours_full_batch(bench.pixels, metric, iters, repeats)
        mine = ours["per_iter_s"]["median"]
        model = ours["model"]
        rows.append(
            {
                "name": f"this engine, {metric}",
                "metric": metric,
                "per_iter_s": ours["per_iter_s"],
                "test_accuracy": majority_accuracy(
                    model.predict(bench.pixels), model.predict(bench.pixels_test), bench
                ),
            }
        )
        fa = peers.faiss_full_batch(x, spherical, iters, repeats)
        label = "spherical" if spherical else "L2"
        search = fa["index"].index.search
        rows.append(
            {
                "name": f"faiss-cpu {label} (OpenBLAS as installed)",
                "metric": metric,
                "per_iter_s": fa["per_iter_s"],
                "ratio": mine / fa["per_iter_s"]["median"],
                "test_accuracy": majority_accuracy(
                    search(x, 1)[1][:, 0], search(x_test, 1)[1][:, 0], bench
                ),
            }
        )
        if tuned:
            rows.append(
                {
                    "name": f"faiss-cpu {label} (OPENBLAS_CORETYPE={kernel})",
                    "metric": metric,
                    "per_iter_s": tuned[metric],
                    "ratio": mine / tuned[metric]["median"],
                }
            )
        sk_init = normalise(init) if spherical else init
        sk = peers.sklearn_full_batch(x, sk_init, iters, repeats)
        rows.append(
            {
                "name": "scikit-learn KMeans lloyd" + (" (normalised rows)" if spherical else ""),
                "metric": metric,
                "per_iter_s": sk["per_iter_s"],
                "ratio": mine / sk["per_iter_s"]["median"],
                "test_accuracy": majority_accuracy(
                    sk["model"].predict(x), sk["model"].predict(x_test), bench
                ),
            }
        )
    return rows


def full_batch_by_k(bench: BenchData, ks: list[int], iters: int, repeats: int) -> list[dict]:
    """Ours against scikit-learn's Lloyd at several k, both metrics (the same random rows).

    The two alternate, one fit each per round, so that a slow spell of a shared machine falls
    on both rather than on one; each side's figure is its best round (a shared machine's noise
    only ever slows a fit down; the rounds' spread is kept in the report).
    """
    rows = []
    for k in ks:
        init = bench.x[np.random.default_rng(k).integers(0, len(bench.x), k)]
        for metric, x, sk_init in (
            ("cosine", bench.xn, normalise(init)),
            ("squared_euclidean", bench.x, init),
        ):
            ours, theirs = [], []
            for _ in range(repeats):
                ours.append(probes.ours_full_batch(bench.pixels, metric, iters, 1, k=k))
                theirs.append(peers.sklearn_full_batch(x, sk_init, iters, 1))
            mine = [o["per_iter_s"]["median"] for o in ours]
            peer = [t["per_iter_s"]["median"] for t in theirs]
            row = {"k": k, "metric": metric, "ours_s": min(mine), "sklearn_s": min(peer)}
            spread = {"ours_rounds_s": mine, "sklearn_rounds_s": peer}
            rows.append({**row, **spread, "ratio": min(mine) / min(peer)})
    return rows


def mini_batch(bench: BenchData, init: np.ndarray, repeats: int, quick: bool) -> dict:
    batch, steps = (256, 20) if quick else (1024, 640)
    ours = {
        m: probes.ours_mini_batch(bench.pixels, m, batch, steps, repeats)["per_step_s"]["median"]
        for m in ("cosine", "squared_euclidean")
    }
    rng = np.random.default_rng(1)
    batches = [bench.x[rng.integers(0, len(bench.x), batch)] for _ in range(20 if quick else 200)]
    return {
        "batch": batch,
        "ours_cosine_s": ours["cosine"],
        "ours_squared_euclidean_s": ours["squared_euclidean"],
        "legacy_s": peers.legacy_tf(bench.x, init, batches)["per_step_s"],
        "sklearn_s": peers.sklearn_mini_batch(bench.x, init, batch, steps, repeats)["per_step_s"][
            "median"
        ],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small data, few repeats (smoke)")
    parser.add_argument(
        "--engine-only", action="store_true", help="no command-line probes (sweeps, start-up)"
    )
    parser.add_argument("--iters", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", type=Path, default=RESULTS / profile_name())
    args = parser.parse_args()
    iters, repeats = (3, 2) if args.quick else (args.iters, args.repeats)

    from kmeans_exp.tf_runtime import tf

    tf.config.threading.set_intra_op_parallelism_threads(THREADS)
    tf.config.threading.set_inter_op_parallelism_threads(THREADS)
    bench = load_data(args.quick)
    init = bench.x[np.random.default_rng(0).integers(0, len(bench.x), K)]
    ks, ns = (
        ([5, 10], [1000, len(bench.x)])
        if args.quick
        else ([10, 25, 100, 400, 1000], [10_000, len(bench.x)])
    )
    result = {
        "environment": environment(bench, args.quick),
        "tutorial": tutorial(bench, init, 3 if args.quick else 50),
        "full_batch": full_batch(bench, init, iters, repeats, args.quick),
        "full_batch_by_k": full_batch_by_k(
            bench, [50] if args.quick else [10, 25, 100, 400], iters if args.quick else 10, 5
        ),
        "pass_parts": probes.pass_parts(bench, repeats),
        "mini_batch": mini_batch(bench, init, repeats, args.quick),
        "scaling_ks": ks,
        "scaling_ns": ns,
        "scaling": probes.scaling(bench.pixels, ks, ns, 2 if args.quick else 5),
        "metrics_cost": probes.metrics_cost(bench, repeats),
    }
    if not (args.quick or args.engine_only):
        result["sweep"] = probes.sweep_overhead([10, 25, 50, 100])
        result["k_selection"] = probes.k_selection()
        result["default_run"] = probes.default_run()
        result["sklearn_mlflow_script"] = probes.sklearn_mlflow_script()
        result["startup"] = probes.startup_breakdown()
        result["scale_10x"] = probes.scale_10x()
    result["targets"] = targets.check(result)
    print(report.write(result, args.out, args.quick))


if __name__ == "__main__":
    main()
