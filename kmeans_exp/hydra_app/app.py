"""The Hydra application behind ``python -m kmeans_exp``: Hydra -> ExperimentConfig -> run.

Configs live in the top-level ``conf/`` of a source checkout and inside the package
(``kmeans_exp/conf``) in an installed wheel; ``kmeans_exp.config.CONFIG_DIR`` picks whichever
exists. Heavy imports (TensorFlow, MLflow) happen inside the task, so ``--help`` and config
errors answer at once. The task returns the run's ``optimized_metric`` (validation accuracy by
default): what a sweeper such as Optuna optimises.
"""

from __future__ import annotations

import logging
import math
import sys
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.errors import CompactHydraException
from hydra.types import RunMode
from omegaconf import DictConfig

from kmeans_exp import summary, tracking
from kmeans_exp.config import CONFIG_DIR, register_schema, to_experiment_config
from kmeans_exp.errors import KMeansExpError, TrackingError
from kmeans_exp.runner import Launch, run_experiment

log = logging.getLogger(__name__)


class UserError(CompactHydraException):
    """A ``KMeansExpError`` as the command line shows it: the one line, without a traceback."""


register_schema()


@hydra.main(version_base="1.3", config_path=str(CONFIG_DIR), config_name="config")
def main(cfg: DictConfig) -> float:
    """Run one experiment; return its ``optimized_metric``, what sweepers optimise."""
    hydra_cfg = HydraConfig.get()
    try:
        launch = launch_from_hydra(hydra_cfg, cfg.tracking.enabled)
        try:
            exp = to_experiment_config(cfg)
        except KMeansExpError as e:
            launch.record_failure(e)
            raise
        result = run_experiment(exp, launch=launch)
    except KMeansExpError as e:
        raise UserError(str(e)) from None
    except KeyboardInterrupt as e:  # Ctrl-C, or SIGTERM (tracking.Terminated)
        terminated = isinstance(e, tracking.Terminated)
        log.error("%s: the MLflow run ended KILLED", "terminated" if terminated else "interrupted")
        sys.exit(143 if terminated else 130)
    return result.metrics.get(result.config.optimized_metric.value, math.nan)


def launch_from_hydra(hydra_cfg: DictConfig, tracking_enabled: bool) -> Launch:
    """What this Hydra job adds to a run: overrides, output folder, the sweep it belongs to."""
    overrides = tuple(hydra_cfg.overrides.task)
    sweep = tracking.SweepContext.from_env()
    if hydra_cfg.mode == RunMode.MULTIRUN and sweep is None and tracking_enabled:
        raise TrackingError(
            f"{tracking.SWEEP_ENV} is not set in this sweep job: the parent run's tracking "
            "settings did not reach this worker (pass the variable to remote workers)"
        )
    swept = job_values(overrides, sweep.swept_keys) if sweep else {}
    return Launch(
        overrides=overrides,
        hydra_dir=Path(hydra_cfg.runtime.output_dir) / ".hydra",
        sweep=sweep,
        swept=swept,
        job_name=summary.job_name(swept, list(swept)) or None,
    )


def job_values(overrides: tuple[str, ...], swept_keys: list[str]) -> dict[str, str]:
    """This job's value of each swept key, from its overrides (``k=50`` -> ``{"k": "50"}``)."""
    values = {}
    for override in overrides:
        key, _, value = override.lstrip("+~").partition("=")
        if key in swept_keys:
            values[key] = value
    return values
