"""A fitted ``KMeans`` in one ``.npz`` file: its settings, centres, counts and step number."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

SETTINGS = (
    "n_clusters",
    "distance_metric",
    "init",
    "use_mini_batch",
    "batch_size",
    "seed",
    "n_init",
    "kmeans_plus_plus_num_retries",
)


def save(model: Any, path: Path) -> Path:
    """Write ``model`` (a ``KMeans``) to ``path``; returns the file's name (``.npz`` added)."""
    settings = {name: getattr(model, name) for name in SETTINGS}
    if settings["batch_size"] is None:
        settings["batch_size"] = -1  # npz holds no None
    np.savez(
        path,
        centers=model.cluster_centers_,
        counts=model.cluster_counts_,
        step=model.steps_done_,
        **settings,
    )
    return path if path.suffix == ".npz" else path.with_suffix(path.suffix + ".npz")


def load(path: Path) -> tuple[dict[str, Any], np.ndarray, np.ndarray, int]:
    """The settings (``KMeans`` keyword arguments), centres, counts and step in ``path``."""
    with np.load(path, allow_pickle=False) as f:
        settings: dict[str, Any] = {name: f[name].item() for name in SETTINGS if name in f.files}
        centers, counts, step = f["centers"], f["counts"], int(f["step"])
    if settings["batch_size"] < 0:
        settings["batch_size"] = None
    settings.setdefault("n_init", 1)  # files from before restarts existed
    return settings, centers, counts, step
