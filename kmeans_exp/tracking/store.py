"""The tracking store: which one, whether it answers, and the experiment in it.

The store is MLflow's own default (``sqlite:///mlflow.db`` in the working directory) unless
``tracking.uri`` or ``MLFLOW_TRACKING_URI`` names another, an HTTP server included. It is checked
before any work starts, so a dead server or an unwritable directory fails in seconds, not after
training.
"""

from __future__ import annotations

import os
import socket
import subprocess
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

from kmeans_exp.errors import TrackingError, first_line
from kmeans_exp.tracking.liveness import end_dead_runs

DEFAULT_URI = "sqlite:///mlflow.db"  # MLflow 3's own default store
CONNECT_TIMEOUT_S = 10.0
# Database stores MLflow reaches through SQLAlchemy (``postgresql+psycopg://`` included), with
# their servers' default ports. MLflow retries a refused connection for about 107 s.
DATABASE_PORTS = {"postgresql": 5432, "mysql": 3306, "mssql": 1433}


@dataclass(frozen=True)
class Store:
    """A checked tracking store and the id of the experiment runs go to."""

    uri: str
    experiment_id: str


def resolve_uri(configured: str | None) -> str:
    """``tracking.uri``, else ``MLFLOW_TRACKING_URI``, else MLflow's default (sqlite: absolute)."""
    uri = configured or os.environ.get("MLFLOW_TRACKING_URI") or DEFAULT_URI
    if uri.startswith("sqlite:///") and not uri.startswith("sqlite:////"):
        uri = "sqlite:///" + str(Path(uri[len("sqlite:///") :]).resolve())
    return uri


def redacted(uri: str) -> str:
    """``uri`` without its password, fit for messages and logs."""
    parts = urlparse(uri)
    if parts.password is None:
        return uri
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return parts._replace(netloc=netloc).geturl()


def check_store(uri: str, timeout_s: float = CONNECT_TIMEOUT_S) -> None:
    """Fail fast, with one line, when the store cannot be reached or written."""
    parts = urlparse(uri)
    scheme = parts.scheme
    dialect = scheme.split("+", 1)[0]
    if dialect in DATABASE_PORTS:
        host, port = parts.hostname or "localhost", parts.port or DATABASE_PORTS[dialect]
        try:
            socket.create_connection((host, port), timeout=timeout_s).close()
        except OSError as e:
            raise TrackingError(
                f"tracking URI {redacted(uri)}: no database server answered at {host}:{port} "
                f"within {timeout_s:.0f} s ({e.strerror or e}); start it or set tracking.uri / "
                "MLFLOW_TRACKING_URI"
            ) from None
        _check_login(uri, dialect, timeout_s)
    elif scheme in ("http", "https"):
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


def _check_login(uri: str, dialect: str, timeout_s: float) -> None:
    """One connection as MLflow will make it: a wrong user, password or database fails here
    at once, where MLflow would retry it for about 107 s."""
    import sqlalchemy

    connect_args = {"connect_timeout": int(timeout_s)} if dialect in ("postgresql", "mysql") else {}
    try:
        engine = sqlalchemy.create_engine(uri, connect_args=connect_args)
    except Exception as e:  # an unknown driver, a malformed URI
        raise TrackingError(f"tracking URI {redacted(uri)}: {first_line(e)}") from None
    try:
        engine.connect().close()
    except Exception as e:
        raise TrackingError(
            f"tracking URI {redacted(uri)}: the database refused the connection ({first_line(e)})"
        ) from None
    finally:
        engine.dispose()


def use_store(uri: str) -> None:
    """Check the store, then point MLflow's fluent API at it."""
    import mlflow

    check_store(uri)
    mlflow.set_tracking_uri(uri)


def open_store(configured_uri: str | None, experiment_name: str) -> Store:
    """Resolve, check and prepare the store; create the experiment if it is new."""
    uri = resolve_uri(configured_uri)
    return Store(uri, setup_experiment(uri, experiment_name))


def setup_experiment(uri: str, experiment_name: str) -> str:
    """Point MLflow at ``uri`` (creating its schema once) and return the experiment's id.

    Runs of this experiment left RUNNING by a dead process of this host are ended KILLED.
    """
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
        end_dead_runs(client, experiment.experiment_id)
        return experiment.experiment_id
    except MlflowException as e:
        raise TrackingError(f"tracking URI {redacted(uri)}: {first_line(e)}") from None


CONFIG_HASH_TAG = "kmeans_exp.config_hash"
PROTOCOL_TAG = "kmeans_exp.protocol"  # held_out or transductive: which rows were fitted and scored


def find_finished(store: Store, config_hash: str) -> tuple[str, dict[str, float]] | None:
    """The newest FINISHED run of ``store``'s experiment with this config hash: id and metrics."""
    import mlflow

    runs = mlflow.MlflowClient(store.uri).search_runs(
        [store.experiment_id],
        filter_string=f"tags.`{CONFIG_HASH_TAG}` = '{config_hash}' and "
        "attributes.status = 'FINISHED'",
        order_by=["attributes.start_time DESC"],
        max_results=1,
    )
    return (runs[0].info.run_id, dict(runs[0].data.metrics)) if runs else None


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
