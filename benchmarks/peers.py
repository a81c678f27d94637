"""The peers the engine is timed against, each on the same data with the same thread count.

faiss-cpu ``Kmeans`` (spherical for cosine, on L2-normalised rows, every point used),
scikit-learn ``KMeans`` (lloyd) and ``MiniBatchKMeans``, and TensorFlow's legacy
``clustering_ops.KMeans`` (``kmeans_exp.engine.legacy_op``, the tutorial's own path). faiss ships an
OpenBLAS that may not recognise this CPU; ``python peers.py CORETYPE ITERS REPEATS [--quick]``
times it again in a fresh process with ``OPENBLAS_CORETYPE`` set (what ``faiss_in_child`` runs).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import numpy as np
from common import THREADS, K, load_data, median_spread


def faiss_full_batch(x: np.ndarray, spherical: bool, iters: int, repeats: int) -> dict:
    import faiss

    faiss.omp_set_num_threads(THREADS)

    def make(seed: int):
        return faiss.Kmeans(
            x.shape[1],
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
    """faiss timed again in a fresh process whose OpenBLAS uses ``coretype``."""
    env = {**os.environ, "OPENBLAS_CORETYPE": coretype}
    args = [sys.executable, __file__, coretype, str(iters), str(repeats)]
    done = subprocess.run(
        args + (["--quick"] if quick else []), capture_output=True, text=True, env=env, timeout=900
    )
    if done.returncode != 0:
        print(f"faiss with OPENBLAS_CORETYPE={coretype} failed: {done.stderr[-500:]}")
        return None
    return json.loads(done.stdout.strip().splitlines()[-1])


def sklearn_full_batch(x: np.ndarray, init: np.ndarray, iters: int, repeats: int) -> dict:
    from sklearn.cluster import KMeans as SkKMeans
    from threadpoolctl import threadpool_limits

    per_iter = []
    with threadpool_limits(THREADS):
        SkKMeans(len(init), init=init, n_init=1, max_iter=2, tol=0, algorithm="lloyd").fit(x)
        for _ in range(repeats):
            km = SkKMeans(len(init), init=init, n_init=1, max_iter=iters, tol=0, algorithm="lloyd")
            start = time.perf_counter()
            km.fit(x)
            per_iter.append((time.perf_counter() - start) / km.n_iter_)
    return {"per_iter_s": median_spread(per_iter), "model": km}


def sklearn_mini_batch(x: np.ndarray, init: np.ndarray, batch: int, steps: int, repeats: int):
    from sklearn.cluster import MiniBatchKMeans
    from threadpoolctl import threadpool_limits

    def make(seed: int):
        return MiniBatchKMeans(
            K,
            init=init,
            n_init=1,
            batch_size=batch,
            max_iter=max(1, steps * batch // len(x)),
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


def legacy_tf(x: np.ndarray, init: np.ndarray, batches: list[np.ndarray]) -> dict:
    """TensorFlow's legacy op, cosine mini-batch, each batch fed by feed_dict."""
    from kmeans_exp.engine.legacy_op import legacy_train

    run = legacy_train(x, init, "cosine", True, batches, threads=THREADS)
    steps = run.step_seconds[1:] or run.step_seconds
    return {"total_s": run.total_seconds, "per_step_s": float(np.median(steps)), "run": run}


if __name__ == "__main__":
    # Child mode: faiss alone, with this process's OPENBLAS_CORETYPE; one JSON line out.
    _, _, iters, repeats, *rest = sys.argv
    bench = load_data(quick="--quick" in rest)
    rows = {
        "cosine": faiss_full_batch(bench.xn, True, int(iters), int(repeats))["per_iter_s"],
        "squared_euclidean": faiss_full_batch(bench.x, False, int(iters), int(repeats))[
            "per_iter_s"
        ],
    }
    print(json.dumps(rows))
