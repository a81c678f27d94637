"""Score a clustering against the true digits (NumPy, scikit-learn and SciPy; no TensorFlow).

Two families of scores:

- majority-label accuracy (the tutorial's metric): each cluster is labelled with the majority
  class of the training points assigned to it, and a point counts as right when its cluster's
  label is its class. A cluster that no training point falls in gets the label -1 (every point
  predicted there counts as wrong). Ties go to the smallest class index. It rises towards 1 as k
  grows, because small clusters are pure by construction;
- clustering scores that stay comparable across k: NMI, ARI and AMI of the cluster indices
  against the classes (``sklearn.metrics``), the one-to-one "matched" accuracy of the
  deep-clustering literature (the Hungarian method; clusters left unmatched count as wrong) and
  the silhouette of a seeded sample of training points under the run's own distance.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from kmeans_exp.data import as_floats, features

UNLABELLED = -1
SILHOUETTE_SAMPLE = 2000  # training points the silhouette is computed on (it is O(n²))
SKLEARN_METRIC = {"cosine": "cosine", "squared_euclidean": "sqeuclidean"}


class FittedModel(Protocol):
    """What evaluation needs of a fitted engine (``kmeans_exp.engine.KMeans``)."""

    n_clusters: int
    distance_metric: str
    labels_: np.ndarray
    inertia_: float

    def assign(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]: ...


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

    def table(self, class_names: Sequence[str]) -> dict[str, list]:
        """Column-oriented per-cluster table (for MLflow's ``log_table``), each cluster's
        majority class by index (``label``) and by name (``class``; None when empty)."""
        return {
            "cluster": list(range(len(self.labels))),
            "label": self.labels.tolist(),
            "class": [None if i == UNLABELLED else class_names[i] for i in self.labels],
            "size": self.sizes.tolist(),
            "purity": [None if np.isnan(p) else round(float(p), 6) for p in self.purity],
        }


@dataclass(frozen=True)
class Evaluation:
    """What a trained model scores on each split; ``metrics`` holds every number to log."""

    clusters: ClusterLabels
    confusion: np.ndarray  # test split, (classes, classes)
    metrics: dict[str, float] = field(default_factory=dict)

    def __getitem__(self, name: str) -> float:
        return self.metrics[name]


def label_clusters(cluster_idx: np.ndarray, y: np.ndarray, n_clusters: int, num_classes: int):
    """Majority-vote labels for every cluster from the training assignments."""
    counts = contingency(cluster_idx, y, n_clusters, num_classes)
    sizes = counts.sum(axis=1)
    labels = np.where(sizes > 0, counts.argmax(axis=1), UNLABELLED).astype(np.int64)
    with np.errstate(invalid="ignore", divide="ignore"):
        purity = np.where(sizes > 0, counts.max(axis=1) / sizes, np.nan)
    return ClusterLabels(labels=labels, sizes=sizes, purity=purity)


def contingency(cluster_idx: np.ndarray, y: np.ndarray, n_clusters: int, num_classes: int):
    """(n_clusters, num_classes) counts of points per cluster and class."""
    counts = np.zeros((n_clusters, num_classes), dtype=np.int64)
    np.add.at(counts, (cluster_idx, y), 1)
    return counts


def accuracy(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Fraction of exact matches; NaN for an empty split."""
    if len(y_true) == 0:
        return float("nan")
    return float(np.mean(y_true == y_pred))


def matched_accuracy(y_true: np.ndarray, cluster_idx: np.ndarray) -> float:
    """Accuracy under the best one-to-one cluster -> class map (Hungarian); NaN when empty.

    With more clusters than classes, the clusters left without a class count as wrong.
    """
    if len(y_true) == 0:
        return float("nan")
    from scipy.optimize import linear_sum_assignment

    _, clusters = np.unique(cluster_idx, return_inverse=True)
    _, classes = np.unique(y_true, return_inverse=True)
    counts = contingency(clusters, classes, clusters.max() + 1, classes.max() + 1)
    rows, cols = linear_sum_assignment(counts, maximize=True)
    return float(counts[rows, cols].sum() / len(y_true))


def nmi(y_true: np.ndarray, cluster_idx: np.ndarray) -> float:
    """Normalised mutual information (arithmetic mean normalisation, scikit-learn's default)."""
    from sklearn.metrics import normalized_mutual_info_score

    return float(normalized_mutual_info_score(y_true, cluster_idx))


def partition_scores(y_true: np.ndarray, cluster_idx: np.ndarray) -> dict[str, float]:
    """NMI, ARI, AMI and matched accuracy of a partition against the true classes."""
    from sklearn import metrics

    return {
        "nmi": nmi(y_true, cluster_idx),
        "ari": float(metrics.adjusted_rand_score(y_true, cluster_idx)),
        "ami": float(metrics.adjusted_mutual_info_score(y_true, cluster_idx)),
        "matched_accuracy": matched_accuracy(y_true, cluster_idx),
    }


def silhouette(x: np.ndarray, cluster_idx: np.ndarray, metric: str, seed: int) -> float:
    """Mean silhouette of a seeded sample of rows under ``metric``; NaN if under 2 clusters.

    ``x`` as the engine takes it: uint8 pixels are scored as value / 255.
    """
    from sklearn import config_context
    from sklearn.metrics import silhouette_score

    rng = np.random.default_rng(seed)
    rows = rng.choice(len(x), size=min(SILHOUETTE_SAMPLE, len(x)), replace=False)
    labels = cluster_idx[rows]
    if not 2 <= len(np.unique(labels)) < len(rows):
        return float("nan")
    sample = features(x[rows]) if x.dtype == np.uint8 else x[rows]
    # 8 MB pieces of the distance matrix, not the whole 2,000 x 2,000 float64 one (32 MB).
    with config_context(working_memory=8):
        return float(silhouette_score(sample, labels, metric=SKLEARN_METRIC[metric]))


def cluster_means(x: np.ndarray, cluster_idx: np.ndarray, n_clusters: int) -> np.ndarray:
    """(n_clusters, d) mean row of each cluster (uint8 pixels as value / 255; empty: zeros):
    what a cluster looks like when its centre lives in another space (features)."""
    members = np.zeros((n_clusters, len(x)), np.float32)
    members[cluster_idx, np.arange(len(x))] = 1.0
    sums = members @ as_floats(x)
    sizes = members.sum(axis=1, keepdims=True)
    return sums / np.maximum(sizes, 1.0)


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, num_classes: int) -> np.ndarray:
    """(num_classes, num_classes) counts, rows = true class, columns = predicted class.

    Points predicted UNLABELLED (an empty cluster) appear in no column.
    """
    matrix = np.zeros((num_classes, num_classes), dtype=np.int64)
    known = y_pred != UNLABELLED
    np.add.at(matrix, (y_true[known], y_pred[known]), 1)
    return matrix


