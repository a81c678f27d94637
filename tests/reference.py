"""What the engine is checked against: NumPy references of its rules, and accuracy bands."""

from __future__ import annotations

import numpy as np

# Accuracy bands, as printed by ``python benchmarks/accuracy_bands.py`` (it runs TF's legacy op
# and this engine over seeds 0-4; its docstring says how each band is drawn).
TUTORIAL_BAND = (0.68, 0.76)  # seed_tutorial's test accuracy, any seed, either implementation
DEFAULT_MEDIAN_FLOOR = 0.75  # default settings: median test accuracy over seeds 0-4


def normalize(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def distances(x: np.ndarray, c: np.ndarray, metric: str) -> np.ndarray:
    """x is already normalised for cosine; c is normalised here for assignment, as TF does."""
    x = x.astype(np.float64)
    c = c.astype(np.float64)
    if metric == "cosine":
        return 1.0 - x @ normalize(c).T
    return (x**2).sum(1)[:, None] - 2 * x @ c.T + (c**2).sum(1)[None, :]


def lloyd_step(x: np.ndarray, c: np.ndarray, metric: str) -> np.ndarray:
    """One full-batch iteration; a centre without points keeps its value."""
    idx = distances(x, c, metric).argmin(1)
    new = c.astype(np.float64).copy()
    for j in range(len(c)):
        members = x[idx == j]
        if len(members):
            new[j] = members.mean(0)
    if metric == "cosine":
        new = normalize(new)
    return new.astype(np.float32)


def mini_batch_step(
    batch: np.ndarray, c: np.ndarray, counts: np.ndarray, metric: str, racy: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """TF's documented count rule: c_j += (Σd_i - k_j c_j) / (n_j + k_j), n_j += k_j.

    ``racy=True`` reproduces what the legacy op does single-threaded (it reads the counts after
    its own scatter_add): the rate becomes 1 / (n_j + 2 k_j).
    """
    idx = distances(batch, c, metric).argmin(1)
    c = c.astype(np.float64).copy()
    counts = counts.copy()
    for j in np.unique(idx):
        members = batch[idx == j].astype(np.float64)
        k_j = len(members)
        n_j = counts[j] + (k_j if racy else 0)
        c[j] += (members.sum(0) - k_j * c[j]) / (n_j + k_j)
        counts[j] += k_j
    return c.astype(np.float32), counts
