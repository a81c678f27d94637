"""The compiled passes over the rows: assignment, the Lloyd and mini-batch updates, row norms.

The compiled functions live at module level and take the model's variables as arguments, so
every model of the same shape (k, d) and settings shares one trace and one XLA compilation: a
sweep over seeds compiles once, a sweep over k once per k.

Whole-set passes read the rows in chunks of ``chunk_rows(d)`` rows: each chunk is converted,
assigned and accumulated while it sits in cache, so a pass reads the stored rows once (a quarter
of the bytes for uint8 images) and never holds an (n, d) float32 copy or an (n, k) distance
matrix. The best chunk follows the core's L2 cache (``CHUNK_BYTES``): at MNIST's d=784, 512 rows
(1.6 MB of float32) made the pass 1.2-1.6x faster than 2048 on a 2-core AVX2 EPYC with 512 KB
of L2 per core, and 1024 rows 1.1-1.3x faster than 512 on a 2-core AVX-512 Xeon with 2 MB (run
as AVX2 too: the cache decides, not the ISA).

``autograph=False``: the loops are explicit ``tf.while_loop``s, and skipping AutoGraph's source
conversion cuts each function's tracing from ~0.25 s to ~0.03 s.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

import numpy as np

from kmeans_exp.data import ALIGNMENT
from kmeans_exp.tf_runtime import tf

MIN_CHUNK_ROWS = 256  # below this the product runs on too few rows to be efficient


def l2_cache_bytes(cpu: Path = Path("/sys/devices/system/cpu/cpu0")) -> int:
    """The L2 cache of ``cpu``'s core, as Linux describes it ("2048K"); 0 where it cannot."""
    units = {"K": 2**10, "M": 2**20, "G": 2**30}
    for index in sorted(cpu.glob("cache/index*")):
        try:
            if (index / "level").read_text().strip() != "2":
                continue
            size = (index / "size").read_text().strip()
            return int(size.rstrip("KMG")) * units.get(size[-1:], 1)
        except (OSError, ValueError):
            continue
    return 0


# float32 bytes of one chunk of a whole-set pass at most: twice the core's L2, and no less than
# 2 MiB (what a 512 KB L2, and a machine that does not say, get).
CHUNK_BYTES = max(2 * 2**20, 2 * l2_cache_bytes())

TRACED_NAMES = (
    "train_loop",
    "assign_chunks",
    "row_norms",
    "pick_candidate",
    # the sharded passes (``sharded_passes``): one trace per block shape
    "cluster_partials",
    "assign_block",
    "nearest_point",
    "candidate_potentials",
)


