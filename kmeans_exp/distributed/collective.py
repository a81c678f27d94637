"""The all-reduce between the workers of one fit: TensorFlow's ``MultiWorkerMirroredStrategy``.

The strategy reads the cluster from ``TF_CONFIG`` (one strategy per process). Each ``sum`` is
one ``ReplicaContext.all_reduce`` (RING over gRPC on CPUs, NCCL on GPUs), run eagerly and
outside XLA (XLA cannot compile a cross-worker collective). ``timeout_seconds`` bounds every
collective: a worker that stops answering makes the others fail instead of hang.
"""

from __future__ import annotations

import logging

import numpy as np

from kmeans_exp.tf_runtime import tf


class StrategyReducer:
    """``kmeans_exp.engine.reduce.Reducer`` over the workers of ``TF_CONFIG``."""

    def __init__(self, timeout_seconds: float) -> None:
        options = tf.distribute.experimental.CommunicationOptions(
            implementation=tf.distribute.experimental.CommunicationImplementation.RING,
            timeout_seconds=timeout_seconds,
        )
        self.strategy = tf.distribute.MultiWorkerMirroredStrategy(communication_options=options)
        resolver = self.strategy.cluster_resolver
        self.rank = int(resolver.task_id)
        self.workers = int(self.strategy.extended._num_workers)
        self.seconds = 0.0

    def sum(self, values: np.ndarray) -> np.ndarray:
        def reduce(x: tf.Tensor) -> tf.Tensor:
            return tf.distribute.get_replica_context().all_reduce("sum", x)

        total = self.strategy.run(reduce, args=(tf.constant(values, tf.float64),))
        return self.strategy.experimental_local_results(total)[0].numpy()


class _EagerNotice(logging.Filter):
    """Drops the strategy's "used eagerly has significant overhead" notice: in a tf.function
    this TensorFlow fails the call ("destinations can not be empty"); eagerly a sum costs a few
    milliseconds, which the benchmark measures (the collective's share of a step)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "eagerly has significant overhead" not in record.getMessage()


tf.get_logger().addFilter(_EagerNotice())
