"""Shared fixtures: the bundled MNIST loaded once per session, and an isolated MLflow store."""

from __future__ import annotations

import os

import pytest

# Tests never touch the user's MLflow store, home directory or the network.
os.environ.pop("MLFLOW_TRACKING_URI", None)
os.environ.pop("MLFLOW_EXPERIMENT_NAME", None)
os.environ.pop("MLFLOW_EXPERIMENT_ID", None)
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("DO_NOT_TRACK", "true")


@pytest.fixture(scope="session")
def mnist_raw():
    from kmeans_exp import data

    return data.load_raw("bundled", None, "mnist")


@pytest.fixture(scope="session")
def mnist(mnist_raw):
    from kmeans_exp import data

    return data.split(mnist_raw, 5000)
