"""Initial centres of a sharded fit, the same on any number of workers.

Every random draw is keyed by the seed and by row numbers in the split, never by a worker:

- ``random``: TF's rule, the k row numbers the in-memory engine draws for the same seed;
- ``kmeans_plus_plus``: each choice draws ``1 + retries`` targets uniformly in [0, φ) and takes
  the row where the float64 prefix sum of the squared distances, in row order, passes each
  target; the candidate that lowers the potential most wins. Two passes per centre;
- ``kmeans_parallel``: k-means|| (Bahmani et al., VLDB 2012). One uniform row, then ``rounds``
  passes that keep each row with probability min(1, ℓ·d²(x, C)/φ(C)), ℓ = oversampling·k, the
  row's uniform draw a hash of (seed, round, row). Each candidate is weighted by the rows
  nearest to it, and the chief reduces the candidates to k (weighted k-means++, then weighted
  Lloyd iterations, as Spark MLlib does) and sends the result to every worker.

Per-row state (distance to the nearest candidate, which one) lives in scratch files, not in
memory.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from kmeans_exp.engine import sharded_passes
from kmeans_exp.engine.initialization import CHOICE_SEED_STRIDE
from kmeans_exp.engine.parts import Part, first_bad
from kmeans_exp.engine.reduce import Reducer, allreduce, one_hot_slot
from kmeans_exp.tf_runtime import tf

log = logging.getLogger(__name__)

ROUNDS = 5  # k-means|| rounds (r)
OVERSAMPLING = 2.0  # ℓ / k
REDUCE_SALT = 3  # keeps the reduction's draws apart from the rounds'
REDUCE_LLOYD_ITERATIONS = 30  # Spark MLlib's LocalKMeans runs up to 30 on the candidates
SCAN_ROWS = 1 << 20  # rows of per-row state read at a time
POINTS_STEP = 32  # candidate counts are padded to a multiple of this


@dataclass(frozen=True)
class InitSettings:
    """What the initialisation needs of the estimator's settings."""

    n_clusters: int
    init: str  # random | kmeans_plus_plus | kmeans_parallel
    cosine: bool
    retries: int  # extra k-means++ candidates per choice
    rounds: int  # k-means|| rounds (r)
    oversampling: float  # k-means||: ℓ / k


def initial_centers(
    model: InitSettings, part: Part, reducer: Reducer, seed: np.ndarray, scratch: Path
) -> np.ndarray:
    """(k, d) float32 initial centres, normalised for cosine: equal on every worker."""
    k, n = model.n_clusters, part.split_rows
    if model.init == "random":
        rows = tf.random.stateless_uniform([k], seed, minval=0, maxval=n, dtype=tf.int64)
        centers = gather(part, reducer, rows.numpy(), model.cosine)
    elif model.init == "kmeans_plus_plus":
        centers = kmeans_plus_plus(model, part, reducer, seed, scratch)
    else:
        centers = kmeans_parallel(model, part, reducer, seed, scratch)
    return centers


def features(rows: np.ndarray, cosine: bool) -> np.ndarray:
    """Stored rows as the engine sees them: uint8 as value / 255, normalised for cosine."""
    x = rows.astype(np.float32)
    if rows.dtype == np.uint8:
        x /= np.float32(255.0)
    if cosine:
        x64 = x.astype(np.float64)
        x = x64 / np.sqrt(np.maximum(np.sum(x64 * x64, axis=1, keepdims=True), 1e-12))
        x = x.astype(np.float32)
    return x


def gather(part: Part, reducer: Reducer, rows: np.ndarray, cosine: bool) -> np.ndarray:
    """The features of split rows ``rows`` (any order, repeats allowed), on every worker."""
    out = np.zeros((len(rows), part.shards.dim))
    here = np.flatnonzero(part.mine(rows))
    order = here[np.argsort(rows[here], kind="stable")]
    out[order] = features(part.take(rows[order]), cosine)
    (out,) = allreduce(reducer, out)
    return out.astype(np.float32)


class RowState:
    """Per-row float32 distance to the nearest candidate and int32 index of it, in files."""

    def __init__(self, scratch: Path, rows: int) -> None:
        self.nearest = np.memmap(scratch / "nearest.f32", np.float32, "w+", shape=(max(rows, 1),))
        self.owner = np.memmap(scratch / "owner.i32", np.int32, "w+", shape=(max(rows, 1),))
        self.rows = rows

    def total(self) -> float:
        """Sum of the distances, float64, read in pieces."""
        return sum(
            float(np.sum(self.nearest[i : i + SCAN_ROWS], dtype=np.float64))
            for i in range(0, self.rows, SCAN_ROWS)
        )


