"""The refinement stage: ``refine(...)`` runs a refinement after the K-Means, or reads it from
the cache, and returns what evaluation scores instead of the K-Means: the refined codes of
every split and the refined clusters.

It starts from the autoencoder's cache entry (its encoder, and the decoder that entry keeps)
and the K-Means centres on its codes. Its entry sits in the features cache, keyed by the
autoencoder entry, the refinement's config, those centres (so k, the K-Means settings and its
seed), the seed and the library versions: a repeat of the same run, or a sweep over settings
that do not change the K-Means, does not refine again.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import time
from dataclasses import dataclass
from importlib import metadata

import numpy as np

from kmeans_exp import data
from kmeans_exp.features import cache, served_steps
from kmeans_exp.features.kinds import FittedFeatures
from kmeans_exp.features.kinds.autoencoder import DECODER
from kmeans_exp.features.stage import Representation, fit_rows
from kmeans_exp.refine.kinds import RefineConfig, Start, kind

log = logging.getLogger(__name__)

LIBRARIES = ("tensorflow", "keras")
CENTRES = "centres"


@dataclass(frozen=True)
class Clusters:
    """Refined clusters as evaluation sees a fitted model: the nearest centre in squared
    Euclidean distance, which is the argmax of the Student-t assignment q."""

    cluster_centers_: np.ndarray  # (k, code)
    labels_: np.ndarray  # the training rows' clusters
    inertia_: float  # sum of the training rows' squared distances to their centre
    distance_metric: str = "squared_euclidean"

    @property
    def n_clusters(self) -> int:
        return len(self.cluster_centers_)

    def assign(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Each row's nearest centre and its squared distance."""
        return nearest(x, self.cluster_centers_)

    def predict(self, x: np.ndarray) -> np.ndarray:
        return self.assign(x)[0]

    @classmethod
    def on(cls, centres: np.ndarray, x_train: np.ndarray) -> Clusters:
        """The clusters of ``centres``, with the training rows' assignment and inertia."""
        labels, distances = nearest(x_train, centres)
        return cls(centres, labels, float(np.sum(distances, dtype=np.float64)))


def nearest(x: np.ndarray, centres: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each row's nearest centre in squared Euclidean distance, and that distance."""
    x = np.asarray(x, np.float32)
    distances = np.sum(x * x, axis=1)[:, None] - 2.0 * x @ centres.T + np.sum(centres**2, axis=1)
    index = np.argmin(distances, axis=1)
    return index, np.maximum(distances[np.arange(len(x)), index], 0.0)


@dataclass(frozen=True)
class Result:
    """The refined representation (codes of every split, the trained encoder as its step) and
    the refined clusters on it."""

    representation: Representation
    clusters: Clusters


def refine(
    config: RefineConfig,
    features: FittedFeatures,
    splits: data.Splits,
    rep: Representation,
    centres: np.ndarray,
    seed: int,
) -> Result:
    """Refine the K-Means ``centres`` on ``rep`` (the autoencoder's codes of ``splits``)."""
    name = cache.key(
        {
            "features": rep.key,
            "refine": dataclasses.asdict(config),
            "centres": hashlib.sha256(np.ascontiguousarray(centres, np.float32).data).hexdigest(),
            "seed": seed,
            "versions": {lib: metadata.version(lib) for lib in LIBRARIES},
        }
    )
    entry, status = cache.fetch(name, lambda: _fit(config, features, splits, rep, centres, seed))
    if status == "hit":
        log.info("%s refinement from the cache (%s)", config.kind, name)
    refined = dataclasses.replace(
        rep.splits, x_train=entry.x_train, x_val=entry.x_val, x_test=entry.x_test
    )
    representation = Representation(
        refined, entry.steps, entry.history, entry.fit_seconds, status, name
    )
    return Result(representation, Clusters.on(entry.arrays[CENTRES], entry.x_train))


def _fit(
    config: RefineConfig,
    features: FittedFeatures,
    splits: data.Splits,
    rep: Representation,
    centres: np.ndarray,
    seed: int,
) -> cache.Entry:
    log.info("refining the K-Means with %s (seed %d)", config.kind, seed)
    start = time.perf_counter()
    parts = [data.as_floats(x) for x in (splits.x_train, splits.x_val, splits.x_test)]
    rows = fit_rows(features, parts)
    (encoder,) = rep.steps
    decoder = served_steps.Dense.from_arrays(rep.arrays, DECODER)
    refined = kind(config).fit(config, Start(rows, encoder, decoder, centres), seed)
    codes = [served_steps.transform([refined.encoder], x) for x in parts]
    return cache.Entry(
        *codes,
        [refined.encoder],
        refined.history,
        time.perf_counter() - start,
        {CENTRES: refined.centres},
    )
