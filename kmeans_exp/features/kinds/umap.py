"""``umap``: UMAP (umap-learn) of the rows, seeded: the same seed gives the same embedding.

umap-learn is an optional extra (``pip install -e '.[umap]'``); its first import compiles numba
code (tens of seconds), so it is imported only when a fit runs. A ``random_state`` makes UMAP
run on one thread: reproducible, not fast. ``Params`` is also n2d's ``features.umap``.
"""

from __future__ import annotations

import typing
import warnings
from dataclasses import dataclass

import numpy as np
from omegaconf import MISSING

from kmeans_exp import options
from kmeans_exp.errors import ConfigError
from kmeans_exp.features.kinds import Fitted, FittedFeatures
from kmeans_exp.features.served_steps import Umap

LIBRARIES = ("umap-learn", "pynndescent", "numba")
NEEDS = "umap"  # the import it needs
EXTRA = "pip install -e '.[umap]'"


@dataclass
class Params:
    """UMAP's settings, checked under a key prefix (``features.`` or ``features.umap.``)."""

    n_components: int = MISSING
    n_neighbors: int = MISSING
    min_dist: float = MISSING
    metric: str = MISSING

    def check(self, prefix: str) -> None:
        options.at_least(prefix + "n_components", self.n_components, 1)
        options.at_least(prefix + "n_neighbors", self.n_neighbors, 2, "UMAP needs 2 or more")
        options.non_negative(prefix + "min_dist", self.min_dist)
        if not self.metric:
            raise ConfigError(f"{prefix}metric: expected a metric name (e.g. euclidean)")

    def check_rows(self, prefix: str, n_rows: int, width: int, what: str) -> None:
        options.fits_width(prefix + "n_components", self.n_components, width, what)
        options.fits_width(prefix + "n_neighbors", self.n_neighbors, n_rows - 1, "other rows")


@dataclass
class Config(FittedFeatures, Params):
    KIND: typing.ClassVar[str] = "umap"

    def __post_init__(self) -> None:
        super().__post_init__()
        self.check("features.")

    def check_against_data(self, n_train: int, width: int) -> None:
        self.check_rows("features.", n_train, width, "input columns")


def fit(config: Config, x: np.ndarray) -> Fitted:
    return fit_params(config, config.seed, x)


def fit_params(params: Params, seed: int, x: np.ndarray) -> Fitted:
    """The fitted step, and the embedding of ``x`` itself (UMAP's own, not a re-transform)."""
    with warnings.catch_warnings():
        # "n_jobs value 1 overridden to 1 by setting random_state": what we ask for.
        warnings.filterwarnings("ignore", message="n_jobs value", category=UserWarning)
        import umap

        reducer = umap.UMAP(
            n_components=params.n_components,
            n_neighbors=params.n_neighbors,
            min_dist=params.min_dist,
            metric=params.metric,
            random_state=seed,
            transform_seed=seed,
        )
        embedding = reducer.fit_transform(x)
    return Fitted([Umap(reducer)], np.asarray(embedding, dtype=np.float32))
