"""A K-Means fit over sharded rows on one or many workers: ``ShardedKMeans``.

Each worker reads its own contiguous range of a split's rows (``Part``) block by block from the
memory-mapped shards, computes float64 partial sums and counts (``sharded_passes``, compiled with
XLA), and one all-reduce (``reduce``) gives every worker the same totals, so every worker applies
the same update. Mini-batch steps read the batch stream of the in-memory engine
(``batches.batch_rows``, by row number in the split): each worker contributes the batch rows in
its range. No per-row array is held in memory: the initialisations keep theirs in scratch
files (``sharded_init``), the final assignment is reduced to per-cluster counts.

The same seed gives the same centres on any number of workers, up to float64 rounding of the
sums; the in-memory ``KMeans`` (float32 sums) stays as it is.
"""

from __future__ import annotations

import logging
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from kmeans_exp import options
from kmeans_exp.engine import batches, sharded_init, sharded_passes
from kmeans_exp.engine.estimator import INIT_SALT, StepStats
from kmeans_exp.engine.parts import Part, first_bad
from kmeans_exp.engine.reduce import Reducer, allreduce
from kmeans_exp.tf_runtime import tf

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Scores:
    """A split under the final centres, summed over the workers: sizes (k,), total distance,
    and the (k, classes) contingency table when the split has labels."""

    sizes: np.ndarray
    inertia: float
    contingency: np.ndarray | None


