"""One experiment's MLflow run: its life cycle and everything logged to it. No TensorFlow here.

A run always ends FINISHED, FAILED (an exception) or KILLED (Ctrl-C or SIGTERM), never RUNNING.
``experiment_run`` yields an ``ExperimentRun`` whose methods log params, per-step metrics, the
data sets, the config, scores, figures and the model; with tracking off it yields one whose
methods do nothing, so the runner has a single code path.
"""

from __future__ import annotations

import functools
import os
import signal
import tempfile
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

from kmeans_exp.tracking.liveness import process_tags
from kmeans_exp.tracking.parent_run import swept_tags
from kmeans_exp.tracking.store import CONFIG_HASH_TAG, PROTOCOL_TAG, Store, git_commit

PYFUNC_MODEL_FILE = Path(__file__).resolve().parent / "pyfunc_model.py"
FEATURE_CACHE_TAG = "kmeans_exp.features.cache"  # hit, miss, off, or none (raw, precomputed)
REFINE_CACHE_TAG = "kmeans_exp.refine.cache"  # hit, miss or off; only on refined runs


class Terminated(KeyboardInterrupt):
    """SIGTERM, handled like Ctrl-C so the run ends KILLED with what it logged so far."""


def raise_terminated(signum: int, frame: Any) -> None:
    """A SIGTERM handler: stop the way Ctrl-C stops."""
    raise Terminated(f"received signal {signum}")


@contextmanager
def mlflow_run(
    experiment_id: str,
    run_name: str,
    parent_run_id: str | None = None,
    tags: dict[str, str] | None = None,
) -> Iterator[Any]:
    """An active MLflow run that ends FINISHED, FAILED (exception) or KILLED (Ctrl-C, SIGTERM)."""
    import mlflow

    run = mlflow.start_run(
        experiment_id=experiment_id, run_name=run_name, parent_run_id=parent_run_id, tags=tags
    )
    in_main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, raise_terminated) if in_main_thread else None
    status = "FAILED"
    try:
        yield run
        status = "FINISHED"
    except KeyboardInterrupt:
        status = "KILLED"
        raise
    finally:
        if in_main_thread:
            signal.signal(signal.SIGTERM, previous)
        mlflow.end_run(status)


class StepMetrics:
    """Per-step metrics written with ``log_batch`` at most every ``interval_s``, and on ``flush``.

    A thousand steps cost a few writes instead of a thousand, and nothing waits on a queue:
    ``flush`` (called when training ends, however it ends) writes what is pending.
    """

    def __init__(self, run_id: str, interval_s: float = 1.0) -> None:
        import mlflow

        self._client = mlflow.MlflowClient()
        self._run_id = run_id
        self._interval_s = interval_s
        self._pending: list[Any] = []
        self._last_flush = time.monotonic()

    def log(self, key: str, value: float, step: int) -> None:
        from mlflow.entities import Metric

        self._pending.append(Metric(key, value, int(time.time() * 1000), step))
        if time.monotonic() - self._last_flush >= self._interval_s:
            self.flush()

    def flush(self) -> None:
        while self._pending:
            chunk, self._pending = self._pending[:1000], self._pending[1000:]  # MLflow's limit
            self._client.log_batch(self._run_id, metrics=chunk)
        self._last_flush = time.monotonic()


def _tracked(method: Callable) -> Callable:
    """Run ``method`` only when there is an MLflow run (tracking on)."""

    @functools.wraps(method)
    def wrapper(self: ExperimentRun, *args: Any, **kwargs: Any) -> Any:
        if self.run_id is None:
            return None
        return method(self, *args, **kwargs)

    return wrapper


