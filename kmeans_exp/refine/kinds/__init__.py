"""Refinements after the K-Means: one module each, found by name (``kmeans_exp.kinds``).

A refinement module holds ``Config`` (its schema, a ``RefineConfig`` whose ``KIND`` is the
module's name; its YAML in ``conf/refine/<name>.yaml``) and, unless it is ``none``,
``LIBRARIES`` (whose versions shape its result) and ``fit(config, start, seed) -> Refined``.
``Config.FEATURES`` names the representation kinds it applies to (None: any);
``Config.DISTANCE`` the K-Means distance it starts from.
"""

from __future__ import annotations

import typing
from dataclasses import dataclass, field

import numpy as np
from omegaconf import MISSING

from kmeans_exp import options
from kmeans_exp.errors import ConfigError
from kmeans_exp.kinds import KindConfig

PACKAGE = __name__


@dataclass
class RefineConfig(KindConfig):
    """What runs after the K-Means (the base of every option of the ``refine`` group)."""

    GROUP: typing.ClassVar[str] = "refine"
    FEATURES: typing.ClassVar[tuple[str, ...] | None] = None  # None: any representation
    DISTANCE: typing.ClassVar[str | None] = None  # None: any K-Means distance
    TRAINS_ENCODER: typing.ClassVar[bool] = False  # it trains the autoencoder's encoder on
    # the representation's fit rows (DEC, IDEC); else it works on the K-Means' codes alone

    def check_against(self, features_kind: str, distance_metric: str) -> None:
        """Refuse a representation or K-Means this refinement cannot start from."""
        if self.FEATURES is not None and features_kind not in self.FEATURES:
            allowed = ", ".join(f"features={name}" for name in self.FEATURES)
            raise ConfigError(
                f"refine={self.kind} with features={features_kind}: it trains the encoder, "
                f"so it needs {allowed}"
            )
        if self.DISTANCE is not None and distance_metric != self.DISTANCE:
            raise ConfigError(
                f"refine={self.kind} with distance_metric={distance_metric}: it starts from "
                f"Euclidean K-Means centres (distance_metric={self.DISTANCE})"
            )


@dataclass
class ClusteringParams(RefineConfig):
    """A clustering layer trained on the codes (DEC and IDEC), with its published defaults."""

    FEATURES: typing.ClassVar[tuple[str, ...] | None] = ("autoencoder",)
    DISTANCE: typing.ClassVar[str | None] = "squared_euclidean"
    TRAINS_ENCODER: typing.ClassVar[bool] = True
    batch_size: int = MISSING
    update_interval: int = MISSING  # batches between updates of the target distribution
    tol: float = MISSING  # stop when fewer than this fraction of points change cluster
    max_iter: int = MISSING  # batches at most
    learning_rate: float = MISSING
    shuffle: bool = MISSING  # batches from a new permutation per pass, or in order (DEC-keras)

    def __post_init__(self) -> None:
        super().__post_init__()
        options.at_least("refine.batch_size", self.batch_size, 1)
        options.at_least("refine.update_interval", self.update_interval, 1, "batches")
        options.open_unit_interval("refine.tol", self.tol)
        options.at_least("refine.max_iter", self.max_iter, 1, "batches")
        options.positive("refine.learning_rate", self.learning_rate)


@dataclass(frozen=True)
class Start:
    """What a refinement starts from: the representation and the K-Means on it."""

    rows: np.ndarray  # float rows it trains an encoder on (the representation's fit rows)
    codes: np.ndarray  # the rows the K-Means was fitted on, as features
    labels: np.ndarray  # their K-Means clusters
    held_out: np.ndarray  # the test rows' features (none under protocol=transductive)
    centres: np.ndarray  # (k, code) K-Means centres on the codes
    encoder: typing.Any = None  # served_steps.Dense: an autoencoder's, else None
    decoder: typing.Any = None  # served_steps.Dense


@dataclass(frozen=True)
class Refined:
    """A refinement's result: the trained encoder (None: the representation is unchanged), the
    centres, its series; a mixture's arrays (``served_steps.Mixture``) when rows go to their
    most likely component rather than their nearest centre; scalar scores to log."""

    encoder: typing.Any  # served_steps.Dense, or None
    centres: np.ndarray
    history: dict[str, list[float]] = field(default_factory=dict)
    mixture: dict[str, np.ndarray] | None = None
    scores: dict[str, float] = field(default_factory=dict)


def kind(config: RefineConfig) -> typing.Any:
    """The refinement module of ``config``."""
    from kmeans_exp import kinds

    return kinds.module(PACKAGE, config.kind)
