"""The configuration schema, and composing it from ``conf/`` without the command line.

The schema holds types only; the values, defaults included, live in ``conf/``. OmegaConf rejects
wrong types, unknown keys and values outside an enum while Hydra composes the config; the
``__post_init__`` checks (run by ``OmegaConf.to_object``) reject values out of range with the
shared checks of ``kmeans_exp.options``, raising ``ConfigError`` with one line naming the key.
No TensorFlow or MLflow here.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, DictConfig, OmegaConf
from omegaconf.errors import MissingMandatoryValue, OmegaConfBaseException

from kmeans_exp import kinds, options
from kmeans_exp.errors import ConfigError, first_line
from kmeans_exp.features.kinds import PACKAGE as FEATURE_KINDS
from kmeans_exp.features.kinds import FeaturesConfig
from kmeans_exp.options import (
    DataSource,
    DistanceMetric,
    DistributedKind,
    FitOn,
    Init,
    OptimizedMetric,
    Protocol,
)
from kmeans_exp.refine.kinds import PACKAGE as REFINE_KINDS
from kmeans_exp.refine.kinds import RefineConfig

__all__ = [
    "DataSource",
    "DistanceMetric",
    "DistributedKind",
    "ExperimentConfig",
    "FitOn",
    "Init",
    "OptimizedMetric",
    "Protocol",
    "compose",
]

_PACKAGE = Path(__file__).resolve().parent
# A source checkout keeps the configs at the top level; an installed wheel carries them inside.
CONFIG_DIR = _PACKAGE / "conf" if (_PACKAGE / "conf").is_dir() else _PACKAGE.parent / "conf"


@dataclass
class DataConfig:
    """Where the images come from and how the training images are split."""

    source: DataSource = MISSING
    path: str | None = MISSING
    dataset: str = MISSING
    validation_size: int = MISSING
    url: str | None = MISSING
    test_path: str | None = MISSING  # shards only: a second folder of shards, the test split

    def __post_init__(self) -> None:
        options.at_least("data.validation_size", self.validation_size, 0)
        options.data_source(self.source, self.path, self.url)
        if not self.dataset:
            raise ConfigError("data.dataset: expected a non-empty name")
        if self.test_path is not None and self.source is not DataSource.shards:
            raise ConfigError(
                f"data.test_path: only with data.source=shards (data.source={self.source.value} "
                "brings its own test split)"
            )

    @property
    def sharded(self) -> bool:
        return self.source is DataSource.shards


@dataclass
class DistributedConfig:
    """Where one fit runs: this process (none), or ``workers`` worker processes (local, ray,
    slurm) that each read their share of the shards and add up their sums by all-reduce."""

    kind: DistributedKind = MISSING
    workers: int = MISSING
    timeout_seconds: float = MISSING  # bounds every collective: a silent worker fails the run
    scratch: str | None = MISSING  # where workers keep per-row scratch files; null: system temp
    ray_address: str | None = MISSING  # ray: the cluster to join; null: start a local one
    port_base: int = MISSING  # slurm: worker i of a node listens on port_base + i

    def __post_init__(self) -> None:
        options.at_least("distributed.workers", self.workers, 1, "the number of workers")
        options.positive("distributed.timeout_seconds", self.timeout_seconds)
        options.at_least("distributed.port_base", self.port_base, 1024)
        if self.kind is DistributedKind.none and self.workers != 1:
            raise ConfigError(
                f"distributed.workers={self.workers} with distributed=none: one process is one "
                "worker (choose distributed=local, ray or slurm)"
            )


@dataclass
class TrackingConfig:
    """MLflow: whether and where runs go, and what they are called."""

    enabled: bool = MISSING
    uri: str | None = MISSING
    experiment_name: str = MISSING
    run_name: str | None = MISSING
    log_model: bool = MISSING
    skip_finished: bool = MISSING

    def __post_init__(self) -> None:
        if not self.experiment_name:
            raise ConfigError("tracking.experiment_name: expected a non-empty name")
        if self.uri is not None and not self.uri:
            raise ConfigError("tracking.uri: expected a URI or null")


@dataclass
class ExperimentConfig:
    """One K-Means experiment: engine settings at the top level; data, features, refine and
    tracking groups."""

    k: int = MISSING
    distance_metric: DistanceMetric = MISSING
    init: Init | None = MISSING
    init_rounds: int = MISSING
    init_oversampling: float = MISSING
    use_mini_batch: bool = MISSING
    batch_size: int | None = MISSING
    steps: int = MISSING
    n_init: int = MISSING
    seed: int = MISSING
    protocol: Protocol = MISSING
    optimized_metric: OptimizedMetric | None = MISSING
    data: DataConfig = MISSING
    features: FeaturesConfig = MISSING
    refine: RefineConfig = MISSING
    distributed: DistributedConfig = MISSING
    tracking: TrackingConfig = MISSING

    def __post_init__(self) -> None:
        options.at_least("k", self.k, 1, "the number of clusters")
        options.at_least("init_rounds", self.init_rounds, 1)
        options.positive("init_oversampling", self.init_oversampling)
        self._check_sharded()
        options.at_least("steps", self.steps, 1)
        options.batch_size("batch_size", self.batch_size)
        options.at_least("n_init", self.n_init, 1, "the number of restarts")
        options.at_least("seed", self.seed, 0)
        self.optimized_metric = options.optimized_metric(self.optimized_metric, self.protocol)
        self._resolve_fit_on()
        self.refine.check_against(self.features.kind, self.distance_metric.value)

    @property
    def transductive(self) -> bool:
        return self.protocol is Protocol.transductive

    def _check_sharded(self) -> None:
        """Shards go with the raw rows, one fit on workers; ``init`` null follows the data
        (shards: kmeans_parallel; in memory: kmeans_plus_plus)."""
        sharded = self.data.sharded
        if self.init is None:
            self.init = Init.kmeans_parallel if sharded else Init.kmeans_plus_plus
        if sharded:
            if self.features.kind != "raw" or self.refine.kind != "none":
                what = (
                    f"features={self.features.kind}"
                    if self.features.kind != "raw"
                    else f"refine={self.refine.kind}"
                )
                raise ConfigError(
                    f"{what} with data.source=shards: shards are clustered as they are "
                    "(features=raw, refine=none); representations fit in memory"
                )
            if self.transductive:
                raise ConfigError(
                    "protocol=transductive with data.source=shards: a sharded fit scores its "
                    "validation rows and data.test_path (protocol=held_out)"
                )
            return
        if self.init is Init.kmeans_parallel:
            raise ConfigError(
                "init=kmeans_parallel: k-means|| is for sharded data (data.source=shards); "
                "in memory use kmeans_plus_plus or random"
            )
        if self.distributed.kind is not DistributedKind.none:
            raise ConfigError(
                f"distributed={self.distributed.kind.value}: one fit on several workers reads "
                "sharded data (data.source=shards; python -m kmeans_exp.shards writes them)"
            )

    def _resolve_fit_on(self) -> None:
        """A representation's ``fit_on`` null follows the protocol (held_out: the training
        rows; transductive: every row); under transductive, only ``all`` can be asked for."""
        fit_on = getattr(self.features, "fit_on", MISSING)
        if fit_on is MISSING:  # a kind that fits nothing (raw, precomputed)
            return
        if self.transductive and fit_on is FitOn.train:
            raise ConfigError(
                "features.fit_on=train with protocol=transductive: every stage fits on every "
                "image there (use features.fit_on=all or null)"
            )
        if fit_on is None:
            self.features.fit_on = FitOn.all if self.transductive else FitOn.train

    def check_against_data(self, n_train: int, width: int) -> None:
        """Refuse settings the training rows (count, width) cannot satisfy, before any work."""
        self.features.check_against_data(n_train, width)
        options.fits_rows(self.k, self.batch_size, n_train)


def register_schema() -> None:
    """Make the schemas the bases of ``conf/config.yaml`` (``defaults: [schema, ...]``) and of
    each option of the kinds groups (``conf/features/pca.yaml``: ``defaults: [pca_schema]``),
    read from each kind's module (``kmeans_exp.kinds``)."""
    store = ConfigStore.instance()
    store.store(name="schema", node=ExperimentConfig)
    for group, package in (("features", FEATURE_KINDS), ("refine", REFINE_KINDS)):
        for name, module in kinds.modules(package).items():
            store.store(group=group, name=f"{name}_schema", node=module.Config)


