"""The published pipelines' parts: refine=gmm, protocol=transductive, training that continues,
the recipes' keys, run names, and a served model that refuses bad rows."""

from __future__ import annotations

import os

import mlflow
import numpy as np
import pytest

import kmeans_exp
from kmeans_exp import config as config_module
from kmeans_exp import data, evaluate
from kmeans_exp.errors import ConfigError
from kmeans_exp.features import cache, stage
from kmeans_exp.features.kinds import autoencoder
from kmeans_exp.options import FitOn, KernelInit, Optimizer, Precision
from kmeans_exp.tracking.pyfunc_model import check_rows


@pytest.fixture()
def feature_cache(tmp_path, monkeypatch):
    monkeypatch.setenv(cache.ENV, str(tmp_path / "features"))
    return tmp_path / "features"


def elongated_mixture(tmp_path):
    """scikit-learn's anisotropic blobs (its "k-means assumptions" example): three Gaussians
    sheared into long ellipses, where K-Means cuts across them; as an .npz of embeddings."""
    from sklearn.datasets import make_blobs

    x, y = make_blobs(n_samples=4000, centers=3, random_state=170)
    x = (x @ np.array([[0.60834549, -0.63667341], [-0.40887718, 0.85253229]])).astype(np.float32)
    path = tmp_path / "elongated.npz"
    np.savez(path, x_train=x[:3000], y_train=y[:3000], x_test=x[3000:], y_test=y[3000:])
    return path


@pytest.mark.slow
def test_gmm_started_from_the_kmeans_recovers_elongated_clusters_and_serves_them(
    tmp_path, feature_cache
):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    overrides = [
        "features=precomputed",
        f"features.path={elongated_mixture(tmp_path)}",
        "data.validation_size=500",
        "k=3",
        "distance_metric=squared_euclidean",
        "steps=50",
        "n_init=5",
        "refine=gmm",
    ]
    result = kmeans_exp.run_experiment(kmeans_exp.compose(overrides), tracking={"uri": uri})
    run = mlflow.MlflowClient(uri).get_run(result.run_id)
    metrics = run.data.metrics
    assert metrics["kmeans_test_matched_accuracy"] < 0.95  # K-Means cuts across the ellipses
    assert metrics["test_matched_accuracy"] >= 0.99  # the mixture finds them
    assert metrics["gmm_converged"] == 1.0 and 1 <= metrics["gmm_iterations"] <= 100
    assert metrics["gmm_test_log_likelihood"] < metrics["gmm_train_log_likelihood"] + 0.5
    assert np.isfinite(metrics["gmm_bic"])
    assert run.info.run_name == "precomputed+gmm k=3 squared_euclidean full-batch"

    # The same mixture, fitted by hand from the same start, predicts the same clusters.
    from sklearn.mixture import GaussianMixture

    splits = result.features.splits
    served = mlflow.pyfunc.load_model(run.data.tags["model_uri"])
    in_process = result.evaluation.clusters.predict(result.model.predict(splits.x_test))
    np.testing.assert_array_equal(served.predict(splits.x_test), in_process)
    reference = GaussianMixture(3, covariance_type="full", random_state=0)
    reference.fit(splits.x_train)
    agree = evaluate.matched_accuracy(reference.predict(splits.x_test), in_process)
    assert agree >= 0.99
    # An embedding model takes values outside [0, 1]; NaN it refuses.
    assert served.predict(splits.x_test[:5] * 100).shape == (5,)
    with pytest.raises(Exception, match="row 0 holds NaN or inf"):
        served.predict(np.full((1, 2), np.nan, np.float32))
    mlflow.set_tracking_uri(os.environ["MLFLOW_TRACKING_URI"])