def evaluate_model(model: FittedModel, splits: Any, seed: int) -> Evaluation:
    """Label clusters by their training majority, then score every split.

    ``splits`` is a ``kmeans_exp.data.Splits``; ``seed`` picks the silhouette's sample.
    """
    num_classes = splits.raw.num_classes
    train_idx = model.labels_  # fit's final assignment of the training set
    val_idx = model.assign(splits.x_val)[0]  # empty without a validation split
    test_idx = model.assign(splits.x_test)[0]
    clusters = label_clusters(train_idx, splits.y_train, model.n_clusters, num_classes)
    test_pred = clusters.predict(test_idx)
    test_scores = partition_scores(splits.y_test, test_idx)
    metrics = {
        "train_accuracy": accuracy(splits.y_train, clusters.predict(train_idx)),
        "test_accuracy": accuracy(splits.y_test, test_pred),
        "inertia": model.inertia_,
        "empty_clusters": float(clusters.empty_clusters),
        "test_nmi": test_scores["nmi"],
        "test_ari": test_scores["ari"],
        "test_ami": test_scores["ami"],
        "test_matched_accuracy": test_scores["matched_accuracy"],
        "silhouette": silhouette(splits.x_train, train_idx, model.distance_metric, seed),
    }
    if len(splits.x_val):  # no validation split, no validation scores (rather than NaN)
        metrics["val_accuracy"] = accuracy(splits.y_val, clusters.predict(val_idx))
        metrics["val_nmi"] = nmi(splits.y_val, val_idx)
    return Evaluation(
        clusters=clusters,
        confusion=confusion_matrix(splits.y_test, test_pred, num_classes),
        metrics=metrics,
    )


def evaluate_transductive(model: FittedModel, splits: Any, seed: int) -> Evaluation:
    """Score the rows the model was fitted on, as the deep-clustering papers do
    (``protocol=transductive``): ``splits.x_train`` holds every image of every split, and every
    score is ``all_*``. Clusters are labelled by the majority class of those same rows (for the
    figures and the served model); matched accuracy needs no such map."""
    num_classes = splits.raw.num_classes
    cluster_idx = model.labels_
    clusters = label_clusters(cluster_idx, splits.y_train, model.n_clusters, num_classes)
    scores = partition_scores(splits.y_train, cluster_idx)
    predicted = clusters.predict(cluster_idx)
    metrics = {f"all_{name}": value for name, value in scores.items()}
    metrics |= {
        "all_accuracy": accuracy(splits.y_train, predicted),
        "inertia": model.inertia_,
        "empty_clusters": float(clusters.empty_clusters),
        "silhouette": silhouette(splits.x_train, cluster_idx, model.distance_metric, seed),
    }
    return Evaluation(clusters, confusion_matrix(splits.y_train, predicted, num_classes), metrics)


