"""``umap``: UMAP (umap-learn) of the rows, seeded: the same seed gives the same embedding.

umap-learn is an optional extra (``pip install -e '.[umap]'``), imported only when a fit runs.
Its first fit in a process compiles numba code (about 35 s on 2 cores); most of it is kept on
disk (``<user cache>/kmeans_exp/numba``, or ``$KMEANS_EXP_NUMBA_CACHE``; ``NUMBA_CACHE_DIR``
wins when set), so later processes skip it. A ``random_state`` makes UMAP run on one thread:
reproducible, not fast. ``Params`` is also n2d's ``features.umap``.
"""

from __future__ import annotations

import functools
import sys
import typing
import warnings
from dataclasses import dataclass

import numpy as np
from omegaconf import MISSING

from kmeans_exp import cache_dirs, options
from kmeans_exp.errors import ConfigError
from kmeans_exp.features.kinds import Fitted, FittedFeatures
from kmeans_exp.features.served_steps import Umap

LIBRARIES = ("umap-learn", "pynndescent", "numba")
NEEDS = "umap"  # the import it needs
EXTRA = "pip install -e '.[umap]'"
NUMBA_CACHE = "KMEANS_EXP_NUMBA_CACHE"  # the compiled code's folder, or "off"


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

        _keep_compiled_code()
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


@functools.cache
def _keep_compiled_code() -> None:
    """Cache umap-learn's and pynndescent's numba functions on disk, which they mostly do not.

    Most of them are compiled without numba's ``cache=True``, so every process that fits UMAP
    compiled them again (35 s of a 40 s fit of 5,000 rows). numba's own ``enable_caching``
    keeps them: a later process compiles what remains in about 12 s. The machine code is the
    same, so the embedding is too.
    """
    import numba
    from numba.core.registry import CPUDispatcher

    if not numba.config.CACHE_DIR:  # NUMBA_CACHE_DIR, when the user set it, wins
        folder = cache_dirs.folder(NUMBA_CACHE, "numba")
        if folder is None:
            return
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError:  # a folder that cannot be made: compile per process, as before
            return
        numba.config.CACHE_DIR = str(folder)
    for module in list(sys.modules.values()):
        if getattr(module, "__name__", "").partition(".")[0] in ("umap", "pynndescent"):
            for value in list(vars(module).values()):
                if isinstance(value, CPUDispatcher):
                    try:
                        value.enable_caching()
                    except RuntimeError:  # numba found no folder it can write to
                        return