def test_transductive_fits_and_scores_every_row(small, tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    config = kmeans_exp.compose(["protocol=transductive", "k=10", "steps=10"])
    assert config.optimized_metric.value == "silhouette"
    result = kmeans_exp.run_experiment(
        config,
        tracking={"uri": uri, "log_model": False},
        data={"validation_size": 5000},
    )
    run = mlflow.MlflowClient(uri).get_run(result.run_id)
    metrics = run.data.metrics
    splits = data.load_splits("bundled", None, "mnist", None, 5000)
    y = np.concatenate([splits.y_train, splits.y_val, splits.y_test])
    assert len(result.model.labels_) == len(y) == 70000  # train + validation + test fitted
    by_hand = evaluate.partition_scores(y, result.model.labels_)
    for name in ("matched_accuracy", "nmi", "ari"):
        assert metrics[f"all_{name}"] == pytest.approx(by_hand[name], abs=1e-12)
    assert 0.4 < metrics["all_matched_accuracy"] < 0.7
    assert not [m for m in metrics if m.startswith(("test_", "val_", "train_acc"))]
    assert run.data.tags["kmeans_exp.protocol"] == "transductive"
    assert run.info.run_name == "k=10 cosine full-batch transductive"
    mlflow.set_tracking_uri(os.environ["MLFLOW_TRACKING_URI"])


def test_a_held_out_run_keeps_its_config_hash_and_sweep_score():
    import hashlib
    import json

    config = kmeans_exp.compose([])
    assert (config.protocol.value, config.optimized_metric.value) == ("held_out", "val_accuracy")
    values = config_module.as_dict(config)
    for key in ("tracking", "optimized_metric", "features", "refine", "protocol"):
        values.pop(key)  # as before there was a protocol
    for key in ("distributed", "init_rounds", "init_oversampling"):
        values.pop(key)  # as before one fit could run on workers, or start with k-means||
    values["data"].pop("test_path")  # as before there were shards
    text = json.dumps(values, sort_keys=True, separators=(",", ":"))
    assert config_module.config_hash(config) == hashlib.sha256(text.encode()).hexdigest()
    # the default run's hash, as every earlier version computed it
    assert config_module.config_hash(config).startswith("84f967ec0e7d2b23")
    transductive = kmeans_exp.compose(["protocol=transductive"])
    assert config_module.config_hash(transductive) != config_module.config_hash(config)


def tiny(epochs: int, **changes) -> autoencoder.Config:
    values = dict(
        fit_on=FitOn.train,
        seed=0,
        hidden=[64],
        code_size=6,
        epochs=epochs,
        batch_size=128,
        learning_rate=1.0,
        optimizer=Optimizer.sgd,
        momentum=0.9,
        kernel_init=KernelInit.variance_scaling,
        precision=Precision.float32,
    )
    return autoencoder.Config(kind="autoencoder", **{**values, **changes})


def test_a_longer_training_continues_a_cached_shorter_one(small, feature_cache, monkeypatch):
    one = stage.represent(tiny(1), small, 0)
    two = stage.represent(tiny(2), small, 0)  # continues the 1-epoch training
    four = stage.represent(tiny(4), small, 0)  # continues the 2-epoch training
    assert (one.epochs_trained, two.epochs_trained, four.epochs_trained) == (1, 1, 2)
    assert (two.epochs_cached, four.epochs_cached) == (1, 2)
    again = stage.represent(tiny(4), small, 0)
    assert (again.cache, again.epochs_trained, again.epochs_cached) == ("hit", 0, 4)
    assert stage.represent(tiny(3), small, 0).epochs_trained == 1  # from 2, not from 4

    monkeypatch.setenv(cache.ENV, "off")  # a straight 4-epoch training
    straight = stage.represent(tiny(4), small, 0)
    assert straight.epochs_trained == 4
    np.testing.assert_array_equal(four.splits.x_test, straight.splits.x_test)
    assert four.history == straight.history
    for a, b in zip(four.steps[0].weights, straight.steps[0].weights, strict=True):
        np.testing.assert_array_equal(a, b)
    # Another recipe, data set or seed starts over.
    monkeypatch.setenv(cache.ENV, str(feature_cache))
    assert stage.represent(tiny(4, seed=1), small, 0).epochs_trained == 4
    adam = dict(optimizer=Optimizer.adam, momentum=0.0, learning_rate=1e-3)
    assert stage.represent(tiny(2, **adam), small, 0).epochs_trained == 2


def test_dec_keras_kernels_start_as_variance_scaling_of_a_third():
    import keras

    from kmeans_exp.tf_runtime import tf  # noqa: F401  (TensorFlow quietly)

    init = autoencoder._kernel_init(KernelInit.variance_scaling)
    keras.utils.set_random_seed(0)
    values = np.asarray(init((784, 500)))
    limit = np.sqrt(3 * (1 / 3) / 784)  # uniform(-limit, limit), variance scale / fan_in
    assert np.abs(values).max() <= limit and np.abs(values).max() > 0.99 * limit
    assert np.var(values) == pytest.approx((1 / 3) / 784, rel=0.02)


EUCLIDEAN = "distance_metric=squared_euclidean"


@pytest.mark.parametrize(
    "overrides, message",
    [
        (["refine=gmm", "refine.covariance_type=round", EUCLIDEAN], "refine.covariance_type"),
        (["refine=gmm", "refine.reg_covar=-1", EUCLIDEAN], r"refine.reg_covar=-1.0: expected"),
        (
            ["refine=gmm", "distance_metric=cosine"],
            "refine=gmm with distance_metric=cosine: it starts from Euclidean",
        ),
        (["protocol=sideways"], "protocol"),
        (
            ["protocol=transductive", "features=pca", "features.fit_on=train"],
            "features.fit_on=train with protocol=transductive",
        ),
        (
            ["protocol=transductive", "optimized_metric=val_accuracy"],
            "optimized_metric=val_accuracy with protocol=transductive",
        ),
        (
            ["features=autoencoder", "features.optimizer=sgd", "features.momentum=1.5"],
            r"features.momentum=1.5: expected a momentum in \[0, 1\)",
        ),
        (
            ["features=autoencoder", "features.momentum=0.9"],
            "features.momentum=0.9: only SGD takes a momentum",
        ),
        (
            ["features=autoencoder", "refine=dec", EUCLIDEAN, "refine.momentum=1"],
            r"refine.momentum=1.0: expected a momentum in \[0, 1\)",
        ),
    ],
    ids=[
        "covariance",
        "reg_covar",
        "gmm-cosine",
        "protocol",
        "fit_on",
        "optimized",
        "momentum",
        "adam-momentum",
        "refine-momentum",
    ],
)
def test_bad_published_settings_are_refused_in_one_line_before_any_run(
    tmp_path, overrides, message
):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    with pytest.raises(ConfigError, match=message) as error:
        config = kmeans_exp.compose(overrides)
        kmeans_exp.run_experiment(config, tracking={"uri": uri})
    assert "\n" not in str(error.value)
    assert not (tmp_path / "mlflow.db").exists()


def test_the_published_preset_carries_each_papers_recipe():
    def compose(pipeline: str, *more: str):
        return kmeans_exp.compose(
            ["experiments=representations_published", f"pipeline={pipeline}", *more]
        )

    ae = compose("published_autoencoder")
    assert (ae.protocol.value, ae.n_init, ae.k, ae.features.fit_on) == (
        "transductive",
        20,
        10,
        FitOn.all,
    )
    f = ae.features
    assert (f.epochs, f.optimizer, f.learning_rate, f.momentum, f.kernel_init) == (
        300,
        Optimizer.sgd,
        1.0,
        0.9,
        KernelInit.variance_scaling,
    )
    dec = compose("published_dec")
    assert dec.features == ae.features  # the same pretrained autoencoder (one cache entry)
    assert (dec.refine.max_iter, dec.refine.shuffle, dec.refine.learning_rate) == (
        20000,
        False,
        0.01,
    )
    idec = compose("published_idec")
    assert (idec.refine.kind, idec.refine.gamma, idec.refine.shuffle) == ("idec", 0.1, False)
    n2d = compose("published_n2d", "data=fashion_mnist")
    assert (n2d.features.epochs, n2d.features.optimizer, n2d.refine.kind) == (
        1000,
        Optimizer.adam,
        "gmm",
    )
    assert n2d.refine.covariance_type.value == "full"
    assert (n2d.features.umap.n_components, n2d.features.umap.n_neighbors) == (10, 20)
    assert config_module.default_run_name(n2d) == (
        "fashion_mnist n2d+gmm k=10 squared_euclidean full-batch transductive"
    )
    # The held-out table keeps its protocol and gains the mixture after n2d and umap.
    held_out = kmeans_exp.compose(["experiments=representations", "pipeline=n2d_gmm"])
    assert (held_out.protocol.value, held_out.refine.kind, held_out.features.fit_on) == (
        "held_out",
        "gmm",
        FitOn.train,
    )
    pca = kmeans_exp.compose(["features=pca", "data=fashion_mnist", "k=10"])
    assert config_module.default_run_name(pca) == "fashion_mnist pca k=10 cosine full-batch"


@pytest.mark.parametrize(
    "row, message",
    [
        (np.full(784, np.nan), "row 0 holds NaN or inf: expected finite values"),
        (np.r_[np.inf, np.zeros(783)], "row 0 holds NaN or inf"),
        (np.full(784, 300.0), r"values in \[300, 300\]: expected pixels divided by 255"),
        (np.r_[np.full(392, 255.0), np.zeros(392)], r"\(raw 0-255 pixels\?\)"),
    ],
    ids=["nan", "inf", "300", "raw-pixels"],
)
def test_an_image_model_refuses_bad_rows(row, message):
    good = np.full((1, 784), 0.5, np.float32)
    check_rows(good, images=True)
    with pytest.raises(ValueError, match=message):
        check_rows(np.vstack([row[None].astype(np.float32), good]), images=True)
    check_rows(good * 300, images=False)  # embeddings: any finite value
    with pytest.raises(ValueError, match="row 1 holds NaN"):
        check_rows(np.vstack([good, np.full((1, 784), np.nan, np.float32)]), images=False)


def test_continuation_keeps_the_tensor_count_of_the_optimiser(small, monkeypatch):
    monkeypatch.setenv(cache.ENV, "off")
    trained = autoencoder.train(tiny(1), data.features(small.x_train[:500]))
    fitted = trained.fitted()
    back = autoencoder.Trained.from_fitted(fitted)
    assert back.epochs == 1 and len(back.optimizer) == len(trained.optimizer) > 0
    for a, b in zip(back.optimizer, trained.optimizer, strict=True):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("covariance_type", ["full", "tied", "diag", "spherical"])
def test_the_served_mixture_predicts_as_scikit_learn_for_every_covariance_type(covariance_type):
    from sklearn.datasets import make_blobs

    from kmeans_exp.features.served_steps import Mixture
    from kmeans_exp.refine.kinds import Start, gmm

    x, _ = make_blobs(n_samples=600, n_features=3, centers=4, random_state=1)
    labels = np.arange(len(x)) % 4  # a poor start, so that EM has work to do
    centres = np.stack([x[labels == j].mean(axis=0) for j in range(4)])
    config = gmm.Config(
        kind="gmm",
        covariance_type=gmm.CovarianceType(covariance_type),
        reg_covar=1e-6,
        max_iter=200,
        tol=1e-4,
    )
    start = Start(np.empty((0, 0)), x, labels, x[:50], centres)
    refined = gmm.fit(config, start, seed=0)
    mixture = Mixture(**refined.mixture)
    assert refined.scores["gmm_converged"] == 1.0
    # The same EM by hand: scikit-learn from the same start.
    from sklearn.mixture import GaussianMixture

    weights, covariances = gmm.partition_moments(x, labels, 4, config)
    reference = GaussianMixture(
        4,
        covariance_type=covariance_type,
        reg_covar=1e-6,
        max_iter=200,
        tol=1e-4,
        weights_init=weights,
        means_init=centres,
        precisions_init=gmm._inverse(covariances, config.covariance_type),
        random_state=0,
    ).fit(x)
    np.testing.assert_allclose(refined.centres, reference.means_, rtol=1e-6, atol=1e-8)
    np.testing.assert_array_equal(mixture.predict(x), reference.predict(x))
    assert refined.scores["gmm_train_log_likelihood"] == pytest.approx(reference.score(x))
