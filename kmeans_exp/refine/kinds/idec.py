"""``idec``: Improved DEC (Guo et al., IJCAI 2017). DEC's clustering loss, weighted by ``gamma``,
plus the decoder's reconstruction loss, so the codes keep the images' structure; Adam, as
published: loss = MSE(decoder(encoder(x)), x) + gamma * KL(P‖Q)."""

from __future__ import annotations

import typing
from dataclasses import dataclass

from omegaconf import MISSING

from kmeans_exp import options
from kmeans_exp.refine.kinds import ClusteringParams, Refined, Start

LIBRARIES = ("tensorflow", "keras")


@dataclass
class Config(ClusteringParams):
    KIND: typing.ClassVar[str] = "idec"
    gamma: float = MISSING  # the clustering loss's weight against the reconstruction's

    def __post_init__(self) -> None:
        super().__post_init__()
        options.non_negative("refine.gamma", self.gamma)


def fit(config: Config, start: Start, seed: int) -> Refined:
    from kmeans_exp.refine import student_t

    optimizer = ("Adam", {"learning_rate": config.learning_rate})
    return student_t.train(config, start, optimizer, gamma=config.gamma, seed=seed)
