"""Cluster labelling, accuracy and the confusion matrix on hand-checked numbers."""

from __future__ import annotations

import numpy as np

from kmeans_exp import evaluate


def test_majority_labels_sizes_purity_and_empty_clusters():
    idx = np.array([0, 0, 0, 1, 1, 3])
    y = np.array([2, 2, 1, 0, 0, 1])
    labels = evaluate.label_clusters(idx, y, n_clusters=4, num_classes=3)
    assert labels.labels.tolist() == [2, 0, evaluate.UNLABELLED, 1]
    assert labels.sizes.tolist() == [3, 2, 0, 1]
    np.testing.assert_allclose(labels.purity, [2 / 3, 1.0, np.nan, 1.0])
    assert labels.empty_clusters == 1
    assert labels.predict(np.array([2, 3, 0])).tolist() == [-1, 1, 2]
    assert labels.table()["purity"] == [0.666667, 1.0, None, 1.0]


def test_ties_go_to_the_smallest_class():
    labels = evaluate.label_clusters(np.array([0, 0]), np.array([4, 1]), 1, 5)
    assert labels.labels.tolist() == [1]


def test_accuracy_and_confusion_matrix():
    y_true = np.array([0, 0, 1, 1, 2])
    y_pred = np.array([0, 1, 1, 1, -1])
    assert evaluate.accuracy(y_true, y_pred) == 0.6
    assert np.isnan(evaluate.accuracy(np.array([]), np.array([])))
    matrix = evaluate.confusion_matrix(y_true, y_pred, 3)
    assert matrix.tolist() == [[1, 1, 0], [0, 2, 0], [0, 0, 0]]
