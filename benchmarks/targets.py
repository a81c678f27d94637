"""The targets, as one table: what is measured, the bound, and where the number lives.

Each row reads one number out of the report (``value``) and compares it with its bound; a
row whose number the run did not measure (``--quick`` skips the CLI probes) is left out. A row
without a bound is information: the rows against TensorFlow's legacy op stay so, since no user
chooses between this engine and that op; every bound is against a peer a user would pick.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Target:
    text: str  # what is promised, with the bound
    value: Callable[[dict], float]  # the measured number, from the report
    bound: float | None  # None: information, no bound
    at_most: bool  # True: value <= bound; False: value >= bound
    unit: str = ""


TARGETS = (
    Target(
        "mini-batch step, ours / scikit-learn's MiniBatchKMeans",
        lambda r: r["mini_batch"]["ours_squared_euclidean_s"] / r["mini_batch"]["sklearn_s"],
        1.0,
        at_most=True,
        unit="x",
    ),
    Target(
        "mini-batch step (cosine), legacy op / ours",
        lambda r: r["mini_batch"]["legacy_s"] / r["mini_batch"]["ours_cosine_s"],
        None,
        at_most=False,
        unit="x",
    ),
    Target(
        "seed_tutorial training (init, compile, 50 steps), legacy op / ours",
        lambda r: r["tutorial"]["speedup"],
        None,
        at_most=False,
        unit="x",
    ),
    Target(
        "full-batch scaling cells costing > 1.5x the first cell per point-centre",
        lambda r: sum(row["flag"] for row in r["scaling"]),
        0,
        at_most=True,
    ),
    Target(
        "clustering scores added to every run (NMI, ARI, AMI, matched, silhouette), k=25",
        lambda r: r["metrics_cost"]["seconds"]["median"],
        0.5,
        at_most=True,
        unit=" s",
    ),
    *(
        Target(
            f"full-batch {metric.replace('_', ' ')} iteration, k={k}, ours / scikit-learn's Lloyd",
            lambda r, k=k, metric=metric: _by_k(r, k, metric),
            0.8,
            at_most=True,
            unit="x",
        )
        for k in (10, 25, 100, 400)
        for metric in ("cosine", "squared_euclidean")
    ),
    Target(
        "whole-set pass (cosine, k=25) minus its product / streaming the float32 set once",
        lambda r: r["pass_parts"]["rest_over_stream"],
        1.5,
        at_most=True,
        unit="x",
    ),
    Target(
        "default run train_seconds (init, compile, 15 steps, final assignment), cached programs",
        lambda r: r["default_run"]["warm"]["train_seconds"],
        1.0,
        at_most=True,
        unit=" s",
    ),
    Target(
        "default python -m kmeans_exp wall / scikit-learn + MLflow script, fresh store",
        lambda r: (
            r["default_run"]["cold"]["wall_s"] / r["sklearn_mlflow_script"]["fresh_store"]["wall_s"]
        ),
        1.0,
        at_most=True,
        unit="x",
    ),
    Target(
        "default python -m kmeans_exp wall / scikit-learn + MLflow script, existing store",
        lambda r: (
            r["default_run"]["warm"]["wall_s"]
            / r["sklearn_mlflow_script"]["existing_store"]["wall_s"]
        ),
        1.0,
        at_most=True,
        unit="x",
    ),
    Target(
        "sequential sweep overhead per job, from the command",
        lambda r: r["sweep"]["overhead_per_job_s"],
        1.0,
        at_most=True,
        unit=" s",
    ),
    Target(
        "sequential sweep overhead per extra job (three times the jobs)",
        lambda r: r["sweep"]["overhead_per_extra_job_s"],
        1.0,
        at_most=True,
        unit=" s",
    ),
    Target(
        "-m experiments=k_selection wall / the same study as a scikit-learn + MLflow loop",
        lambda r: r["k_selection"]["ratio"],
        0.6,
        at_most=True,
        unit="x",
    ),
    Target(
        "default python -m kmeans_exp peak memory (max RSS)",
        lambda r: max(run["max_rss_mb"] for run in r["default_run"].values()),
        1024,
        at_most=True,
        unit=" MB",
    ),
    Target(
        "full batch on 10x MNIST (600,000 IDX images), peak memory (max RSS)",
        lambda r: r["scale_10x"]["full_batch_10x"]["max_rss_mb"],
        2560,
        at_most=True,
        unit=" MB",
    ),
    Target(
        "mini-batch on 10x MNIST, peak memory (max RSS)",
        lambda r: r["scale_10x"]["mini_batch_10x"]["max_rss_mb"],
        2560,
        at_most=True,
        unit=" MB",
    ),
    Target(
        "full-batch step at 10x the rows / 10 x the step at 1x (linear in n)",
        lambda r: (
            r["scale_10x"]["full_batch_10x"]["seconds_per_step"]
            / (10 * r["scale_10x"]["full_batch_1x"]["seconds_per_step"])
        ),
        1.25,
        at_most=True,
        unit="x",
    ),
)


def _by_k(report: dict, k: int, metric: str) -> float:
    rows = report["full_batch_by_k"]
    return next(row["ratio"] for row in rows if (row["k"], row["metric"]) == (k, metric))


def check(report: dict) -> list[dict]:
    """Every target the report has a number for: text, value, bound and whether it is met
    (None for information rows)."""
    rows = []
    for target in TARGETS:
        try:
            value = float(target.value(report))
        except (KeyError, StopIteration):
            continue  # not measured in this run
        if target.bound is None:
            met, bound = None, "information"
        else:
            met = value <= target.bound if target.at_most else value >= target.bound
            bound = f"{'<=' if target.at_most else '>='} {target.bound:g}{target.unit}"
        rows.append(
            {
                "text": target.text,
                "value": value,
                "bound": bound,
                "unit": target.unit,
                "met": met,
            }
        )
    return rows
