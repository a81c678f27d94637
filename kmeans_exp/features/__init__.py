"""The representation stage, between the data and the engine: what the K-Means clusters.

``represent(config, splits)`` returns the splits with their rows replaced by features, and the
steps that compute those features from the engine's float rows (pixels / 255), which the served
model carries. ``raw`` (the pixels) and ``precomputed`` (embeddings read as the data) pass the
rows through untouched. The fitted kinds are fitted on the training rows only (``fit_on:
train``; ``all`` adds validation and test rows, never labels), then cached on disk
(``features.cache``) and reused by every later run with the same data and settings.

Each kind has its module, imported only when it is used (umap-learn and Keras are heavy):
``pca``, ``umap_embedding``, ``autoencoder``; ``n2d`` is the autoencoder's codes fed to UMAP.
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
from kmeans_exp.config import AutoencoderFeatures, FeaturesConfig
from kmeans_exp.errors import ConfigError
from kmeans_exp.features import cache, served_steps
from kmeans_exp.options import FeatureKind, FitOn

log = logging.getLogger(__name__)

PASS_THROUGH = (FeatureKind.raw, FeatureKind.precomputed)
NEEDS_UMAP = (FeatureKind.umap, FeatureKind.n2d)
# Libraries whose version shapes a kind's result: part of its cache key.
LIBRARIES = {
    FeatureKind.pca: ("scikit-learn",),
    FeatureKind.umap: ("umap-learn", "pynndescent", "numba"),
    FeatureKind.autoencoder: ("tensorflow", "keras"),
    FeatureKind.n2d: ("tensorflow", "keras", "umap-learn", "pynndescent", "numba"),
}


@dataclass(frozen=True)
class Representation:
    """The splits as the engine clusters them, and how their features were made."""

    splits: data.Splits  # x_train, x_val, x_test replaced by the features
    steps: list  # served_steps: float rows -> features ([] for raw and precomputed)
    history: dict[str, list[float]]  # per-epoch series (the autoencoder's loss)
    fit_seconds: float  # what fitting cost when it ran (also on a cache hit)
    cache: str  # "hit", "miss" (fitted now, stored), "off" (fitted, no cache) or "none"


def check_available(config: FeaturesConfig) -> None:
    """Refuse a kind whose optional library is missing, before any import or run."""
    from kmeans_exp.features import umap_embedding

    if config.kind in NEEDS_UMAP and not umap_embedding.available():
        raise ConfigError(
            f"features={config.kind.value}: needs umap-learn, which is not installed "
            f"({umap_embedding.EXTRA})"
        )


def represent(config: FeaturesConfig, splits: data.Splits) -> Representation:
    """The features of every split: passed through, read from the cache, or fitted now."""
    if config.kind in PASS_THROUGH:
        return Representation(splits, [], {}, 0.0, "none")
    name = cache.key(
        {
            "data": _digest(splits),
            "features": dataclasses.asdict(config),
            "versions": {lib: metadata.version(lib) for lib in LIBRARIES[config.kind]},
        }
    )
    entry = cache.load(name)
    status = "hit"
    if entry is None:
        log.info("fitting %s features on %s", config.kind.value, _fit_rows_text(config, splits))
        entry = _fit(config, splits)
        cache.store(name, entry)
        status = "off" if cache.folder() is None else "miss"
    else:
        log.info("%s features from the cache (%s)", config.kind.value, name)
    features = dataclasses.replace(
        splits, x_train=entry.x_train, x_val=entry.x_val, x_test=entry.x_test
    )
    return Representation(features, entry.steps, entry.history, entry.fit_seconds, status)


def _fit(config: FeaturesConfig, splits: data.Splits) -> cache.Entry:
    start = time.perf_counter()
    if config.kind is FeatureKind.n2d:
        codes = represent(_autoencoder_part(config), splits)  # cached on its own: reused
        umap_step, parts = _fit_umap(
            config,
            list(_split_of(codes.splits)),
            config.umap_components,
            config.umap_neighbors,
            config.umap_min_dist,
            config.umap_metric,
        )
        steps = [*codes.steps, umap_step]
        return cache.Entry(*parts, steps, codes.history, time.perf_counter() - start)
    parts = [data.as_floats(x) for x in _split_of(splits)]
    history: dict[str, list[float]] = {}
    if config.kind is FeatureKind.umap:
        umap_step, parts = _fit_umap(
            config, parts, config.n_components, config.n_neighbors, config.min_dist, config.metric
        )
        steps = [umap_step]
    else:
        fit_rows = _fit_rows(config, parts)
        if config.kind is FeatureKind.pca:
            from kmeans_exp.features import pca

            steps = [pca.fit(fit_rows, config.n_components, config.whiten, config.seed)]
        else:
            from kmeans_exp.features import autoencoder

            encoder, losses = autoencoder.fit(
                fit_rows,
                config.hidden,
                config.code_size,
                config.epochs,
                config.batch_size,
                config.learning_rate,
                config.seed,
            )
            steps, history = [encoder], {"autoencoder_loss": losses}
        parts = [served_steps.transform(steps, x) for x in parts]
    return cache.Entry(*parts, steps, history, time.perf_counter() - start)


def _fit_umap(
    config, parts: list[np.ndarray], n_components: int, n_neighbors: int, min_dist, metric
) -> tuple[served_steps.Umap, list[np.ndarray]]:
    """UMAP fitted on the fit rows: their own embedding, the other splits transformed."""
    from kmeans_exp.features import umap_embedding

    rows = _fit_rows(config, parts)
    step, embedding = umap_embedding.fit(
        rows, n_components, n_neighbors, min_dist, metric, config.seed
    )
    if config.fit_on is FitOn.all:
        return step, np.split(embedding, np.cumsum([len(p) for p in parts])[:-1])
    others = [served_steps.transform([step], x) for x in parts[1:]]
    return step, [embedding, *others]


def _autoencoder_part(config) -> AutoencoderFeatures:
    """The autoencoder that an n2d config starts with, as its own (cacheable) config."""
    keys = [f.name for f in dataclasses.fields(AutoencoderFeatures) if f.name != "kind"]
    return AutoencoderFeatures(
        kind=FeatureKind.autoencoder, **{k: getattr(config, k) for k in keys}
    )


def _fit_rows(config, parts: list[np.ndarray]) -> np.ndarray:
    """The rows a representation is fitted on: training, or every split (``fit_on: all``)."""
    return parts[0] if config.fit_on is FitOn.train else np.concatenate(parts)


def _fit_rows_text(config, splits: data.Splits) -> str:
    n = len(splits.x_train)
    if config.fit_on is FitOn.all:
        n += len(splits.x_val) + len(splits.x_test)
    return f"{n} rows ({config.fit_on.value})"


def _split_of(splits: data.Splits) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    return splits.x_train, splits.x_val, splits.x_test


def _digest(splits: data.Splits) -> str:
    """A hash of every row and of the split sizes: what the representation is fitted from."""
    digest = hashlib.sha256()
    for x in _split_of(splits):
        digest.update(str((x.shape, x.dtype.str)).encode())
        digest.update(np.ascontiguousarray(x).data)
    return digest.hexdigest()
