"""TensorFlow's own ``clustering_ops.KMeans``, run the way the original tutorial ran it.

The op is private and graph-only in TensorFlow 2 (``tf.compat.v1`` placeholders and a Session),
so it is no engine for kmeans_exp; it is the reference the tests check the engine against and
the peer the benchmark times. One function runs it, for both.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class LegacyRun:
    """What one run of the legacy op gave."""

    centers: np.ndarray  # (k, d) as the op stores them (unnormalised in cosine mini-batch)
    avg_distances: list[float]  # mean distance to the nearest centre at each step, before it
    step_seconds: list[float]  # wall time of each step's session call
    total_seconds: float  # variables, initialisation and every step


def legacy_train(
    x: np.ndarray,
    initial_centers: np.ndarray,
    metric: str,
    use_mini_batch: bool,
    batches: list[np.ndarray],
    threads: int = 1,
) -> LegacyRun:
    """Train ``clustering_ops.KMeans`` from ``initial_centers``, feeding ``batches[i]`` at step i.

    ``x`` initialises the op's variables; ``threads`` sets the session's inter- and intra-op
    thread pools (1 makes the mini-batch op's race deterministic).
    """
    from tensorflow.python.ops import clustering_ops

    from kmeans_exp.tf_runtime import tf

    graph = tf.Graph()
    with graph.as_default():
        inputs = tf.compat.v1.placeholder(tf.float32, shape=[None, x.shape[1]])
        km = clustering_ops.KMeans(
            inputs,
            len(initial_centers),
            initial_clusters=initial_centers,
            distance_metric=metric,
            use_mini_batch=use_mini_batch,
        )
        _, _, scores, _, init_op, train_op = km.training_graph()
        avg = tf.reduce_mean(scores[0])
        centers_var = next(v for v in tf.compat.v1.global_variables() if v.op.name == "clusters")
        config = tf.compat.v1.ConfigProto(
            inter_op_parallelism_threads=threads, intra_op_parallelism_threads=threads
        )
        with tf.compat.v1.Session(graph=graph, config=config) as sess:
            start = time.perf_counter()
            sess.run(tf.compat.v1.global_variables_initializer(), feed_dict={inputs: x})
            sess.run(init_op, feed_dict={inputs: x})
            history, step_seconds = [], []
            for batch in batches:
                t = time.perf_counter()
                history.append(float(sess.run([avg, train_op], feed_dict={inputs: batch})[0]))
                step_seconds.append(time.perf_counter() - t)
            total = time.perf_counter() - start
            return LegacyRun(sess.run(centers_var), history, step_seconds, total)
