"""One experiment: config -> data -> engine -> evaluation -> MLflow.

Everything a user can get wrong (config values, data files, the tracking store) is checked
before TensorFlow is imported and before an MLflow run exists. The MLflow run then always ends
FINISHED, FAILED or KILLED. Data are cached per process, so a sequential sweep loads them once.
"""

from __future__ import annotations

import functools
import logging
import os
import sys
import tempfile
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig

from kmeans_exp import config, data, evaluate, tracking
from kmeans_exp.errors import KMeansExpError, TrackingError

log = logging.getLogger(__name__)

PYFUNC_MODEL_FILE = Path(__file__).with_name("pyfunc_model.py")


@dataclass(frozen=True)
class Evaluation:
    """What the trained model scores on each split."""

    clusters: evaluate.ClusterLabels
    train_accuracy: float
    val_accuracy: float
    test_accuracy: float
    inertia: float
    confusion: np.ndarray


def run(cfg: DictConfig) -> float:
    """Run one experiment from a composed Hydra config; return the validation accuracy."""
    hydra_cfg = HydraConfig.get()
    overrides = list(hydra_cfg.overrides.task)
    sweep = tracking.SweepContext.from_env()
    if hydra_cfg.mode == RunMode.MULTIRUN and sweep is None:
        raise TrackingError(
            f"{tracking.SWEEP_ENV} is not set in this sweep job: the parent run's tracking "
            "settings did not reach this worker (pass the variable to remote workers)"
        )
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    try:
        exp = config.to_experiment_config(cfg)
        start = time.perf_counter()
        splits = load_splits(exp.data)
        data_seconds = time.perf_counter() - start
        exp.check_against_data(len(splits.x_train))
    except KMeansExpError as e:
        if sweep is not None:  # the parent counts this job as failed
            tracking.record_failed_job(sweep, sweep_run_name(overrides, sweep), str(e))
        raise

    if sweep is not None:
        uri, experiment_id = sweep.tracking_uri, sweep.experiment_id
        tracking.use_store(uri)
    else:
        uri = tracking.resolve_uri(exp.tracking.uri)
        experiment_id = tracking.setup_experiment(uri, exp.tracking.experiment_name)

    # TensorFlow loads only once the inputs are known to be good, and outside train_seconds.
    from kmeans_exp import kmeans  # noqa: F401

    params = config.flatten(exp)
    tags = {"hydra.overrides": " ".join(overrides) or "(none)"}
    commit = tracking.git_commit(Path(__file__).parent)
    if commit:
        tags["mlflow.source.git.commit"] = commit
    if exp.tracking.run_name:
        name = exp.tracking.run_name
    elif sweep is not None:
        name = sweep_run_name(overrides, sweep)
    else:
        name = default_run_name(exp)

    with tracking.mlflow_run(
        experiment_id, name, sweep.parent_run_id if sweep else None, tags
    ) as active:
        import mlflow

        mlflow.log_params(params)
        _log_datasets(splits)
        mlflow.log_artifacts(str(Path(hydra_cfg.runtime.output_dir) / ".hydra"), "hydra")

        start = time.perf_counter()
        model = train(exp, splits, active.info.run_id)
        train_seconds = time.perf_counter() - start

        start = time.perf_counter()
        result = evaluate_model(model, splits)
        eval_seconds = time.perf_counter() - start

        metrics = {
            "train_accuracy": result.train_accuracy,
            "test_accuracy": result.test_accuracy,
            "inertia": result.inertia,
            "empty_clusters": result.clusters.empty_clusters,
            "data_seconds": data_seconds,
            "train_seconds": train_seconds,
            "eval_seconds": eval_seconds,
        }
        if len(splits.x_val):
            metrics["val_accuracy"] = result.val_accuracy
        mlflow.log_metrics(metrics)
        _log_artifacts(model, result, splits)
        if exp.tracking.log_model:
            _log_model(model, result, splits)
        run_id = active.info.run_id

    log.info(
        "accuracy: train %.4f  val %.4f  test %.4f | inertia %.1f | data %.2fs  train %.2fs  "
        "eval %.2fs",
        result.train_accuracy,
        result.val_accuracy,
        result.test_accuracy,
        result.inertia,
        data_seconds,
        train_seconds,
        eval_seconds,
    )
    log.info("MLflow run %s (%s): %s", run_id, uri, tracking.run_url(uri, experiment_id, run_id))
    return result.val_accuracy


@functools.lru_cache(maxsize=2)
def _cached_splits(
    source: str, path: str | None, dataset: str, url: str | None, validation_size: int
) -> data.Splits:
    return data.split(data.load_raw(source, path, dataset, url), validation_size)


def load_splits(cfg: config.DataConfig) -> data.Splits:
    """The data set named by the ``data`` group, read once per process."""
    return _cached_splits(cfg.source.value, cfg.path, cfg.dataset, cfg.url, cfg.validation_size)


def sweep_run_name(overrides: list[str], sweep: tracking.SweepContext) -> str:
    """A sweep job is named after the values it sweeps, e.g. ``k=50``."""
    swept = [o for o in overrides if o.lstrip("+~").split("=", 1)[0] in sweep.swept_keys]
    return " ".join(swept or overrides) or "job"


def default_run_name(exp: config.ExperimentConfig) -> str:
    """A readable name from the settings, e.g. ``k=25 cosine bs=1024``."""
    if not exp.use_mini_batch:
        mode = "full-batch"
    else:
        mode = "bs=all" if exp.batch_size is None else f"bs={exp.batch_size}"
    return f"k={exp.k} {exp.distance_metric.value} {mode}"