def compose(overrides: list[str] | None = None) -> ExperimentConfig:
    """The checked config that ``python -m kmeans_exp OVERRIDES`` would run, built from ``conf/``.

    ``overrides`` use the command line's syntax: ``["k=50", "experiments=seed_tutorial"]``.
    """
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.errors import HydraException

    register_schema()
    try:
        with initialize_config_dir(str(CONFIG_DIR), version_base="1.3"):
            cfg = hydra_compose("config", overrides=list(overrides or []))
    except (HydraException, OmegaConfBaseException) as e:
        raise ConfigError(first_line(e, causes=True)) from None
    return to_experiment_config(cfg)


def to_experiment_config(cfg: DictConfig) -> ExperimentConfig:
    """The composed Hydra config as a checked ``ExperimentConfig`` (raises ``ConfigError``)."""
    _reject_unknown_keys(cfg, ExperimentConfig)
    try:
        return OmegaConf.to_object(cfg)
    except MissingMandatoryValue as e:
        raise ConfigError(f"{e.full_key}: required, but not set ({e.full_key}=...)") from None
    except OmegaConfBaseException as e:
        raise ConfigError(first_line(e, causes=True)) from None


def with_overrides(exp: ExperimentConfig, overrides: dict[str, Any]) -> ExperimentConfig:
    """``exp`` with some values replaced (nested groups as dicts), checked like a composed one."""
    try:
        merged = OmegaConf.merge(OmegaConf.structured(exp), overrides)
        return OmegaConf.to_object(merged)
    except OmegaConfBaseException as e:
        raise ConfigError(first_line(e, causes=True)) from None


