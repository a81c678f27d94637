"""The refinement stage (refine=dec, refine=idec): the clustering layer against NumPy by hand,
training that converges, determinism and the cache, bad input, and the served model."""

from __future__ import annotations

import os

import mlflow
import numpy as np
import pytest

import kmeans_exp
from kmeans_exp import data, evaluate
from kmeans_exp.errors import ConfigError
from kmeans_exp.features import cache, stage
from kmeans_exp.features.kinds import autoencoder
from kmeans_exp.options import FitOn, KernelInit, Optimizer, Precision
from kmeans_exp.refine import stage as refine_stage
from kmeans_exp.refine.kinds import dec, idec

# The trained codes are a module fixture: keep their tests on one worker, trained once.
CODES = pytest.mark.xdist_group("refine_codes")


@pytest.fixture()
def feature_cache(tmp_path, monkeypatch):
    monkeypatch.setenv(cache.ENV, str(tmp_path / "features"))
    return tmp_path / "features"


def test_student_t_assignment_and_target_match_a_computation_by_hand():
    from kmeans_exp.refine import student_t

    z = np.array([[0.0, 0.0], [1.0, 2.0], [3.0, -1.0]], np.float32)
    centres = np.array([[0.0, 1.0], [2.0, 0.0]], np.float32)
    # q_ij ∝ 1 / (1 + |z_i - mu_j|²) (alpha = 1), rows normalised.
    by_hand = np.array([[1 / 2, 1 / 5], [1 / 3, 1 / 6], [1 / 14, 1 / 3]])
    by_hand /= by_hand.sum(axis=1, keepdims=True)
    q = student_t.soft_assignment(z, centres).numpy()
    np.testing.assert_allclose(q, by_hand, rtol=1e-6)
    # p_ij ∝ q_ij² / f_j, f_j = sum_i q_ij; rows normalised.
    f = by_hand.sum(axis=0)
    target = by_hand**2 / f
    target /= target.sum(axis=1, keepdims=True)
    np.testing.assert_allclose(student_t.target_distribution(q).numpy(), target, rtol=1e-6)
    kl = np.mean(np.sum(target * np.log(target / by_hand), axis=1))
    assert float(student_t.kl_divergence(target, q)) == pytest.approx(kl, rel=1e-5)


@pytest.fixture(scope="module")
def codes(small):
    """A short autoencoder on 3,000 images, its codes, and a K-Means on them (cache off)."""
    config = autoencoder.Config(
        kind="autoencoder",
        fit_on=FitOn.train,
        seed=0,
        hidden=[256, 64],
        code_size=10,
        epochs=8,
        batch_size=128,
        learning_rate=1e-3,
        optimizer=Optimizer.adam,
        momentum=0.0,
        kernel_init=KernelInit.glorot_uniform,
        precision=Precision.float32,
    )
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(cache.ENV, "off")
        rep = stage.represent(config, small, 0)
    from kmeans_exp.engine import KMeans

    model = KMeans(10, distance_metric="squared_euclidean", seed=0, n_init=3)
    model.fit(rep.splits.x_train, 50)
    return small, config, rep, (model.cluster_centers_, model.labels_)


def idec_config(**changes) -> idec.Config:
    values = dict(batch_size=128, update_interval=50, tol=1e-4, max_iter=600, learning_rate=1e-3)
    values["shuffle"] = True
    return idec.Config(kind="idec", **{**values, "gamma": 0.1, **changes})


