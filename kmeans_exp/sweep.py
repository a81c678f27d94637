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
import logging
import os
import signal
import threading
from typing import Any

from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from kmeans_exp import tracking
from kmeans_exp.errors import KMeansExpError, UserError

log = logging.getLogger(__name__)


def swept_values(config: DictConfig) -> dict[str, str]:
    """What the multirun varies, key -> values.

    From ``hydra.sweeper.params``, then the command line, which wins (as in Hydra's sweeper).
    """
    values = {str(k): str(v) for k, v in (config.hydra.sweeper.get("params") or {}).items()}
    for override in OverridesParser.create().parse_overrides(list(config.hydra.overrides.task)):
        if override.is_sweep_override():
            values[override.key_or_group] = ",".join(override.sweep_string_iterator())
    return values


class MlflowSweepCallback(Callback):
    """Owns the parent run of a multirun (a no-op for single runs and with tracking off)."""

    def __init__(self) -> None:
        self._context: tracking.SweepContext | None = None
        self._closed = False

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        if not config.tracking.enabled:
            return
        overrides = list(config.hydra.overrides.task)
        try:
            store = tracking.open_store(config.tracking.uri, config.tracking.experiment_name)
        except KMeansExpError as e:
            raise UserError(str(e)) from None
        self._context = tracking.open_parent(
            store,
            run_name="sweep " + (" ".join(overrides) or "(no overrides)"),
            tags={
                "hydra.overrides": " ".join(overrides) or "(none)",
                "hydra.sweep.dir": str(config.hydra.sweep.dir),
            },
            sweep_params=swept_values(config),
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
