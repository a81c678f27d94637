"""The representation stage: each kind against a reference, the cache, bad input, the served
model from pixels, and end-to-end runs read back through MlflowClient."""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

import mlflow
import numpy as np
import pytest

import kmeans_exp
from kmeans_exp import cache_dirs, data, evaluate
from kmeans_exp.errors import ConfigError, DataError
from kmeans_exp.features import cache, served_steps, stage
from kmeans_exp.features.kinds import autoencoder, pca, umap
from kmeans_exp.options import FitOn, KernelInit, Optimizer, Precision


@pytest.fixture()
def feature_cache(tmp_path, monkeypatch):
    monkeypatch.setenv(cache.ENV, str(tmp_path / "features"))
    return tmp_path / "features"


def represent(config, splits, seed: int = 0):
    return stage.represent(config, splits, seed)


def pca_config(**overrides) -> pca.Config:
    values = {"fit_on": FitOn.train, "seed": 0, "n_components": 20, "whiten": False}
    return pca.Config(kind="pca", **{**values, **overrides})


def tiny_autoencoder(**overrides) -> autoencoder.Config:
    values = {
        "fit_on": FitOn.train,
        "seed": 0,
        "hidden": [64],
        "code_size": 6,
        "epochs": 4,
        "batch_size": 128,
        "learning_rate": 1e-3,
        "optimizer": Optimizer.adam,
        "momentum": 0.0,
        "kernel_init": KernelInit.glorot_uniform,
        "precision": Precision.float32,
    }
    return autoencoder.Config(kind="autoencoder", **{**values, **overrides})


@pytest.mark.parametrize("whiten", [False, True])
def test_pca_matches_scikit_learn_on_the_same_rows(small, feature_cache, whiten):
    from sklearn.decomposition import PCA

    rep = represent(pca_config(whiten=whiten), small)
    x = data.features(small.x_train)
    reference = PCA(n_components=20, whiten=whiten, random_state=0).fit(x)
    for ours, rows in ((rep.splits.x_train, x), (rep.splits.x_test, data.features(small.x_test))):
        np.testing.assert_allclose(ours, reference.transform(rows), rtol=1e-3, atol=2e-4)
    assert rep.splits.x_test.shape == (1000, 20) and rep.cache == "miss"
    assert rep.splits.y_test is small.y_test  # labels pass through untouched


def test_fit_on_all_fits_on_every_split(small, feature_cache):
    from sklearn.decomposition import PCA

    rep = represent(pca_config(fit_on=FitOn.all), small)
    every = np.concatenate([data.features(x) for x in (small.x_train, small.x_val, small.x_test)])
    reference = PCA(n_components=20, random_state=0).fit(every)
    np.testing.assert_allclose(
        rep.splits.x_val, reference.transform(data.features(small.x_val)), rtol=1e-3, atol=2e-4
    )


def test_a_cache_hit_does_not_refit_and_a_truncated_entry_is_refitted(
    small, feature_cache, monkeypatch
):
    fits = []
    real_fit = pca.fit
    monkeypatch.setattr(pca, "fit", lambda *a: fits.append(1) or real_fit(*a))
    first = represent(pca_config(), small)
    again = represent(pca_config(), small)
    assert (first.cache, again.cache, len(fits)) == ("miss", "hit", 1)
    np.testing.assert_array_equal(first.splits.x_test, again.splits.x_test)

    (entry,) = [p for p in feature_cache.iterdir() if not p.name.startswith(".")]
    # A hit reports the fit's cost as the entry's manifest stores it, not a new measurement.
    stored = json.loads((entry / cache.MANIFEST).read_text())["fit_seconds"]
    assert again.fit_seconds == stored
    splits_file = entry / cache.SPLITS_FILE
    splits_file.write_bytes(splits_file.read_bytes()[:1000])  # a half-written file
    refitted = represent(pca_config(), small)
    assert (refitted.cache, len(fits)) == ("miss", 2)
    np.testing.assert_array_equal(refitted.splits.x_test, first.splits.x_test)
    assert represent(pca_config(n_components=5), small).cache == "miss"  # a new key


def test_the_cache_can_be_turned_off(small, monkeypatch):
    monkeypatch.setenv(cache.ENV, "off")
    assert represent(pca_config(), small).cache == "off"


def test_a_small_autoencoder_learns_and_is_deterministic(small, feature_cache, monkeypatch):
    first = represent(tiny_autoencoder(), small)
    losses = first.history["autoencoder_loss"]
    assert len(losses) == 4 and losses[-1] < 0.8 * losses[0]
    assert first.splits.x_train.shape == (3000, 6) and first.splits.x_test.shape == (1000, 6)
    monkeypatch.setenv(cache.ENV, "off")  # fit it again, from scratch
    second = represent(tiny_autoencoder(), small)
    np.testing.assert_array_equal(first.splits.x_test, second.splits.x_test)
    assert second.history == first.history


