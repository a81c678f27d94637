"""``n2d`` (McConville et al.): the autoencoder, then UMAP on its codes.

The autoencoder part is the ``autoencoder`` kind with the same settings, fitted (and cached) on
its own, so an ``autoencoder`` run and an ``n2d`` run with the same settings share it.
"""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass

import numpy as np
from omegaconf import MISSING

from kmeans_exp.features.kinds import Fitted, autoencoder
from kmeans_exp.features.kinds import umap as umap_kind  # not `umap`: the field's name

LIBRARIES = umap_kind.LIBRARIES  # this part's; the autoencoder's entry has its own key
NEEDS = umap_kind.NEEDS
EXTRA = umap_kind.EXTRA


@dataclass
class Config(autoencoder.Config):
    KIND: typing.ClassVar[str] = "n2d"
    umap: umap_kind.Params = MISSING

    def __post_init__(self) -> None:
        super().__post_init__()
        self.umap.check("features.umap.")

    def check_against_data(self, n_train: int, width: int) -> None:
        self.umap.check_rows("features.umap.", n_train, self.code_size, "code columns")


def base(config: Config) -> autoencoder.Config:
    """The autoencoder that n2d starts with, as its own (cached) config."""
    fields = {f.name for f in dataclasses.fields(autoencoder.Config)} - {"kind"}
    return autoencoder.Config(kind="autoencoder", **{k: getattr(config, k) for k in fields})


def fit(config: Config, codes: np.ndarray) -> Fitted:
    """UMAP of the autoencoder's codes."""
    return umap_kind.fit_params(config.umap, config.seed, codes)
