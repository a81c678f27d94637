"""The compiled passes of a sharded fit: one call per block of rows read from the shards.

A whole-set pass streams blocks of ``block_rows(d)`` rows out of the memory maps, pads the last
one (so XLA compiles one shape), and folds the block's cache-sized chunks in one compiled call,
as the in-memory passes do (``passes.fold_rows``). Sums are float64 and counts exact, so the
totals of N workers added by one all-reduce equal one worker's up to float64 rounding. A row
with NaN or inf is left out of every total and reported (its place in the block).
"""

from __future__ import annotations

from kmeans_exp.engine import passes
from kmeans_exp.tf_runtime import tf

BLOCK_CHUNKS = 16  # chunks per compiled call: the Python loop's cost vanishes next to 16 chunks
CLEAN = 2**31 - 1  # ``first_bad`` when a block holds no NaN or inf
EXACT_BYTE_ROWS = 2**24 // 255  # rows of bytes whose float32 sum is exact (below 2**24)


def block_rows(d: int) -> int:
    """Rows per block read from the shards: ``BLOCK_CHUNKS`` cache-sized chunks."""
    return BLOCK_CHUNKS * passes.chunk_rows(d)


def _features(part: tf.Tensor, cosine: bool) -> tuple[tf.Tensor, tf.Tensor]:
    """Rows as the engine sees them (normalised for cosine) and their ‖x̂‖²."""
    x = passes.features(part)
    inv, sq = passes.norms(x, cosine)
    return (x * inv[:, None] if cosine else x), sq


def _fold(data: tf.Tensor, valid: tf.Tensor, body, carry: tuple, check: bool = True) -> tuple:
    """``passes.fold_rows`` with each chunk's rows, their mask (row < valid, finite) and the
    first non-finite row (``CLEAN`` if none) carried along; ``check=False`` (rows a pass has
    already checked) leaves the finite test out."""

    def step(start, size, c):
        *inner, bad = c
        part = passes.chunk(data, start, size)
        rows = start + tf.range(size)
        real = rows < valid
        if data.dtype == tf.uint8 or not check:  # bytes are always finite
            return (*body(part, real, tuple(inner)), bad)
        finite = tf.reduce_all(tf.math.is_finite(part), axis=1)
        first = tf.reduce_min(tf.where(real & ~finite, rows, CLEAN))
        return (*body(part, real & finite, tuple(inner)), tf.minimum(bad, first))

    return passes.fold_rows(data, step, (*carry, tf.constant(CLEAN)))


@tf.function(jit_compile=True, autograph=False)
def cluster_partials(
    data: tf.Tensor, valid: tf.Tensor, centers: tf.Tensor, metric: str, check: bool = True
) -> tuple[tf.Tensor, ...]:
    """Per-centre float64 sums and counts of the block's valid rows nearest to each centre, the
    float64 sum of those distances, and the first non-finite row (``check``: rows no earlier
    pass has checked; the test costs about a tenth of the pass on float rows).

    Bytes (uint8 rows, squared Euclidean) are summed as their integer values in float32, exact
    for a chunk (at most ``EXACT_BYTE_ROWS`` rows), then added up in float64 and divided by 255
    once: exact, and cheaper than float64 sums of the float rows.
    """
    k, d = centers.shape
    as_bytes = (
        data.dtype == tf.uint8 and metric != "cosine" and passes.chunk_rows(d) <= EXACT_BYTE_ROWS
    )

    def body(part, mask, carry):
        sums, hits, total = carry
        x, sq = _features(part, metric == "cosine")
        idx, dist = passes.nearest_of(x, sq, centers, metric)
        idx = tf.where(mask, idx, k)  # left-out rows go to a segment that is dropped
        if as_bytes:
            values = tf.math.unsorted_segment_sum(tf.cast(part, tf.float32), idx, k + 1)
            sums += tf.cast(values[:k], tf.float64)
        else:
            sums += tf.math.unsorted_segment_sum(tf.cast(x, tf.float64), idx, k + 1)[:k]
        hits += tf.math.unsorted_segment_sum(tf.ones_like(idx, tf.float64), idx, k + 1)[:k]
        total += tf.reduce_sum(tf.where(mask, tf.cast(dist, tf.float64), 0.0))
        return sums, hits, total

    start = (tf.zeros([k, d], tf.float64), tf.zeros([k], tf.float64), tf.constant(0.0, tf.float64))
    sums, hits, total, bad = _fold(data, valid, body, start, check)
    return (sums / 255.0 if as_bytes else sums), hits, total, bad


