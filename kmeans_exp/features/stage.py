"""The representation stage: ``represent(config, splits, seed)``, the splits as the engine
clusters them.

``raw`` (the pixels) and ``precomputed`` (embeddings read as the data) pass the rows through.
A fitted kind (its module in ``kinds/``) is fitted on the training rows only (``fit_on:
train``; ``all`` adds validation and test rows, never labels) with its seed, which follows the
run's unless ``features.seed`` is set, then cached on disk (``cache``) under a key of the data,
the config with that seed and the library versions: every later run with the same inputs reads
it, and two seeds never share an entry. A kind with a ``base`` (n2d) is fitted on that
representation's features, which are represented (and cached) on their own first.
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib.util
import logging
import time
from dataclasses import dataclass, field
from importlib import metadata

import numpy as np

from kmeans_exp import data
from kmeans_exp.errors import ConfigError
from kmeans_exp.features import cache, served_steps
from kmeans_exp.features.kinds import FeaturesConfig, Fitted, FittedFeatures, kind
from kmeans_exp.options import FitOn

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Representation:
    """The splits as the engine clusters them, and how their features were made."""

    splits: data.Splits  # x_train, x_val, x_test replaced by the features
    steps: list  # served_steps: float rows -> features ([] for raw and precomputed)
    history: dict[str, list[float]]  # per-epoch series (the autoencoder's loss)
    fit_seconds: float  # what fitting cost when it ran (also on a cache hit)
    cache: str  # "hit", "miss" (fitted now, stored), "off" (fitted, no cache) or "none"
    key: str | None = None  # the cache entry's name (None when passed through)
    arrays: dict[str, np.ndarray] = field(default_factory=dict)  # for later stages (decoder)
    epochs_trained: int | None = None  # of a continuing training: the epochs trained by this run
    epochs_cached: int | None = None  # ... and those read from the cache


def check_available(config: FeaturesConfig) -> None:
    """Refuse a kind whose optional library is missing, before any import or run."""
    module = kind(config)
    needs = getattr(module, "NEEDS", None)
    if needs and importlib.util.find_spec(needs) is None:
        raise ConfigError(
            f"features={config.kind}: needs {needs}, which is not installed ({module.EXTRA})"
        )


def fit_seed(config: FeaturesConfig, run_seed: int) -> int | None:
    """The seed a representation is fitted with: ``features.seed``, else the run's."""
    if not isinstance(config, FittedFeatures):
        return None
    return run_seed if config.seed is None else config.seed


def represent(config: FeaturesConfig, splits: data.Splits, seed: int) -> Representation:
    """The features of every split: passed through, read from the cache, or fitted now.

    ``seed`` is the run's; a ``features.seed`` that is set wins over it.
    """
    module = kind(config)
    if not module.LIBRARIES:
        return Representation(splits, [], {}, 0.0, "none")
    config = dataclasses.replace(config, seed=fit_seed(config, seed))
    inputs = {
        "data": digest(splits),
        "versions": {lib: metadata.version(lib) for lib in module.LIBRARIES},
    }
    name = cache.key(inputs | {"features": dataclasses.asdict(config)})
    budget = getattr(module, "CONTINUES", None)
    lineage = None
    if budget is not None:  # the same key without the budget
        lineage = cache.key(inputs | {"features": dataclasses.asdict(config) | {budget: None}})
    entry, status = cache.fetch(name, lambda: _fit(module, config, splits, lineage))
    if status == "hit":
        log.info("%s features from the cache (%s)", config.kind, name)
    features = dataclasses.replace(
        splits, x_train=entry.x_train, x_val=entry.x_val, x_test=entry.x_test
    )
    trained = 0 if status == "hit" and entry.trained is not None else entry.trained
    total = getattr(config, "epochs", None)
    return Representation(
        features,
        entry.steps,
        entry.history,
        entry.fit_seconds,
        status,
        name,
        entry.arrays,
        trained,
        None if trained is None else total - trained,
    )


def _fit(module, config: FittedFeatures, splits: data.Splits, lineage: str | None) -> cache.Entry:
    """Fit ``config``'s kind on its input rows (the pixels, or its base's features), continuing
    the longest shorter training of its ``lineage`` when one is cached."""
    log.info("fitting %s features on %s", config.kind, _fit_rows_text(config, splits))
    start = time.perf_counter()
    steps: list = []
    history: dict[str, list[float]] = {}
    trained = None
    if hasattr(module, "base"):
        below = represent(module.base(config), splits, config.seed)  # cached on its own
        parts = list(_split_of(below.splits))
        steps, history, trained = list(below.steps), dict(below.history), below.epochs_trained
    else:
        parts = [data.as_floats(x) for x in _split_of(splits)]
    previous = None
    budget = None if lineage is None else getattr(config, module.CONTINUES)
    if lineage is not None:
        previous = cache.longest_before(lineage, budget)
        done = 0 if previous is None else previous.budget
        if previous is not None:
            unit = module.CONTINUES
            log.info(
                "continuing the %s training cached at %d %s, to %d", config.kind, done, unit, budget
            )
        trained = budget - done
    if previous is None:
        fitted = module.fit(config, fit_rows(config, parts))
    else:
        earlier = Fitted(previous.steps, None, previous.history, previous.arrays)
        fitted = module.fit(config, fit_rows(config, parts), earlier)
    if fitted.embedding is None:
        parts = [served_steps.transform(fitted.steps, x) for x in parts]
    elif config.fit_on is FitOn.all:  # the fit rows were every split: their own embedding
        parts = np.split(fitted.embedding, np.cumsum([len(p) for p in parts])[:-1])
    else:
        parts = [fitted.embedding, *(served_steps.transform(fitted.steps, x) for x in parts[1:])]
    return cache.Entry(
        *parts,
        [*steps, *fitted.steps],
        {**history, **fitted.history},
        time.perf_counter() - start,
        fitted.arrays,
        lineage,
        budget,
        trained,
    )


def fit_rows(config: FittedFeatures, parts: list[np.ndarray]) -> np.ndarray:
    """The rows a representation is fitted on: training, or every split (``fit_on: all``)."""
    return parts[0] if config.fit_on is FitOn.train else np.concatenate(parts)


def _fit_rows_text(config: FittedFeatures, splits: data.Splits) -> str:
    n = len(splits.x_train)
    if config.fit_on is FitOn.all:
        n += len(splits.x_val) + len(splits.x_test)
    return f"{n} rows ({config.fit_on.value}, seed {config.seed})"


def _split_of(splits: data.Splits) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    return splits.x_train, splits.x_val, splits.x_test


def digest(splits: data.Splits) -> str:
    """A hash of every row and of the split sizes: what the representation is fitted from."""
    sha = hashlib.sha256()
    for x in _split_of(splits):
        sha.update(str((x.shape, x.dtype.str)).encode())
        sha.update(np.ascontiguousarray(x).data)
    return sha.hexdigest()
