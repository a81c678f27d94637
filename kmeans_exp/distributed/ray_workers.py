"""``distributed=ray``: the workers as Ray actors, one CPU each, on the cluster at
``distributed.ray_address`` (or a local one started for the fit and stopped after it).

Each actor reports its node's address and a free port; with the list, each runs the worker
process (``python -m kmeans_exp.distributed.worker``) with its ``TF_CONFIG``, as the local
launcher does. The shard folders and the output folder (``distributed.scratch``) must be seen
by every node at the same path (a shared filesystem).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from kmeans_exp.distributed import cluster, processes


class _Worker:
    """A Ray actor that runs one worker process and returns its exit status."""

    def address(self) -> str:
        import ray

        host = ray.util.get_node_ip_address()
        return f"{host}:{cluster.free_ports(1, host)[0]}"

    def run(self, spec_file: str, out: str, index: int, tf_config: str) -> int:
        with (Path(out) / f"worker-{index}.log").open("w") as log:
            return subprocess.run(
                [sys.executable, "-m", processes.WORKER_MODULE, spec_file],
                env=os.environ | {"TF_CONFIG": tf_config},
                stdout=log,
                stderr=subprocess.STDOUT,
                check=False,
                preexec_fn=processes.die_with_parent,  # killed with the actor
            ).returncode


def run(spec_file: Path, out: Path, workers: int, address: str | None) -> None:
    """Start ``workers`` actors, run the fit, raise ``WorkerError`` if any worker fails."""
    import ray

    started = not ray.is_initialized()
    # Ray 2.60 writes ~/.ray/auth_token when it starts a local cluster, and a later `ray start`
    # or client on this machine then fails to authenticate: a token we caused goes with us.
    token = Path.home() / ".ray" / "auth_token"
    token_was_there = token.exists()
    if started:
        # "local": a new cluster for this fit, never one that `ray start` left on this machine
        options = {"address": address} if address else {"address": "local", "num_cpus": workers}
        ray.init(include_dashboard=False, log_to_driver=False, **options)
    actor = ray.remote(num_cpus=1)(_Worker)
    actors = [actor.remote() for _ in range(workers)]
    try:
        addresses = ray.get([a.address.remote() for a in actors])
        runs = {
            a.run.remote(str(spec_file), str(out), i, cluster.tf_config(addresses, i)): str(i)
            for i, a in enumerate(actors)
        }
        pending = list(runs)
        while pending:
            done, pending = ray.wait(pending, timeout=processes.POLL_SECONDS)
            for ref in done:
                code = ray.get(ref)
                if code != 0:
                    deadline = time.monotonic() + processes.GRACE_SECONDS
                    while pending and time.monotonic() < deadline:
                        _, pending = ray.wait(pending, timeout=processes.POLL_SECONDS)
                    raise processes.WorkerError(processes.failure_line(out, runs[ref], code))
    finally:
        for a in actors:
            ray.kill(a)
        if started:
            ray.shutdown()
            if not token_was_there:
                token.unlink(missing_ok=True)
