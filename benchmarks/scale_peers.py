"""The peers of ``benchmarks/scale.py --peers``, in their own environment (Spark needs Java 17;
dask needs cloudpickle >= 3, which the project's ray extra refuses):

    python benchmarks/scale_peers.py SHARD_FOLDER OUT.json

Spark MLlib KMeans (``local[2]``, reading a Parquet copy of the shards) and dask-ml KMeans (a
dask array over the shards), both k=100 with k-means||, timed as (fit with 11 iterations - fit
with 1) / 10 per iteration, and init = fit with 1 iteration - one iteration. The inertia of
each one's centres is recomputed here in float64 (their own figure is kept beside it). NumPy,
pyarrow, pyspark and dask-ml only: no kmeans_exp here.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

K, ITERATIONS = 100, 10


def shards(folder: Path) -> list[Path]:
    return sorted(p for p in folder.glob("*.npy") if not p.name.endswith(".labels.npy"))


def timed_fits(fit, folder: Path) -> dict[str, float]:
    """fit(iterations) -> (own inertia, centres), timed for 1 and 1 + ITERATIONS iterations;
    the inertia of the centres is recomputed here the same way for every implementation."""
    start = time.perf_counter()
    fit(1)
    one = time.perf_counter() - start
    start = time.perf_counter()
    own, centers = fit(1 + ITERATIONS)
    many = time.perf_counter() - start
    iteration = (many - one) / ITERATIONS
    return {
        "init_plus_one_iteration_seconds": one,
        "iteration_seconds": iteration,
        "init_seconds": one - iteration,
        "own_inertia_after_11": own,
        "inertia_after_11": inertia(folder, np.asarray(centers, np.float64)),
        "centers_found": len(np.unique(np.asarray(centers), axis=0)),
    }


def inertia(folder: Path, centers: np.ndarray) -> float:
    """Sum over every row of the squared distance to its nearest centre, float64."""
    total, c_sq = 0.0, np.sum(centers * centers, axis=1)
    for path in shards(folder):
        rows = np.load(path, mmap_mode="r")
        for start in range(0, len(rows), 100_000):
            x = np.asarray(rows[start : start + 100_000], np.float64)
            d = np.sum(x * x, axis=1)[:, None] - 2.0 * x @ centers.T + c_sq[None, :]
            total += float(np.sum(np.maximum(d.min(axis=1), 0.0)))
    return total


def spark(folder: Path, tmp: Path) -> dict[str, float]:
    import pyarrow as pa
    import pyarrow.parquet as pq
    from pyspark.ml.clustering import KMeans
    from pyspark.ml.functions import array_to_vector
    from pyspark.sql import SparkSession

    parquet = tmp / "parquet"
    parquet.mkdir()
    for i, path in enumerate(shards(folder)):
        x = np.load(path).astype(np.float32)
        offsets = pa.array(np.arange(0, x.size + 1, x.shape[1], dtype=np.int32))
        column = pa.ListArray.from_arrays(offsets, pa.array(x.ravel()))
        pq.write_table(pa.table({"features": column}), parquet / f"part-{i:05d}.parquet")
    session = (
        SparkSession.builder.master("local[2]")
        .config("spark.driver.memory", "8g")
        .config("spark.ui.enabled", "false")
        .config("spark.driver.host", "127.0.0.1")
        .config("spark.driver.bindAddress", "127.0.0.1")
        .getOrCreate()
    )
    try:
        frame = session.read.parquet(str(parquet))
        frame = frame.select(array_to_vector("features").alias("features")).cache()
        frame.count()

        def fit(iterations: int) -> tuple[float, np.ndarray]:
            model = KMeans(k=K, maxIter=iterations, initSteps=2, seed=0, tol=0.0).fit(frame)
            return float(model.summary.trainingCost), np.array(model.clusterCenters())

        return timed_fits(fit, folder) | {"version": session.version}
    finally:
        session.stop()


def dask_ml(folder: Path) -> dict[str, float]:
    import dask
    import dask.array as da
    import dask_ml
    from dask_ml.cluster import KMeans

    x = da.concatenate([da.from_array(np.load(p), chunks=(250_000, -1)) for p in shards(folder)])
    x = x.persist()

    def fit(iterations: int) -> tuple[float, np.ndarray]:
        model = KMeans(
            n_clusters=K,
            init="k-means||",
            oversampling_factor=2,
            max_iter=iterations,
            tol=0.0,
            random_state=0,
        ).fit(x)
        return float(model.inertia_), np.asarray(model.cluster_centers_)

    with dask.config.set(scheduler="threads", num_workers=2):
        return timed_fits(fit, folder) | {"version": dask_ml.__version__}


def main() -> None:
    folder, out = Path(sys.argv[1]), Path(sys.argv[2])
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    with tempfile.TemporaryDirectory() as tmp:
        result = {"spark": spark(folder, Path(tmp)), "dask_ml": dask_ml(folder)}
    out.write_text(json.dumps(result))


if __name__ == "__main__":
    main()
