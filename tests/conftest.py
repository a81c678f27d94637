"""Shared fixtures: MNIST loaded once per session, and CLI runs isolated from the user's files.

Nothing here may touch the user's MLflow store, home directory or the network: HOME and
KERAS_HOME point into a temporary folder, MLflow variables are cleared, and every CLI run works
in its own temporary directory with its own ``sqlite:///mlflow.db``.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent  # the repository
_HOME = tempfile.mkdtemp(prefix="kmeans_exp_home_")
os.environ["HOME"] = _HOME
os.environ["KERAS_HOME"] = os.path.join(_HOME, ".keras")
for _name in ("MLFLOW_TRACKING_URI", "MLFLOW_EXPERIMENT_NAME", "MLFLOW_EXPERIMENT_ID"):
    os.environ.pop(_name, None)
# In this process, anything that falls back on a default store lands in the temporary home.
os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{os.path.join(_HOME, 'mlflow.db')}"
os.environ["MLFLOW_DISABLE_TELEMETRY"] = "true"
os.environ["DO_NOT_TRACK"] = "true"
os.environ.pop("KMEANS_EXP_SWEEP", None)
# Compiled XLA programs are cached under the temporary home (the user cache is not touched).
os.environ.pop("XDG_CACHE_HOME", None)
os.environ.pop("KMEANS_EXP_XLA_CACHE", None)


@pytest.fixture(scope="session")
def mnist_raw():
    from kmeans_exp import data

    return data.load_raw("bundled", None, "mnist")


@pytest.fixture(scope="session")
def mnist(mnist_raw):
    from kmeans_exp import data

    return data.split(mnist_raw, 5000)


@pytest.fixture(scope="session")
def small(mnist):
    """3,000 training, 500 validation and 1,000 test images: small enough to fit in seconds."""
    import dataclasses

    return dataclasses.replace(
        mnist,
        x_train=mnist.x_train[:3000],
        y_train=mnist.y_train[:3000],
        x_val=mnist.x_val[:500],
        y_val=mnist.y_val[:500],
        x_test=mnist.x_test[:1000],
        y_test=mnist.y_test[:1000],
    )


def run_cli(
    args: list[str],
    cwd: Path,
    timeout: float = 600,
    env: dict[str, str] | None = None,
    module: str = "kmeans_exp",
) -> subprocess.CompletedProcess:
    """``python -m MODULE ARGS`` as a user runs it in ``cwd``: MLflow's default store there.

    ``MLFLOW_TRACKING_URI`` reaches the command only when ``env`` sets it.
    """
    return subprocess.run(
        [sys.executable, "-m", module, *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=user_env(env),
    )


def user_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """This environment as a user's shell has it: no ``MLFLOW_TRACKING_URI`` unless ``extra``
    sets it, so a command falls back on MLflow's default store in its working directory."""
    environment = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    return {**environment, **(extra or {})}


def sweep_runs(runs: list) -> tuple:
    """The one parent run of a sweep among ``runs``, and its children (runs naming it)."""
    (parent,) = [r for r in runs if r.data.tags.get("kmeans_exp.sweep") == "parent"]
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    return parent, children


def client_for(cwd: Path):
    """An MlflowClient on the default store that a CLI run in ``cwd`` wrote."""
    import mlflow

    return mlflow.MlflowClient(f"sqlite:///{cwd / 'mlflow.db'}")
