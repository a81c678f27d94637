"""One experiment, without Hydra: config -> data -> features -> engine -> refinement ->
evaluation -> tracking.

``run_experiment`` is what the command line, notebooks and tests all call. Everything a user
can get wrong (config values, data files, the tracking store) is checked before TensorFlow is
imported and before an MLflow run exists; the run then always ends FINISHED, FAILED or KILLED.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kmeans_exp import data, evaluate, progress, tracking
from kmeans_exp.config import (
    ExperimentConfig,
    as_dict,
    compose,
    config_hash,
    default_run_name,
    flatten,
    with_overrides,
)
from kmeans_exp.errors import KMeansExpError
from kmeans_exp.features import served_steps, stage
from kmeans_exp.refine import stage as refine_stage

NEAR_BEST = 0.01  # a restart within 1% of the lowest inertia counts as near the best


@dataclass(frozen=True)
class Launch:
    """How a run was started: what the command line adds to a plain Python call."""

    overrides: tuple[str, ...] = ()  # the command line's overrides, tagged on the run
    hydra_dir: Path | None = None  # Hydra's .hydra folder, logged as the run's hydra/ artifacts
    sweep: tracking.SweepContext | None = None  # set in a multirun job
    swept: dict[str, str] = field(default_factory=dict)  # this job's swept key -> value
    job_name: str | None = None  # a sweep job's run name: its swept values, e.g. "k=50"

    def record_failure(self, error: KMeansExpError) -> None:
        """In a sweep, a job that fails before its run starts still shows under the parent."""
        if self.sweep is not None:
            tracking.record_failed_job(self.sweep, self.job_name or "job", self.swept, str(error))


@dataclass(frozen=True)
class ExperimentResult:
    """A finished experiment: the fitted engine, its scores, and where MLflow holds them."""

    config: ExperimentConfig
    model: Any  # kmeans_exp.engine.KMeans (refine: the refined clusters); None when reused
    features: stage.Representation | None  # what was scored (refined codes after a refine)
    evaluation: evaluate.Evaluation | None  # None when an earlier run was reused
    metrics: dict[str, float]  # every metric logged at the end of the run, timings included
    run_id: str | None  # None with tracking.enabled=false
    tracking_uri: str | None
    reused: bool = False  # tracking.skip_finished found this config FINISHED in run_id


def run_experiment(
    config: ExperimentConfig | None = None, /, *, launch: Launch | None = None, **overrides: Any
) -> ExperimentResult:
    """Run one experiment and return its model, metrics and MLflow run id.

    ``config`` defaults to ``kmeans_exp.compose()`` (the command line's defaults);
    ``overrides`` replace its values, e.g. ``run_experiment(k=50, steps=5)`` or
    ``run_experiment(cfg, tracking={"enabled": False})``. ``launch`` is for the command line.
    Raises ``KMeansExpError`` subclasses (one-line messages) for anything a user can fix.
    """
    exp = config if config is not None else compose()
    if overrides:
        exp = with_overrides(exp, overrides)
    launch = launch or Launch()
    if exp.data.sharded:
        return _run_sharded(exp, launch)
    try:
        start = time.perf_counter()
        splits = _load_splits(exp)
        rows = data.every_row(splits) if exp.transductive else splits  # what every stage fits
        data_seconds = time.perf_counter() - start
        exp.check_against_data(*rows.x_train.shape)
        stage.check_available(exp.features)
        start = time.perf_counter()
        store = _open_store(exp, launch.sweep)
        store_seconds = time.perf_counter() - start
    except KMeansExpError as e:
        launch.record_failure(e)
        raise

    digest = config_hash(exp)
    if store is not None and exp.tracking.skip_finished:
        previous = tracking.find_finished(store, digest)
        if previous is not None:
            return _reuse(exp, store, launch, digest, *previous)

    start = time.perf_counter()
    from kmeans_exp.engine import KMeans  # TensorFlow loads only once the inputs are good

    tf_seconds = time.perf_counter() - start

    name, parent, tags = _run_identity(exp, launch, digest)
    fit_seed = stage.fit_seed(exp.features, exp.seed)
    with tracking.experiment_run(store, name, parent, tags) as run:
        seed_param = {} if fit_seed is None else {"features.fit_seed": str(fit_seed)}
        run.log_params(flatten(exp) | seed_param)
        run.log_datasets(splits)
        run.log_config(launch.hydra_dir, as_dict(exp))

        start = time.perf_counter()
        rep = stage.represent(exp.features, rows, exp.seed)
        features_seconds = time.perf_counter() - start
        run.log_representation(rep.cache, rep.history)
        extra = _epochs(rep)

        start = time.perf_counter()
        model = KMeans(
            exp.k,
            distance_metric=exp.distance_metric,
            init=exp.init,
            use_mini_batch=exp.use_mini_batch,
            batch_size=exp.batch_size,
            seed=exp.seed,
            n_init=exp.n_init,
        )
        train(model, rep.splits.x_train, exp.steps, run)
        train_seconds = time.perf_counter() - start
        progress.time_to_first_step(data_seconds, store_seconds, tf_seconds, model)
        run.log_restarts(model.restart_inertia_, model.best_restart_)
        near = sum(1 for i in model.restart_inertia_ if i <= model.inertia_ * (1 + NEAR_BEST))
        extra["restarts_near_best"] = float(near)

        if exp.refine.kind != "none":
            start = time.perf_counter()
            # what the refinement starts from
            extra |= _kmeans_scores(model, rep.splits, exp.transductive)
            refine_seed = exp.seed if fit_seed is None else fit_seed
            refined = refine_stage.refine(
                exp.refine,
                exp.features,
                rows,
                rep,
                model.cluster_centers_,
                model.labels_,
                refine_seed,
            )
            rep, model = refined.representation, refined.clusters
            extra |= refined.scores
            run.log_refinement(rep.cache, rep.history)
            extra["refine_seconds"] = time.perf_counter() - start

        start = time.perf_counter()
        if exp.transductive:
            evaluation = evaluate.evaluate_transductive(model, rep.splits, exp.seed)
        else:
            evaluation = evaluate.evaluate_model(model, rep.splits, exp.seed)
        eval_seconds = time.perf_counter() - start

        timings = {
            "data_seconds": data_seconds,
            "features_seconds": features_seconds,
            "train_seconds": train_seconds,
            "eval_seconds": eval_seconds,
        }
        metrics = {**evaluation.metrics, **extra, **timings}
        run.log_metrics(metrics)
        centers = model.cluster_centers_
        _log_figures(run, exp, rows, rep.splits, model, evaluation, len(splits.x_test))
        if exp.tracking.log_model:
            example = data.as_floats(splits.x_test[:5])  # what the served model takes
            found = model.predict(served_steps.transform(rep.steps, example))
            predictions = evaluation.clusters.predict(found)
            labels = evaluation.clusters.labels
            images = exp.features.embeddings_path is None  # else embeddings: any finite value
            mixture = getattr(model, "mixture", None)
            run.log_model(
                centers,
                labels,
                model.distance_metric,
                rep.steps,
                example,
                predictions,
                images,
                mixture,
            )

    return _finished(exp, store, run, model, rep, evaluation, metrics)


def _run_identity(
    exp: ExperimentConfig, launch: Launch, digest: str
) -> tuple[str, str | None, dict[str, str]]:
    """A run's name, parent run (in a sweep) and tags."""
    overrides = launch.overrides if launch.hydra_dir is not None else None
    tags = tracking.run_tags(digest, launch.swept, overrides, exp.protocol.value)
    name = exp.tracking.run_name or launch.job_name or default_run_name(exp)
    parent = launch.sweep.parent_run_id if launch.sweep else None
    return name, parent, tags


def _finished(exp, store, run, model, rep, evaluation, metrics) -> ExperimentResult:
    """The closing summary (scores, and where the run is), and the result."""
    if store is None:
        progress.summary(metrics, None)
        return ExperimentResult(exp, model, rep, evaluation, metrics, None, None)
    url = tracking.run_url(store.uri, store.experiment_id, run.run_id)
    progress.summary(metrics, f"{run.run_id} ({store.uri}): {url}")
    return ExperimentResult(exp, model, rep, evaluation, metrics, run.run_id, store.uri)


def _kmeans_scores(model: Any, splits: data.Splits, transductive: bool) -> dict[str, float]:
    """The K-Means' scores before a refinement: ``kmeans_test_<score>``, or ``kmeans_all_<score>``
    of every (fitted) row under ``protocol=transductive``."""
    if transductive:
        prefix, scores = "kmeans_all", evaluate.partition_scores(splits.y_train, model.labels_)
    else:
        found = model.assign(splits.x_test)[0]
        prefix, scores = "kmeans_test", evaluate.partition_scores(splits.y_test, found)
    return {f"{prefix}_{name}": scores[name] for name in ("matched_accuracy", "nmi", "ari")}


def _epochs(rep: stage.Representation) -> dict[str, float]:
    """How a continuing training (the autoencoder's) reached its epochs: trained by this run,
    and read from the cache (a hit, or the shorter training it continued); and what the fit
    of the representation's entry cost when it ran (a continued training: its own epochs)."""
    if rep.epochs_trained is None:
        return {}
    return {
        "features_epochs_trained": float(rep.epochs_trained),
        "features_epochs_cached": float(rep.epochs_cached),
        "features_fit_seconds": rep.fit_seconds,
    }


def _load_splits(exp: ExperimentConfig) -> data.Splits:
    """The images named by ``data``, or the embeddings of ``features=precomputed``."""
    if exp.features.embeddings_path is not None:
        return data.load_embedding_splits(exp.features.embeddings_path, exp.data.validation_size)
    d = exp.data
    return data.load_splits(d.source, d.path, d.dataset, d.url, d.validation_size)


def _log_figures(run, exp, splits, inputs, model, evaluation, n_test: int) -> None:
    """Each cluster as an image (its centre for pixels, its mean image for features), the
    confusion matrix (of the test rows; of every row under ``protocol=transductive``), and the
    features of the ``n_test`` test images in 2-D when they are not the pixels; classes by name
    (MNIST's digits, Fashion-MNIST's T-shirt/top ...)."""
    raw, noun, names = exp.features.kind == "raw", splits.raw.noun, splits.raw.class_names
    if raw:
        images, title = model.cluster_centers_, f"Cluster centres: majority {noun} (purity)"
    else:
        images = evaluate.cluster_means(splits.x_train, model.labels_, model.n_clusters)
        title = f"Cluster mean images: majority {noun} (purity)"
    run.log_evaluation(evaluation, images, splits.image_shape, title, names)
    if not raw:
        refined = "" if exp.refine.kind == "none" else f" refine={exp.refine.kind}"
        what = f"features={exp.features.kind}{refined}"
        if exp.transductive:  # the test images are the last rows, fitted like the others
            x, y = inputs.x_train[-n_test:], inputs.y_train[-n_test:]
        else:
            x, y = inputs.x_test, inputs.y_test
        run.log_embedding(x, y, what, noun, names)


def _reuse(
    exp: ExperimentConfig,
    store: tracking.Store,
    launch: Launch,
    digest: str,
    run_id: str,
    metrics: dict[str, float],
) -> ExperimentResult:
    """Report an earlier FINISHED run of the same config instead of training again."""
    if launch.sweep is not None:
        tracking.record_reused_job(launch.sweep, run_id, launch.swept, digest[:16])
    url = tracking.run_url(store.uri, store.experiment_id, run_id)
    progress.reused(run_id, url)
    return ExperimentResult(exp, None, None, None, metrics, run_id, store.uri, reused=True)


def _open_store(exp: ExperimentConfig, sweep: tracking.SweepContext | None):
    """The checked store runs go to: the sweep's, the configured one, or None (tracking off)."""
    if sweep is not None:
        tracking.use_store(sweep.tracking_uri)
        return sweep.store
    if not exp.tracking.enabled:
        return None
    return tracking.open_store(exp.tracking.uri, exp.tracking.experiment_name)


def train(model: Any, x: Any, steps: int, run: tracking.ExperimentRun) -> None:
    """Fit ``model``, logging ``avg_distance`` every step and showing progress.

    With restarts, each restart's steps go to ``avg_distance_restart_<i>`` as they happen, and
    the kept restart's series is logged as ``avg_distance`` when training ends.
    """
    with progress.training_progress(steps, model.n_init) as report:

        def on_step(stats) -> None:
            key = "avg_distance" if model.n_init == 1 else f"avg_distance_restart_{stats.restart}"
            run.log_step(key, stats.avg_distance, stats.step)
            report(stats)

        model.fit(x, steps, callback=on_step)
    if model.n_init > 1:
        run.log_history("avg_distance", [s.avg_distance for s in model.history_])
    progress.after_training(model, steps)


def _run_sharded(exp: ExperimentConfig, launch: Launch) -> ExperimentResult:
    """``run_experiment`` on shards: checked before any run exists, fitted by the workers of
    ``exp.distributed`` (worker 0 logs steps and scores into this run), then the clusters, the
    figures and the served model logged here from worker 0's result."""
    import tempfile

    import numpy as np

    from kmeans_exp.distributed import launch as workers

    try:
        start = time.perf_counter()
        train_set, test_set = _open_shards(exp)
        data_seconds = time.perf_counter() - start
        store = _open_store(exp, launch.sweep)
    except KMeansExpError as e:
        launch.record_failure(e)
        raise
    digest = config_hash(exp)
    if store is not None and exp.tracking.skip_finished:
        previous = tracking.find_finished(store, digest)
        if previous is not None:
            return _reuse(exp, store, launch, digest, *previous)
    name, parent, tags = _run_identity(exp, launch, digest)
    v = exp.data.validation_size
    with tracking.experiment_run(store, name, parent, tags) as run:
        shape = {
            "data.train_rows": str(train_set.rows - v),
            "data.test_rows": str(test_set.rows if test_set else 0),
            "data.dim": str(train_set.dim),
            "data.dtype": str(train_set.dtype),
            "data.shards": str(len(train_set.shards)),
        }
        run.log_params(flatten(exp) | shape)
        run.log_config(launch.hydra_dir, as_dict(exp))
        # the workers' result and logs: under distributed.scratch, which the nodes of a
        # ray or slurm cluster must share
        scratch = exp.distributed.scratch
        with tempfile.TemporaryDirectory(prefix="kmeans_exp-workers-", dir=scratch) as out:
            spec = _worker_spec(exp, run.run_id, store.uri if store else None, out)
            start = time.perf_counter()
            try:
                result = workers.fit(
                    spec,
                    exp.distributed.kind.value,
                    exp.distributed.workers,
                    exp.distributed.ray_address,
                )
            finally:
                run.log_worker_logs(out)
            fit_seconds = time.perf_counter() - start
            arrays = dict(np.load(f"{out}/{workers.worker.RESULT_ARRAYS}"))
        clusters = evaluate.ClusterLabels(arrays["labels"], arrays["sizes"], arrays["purity"])
        evaluation = evaluate.Evaluation(clusters, arrays["confusion"], result["metrics"])
        timings = {"data_seconds": data_seconds, "fit_seconds": fit_seconds}
        run.log_metrics(timings)
        run.log_restarts(arrays["restart_inertia"].tolist(), result["best_restart"])
        if exp.n_init > 1:  # the kept restart's steps, as an in-memory run logs them
            run.log_history("avg_distance", arrays["avg_distance"].tolist())
        metrics = result["metrics"] | timings
        model = workers.FittedCenters(
            arrays["centers"], exp.distance_metric.value, float(metrics["inertia"])
        )
        names = tuple(str(i) for i in range(result["num_classes"]))
        if evaluation.confusion.size and test_set is not None:
            image_shape = (28, 28) if train_set.dim == 784 else None
            run.log_evaluation(
                evaluation, model.cluster_centers_, image_shape, "Cluster centres", names
            )
        if exp.tracking.log_model and test_set is not None:
            example = data.as_floats(test_set.read(0, min(5, test_set.rows)))
            predictions = clusters.predict(model.predict(example))
            images = train_set.dtype == np.uint8
            run.log_model(
                model.cluster_centers_,
                clusters.labels,
                model.distance_metric,
                [],
                example,
                predictions,
                images,
            )
    return _finished(exp, store, run, model, None, evaluation, metrics)


def _open_shards(exp: ExperimentConfig):
    """The training and test shard sets, checked against the settings (before any run)."""
    from kmeans_exp.errors import ConfigError, DataError
    from kmeans_exp.shards import ShardSet

    train_set = ShardSet.open(exp.data.path)
    test_set = ShardSet.open(exp.data.test_path, "data.test_path") if exp.data.test_path else None
    if test_set is not None and (test_set.dim, test_set.dtype) != (train_set.dim, train_set.dtype):
        raise DataError(
            f"data.test_path={exp.data.test_path}: rows (n, {test_set.dim}) {test_set.dtype}, "
            f"but data.path has (n, {train_set.dim}) {train_set.dtype}: expected the same"
        )
    v = exp.data.validation_size
    if v >= train_set.rows:
        raise DataError(
            f"data.validation_size={v}: expected 0 <= value < {train_set.rows} "
            f"(the rows in data.path)"
        )
    n_train = train_set.rows - v
    exp.check_against_data(n_train, train_set.dim)
    if exp.distributed.workers > n_train:
        raise ConfigError(
            f"distributed.workers={exp.distributed.workers}: more workers than the {n_train} "
            "training rows"
        )
    return train_set, test_set


def _worker_spec(exp: ExperimentConfig, run_id: str | None, uri: str | None, out: str) -> dict:
    """What every worker reads: the shards, the engine's settings, the run, the output folder."""
    d = exp.distributed
    return {
        "data": {
            "path": exp.data.path,
            "test_path": exp.data.test_path,
            "validation_size": exp.data.validation_size,
        },
        "fit": {
            "steps": exp.steps,
            "engine": {
                "n_clusters": exp.k,
                "distance_metric": exp.distance_metric.value,
                "init": exp.init.value,
                "use_mini_batch": exp.use_mini_batch,
                "batch_size": exp.batch_size,
                "seed": exp.seed,
                "n_init": exp.n_init,
                "init_rounds": exp.init_rounds,
                "init_oversampling": exp.init_oversampling,
            },
        },
        "run_id": run_id,
        "tracking_uri": uri,
        "timeout_seconds": d.timeout_seconds,
        "port_base": d.port_base,
        "scratch": d.scratch,
        "out": out,
    }
