"""What the terminal shows: progress while training, and one summary line when a run ends.

A tqdm bar when stderr is a terminal; otherwise (logs, CI, sweeps) a log line every tenth of
the steps. No TensorFlow or MLflow here.
"""

from __future__ import annotations

import logging
import sys
from contextlib import contextmanager
from typing import Any

log = logging.getLogger("kmeans_exp.runner")


@contextmanager
def training_progress(steps: int, n_init: int):
    """Yields ``report(stats)``, to call with every step's ``StepStats`` (all restarts)."""
    from tqdm.auto import tqdm

    total = steps * n_init
    interactive = sys.stderr.isatty()
    log_every = max(1, total // 10)
    with tqdm(total=total, desc="training", unit="step", disable=not interactive) as bar:

        def report(stats: Any) -> None:
            bar.update(1)
            bar.set_postfix(avg_distance=f"{stats.avg_distance:.6f}")
            done = stats.restart * steps + stats.step
            if not interactive and (done % log_every == 0 or done == total):
                log.info("step %d/%d avg_distance %.6f", done, total, stats.avg_distance)

        yield report


def after_training(model: Any, steps: int) -> None:
    """Which restart was kept, and a warning when some steps left centres without points."""
    if model.n_init > 1:
        log.info(
            "restart %d of %d kept (inertia %.1f)",
            model.best_restart_ + 1,
            model.n_init,
            model.inertia_,
        )
    empty_steps = sum(1 for s in model.history_ if s.empty_clusters)
    if empty_steps:
        log.warning(
            "%d of %d steps left some centres without points; those kept their position",
            empty_steps,
            steps,
        )


def time_to_first_step(data_s: float, store_s: float, tensorflow_s: float, model: Any) -> None:
    """Where the time before training went, at debug level (``hydra.verbose=kmeans_exp``)."""
    parts = {
        "data": data_s,
        "tracking store": store_s,
        "tensorflow import": tensorflow_s,
        "input prepare": model.prepare_seconds_,
        "init": model.init_seconds_ / model.n_init,
        "first step (with trace and compile)": model.history_[0].seconds,
    }
    text = ", ".join(f"{name} {seconds:.2f}s" for name, seconds in parts.items())
    log.debug("time to the first training step: %s (total %.2fs)", text, sum(parts.values()))


def summary(metrics: dict[str, float], run: str | None) -> None:
    """The closing lines: scores and timings (``metrics.closing_line``), and where the MLflow
    run is (if there is one)."""
    from kmeans_exp import metrics as registry

    log.info("%s", registry.closing_line(metrics))
    if run is not None:
        log.info("MLflow run %s", run)


def reused(run_id: str, url: str) -> None:
    """The line for a job that ``tracking.skip_finished`` answered with an earlier run."""
    log.info("skipped: this config already FINISHED in MLflow run %s (%s)", run_id, url)
