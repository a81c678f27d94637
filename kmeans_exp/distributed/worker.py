"""What each worker process of a distributed fit runs: ``python -m kmeans_exp.distributed.worker
SPEC``, with ``TF_CONFIG`` set (local, ray) or SLURM's variables (slurm).

The spec (JSON, written by ``launch``) names the shards, the engine's settings, the MLflow run
and an output folder. Every worker fits its share and scores it; worker 0 logs the step
metrics and the scores into the launcher's run and writes the result (centres, per-cluster
tables) for the launcher. A worker that fails writes one line to ``worker-<i>.error`` and exits
with status 1; the collectives' timeout makes the others fail too instead of waiting.
"""

from __future__ import annotations

import json
import os
import sys
import traceback
from pathlib import Path
from typing import Any

import numpy as np

from kmeans_exp.errors import KMeansExpError, first_line

RESULT_ARRAYS = "result.npz"
RESULT_METRICS = "result.json"


def error_file(out: Path, rank: int | str) -> Path:
    return out / f"worker-{rank}.error"


def fit_and_score(spec: dict[str, Any], reducer: Any) -> dict[str, Any] | None:
    """Fit this worker's share of the shards and score every split. Returns, on worker 0, the
    result (also written to the spec's folder); None on the others."""
    from kmeans_exp import evaluate
    from kmeans_exp.engine.parts import Part
    from kmeans_exp.engine.sharded import ShardedKMeans
    from kmeans_exp.shards import ShardSet

    data, fit = spec["data"], spec["fit"]
    train_set = ShardSet.open(data["path"])
    v = data["validation_size"]
    train = Part.of(train_set, v, train_set.rows, reducer)
    val = Part.of(train_set, 0, v, reducer) if v else None
    test = None
    if data["test_path"]:
        test_set = ShardSet.open(data["test_path"], "data.test_path")
        test = Part.of(test_set, 0, test_set.rows, reducer)
    chief = reducer.rank == 0
    steps = _step_logger(spec) if chief else None
    model = ShardedKMeans(**fit["engine"])
    try:
        model.fit(train, fit["steps"], reducer, steps.log if steps else None, spec["scratch"])
    finally:
        if steps is not None:
            steps.flush()
    labelled = train_set.has_labels
    splits = {"train": train, "val": val, "test": test}
    scores = {name: model.score(p, reducer) for name, p in splits.items() if p is not None}
    if not chief:
        return None
    table = {name: s.contingency for name, s in scores.items()}
    evaluation = evaluate.evaluate_tables(
        scores["train"].sizes,
        model.inertia_,
        table["train"] if labelled else None,
        table.get("val") if labelled else None,
        table.get("test") if test is not None and test.shards.has_labels else None,
        scores["test"].inertia if test is not None else None,
    )
    metrics = dict(evaluation.metrics)
    metrics |= {
        "step_seconds": float(np.median([s.seconds for s in model.history_])),
        "init_seconds": model.init_seconds_,
        "collective_seconds": reducer.seconds,
        "train_seconds": sum(s.seconds for s in model.history_) + model.init_seconds_,
    }
    out = Path(spec["out"])
    np.savez(
        out / RESULT_ARRAYS,
        centers=model.cluster_centers_,
        counts=model.cluster_counts_,
        sizes=evaluation.clusters.sizes,
        labels=evaluation.clusters.labels,
        purity=evaluation.clusters.purity,
        confusion=evaluation.confusion,
        restart_inertia=np.array(model.restart_inertia_),
        avg_distance=np.array([s.avg_distance for s in model.history_]),
    )
    result = {
        "metrics": metrics,
        "best_restart": model.best_restart_,
        "num_classes": train_set.num_classes,
    }
    (out / RESULT_METRICS).write_text(json.dumps(result))
    if spec["run_id"]:
        _log_metrics(spec["run_id"], metrics)
    return result


class _StepLog:
    """Worker 0's per-step ``avg_distance`` into the launcher's run (batched writes)."""

    def __init__(self, run_id: str, restarts: int) -> None:
        from kmeans_exp.tracking import StepMetrics

        self.metrics = StepMetrics(run_id)
        self.restarts = restarts

    def log(self, stats: Any) -> None:
        key = "avg_distance" if self.restarts == 1 else f"avg_distance_restart_{stats.restart}"
        self.metrics.log(key, stats.avg_distance, stats.step)

    def flush(self) -> None:
        self.metrics.flush()


def _step_logger(spec: dict[str, Any]) -> _StepLog | None:
    if not spec["run_id"]:
        return None
    return _StepLog(spec["run_id"], spec["fit"]["engine"]["n_init"])


def _log_metrics(run_id: str, metrics: dict[str, float]) -> None:
    import time

    import mlflow
    from mlflow.entities import Metric

    now = int(time.time() * 1000)
    batch = [Metric(key, float(value), now, 0) for key, value in metrics.items()]
    mlflow.MlflowClient().log_batch(run_id, metrics=batch)


def _log_progress(rank: int) -> None:
    """Worker 0 reports the fit's progress (init rounds, steps) on its output, each line with
    ``processes.PROGRESS_PREFIX``: the launcher shows those lines as they come."""
    import logging

    logging.basicConfig(
        level=logging.INFO if rank == 0 else logging.WARNING,
        format=f"[worker {rank}] %(message)s",
        stream=sys.stdout,
        force=True,
    )
    logging.getLogger("tensorflow").setLevel(logging.WARNING)  # the strategy's own notices
    sys.stdout.reconfigure(line_buffering=True)


def main(argv: list[str] | None = None) -> int:
    spec_path = Path((argv or sys.argv[1:])[0])
    spec = json.loads(spec_path.read_text())
    out = Path(spec["out"])
    rank: int | str = os.environ.get("SLURM_PROCID", "?")
    if spec["tracking_uri"]:
        os.environ["MLFLOW_TRACKING_URI"] = spec["tracking_uri"]
    try:
        from kmeans_exp.distributed import cluster

        if spec["launcher"] == "slurm":
            os.environ["TF_CONFIG"] = cluster.slurm_tf_config(spec["port_base"])
        rank = cluster.rank_of(os.environ["TF_CONFIG"])
        _log_progress(rank)
        from kmeans_exp.distributed.collective import StrategyReducer
        from kmeans_exp.tf_runtime import tf

        if spec.get("threads"):  # local workers share the machine's cores
            tf.config.threading.set_intra_op_parallelism_threads(spec["threads"])
            tf.config.threading.set_inter_op_parallelism_threads(spec["threads"])

        fit_and_score(spec, StrategyReducer(spec["timeout_seconds"]))
    except BaseException as e:  # one line for the launcher; the log keeps the traceback
        message = (
            str(e) if isinstance(e, KMeansExpError) else f"{type(e).__name__}: {first_line(e)}"
        )
        error_file(out, rank).write_text(message.splitlines()[0] if message else type(e).__name__)
        traceback.print_exc()
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