@pytest.mark.slow
@CODES
def test_idec_converges_and_is_deterministic_and_cached(codes, feature_cache, monkeypatch):
    small, config, rep, kmeans = codes
    fits = []
    real_fit = idec.fit
    monkeypatch.setattr(idec, "fit", lambda *a: fits.append(1) or real_fit(*a))
    first = refine_stage.refine(idec_config(), config, small, rep, *kmeans, 0)
    history = first.representation.history
    changes, kl = history["refine_label_change"], history["refine_kl"]
    assert len(changes) == len(kl) == 12  # 600 batches, an update every 50
    assert changes[-1] < changes[0] / 2 and kl[-1] < kl[0]  # fewer changes, sharper q
    assert first.representation.cache == "miss"
    # The refined clusters score the refined codes: nearest centre = argmax q.
    from kmeans_exp.refine import student_t

    q = student_t.soft_assignment(
        first.representation.splits.x_test, first.clusters.cluster_centers_
    )
    np.testing.assert_array_equal(
        first.clusters.predict(first.representation.splits.x_test), np.argmax(q, axis=1)
    )

    again = refine_stage.refine(idec_config(), config, small, rep, *kmeans, 0)
    assert (again.representation.cache, len(fits)) == ("hit", 1)
    monkeypatch.setenv(cache.ENV, "off")  # from scratch: the same result for the same seed
    fresh = refine_stage.refine(idec_config(), config, small, rep, *kmeans, 0)
    np.testing.assert_array_equal(fresh.clusters.cluster_centers_, first.clusters.cluster_centers_)
    np.testing.assert_array_equal(
        fresh.representation.splits.x_test, first.representation.splits.x_test
    )
    assert len(fits) == 2


@pytest.mark.slow
@CODES
def test_dec_stops_once_few_points_change_cluster(codes, feature_cache):
    small, config, rep, kmeans = codes
    centres = kmeans[0]
    settings = dict(batch_size=128, update_interval=50, max_iter=3000, learning_rate=0.01)
    settings |= dict(tol=0.01, momentum=0.9, shuffle=True)
    result = refine_stage.refine(dec.Config(kind="dec", **settings), config, small, rep, *kmeans, 0)
    changes = result.representation.history["refine_label_change"]
    assert changes[-1] < 0.01 <= min(changes[:-1], default=1.0)  # stopped at the first below tol
    assert len(changes) < 60  # before max_iter
    before = evaluate.matched_accuracy(
        small.y_test, np.argmin(((rep.splits.x_test[:, None] - centres[None]) ** 2).sum(-1), axis=1)
    )
    after = evaluate.matched_accuracy(
        small.y_test, result.clusters.predict(result.representation.splits.x_test)
    )
    assert after > before - 0.05  # it refines; it does not wreck the K-Means it started from


@pytest.mark.parametrize(
    "overrides, message",
    [
        (["features=umap", "refine=dec"], "refine=dec with features=umap: it trains the encoder"),
        (["features=n2d", "refine=idec"], "refine=idec with features=n2d: it trains the encoder"),
        (["refine=dec"], "refine=dec with features=raw"),
        (
            ["features=autoencoder", "refine=idec", "distance_metric=cosine"],
            "refine=idec with distance_metric=cosine",
        ),
        (
            ["features=autoencoder", "refine=idec", "refine.gamma=-0.1"],
            "refine.gamma=-0.1: expected a number >= 0",
        ),
        (
            ["features=autoencoder", "refine=dec", "refine.tol=0"],
            r"refine.tol=0.0: expected a number in \(0, 1\)",
        ),
        (
            ["features=autoencoder", "refine=dec", "refine.tol=1.5"],
            r"refine.tol=1.5: expected a number in \(0, 1\)",
        ),
        (
            ["features=autoencoder", "refine=dec", "refine.update_interval=0"],
            "refine.update_interval=0: expected an integer >= 1",
        ),
        (
            ["features=autoencoder", "refine=dec", "refine.gamma=0.1"],
            "Could not override 'refine.gamma'",
        ),
        (
            ["features=autoencoder", "refine=dec", "k=60000"],
            "k=60000: more clusters than the 55000",
        ),
    ],
    ids=["umap", "n2d", "raw", "cosine", "gamma", "tol-0", "tol-1.5", "interval", "dec-gamma", "k"],
)
def test_bad_refine_settings_are_refused_in_one_line_before_any_run(tmp_path, overrides, message):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    base = ["distance_metric=squared_euclidean"]
    with pytest.raises(ConfigError, match=message) as error:
        config = kmeans_exp.compose([*base, *overrides])
        kmeans_exp.run_experiment(config, tracking={"uri": uri})
    assert "\n" not in str(error.value)
    assert not (tmp_path / "mlflow.db").exists()


