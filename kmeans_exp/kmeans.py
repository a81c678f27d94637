"""K-Means in TensorFlow 2 with the semantics of TensorFlow's own ``clustering_ops.KMeans``.

What is reproduced (``docs/design.md`` says more, with the tests that pin each point):

- ``cosine``: inputs are L2-normalised; the distance of x to centre c is ``1 - x̂·ĉ``.
  ``squared_euclidean``: ``‖x‖² - 2x·c + ‖c‖²`` (clamped at 0 against round-off).
- init ``random``: k indices drawn uniformly with replacement; ``kmeans_plus_plus``: first centre
  uniform, each next one the best (lowest potential) of ``1 + retries`` candidates drawn with
  probability ∝ squared distance to the nearest chosen centre (on x̂ for cosine).
- full batch (Lloyd): every centre becomes the mean of its points (renormalised for cosine).
- mini-batch: per-centre counts start at 1 and never reset; a centre j that receives k_j points
  d_i of the batch moves by ``(Σd_i - k_j·c_j) / (n_j + k_j)`` and ``n_j += k_j``. With cosine
  the stored centres are running means of x̂ and are normalised only to assign points, as in TF.
- each step reports the mean distance of the batch to its nearest centre, measured with the
  centres before that step's update (the number the tutorial printed).

Where we differ from TensorFlow's op, on purpose:

- Empty clusters: TF's full-batch op divides by ``count + 1e-6`` and so turns a centre with no
  points into the zero vector. Here a centre that receives no point keeps its previous value,
  and the number of such centres is reported each step (``StepStats.empty_clusters``).
- TF's mini-batch op reads the counts unordered with its own ``scatter_add`` on them (a race:
  the rate is sometimes ``1/(n_j + 2k_j)``). Here the documented ``1/(n_j + k_j)`` always holds.
- Restarts (``n_init``, as scikit-learn's and faiss's ``nredo``): restart i uses seed
  ``seed + i`` and the one with the lowest final inertia on the training rows is kept.

Randomness is stateless, derived from ``seed``: the same seed, data and settings give the same
centres on the same device run after run.

Inputs are float arrays or uint8 images. uint8 is read as value / 255 (the convention of
``tf.image.convert_image_dtype``) and stays uint8 in memory: every pass over the rows converts
them chunk by chunk inside its compiled program, so training holds no float copy of the data.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np

from kmeans_exp import options
from kmeans_exp.data import ALIGNMENT
from kmeans_exp.errors import ConfigError
from kmeans_exp.tf_import import tf

# Salts that keep the random streams of initialisation and batch sampling apart.
_INIT_SALT = 0
_BATCH_SALT = 1
_ROWS_PER_CALL = 65_536
_CHUNK_ROWS = 2048  # rows per chunk of a whole-set pass: ~6 MB of float32, cache-sized
_INDEX_SHUFFLE_PAD = 498247692  # the constant tf.random.experimental.index_shuffle prepends


@dataclass(frozen=True)
class StepStats:
    """What one training step measured.

    ``seconds`` is the wall time of the compiled call that ran this step divided by the steps
    it ran: exact for whole-set steps (one per call), a chunk's average for sampled batches.
    """

    step: int
    avg_distance: float
    empty_clusters: int
    seconds: float
    restart: int = 0


class KMeans(tf.Module):
    """K-Means clustering with TensorFlow's ``clustering_ops.KMeans`` semantics.

    Parameters
    ----------
    n_clusters : number of centres k.
    distance_metric : ``"cosine"`` or ``"squared_euclidean"``.
    init : ``"random"`` or ``"kmeans_plus_plus"``; ``fit`` also takes explicit initial centres.
    use_mini_batch : False for full-batch Lloyd steps, True for TF's count-based mini-batch rule.
    batch_size : points sampled (without replacement) each mini-batch step; None = every point
        each step (what the TensorFlow tutorial did). Ignored in full batch.
    seed : seeds initialisation and batch sampling (restart i uses ``seed + i``).
    n_init : independent restarts; ``fit`` keeps the one with the lowest training inertia.
    kmeans_plus_plus_num_retries : extra candidates drawn for each k-means++ centre (TF: 2).

    ``fit``, ``predict`` and the other methods take (n, d) float rows or uint8 pixels (read as
    value / 255, never copied to float). Bad arguments raise ``ValueError``
    (``kmeans_exp.errors.ConfigError``) naming the argument.
    Attributes set by ``fit`` end in ``_``: ``cluster_centers_``, ``history_`` (one ``StepStats``
    per step of the kept restart), ``labels_`` and ``inertia_`` (nearest final centre of every
    training row, and the sum of those distances), ``restart_inertia_`` (each restart's final
    inertia), ``best_restart_``, ``prepare_seconds_`` (inputs as the engine sees them) and
    ``init_seconds_`` (initialisation time, all restarts).
    """

    def __init__(
        self,
        n_clusters: int,
        *,
        distance_metric: str = "cosine",
        init: str = "kmeans_plus_plus",
        use_mini_batch: bool = False,
        batch_size: int | None = None,
        seed: int = 0,
        n_init: int = 1,
        kmeans_plus_plus_num_retries: int = 2,
        name: str | None = None,
    ) -> None:
        super().__init__(name=name)
        self.n_clusters = options.at_least("n_clusters", n_clusters, 1, "the number of clusters")
        self.distance_metric = options.choice(
            "distance_metric", distance_metric, options.DistanceMetric
        ).value
        self.init = options.choice("init", init, options.Init).value
        self.use_mini_batch = bool(use_mini_batch)
        self.batch_size = options.batch_size("batch_size", batch_size)
        self.seed = options.at_least("seed", seed, 0)
        self.n_init = options.at_least("n_init", n_init, 1, "the number of restarts")
        self.kmeans_plus_plus_num_retries = options.at_least(
            "kmeans_plus_plus_num_retries", kmeans_plus_plus_num_retries, 0
        )
        self._active_seed = self.seed  # the seed of the restart being trained
        self.history_: list[StepStats] = []
        self.restart_inertia_: list[float] = []
        self.best_restart_ = 0
        self._centers: tf.Variable | None = None
        self._counts: tf.Variable | None = None
        self.init_seconds_ = 0.0
        self.prepare_seconds_ = 0.0
        self.labels_: np.ndarray | None = None
        self.inertia_: float | None = None
        self._step = tf.Variable(0, dtype=tf.int64, trainable=False, name="step")

    # ------------------------------------------------------------------ public API

    @property
    def cluster_centers_(self) -> np.ndarray:
        """The stored centres, (k, d) float32 (running means of x̂ in cosine mini-batch)."""
        return self._require_centers().numpy()

    @property
    def cluster_counts_(self) -> np.ndarray | None:
        """Per-centre point counts of the mini-batch rule (start at 1; unused in full batch)."""
        return None if self._counts is None else self._counts.numpy()

    def initialize(self, x: np.ndarray, initial_centers: np.ndarray | None = None) -> KMeans:
        """Choose the initial centres (or take ``initial_centers``) and reset the counts."""
        rows = self._rows(x)
        options.fits_rows(self.n_clusters, None, rows.data.shape[0], "n_clusters")
        return self._initialize(rows, initial_centers)

    def _initialize(self, rows: Rows, initial_centers: np.ndarray | None) -> KMeans:
        n, d = rows.data.shape
        if initial_centers is not None:
            centers = _features(self._stored(initial_centers, "initial_centers"))
            if centers.shape != (self.n_clusters, d):
                raise ValueError(
                    f"initial_centers has shape {tuple(centers.shape)}, "
                    f"expected ({self.n_clusters}, {d})"
                )
        else:
            seed = self._seed_tensor(_INIT_SALT)
            if self.init == "random":
                chosen = tf.random.stateless_uniform(
                    [self.n_clusters], seed, minval=0, maxval=n, dtype=tf.int64
                )
            else:
                retries = self.kmeans_plus_plus_num_retries
                chosen = _kmeans_plus_plus(rows, self.n_clusters, seed, retries)
            centers = rows.gather(chosen).features()
        if self.distance_metric == "cosine":
            centers = tf.math.l2_normalize(centers, axis=1)
        if self._centers is None or self._centers.shape != centers.shape:
            self._centers = tf.Variable(centers, trainable=False, name="centers")
            self._counts = tf.Variable(
                tf.ones([self.n_clusters], tf.int64), trainable=False, name="counts"
            )
        else:
            self._centers.assign(centers)
            self._counts.assign(tf.ones([self.n_clusters], tf.int64))
        self._step.assign(0)
        self.history_ = []
        return self

    def fit(
        self,
        x: np.ndarray,
        steps: int,
        initial_centers: np.ndarray | None = None,
        callback: Callable[[StepStats], None] | None = None,
    ) -> KMeans:
        """Initialise, then run ``steps`` training steps, ``n_init`` times; keep the best restart.

        ``callback`` sees every step's stats, of every restart (``StepStats.restart``).
        Restarts share one compiled program: after the first, only their steps cost.
        """
        options.at_least("steps", steps, 1)
        if initial_centers is not None and self.n_init > 1:
            raise ConfigError(
                f"n_init={self.n_init}: explicit initial_centers allow one run only (n_init=1)"
            )
        start = time.perf_counter()
        rows = self._rows(x)
        options.fits_rows(self.n_clusters, self.batch_size, rows.data.shape[0], "n_clusters")
        self.prepare_seconds_ = time.perf_counter() - start
        per_call = self.steps_per_call(rows.data.shape[0])
        self.init_seconds_ = 0.0
        self.restart_inertia_ = []
        best: tuple[float, np.ndarray, np.ndarray, list[StepStats], np.ndarray] | None = None
        for restart in range(self.n_init):
            self._active_seed = self.seed + restart
            start = time.perf_counter()
            self._initialize(rows, initial_centers)
            self.init_seconds_ += time.perf_counter() - start
            done = 0
            while done < steps:
                count = min(per_call, steps - done)
                for stats in self._run_steps(rows, count, per_call, restart):
                    if callback is not None:
                        callback(stats)
                done += count
            labels, distances = _assign_rows(
                rows.data, self._assignment_centers(), self.distance_metric
            )
            inertia = float(np.sum(distances.numpy(), dtype=np.float64))
            self.restart_inertia_.append(inertia)
            if best is None or inertia < best[0]:
                state = (self._centers.numpy(), self._counts.numpy())
                best = (inertia, *state, self.history_, labels.numpy())
        self._active_seed = self.seed
        self.inertia_, centers, counts, self.history_, self.labels_ = best
        self.best_restart_ = self.restart_inertia_.index(self.inertia_)
        if self.n_init > 1:
            self._centers.assign(centers)
            self._counts.assign(counts)
        return self

    def steps_per_call(self, n: int) -> int:
        """Steps run by one compiled call: 1 for whole-set steps, more for small batches.

        Each call costs TensorFlow some fixed overhead, so sampled batches run about 64k rows'
        worth of steps per call (256 steps at most); a whole-set step is its own call.
        """
        if not self._samples_batches(n):
            return 1
        return max(1, min(256, _ROWS_PER_CALL // self.batch_size))

    def batch_indices(self, step: int, n: int) -> tf.Tensor | None:
        """Rows of mini-batch ``step`` (0-based): distinct, uniform, reproducible; None = all."""
        if not self._samples_batches(n):
            return None
        return self._chunk_indices(step, 1, n, self.seed)[0]

    def _samples_batches(self, n: int) -> bool:
        """Whether a step uses a sampled batch of ``n`` rows rather than all of them."""
        return self.use_mini_batch and self.batch_size is not None and self.batch_size < n

    def _chunk_indices(self, first_step: int, count: int, n: int, seed: int) -> tf.Tensor:
        """(count, batch_size) row indices for steps ``first_step`` ... (stateless per step)."""
        size = self.batch_size
        steps = tf.range(first_step, first_step + count, dtype=tf.int64)
        step_seeds = tf.repeat(_BATCH_SALT * 1_000_003 + steps, size)
        # A per-row seed [pad, seed, step]: what tf.random.experimental.index_shuffle builds from
        # a [seed, step] pair, which its wrapper cannot do for a batch of seeds (TF 2.21).
        seeds = tf.stack(
            [
                tf.fill([count * size], tf.constant(_INDEX_SHUFFLE_PAD, tf.int64)),
                tf.fill([count * size], tf.constant(seed, tf.int64)),
                step_seeds,
            ],
            axis=1,
        )
        positions = tf.tile(tf.range(size, dtype=tf.int64), [count])
        rows = tf.raw_ops.RandomIndexShuffle(
            index=positions, seed=seeds, max_index=tf.constant(n - 1, tf.int64), rounds=4
        )
        return tf.reshape(rows, [count, size])

    def _run_steps(self, rows: Rows, count: int, per_call: int, restart: int) -> list[StepStats]:
        """``count`` (<= ``per_call``) training steps in one compiled call."""
        first = int(self._step.numpy())
        start = time.perf_counter()
        indices = None
        n = rows.data.shape[0]
        if self._samples_batches(n):
            indices = self._chunk_indices(first, count, n, self._active_seed)
            indices = tf.pad(indices, [[0, per_call - count], [0, 0]])  # one compiled shape
        avg, empty = _train_loop(
            self._centers,
            self._counts,
            self._step,
            rows,
            indices,
            tf.constant(count),
            self.distance_metric,
            self.use_mini_batch,
        )
        avg, empty = avg.numpy(), empty.numpy()
        seconds = (time.perf_counter() - start) / count
        stats = [
            StepStats(first + i + 1, float(avg[i]), int(empty[i]), seconds, restart)
            for i in range(count)
        ]
        self.history_.extend(stats)
        return stats

    def prepare(self, x: np.ndarray | tf.Tensor) -> tf.Tensor:
        """Inputs as the engine sees them: float32 (n, d), L2-normalised for cosine.

        Training never builds this whole array; it converts the stored rows chunk by chunk.
        """
        xs = _features(self._stored(x))
        return tf.math.l2_normalize(xs, axis=1) if self.distance_metric == "cosine" else xs

    def assign(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Index of the nearest centre and the distance to it, for every row of ``x``."""
        data = self._stored(x)
        idx, dist = _assign_rows(data, self._assignment_centers(), self.distance_metric)
        return idx.numpy(), dist.numpy()

    def predict(self, x: np.ndarray) -> np.ndarray:
        """Index of the nearest centre for every row of ``x``."""
        return self.assign(x)[0]

    def transform(self, x: np.ndarray) -> np.ndarray:
        """Distance of every row of ``x`` to every centre, (n, k)."""
        xs = self.prepare(x)
        return _distances(xs, self._assignment_centers(), self.distance_metric).numpy()

    def inertia(self, x: np.ndarray) -> float:
        """Sum over rows of the distance to the nearest centre (the k-means objective)."""
        return float(np.sum(self.assign(x)[1], dtype=np.float64))

    def save(self, path: str | Path) -> Path:
        """Write the centres, counts and settings to an ``.npz`` file; ``restore`` reads it."""
        path = Path(path)
        np.savez(
            path,
            centers=self.cluster_centers_,
            counts=self._counts.numpy(),
            step=self._step.numpy(),
            n_clusters=self.n_clusters,
            distance_metric=self.distance_metric,
            init=self.init,
            use_mini_batch=self.use_mini_batch,
            batch_size=-1 if self.batch_size is None else self.batch_size,
            seed=self.seed,
            n_init=self.n_init,
            kmeans_plus_plus_num_retries=self.kmeans_plus_plus_num_retries,
        )
        return path if path.suffix == ".npz" else path.with_suffix(path.suffix + ".npz")

    @classmethod
    def restore(cls, path: str | Path) -> KMeans:
        """A model rebuilt from ``save``'s file, ready to predict or to train further."""
        with np.load(path, allow_pickle=False) as f:
            batch_size = int(f["batch_size"])
            model = cls(
                int(f["n_clusters"]),
                distance_metric=str(f["distance_metric"]),
                init=str(f["init"]),
                use_mini_batch=bool(f["use_mini_batch"]),
                batch_size=None if batch_size < 0 else batch_size,
                seed=int(f["seed"]),
                n_init=int(f["n_init"]) if "n_init" in f.files else 1,
                kmeans_plus_plus_num_retries=int(f["kmeans_plus_plus_num_retries"]),
            )
            model._centers = tf.Variable(f["centers"], trainable=False, name="centers")
            model._counts = tf.Variable(f["counts"], trainable=False, name="counts")
            model._step.assign(int(f["step"]))
        return model

    # ------------------------------------------------------------------ internals

    def _seed_tensor(self, salt: int) -> tf.Tensor:
        return tf.constant([self._active_seed, salt], tf.int64)

    def _require_centers(self) -> tf.Variable:
        if self._centers is None:
            raise RuntimeError("the model has no centres yet: call fit() or initialize() first")
        return self._centers

    def _stored(self, x: np.ndarray | tf.Tensor, name: str = "inputs") -> tf.Tensor:
        """``x`` as the engine stores it: uint8 kept as is (read as value/255), else float32."""
        dtype = tf.uint8 if getattr(x, "dtype", None) in (np.uint8, tf.uint8) else tf.float32
        data = _shared(x, dtype)
        if data.shape.rank != 2:
            raise ValueError(f"{name} must be 2-D (n, d), got shape {tuple(data.shape)}")
        if self._centers is not None and data.shape[1] != self._centers.shape[1]:
            raise ValueError(
                f"{name} have {data.shape[1]} features, the centres {self._centers.shape[1]}"
            )
        return data

    def _rows(self, x: np.ndarray | tf.Tensor) -> Rows:
        """Stored rows and their norms: what every training pass reads."""
        data = self._stored(x)
        cosine = self.distance_metric == "cosine"
        inv_norms, sq_norms = _row_norms(data, cosine)
        return Rows(data, inv_norms if cosine else None, sq_norms)

    def _assignment_centers(self) -> tf.Tensor:
        centers = self._require_centers()
        if self.distance_metric == "cosine":
            return tf.math.l2_normalize(centers, axis=1)
        return tf.convert_to_tensor(centers)


