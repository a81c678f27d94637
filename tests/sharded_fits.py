"""A worker of the engine-level equality tests: ``python tests/sharded_fits.py FOLDER OUT``
with ``TF_CONFIG`` set (or not: one worker). Fits every init in full batch and mini-batch on
the shards of FOLDER and, on worker 0, writes the centres and the test assignments to OUT."""

from __future__ import annotations

import os
import sys

import numpy as np

CASES = [
    (init, mini_batch)
    for init in ("random", "kmeans_plus_plus", "kmeans_parallel")
    for mini_batch in (False, True)
]
K, STEPS, BATCH = 6, 8, 700


def fit_all(folder: str, reducer) -> dict[str, np.ndarray]:
    from kmeans_exp.engine.parts import Part
    from kmeans_exp.engine.sharded import ShardedKMeans
    from kmeans_exp.shards import ShardSet

    train, test = ShardSet.open(f"{folder}/train"), ShardSet.open(f"{folder}/test")
    part = Part.of(train, 0, train.rows, reducer)
    x_test = test.read(0, test.rows).astype(np.float64)
    out = {}
    for init, mini_batch in CASES:
        model = ShardedKMeans(
            K,
            distance_metric="squared_euclidean",
            init=init,
            use_mini_batch=mini_batch,
            batch_size=BATCH if mini_batch else None,
            seed=3,
        ).fit(part, STEPS, reducer)
        name = f"{init}-{'mini' if mini_batch else 'full'}"
        c = model.cluster_centers_.astype(np.float64)
        out[name] = c
        sq = np.sum(c * c, axis=1)[None, :] - 2 * x_test @ c.T
        out[f"{name}-test"] = np.argmin(sq, axis=1)
    return out


def main() -> None:
    folder, out = sys.argv[1], sys.argv[2]
    if "TF_CONFIG" in os.environ:
        from kmeans_exp.distributed.collective import StrategyReducer

        reducer = StrategyReducer(60)
    else:
        from kmeans_exp.engine.reduce import SingleProcess

        reducer = SingleProcess()
    result = fit_all(folder, reducer)
    if reducer.rank == 0:
        np.savez(out, **result)


if __name__ == "__main__":
    main()