class ShardedKMeans:
    """K-Means over a ``Part`` of sharded rows, with ``KMeans``'s settings and update rules.

    ``init`` also takes ``"kmeans_parallel"`` (k-means||, ``sharded_init``), the default for
    shards: k-means++ costs two passes per centre here. ``init_rounds`` and
    ``init_oversampling`` are k-means||'s r and ℓ/k.
    """

    def __init__(
        self,
        n_clusters: int,
        *,
        distance_metric: str = "cosine",
        init: str = "kmeans_parallel",
        use_mini_batch: bool = False,
        batch_size: int | None = None,
        seed: int = 0,
        n_init: int = 1,
        kmeans_plus_plus_num_retries: int = 2,
        init_rounds: int = sharded_init.ROUNDS,
        init_oversampling: float = sharded_init.OVERSAMPLING,
    ) -> None:
        self.n_clusters = options.at_least("n_clusters", n_clusters, 1, "the number of clusters")
        self.distance_metric = options.choice(
            "distance_metric", distance_metric, options.DistanceMetric
        ).value
        self.init = options.choice("init", init, options.Init).value
        self.use_mini_batch = bool(use_mini_batch)
        self.batch_size = options.batch_size("batch_size", batch_size)
        self.seed = options.at_least("seed", seed, 0)
        self.n_init = options.at_least("n_init", n_init, 1, "the number of restarts")
        self.retries = options.at_least(
            "kmeans_plus_plus_num_retries", kmeans_plus_plus_num_retries, 0
        )
        self.init_rounds = options.at_least("init_rounds", init_rounds, 1)
        self.init_oversampling = options.positive("init_oversampling", init_oversampling)
        self.cluster_centers_: np.ndarray | None = None
        self.cluster_counts_: np.ndarray | None = None
        self.history_: list[StepStats] = []
        self.restart_inertia_: list[float] = []
        self.best_restart_ = 0
        self.inertia_: float | None = None
        self.init_seconds_ = 0.0
        self._checked = False  # whether a pass of this fit has checked every row for NaN/inf

    @property
    def cosine(self) -> bool:
        return self.distance_metric == "cosine"

    def init_settings(self) -> sharded_init.InitSettings:
        return sharded_init.InitSettings(
            self.n_clusters,
            self.init,
            self.cosine,
            self.retries,
            self.init_rounds,
            self.init_oversampling,
        )

    def fit(
        self,
        part: Part,
        steps: int,
        reducer: Reducer,
        callback: Callable[[StepStats], None] | None = None,
        scratch: str | Path | None = None,
    ) -> ShardedKMeans:
        """Initialise and train ``steps`` steps, ``n_init`` times; keep the lowest inertia.

        Every worker calls this with its own ``part`` of the same split; ``scratch`` is where
        the initialisation's per-row files go (a temporary folder in it).
        """
        options.at_least("steps", steps, 1)
        options.fits_rows(self.n_clusters, self.batch_size, part.split_rows)
        self.init_seconds_, self.restart_inertia_ = 0.0, []
        best = None
        for restart in range(self.n_init):
            seed = self.seed * self.n_init + restart
            start = time.perf_counter()
            with tempfile.TemporaryDirectory(dir=scratch, prefix="kmeans_exp-init-") as tmp:
                centers = sharded_init.initial_centers(
                    self.init_settings(), part, reducer, np.array([seed, INIT_SALT]), Path(tmp)
                )
            self.init_seconds_ += time.perf_counter() - start
            log.info("initial centres (%s) in %.1f s", self.init, time.perf_counter() - start)
            counts = np.ones(self.n_clusters, np.int64)
            # k-means++ and k-means|| passed over every row, checking each for NaN and inf;
            # after random init the first step does
            self._checked = self.init != "random" or restart > 0
            history: list[StepStats] = []
            for step in range(steps):
                start = time.perf_counter()
                if self._samples(part.split_rows):
                    centers, counts, avg, empty = self._batch_step(
                        part, reducer, centers, counts, seed, step
                    )
                else:
                    centers, counts, avg, empty = self._full_step(part, reducer, centers, counts)
                stats = StepStats(step + 1, avg, empty, time.perf_counter() - start, restart)
                log.info(
                    "step %d/%d: avg_distance %.6g, %d empty, %.2f s",
                    step + 1,
                    steps,
                    avg,
                    empty,
                    stats.seconds,
                )
                history.append(stats)
                if callback is not None:
                    callback(stats)
            inertia = self.score(part, reducer, centers, labels=False).inertia
            self.restart_inertia_.append(inertia)
            if best is None or inertia < best[0]:
                best = (inertia, centers, counts, history)
        self.inertia_, self.cluster_centers_, self.cluster_counts_, self.history_ = best
        self.best_restart_ = self.restart_inertia_.index(self.inertia_)
        return self

    def _samples(self, n: int) -> bool:
        return self.use_mini_batch and self.batch_size is not None and self.batch_size < n

    def assignment_centers(self, centers: np.ndarray | None = None) -> np.ndarray:
        """The centres rows are assigned to (normalised for cosine), float32."""
        centers = self.cluster_centers_ if centers is None else centers
        return normalized(centers) if self.cosine else centers

    def _partials(self, part: Part, reducer: Reducer, centers: np.ndarray):
        """Float64 sums, counts and total distance of the part's rows per nearest centre,
        summed over the workers."""
        k, d = centers.shape
        sums, hits, total, bad = np.zeros((k, d)), np.zeros(k), 0.0, None
        target = tf.constant(self.assignment_centers(centers))
        check = not self._checked
        for start, block, valid in part.blocks():
            s, h, t, b = sharded_passes.cluster_partials(
                block, valid, target, self.distance_metric, check
            )
            sums += s.numpy()
            hits += h.numpy()
            total += float(t)
            bad = first_bad(start, b, bad)
        *totals, found = allreduce(
            reducer, sums, hits, np.array([total]), part.bad_slot(reducer, bad)
        )
        part.raise_if_bad(found)
        self._checked = True
        return totals

    def _full_step(self, part, reducer, centers, counts):
        """Lloyd: every centre with rows becomes their mean; the others stay."""
        sums, hits, (total,) = self._partials(part, reducer, centers)
        if self.use_mini_batch:  # the mini-batch rule with every row as the batch
            return (
                *self._count_rule(centers, counts, sums, hits),
                total / part.split_rows,
                int(np.sum(hits == 0)),
            )
        means = sums / np.maximum(hits, 1.0)[:, None]
        if self.cosine:
            means = normalized(means)
        new = np.where(hits[:, None] > 0, means, centers).astype(np.float32)
        return new, counts, total / part.split_rows, int(np.sum(hits == 0))

    def _batch_step(self, part, reducer, centers, counts, seed, step):
        """One mini-batch step on the batch rows in this worker's range."""
        batch = np.sort(
            batches.batch_rows(step, 1, self.batch_size, part.split_rows, seed)[0].numpy()
        )
        mine = batch[part.mine(batch)]
        rows = part.take(mine)
        block = np.zeros((self.batch_size, part.shards.dim), rows.dtype)
        block[: len(rows)] = rows
        target = tf.constant(self.assignment_centers(centers))
        s, h, t, b = sharded_passes.cluster_partials(
            tf.constant(block), tf.constant(len(rows)), target, self.distance_metric
        )
        bad = None if int(b) == sharded_passes.CLEAN else int(mine[int(b)])
        sums, hits, (total,), found = allreduce(
            reducer, s.numpy(), h.numpy(), np.array([float(t)]), part.bad_slot(reducer, bad)
        )
        part.raise_if_bad(found)
        new, counts = self._count_rule(centers, counts, sums, hits)
        return new, counts, total / self.batch_size, int(np.sum(hits == 0))

    def _count_rule(self, centers, counts, sums, hits):
        """TF's count rule: c_j += (Σx_i - k_j c_j) / (n_j + k_j); n_j += k_j."""
        new_counts = counts + np.rint(hits).astype(np.int64)
        current = centers.astype(np.float64)
        moved = current + (sums - hits[:, None] * current) / new_counts[:, None]
        return moved.astype(np.float32), new_counts

    def score(self, part: Part, reducer: Reducer, centers=None, labels: bool = True) -> Scores:
        """Sizes, total distance and (with ``labels``) contingency of ``part``'s split under
        the centres, summed over the workers: what evaluation needs, without any row held."""
        k = self.n_clusters
        classes = part.shards.num_classes if labels and part.shards.has_labels else 0
        sizes, table, total, bad = (
            np.zeros(k, np.int64),
            np.zeros((k, max(classes, 1)), np.int64),
            0.0,
            None,
        )
        target = tf.constant(self.assignment_centers(centers))
        for start, block, valid in part.blocks():
            idx, dist, b = sharded_passes.assign_block(block, valid, target, self.distance_metric)
            real = int(valid)
            idx, dist = idx.numpy()[:real], dist.numpy()[:real]
            bad = first_bad(start, b, bad)
            sizes += np.bincount(idx, minlength=k)
            total += float(np.sum(dist, dtype=np.float64))
            if classes:
                y = part.labels(start, start + real)
                np.add.at(table, (idx, y), 1)
        sizes, total, table, found = allreduce(
            reducer, sizes, np.array([total]), table, part.bad_slot(reducer, bad)
        )
        part.raise_if_bad(found)
        return Scores(sizes, float(total[0]), table if classes else None)


def normalized(x: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (as ``tf.math.l2_normalize``), float32."""
    x = np.asarray(x, np.float64)
    sq = np.sum(x * x, axis=1, keepdims=True)
    return (x / np.sqrt(np.maximum(sq, 1e-12))).astype(np.float32)
