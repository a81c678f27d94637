"""The TF2 engine against TF's legacy op, NumPy references, and the tutorial's numbers."""

from __future__ import annotations

import numpy as np
import pytest
import reference

from kmeans_exp import data, evaluate
from kmeans_exp.engine import KMeans, batches
from kmeans_exp.engine.legacy_op import legacy_train

K = 10


@pytest.fixture(scope="module")
def sample(mnist):
    """2,000 training images (float features) and 10 of them as initial centres: small enough
    for the oracles."""
    x = data.features(mnist.x_train[:2000])
    return x, x[np.arange(0, 2000, 200)].copy()


def prepared(x: np.ndarray, metric: str) -> np.ndarray:
    return reference.normalize(x).astype(np.float32) if metric == "cosine" else x


@pytest.mark.parametrize("metric", ["cosine", "squared_euclidean"])
def test_full_batch_matches_tf_legacy_op_and_numpy(sample, metric):
    x, init = sample
    steps = 5
    model = KMeans(K, distance_metric=metric, use_mini_batch=False).fit(x, steps, init)

    legacy = legacy_train(x, init, metric, False, [x] * steps)
    oracle, oracle_history = legacy.centers, legacy.avg_distances
    ref = prepared(init, metric)
    if metric == "cosine":
        ref = reference.normalize(ref).astype(np.float32)
    for _ in range(steps):
        ref = reference.lloyd_step(prepared(x, metric), ref, metric)

    np.testing.assert_allclose(model.cluster_centers_, oracle, rtol=1e-4, atol=2e-5)
    np.testing.assert_allclose(model.cluster_centers_, ref, rtol=1e-4, atol=2e-5)
    ours = [s.avg_distance for s in model.history_]
    np.testing.assert_allclose(ours, oracle_history, rtol=1e-5)