def _reject_unknown_keys(cfg: DictConfig, schema: type, prefix: str = "") -> None:
    """Hydra lets ``+key=value`` add keys even to a structured config; the schema does not."""
    types = typing.get_type_hints(schema)
    hints = {f.name: types[f.name] for f in dataclasses.fields(schema)}  # no ClassVars
    for key in cfg:
        if key not in hints:
            raise ConfigError(
                f"{prefix}{key}: not a config key; expected one of {', '.join(hints)}"
            )
        if dataclasses.is_dataclass(hints[key]):
            # A group option may carry a subclass of the field's schema (features=pca).
            node_schema = OmegaConf.get_type(cfg[key])
            own = node_schema if dataclasses.is_dataclass(node_schema) else hints[key]
            _reject_unknown_keys(cfg[key], own, f"{prefix}{key}.")


def as_dict(exp: ExperimentConfig) -> dict[str, Any]:
    """The config as plain nested values (enums as their strings)."""
    return OmegaConf.to_container(OmegaConf.structured(exp), resolve=True, enum_to_str=True)


def default_run_name(exp: ExperimentConfig) -> str:
    """A readable run name from the settings: what differs from the defaults (the data set, the
    representation, the refinement, the protocol) and the engine's settings, e.g.
    ``k=25 cosine bs=1024`` or ``fashion_mnist n2d+gmm k=10 squared_euclidean full-batch
    transductive``."""
    if not exp.use_mini_batch:
        mode = "full-batch"
    else:
        mode = "bs=all" if exp.batch_size is None else f"bs={exp.batch_size}"
    pipeline = exp.features.kind if exp.features.kind != "raw" else ""
    if exp.refine.kind != "none":
        pipeline = f"{pipeline or 'raw'}+{exp.refine.kind}"
    parts = [
        "" if exp.data.dataset == "mnist" else exp.data.dataset,
        pipeline,
        f"k={exp.k} {exp.distance_metric.value} {mode}",
        "transductive" if exp.transductive else "",
    ]
    return " ".join(part for part in parts if part)


def config_hash(exp: ExperimentConfig) -> str:
    """A stable hash of what determines a run's results: engine settings, data and seed.

    Tracking settings (names, store, logging), ``optimized_metric`` (what a sweeper reads
    from the results) and ``distributed`` (how many workers, launched how) are left out, so a
    run renamed, logged elsewhere or fitted on more workers hashes the same.
    """
    values = as_dict(exp)
    # where the fit ran (workers, launcher) does not change its result
    for key in ("tracking", "optimized_metric", "distributed"):
        values.pop(key)
    if exp.init is not Init.kmeans_parallel:  # as before k-means|| existed
        values.pop("init_rounds")
        values.pop("init_oversampling")
    if not exp.data.sharded:  # as before shards existed
        values["data"].pop("test_path")
    if exp.features.kind == "raw":  # as before there was a features group
        values.pop("features")
    if exp.refine.kind == "none":  # as before there was a refine group
        values.pop("refine")
    if not exp.transductive:  # as before there was a protocol
        values.pop("protocol")
    text = json.dumps(values, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def flatten(exp: ExperimentConfig) -> dict[str, str]:
    """Every value as a dotted key (``data.source``) with a string value, for MLflow params."""
    flat: dict[str, str] = {}

    def walk(prefix: str, node: object) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                walk(f"{prefix}{key}.", value)
        else:
            flat[prefix[:-1]] = "null" if node is None else str(node)

    walk("", as_dict(exp))
    return flat
