"""The allowed values and ranges of every setting, in one place (NumPy- and TensorFlow-free).

The config schema types its fields with these enums and calls these checks in ``__post_init__``;
the engine and the data loaders call the same checks on their arguments, so a value is accepted
or refused with the same one-line message whichever door it comes through. ``ConfigError`` is a
``ValueError``, so callers of the engine can catch either.
"""

from __future__ import annotations

import numbers
from enum import Enum
from typing import TypeVar

from kmeans_exp.errors import ConfigError

E = TypeVar("E", bound=Enum)


class DistanceMetric(Enum):
    cosine = "cosine"
    squared_euclidean = "squared_euclidean"


class Init(Enum):
    random = "random"
    kmeans_plus_plus = "kmeans_plus_plus"
    kmeans_parallel = "kmeans_parallel"  # k-means||: sharded data only (data.source=shards)


class OptimizedMetric(Enum):
    """What the task returns for an optimising sweeper: validation or label-free, never test."""

    val_accuracy = "val_accuracy"
    val_nmi = "val_nmi"
    silhouette = "silhouette"


class FitOn(Enum):
    """Which images a representation is fitted on (never their labels)."""

    train = "train"  # the training split only: validation and test are only transformed
    all = "all"  # every image, test included (transductive, as the deep-clustering papers)


class Precision(Enum):
    """What a network trains in: float32, or bfloat16 compute with float32 weights (Keras'
    mixed precision), which CPUs with AVX512_BF16 or AMX run natively."""

    float32 = "float32"
    bfloat16 = "bfloat16"


class Optimizer(Enum):
    """What trains a network: Adam (N2D's, the default) or SGD with momentum (DEC-keras's)."""

    adam = "adam"
    sgd = "sgd"


class KernelInit(Enum):
    """How a network's kernels start: Keras' default, or DEC-keras's
    ``VarianceScaling(scale=1/3, mode="fan_in", distribution="uniform")``."""

    glorot_uniform = "glorot_uniform"
    variance_scaling = "variance_scaling"


class Protocol(Enum):
    """Which rows every stage fits on and which rows are scored."""

    held_out = "held_out"  # fit on training rows; score validation and test rows
    transductive = "transductive"  # fit on every image of every split, score those same images


class DataSource(Enum):
    bundled = "bundled"
    idx = "idx"
    npz = "npz"
    download = "download"
    shards = "shards"  # a folder of .npy row files, read through memory maps


class DistributedKind(Enum):
    """Where the workers of one fit run (``distributed`` group); none: in this process."""

    none = "none"
    local = "local"  # worker processes on this machine
    ray = "ray"  # Ray actors, one per worker
    slurm = "slurm"  # tasks of ``srun``, placed by TensorFlow's SlurmClusterResolver


def choice(key: str, value: str | E, options: type[E]) -> E:
    """``value`` as a member of ``options`` (an enum), or a ``ConfigError`` naming the key."""
    if isinstance(value, options):
        return value
    try:
        return options(value)
    except ValueError:
        allowed = ", ".join(member.value for member in options)
        raise ConfigError(f"{key}={value}: expected one of {allowed}") from None


def optimized_metric(
    value: str | OptimizedMetric | None, protocol: str | Protocol
) -> OptimizedMetric:
    """What a sweeper optimises: ``value``, or the protocol's default when null (held_out:
    val_accuracy; transductive: silhouette, since every labelled row was fitted there)."""
    protocol = choice("protocol", protocol, Protocol)
    if value is None:
        held_out = protocol is Protocol.held_out
        return OptimizedMetric.val_accuracy if held_out else OptimizedMetric.silhouette
    metric = choice("optimized_metric", value, OptimizedMetric)
    if protocol is Protocol.transductive and metric is not OptimizedMetric.silhouette:
        raise ConfigError(
            f"optimized_metric={metric.value} with protocol=transductive: every labelled row "
            "is fitted there, so a sweeper can only optimise silhouette (label-free)"
        )
    return metric


def _is_integer(value: object) -> bool:
    """A Python or NumPy integer, not a bool."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def at_least(key: str, value: int, minimum: int, meaning: str = "") -> int:
    """An integer ``>= minimum``; ``meaning`` says what the key is, in the error message."""
    if not _is_integer(value) or value < minimum:
        suffix = f" ({meaning})" if meaning else ""
        raise ConfigError(f"{key}={value}: expected an integer >= {minimum}{suffix}")
    return int(value)


def batch_size(key: str, value: int | None) -> int | None:
    """A positive batch size, or None for the whole training set."""
    if value is None:
        return None
    if not _is_integer(value) or value < 1:
        raise ConfigError(
            f"{key}={value}: expected an integer >= 1, or null for the whole training set"
        )
    return int(value)


def fits_rows(k: int, batch: int | None, n_rows: int) -> None:
    """Refuse more clusters, or a larger batch, than there are training rows.

    The one home of this rule: the config checks it against the loaded data before anything
    runs, and the engine against whatever rows it is given.
    """
    if k > n_rows:
        raise ConfigError(f"k={k}: more clusters than the {n_rows} training rows")
    if batch is not None and batch > n_rows:
        raise ConfigError(
            f"batch_size={batch}: larger than the {n_rows} training rows "
            "(use null for the whole training set)"
        )


def data_source(source: str | DataSource, path: str | None, url: str | None) -> DataSource:
    """The source, checked with the path and URL it needs (one home for these rules)."""
    source = choice("data.source", source, DataSource)
    if source is DataSource.bundled and path is not None:
        raise ConfigError("data.path: must be null with data.source=bundled")
    if source is not DataSource.bundled and not path:
        raise ConfigError(f"data.path: required with data.source={source.value}")
    if source is DataSource.download and not url:
        raise ConfigError("data.url: required with data.source=download")
    return source


def positive(key: str, value: float) -> float:
    """A number > 0."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not value > 0:
        raise ConfigError(f"{key}={value}: expected a number > 0")
    return float(value)


def non_negative(key: str, value: float) -> float:
    """A number >= 0."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not value >= 0:
        raise ConfigError(f"{key}={value}: expected a number >= 0")
    return float(value)


def fits_width(key: str, n_components: int, width: int, what: str) -> None:
    """Refuse more output components than the input has columns."""
    if n_components > width:
        raise ConfigError(f"{key}={n_components}: more components than the {width} {what}")


def momentum(key: str, value: float) -> float:
    """An optimiser's momentum: a number in [0, 1)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not 0 <= value < 1:
        raise ConfigError(f"{key}={value}: expected a momentum in [0, 1)")
    return float(value)


def open_unit_interval(key: str, value: float) -> float:
    """A number strictly between 0 and 1."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not 0 < value < 1:
        raise ConfigError(f"{key}={value}: expected a number in (0, 1)")
    return float(value)
