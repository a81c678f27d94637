"""The configuration schema: typed by Hydra/OmegaConf, range-checked here (no TensorFlow import).

The schema holds types only; the values, defaults included, live in ``conf/``. OmegaConf rejects
wrong types, unknown keys and values outside an enum while Hydra composes the config; the
``__post_init__`` checks (run by ``OmegaConf.to_object``) reject values out of range, raising
``ConfigError`` with one line that names the key.
"""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass
from enum import Enum

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, DictConfig, OmegaConf

from kmeans_exp.errors import ConfigError


class DistanceMetric(Enum):
    cosine = "cosine"
    squared_euclidean = "squared_euclidean"


class Init(Enum):
    random = "random"
    kmeans_plus_plus = "kmeans_plus_plus"


class DataSource(Enum):
    bundled = "bundled"
    idx = "idx"
    npz = "npz"
    download = "download"


@dataclass
class DataConfig:
    """Where the images come from and how the training images are split."""

    source: DataSource = MISSING
    path: str | None = MISSING
    dataset: str = MISSING
    validation_size: int = MISSING
    url: str | None = MISSING

    def __post_init__(self) -> None:
        if self.validation_size < 0:
            raise ConfigError(
                f"data.validation_size={self.validation_size}: expected an integer >= 0"
            )
        if self.source is DataSource.bundled and self.path is not None:
            raise ConfigError("data.path: must be null with data.source=bundled")
        if self.source in (DataSource.idx, DataSource.npz, DataSource.download) and not self.path:
            raise ConfigError(f"data.path: required with data.source={self.source.value}")
        if self.source is DataSource.download and not self.url:
            raise ConfigError("data.url: required with data.source=download")
        if not self.dataset:
            raise ConfigError("data.dataset: expected a non-empty name")


@dataclass
class TrackingConfig:
    """MLflow: where runs go and what they are called."""

    uri: str | None = MISSING
    experiment_name: str = MISSING
    run_name: str | None = MISSING
    log_model: bool = MISSING

    def __post_init__(self) -> None:
        if not self.experiment_name:
            raise ConfigError("tracking.experiment_name: expected a non-empty name")
        if self.uri is not None and not self.uri:
            raise ConfigError("tracking.uri: expected a URI or null")


@dataclass
class ExperimentConfig:
    """One K-Means experiment: engine settings at the top level, data and tracking groups."""

    k: int = MISSING
    distance_metric: DistanceMetric = MISSING
    init: Init = MISSING
    use_mini_batch: bool = MISSING
    batch_size: int | None = MISSING
    steps: int = MISSING
    seed: int = MISSING
    data: DataConfig = MISSING
    tracking: TrackingConfig = MISSING

    def __post_init__(self) -> None:
        if self.k < 1:
            raise ConfigError(f"k={self.k}: expected an integer >= 1 (the number of clusters)")
        if self.steps < 1:
            raise ConfigError(f"steps={self.steps}: expected an integer >= 1")
        if self.batch_size is not None and self.batch_size < 1:
            raise ConfigError(
                f"batch_size={self.batch_size}: expected an integer >= 1, or null for the "
                "whole training set"
            )
        if self.seed < 0:
            raise ConfigError(f"seed={self.seed}: expected an integer >= 0")

    def check_against_data(self, n_train: int) -> None:
        """Refuse settings the training set cannot satisfy, before any work is done."""
        if self.k > n_train:
            raise ConfigError(f"k={self.k}: more clusters than the {n_train} training images")
        if self.batch_size is not None and self.batch_size > n_train:
            raise ConfigError(
                f"batch_size={self.batch_size}: larger than the {n_train} training images "
                "(use null for the whole training set)"
            )


def register_schema() -> None:
    """Make the schema the base of ``conf/config.yaml`` (``defaults: [schema, ...]``)."""
    ConfigStore.instance().store(name="schema", node=ExperimentConfig)


def to_experiment_config(cfg: DictConfig) -> ExperimentConfig:
    """The composed Hydra config as a checked ``ExperimentConfig`` (raises ``ConfigError``)."""
    _reject_unknown_keys(cfg, ExperimentConfig)
    return OmegaConf.to_object(cfg)


def _reject_unknown_keys(cfg: DictConfig, schema: type, prefix: str = "") -> None:
    """Hydra lets ``+key=value`` add keys even to a structured config; the schema does not."""
    hints = typing.get_type_hints(schema)
    for key in cfg:
        if key not in hints:
            raise ConfigError(
                f"{prefix}{key}: not a config key; expected one of {', '.join(hints)}"
            )
        if dataclasses.is_dataclass(hints[key]):
            _reject_unknown_keys(cfg[key], hints[key], f"{prefix}{key}.")


def flatten(cfg: ExperimentConfig) -> dict[str, str]:
    """Every value as a dotted key (``data.source``) with a string value, for MLflow params."""
    container = OmegaConf.to_container(OmegaConf.structured(cfg), resolve=True, enum_to_str=True)
    flat: dict[str, str] = {}

    def walk(prefix: str, node: object) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                walk(f"{prefix}{key}.", value)
        else:
            flat[prefix[:-1]] = "null" if node is None else str(node)

    walk("", container)
    return flat
