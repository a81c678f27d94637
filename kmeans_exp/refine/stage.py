"""The refinement stage: ``refine(...)`` runs a refinement after the K-Means, or reads it from
the cache, and returns what evaluation scores instead of the K-Means: the refined codes of
every split and the refined clusters.

It starts from the representation (for DEC and IDEC, the autoencoder's cache entry: its encoder,
and the decoder that entry keeps) and the K-Means on it. Its entry sits in the features cache,
keyed by the representation's entry (or the data, for a representation that is not cached),
the refinement's config, the K-Means centres (so k, the K-Means settings and its seed), the
seed and the library versions: a repeat of the same run, or a sweep over settings that do not
change the K-Means, does not refine again.
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
from kmeans_exp.features.kinds import FeaturesConfig
from kmeans_exp.features.kinds.autoencoder import DECODER
from kmeans_exp.features.served_steps import Mixture
from kmeans_exp.features.stage import Representation, digest, fit_rows
from kmeans_exp.refine.kinds import RefineConfig, Start, kind

log = logging.getLogger(__name__)

CENTRES = "centres"
MIXTURE = "mixture"  # the prefix of a mixture's arrays in the entry
SCORES = "scores"  # the prefix of the refinement's scalar scores in the entry


@dataclass(frozen=True)
class Clusters:
    """Refined clusters as evaluation sees a fitted model: the nearest centre in squared
    Euclidean distance (the argmax of DEC's Student-t assignment q), or the most likely
    component of a Gaussian mixture (``mixture``)."""

    cluster_centers_: np.ndarray  # (k, code)
    labels_: np.ndarray  # the training rows' clusters
    inertia_: float  # sum of the training rows' squared distances to their cluster's centre
    mixture: Mixture | None = None
    distance_metric: str = "squared_euclidean"

    @property
    def n_clusters(self) -> int:
        return len(self.cluster_centers_)

    def assign(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Each row's cluster and its squared distance to that cluster's centre."""
        x = data.as_floats(x)
        if self.mixture is None:
            return nearest(x, self.cluster_centers_)
        index = self.mixture.predict(x)
        return index, np.sum((x - self.cluster_centers_[index]) ** 2, axis=1)

    def predict(self, x: np.ndarray) -> np.ndarray:
        return self.assign(x)[0]

    @classmethod
    def on(cls, centres: np.ndarray, x_train: np.ndarray, mixture: Mixture | None) -> Clusters:
        """The clusters of ``centres`` (or ``mixture``), with the training rows' assignment and
        inertia."""
        labels, distances = cls(centres, np.empty(0), 0.0, mixture).assign(x_train)
        return cls(centres, labels, float(np.sum(distances, dtype=np.float64)), mixture)


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
    scores: dict[str, float]  # the refinement's own (a mixture's likelihood, BIC, EM iterations)


def refine(
    config: RefineConfig,
    features: FeaturesConfig,
    splits: data.Splits,
    rep: Representation,
    centres: np.ndarray,
    labels: np.ndarray,
    seed: int,
) -> Result:
    """Refine the K-Means (``centres``, and ``labels`` of the rows it was fitted on,
    ``rep.splits.x_train``) on ``rep``, the representation of ``splits``."""
    module = kind(config)
    name = cache.key(
        {
            "features": rep.key or digest(rep.splits),
            "refine": dataclasses.asdict(config),
            "centres": hashlib.sha256(np.ascontiguousarray(centres, np.float32).data).hexdigest(),
            "seed": seed,
            "versions": {lib: metadata.version(lib) for lib in module.LIBRARIES},
        }
    )
    entry, status = cache.fetch(
        name, lambda: _fit(config, features, splits, rep, centres, labels, seed)
    )
    if status == "hit":
        log.info("%s refinement from the cache (%s)", config.kind, name)
    refined = dataclasses.replace(
        rep.splits, x_train=entry.x_train, x_val=entry.x_val, x_test=entry.x_test
    )
    representation = Representation(
        refined, entry.steps, entry.history, entry.fit_seconds, status, name
    )
    mixture = Mixture.from_arrays(entry.arrays, MIXTURE)
    clusters = Clusters.on(entry.arrays[CENTRES], entry.x_train, mixture)
    scores = {
        name.removeprefix(f"{SCORES}."): float(value)
        for name, value in entry.arrays.items()
        if name.startswith(f"{SCORES}.")
    }
    return Result(representation, clusters, scores)


def _fit(
    config: RefineConfig,
    features: FeaturesConfig,
    splits: data.Splits,
    rep: Representation,
    centres: np.ndarray,
    labels: np.ndarray,
    seed: int,
) -> cache.Entry:
    log.info("refining the K-Means with %s (seed %d)", config.kind, seed)
    start = time.perf_counter()
    module = kind(config)
    if config.TRAINS_ENCODER:
        parts = [data.as_floats(x) for x in (splits.x_train, splits.x_val, splits.x_test)]
        rows = fit_rows(features, parts)
        (encoder,) = rep.steps
        decoder = served_steps.Dense.from_arrays(rep.arrays, DECODER)
    else:
        parts, rows, encoder, decoder = [], np.empty((0, 0), np.float32), None, None
    codes = data.as_floats(rep.splits.x_train)
    held_out = data.as_floats(rep.splits.x_test)
    begin = Start(rows, codes, labels, held_out, centres, encoder, decoder)
    refined = module.fit(config, begin, seed)
    arrays = {CENTRES: refined.centres}
    arrays |= {f"{SCORES}.{name}": np.asarray(value) for name, value in refined.scores.items()}
    if refined.mixture is not None:
        arrays |= {f"{MIXTURE}.{name}": value for name, value in refined.mixture.items()}
    if refined.encoder is None:  # the representation unchanged
        steps = list(rep.steps)
        split_codes = [rep.splits.x_train, rep.splits.x_val, rep.splits.x_test]
    else:
        steps = [refined.encoder]
        split_codes = [served_steps.transform([refined.encoder], x) for x in parts]
    return cache.Entry(*split_codes, steps, refined.history, time.perf_counter() - start, arrays)