@pytest.mark.slow
@pytest.mark.skipif(
    not autoencoder.native_bfloat16(),
    reason="this CPU has no native bfloat16 (AVX512_BF16 or AMX): bfloat16 would be emulated",
)
def test_bfloat16_training_learns_and_clusters_as_float32_does(small, feature_cache, monkeypatch):
    from kmeans_exp.engine import KMeans

    scores, reps = {}, {}
    for precision in Precision:
        rep = reps[precision] = represent(tiny_autoencoder(precision=precision, epochs=6), small)
        losses = rep.history["autoencoder_loss"]
        assert losses[-1] < 0.8 * losses[0], precision
        model = KMeans(10, distance_metric="squared_euclidean", seed=0, n_init=5)
        model.fit(rep.splits.x_train, 50)
        test = model.predict(rep.splits.x_test)
        scores[precision] = evaluate.matched_accuracy(small.y_test, test)
    assert scores[Precision.bfloat16] == pytest.approx(scores[Precision.float32], abs=0.02)
    assert scores[Precision.float32] > 0.4  # codes that cluster (chance is 0.1)
    monkeypatch.setenv(cache.ENV, "off")  # trained again: the same seed, the same codes
    again = represent(tiny_autoencoder(precision=Precision.bfloat16, epochs=6), small)
    np.testing.assert_array_equal(again.splits.x_test, reps[Precision.bfloat16].splits.x_test)


def test_steps_round_trip_through_their_files(small, feature_cache, tmp_path):
    rep = represent(tiny_autoencoder(epochs=1), small)
    served_steps.save(rep.steps, tmp_path / "steps")
    loaded = served_steps.load(tmp_path / "steps")
    rows = data.features(small.x_test)
    np.testing.assert_array_equal(
        served_steps.transform(loaded, rows), served_steps.transform(rep.steps, rows)
    )
    assert served_steps.transform(loaded, rows[:0]).shape == (0, 6)


@pytest.mark.slow
def test_umap_gives_the_configured_shape_and_is_deterministic(small, feature_cache, monkeypatch):
    pytest.importorskip("umap", reason="pip install -e '.[umap]'")
    config = umap.Config(
        kind="umap",
        fit_on=FitOn.train,
        seed=0,
        n_components=3,
        n_neighbors=10,
        min_dist=0.0,
        metric="euclidean",
    )
    small = dataclasses.replace(small, x_train=small.x_train[:1000], x_test=small.x_test[:300])
    first = represent(config, small)
    assert first.splits.x_train.shape == (1000, 3) and first.splits.x_test.shape == (300, 3)
    monkeypatch.setenv(cache.ENV, "off")
    second = represent(config, small)
    np.testing.assert_array_equal(first.splits.x_test, second.splits.x_test)
    np.testing.assert_array_equal(first.splits.x_train, second.splits.x_train)
    # umap-learn's compiled code is kept for the next process, in the (temporary) user cache.
    # (Below 4,096 rows UMAP finds neighbours exactly: pynndescent is not compiled here.)
    import numba

    folder = Path(numba.config.CACHE_DIR)
    assert folder == cache_dirs.folder(umap.NUMBA_CACHE, "numba")
    assert {p.name.split("-")[0] for p in folder.glob("umap_*/*.nbi")} >= {
        "umap_.compute_membership_strengths",
        "layouts._optimize_layout_euclidean_single_epoch",
    }


def test_umap_compiles_as_before_where_its_cache_folder_cannot_be_made(tmp_path, monkeypatch):
    pytest.importorskip("umap", reason="pip install -e '.[umap]'")
    import numba

    (tmp_path / "a_file").write_text("")
    monkeypatch.setenv(umap.NUMBA_CACHE, str(tmp_path / "a_file" / "numba"))
    monkeypatch.setattr(numba.config, "CACHE_DIR", "")
    umap._keep_compiled_code.__wrapped__()
    assert numba.config.CACHE_DIR == ""


def test_umap_without_umap_learn_fails_in_one_line_before_any_run(monkeypatch):
    monkeypatch.setattr(umap, "NEEDS", "umap_is_not_installed")
    with pytest.raises(ConfigError) as error:
        kmeans_exp.run_experiment(kmeans_exp.compose(["features=umap"]))
    assert str(error.value) == (
        "features=umap: needs umap_is_not_installed, which is not installed "
        "(pip install -e '.[umap]')"
    )


