"""Cluster labelling, accuracy and the confusion matrix on hand-checked numbers."""

from __future__ import annotations

import numpy as np
import pytest

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
    table = labels.table(("zero", "one", "two"))
    assert table["purity"] == [0.666667, 1.0, None, 1.0]
    assert table["class"] == ["two", "zero", None, "one"]


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


def test_identical_partitions_score_one_and_labels_may_be_renamed():
    y = np.array([0, 0, 1, 1, 2, 2, 2])
    renamed = np.array([5, 5, 3, 3, 9, 9, 9])  # the same partition under other cluster names
    for clusters in (y, renamed):
        scores = evaluate.partition_scores(y, clusters)
        assert scores == {"nmi": 1.0, "ari": 1.0, "ami": 1.0, "matched_accuracy": 1.0}


def test_a_permutation_of_cluster_ids_changes_no_score():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 4, 300)
    clusters = np.where(rng.random(300) < 0.7, y, rng.integers(0, 6, 300))
    permuted = rng.permutation(6)[clusters]
    before, after = evaluate.partition_scores(y, clusters), evaluate.partition_scores(y, permuted)
    assert before == pytest.approx(after)
    assert 0 < before["nmi"] < 1 and 0 < before["matched_accuracy"] < 1


def test_matched_accuracy_on_a_hand_computed_contingency():
    """Clusters 0,1,2 against classes 0,1. Contingency (clusters x classes):
    cluster 0: [3, 1], cluster 1: [0, 2], cluster 2: [2, 0].
    One-to-one: 0->0 (3) and 1->1 (2) give 5 of 8; cluster 2 stays unmatched, its 2 points count
    as wrong. Majority labelling would give 3 + 2 + 2 = 7 of 8."""
    clusters = np.array([0, 0, 0, 0, 1, 1, 2, 2])
    y = np.array([0, 0, 0, 1, 1, 1, 0, 0])
    assert evaluate.matched_accuracy(y, clusters) == 5 / 8
    labels = evaluate.label_clusters(clusters, y, 3, 2)
    assert evaluate.accuracy(y, labels.predict(clusters)) == 7 / 8
    assert evaluate.contingency(clusters, y, 3, 2).tolist() == [[3, 1], [0, 2], [2, 0]]
    # ARI by hand: pairs within classes sum C(5,2)+C(3,2) = 13, within clusters 6+1+1 = 8,
    # within both 3+0+1+1 = 5 (cluster 0: C(3,2) of class 0; cluster 1: 1; cluster 2: 1);
    # expected 13*8/28; ARI = (5 - 104/28) / ((13+8)/2 - 104/28).
    expected = (5 - 104 / 28) / ((13 + 8) / 2 - 104 / 28)
    assert evaluate.partition_scores(y, clusters)["ari"] == pytest.approx(expected)


def test_silhouette_uses_the_run_metric_on_a_seeded_sample():
    rng = np.random.default_rng(1)
    centres = np.repeat(np.array([[5.0, 0.0], [0.0, 5.0]]), 60, axis=0)
    x = centres + rng.normal(0, 0.1, (120, 2))
    labels = np.repeat([0, 1], 60)
    tight = evaluate.silhouette(x.astype(np.float32), labels, "squared_euclidean", seed=0)
    assert 0.95 < tight <= 1.0
    assert evaluate.silhouette(x, labels, "cosine", 3) == evaluate.silhouette(
        x, labels, "cosine", 3
    )
    assert np.isnan(evaluate.silhouette(x, np.zeros(120, dtype=int), "cosine", 0))  # one cluster


def test_cluster_means_are_each_clusters_mean_row_and_pixels_read_as_value_over_255():
    x = np.array([[0.0, 2.0], [2.0, 2.0], [4.0, 4.0]], np.float32)
    means = evaluate.cluster_means(x, np.array([0, 0, 2]), 3)
    assert means.tolist() == [[1.0, 2.0], [0.0, 0.0], [4.0, 4.0]]  # cluster 1 is empty
    pixels = np.array([[255, 0], [0, 0]], np.uint8)
    assert evaluate.cluster_means(pixels, np.array([0, 0]), 1).tolist() == [[0.5, 0.0]]