# ------------------------------------------------------------------ compiled passes over rows
#
# The compiled functions live at module level and take the model's variables as arguments, so
# every model of the same shape (k, d) and settings shares one trace and one XLA compilation:
# a sweep over seeds compiles once, a sweep over k once per k.
#
# Whole-set passes read the rows in chunks of ``_CHUNK_ROWS``: each chunk is converted, assigned
# and accumulated while it sits in cache, so a pass reads the stored rows once (a quarter of the
# bytes for uint8 images) and never holds an (n, d) float32 copy or an (n, k) distance matrix.
#
# ``autograph=False``: the loops are explicit ``tf.while_loop``s, and skipping AutoGraph's source
# conversion cuts each function's tracing from ~0.25 s to ~0.03 s here.


_TRACED_NAMES = ("_train_loop", "_assign_rows", "_row_norms", "_pick_candidate")


class _ExpectedRetracing(logging.Filter):
    """Drops TF's retracing warning for our functions: one trace per shape is by design."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        ours = any(name in message for name in _TRACED_NAMES)
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
        return _features(self.data, self.inv_norms)

    def chunk(self, start: tf.Tensor | int, size: int) -> Rows:
        """Rows ``start:start+size``, with a static size (so XLA compiles a fixed shape)."""
        return Rows(*(None if t is None else _chunk(t, start, size) for t in self))

    def gather(self, indices: tf.Tensor) -> Rows:
        """The rows at ``indices``."""
        return Rows(*(None if t is None else tf.gather(t, indices) for t in self))


def _shared(x: np.ndarray | tf.Tensor, dtype: tf.DType) -> tf.Tensor:
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


def _features(data: tf.Tensor, inv_norms: tf.Tensor | None = None) -> tf.Tensor:
    """Stored rows as float32 features: uint8 reads as value/255, then the row scaling."""
    x = tf.cast(data, tf.float32)
    if data.dtype == tf.uint8:
        x = x / 255.0
    if inv_norms is not None:
        x = x * inv_norms[:, None]
    return x


def _norms(x: tf.Tensor, cosine: bool) -> tuple[tf.Tensor, tf.Tensor]:
    """1/‖x‖ (as ``tf.math.l2_normalize`` computes it) and ‖x̂‖², per row."""
    sq = tf.reduce_sum(tf.square(x), axis=1)
    if not cosine:
        return tf.ones_like(sq), sq
    inv = tf.math.rsqrt(tf.maximum(sq, 1e-12))
    return inv, sq * tf.square(inv)


def _chunk(t: tf.Tensor, start: tf.Tensor | int, size: int) -> tf.Tensor:
    """Rows ``start:start+size`` of ``t``, with a static size (so XLA compiles a fixed shape)."""
    rest = t.shape[1:]
    return tf.slice(t, [start] + [0] * len(rest), [size, *rest])


def _fold_rows(n: int, body: Callable, carry: tuple) -> tuple:
    """``carry = body(start, size, carry)`` over consecutive row chunks covering all n rows."""
    full, rest = divmod(n, _CHUNK_ROWS)
    if full:

        def loop(i, *c):
            return (i + 1, *body(i * _CHUNK_ROWS, _CHUNK_ROWS, c))

        carry = tuple(tf.while_loop(lambda i, *_: i < full, loop, (tf.constant(0), *carry))[1:])
    if rest:
        carry = tuple(body(full * _CHUNK_ROWS, rest, carry))
    return carry


def _map_rows(n: int, fn: Callable, out_dtypes: tuple) -> tuple:
    """Per-row outputs of ``fn(start, size)`` (rows on the last axis), joined over all n rows."""
    full, rest = divmod(n, _CHUNK_ROWS)
    parts: list[list[tf.Tensor]] = [[] for _ in out_dtypes]
    if full:
        arrays = tuple(tf.TensorArray(dtype, size=full) for dtype in out_dtypes)

        def loop(i, *tas):
            outs = fn(i * _CHUNK_ROWS, _CHUNK_ROWS)
            return (i + 1, *(ta.write(i, out) for ta, out in zip(tas, outs, strict=True)))

        arrays = tf.while_loop(lambda i, *_: i < full, loop, (tf.constant(0), *arrays))[1:]
        for part, ta in zip(parts, arrays, strict=True):
            stacked = ta.stack()  # (full, ..., chunk)
            rank = stacked.shape.rank
            perm = [*range(1, rank - 1), 0, rank - 1]
            part.append(tf.reshape(tf.transpose(stacked, perm), [*stacked.shape[1:-1], -1]))
    if rest:
        for part, out in zip(parts, fn(full * _CHUNK_ROWS, rest), strict=True):
            part.append(out)
    return tuple(p[0] if len(p) == 1 else tf.concat(p, axis=-1) for p in parts)


def _nearest_of(
    x: tf.Tensor, sq_norms: tf.Tensor, centers: tf.Tensor, metric: str
) -> tuple[tf.Tensor, tf.Tensor]:
    """Nearest centre and the distance to it, for each row of ``x``.

    The (k, m) product (centres times rows) runs faster here than (m, k). Only the part of the
    distance that varies with the centre goes through the argmin: the largest dot product for
    cosine (``centers`` already normalised), ``‖c‖² - 2x·c`` for squared Euclidean.
    """
    dots = tf.matmul(centers, x, transpose_b=True)
    if metric == "cosine":
        return tf.argmax(dots, axis=0, output_type=tf.int32), 1.0 - tf.reduce_max(dots, axis=0)
    partial = tf.reduce_sum(tf.square(centers), axis=1)[:, None] - 2.0 * dots
    nearest = tf.reduce_min(partial, axis=0)
    return tf.argmin(partial, axis=0, output_type=tf.int32), tf.maximum(sq_norms + nearest, 0.0)


def _distances(x: tf.Tensor, centers: tf.Tensor, metric: str) -> tf.Tensor:
    """(n, k) distances of float features ``x`` (normalised for cosine) to ``centers``."""
    dots = tf.matmul(x, centers, transpose_b=True)
    if metric == "cosine":
        return 1.0 - dots
    x_sq = tf.reduce_sum(tf.square(x), axis=1)
    c_sq = tf.reduce_sum(tf.square(centers), axis=1)
    return tf.maximum(x_sq[:, None] - 2.0 * dots + c_sq[None, :], 0.0)


@tf.function(jit_compile=True, autograph=False)
def _row_norms(data: tf.Tensor, cosine: bool) -> tuple[tf.Tensor, tf.Tensor]:
    """``_norms`` of every stored row, chunk by chunk."""
    return _map_rows(
        data.shape[0],
        lambda start, size: _norms(_features(_chunk(data, start, size)), cosine),
        (tf.float32, tf.float32),
    )


@tf.function(autograph=False, reduce_retracing=True)
def _assign_rows(data: tf.Tensor, centers: tf.Tensor, metric: str) -> tuple[tf.Tensor, tf.Tensor]:
    """Nearest centre and distance for every stored row (normalised per chunk for cosine).

    Not XLA-compiled: its row count is a run-time value, so one trace serves every split
    (training, validation, test, a served batch) with no compilation per size.
    """
    n = tf.shape(data)[0]
    chunks = (n + _CHUNK_ROWS - 1) // _CHUNK_ROWS

    def body(i, labels, distances):
        start = i * _CHUNK_ROWS
        size = tf.minimum(_CHUNK_ROWS, n - start)
        x = _features(tf.slice(data, [start, 0], [size, -1]))
        inv, sq = _norms(x, metric == "cosine")
        if metric == "cosine":
            x = x * inv[:, None]
        idx, dist = _nearest_of(x, sq, centers, metric)
        return i + 1, labels.write(i, idx), distances.write(i, dist)

    parts = (  # element_shape: an empty input concatenates to an empty output
        tf.TensorArray(tf.int32, size=chunks, infer_shape=False, element_shape=[None]),
        tf.TensorArray(tf.float32, size=chunks, infer_shape=False, element_shape=[None]),
    )
    _, labels, distances = tf.while_loop(lambda i, *_: i < chunks, body, (0, *parts))
    return labels.concat(), distances.concat()


def _cluster_sums(
    rows: Rows, centers: tf.Tensor, metric: str
) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
    """Per-centre sums and counts of the rows nearest to it, and the sum of those distances."""
    k, d = centers.shape

    def chunk(start, size, carry):
        sums, hits, total = carry
        part = rows.chunk(start, size)
        x = part.features()
        idx, dist = _nearest_of(x, part.sq_norms, centers, metric)
        sums += tf.math.unsorted_segment_sum(x, idx, k)
        hits += tf.math.unsorted_segment_sum(tf.ones_like(dist), idx, k)  # exact below 2**24
        return sums, hits, total + tf.reduce_sum(dist)

    start = (tf.zeros([k, d]), tf.zeros([k]), tf.constant(0.0))
    return _fold_rows(rows.data.shape[0], chunk, start)


@tf.function(jit_compile=True, autograph=False)
def _train_loop(
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
            return _mini_batch_update(centers, counts, batch, metric)
        return _full_batch_update(centers, batch, metric)

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


def _full_batch_update(
    centers: tf.Variable, rows: Rows, metric: str
) -> tuple[tf.Tensor, tf.Tensor]:
    """Lloyd: every centre with points becomes their mean; the others stay where they are."""
    sums, sizes, total = _cluster_sums(rows, tf.convert_to_tensor(centers), metric)
    has_points = sizes > 0
    means = sums / tf.maximum(sizes, 1.0)[:, None]
    if metric == "cosine":
        means = tf.math.l2_normalize(means, axis=1)
    centers.assign(tf.where(has_points[:, None], means, centers))
    empty = tf.reduce_sum(tf.cast(tf.logical_not(has_points), tf.int32))
    return total / rows.data.shape[0], empty


def _mini_batch_update(
    centers: tf.Variable, counts: tf.Variable, batch: Rows, metric: str
) -> tuple[tf.Tensor, tf.Tensor]:
    """TF's count rule: c_j += (Σd_i - k_j c_j) / (n_j + k_j); n_j += k_j."""
    current = tf.convert_to_tensor(centers)
    assign_to = tf.math.l2_normalize(current, axis=1) if metric == "cosine" else current
    sums, hits, total = _cluster_sums(batch, assign_to, metric)
    new_counts = counts + tf.cast(hits, tf.int64)
    rate = 1.0 / tf.cast(new_counts, tf.float32)[:, None]
    centers.assign_add((sums - hits[:, None] * current) * rate)
    counts.assign(new_counts)
    empty = tf.reduce_sum(tf.cast(hits == 0, tf.int32))
    return total / batch.data.shape[0], empty