@pytest.mark.parametrize("metric", ["cosine", "squared_euclidean"])
def test_mini_batch_matches_documented_count_rule(sample, metric):
    x, init = sample
    steps = 6
    model = KMeans(K, distance_metric=metric, use_mini_batch=True, batch_size=256, seed=3)
    model.fit(x, steps, init)

    xs = prepared(x, metric)
    centers = reference.normalize(init).astype(np.float32) if metric == "cosine" else init
    counts = np.ones(K, dtype=np.int64)
    for step in range(steps):
        batch = xs[model.batch_indices(step, len(x)).numpy()]
        centers, counts = reference.mini_batch_step(batch, centers, counts, metric)

    np.testing.assert_array_equal(model.cluster_counts_, counts)
    np.testing.assert_allclose(model.cluster_centers_, centers, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("metric", ["cosine", "squared_euclidean"])
def test_legacy_mini_batch_op_races_and_our_engine_follows_the_documented_rule(sample, metric):
    """Single-threaded, the legacy op reads its counts after its own update: rate 1/(n + 2k).

    Four steps on the same 200 rows (the whole set as the batch, as the tutorial fed it): the
    legacy op matches the racy rule, our engine the documented 1/(n + k), and the two differ.
    """
    x, init = sample
    rows, steps = x[:200], 4
    oracle = legacy_train(rows, init, metric, True, [rows] * steps).centers
    ours = KMeans(K, distance_metric=metric, use_mini_batch=True, batch_size=None)
    ours.fit(rows, steps, init)

    batch = prepared(rows, metric)
    racy = documented = reference.normalize(init).astype(np.float32) if metric == "cosine" else init
    racy_counts = counts = np.ones(K, dtype=np.int64)
    for _ in range(steps):
        racy, racy_counts = reference.mini_batch_step(batch, racy, racy_counts, metric, True)
        documented, counts = reference.mini_batch_step(batch, documented, counts, metric)
    np.testing.assert_allclose(oracle, racy, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(ours.cluster_centers_, documented, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(ours.cluster_counts_, counts)
    assert np.abs(oracle - documented).max() > 1e-3


@pytest.mark.parametrize("metric", ["cosine", "squared_euclidean"])
def test_mini_batch_over_several_compiled_chunks_matches_the_count_rule(metric):
    """Batches of 1,024 run 64 steps per compiled call: 150 steps are three calls, the last short.

    Ten well-separated blobs and one initial centre in each, so that no point sits near a tie
    between two centres and float32 (engine) and float64 (reference) assign every point alike
    over all 150 steps. (Two initial centres in one blob split it along a bisector, where
    round-off decides some points.)
    """
    rng = np.random.default_rng(0)
    directions = rng.normal(size=(K, 20))
    x = np.repeat(directions, 300, axis=0) + rng.normal(scale=0.05, size=(3000, 20))
    x = x.astype(np.float32)
    init = x[np.arange(K) * 300 + rng.integers(300, size=K)]
    steps = 150
    model = KMeans(K, distance_metric=metric, use_mini_batch=True, batch_size=1024, seed=11)
    assert batches.steps_per_call(1024, True) == 64  # so the fit below crosses two chunk boundaries
    model.fit(x, steps, init)

    xs = prepared(x, metric)
    centers = reference.normalize(init).astype(np.float32) if metric == "cosine" else init
    counts = np.ones(K, dtype=np.int64)
    averages = []
    for step in range(steps):
        batch = xs[model.batch_indices(step, len(x)).numpy()]
        averages.append(reference.distances(batch, centers, metric).min(1).mean())
        centers, counts = reference.mini_batch_step(batch, centers, counts, metric)

    assert [s.step for s in model.history_] == list(range(1, steps + 1))
    np.testing.assert_array_equal(model.cluster_counts_, counts)
    np.testing.assert_allclose(model.cluster_centers_, centers, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose([s.avg_distance for s in model.history_], averages, rtol=1e-4)


def test_hand_computed_two_clusters():
    """Four points, k=2, squared Euclidean, written out by hand.

    Points (0,0), (0,2), (10,0), (10,2); initial centres (0,0) and (10,0).
    Full batch, step 1: distances to the nearest centre 0, 4, 0, 4 (mean 2); the centres move to
    the means (0,1) and (10,1). Step 2: every distance is 1 (mean 1); the centres stay.
    Mini-batch, whole set as the batch, step 1: each centre gets 2 points, count 1 -> 3, so
    c0 = (0,0) + ((0,2) - 2·(0,0)) / 3 = (0, 2/3); likewise c1 = (10, 2/3).
    """
    x = np.array([[0, 0], [0, 2], [10, 0], [10, 2]], dtype=np.float32)
    init = np.array([[0, 0], [10, 0]], dtype=np.float32)
    full = KMeans(2, distance_metric="squared_euclidean").fit(x, 2, init)
    np.testing.assert_allclose(full.cluster_centers_, [[0, 1], [10, 1]], atol=1e-6)
    assert [s.avg_distance for s in full.history_] == pytest.approx([2.0, 1.0])
    np.testing.assert_allclose(full.transform(x), [[1, 101], [1, 101], [101, 1], [101, 1]])
    assert full.labels_.tolist() == [0, 0, 1, 1] and full.inertia_ == pytest.approx(4.0)

    mini = KMeans(2, distance_metric="squared_euclidean", use_mini_batch=True).fit(x, 1, init)
    np.testing.assert_allclose(mini.cluster_centers_, [[0, 2 / 3], [10, 2 / 3]], atol=1e-6)
    assert mini.cluster_counts_.tolist() == [3, 3]
    assert mini.history_[0].avg_distance == pytest.approx(2.0)


def test_restarts_keep_the_lowest_inertia_of_the_separate_seeds(sample):
    x, _ = sample
    separate = [KMeans(K, seed=s).fit(x, 4) for s in (12, 13, 14)]  # seed * n_init + i
    model = KMeans(K, seed=4, n_init=3).fit(x, 4)
    inertias = [m.inertia_ for m in separate]
    assert model.restart_inertia_ == pytest.approx(inertias, rel=1e-6)
    assert model.best_restart_ == int(np.argmin(inertias))
    assert model.inertia_ == pytest.approx(min(inertias), rel=1e-6)
    best = separate[model.best_restart_]
    np.testing.assert_array_equal(model.cluster_centers_, best.cluster_centers_)
    np.testing.assert_array_equal(model.labels_, best.labels_)
    assert [s.avg_distance for s in model.history_] == [s.avg_distance for s in best.history_]
    assert len(set(inertias)) == 3  # the seeds do give different restarts


def test_empty_cluster_keeps_its_centre_and_is_reported(sample):
    x, init = sample
    far = init.copy()
    far[0] = 50.0  # no image is near this centre
    model = KMeans(K, distance_metric="squared_euclidean", use_mini_batch=False).fit(x, 2, far)
    assert [s.empty_clusters for s in model.history_] == [1, 1]
    np.testing.assert_array_equal(model.cluster_centers_[0], far[0])
    # TensorFlow's own op turns it into the zero vector instead.
    oracle = legacy_train(x, far, "squared_euclidean", False, [x]).centers
    np.testing.assert_array_equal(oracle[0], np.zeros_like(far[0]))


@pytest.mark.parametrize("init", ["random", "kmeans_plus_plus"])
def test_same_seed_same_centres_other_seed_other_centres(sample, init):
    x, _ = sample

    def fit(seed):
        return KMeans(K, init=init, use_mini_batch=True, batch_size=300, seed=seed).fit(x, 5)

    a, b, c = fit(1), fit(1), fit(2)
    np.testing.assert_array_equal(a.cluster_centers_, b.cluster_centers_)
    assert [s.avg_distance for s in a.history_] == [s.avg_distance for s in b.history_]
    assert not np.array_equal(a.cluster_centers_, c.cluster_centers_)


def test_batch_indices_are_distinct_in_range_and_vary_by_step():
    model = KMeans(3, use_mini_batch=True, batch_size=100, seed=7)
    first = model.batch_indices(0, 1000).numpy()
    assert len(set(first.tolist())) == 100
    assert first.min() >= 0 and first.max() < 1000
    assert not np.array_equal(first, model.batch_indices(1, 1000).numpy())
    import tensorflow as tf  # the same permutation as TF's own index_shuffle with [seed, step]

    positions = tf.range(100, dtype=tf.int64)
    expected = tf.random.experimental.index_shuffle(positions, [7, 1_000_003], 999)
    np.testing.assert_array_equal(first, expected.numpy())
    assert model.batch_indices(0, 50) is None  # batch larger than the data: every point


@pytest.mark.parametrize("metric", ["cosine", "squared_euclidean"])
@pytest.mark.parametrize("use_mini_batch", [False, True])
def test_uint8_pixels_train_as_their_float_features(mnist, metric, use_mini_batch):
    """uint8 rows are read as value / 255 inside the compiled passes, chunk by chunk (5,000 rows
    are several chunks): the same model as on ``data.features`` of them, k-means++ included."""
    pixels = mnist.x_train[:5000]
    settings = dict(distance_metric=metric, use_mini_batch=use_mini_batch, batch_size=512, seed=2)
    ours = KMeans(K, **settings).fit(pixels, 4)
    ref = KMeans(K, **settings).fit(data.features(pixels), 4)
    np.testing.assert_allclose(ours.cluster_centers_, ref.cluster_centers_, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(ours.labels_, ref.labels_)
    features = data.features(pixels[:300])
    np.testing.assert_array_equal(ours.predict(pixels[:300]), ref.predict(features))
    np.testing.assert_allclose(ours.transform(pixels[:300]), ref.transform(features), rtol=1e-5)


def test_chunks_are_twice_the_l2_cache_that_linux_reports(tmp_path, monkeypatch):
    """A whole-set pass's float32 chunk: twice the core's L2 as sysfs describes it, at least
    2 MiB; rows per chunk the largest power of two that fits, at least ``MIN_CHUNK_ROWS``."""
    from kmeans_exp.engine import passes

    for index, (level, size) in enumerate([("1", "48K"), ("2", "2048K"), ("3", "105M")]):
        folder = tmp_path / "cache" / f"index{index}"
        folder.mkdir(parents=True)
        (folder / "level").write_text(f"{level}\n")
        (folder / "size").write_text(f"{size}\n")
    assert passes.l2_cache_bytes(tmp_path) == 2 * 2**20
    assert passes.l2_cache_bytes(tmp_path / "nothing here") == 0
    for chunk_bytes, rows_784, rows_64 in [(2 * 2**20, 512, 8192), (4 * 2**20, 1024, 16384)]:
        monkeypatch.setattr(passes, "CHUNK_BYTES", chunk_bytes)
        assert (passes.chunk_rows(784), passes.chunk_rows(64)) == (rows_784, rows_64)
    assert passes.chunk_rows(100_000) == passes.MIN_CHUNK_ROWS


def test_aligned_arrays_are_shared_with_tensorflow_not_copied(mnist):
    """Loaded images are aligned, so training reads them in place: no copy of the data set."""
    from kmeans_exp.engine.passes import shared_tensor, tf

    assert mnist.x_train.ctypes.data % data.ALIGNMENT == 0
    pixels = data.aligned(np.zeros((100, 784), np.uint8))
    tensor = shared_tensor(pixels, tf.uint8)
    pixels[0, 0] = 9
    assert tensor.numpy()[0, 0] == 9  # one buffer
    readonly = pixels.copy()
    readonly.flags.writeable = False
    copied = shared_tensor(readonly, tf.uint8)
    pixels[0, 0] = 0
    assert copied.numpy()[0, 0] == 9 and tensor.numpy()[0, 0] == 0


def test_kmeans_plus_plus_picks_distinct_spread_points():
    rng = np.random.default_rng(0)
    blobs = np.concatenate([rng.normal(loc, 0.01, size=(50, 2)) for loc in (0, 10, 20, 30)])
    model = KMeans(4, distance_metric="squared_euclidean", init="kmeans_plus_plus", seed=0)
    centers = model.initialize(blobs.astype(np.float32)).cluster_centers_
    assert sorted(np.round(centers[:, 0] / 10).astype(int).tolist()) == [0, 1, 2, 3]


def test_predict_transform_inertia_agree(sample):
    x, init = sample
    model = KMeans(K, distance_metric="cosine").fit(x, 3, init)
    dist = model.transform(x[:500])
    ref = reference.distances(reference.normalize(x[:500]), model.cluster_centers_, "cosine")
    np.testing.assert_allclose(dist, ref, atol=2e-5)
    np.testing.assert_array_equal(model.predict(x[:500]), dist.argmin(1))
    assert model.inertia(x[:500]) == pytest.approx(dist.min(1).sum(), rel=1e-5)
    np.testing.assert_array_equal(model.labels_, model.predict(x))  # fit's final assignment
    assert model.inertia_ == pytest.approx(model.inertia(x), rel=1e-6)
    assert model.predict(x[:0]).shape == (0,) and model.inertia(x[:0]) == 0.0  # no rows


def test_save_restore_round_trip(sample, tmp_path):
    x, init = sample
    model = KMeans(K, use_mini_batch=True, batch_size=128, seed=5).fit(x, 3, init)
    restored = KMeans.restore(model.save(tmp_path / "model.npz"))
    np.testing.assert_array_equal(restored.cluster_centers_, model.cluster_centers_)
    np.testing.assert_array_equal(restored.cluster_counts_, model.cluster_counts_)
    np.testing.assert_array_equal(restored.predict(x[:100]), model.predict(x[:100]))
    assert (restored.batch_size, restored.seed, restored.distance_metric) == (128, 5, "cosine")


@pytest.mark.parametrize("mini_batch", [True, False], ids=["mini-batch", "full-batch"])
def test_restored_model_trains_further_as_if_never_stopped(sample, tmp_path, mini_batch):
    """fit(a), save, restore, fit(b, resume=True) gives fit(a + b): the same centres, counts and
    (mini-batch) the same batches, since the step number carries on."""
    x, init = sample
    settings = {"use_mini_batch": mini_batch, "batch_size": 128, "seed": 5}
    whole = KMeans(K, **settings).fit(x, 12, init)
    first = KMeans(K, **settings).fit(x, 5, init)
    restored = KMeans.restore(first.save(tmp_path / "half.npz"))
    restored.fit(x, 7, resume=True)
    np.testing.assert_array_equal(restored.cluster_centers_, whole.cluster_centers_)
    np.testing.assert_array_equal(restored.cluster_counts_, whole.cluster_counts_)
    assert [s.step for s in restored.history_] == list(range(6, 13))
    assert [s.avg_distance for s in restored.history_] == [
        s.avg_distance for s in whole.history_[5:]
    ]
    assert restored.steps_done_ == 12 and restored.inertia_ == whole.inertia_
    with pytest.raises(RuntimeError, match="no centres yet"):
        KMeans(K).fit(x, 2, resume=True)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"distance_metric": "manhattan"}, "distance_metric=manhattan: expected one of cosine"),
        ({"init": "kmc2"}, "init=kmc2: expected one of random, kmeans_plus_plus"),
        ({"batch_size": 0}, "batch_size=0: expected an integer >= 1, or null"),
        ({"n_clusters": 0}, "n_clusters=0: expected an integer >= 1"),
        ({"n_init": 0}, "n_init=0: expected an integer >= 1"),
        ({"seed": -1}, "seed=-1: expected an integer >= 0"),
    ],
)
def test_bad_arguments_are_refused(kwargs, message):
    with pytest.raises(ValueError, match=message):
        KMeans(**{"n_clusters": 3, **kwargs})


def test_more_clusters_than_rows_or_a_batch_larger_than_the_data_is_refused():
    x = np.eye(4, dtype=np.float32)
    with pytest.raises(ValueError, match="k=5: more clusters than the 4 training rows"):
        KMeans(5).fit(x, 1)
    with pytest.raises(ValueError, match="k=5: more clusters than the 4"):
        KMeans(5).initialize(x)
    with pytest.raises(ValueError, match="batch_size=8: larger than the 4 training rows"):
        KMeans(2, use_mini_batch=True, batch_size=8).fit(x, 1)
    with pytest.raises(ValueError, match="steps=0: expected an integer >= 1"):
        KMeans(2).fit(x, 0)


def _test_accuracy(model: KMeans, mnist) -> float:
    labels = evaluate.label_clusters(model.predict(mnist.x_train), mnist.y_train, 25, 10)
    return evaluate.accuracy(mnist.y_test, labels.predict(model.predict(mnist.x_test)))


@pytest.mark.slow
def test_tutorial_settings_reach_the_tutorial_accuracy(mnist):
    """k=25 cosine, random init, the whole training set as the batch, 50 steps, seed 0.

    Band: ``reference.TUTORIAL_BAND``, printed by ``python benchmarks/accuracy_bands.py``.
    """
    model = KMeans(25, init="random", use_mini_batch=True, batch_size=None, seed=0)
    model.fit(mnist.x_train, 50)
    low, high = reference.TUTORIAL_BAND
    assert low <= _test_accuracy(model, mnist) <= high
    assert 0.20 < model.history_[-1].avg_distance < model.history_[0].avg_distance < 0.40


@pytest.mark.slow
def test_kmeans_plus_plus_default_median_accuracy(mnist):
    """Default settings (15 full-batch steps), seeds 0-4, k=25 cosine.

    Floor: ``reference.DEFAULT_MEDIAN_FLOOR``, printed by ``python benchmarks/accuracy_bands.py``.
    """
    accs = [_test_accuracy(KMeans(25, seed=s).fit(mnist.x_train, 15), mnist) for s in range(5)]
    assert np.median(accs) >= reference.DEFAULT_MEDIAN_FLOOR, accs
