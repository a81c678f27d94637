"""The Hydra callback that gives a multirun one MLflow parent run (``kmeans_exp.tracking`` logs).

``on_multirun_start`` (in the launching process, before any job) prepares the store and the
experiment once, so parallel jobs never race to create them, opens the parent run and hands it
to every job through the ``KMEANS_EXP_SWEEP`` environment variable. ``on_multirun_end`` has the
parent summarised and closed. Hydra skips ``on_multirun_end`` when a job failed or the sweep was
interrupted; an ``atexit`` hook then closes the parent as FAILED or KILLED, with the summary and
the count of failed jobs, so it is never left RUNNING.
"""

from __future__ import annotations

import atexit
import copy
import logging
import os
import signal
import sys
import threading
from typing import Any

from hydra.core.global_hydra import GlobalHydra
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.errors import HydraException
from hydra.experimental.callback import Callback
from omegaconf import DictConfig, open_dict, read_write
from omegaconf.errors import OmegaConfBaseException

from kmeans_exp import options, tracking
from kmeans_exp.config import first_line, to_experiment_config
from kmeans_exp.errors import ConfigError, KMeansExpError
from kmeans_exp.options import OptimizedMetric

log = logging.getLogger(__name__)


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


def check_jobs(config: DictConfig) -> None:
    """Compose every swept value the way its jobs will, so that a bad one fails the sweep at once.

    Each value of each discrete sweep (``k=10,abc``, ``seed=range(3)``) is composed once with
    the sweep's fixed overrides and checked like a job's config. Intervals (an optimising
    sweeper's search space) have no values to try. Checks that need the data (k larger than
    the training set) still happen in the job, which then fails on its own.
    """
    loader = GlobalHydra.instance().config_loader()
    sweeper_params = [f"{k}={v}" for k, v in (config.hydra.sweeper.get("params") or {}).items()]
    parsed = OverridesParser.create().parse_overrides(
        sweeper_params + list(config.hydra.overrides.task)
    )
    last = {o.key_or_group: o for o in parsed}  # the command line wins over the preset
    fixed = [o.input_line for o in last.values() if not o.is_sweep_override()]
    for override in last.values():
        if not override.is_discrete_sweep():
            continue
        for value in override.sweep_string_iterator():
            job = [*fixed, f"{override.get_key_element()}={value}"]
            try:
                cfg = copy.deepcopy(loader.load_sweep_config(config, job))
                with read_write(cfg), open_dict(cfg):
                    del cfg["hydra"]
                to_experiment_config(cfg)
            except (HydraException, OmegaConfBaseException) as e:
                raise ConfigError(first_line(e)) from None


class MlflowSweepCallback(Callback):
    """Owns the parent run of a multirun (a no-op for single runs and with tracking off)."""

    def __init__(self) -> None:
        self._context: tracking.SweepContext | None = None
        self._closed = False

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        # Hydra turns a callback's exceptions into warnings and sweeps on, so that every job
        # would then fail on its own: stop here instead, with one line, before any run exists.
        try:
            self._open(config)
        except KMeansExpError as e:
            sys.stderr.write(f"{e}\n")
            raise SystemExit(1) from None
        except Exception as e:
            sys.stderr.write(f"kmeans_exp: cannot open the sweep's parent run: {e!r}\n")
            raise SystemExit(1) from None

    def _open(self, config: DictConfig) -> None:
        check_jobs(config)
        if not config.tracking.enabled:
            return
        store = tracking.open_store(config.tracking.uri, config.tracking.experiment_name)
        overrides = list(config.hydra.overrides.task)
        metric = options.choice("optimized_metric", config.optimized_metric, OptimizedMetric)
        self._context = tracking.open_parent(
            store,
            run_name="sweep " + (" ".join(overrides) or "(no overrides)"),
            tags={
                "hydra.overrides": " ".join(overrides) or "(none)",
                "hydra.sweep.dir": str(config.hydra.sweep.dir),
            },
            sweep_params=swept_values(config),
            score=metric.value,
        )
        os.environ[tracking.SWEEP_ENV] = self._context.to_env()
        atexit.register(self._close_after_failure)
        if threading.current_thread() is threading.main_thread():
            # SIGTERM would otherwise end this process without running the atexit hook.
            signal.signal(signal.SIGTERM, tracking.raise_terminated)
        log.info(
            "MLflow parent run %s for the sweep over %s",
            self._context.parent_run_id,
            ", ".join(self._context.swept_keys),
        )

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        self._close(interrupted=False)

    def _close_after_failure(self) -> None:
        self._close(interrupted=True)

    def _close(self, interrupted: bool) -> None:
        if self._context is None or self._closed:
            return
        self._closed = True
        os.environ.pop(tracking.SWEEP_ENV, None)
        tracking.close_parent(self._context, interrupted)