def embeddings_file(path, **changes):
    rng = np.random.default_rng(0)
    arrays = {
        "x_train": rng.normal(size=(600, 8)).astype(np.float32),
        "y_train": rng.integers(0, 3, 600),
        "x_test": rng.normal(size=(100, 8)).astype(np.float32),
        "y_test": rng.integers(0, 3, 100),
    }
    np.savez(path, **{**arrays, **changes})
    return path


@pytest.mark.parametrize(
    "changes, message",
    [
        (
            {"x_test": np.zeros((100, 9), np.float32)},
            "x_train rows have 8 columns but x_test rows 9",
        ),
        ({"x_train": np.full((600, 8), np.nan)}, "x_train holds non-finite values (NaN or inf)"),
        ({"y_train": np.zeros(599, int)}, "600 train images but 599 train labels"),
        ({"x_train": np.zeros((600, 2, 4))}, "x_train has shape (600, 2, 4)"),
    ],
    ids=["widths", "nan", "label-count", "not-rows"],
)
def test_bad_embedding_files_are_refused_in_one_line(tmp_path, changes, message):
    path = embeddings_file(tmp_path / "emb.npz", **changes)
    with pytest.raises(DataError, match=message.replace("(", r"\(").replace(")", r"\)")):
        data.read_embeddings(path)


def test_precomputed_embeddings_are_clustered_with_their_own_labels(tmp_path):
    path = embeddings_file(tmp_path / "emb.npz")
    config = kmeans_exp.compose(
        ["features=precomputed", f"features.path={path}", "data.validation_size=100", "k=3"]
    )
    result = kmeans_exp.run_experiment(config, steps=3, tracking={"enabled": False})
    assert result.features.splits.x_train.shape == (500, 8)
    assert result.model.cluster_centers_.shape == (3, 8)
    assert 0.2 < result.metrics["test_accuracy"] < 0.6  # three random labels: chance is ~1/3


@pytest.mark.parametrize(
    "overrides, message",
    [
        (["features=pca", "features.n_components=785"], "more components than the 784 input"),
        (["features=pca", "features.n_components=0"], "features.n_components=0: expected an"),
        (["features=autoencoder", "features.epochs=0"], "features.epochs=0: expected an integer"),
        (["features=n2d", "features.umap.n_components=11"], "more components than the 10 code"),
    ],
)
def test_bad_feature_settings_are_refused_before_any_run(tmp_path, overrides, message):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    with pytest.raises(ConfigError, match=message):
        kmeans_exp.run_experiment(kmeans_exp.compose(overrides), tracking={"uri": uri})
    assert not (tmp_path / "mlflow.db").exists()


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["pca", "autoencoder"])
def test_the_served_model_takes_pixels_and_predicts_as_the_run(tmp_path, feature_cache, kind):
    overrides = {
        "pca": ["features=pca", "features.n_components=30"],
        "autoencoder": ["features=autoencoder", "features.hidden=[64]", "features.epochs=1"],
    }[kind]
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    config = kmeans_exp.compose([*overrides, "k=10", "steps=3"])
    result = kmeans_exp.run_experiment(config, tracking={"uri": uri})
    run = mlflow.MlflowClient(uri).get_run(result.run_id)
    served = mlflow.pyfunc.load_model(run.data.tags["model_uri"])
    mnist = result.features.splits
    pixels = data.features(data.load_splits("bundled", None, "mnist", None, 5000).x_test)
    in_process = result.evaluation.clusters.predict(result.model.predict(mnist.x_test))
    np.testing.assert_array_equal(served.predict(pixels), in_process)
    assert float(np.mean(in_process == mnist.y_test)) == result.metrics["test_accuracy"]
    mlflow.set_tracking_uri(os.environ["MLFLOW_TRACKING_URI"])


@pytest.fixture(scope="module")
def small_idx(mnist_raw, tmp_path_factory):
    """A 3,000 + 1,000 image IDX set cut from MNIST, for end-to-end runs that fit in seconds."""
    directory = tmp_path_factory.mktemp("small_idx")
    cut = dataclasses.replace(
        mnist_raw,
        train_images=mnist_raw.train_images[:3000],
        train_labels=mnist_raw.train_labels[:3000],
        test_images=mnist_raw.test_images[:1000],
        test_labels=mnist_raw.test_labels[:1000],
    )
    for name, array in data.idx_members(cut).items():
        (directory / name).write_bytes(data.idx_bytes(array))
    return directory