# ---------------------------------------------------------------------------------------------
# From contingency tables: how a sharded fit is scored, with no row or label gathered


def table_scores(table: np.ndarray) -> dict[str, float]:
    """NMI (arithmetic normalisation), ARI and matched accuracy from a (clusters, classes)
    contingency table: equal to ``partition_scores``' values for the same partition."""
    from scipy.optimize import linear_sum_assignment
    from scipy.special import comb

    table = np.asarray(table, np.int64)
    n = int(table.sum())
    if n == 0:
        return {"nmi": float("nan"), "ari": float("nan"), "matched_accuracy": float("nan")}
    table = table[table.sum(axis=1) > 0][:, table.sum(axis=0) > 0]
    rows, cols = table.sum(axis=1), table.sum(axis=0)
    p = table / n
    nz = table > 0
    mi = float(np.sum(p[nz] * np.log(table[nz] * n / np.outer(rows, cols)[nz])))
    h_rows = -float(np.sum(rows / n * np.log(rows / n)))
    h_cols = -float(np.sum(cols / n * np.log(cols / n)))
    if table.shape[0] == table.shape[1] == 1:
        nmi = 1.0
    else:
        nmi = mi / max((h_rows + h_cols) / 2, np.finfo(np.float64).eps) if mi > 0 else 0.0
    pairs = float(np.sum(comb(table, 2)))
    a, b = float(np.sum(comb(rows, 2))), float(np.sum(comb(cols, 2)))
    expected = a * b / comb(n, 2) if n > 1 else 0.0
    spread = (a + b) / 2 - expected
    ari = 1.0 if spread == 0 else (pairs - expected) / spread
    r, c = linear_sum_assignment(table, maximize=True)
    return {"nmi": nmi, "ari": float(ari), "matched_accuracy": float(table[r, c].sum() / n)}


def evaluate_tables(
    sizes: np.ndarray,
    inertia: float,
    train: np.ndarray | None,
    val: np.ndarray | None,
    test: np.ndarray | None,
    test_inertia: float | None,
) -> Evaluation:
    """Scores of a fit from per-split (clusters, classes) contingency tables (None: a split
    without labels, or no such split): as ``evaluate_model`` computes them, but AMI and the
    silhouette, which need the rows."""
    k = len(sizes)
    metrics = {"inertia": inertia, "empty_clusters": float(np.sum(sizes == 0))}
    if test_inertia is not None:
        metrics["test_inertia"] = test_inertia
    if train is None:  # no labels: the label-free scores only
        clusters = ClusterLabels(np.full(k, UNLABELLED), sizes, np.full(k, np.nan))
        return Evaluation(clusters, np.zeros((0, 0), np.int64), metrics)
    with np.errstate(invalid="ignore", divide="ignore"):
        purity = np.where(sizes > 0, train.max(axis=1) / sizes, np.nan)
    labels = np.where(sizes > 0, train.argmax(axis=1), UNLABELLED).astype(np.int64)
    clusters = ClusterLabels(labels, sizes, purity)
    num_classes = train.shape[1]

    def correct(table: np.ndarray) -> float:
        known = labels != UNLABELLED
        return float(table[known, labels[known]].sum() / max(table.sum(), 1))

    metrics["train_accuracy"] = correct(train)
    if val is not None:
        metrics["val_accuracy"] = correct(val)
        metrics["val_nmi"] = table_scores(val)["nmi"]
    confusion = np.zeros((num_classes, num_classes), np.int64)
    if test is not None:
        metrics |= {f"test_{name}": value for name, value in table_scores(test).items()}
        test = _widened(test, num_classes)  # its files may lack the last classes, or add some
        metrics["test_accuracy"] = correct(test)
        for cluster, label in enumerate(labels):
            if label != UNLABELLED:
                confusion[:, label] += test[cluster, :num_classes]
    return Evaluation(clusters, confusion, metrics)


def _widened(table: np.ndarray, columns: int) -> np.ndarray:
    """``table`` with at least ``columns`` columns (zeros added on the right)."""
    out = np.zeros((table.shape[0], max(columns, table.shape[1])), np.int64)
    out[:, : table.shape[1]] = table
    return out
