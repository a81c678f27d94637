"""Turn cluster assignments into a classifier and measure it (NumPy only).

Each cluster is labelled with the majority class of the training points assigned to it; a
cluster that no training point falls in gets the label -1 (every point predicted there counts as
wrong) and is listed as empty. Ties go to the smallest class index (``np.argmax``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

UNLABELLED = -1


@dataclass(frozen=True)
class ClusterLabels:
    """Cluster -> class map, with each cluster's training size and purity."""

    labels: np.ndarray  # (k,) int64, UNLABELLED for empty clusters
    sizes: np.ndarray  # (k,) int64
    purity: np.ndarray  # (k,) float64: majority count / size, NaN when empty

    @property
    def empty_clusters(self) -> int:
        return int(np.sum(self.sizes == 0))

    def predict(self, cluster_idx: np.ndarray) -> np.ndarray:
        return self.labels[cluster_idx]

    def table(self) -> dict[str, list]:
        """Column-oriented per-cluster table (for MLflow's ``log_table``)."""
        return {
            "cluster": list(range(len(self.labels))),
            "label": self.labels.tolist(),
            "size": self.sizes.tolist(),
            "purity": [None if np.isnan(p) else round(float(p), 6) for p in self.purity],
        }


def label_clusters(cluster_idx: np.ndarray, y: np.ndarray, n_clusters: int, num_classes: int):
    """Majority-vote labels for every cluster from the training assignments."""
    counts = np.zeros((n_clusters, num_classes), dtype=np.int64)
    np.add.at(counts, (cluster_idx, y), 1)
    sizes = counts.sum(axis=1)
    labels = np.where(sizes > 0, counts.argmax(axis=1), UNLABELLED).astype(np.int64)
    with np.errstate(invalid="ignore", divide="ignore"):
        purity = np.where(sizes > 0, counts.max(axis=1) / sizes, np.nan)
    return ClusterLabels(labels=labels, sizes=sizes, purity=purity)


def accuracy(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Fraction of exact matches; NaN for an empty split."""
    if len(y_true) == 0:
        return float("nan")
    return float(np.mean(y_true == y_pred))


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, num_classes: int) -> np.ndarray:
    """(num_classes, num_classes) counts, rows = true class, columns = predicted class.

    Points predicted UNLABELLED (an empty cluster) appear in no column.
    """
    matrix = np.zeros((num_classes, num_classes), dtype=np.int64)
    known = y_pred != UNLABELLED
    np.add.at(matrix, (y_true[known], y_pred[known]), 1)
    return matrix