def cli_runs(args: list[str], cwd, small_idx) -> tuple:
    """A CLI run (or sweep) on the small IDX set, with its own feature cache: the client, the
    runs that are no sweep parent, and the cache entries' test-split widths."""
    from conftest import client_for, run_cli

    base = ["data.source=idx", f"data.path={small_idx}", "data.dataset=mnist3k"]
    base += ["data.validation_size=500", "k=10", "steps=5", "tracking.log_model=false"]
    result = run_cli([*args, *base], cwd, env={cache.ENV: str(cwd / "features")})
    assert result.returncode == 0, result.stderr[-3000:]
    client = client_for(cwd)
    runs = client.search_runs([client.get_experiment_by_name("kmeans_exp").experiment_id])
    jobs = [r for r in runs if r.data.tags.get("kmeans_exp.sweep") != "parent"]
    widths = []
    for entry in (cwd / "features").iterdir():
        with np.load(entry / cache.SPLITS_FILE) as f:
            assert f["x_test"].shape[0] == 1000
            widths.append(f["x_test"].shape[1])
    return client, jobs, sorted(widths)


def check_logged(client, run, kind: str) -> None:
    """A features run's params, tag, timing, scores and figures, as MlflowClient reads them."""
    params, metrics = run.data.params, run.data.metrics
    assert params["features.kind"] == kind and params["features.fit_on"] == "train"
    assert run.data.tags["kmeans_exp.features.cache"] == "miss"
    assert 0.25 < metrics["test_matched_accuracy"] <= 1.0 and 0.2 < metrics["test_nmi"] <= 1.0
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"embedding.png", "centroids.png", "confusion_matrix.png"} <= artifacts


@pytest.mark.slow
def test_a_sweep_over_pca_and_umap_logs_each_representation(tmp_path, small_idx):
    pytest.importorskip("umap", reason="pip install -e '.[umap]'")
    client, jobs, widths = cli_runs(["-m", "features=pca,umap"], tmp_path, small_idx)
    by_kind = {r.data.params["features.kind"]: r for r in jobs}
    assert sorted(by_kind) == ["pca", "umap"]
    for kind, run in by_kind.items():
        check_logged(client, run, kind)
    assert by_kind["umap"].data.metrics["test_nmi"] > by_kind["pca"].data.metrics["test_nmi"]
    assert widths == [10, 50]  # each representation cached once, at its configured width


@pytest.mark.slow
def test_a_short_n2d_run_trains_its_autoencoder_then_umap(tmp_path, small_idx):
    pytest.importorskip("umap", reason="pip install -e '.[umap]'")
    args = ["features=n2d", "features.hidden=[128]", "features.epochs=5"]
    client, (run,), widths = cli_runs([*args, "features.umap.n_components=4"], tmp_path, small_idx)
    check_logged(client, run, "n2d")
    losses = client.get_metric_history(run.info.run_id, "autoencoder_loss")
    assert [m.step for m in losses] == [1, 2, 3, 4, 5] and losses[-1].value < losses[0].value
    assert widths == [4, 10]  # the autoencoder's codes are cached on their own, for reuse


def test_the_fit_seed_follows_the_run_unless_set_and_keys_the_cache(small, feature_cache):
    follows = pca_config(seed=None, n_components=5)
    first = represent(follows, small, seed=0)
    other = represent(follows, small, seed=1)
    assert (first.cache, other.cache) == ("miss", "miss") and first.key != other.key
    fixed = represent(pca_config(seed=1, n_components=5), small, seed=0)  # features.seed wins
    assert (fixed.cache, fixed.key) == ("hit", other.key)
    assert len([p for p in feature_cache.iterdir() if not p.name.startswith(".")]) == 2
    assert stage.fit_seed(follows, 7) == 7 and stage.fit_seed(pca_config(seed=3), 7) == 3


@pytest.mark.slow
def test_a_seed_sweep_refits_the_autoencoder_per_seed_and_a_repeat_hits_both(tmp_path, small_idx):
    args = ["-m", "features=autoencoder", "features.hidden=[32]", "features.epochs=1", "seed=0,1"]
    _, jobs, widths = cli_runs(args, tmp_path, small_idx)
    assert widths == [10, 10]  # two entries: one per seed
    assert sorted(r.data.params["features.fit_seed"] for r in jobs) == ["0", "1"]
    assert {r.data.tags["kmeans_exp.features.cache"] for r in jobs} == {"miss"}
    codes = {r.data.params["seed"]: r.data.metrics["test_nmi"] for r in jobs}
    assert codes["0"] != codes["1"]
    _, jobs, widths = cli_runs(args, tmp_path, small_idx)
    repeat = [r for r in jobs if r.data.tags["kmeans_exp.features.cache"] == "hit"]
    assert len(repeat) == 2 and widths == [10, 10]
