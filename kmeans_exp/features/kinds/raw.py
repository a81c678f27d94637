"""``raw``: the pixels as they are (value / 255), what K-Means has always clustered here."""

from __future__ import annotations

import typing
from dataclasses import dataclass

from kmeans_exp.features.kinds import FeaturesConfig

LIBRARIES: tuple[str, ...] = ()  # passed through: nothing fitted, nothing cached


@dataclass
class Config(FeaturesConfig):
    KIND: typing.ClassVar[str] = "raw"
