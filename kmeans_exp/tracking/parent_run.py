"""A sweep's parent run in MLflow: opened before the jobs, summarised and closed after them.

The jobs learn where to log, and under which parent, from one environment variable
(``KMEANS_EXP_SWEEP``, JSON). Every child carries its swept values as tags
(``kmeans_exp.swept.<key>``), so the summary reads them as data, whatever the run is called.
"""

from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from kmeans_exp import metrics as registry
from kmeans_exp import summary
from kmeans_exp.errors import TrackingError, first_line
from kmeans_exp.tracking.liveness import process_tags
from kmeans_exp.tracking.store import Store, check_store, redacted

log = logging.getLogger(__name__)

SWEEP_ENV = "KMEANS_EXP_SWEEP"  # JSON hand-off from the multirun callback to every job
SWEPT_TAG = "kmeans_exp.swept."  # + key: the value a child run sweeps
REUSED_TAG = "kmeans_exp.reused."  # + config hash, on the parent: a job answered by an old run
PARENT_TAG = "kmeans_exp.sweep"  # "parent" on every sweep's parent run
SWEPT_KEYS_TAG = "kmeans_exp.swept_keys"  # JSON list, on the parent: the swept keys in order
SCORE_TAG = "kmeans_exp.optimized_metric"  # on the parent: what its best_* maximise


