"""UMAP (umap-learn) of the rows, seeded: the same seed gives the same embedding.

umap-learn is an optional extra (``pip install -e '.[umap]'``); ``available()`` says whether it
is installed without importing it (its first import compiles numba code, tens of seconds).
A ``random_state`` makes UMAP run on one thread: reproducible, not fast.
"""

from __future__ import annotations

import importlib.util
import warnings

import numpy as np

from kmeans_exp.features.served_steps import Umap

EXTRA = "pip install -e '.[umap]'"


def available() -> bool:
    return importlib.util.find_spec("umap") is not None


def fit(
    x: np.ndarray, n_components: int, n_neighbors: int, min_dist: float, metric: str, seed: int
) -> tuple[Umap, np.ndarray]:
    """The fitted step, and the embedding of ``x`` itself (UMAP's own, not a re-transform)."""
    with warnings.catch_warnings():
        # "n_jobs value 1 overridden to 1 by setting random_state": what we ask for.
        warnings.filterwarnings("ignore", message="n_jobs value", category=UserWarning)
        import umap

        reducer = umap.UMAP(
            n_components=n_components,
            n_neighbors=n_neighbors,
            min_dist=min_dist,
            metric=metric,
            random_state=seed,
            transform_seed=seed,
        )
        embedding = reducer.fit_transform(x)
    return Umap(reducer), np.asarray(embedding, dtype=np.float32)