@tf.function(jit_compile=True, autograph=False)
def _pick_candidate(
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

    (cand_dist,) = _map_rows(rows.data.shape[0], chunk, (tf.float32,))
    potentials = tf.reduce_sum(tf.minimum(nearest[None, :], cand_dist), axis=1)
    best = tf.argmin(potentials, output_type=tf.int32)
    # tf.gather, not cand_dist[best]: XLA compiles that dynamic slice 8x slower, and runs it 3x.
    return best, tf.minimum(nearest, tf.gather(cand_dist, best))


def _kmeans_plus_plus(rows: Rows, k: int, seed: tf.Tensor, retries: int) -> tf.Tensor:
    """k-means++ with greedy candidate selection (TF's ``kmeans_plus_plus_initialization``).

    Returns the indices of the k chosen rows. Each choice is one compiled pass over the rows;
    the draws (TF's stateless categorical on log squared distances) run between them.
    """
    n = rows.data.shape[0]
    first = tf.random.stateless_uniform([1], seed, minval=0, maxval=n, dtype=tf.int64)
    chosen = [first[0]]
    # The first centre alone: its distances come out as ``nearest`` (min with +inf).
    _, nearest = _pick_candidate(rows, tf.fill([n], np.inf), tf.repeat(first, 1 + retries))
    for i in range(1, k):
        total = tf.reduce_sum(nearest)
        # Every point already a centre (fewer distinct points than k): draw uniformly.
        logits = tf.where(total > 0, tf.math.log(nearest), tf.zeros_like(nearest))
        step_seed = tf.stack([seed[0], seed[1] + i * 7919])
        candidates = tf.random.stateless_categorical(
            logits[None, :], 1 + retries, step_seed, dtype=tf.int64
        )[0]
        best, nearest = _pick_candidate(rows, nearest, candidates)
        chosen.append(candidates[best])
    return tf.stack(chosen)
