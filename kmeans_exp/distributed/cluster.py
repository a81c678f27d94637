"""Each worker's place in the cluster, as the ``TF_CONFIG`` that MultiWorkerMirroredStrategy reads.

- local: N ports on 127.0.0.1, chosen free by the launcher;
- ray: each actor reports its node's address and a free port, the launcher hands out the list;
- slurm: TensorFlow's ``SlurmClusterResolver`` reads ``SLURM_PROCID``, ``SLURM_STEP_NUM_TASKS``,
  ``SLURM_STEP_NODELIST`` and ``SLURM_STEP_TASKS_PER_NODE`` (what ``srun`` sets): task i of a
  node listens on ``port_base + i``.
"""

from __future__ import annotations

import json
import shutil
import socket
from contextlib import ExitStack

CPU_TASK_SLOTS = 4096  # the most SLURM tasks per CPU node the resolver accepts here


def free_ports(count: int, host: str = "127.0.0.1") -> list[int]:
    """``count`` distinct ports free on ``host`` now (held together while chosen)."""
    with ExitStack() as stack:
        sockets = [stack.enter_context(socket.socket()) for _ in range(count)]
        for s in sockets:
            s.bind((host, 0))
        return [s.getsockname()[1] for s in sockets]


def tf_config(addresses: list[str], index: int) -> str:
    """``TF_CONFIG`` of worker ``index`` among ``addresses`` (host:port, worker 0 the chief)."""
    return json.dumps(
        {"cluster": {"worker": addresses}, "task": {"type": "worker", "index": index}}
    )


def slurm_tf_config(port_base: int) -> str:
    """``TF_CONFIG`` of this SLURM task, from ``srun``'s environment (TensorFlow's resolver)."""
    from kmeans_exp.tf_runtime import tf

    if shutil.which("nvidia-smi"):  # GPUs: the resolver shares them out among the tasks
        resolver = tf.distribute.cluster_resolver.SlurmClusterResolver(port_base=port_base)
    else:
        # No GPUs: TF 2.21's resolver pairs each task of a node with a GPU slot (zero slots
        # fail with "range() arg 3 must not be zero"), so it is given slots it leaves unused.
        resolver = tf.distribute.cluster_resolver.SlurmClusterResolver(
            port_base=port_base, gpus_per_node=CPU_TASK_SLOTS, gpus_per_task=1, auto_set_gpu=False
        )
    cluster = resolver.cluster_spec().as_dict()
    task_type, task_id = resolver.get_task_info()
    return json.dumps({"cluster": cluster, "task": {"type": task_type, "index": task_id}})


def rank_of(config: str) -> int:
    """The worker number in a ``TF_CONFIG``."""
    return int(json.loads(config)["task"]["index"])