@dataclass(frozen=True)
class SweepContext:
    """What a sweep's jobs need from the parent: where to log and under which run."""

    tracking_uri: str
    experiment_id: str
    parent_run_id: str
    swept_keys: list[str]
    score: str = summary.DEFAULT_SCORE  # what "best" maximises: the config's optimized_metric

    @property
    def store(self) -> Store:
        return Store(self.tracking_uri, self.experiment_id)

    def to_env(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_env(cls) -> SweepContext | None:
        raw = os.environ.get(SWEEP_ENV)
        if not raw:
            return None
        try:
            return cls(**json.loads(raw))
        except (TypeError, ValueError) as e:
            raise TrackingError(
                f"{SWEEP_ENV}: not a sweep hand-off from kmeans_exp ({e})"
            ) from None


def swept_tags(swept: dict[str, str]) -> dict[str, str]:
    """The tags that record a child's swept values."""
    return {f"{SWEPT_TAG}{key}": value for key, value in swept.items()}


def open_parent(
    store: Store, run_name: str, tags: dict[str, str], sweep_params: dict[str, str], score: str
) -> SweepContext:
    """Create the parent run (RUNNING until ``close_parent``) and log what the sweep varies."""
    import mlflow

    client = mlflow.MlflowClient(store.uri)
    parent_tags = {
        **tags,
        PARENT_TAG: "parent",
        SWEPT_KEYS_TAG: json.dumps(list(sweep_params)),
        SCORE_TAG: score,
        **process_tags(),
    }
    parent = client.create_run(store.experiment_id, run_name=run_name, tags=parent_tags)
    for key, values in sweep_params.items():
        client.log_param(parent.info.run_id, f"sweep.{key}", values)
    return SweepContext(
        store.uri, store.experiment_id, parent.info.run_id, list(sweep_params), score
    )


def find_sweep(uri: str, parent_run_id: str | None, experiment_name: str) -> SweepContext:
    """A sweep already logged: the given parent run, or the newest parent in the experiment.

    Raises ``TrackingError`` (one line) when there is no such store, run or sweep; never
    creates a store.
    """
    import mlflow
    from mlflow.exceptions import MlflowException

    if uri.startswith("sqlite:///") and not Path(uri[len("sqlite:///") :]).is_file():
        raise TrackingError(f"nothing to report: no tracking store at {uri}")
    check_store(uri)
    client = mlflow.MlflowClient(uri)
    try:
        if parent_run_id:
            parent = client.get_run(parent_run_id)
        else:
            experiment = client.get_experiment_by_name(experiment_name)
            if experiment is None:
                raise TrackingError(
                    f"nothing to report: no experiment {experiment_name!r} in {uri}"
                )
            parents = client.search_runs(
                [experiment.experiment_id],
                filter_string=f"tags.`{PARENT_TAG}` = 'parent'",
                order_by=["attributes.start_time DESC"],
                max_results=1,
            )
            if not parents:
                raise TrackingError(
                    f"nothing to report: no sweep in experiment {experiment_name!r} ({uri})"
                )
            parent = parents[0]
    except MlflowException as e:
        raise TrackingError(f"{redacted(uri)}: {first_line(e)}") from None
    if parent.data.tags.get(PARENT_TAG) != "parent":
        raise TrackingError(f"run {parent.info.run_id} is not the parent run of a sweep")
    if SWEPT_KEYS_TAG in parent.data.tags:
        keys = json.loads(parent.data.tags[SWEPT_KEYS_TAG])
    else:  # a parent from before the tag: its sweep.<key> params, in name order
        keys = sorted(
            p.removeprefix("sweep.") for p in parent.data.params if p.startswith("sweep.")
        )
    score = parent.data.tags.get(SCORE_TAG, summary.DEFAULT_SCORE)
    return SweepContext(uri, parent.info.experiment_id, parent.info.run_id, keys, score)


def record_failed_job(sweep: SweepContext, run_name: str, swept: dict[str, str], error: str):
    """A sweep job that failed before its run began still shows, FAILED, under the parent."""
    import mlflow

    client = mlflow.MlflowClient(sweep.tracking_uri)
    tags = {"mlflow.parentRunId": sweep.parent_run_id, "error": error[:5000], **swept_tags(swept)}
    run = client.create_run(sweep.experiment_id, run_name=run_name, tags=tags)
    client.set_terminated(run.info.run_id, "FAILED")


def record_reused_job(sweep: SweepContext, run_id: str, swept: dict[str, str], key: str) -> None:
    """A job answered by an earlier FINISHED run (``skip_finished``): noted on the parent.

    Nothing is copied into a new run; the parent's summary reads that run where it is.
    """
    import mlflow

    value = json.dumps({"run_id": run_id, "swept": swept})
    mlflow.MlflowClient(sweep.tracking_uri).set_tag(sweep.parent_run_id, REUSED_TAG + key, value)


def job_rows(sweep: SweepContext, client: Any = None) -> list[dict]:
    """One row per job of the sweep: swept values, summary metrics, status, run id, reused.

    The jobs are the parent's child runs and the earlier runs that answered a job
    (``record_reused_job``).
    """
    if client is None:
        import mlflow

        client = mlflow.MlflowClient(sweep.tracking_uri)
    children = client.search_runs(
        [sweep.experiment_id],
        filter_string=f"tags.mlflow.parentRunId = '{sweep.parent_run_id}'",
        max_results=50_000,
    )
    found = [
        (c, {k: c.data.tags.get(SWEPT_TAG + k) for k in sweep.swept_keys}, False) for c in children
    ]
    parent_tags = client.get_run(sweep.parent_run_id).data.tags
    for tag, value in parent_tags.items():
        if tag.startswith(REUSED_TAG):
            job = json.loads(value)
            found.append((client.get_run(job["run_id"]), job["swept"], True))
    rows = []
    for run, swept, reused in found:
        row: dict[str, Any] = {key: swept.get(key) for key in sweep.swept_keys}
        row.update({m: run.data.metrics.get(m) for m in summary.SUMMARY_METRICS})
        row.update({"status": run.info.status, "run_id": run.info.run_id, "reused": reused})
        rows.append(row)
    return rows


def close_parent(sweep: SweepContext, interrupted: bool) -> str:
    """Summarise the children on the parent and end it: FINISHED only if every job finished.

    Children still RUNNING (their worker died) are marked FAILED first. The parent always
    ends: if the summary itself fails, it ends FAILED with the error as its ``error`` tag, and
    a ``TrackingError`` says so in one line.
    """
    import mlflow

    client = mlflow.MlflowClient(sweep.tracking_uri)
    try:
        rows = job_rows(sweep, client)
        for row in rows:
            if row["status"] == "RUNNING":
                client.set_terminated(row["run_id"], "FAILED")
                row["status"] = "FAILED"
        statuses = [r["status"] for r in rows]
        failed, killed = statuses.count("FAILED"), statuses.count("KILLED")
        _log_summary(client, sweep, rows, failed, killed)
    except Exception as e:
        error = f"{type(e).__name__}: {first_line(e)}"
        _end_failed(client, sweep.parent_run_id, error)
        raise TrackingError(
            f"sweep parent run {sweep.parent_run_id}: its summary failed ({error}); "
            "the run ended FAILED"
        ) from e
    if killed:
        status = "KILLED"
    elif failed or interrupted:
        status = "FAILED"
    else:
        status = "FINISHED"
    client.set_terminated(sweep.parent_run_id, status)
    log.info(
        "Sweep parent run %s %s: %d jobs, %d failed, %d killed",
        sweep.parent_run_id,
        status,
        len(rows),
        failed,
        killed,
    )
    return status


def _end_failed(client: Any, run_id: str, error: str) -> None:
    """End the run FAILED with an ``error`` tag, as far as the store still lets us."""
    try:
        client.set_tag(run_id, "error", error[:5000])
    finally:
        client.set_terminated(run_id, "FAILED")


def _log_summary(
    client: Any, sweep: SweepContext, rows: list[dict], failed: int, killed: int
) -> None:
    """The parent's metrics, tables, tags and figures, from ``summary.decide``."""
    import matplotlib.pyplot as plt

    from kmeans_exp import plots

    run_id, keys = sweep.parent_run_id, sweep.swept_keys
    counts = {"jobs": len(rows), "failed_jobs": failed, "killed_jobs": killed}
    if not rows:
        client.log_batch(run_id, metrics=_metrics(counts))
        return
    outcome = summary.decide(rows, keys, sweep.score)
    client.log_batch(run_id, metrics=_metrics({**counts, **outcome.best_metrics}))
    columns = [*keys, *summary.SUMMARY_METRICS, "status", "run_id", "reused"]
    client.log_table(run_id, {c: [r.get(c) for r in rows] for c in columns}, "sweep_summary.json")
    if outcome.groups:
        groups = outcome.groups
        table = {c: [g[c] for g in groups] for c in groups[0] if c != "run_ids"}
        client.log_table(run_id, table, "sweep_groups.json")
    if outcome.best_group is not None:
        client.set_tag(run_id, "best_group", summary.group_name(outcome.best_group, keys))
    if outcome.best_run is not None:
        client.set_tag(run_id, "best_run_id", outcome.best_run["run_id"])
        client.set_tag(run_id, "best_params", summary.job_name(outcome.best_run, keys))
    if outcome.suggested_k is not None:
        client.set_tag(run_id, "suggested_k", str(outcome.suggested_k))
    plotted = summary.finished(rows)
    figures = []
    if keys and plotted:
        metrics = registry.names("sweep_figure")
        figures.append(
            (plots.sweep_summary(plotted, keys[0], keys[1:], metrics), "sweep_summary.png")
        )
        x_keys = [k for k in keys if k != summary.SEED_KEY]
        if outcome.groups and x_keys:
            figures.append((plots.sweep_groups(outcome.groups, x_keys[0]), "sweep_groups.png"))
        if "k" in keys:
            figures.append((plots.k_selection(plotted, keys), "k_selection.png"))
    for figure, name in figures:
        client.log_figure(run_id, figure, name)
        plt.close(figure)


def _metrics(values: dict[str, float]) -> list[Any]:
    from mlflow.entities import Metric

    now = int(time.time() * 1000)
    return [Metric(key, float(value), now, 0) for key, value in values.items()]