@tf.function(jit_compile=True, autograph=False)
def assign_block(
    data: tf.Tensor, valid: tf.Tensor, centers: tf.Tensor, metric: str
) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
    """Nearest centre and distance of every row of the block, and its first non-finite row."""

    def body(part, mask, carry):
        x, sq = _features(part, metric == "cosine")
        idx, dist = passes.nearest_of(x, sq, centers, metric)
        return (carry[0].write(carry[2], idx), carry[1].write(carry[2], dist), carry[2] + 1)

    chunks = -(-data.shape[0] // passes.chunk_rows(data.shape[1]))
    arrays = (tf.TensorArray(tf.int32, size=chunks), tf.TensorArray(tf.float32, size=chunks))
    idx, dist, _, bad = _fold(data, valid, body, (*arrays, tf.constant(0)))
    return tf.reshape(idx.stack(), [-1]), tf.reshape(dist.stack(), [-1]), bad


@tf.function(jit_compile=True, autograph=False)
def nearest_point(
    data: tf.Tensor, valid: tf.Tensor, points: tf.Tensor, real_points: tf.Tensor, cosine: bool
) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
    """Squared Euclidean distance of each row (normalised for cosine, as k-means++ sees it) to
    its nearest of the first ``real_points`` of ``points`` (padded to a fixed count), that
    point's index, and the first non-finite row."""
    penalty = tf.where(tf.range(points.shape[0]) < real_points, 0.0, float("inf"))
    p_sq = tf.reduce_sum(tf.square(points), axis=1) + penalty

    def body(part, mask, carry):
        x, sq = _features(part, cosine)
        dots = tf.matmul(x, points, transpose_b=True)
        dist = tf.maximum(sq[:, None] - 2.0 * dots + p_sq[None, :], 0.0)
        best = tf.argmin(dist, axis=1, output_type=tf.int32)
        return (
            carry[0].write(carry[2], tf.reduce_min(dist, axis=1)),
            carry[1].write(carry[2], best),
            carry[2] + 1,
        )

    chunks = -(-data.shape[0] // passes.chunk_rows(data.shape[1]))
    arrays = (tf.TensorArray(tf.float32, size=chunks), tf.TensorArray(tf.int32, size=chunks))
    dist, best, _, bad = _fold(data, valid, body, (*arrays, tf.constant(0)))
    return tf.reshape(dist.stack(), [-1]), tf.reshape(best.stack(), [-1]), bad


@tf.function(jit_compile=True, autograph=False)
def candidate_potentials(
    data: tf.Tensor, valid: tf.Tensor, nearest: tf.Tensor, points: tf.Tensor, cosine: bool
) -> tuple[tf.Tensor, tf.Tensor]:
    """For each of the k-means++ candidates ``points``: the float64 sum over the block's valid
    rows of min(``nearest``, squared distance to it), the potential once it is chosen."""
    p_sq = tf.reduce_sum(tf.square(points), axis=1)
    size = passes.chunk_rows(data.shape[1])

    def body(part, mask, carry):
        (total, i) = carry
        x, sq = _features(part, cosine)
        dist = tf.maximum(sq[:, None] - 2.0 * tf.matmul(x, points, transpose_b=True) + p_sq, 0.0)
        near = tf.slice(nearest, [i * size], [part.shape[0]])
        kept = tf.where(mask[:, None], tf.minimum(near[:, None], dist), 0.0)
        return total + tf.reduce_sum(tf.cast(kept, tf.float64), axis=0), i + 1

    total, _, bad = _fold(data, valid, body, (tf.zeros([points.shape[0]], tf.float64), 0))
    return total, bad
