"""The MLflow parent run of a Hydra multirun, opened and closed by a Hydra callback.

``on_multirun_start`` (in the launching process, before any job) prepares the store and the
experiment once, so parallel jobs never race to create them, opens the parent run and hands
its id to every job through the ``KMEANS_EXP_SWEEP`` environment variable. ``on_multirun_end``
logs the sweep summary (a table of swept values -> accuracies, inertia, time and a PNG of
accuracy against the first swept key) and closes the parent. Hydra skips ``on_multirun_end``
when a job failed or the sweep was interrupted; an ``atexit`` hook then closes the parent as
FAILED or KILLED, with the summary and the count of failed jobs, so it is never left RUNNING.
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

log = logging.getLogger(__name__)

SUMMARY_METRICS = ("val_accuracy", "test_accuracy", "inertia", "train_seconds")


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
    """Owns the parent run of a multirun (a no-op for single runs)."""

    def __init__(self) -> None:
        self._context: tracking.SweepContext | None = None
        self._closed = False

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        import mlflow

        from kmeans_exp.app import UserError
        from kmeans_exp.errors import KMeansExpError

        overrides = list(config.hydra.overrides.task)
        sweep_params = swept_values(config)
        try:
            uri = tracking.resolve_uri(config.tracking.uri)
            experiment_id = tracking.setup_experiment(uri, config.tracking.experiment_name)
        except KMeansExpError as e:
            raise UserError(str(e)) from None
        client = mlflow.MlflowClient(uri)
        parent = client.create_run(
            experiment_id,
            run_name="sweep " + (" ".join(overrides) or "(no overrides)"),
            tags={
                "hydra.overrides": " ".join(overrides) or "(none)",
                "hydra.sweep.dir": str(config.hydra.sweep.dir),
                "kmeans_exp.sweep": "parent",
            },
        )
        for key, values in sweep_params.items():
            client.log_param(parent.info.run_id, f"sweep.{key}", values)
        keys = list(sweep_params)
        self._context = tracking.SweepContext(uri, experiment_id, parent.info.run_id, keys)
        os.environ[tracking.SWEEP_ENV] = self._context.to_env()
        atexit.register(self._close_after_failure)
        if threading.current_thread() is threading.main_thread():
            # SIGTERM would otherwise end this process without running the atexit hook.
            signal.signal(signal.SIGTERM, tracking.raise_terminated)
        log.info("MLflow parent run %s for the sweep over %s", parent.info.run_id, ", ".join(keys))

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        self._close(interrupted=False)

    def _close_after_failure(self) -> None:
        self._close(interrupted=True)

    def _close(self, interrupted: bool) -> None:
        """Summarise the children and end the parent: FINISHED only if every job finished."""
        if self._context is None or self._closed:
            return
        self._closed = True
        os.environ.pop(tracking.SWEEP_ENV, None)
        import mlflow

        ctx = self._context
        client = mlflow.MlflowClient(ctx.tracking_uri)

        def search_children() -> list:
            return client.search_runs(
                [ctx.experiment_id],
                filter_string=f"tags.mlflow.parentRunId = '{ctx.parent_run_id}'",
                max_results=50_000,
            )

        children = search_children()
        orphans = [c for c in children if c.info.status == "RUNNING"]  # their workers died
        for child in orphans:
            client.set_terminated(child.info.run_id, "FAILED")
        if orphans:
            children = search_children()
        statuses = [c.info.status for c in children]
        failed = sum(s == "FAILED" for s in statuses)
        killed = sum(s == "KILLED" for s in statuses)
        rows = [self._row(child) for child in children]
        self._log_summary(client, rows, len(children), failed, killed)
        if killed:
            status = "KILLED"
        elif failed or interrupted:
            status = "FAILED"
        else:
            status = "FINISHED"
        client.set_terminated(ctx.parent_run_id, status)
        log.info(
            "Sweep parent run %s %s: %d jobs, %d failed, %d killed",
            ctx.parent_run_id,
            status,
            len(children),
            failed,
            killed,
        )

    def _row(self, child: Any) -> dict[str, Any]:
        # A job is named after its swept values ("k=50"): the source for config groups and for
        # jobs that failed before logging params.
        named = dict(t.lstrip("+~").split("=", 1) for t in child.info.run_name.split() if "=" in t)
        row: dict[str, Any] = {
            key: child.data.params.get(key, named.get(key)) for key in self._context.swept_keys
        }
        row.update({m: child.data.metrics.get(m) for m in SUMMARY_METRICS})
        row.update({"status": child.info.status, "run_id": child.info.run_id})
        return row

    def _log_summary(self, client: Any, rows: list[dict], jobs: int, failed: int, killed: int):
        import matplotlib.pyplot as plt

        from kmeans_exp import plots

        run_id = self._context.parent_run_id
        client.log_metric(run_id, "jobs", jobs)
        client.log_metric(run_id, "failed_jobs", failed)
        client.log_metric(run_id, "killed_jobs", killed)
        finished = [r for r in rows if r["status"] == "FINISHED" and r["val_accuracy"] is not None]
        if finished:
            best = max(finished, key=lambda r: r["val_accuracy"])
            client.log_metric(run_id, "best_val_accuracy", best["val_accuracy"])
            client.log_metric(run_id, "best_test_accuracy", best["test_accuracy"])
            client.set_tag(run_id, "best_run_id", best["run_id"])
        if not rows:
            return
        columns = list(rows[0])
        client.log_table(run_id, {c: [r[c] for r in rows] for c in columns}, "sweep_summary.json")
        keys = self._context.swept_keys
        plotted = [r for r in rows if r["test_accuracy"] is not None]
        if keys and plotted:
            figure = plots.sweep_summary(
                plotted, keys[0], keys[1:], ("val_accuracy", "test_accuracy")
            )
            client.log_figure(run_id, figure, "sweep_summary.png")
            plt.close(figure)