def train(exp: config.ExperimentConfig, splits: data.Splits, run_id: str):
    """Fit the engine, logging ``avg_distance`` every step and showing progress."""
    from tqdm.auto import tqdm

    from kmeans_exp.kmeans import KMeans, StepStats

    model = KMeans(
        exp.k,
        distance_metric=exp.distance_metric.value,
        init=exp.init.value,
        use_mini_batch=exp.use_mini_batch,
        batch_size=exp.batch_size,
        seed=exp.seed,
    )
    interactive = sys.stderr.isatty()
    log_every = max(1, exp.steps // 10)
    metrics = tracking.StepMetrics(run_id)
    with tqdm(total=exp.steps, desc="training", unit="step", disable=not interactive) as bar:

        def on_step(stats: StepStats) -> None:
            metrics.log("avg_distance", stats.avg_distance, stats.step)
            bar.update(1)
            bar.set_postfix(avg_distance=f"{stats.avg_distance:.6f}")
            if not interactive and (stats.step % log_every == 0 or stats.step == exp.steps):
                log.info("step %d/%d avg_distance %.6f", stats.step, exp.steps, stats.avg_distance)

        try:
            model.fit(splits.x_train, exp.steps, callback=on_step)
        finally:  # an interrupted run keeps the steps it made
            metrics.flush()
    empty_steps = sum(1 for s in model.history_ if s.empty_clusters)
    if empty_steps:
        log.warning(
            "%d of %d steps left some centres without points; those kept their position",
            empty_steps,
            exp.steps,
        )
    return model


def evaluate_model(model, splits: data.Splits) -> Evaluation:
    """Label clusters by the majority digit of their training images, then score every split."""
    k = model.n_clusters
    num_classes = splits.raw.num_classes
    train_idx = model.labels_  # fit's final assignment of the training set
    clusters = evaluate.label_clusters(train_idx, splits.y_train, k, num_classes)

    def accuracy(x: np.ndarray, y: np.ndarray) -> float:
        if len(x) == 0:
            return float("nan")
        return evaluate.accuracy(y, clusters.predict(model.assign(x)[0]))

    test_pred = clusters.predict(model.assign(splits.x_test)[0])
    return Evaluation(
        clusters=clusters,
        train_accuracy=evaluate.accuracy(splits.y_train, clusters.predict(train_idx)),
        val_accuracy=accuracy(splits.x_val, splits.y_val),
        test_accuracy=evaluate.accuracy(splits.y_test, test_pred),
        inertia=model.inertia_,
        confusion=evaluate.confusion_matrix(splits.y_test, test_pred, num_classes),
    )


def _log_datasets(splits: data.Splits) -> None:
    """The three splits as MLflow dataset inputs of the active run."""
    import mlflow
    from mlflow.exceptions import MlflowException

    raw = splits.raw
    for context, x, y in (
        ("train", splits.x_train, splits.y_train),
        ("validation", splits.x_val, splits.y_val),
        ("test", splits.x_test, splits.y_test),
    ):
        if len(x):
            with warnings.catch_warnings():  # MLflow 3.17 registers the local source twice
                warnings.filterwarnings("ignore", "The specified dataset source can be interpreted")
                dataset = mlflow.data.from_numpy(
                    x, targets=y, source=raw.location, name=f"{raw.name}-{context}"
                )
            try:
                mlflow.log_input(dataset, context=context)
            except MlflowException:
                # Parallel sweep jobs register the same dataset at once, and MLflow's
                # check-then-insert can lose that race (IntegrityError); by now it exists.
                time.sleep(0.5)
                mlflow.log_input(dataset, context=context)


def _log_artifacts(model, result: Evaluation, splits: data.Splits) -> None:
    import matplotlib.pyplot as plt
    import mlflow

    from kmeans_exp import plots

    mlflow.log_table(result.clusters.table(), "clusters.json")
    mlflow.log_dict({"confusion_matrix": result.confusion.tolist()}, "confusion_matrix.json")
    centers = model.cluster_centers_
    for figure, name in (
        (
            plots.centroid_grid(
                centers, result.clusters.labels, result.clusters.purity, splits.image_shape
            ),
            "centroids.png",
        ),
        (plots.confusion_matrix(result.confusion, result.test_accuracy), "confusion_matrix.png"),
    ):
        mlflow.log_figure(figure, name)
        plt.close(figure)


def _log_model(model, result: Evaluation, splits: data.Splits) -> None:
    """Log the classifier as a pyfunc model (NumPy only) with a signature and input example."""
    import mlflow
    from mlflow.models import infer_signature

    with tempfile.TemporaryDirectory() as tmp:
        clusters = Path(tmp) / "clusters.npz"
        np.savez(
            clusters,
            centers=model.cluster_centers_,
            labels=result.clusters.labels,
            distance_metric=model.distance_metric,
        )
        example = splits.x_test[:5]
        predictions = result.clusters.predict(model.assign(example)[0])
        info = mlflow.pyfunc.log_model(
            name="model",
            python_model=str(PYFUNC_MODEL_FILE),
            artifacts={"clusters": str(clusters)},
            signature=infer_signature(example, predictions),
            input_example=example,
            pip_requirements=[f"mlflow=={mlflow.__version__}"],  # brings numpy; checked fast
        )
    mlflow.set_tag("model_uri", info.model_uri)
