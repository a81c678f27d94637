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
import sys
import threading
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from kmeans_exp import options, tracking
from kmeans_exp.errors import KMeansExpError
from kmeans_exp.hydra_app.sweep_check import check_jobs, swept_values

log = logging.getLogger(__name__)


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
        metric = options.optimized_metric(config.optimized_metric, config.protocol)
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
        # The parent has ended by now, whatever happened; a summary that failed still makes
        # the command fail (Hydra would only warn about an exception), with one line.
        try:
            self._close(interrupted=False)
        except KMeansExpError as e:
            sys.stderr.write(f"{e}\n")
            raise SystemExit(1) from None

    def _close_after_failure(self) -> None:
        try:
            self._close(interrupted=True)
        except KMeansExpError as e:  # at exit: the exit status is already decided
            sys.stderr.write(f"{e}\n")

    def _close(self, interrupted: bool) -> None:
        if self._context is None or self._closed:
            return
        self._closed = True
        os.environ.pop(tracking.SWEEP_ENV, None)
        tracking.close_parent(self._context, interrupted)