class _ExpectedRetracing(logging.Filter):
    """Drops TF's retracing warning for our functions: one trace per shape is by design."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        ours = any(name in message for name in TRACED_NAMES)
        return not (ours and "triggered tf.function retracing" in message)


tf.get_logger().addFilter(_ExpectedRetracing())


class Rows(NamedTuple):
    """Training rows as stored, with the per-row numbers every pass needs.

    ``data`` is (n, d) uint8 or float32; ``inv_norms`` is 1/‖x‖ (cosine only: the L2
    normalisation, applied chunk by chunk); ``sq_norms`` is ‖x̂‖² of the rows as the engine
    sees them.
    """

    data: tf.Tensor
    inv_norms: tf.Tensor | None
    sq_norms: tf.Tensor

    def features(self) -> tf.Tensor:
        """The rows as float32 features x̂: uint8 read as value/255, normalised for cosine."""
        return features(self.data, self.inv_norms)

    def chunk(self, start: tf.Tensor | int, size: int) -> Rows:
        """Rows ``start:start+size``, with a static size (so XLA compiles a fixed shape)."""
        return Rows(*(None if t is None else chunk(t, start, size) for t in self))

    def gather(self, indices: tf.Tensor) -> Rows:
        """The rows at ``indices``."""
        return Rows(*(None if t is None else tf.gather(t, indices) for t in self))


def rows_of(data: tf.Tensor, cosine: bool) -> Rows:
    """Stored rows with their norms (one compiled pass): what every training pass reads."""
    inv_norms, sq_norms = row_norms(data, cosine)
    return Rows(data, inv_norms if cosine else None, sq_norms)


def shared_tensor(x: np.ndarray | tf.Tensor, dtype: tf.DType) -> tf.Tensor:
    """``x`` as a tensor: a NumPy array of that dtype, C-contiguous, writeable and aligned
    (``data.ALIGNMENT``, as the loaded data sets are) is shared through DLPack, not copied."""
    if (
        isinstance(x, np.ndarray)
        and x.dtype == dtype.as_numpy_dtype
        and x.ndim == 2
        and x.flags.c_contiguous
        and x.flags.writeable
        and x.ctypes.data % ALIGNMENT == 0
    ):
        return tf.experimental.dlpack.from_dlpack(x.__dlpack__())
    return tf.convert_to_tensor(x, dtype=dtype)


def features(data: tf.Tensor, inv_norms: tf.Tensor | None = None) -> tf.Tensor:
    """Stored rows as float32 features: uint8 reads as value/255, then the row scaling."""
    x = tf.cast(data, tf.float32)
    if data.dtype == tf.uint8:
        x = x / 255.0
    if inv_norms is not None:
        x = x * inv_norms[:, None]
    return x


def norms(x: tf.Tensor, cosine: bool) -> tuple[tf.Tensor, tf.Tensor]:
    """1/‖x‖ (as ``tf.math.l2_normalize`` computes it) and ‖x̂‖², per row."""
    sq = tf.reduce_sum(tf.square(x), axis=1)
    if not cosine:
        return tf.ones_like(sq), sq
    inv = tf.math.rsqrt(tf.maximum(sq, 1e-12))
    return inv, sq * tf.square(inv)


def chunk(t: tf.Tensor, start: tf.Tensor | int, size: int) -> tf.Tensor:
    """Rows ``start:start+size`` of ``t``, with a static size (so XLA compiles a fixed shape)."""
    rest = t.shape[1:]
    return tf.slice(t, [start] + [0] * len(rest), [size, *rest])


def chunk_rows(d: int) -> int:
    """Rows per chunk for d features: the largest power of two whose float32 chunk fits in
    ``CHUNK_BYTES`` (at 2 MiB: 512 at d=784, 8192 at d=64), and at least ``MIN_CHUNK_ROWS``."""
    fitting = CHUNK_BYTES // (4 * max(d, 1))
    return max(MIN_CHUNK_ROWS, 1 << (fitting.bit_length() - 1) if fitting else 0)


def fold_rows(data: tf.Tensor, body: Callable, carry: tuple) -> tuple:
    """``carry = body(start, size, carry)`` over consecutive row chunks covering all of ``data``."""
    n, d = data.shape
    size = chunk_rows(d)
    full, rest = divmod(n, size)
    if full:

        def loop(i, *c):
            return (i + 1, *body(i * size, size, c))

        carry = tuple(tf.while_loop(lambda i, *_: i < full, loop, (tf.constant(0), *carry))[1:])
    if rest:
        carry = tuple(body(full * size, rest, carry))
    return carry


def map_rows(data: tf.Tensor, fn: Callable, out_dtypes: tuple) -> tuple:
    """Per-row outputs of ``fn(start, size)`` (rows on the last axis), joined over ``data``."""
    n, d = data.shape
    size = chunk_rows(d)
    full, rest = divmod(n, size)
    parts: list[list[tf.Tensor]] = [[] for _ in out_dtypes]
    if full:
        arrays = tuple(tf.TensorArray(dtype, size=full) for dtype in out_dtypes)

        def loop(i, *tas):
            outs = fn(i * size, size)
            return (i + 1, *(ta.write(i, out) for ta, out in zip(tas, outs, strict=True)))

        arrays = tf.while_loop(lambda i, *_: i < full, loop, (tf.constant(0), *arrays))[1:]
        for part, ta in zip(parts, arrays, strict=True):
            stacked = ta.stack()  # (full, ..., chunk)
            rank = stacked.shape.rank
            perm = [*range(1, rank - 1), 0, rank - 1]
            part.append(tf.reshape(tf.transpose(stacked, perm), [*stacked.shape[1:-1], -1]))
    if rest:
        for part, out in zip(parts, fn(full * size, rest), strict=True):
            part.append(out)
    return tuple(p[0] if len(p) == 1 else tf.concat(p, axis=-1) for p in parts)


def nearest_of(
    x: tf.Tensor, sq_norms: tf.Tensor, centers: tf.Tensor, metric: str
) -> tuple[tf.Tensor, tf.Tensor]:
    """Nearest centre and the distance to it, for each row of ``x``.

    The (k, m) product (centres times rows) runs faster than (m, k). Only the part of the
    distance that varies with the centre goes through the argmin: the largest dot product for
    cosine (``centers`` already normalised), ``‖c‖² - 2x·c`` for squared Euclidean.
    """
    dots = tf.matmul(centers, x, transpose_b=True)
    if metric == "cosine":
        return tf.argmax(dots, axis=0, output_type=tf.int32), 1.0 - tf.reduce_max(dots, axis=0)
    partial = tf.reduce_sum(tf.square(centers), axis=1)[:, None] - 2.0 * dots
    nearest = tf.reduce_min(partial, axis=0)
    return tf.argmin(partial, axis=0, output_type=tf.int32), tf.maximum(sq_norms + nearest, 0.0)


def distances(x: tf.Tensor, centers: tf.Tensor, metric: str) -> tf.Tensor:
    """(n, k) distances of float features ``x`` (normalised for cosine) to ``centers``."""
    dots = tf.matmul(x, centers, transpose_b=True)
    if metric == "cosine":
        return 1.0 - dots
    x_sq = tf.reduce_sum(tf.square(x), axis=1)
    c_sq = tf.reduce_sum(tf.square(centers), axis=1)
    return tf.maximum(x_sq[:, None] - 2.0 * dots + c_sq[None, :], 0.0)


@tf.function(jit_compile=True, autograph=False)
def row_norms(data: tf.Tensor, cosine: bool) -> tuple[tf.Tensor, tf.Tensor]:
    """``norms`` of every stored row, chunk by chunk."""
    return map_rows(
        data,
        lambda start, size: norms(features(chunk(data, start, size)), cosine),
        (tf.float32, tf.float32),
    )


def assign_rows(data: tf.Tensor, centers: tf.Tensor, metric: str) -> tuple[tf.Tensor, tf.Tensor]:
    """Nearest centre and distance for every stored row (normalised per chunk for cosine)."""
    return assign_chunks(data, centers, metric, chunk_rows(data.shape[1]))


@tf.function(autograph=False, reduce_retracing=True)
def assign_chunks(
    data: tf.Tensor, centers: tf.Tensor, metric: str, rows_per_chunk: int
) -> tuple[tf.Tensor, tf.Tensor]:
    """``assign_rows`` in chunks of ``rows_per_chunk`` (given: the traced shape may be relaxed).

    Not XLA-compiled: its row count is a run-time value, so one trace serves every split
    (training, validation, test, a served batch) with no compilation per size.
    """
    n = tf.shape(data)[0]
    chunks = (n + rows_per_chunk - 1) // rows_per_chunk

    def body(i, labels, dists):
        start = i * rows_per_chunk
        size = tf.minimum(rows_per_chunk, n - start)
        x = features(tf.slice(data, [start, 0], [size, -1]))
        inv, sq = norms(x, metric == "cosine")
        if metric == "cosine":
            x = x * inv[:, None]
        idx, dist = nearest_of(x, sq, centers, metric)
        return i + 1, labels.write(i, idx), dists.write(i, dist)

    parts = (  # element_shape: an empty input concatenates to an empty output
        tf.TensorArray(tf.int32, size=chunks, infer_shape=False, element_shape=[None]),
        tf.TensorArray(tf.float32, size=chunks, infer_shape=False, element_shape=[None]),
    )
    _, labels, dists = tf.while_loop(lambda i, *_: i < chunks, body, (0, *parts))
    return labels.concat(), dists.concat()


def cluster_sums(
    rows: Rows, centers: tf.Tensor, metric: str
) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
    """Per-centre sums and counts of the rows nearest to it, and the sum of those distances."""
    k, d = centers.shape

    def body(start, size, carry):
        sums, hits, total = carry
        part = rows.chunk(start, size)
        x = part.features()
        idx, dist = nearest_of(x, part.sq_norms, centers, metric)
        sums += tf.math.unsorted_segment_sum(x, idx, k)
        hits += tf.math.unsorted_segment_sum(tf.ones_like(dist), idx, k)  # exact below 2**24
        return sums, hits, total + tf.reduce_sum(dist)

    start = (tf.zeros([k, d]), tf.zeros([k]), tf.constant(0.0))
    return fold_rows(rows.data, body, start)


@tf.function(jit_compile=True, autograph=False)
def train_loop(
    centers: tf.Variable,
    counts: tf.Variable,
    step: tf.Variable,
    rows: Rows,
    indices: tf.Tensor | None,
    count: tf.Tensor,
    metric: str,
    mini_batch: bool,
) -> tuple[tf.Tensor, tf.Tensor]:
    """``count`` updates on all rows, or on rows ``indices[i]`` at step i, in one XLA program."""

    def update(batch: Rows) -> tuple[tf.Tensor, tf.Tensor]:
        if mini_batch:
            return mini_batch_update(centers, counts, batch, metric)
        return full_batch_update(centers, batch, metric)

    if indices is None:  # a whole-set step: one per call, no loop to compile
        avg, empty = update(rows)
        step.assign_add(1)
        return avg[None], empty[None]

    def body(i, averages, empties):
        avg, empty = update(rows.gather(indices[i]))
        averages = tf.tensor_scatter_nd_update(averages, [[i]], [avg])
        empties = tf.tensor_scatter_nd_update(empties, [[i]], [empty])
        return i + 1, averages, empties

    # An explicit while loop: ``count`` stays a run-time value, so a shorter last chunk reuses
    # the compiled program instead of compiling another.
    size = indices.shape[0]
    start = (tf.constant(0), tf.zeros([size], tf.float32), tf.zeros([size], tf.int32))
    _, averages, empties = tf.while_loop(lambda i, *_: i < count, body, start)
    step.assign_add(tf.cast(count, tf.int64))
    return averages, empties


def full_batch_update(centers: tf.Variable, rows: Rows, metric: str) -> tuple[tf.Tensor, tf.Tensor]:
    """Lloyd: every centre with points becomes their mean; the others stay where they are."""
    sums, sizes, total = cluster_sums(rows, tf.convert_to_tensor(centers), metric)
    has_points = sizes > 0
    means = sums / tf.maximum(sizes, 1.0)[:, None]
    if metric == "cosine":
        means = tf.math.l2_normalize(means, axis=1)
    centers.assign(tf.where(has_points[:, None], means, centers))
    empty = tf.reduce_sum(tf.cast(tf.logical_not(has_points), tf.int32))
    return total / rows.data.shape[0], empty


def mini_batch_update(
    centers: tf.Variable, counts: tf.Variable, batch: Rows, metric: str
) -> tuple[tf.Tensor, tf.Tensor]:
    """TF's count rule: c_j += (Σd_i - k_j c_j) / (n_j + k_j); n_j += k_j."""
    current = tf.convert_to_tensor(centers)
    assign_to = tf.math.l2_normalize(current, axis=1) if metric == "cosine" else current
    sums, hits, total = cluster_sums(batch, assign_to, metric)
    new_counts = counts + tf.cast(hits, tf.int64)
    rate = 1.0 / tf.cast(new_counts, tf.float32)[:, None]
    centers.assign_add((sums - hits[:, None] * current) * rate)
    counts.assign(new_counts)
    empty = tf.reduce_sum(tf.cast(hits == 0, tf.int32))
    return total / batch.data.shape[0], empty
