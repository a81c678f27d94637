"""``pca``: PCA of the rows (scikit-learn's ``PCA``), as an ``Affine`` step: centre, project,
whiten."""

from __future__ import annotations

import typing
from dataclasses import dataclass

import numpy as np
from omegaconf import MISSING

from kmeans_exp import options
from kmeans_exp.features.kinds import Fitted, FittedFeatures
from kmeans_exp.features.served_steps import Affine

LIBRARIES = ("scikit-learn",)


@dataclass
class Config(FittedFeatures):
    KIND: typing.ClassVar[str] = "pca"
    n_components: int = MISSING
    whiten: bool = MISSING

    def __post_init__(self) -> None:
        super().__post_init__()
        options.at_least("features.n_components", self.n_components, 1)

    def check_against_data(self, n_train: int, width: int) -> None:
        options.fits_width("features.n_components", self.n_components, width, "input columns")
        options.fits_width("features.n_components", self.n_components, n_train, "training rows")


def fit(config: Config, x: np.ndarray) -> Fitted:
    """The PCA of float rows ``x`` (its randomized solver seeded with ``config.seed``)."""
    from sklearn.decomposition import PCA

    pca = PCA(n_components=config.n_components, whiten=config.whiten, random_state=config.seed)
    pca.fit(x)
    scale = None
    if config.whiten:
        scale = (1.0 / np.sqrt(np.maximum(pca.explained_variance_, 1e-12))).astype(np.float32)
    return Fitted(
        [Affine(pca.mean_.astype(np.float32), pca.components_.T.astype(np.float32), scale)]
    )
