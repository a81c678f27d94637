"""``none``: the K-Means result is the run's result (the default)."""

from __future__ import annotations

import typing
from dataclasses import dataclass

from kmeans_exp.refine.kinds import RefineConfig


@dataclass
class Config(RefineConfig):
    KIND: typing.ClassVar[str] = "none"
