"""``dec``: Deep Embedded Clustering (Xie et al. 2016). The encoder and the clustering layer's
centres are trained on KL(P‖Q) alone, with SGD and momentum (the published settings)."""

from __future__ import annotations

import typing
from dataclasses import dataclass

from omegaconf import MISSING

from kmeans_exp import options
from kmeans_exp.refine.kinds import ClusteringParams, Refined, Start

LIBRARIES = ("tensorflow", "keras")


@dataclass
class Config(ClusteringParams):
    KIND: typing.ClassVar[str] = "dec"
    momentum: float = MISSING  # SGD's

    def __post_init__(self) -> None:
        super().__post_init__()
        options.momentum("refine.momentum", self.momentum)


def fit(config: Config, start: Start, seed: int) -> Refined:
    from kmeans_exp.refine import student_t

    optimizer = ("SGD", {"learning_rate": config.learning_rate, "momentum": config.momentum})
    return student_t.train(config, start, optimizer, gamma=None, seed=seed)
