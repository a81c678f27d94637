"""``KMeans``: the estimator. Settings, restarts, fitting, inference and persistence.

The rules it reproduces (TensorFlow's ``clustering_ops.KMeans``) and where it differs on
purpose are in ``docs/engine.md``; the passes over the rows are in ``passes``, the initial
centres in ``initialization`` and the mini-batch rows in ``batches``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from kmeans_exp import options
from kmeans_exp.engine import batches, passes, persistence
from kmeans_exp.engine.initialization import initial_indices
from kmeans_exp.errors import ConfigError
from kmeans_exp.tf_runtime import tf

# Salts that keep the random streams of initialisation and batch sampling apart.
INIT_SALT = 0


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
    seed : seeds initialisation and batch sampling (restart i uses ``seed * n_init + i``,
        so runs with different seeds share no restart).
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
        if self.init == options.Init.kmeans_parallel.value:
            raise ConfigError(
                "init=kmeans_parallel: k-means|| is for sharded data (data.source=shards); "
                "in memory use kmeans_plus_plus or random"
            )
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

    # ------------------------------------------------------------------ state

    @property
    def cluster_centers_(self) -> np.ndarray:
        """The stored centres, (k, d) float32 (running means of x̂ in cosine mini-batch)."""
        return self._require_centers().numpy()

    @property
    def cluster_counts_(self) -> np.ndarray | None:
        """Per-centre point counts of the mini-batch rule (start at 1; unused in full batch)."""
        return None if self._counts is None else self._counts.numpy()

    @property
    def steps_done_(self) -> int:
        """Training steps behind the current centres (continued by ``fit(resume=True)``)."""
        return int(self._step.numpy())

    # ------------------------------------------------------------------ training

    def initialize(self, x: np.ndarray, initial_centers: np.ndarray | None = None) -> KMeans:
        """Choose the initial centres (or take ``initial_centers``) and reset the counts."""
        rows = self._rows(x)
        options.fits_rows(self.n_clusters, None, rows.data.shape[0])
        return self._initialize(rows, initial_centers)

    def _initialize(self, rows: passes.Rows, initial_centers: np.ndarray | None) -> KMeans:
        d = rows.data.shape[1]
        if initial_centers is not None:
            centers = passes.features(self._stored(initial_centers, "initial_centers"))
            if centers.shape != (self.n_clusters, d):
                raise ConfigError(
                    f"initial_centers has shape {tuple(centers.shape)}, "
                    f"expected ({self.n_clusters}, {d})"
                )
        else:
            seed = tf.constant([self._active_seed, INIT_SALT], tf.int64)
            retries = self.kmeans_plus_plus_num_retries
            chosen = initial_indices(rows, self.n_clusters, self.init, seed, retries)
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
        *,
        resume: bool = False,
    ) -> KMeans:
        """Initialise, then run ``steps`` training steps, ``n_init`` times; keep the best restart.

        ``resume=True`` trains further instead: from the current centres (fitted, or read by
        ``restore``), with the mini-batch counts and the step number (so the batches too)
        carried on; ``fit(x, a)`` then ``fit(x, b, resume=True)`` equals ``fit(x, a + b)``.
        ``callback`` sees every step's stats, of every restart (``StepStats.restart``).
        Restarts share one compiled program: after the first, only their steps cost.
        """
        options.at_least("steps", steps, 1)
        if resume and (initial_centers is not None or self.n_init > 1):
            raise ConfigError("resume=True continues one run: no initial_centers, n_init=1")
        if resume:
            self._require_centers()
        if initial_centers is not None and self.n_init > 1:
            raise ConfigError(
                f"n_init={self.n_init}: explicit initial_centers allow one run only (n_init=1)"
            )
        start = time.perf_counter()
        rows = self._rows(x)
        options.fits_rows(self.n_clusters, self.batch_size, rows.data.shape[0])
        self.prepare_seconds_ = time.perf_counter() - start
        self.init_seconds_ = 0.0
        self.restart_inertia_ = []
        best: tuple[float, np.ndarray, np.ndarray, list[StepStats], np.ndarray] | None = None
        for restart in range(self.n_init):
            self._active_seed = self.seed * self.n_init + restart
            if resume:
                self.history_ = []
            else:
                start = time.perf_counter()
                self._initialize(rows, initial_centers)
                self.init_seconds_ += time.perf_counter() - start
            self._train(rows, steps, restart, callback)
            labels, dists = passes.assign_rows(
                rows.data, self._assignment_centers(), self.distance_metric
            )
            inertia = float(np.sum(dists.numpy(), dtype=np.float64))
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

    def _train(self, rows: passes.Rows, steps: int, restart: int, callback) -> None:
        """``steps`` steps from the current state, as few compiled calls as the batches allow."""
        n = rows.data.shape[0]
        per_call = batches.steps_per_call(self.batch_size, self._samples_batches(n))
        done = 0
        while done < steps:
            count = min(per_call, steps - done)
            for stats in self._run_steps(rows, count, per_call, restart):
                if callback is not None:
                    callback(stats)
            done += count

    def batch_indices(self, step: int, n: int) -> tf.Tensor | None:
        """Rows of mini-batch ``step`` (0-based): distinct, uniform, reproducible; None = all."""
        if not self._samples_batches(n):
            return None
        return batches.batch_rows(step, 1, self.batch_size, n, self.seed)[0]

    def _samples_batches(self, n: int) -> bool:
        """Whether a step uses a sampled batch of ``n`` rows rather than all of them."""
        return self.use_mini_batch and self.batch_size is not None and self.batch_size < n

    def _run_steps(
        self, rows: passes.Rows, count: int, per_call: int, restart: int
    ) -> list[StepStats]:
        """``count`` (<= ``per_call``) training steps in one compiled call."""
        first = int(self._step.numpy())
        start = time.perf_counter()
        indices = None
        n = rows.data.shape[0]
        if self._samples_batches(n):
            indices = batches.batch_rows(first, count, self.batch_size, n, self._active_seed)
            indices = tf.pad(indices, [[0, per_call - count], [0, 0]])  # one compiled shape
        avg, empty = passes.train_loop(
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

    # ------------------------------------------------------------------ inference

    def prepare(self, x: np.ndarray | tf.Tensor) -> tf.Tensor:
        """Inputs as the engine sees them: float32 (n, d), L2-normalised for cosine.

        Training never builds this whole array; it converts the stored rows chunk by chunk.
        """
        xs = passes.features(self._stored(x))
        return tf.math.l2_normalize(xs, axis=1) if self.distance_metric == "cosine" else xs

    def assign(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Index of the nearest centre and the distance to it, for every row of ``x``."""
        data = self._stored(x)
        idx, dist = passes.assign_rows(data, self._assignment_centers(), self.distance_metric)
        return idx.numpy(), dist.numpy()

    def predict(self, x: np.ndarray) -> np.ndarray:
        """Index of the nearest centre for every row of ``x``."""
        return self.assign(x)[0]

    def transform(self, x: np.ndarray) -> np.ndarray:
        """Distance of every row of ``x`` to every centre, (n, k)."""
        xs = self.prepare(x)
        return passes.distances(xs, self._assignment_centers(), self.distance_metric).numpy()

    def inertia(self, x: np.ndarray) -> float:
        """Sum over rows of the distance to the nearest centre (the k-means objective)."""
        return float(np.sum(self.assign(x)[1], dtype=np.float64))

    # ------------------------------------------------------------------ persistence

    def save(self, path: str | Path) -> Path:
        """Write the centres, counts, step and settings to an ``.npz`` file (``restore``)."""
        return persistence.save(self, Path(path))

    @classmethod
    def restore(cls, path: str | Path) -> KMeans:
        """A model rebuilt from ``save``'s file: it predicts, and ``fit(resume=True)`` trains
        it further from where it stopped (centres, counts and step)."""
        settings, centers, counts, step = persistence.load(Path(path))
        model = cls(**settings)
        model._centers = tf.Variable(centers, trainable=False, name="centers")
        model._counts = tf.Variable(counts, trainable=False, name="counts")
        model._step.assign(step)
        return model

    # ------------------------------------------------------------------ internals

    def _require_centers(self) -> tf.Variable:
        if self._centers is None:
            raise RuntimeError("the model has no centres yet: call fit() or initialize() first")
        return self._centers

    def _stored(self, x: np.ndarray | tf.Tensor, name: str = "inputs") -> tf.Tensor:
        """``x`` as the engine stores it: uint8 kept as is (read as value/255), else float32."""
        dtype = tf.uint8 if getattr(x, "dtype", None) in (np.uint8, tf.uint8) else tf.float32
        data = passes.shared_tensor(x, dtype)
        if data.shape.rank != 2:
            raise ConfigError(f"{name} must be 2-D (n, d), got shape {tuple(data.shape)}")
        if self._centers is not None and data.shape[1] != self._centers.shape[1]:
            raise ConfigError(
                f"{name} have {data.shape[1]} features, the centres {self._centers.shape[1]}"
            )
        return data

    def _rows(self, x: np.ndarray | tf.Tensor) -> passes.Rows:
        """Stored rows and their norms: what every training pass reads."""
        return passes.rows_of(self._stored(x), self.distance_metric == "cosine")

    def _assignment_centers(self) -> tf.Tensor:
        centers = self._require_centers()
        if self.distance_metric == "cosine":
            return tf.math.l2_normalize(centers, axis=1)
        return tf.convert_to_tensor(centers)
