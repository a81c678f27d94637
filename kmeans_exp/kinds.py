"""Options found by name: a config group whose every option is one module of a package.

A representation kind (``features=pca``) or a refinement (``refine=dec``) is one module in
``kmeans_exp/features/kinds/`` or ``kmeans_exp/refine/kinds/``, named as the option, plus its
YAML in ``conf/<group>/``. The module owns its schema (``Config``, a ``KindConfig``) and its
work; nothing else lists the kinds. Modules are imported by name, as big_vision finds its
models, and a kind module imports nothing heavy at module level (only its work, when it runs).
"""

from __future__ import annotations

import functools
import importlib
import pkgutil
import typing
from dataclasses import dataclass
from types import ModuleType

from omegaconf import MISSING

from kmeans_exp.errors import ConfigError


@dataclass
class KindConfig:
    """The base of every option of a kinds group: ``kind`` names the module (and the option)."""

    GROUP: typing.ClassVar[str] = ""  # the config group: features, refine
    KIND: typing.ClassVar[str] = ""  # this option's name: the module's
    kind: str = MISSING

    def __post_init__(self) -> None:
        if self.kind != self.KIND:  # features=pca features.kind=umap
            raise ConfigError(
                f"{self.GROUP}.kind={self.kind}: this is the {self.KIND} option; "
                f"choose another with {self.GROUP}={self.kind}"
            )


@functools.cache
def modules(package: str) -> dict[str, ModuleType]:
    """Every kind module of ``package`` (``kmeans_exp.features.kinds``), by name."""
    root = importlib.import_module(package)
    names = sorted(m.name for m in pkgutil.iter_modules(root.__path__) if m.name[0] != "_")
    return {name: importlib.import_module(f"{package}.{name}") for name in names}


def module(package: str, name: str) -> ModuleType:
    """The kind module ``name`` of ``package``."""
    return modules(package)[name]
