"""MLflow: the tracking store, one run's life cycle, and the sweep hand-off. No TensorFlow here.

The store is MLflow's own default (``sqlite:///mlflow.db`` in the working directory) unless
``tracking.uri`` or ``MLFLOW_TRACKING_URI`` names another, an HTTP server included. It is checked
before any work starts, so a dead server or an unwritable directory fails in seconds, not after
training. A run always ends FINISHED, FAILED or KILLED (Ctrl-C or SIGTERM), never RUNNING.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from kmeans_exp.errors import TrackingError

DEFAULT_URI = "sqlite:///mlflow.db"  # MLflow 3's own default store
SWEEP_ENV = "KMEANS_EXP_SWEEP"  # JSON hand-off from the multirun callback to every job
CONNECT_TIMEOUT_S = 10.0


@dataclass(frozen=True)
class SweepContext:
    """What a sweep's jobs need from the parent: where to log and under which run."""

    tracking_uri: str
    experiment_id: str
    parent_run_id: str
    swept_keys: list[str]

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


def resolve_uri(configured: str | None) -> str:
    """``tracking.uri``, else ``MLFLOW_TRACKING_URI``, else MLflow's default (sqlite: absolute)."""
    uri = configured or os.environ.get("MLFLOW_TRACKING_URI") or DEFAULT_URI
    if uri.startswith("sqlite:///") and not uri.startswith("sqlite:////"):
        uri = "sqlite:///" + str(Path(uri[len("sqlite:///") :]).resolve())
    return uri


def check_store(uri: str, timeout_s: float = CONNECT_TIMEOUT_S) -> None:
    """Fail fast, with one line, when the store cannot be reached or written."""
    scheme = urlparse(uri).scheme
    if scheme in ("http", "https"):
        try:
            with urllib.request.urlopen(f"{uri.rstrip('/')}/health", timeout=timeout_s) as resp:
                resp.read()
        except (urllib.error.URLError, OSError) as e:
            reason = getattr(e, "reason", e)
            raise TrackingError(
                f"tracking URI {uri}: no MLflow server answered within {timeout_s:.0f} s "
                f"({reason}); start the server or set tracking.uri / MLFLOW_TRACKING_URI"
            ) from None
    elif scheme == "sqlite":
        db = Path(uri[len("sqlite:///") :])
        if not db.parent.is_dir():
            raise TrackingError(f"tracking URI {uri}: directory {db.parent} does not exist")
        if not os.access(db.parent, os.W_OK) or (db.exists() and not os.access(db, os.W_OK)):
            raise TrackingError(
                f"tracking URI {uri}: cannot write {db} (permission denied); run from a "
                "writable directory or set tracking.uri / MLFLOW_TRACKING_URI"
            )


def use_store(uri: str) -> None:
    """Check the store, then point MLflow's fluent API at it."""
    import mlflow

    check_store(uri)
    mlflow.set_tracking_uri(uri)


def setup_experiment(uri: str, experiment_name: str) -> str:
    """Point MLflow at ``uri`` (creating its schema once) and return the experiment's id."""
    import mlflow
    from mlflow.exceptions import MlflowException

    use_store(uri)
    try:
        client = mlflow.MlflowClient(uri)
        experiment = client.get_experiment_by_name(experiment_name)
        if experiment is None:
            return client.create_experiment(experiment_name)
        if experiment.lifecycle_stage != "active":
            raise TrackingError(
                f"tracking.experiment_name={experiment_name}: the experiment is deleted; "
                "restore it in MLflow or choose another name"
            )
        return experiment.experiment_id
    except MlflowException as e:
        first_line = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise TrackingError(f"tracking URI {uri}: {first_line}") from None


class StepMetrics:
    """Per-step metrics written with ``log_batch`` at most every ``interval_s``, and on ``flush``.

    A thousand steps cost a few writes instead of a thousand, and nothing waits on a queue:
    ``flush`` (called when training ends, however it ends) writes what is pending.
    """

    def __init__(self, run_id: str, interval_s: float = 1.0) -> None:
        import mlflow

        self._client = mlflow.MlflowClient()
        self._run_id = run_id
        self._interval_s = interval_s
        self._pending: list[Any] = []
        self._last_flush = time.monotonic()

    def log(self, key: str, value: float, step: int) -> None:
        from mlflow.entities import Metric

        self._pending.append(Metric(key, value, int(time.time() * 1000), step))
        if time.monotonic() - self._last_flush >= self._interval_s:
            self.flush()

    def flush(self) -> None:
        while self._pending:
            chunk, self._pending = self._pending[:1000], self._pending[1000:]  # MLflow's limit
            self._client.log_batch(self._run_id, metrics=chunk)
        self._last_flush = time.monotonic()


class Terminated(KeyboardInterrupt):
    """SIGTERM, handled like Ctrl-C so the run ends KILLED with what it logged so far."""


def raise_terminated(signum: int, frame: Any) -> None:
    """A SIGTERM handler: stop the way Ctrl-C stops."""
    raise Terminated(f"received signal {signum}")


@contextmanager
def mlflow_run(
    experiment_id: str,
    run_name: str,
    parent_run_id: str | None = None,
    tags: dict[str, str] | None = None,
) -> Iterator[Any]:
    """An active MLflow run that ends FINISHED, FAILED (exception) or KILLED (Ctrl-C, SIGTERM)."""
    import mlflow

    run = mlflow.start_run(
        experiment_id=experiment_id, run_name=run_name, parent_run_id=parent_run_id, tags=tags
    )
    in_main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, raise_terminated) if in_main_thread else None
    status = "FAILED"
    try:
        yield run
        status = "FINISHED"
    except KeyboardInterrupt:
        status = "KILLED"
        raise
    finally:
        if in_main_thread:
            signal.signal(signal.SIGTERM, previous)
        mlflow.end_run(status)


def record_failed_job(sweep: SweepContext, run_name: str, error: str) -> None:
    """A sweep job that failed before its run began still shows, FAILED, under the parent."""
    import mlflow

    client = mlflow.MlflowClient(sweep.tracking_uri)
    run = client.create_run(
        sweep.experiment_id,
        run_name=run_name,
        tags={"mlflow.parentRunId": sweep.parent_run_id, "error": error[:5000]},
    )
    client.set_terminated(run.info.run_id, "FAILED")


def git_commit(path: Path) -> str | None:
    """The commit of the git checkout holding ``path`` (with ``-dirty``), or None."""
    try:
        out = subprocess.run(
            ["git", "describe", "--always", "--dirty", "--abbrev=40", "--match=NOTAG"],
            cwd=path,
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


def run_url(uri: str, experiment_id: str, run_id: str) -> str:
    """The run's page on the tracking server, or where ``mlflow ui`` shows a local store."""
    base = uri.rstrip("/") if urlparse(uri).scheme in ("http", "https") else "http://127.0.0.1:5000"
    return f"{base}/#/experiments/{experiment_id}/runs/{run_id}"
