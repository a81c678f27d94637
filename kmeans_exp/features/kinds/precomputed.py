"""``precomputed``: float embeddings made elsewhere, read as the data (nothing fitted)."""

from __future__ import annotations

import typing
from dataclasses import dataclass

from omegaconf import MISSING

from kmeans_exp.errors import ConfigError
from kmeans_exp.features.kinds import FeaturesConfig

LIBRARIES: tuple[str, ...] = ()  # passed through: nothing fitted, nothing cached


@dataclass
class Config(FeaturesConfig):
    """An ``.npz`` with x_train, y_train, x_test, y_test."""

    KIND: typing.ClassVar[str] = "precomputed"
    path: str = MISSING

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.path:
            raise ConfigError("features.path: required with features=precomputed")

    @property
    def embeddings_path(self) -> str | None:
        return self.path
