"""Start the workers of one sharded fit, watch them, and collect worker 0's result.

``fit(spec, config)`` runs the fit where ``distributed`` says: in this process (none), as N
processes on this machine (local), as N Ray actors (ray), or as the tasks of ``srun`` (slurm).
The caller (the runner) owns the MLflow run and ends it. A worker that fails, dies or stops
answering fails the fit within a bounded time: the others' collectives fail at once on a dead
peer (gRPC) or after ``timeout_seconds`` on a silent one, they exit, and after ``GRACE_SECONDS``
the watch kills whatever is left. Ctrl-C (KeyboardInterrupt) kills every worker on its way out.
Workers run in their own session (the terminal's Ctrl-C reaches the launcher only) and die
with the launcher (``PR_SET_PDEATHSIG``).
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from kmeans_exp.distributed import cluster, worker
from kmeans_exp.engine.reduce import SingleProcess
from kmeans_exp.errors import KMeansExpError

GRACE_SECONDS = 10.0  # after one worker fails, how long the others get to exit by themselves
POLL_SECONDS = 0.2
WORKER_MODULE = "kmeans_exp.distributed.worker"


class WorkerError(KMeansExpError):
    """A worker of a distributed fit failed; the message is its first line."""


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
            str(i): _start(spec_file, out, i, {"TF_CONFIG": cluster.tf_config(addresses, i)})
            for i in range(workers)
        }
        _watch(procs, out)
    elif kind == "slurm":
        command = ["srun", f"--ntasks={workers}", "--kill-on-bad-exit=1"]
        _watch({"srun": _start(spec_file, out, "srun", {}, prefix=command)}, out)
    else:
        from kmeans_exp.distributed import ray_workers

        ray_workers.run(spec_file, out, workers, ray_address, GRACE_SECONDS)
    return json.loads((out / worker.RESULT_METRICS).read_text())


def _start(
    spec_file: Path, out: Path, name: int | str, env: dict[str, str], prefix: list[str] = ()
) -> subprocess.Popen:
    """A worker process (or ``srun``'s), its output in ``worker-<name>.log``."""
    log = (out / f"worker-{name}.log").open("w")
    command = [*prefix, sys.executable, "-m", WORKER_MODULE, str(spec_file)]
    return subprocess.Popen(
        command,
        env=os.environ | env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # the terminal's Ctrl-C goes to the launcher, which stops them
        preexec_fn=die_with_parent,
    )


def die_with_parent() -> None:
    """In the child: SIGKILL when the launcher dies, however it dies (Linux's prctl)."""
    with contextlib.suppress(OSError, AttributeError):  # not Linux: no such call
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def _watch(procs: dict[str, subprocess.Popen], out: Path) -> None:
    """Wait for every process (by worker name); on the first failure, give the rest
    ``GRACE_SECONDS``, kill them, and raise ``WorkerError`` with the first failure's line."""
    try:
        while True:
            codes = {name: p.poll() for name, p in procs.items()}
            if all(code == 0 for code in codes.values()):
                return
            failed = [name for name, code in codes.items() if code not in (None, 0)]
            if failed:
                deadline = time.monotonic() + GRACE_SECONDS
                while any(p.poll() is None for p in procs.values()):
                    if time.monotonic() > deadline:
                        break
                    time.sleep(POLL_SECONDS)
                raise WorkerError(failure_line(out, failed[0], procs[failed[0]].returncode))
            time.sleep(POLL_SECONDS)
    finally:
        for p in procs.values():
            if p.poll() is None:
                p.kill()
            p.wait()


def failure_line(out: Path, first: str, code: int) -> str:
    """Why the fit failed: a data error any worker reported, else the first failed worker's
    own line, else how it ended (a signal: it was killed)."""
    errors = sorted(out.glob("worker-*.error"))
    lines = {path.stem.removeprefix("worker-"): path.read_text().strip() for path in errors}
    for line in lines.values():
        if "NaN or inf" in line:
            return line
    if first in lines:
        return f"worker {first}: {lines[first]}"
    how = f"was killed by signal {-code}" if code < 0 else f"exited with status {code}"
    others = "; ".join(f"worker {name}: {line}" for name, line in lines.items())
    return f"worker {first} {how}" + (f" ({others})" if others else "")
