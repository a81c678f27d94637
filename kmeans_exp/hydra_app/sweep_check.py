"""A sweep's values, read from Hydra's config and composed before any job or run exists.

``swept_values`` says what a multirun varies; ``check_jobs`` composes each value the way its
job will, so that a bad value (or a bad fixed one) fails the whole sweep at once, in one line,
instead of failing job after job under a parent run.
"""

from __future__ import annotations

import copy

from hydra._internal.config_loader_impl import ConfigLoaderImpl
from hydra.core.global_hydra import GlobalHydra
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import IntervalSweep, Override
from hydra.errors import HydraException
from omegaconf import DictConfig, open_dict, read_write
from omegaconf.errors import OmegaConfBaseException

from kmeans_exp.config import to_experiment_config
from kmeans_exp.errors import ConfigError, first_line


def swept_values(config: DictConfig) -> dict[str, str]:
    """What the multirun varies, key -> values.

    From ``hydra.sweeper.params``, then the command line, which wins (as in Hydra's sweeper).
    """
    values = {str(k): str(v) for k, v in (config.hydra.sweeper.get("params") or {}).items()}
    for override in OverridesParser.create().parse_overrides(list(config.hydra.overrides.task)):
        if override.is_discrete_sweep():
            values[override.key_or_group] = ",".join(override.sweep_string_iterator())
        elif override.is_sweep_override():  # an interval: an optimising sweeper's search space
            values[override.key_or_group] = override.input_line.split("=", 1)[1]
    return values


def job_overrides(config: DictConfig) -> list[list[str]]:
    """The override lists to compose: one per value of each swept key, the others fixed.

    A discrete sweep (``k=10,abc``, ``seed=range(3)``) gives each of its values; an interval
    (``k=int(interval(5,200))``, an optimising sweeper's space) gives its two ends. With no
    sweep at all, the fixed overrides alone are composed once.
    """
    sweeper_params = [f"{k}={v}" for k, v in (config.hydra.sweeper.get("params") or {}).items()]
    parsed = OverridesParser.create().parse_overrides(
        sweeper_params + list(config.hydra.overrides.task)
    )
    last = {o.key_or_group: o for o in parsed}  # the command line wins over the preset
    fixed = [o.input_line for o in last.values() if not o.is_sweep_override()]
    jobs = [
        [*fixed, f"{override.get_key_element()}={value}"]
        for override in last.values()
        for value in _values_to_try(override)
    ]
    return jobs or [fixed]


def _values_to_try(override: Override) -> list[str]:
    if override.is_discrete_sweep():
        return list(override.sweep_string_iterator())
    interval = override.value()
    if isinstance(interval, IntervalSweep):
        return [str(interval.start), str(interval.end)]
    return []


def check_jobs(config: DictConfig) -> None:
    """Compose every job override list like a job's config; raise ``ConfigError`` at the first
    bad one. Checks that need the data (k larger than the training set) stay in the job.

    The fixed overrides are composed once. A job whose swept override sets a plain value
    (``k=25``, ``+x=1``) gets a copy of that config with the override applied as Hydra applies
    value overrides after composing; one that picks a config group (``features=pca``) is
    composed whole. Each composition costs ~0.2 s; a copy and an update, milliseconds.
    """
    loader = GlobalHydra.instance().config_loader()
    parser = OverridesParser.create()
    base: DictConfig | None = None  # the fixed overrides, composed once
    for job in job_overrides(config):
        try:
            swept = parser.parse_override(job[-1]) if job else None
            if swept is None or loader.repository.group_exists(swept.key_or_group):
                cfg = _composed(config, job)
            else:
                if base is None:
                    base = _composed(config, job[:-1])
                cfg = copy.deepcopy(base)
                with read_write(cfg):  # struct mode kept: a new key needs its "+", as in Hydra
                    ConfigLoaderImpl._apply_overrides_to_config([swept], cfg)
            to_experiment_config(cfg)
        except (HydraException, OmegaConfBaseException) as e:
            raise ConfigError(first_line(e, causes=True)) from None


def _composed(config: DictConfig, overrides: list[str]) -> DictConfig:
    """The job config Hydra composes for ``overrides``, without its ``hydra`` node."""
    cfg = GlobalHydra.instance().config_loader().load_sweep_config(config, overrides)
    with read_write(cfg), open_dict(cfg):
        del cfg["hydra"]
    return cfg
