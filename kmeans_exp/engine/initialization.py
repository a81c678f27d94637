"""The initial centres: TensorFlow's ``random`` and ``kmeans_plus_plus`` rules, seeded.

``random`` draws k row indices uniformly with replacement (duplicate centres are possible, as
in TF). ``kmeans_plus_plus`` draws the first centre uniformly and each next one as the best
(lowest potential) of ``1 + retries`` candidates sampled in proportion to the squared distance
to the nearest chosen centre (TF's ``kmeans_plus_plus_initialization``). All draws are
stateless: the same seed gives the same centres.
"""

from __future__ import annotations

import numpy as np

from kmeans_exp.engine.passes import Rows, map_rows
from kmeans_exp.tf_runtime import tf

# The seed of k-means++ choice i is (seed[0], seed[1] + i * CHOICE_SEED_STRIDE): a prime
# stride, so each choice draws from its own stateless stream and no two choices of the same
# run (i < k) share one.
CHOICE_SEED_STRIDE = 7919


def initial_indices(rows: Rows, k: int, method: str, seed: tf.Tensor, retries: int) -> tf.Tensor:
    """Indices of the k rows that become the initial centres (``method``: the config's init)."""
    if method == "random":
        n = rows.data.shape[0]
        return tf.random.stateless_uniform([k], seed, minval=0, maxval=n, dtype=tf.int64)
    return kmeans_plus_plus(rows, k, seed, retries)


@tf.function(jit_compile=True, autograph=False)
def pick_candidate(
    rows: Rows, nearest: tf.Tensor, candidates: tf.Tensor
) -> tuple[tf.Tensor, tf.Tensor]:
    """One greedy k-means++ choice: the candidate row that lowers the potential most.

    ``nearest`` is each row's squared distance to its nearest chosen centre; returns the index
    (into ``candidates``) of the best one and ``nearest`` once it is chosen. One pass over rows.
    """
    points = rows.gather(candidates).features()
    p_sq = tf.reduce_sum(tf.square(points), axis=1)

    def chunk(start, size):
        part = rows.chunk(start, size)
        dots = tf.matmul(part.features(), points, transpose_b=True)  # (size, m): faster here
        sq = part.sq_norms[:, None] - 2.0 * dots + p_sq[None, :]
        return (tf.transpose(tf.maximum(sq, 0.0)),)

    (cand_dist,) = map_rows(rows.data, chunk, (tf.float32,))
    potentials = tf.reduce_sum(tf.minimum(nearest[None, :], cand_dist), axis=1)
    best = tf.argmin(potentials, output_type=tf.int32)
    # tf.gather, not cand_dist[best]: XLA compiles that dynamic slice 8x slower, and runs it 3x.
    return best, tf.minimum(nearest, tf.gather(cand_dist, best))


def kmeans_plus_plus(rows: Rows, k: int, seed: tf.Tensor, retries: int) -> tf.Tensor:
    """k-means++ with greedy candidate selection: the indices of the k chosen rows.

    Each choice is one compiled pass over the rows; the draws (TF's stateless categorical on
    log squared distances) run between them.
    """
    n = rows.data.shape[0]
    first = tf.random.stateless_uniform([1], seed, minval=0, maxval=n, dtype=tf.int64)
    chosen = [first[0]]
    # The first centre alone: its distances come out as ``nearest`` (min with +inf).
    _, nearest = pick_candidate(rows, tf.fill([n], np.inf), tf.repeat(first, 1 + retries))
    for i in range(1, k):
        total = tf.reduce_sum(nearest)
        # Every point already a centre (fewer distinct points than k): draw uniformly.
        logits = tf.where(total > 0, tf.math.log(nearest), tf.zeros_like(nearest))
        step_seed = tf.stack([seed[0], seed[1] + i * CHOICE_SEED_STRIDE])
        candidates = tf.random.stateless_categorical(
            logits[None, :], 1 + retries, step_seed, dtype=tf.int64
        )[0]
        best, nearest = pick_candidate(rows, nearest, candidates)
        chosen.append(candidates[best])
    return tf.stack(chosen)