def nearest_pass(
    part: Part,
    reducer: Reducer,
    points: np.ndarray,
    state: RowState,
    offset: int | None,
    cosine: bool,
) -> np.ndarray:
    """Update each row's nearest candidate with ``points`` (numbered from ``offset``; None:
    the first points, replacing the state). Returns every worker's total distance (workers,)."""
    m = len(points)
    # padded to a multiple of POINTS_STEP: few compiled shapes, little wasted work
    padded = np.zeros((-(-m // POINTS_STEP) * POINTS_STEP, points.shape[1]), np.float32)
    padded[:m] = points
    padded, real = tf.constant(padded), tf.constant(m)
    bad = None
    for start, block, valid in part.blocks():
        dist, best, b = sharded_passes.nearest_point(block, valid, padded, real, cosine)
        bad = first_bad(start, b, bad)
        valid = int(valid)
        dist, best = dist.numpy()[:valid], best.numpy()[:valid]
        here = slice(start - part.lo, start - part.lo + valid)
        if offset is None:
            state.nearest[here], state.owner[here] = dist, best
        else:
            closer = dist < state.nearest[here]
            state.nearest[here] = np.where(closer, dist, state.nearest[here])
            state.owner[here] = np.where(closer, best + offset, state.owner[here])
    totals, found = allreduce(
        reducer, one_hot_slot(reducer, state.total()), part.bad_slot(reducer, bad)
    )
    part.raise_if_bad(found)
    return totals


def kmeans_plus_plus(
    model: InitSettings, part: Part, reducer: Reducer, seed: np.ndarray, scratch: Path
):
    """k-means++ with greedy candidates, drawn by a float64 prefix sum over row numbers."""
    k, n, m = model.n_clusters, part.split_rows, 1 + model.retries
    first = tf.random.stateless_uniform([1], seed, minval=0, maxval=n, dtype=tf.int64).numpy()
    centers = [gather(part, reducer, first, model.cosine)[0]]
    state = RowState(scratch, part.rows)
    totals = nearest_pass(part, reducer, centers[0][None], state, None, model.cosine)
    for i in range(1, k):
        step_seed = np.array([seed[0], seed[1] + i * CHOICE_SEED_STRIDE], np.int64)
        u = tf.random.stateless_uniform([m], step_seed, dtype=tf.float64).numpy()
        phi = float(np.sum(totals))
        rows = (
            _rows_at(part, reducer, state, totals, u * phi) if phi > 0 else (u * n).astype(np.int64)
        )
        candidates = gather(part, reducer, rows, model.cosine)
        potentials = np.zeros(m)
        points = tf.constant(candidates)
        for start, block, valid in part.blocks():
            nearest = np.zeros(block.shape[0], np.float32)
            nearest[: int(valid)] = state.nearest[start - part.lo : start - part.lo + int(valid)]
            total, _ = sharded_passes.candidate_potentials(
                block, valid, nearest, points, model.cosine
            )
            potentials += total.numpy()
        (potentials,) = allreduce(reducer, potentials)
        best = int(np.argmin(potentials))
        centers.append(candidates[best])
        totals = nearest_pass(part, reducer, candidates[best][None], state, 0, model.cosine)
    return np.stack(centers)


def _rows_at(
    part: Part, reducer: Reducer, state: RowState, totals: np.ndarray, targets: np.ndarray
):
    """The split row where the prefix sum of distances (row order) first exceeds each target."""
    ends = np.cumsum(totals)
    starts = ends - totals
    owners = np.minimum(np.searchsorted(ends, targets, side="right"), len(totals) - 1)
    found = np.zeros(len(targets))
    mine = np.flatnonzero(owners == reducer.rank)
    if len(mine):
        local = targets[mine] - starts[reducer.rank]
        result = np.full(len(mine), state.rows - 1)
        open_ = np.ones(len(mine), bool)
        running = 0.0
        for i in range(0, state.rows, SCAN_ROWS):
            cum = running + np.cumsum(state.nearest[i : i + SCAN_ROWS], dtype=np.float64)
            hit = open_ & (local < cum[-1])
            result[hit] = i + np.searchsorted(cum, local[hit], side="right")
            open_ &= ~hit
            running = cum[-1]
        found[mine] = part.lo + np.minimum(result, state.rows - 1) + 1
    (found,) = allreduce(reducer, found)
    return found.astype(np.int64) - 1


def row_uniforms(rows: np.ndarray, seed: np.ndarray, round_: int) -> np.ndarray:
    """A uniform [0, 1) number per row, a hash of (seed, round, row number): splitmix64."""
    key = _splitmix64(np.array([int(seed[0]) * 1_000_003 + round_], np.uint64))
    key = _splitmix64(key ^ np.uint64(int(seed[1]) & (2**64 - 1)))
    bits = _splitmix64(rows.astype(np.uint64) ^ key)
    return (bits >> np.uint64(11)).astype(np.float64) * 2.0**-53


def _splitmix64(x: np.ndarray) -> np.ndarray:
    with np.errstate(over="ignore"):
        z = x + np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return z ^ (z >> np.uint64(31))


def kmeans_parallel(
    model: InitSettings, part: Part, reducer: Reducer, seed: np.ndarray, scratch: Path
):
    """k-means||: candidates over ``rounds`` sampling passes, weighted, reduced to k."""
    k, n = model.n_clusters, part.split_rows
    ell = model.oversampling * k
    first = tf.random.stateless_uniform([1], seed, minval=0, maxval=n, dtype=tf.int64).numpy()
    candidates = gather(part, reducer, first, model.cosine)
    state = RowState(scratch, part.rows)
    phi = float(np.sum(nearest_pass(part, reducer, candidates, state, None, model.cosine)))
    for round_ in range(1, model.rounds + 1):
        if phi <= 0:  # every row sits on a candidate
            break
        picked = []
        for i in range(0, state.rows, SCAN_ROWS):
            near = state.nearest[i : i + SCAN_ROWS].astype(np.float64)
            rows = part.lo + i + np.arange(len(near))
            picked.append(rows[row_uniforms(rows, seed, round_) < ell * near / phi])
        picked = np.concatenate(picked) if picked else np.zeros(0, np.int64)
        (counts,) = allreduce(reducer, one_hot_slot(reducer, len(picked)))
        if counts.sum() == 0:
            continue
        new = np.zeros((int(counts.sum()), part.shards.dim))
        offset = int(counts[: reducer.rank].sum())
        new[offset : offset + len(picked)] = features(part.take(picked), model.cosine)
        (new,) = allreduce(reducer, new)
        new = new.astype(np.float32)
        totals = nearest_pass(part, reducer, new, state, len(candidates), model.cosine)
        candidates = np.concatenate([candidates, new])
        phi = float(np.sum(totals))
        log.info("k-means|| round %d/%d: %d candidates", round_, model.rounds, len(candidates))
    weights = np.zeros(len(candidates), np.int64)
    for i in range(0, state.rows, SCAN_ROWS):
        weights += np.bincount(state.owner[i : i + SCAN_ROWS], minlength=len(candidates))
    (weights,) = allreduce(reducer, weights)
    centers = np.zeros((k, part.shards.dim))
    if reducer.rank == 0:
        centers = reduce_candidates(candidates, weights, k, seed, model.retries, model.cosine)
    (centers,) = allreduce(reducer, centers)  # the chief's, on every worker
    return centers.astype(np.float32)


def reduce_candidates(
    points: np.ndarray, weights: np.ndarray, k: int, seed: np.ndarray, retries: int, cosine: bool
) -> np.ndarray:
    """k centres from weighted candidates: greedy weighted k-means++, then weighted Lloyd."""
    x, w = points.astype(np.float64), weights.astype(np.float64)
    rng = np.random.default_rng([int(seed[0]), int(seed[1]), REDUCE_SALT])
    m = len(x)
    if m <= k:  # fewer candidates than centres: all of them, the rest drawn by weight
        extra = rng.choice(m, size=k - m, p=w / w.sum() if w.sum() > 0 else None)
        return x[np.concatenate([np.arange(m), extra])]
    chosen = [int(rng.choice(m, p=w / w.sum() if w.sum() > 0 else None))]
    nearest = _sq_distances(x, x[chosen])[:, 0]
    for _ in range(1, k):
        mass = w * nearest
        p = mass / mass.sum() if mass.sum() > 0 else None
        trial = rng.choice(m, size=1 + retries, p=p)
        dist = _sq_distances(x, x[trial])
        potentials = np.sum(w[:, None] * np.minimum(nearest[:, None], dist), axis=0)
        best = int(np.argmin(potentials))
        chosen.append(int(trial[best]))
        nearest = np.minimum(nearest, dist[:, best])
    centers = x[chosen]
    for _ in range(REDUCE_LLOYD_ITERATIONS):
        owner = np.argmin(_sq_distances(x, centers), axis=1)
        mass = np.bincount(owner, weights=w, minlength=k)
        sums = np.zeros_like(centers)
        np.add.at(sums, owner, w[:, None] * x)
        means = sums / np.maximum(mass, 1e-300)[:, None]
        if cosine:
            means /= np.sqrt(np.maximum(np.sum(means * means, axis=1, keepdims=True), 1e-12))
        moved = np.where(mass[:, None] > 0, means, centers)
        if np.array_equal(moved, centers):
            break
        centers = moved
    return centers


def _sq_distances(x: np.ndarray, c: np.ndarray) -> np.ndarray:
    return np.maximum(
        np.sum(x * x, axis=1)[:, None] - 2.0 * x @ c.T + np.sum(c * c, axis=1)[None, :], 0.0
    )