class ExperimentRun:
    """What the runner logs, and where: the active MLflow run, or nowhere (``run_id`` None)."""

    def __init__(self, run_id: str | None) -> None:
        self.run_id = run_id
        self._steps = StepMetrics(run_id) if run_id else None

    @_tracked
    def log_params(self, params: dict[str, str]) -> None:
        import mlflow

        mlflow.log_params(params)

    @_tracked
    def log_step(self, key: str, value: float, step: int) -> None:
        self._steps.log(key, value, step)

    @_tracked
    def flush_steps(self) -> None:
        self._steps.flush()

    @_tracked
    def log_metrics(self, metrics: dict[str, float]) -> None:
        import mlflow

        mlflow.log_metrics(metrics)

    @_tracked
    def log_history(self, key: str, values: list[float]) -> None:
        """A whole series at once, steps 1, 2, ... (e.g. the kept restart's avg_distance)."""
        for step, value in enumerate(values, start=1):
            self._steps.log(key, value, step)
        self._steps.flush()

    @_tracked
    def log_restarts(self, inertias: list[float], best: int) -> None:
        """Each restart's final inertia (``restart_inertia`` at step i) and the one kept."""
        for i, inertia in enumerate(inertias):
            self._steps.log("restart_inertia", inertia, i)
        self._steps.log("best_restart", best, 0)
        self._steps.flush()

    @_tracked
    def log_config(self, hydra_dir: Path | None, config: dict[str, Any]) -> None:
        """Hydra's ``.hydra`` folder as ``hydra/``; without Hydra, the config as ``config.yaml``."""
        import mlflow

        if hydra_dir is not None:
            mlflow.log_artifacts(str(hydra_dir), "hydra")
        else:
            mlflow.log_dict(config, "config.yaml")

    @_tracked
    def log_worker_logs(self, folder: str | Path) -> None:
        """The output and error lines of a distributed fit's workers, as ``workers/``."""
        import mlflow

        for path in sorted(Path(folder).glob("worker-*")):
            if path.suffix in (".log", ".error"):
                mlflow.log_artifact(str(path), "workers")

    @_tracked
    def log_datasets(self, splits: Any) -> None:
        """The splits (a ``kmeans_exp.data.Splits``) as MLflow dataset inputs of the run."""
        import mlflow
        from mlflow.exceptions import MlflowException

        raw = splits.raw
        arrays = {
            "train": (splits.x_train, splits.y_train),
            "validation": (splits.x_val, splits.y_val),
            "test": (splits.x_test, splits.y_test),
        }
        for context, (x, y) in arrays.items():
            if not len(x):
                continue
            with warnings.catch_warnings():  # MLflow 3.17 registers the local source twice
                warnings.filterwarnings("ignore", "The specified dataset source can be interpreted")
                dataset = mlflow.data.from_numpy(
                    x,
                    targets=y,
                    source=raw.location,
                    name=f"{raw.name}-{context}",
                    digest=numpy_digest(x, y),
                )
            try:
                mlflow.log_input(dataset, context=context)
            except MlflowException:
                # Parallel sweep jobs register the same dataset at once, and MLflow's
                # check-then-insert can lose that race (IntegrityError); by now it exists.
                time.sleep(0.5)
                mlflow.log_input(dataset, context=context)

    @_tracked
    def log_evaluation(
        self,
        evaluation: Any,
        images: np.ndarray,
        image_shape: tuple | None,
        title: str,
        class_names: tuple[str, ...],
    ) -> None:
        """Per-cluster table, confusion matrix (JSON and PNG) and, for images, one image per
        cluster (``images``: the centres, or each cluster's mean image), with class names."""
        import mlflow

        from kmeans_exp import plots

        clusters = evaluation.clusters
        mlflow.log_table(clusters.table(class_names), "clusters.json")
        mlflow.log_dict(
            {"confusion_matrix": evaluation.confusion.tolist()}, "confusion_matrix.json"
        )
        if image_shape is not None:
            grid = plots.centroid_grid(
                images, clusters.labels, clusters.purity, image_shape, title, class_names
            )
            _log_figure(grid, "centroids.png")
        if "all_accuracy" in evaluation.metrics:  # protocol=transductive
            accuracy, rows = evaluation["all_accuracy"], "Every image's"
        else:
            accuracy, rows = evaluation["test_accuracy"], "Test"
        matrix = plots.confusion_matrix(evaluation.confusion, accuracy, class_names, rows)
        _log_figure(matrix, "confusion_matrix.png")

    @_tracked
    def log_representation(self, cache_status: str, history: dict[str, list[float]]) -> None:
        """Whether the features came from the cache (a tag), and their per-epoch series."""
        self._log_stage(FEATURE_CACHE_TAG, cache_status, history)

    @_tracked
    def log_refinement(self, cache_status: str, history: dict[str, list[float]]) -> None:
        """Whether the refinement came from the cache (a tag), and its series (one value per
        update of the target distribution: ``refine_loss``, ``refine_label_change``)."""
        self._log_stage(REFINE_CACHE_TAG, cache_status, history)

    def _log_stage(self, tag: str, cache_status: str, history: dict[str, list[float]]) -> None:
        import mlflow

        mlflow.set_tag(tag, cache_status)
        for key, values in history.items():
            for step, value in enumerate(values, start=1):
                self._steps.log(key, value, step)
        self._steps.flush()

    @_tracked
    def log_embedding(
        self, x: np.ndarray, y: np.ndarray, what: str, noun: str, class_names: tuple[str, ...]
    ) -> None:
        """``embedding.png``: the test features in 2-D, coloured by class."""
        from kmeans_exp import plots

        _log_figure(plots.embedding(x, y, what, noun, class_names), "embedding.png")

    @_tracked
    def log_model(
        self,
        centers: np.ndarray,
        labels: np.ndarray,
        distance_metric: str,
        steps: list,
        example: np.ndarray,
        predictions: np.ndarray,
        images: bool,
        mixture: Any = None,
    ) -> None:
        """The classifier as a pyfunc model: ``steps`` (the features), nearest centre (or most
        likely component of ``mixture``, a ``served_steps.Mixture``), digit. ``images``: it
        takes pixels / 255 and refuses values outside [0, 1]; else embeddings.

        NumPy only (umap-learn too for a UMAP step), with signature and input example; it
        carries its own copy of ``served_steps``, so it serves without kmeans_exp.
        """
        import mlflow
        from mlflow.models import infer_signature

        from kmeans_exp.features import served_steps

        requirements = [f"mlflow=={mlflow.__version__}"]  # brings numpy; checked fast
        requirements += [
            f"{name}=={metadata.version(name)}" for name in served_steps.requirements(steps)
        ]
        with tempfile.TemporaryDirectory() as tmp:
            clusters = Path(tmp) / "clusters.npz"
            extra = {} if mixture is None else mixture.arrays("mixture")
            np.savez(
                clusters,
                centers=centers,
                labels=labels,
                distance_metric=distance_metric,
                input=np.str_("images" if images else "embeddings"),
                **extra,
            )
            served_steps.save(steps, Path(tmp) / "features")
            info = mlflow.pyfunc.log_model(
                name="model",
                python_model=str(PYFUNC_MODEL_FILE),
                artifacts={"clusters": str(clusters), "features": str(Path(tmp) / "features")},
                code_paths=[served_steps.__file__],
                signature=infer_signature(example, predictions),
                input_example=example,
                pip_requirements=requirements,
            )
        mlflow.set_tag("model_uri", info.model_uri)


