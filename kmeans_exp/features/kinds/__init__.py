"""Representation kinds: one module each, found by name (``kmeans_exp.kinds``).

A kind module holds:

- ``Config``: its schema, a ``FeaturesConfig`` whose ``KIND`` is the module's name; its YAML in
  ``conf/features/<name>.yaml`` names ``<name>_schema`` as its base;
- ``LIBRARIES``: the distributions whose versions shape a fitted result (the cache key);
  empty for the kinds that pass the rows through (``raw``, ``precomputed``);
- ``fit(config, rows) -> Fitted`` (fitted kinds): fit on float rows, never on labels;
- optionally ``NEEDS``/``EXTRA`` (an optional library and how to install it) and
  ``base(config)``: the representation this one is fitted on (n2d: the autoencoder's codes).

Nothing heavy is imported at module level: a kind's libraries load when it fits.
"""

from __future__ import annotations

import typing
from dataclasses import dataclass, field

import numpy as np
from omegaconf import MISSING

from kmeans_exp import options
from kmeans_exp.kinds import KindConfig
from kmeans_exp.options import FitOn

PACKAGE = __name__


@dataclass
class FeaturesConfig(KindConfig):
    """What the K-Means clusters (the base of every option of the ``features`` group)."""

    GROUP: typing.ClassVar[str] = "features"

    @property
    def embeddings_path(self) -> str | None:
        """An ``.npz`` of embeddings read instead of the images (``precomputed``), or None."""
        return None

    def check_against_data(self, n_train: int, width: int) -> None:
        """Refuse settings the training rows cannot satisfy (their count and width)."""


@dataclass
class FittedFeatures(FeaturesConfig):
    """A representation fitted on the images (never on their labels), then cached.

    ``seed`` null (the default) follows the run's ``seed``: a seed sweep refits the
    representation per seed, so its spread covers the whole pipeline.
    """

    fit_on: FitOn | None = MISSING  # None: the protocol's (resolved by the experiment's config)
    seed: int | None = MISSING

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.seed is not None:
            options.at_least("features.seed", self.seed, 0, "or null: the run's seed")


@dataclass(frozen=True)
class Fitted:
    """What a kind's ``fit`` returns."""

    steps: list  # served_steps: the fit rows' space -> features
    embedding: np.ndarray | None = None  # the fit rows' own features, when the fit made them
    history: dict[str, list[float]] = field(default_factory=dict)  # per-epoch series
    arrays: dict[str, np.ndarray] = field(default_factory=dict)  # kept for later stages


def kind(config: FeaturesConfig) -> typing.Any:
    """The kind module of ``config``."""
    from kmeans_exp import kinds

    return kinds.module(PACKAGE, config.kind)
