"""Start the workers of one sharded fit, watch them, and collect worker 0's result.

``fit(spec, config)`` runs the fit where ``distributed`` says: in this process (none), as N
processes on this machine (local), as N Ray actors (ray), or as the tasks of ``srun`` (slurm).
The caller (the runner) owns the MLflow run and ends it. A worker that fails, dies or stops
answering fails the fit within a bounded time: the others' collectives fail at once on a dead
peer (gRPC) or after ``timeout_seconds`` on a silent one, they exit, and after ``GRACE_SECONDS``
the watch kills whatever is left (``processes``). Ctrl-C (KeyboardInterrupt) kills every
worker on its way out.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from kmeans_exp.distributed import cluster, processes, worker
from kmeans_exp.engine.reduce import SingleProcess


@dataclass(frozen=True)
class FittedCenters:
    """A finished sharded fit, as ``run_experiment`` returns it: centres and nearest-centre
    assignment (NumPy), what the served model does."""

    cluster_centers_: np.ndarray
    distance_metric: str
    inertia_: float

    @property
    def n_clusters(self) -> int:
        return len(self.cluster_centers_)

    def predict(self, x: np.ndarray) -> np.ndarray:
        """Index of the nearest centre of each row of float features ``x``."""
        x = np.asarray(x, np.float64)
        c = self.cluster_centers_.astype(np.float64)
        if self.distance_metric == "cosine":
            x = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-6)
            c = c / np.maximum(np.linalg.norm(c, axis=1, keepdims=True), 1e-6)
            return np.argmax(x @ c.T, axis=1)
        return np.argmin(np.sum(c * c, axis=1)[None, :] - 2.0 * x @ c.T, axis=1)


def fit(spec: dict[str, Any], kind: str, workers: int, ray_address: str | None) -> dict[str, Any]:
    """Run the fit that ``spec`` describes on ``workers`` workers; worker 0's result."""
    out = Path(spec["out"])
    spec_file = out / "spec.json"
    # local workers split this machine's cores; elsewhere each has its own node or CPUs
    threads = max(1, (os.cpu_count() or 1) // workers) if kind == "local" else None
    spec_file.write_text(json.dumps(spec | {"launcher": kind, "threads": threads}))
    if kind == "none":
        return worker.fit_and_score(spec, SingleProcess())
    if kind == "local":
        ports = cluster.free_ports(workers)
        addresses = [f"127.0.0.1:{port}" for port in ports]
        procs = {
            str(i): processes.start(
                spec_file, out, i, {"TF_CONFIG": cluster.tf_config(addresses, i)}
            )
            for i in range(workers)
        }
        processes.watch(procs, out, progress=out / "worker-0.log")
    elif kind == "slurm":
        command = ("srun", f"--ntasks={workers}", "--kill-on-bad-exit=1")
        srun = processes.start(spec_file, out, "srun", {}, prefix=command)
        processes.watch({"srun": srun}, out, progress=out / "worker-srun.log")
    else:
        from kmeans_exp.distributed import ray_workers

        ray_workers.run(spec_file, out, workers, ray_address)
    return json.loads((out / worker.RESULT_METRICS).read_text())