@pytest.mark.slow
def test_a_refined_run_logs_before_and_after_and_serves_its_predictions(tmp_path, feature_cache):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    overrides = [
        "features=autoencoder",
        "features.hidden=[128]",
        "features.epochs=2",
        "refine=idec",
        "refine.max_iter=300",
        "refine.update_interval=100",
        "k=10",
        "distance_metric=squared_euclidean",
        "steps=20",
    ]
    result = kmeans_exp.run_experiment(kmeans_exp.compose(overrides), tracking={"uri": uri})
    client = mlflow.MlflowClient(uri)
    run = client.get_run(result.run_id)
    metrics, params = run.data.metrics, run.data.params
    assert params["refine.kind"] == "idec" and params["features.fit_seed"] == "0"
    assert run.data.tags["kmeans_exp.refine.cache"] == "miss"
    for name in ("matched_accuracy", "nmi", "ari"):
        assert 0.2 < metrics[f"kmeans_test_{name}"] <= 1.0
    assert 0.3 < metrics["test_matched_accuracy"] <= 1.0
    assert metrics["test_matched_accuracy"] != metrics["kmeans_test_matched_accuracy"]
    changes = client.get_metric_history(result.run_id, "refine_label_change")
    assert [m.step for m in changes] == [1, 2, 3]
    assert result.model.distance_metric == "squared_euclidean"

    served = mlflow.pyfunc.load_model(run.data.tags["model_uri"])
    pixels = data.features(data.load_splits("bundled", None, "mnist", None, 5000).x_test)
    refined = result.features.splits
    in_process = result.evaluation.clusters.predict(result.model.predict(refined.x_test))
    np.testing.assert_array_equal(served.predict(pixels), in_process)
    assert float(np.mean(in_process == refined.y_test)) == metrics["test_accuracy"]
    mlflow.set_tracking_uri(os.environ["MLFLOW_TRACKING_URI"])


def test_the_representations_preset_names_each_pipeline_by_its_features_and_refine():
    expected = {
        "raw": ("raw", "none"),
        "pca": ("pca", "none"),
        "umap": ("umap", "none"),
        "autoencoder": ("autoencoder", "none"),
        "autoencoder_dec": ("autoencoder", "dec"),
        "autoencoder_idec": ("autoencoder", "idec"),
        "n2d": ("n2d", "none"),
    }
    for pipeline, kinds in expected.items():
        config = kmeans_exp.compose(["experiments=representations", f"pipeline={pipeline}"])
        assert (config.features.kind, config.refine.kind) == kinds
        assert (config.n_init, config.k, getattr(config.features, "seed", None)) == (10, 10, None)
    assert config.refine.kind == "none"
    refined = kmeans_exp.compose(["experiments=representations", "pipeline=autoencoder_idec"])
    assert (refined.refine.max_iter, refined.refine.gamma) == (2800, 0.1)


@pytest.mark.slow
@CODES
def test_batches_in_order_do_not_depend_on_the_seed_and_shuffled_ones_do(codes, monkeypatch):
    small, config, rep, kmeans = codes
    monkeypatch.setenv(cache.ENV, "off")
    centres = {}
    for shuffle in (False, True):
        for seed in (0, 1):
            settings = idec_config(max_iter=200, update_interval=100, shuffle=shuffle)
            result = refine_stage.refine(settings, config, small, rep, *kmeans, seed)
            centres[shuffle, seed] = result.clusters.cluster_centers_
    np.testing.assert_array_equal(centres[False, 0], centres[False, 1])  # DEC-keras's order
    assert np.abs(centres[True, 0] - centres[True, 1]).max() > 1e-4