def _log_figure(figure: Any, name: str) -> None:
    import matplotlib.pyplot as plt
    import mlflow

    mlflow.log_figure(figure, name)
    plt.close(figure)


def numpy_digest(features: np.ndarray, targets: np.ndarray) -> str:
    """MLflow's digest of a NumPy dataset, computed without copying the data.

    ``mlflow.data.from_numpy`` hashes the first 10,000 values and the shapes, but flattens the
    whole array first: a full copy (470 MB for ten times MNIST). Same digest, from a view.
    """
    import pandas as pd
    from mlflow.data.digest_utils import MAX_ROWS, get_normalized_md5_digest

    elements = []
    for array in (features, targets):
        elements.append(pd.util.hash_array(np.ravel(array)[:MAX_ROWS]))  # a view: contiguous
        elements.extend(np.int64(n) for n in array.shape)
    return get_normalized_md5_digest(elements)


def run_tags(
    config_hash: str, swept: dict[str, str], overrides: tuple[str, ...] | None, protocol: str
):
    """A run's tags: config hash, protocol (which rows were fitted and scored), swept values,
    host and process, Hydra overrides (CLI runs), git commit."""
    tags = {
        CONFIG_HASH_TAG: config_hash,
        PROTOCOL_TAG: protocol,
        **swept_tags(swept),
        **process_tags(),
    }
    if overrides is not None:
        tags["hydra.overrides"] = " ".join(overrides) or "(none)"
    commit = git_commit(Path(__file__).resolve().parent)
    if commit:
        tags["mlflow.source.git.commit"] = commit
    return tags


@contextmanager
def experiment_run(
    store: Store | None,
    run_name: str,
    parent_run_id: str | None = None,
    tags: dict[str, str] | None = None,
) -> Iterator[ExperimentRun]:
    """An ``ExperimentRun`` in ``store`` (ended as ``mlflow_run`` ends it); None: tracking off."""
    if store is None:
        yield ExperimentRun(None)
        return
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")  # quiet logs
    with mlflow_run(store.experiment_id, run_name, parent_run_id, tags) as active:
        run = ExperimentRun(active.info.run_id)
        try:
            yield run
        finally:  # an interrupted run keeps the steps it made
            run.flush_steps()
