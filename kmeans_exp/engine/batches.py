"""Which rows each mini-batch step reads: distinct, uniform, and a pure function of (seed, step).

A step's batch is ``batch_size`` distinct rows, drawn by TF's stateless index shuffle from the
run's seed and the step number. No random state is carried between steps, so a run can be
cut and continued (``KMeans.fit(..., resume=True)``) and still read the same batches.
"""

from __future__ import annotations

from kmeans_exp.tf_runtime import tf

# A sampled step is short; a compiled call costs TensorFlow some fixed overhead. So one call
# runs about ROWS_PER_CALL rows' worth of steps, MAX_STEPS_PER_CALL at most.
ROWS_PER_CALL = 65_536
MAX_STEPS_PER_CALL = 256
# Step s of the batch stream is seeded with BATCH_STREAM_OFFSET + s: a prime offset far above
# any step count, so the batch stream's seeds never meet those of another stream of the seed.
BATCH_STREAM_OFFSET = 1_000_003
# The constant that ``tf.random.experimental.index_shuffle`` prepends to a [seed, step] pair.
# Its wrapper cannot take a batch of seeds (TF 2.21), so we build its three-part seed ourselves.
INDEX_SHUFFLE_PAD = 498247692


def steps_per_call(batch_size: int | None, samples: bool) -> int:
    """Steps run by one compiled call: 1 for whole-set steps, more for small batches."""
    if not samples:
        return 1
    return max(1, min(MAX_STEPS_PER_CALL, ROWS_PER_CALL // batch_size))


def batch_rows(first_step: int, count: int, batch_size: int, n: int, seed: int) -> tf.Tensor:
    """(count, batch_size) row indices for steps ``first_step`` ... (0-based), of n rows."""
    steps = tf.range(first_step, first_step + count, dtype=tf.int64)
    step_seeds = tf.repeat(BATCH_STREAM_OFFSET + steps, batch_size)
    seeds = tf.stack(
        [
            tf.fill([count * batch_size], tf.constant(INDEX_SHUFFLE_PAD, tf.int64)),
            tf.fill([count * batch_size], tf.constant(seed, tf.int64)),
            step_seeds,
        ],
        axis=1,
    )
    positions = tf.tile(tf.range(batch_size, dtype=tf.int64), [count])
    rows = tf.raw_ops.RandomIndexShuffle(
        index=positions, seed=seeds, max_index=tf.constant(n - 1, tf.int64), rounds=4
    )
    return tf.reshape(rows, [count, batch_size])
