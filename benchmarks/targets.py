"""The targets, as one table: what is measured, the bound, and where the number lives.

Each row reads one number out of the report (``value``) and compares it with its bound; a
row whose number the run did not measure (``--quick`` skips the CLI probes) is left out.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Target:
    text: str  # what is promised, with the bound
    value: Callable[[dict], float]  # the measured number, from the report
    bound: float
    at_most: bool  # True: value <= bound; False: value >= bound
    unit: str = ""


def _row(report: dict, name: str) -> dict:
    return next(r for r in report["full_batch"] if r["name"] == name)


def _ratio_to_sklearn(report: dict, metric: str) -> float:
    ours = _row(report, f"this engine, {metric}")["per_iter_s"]["median"]
    peer = next(
        r
        for r in report["full_batch"]
        if r["name"].startswith("scikit-learn") and r["metric"] == metric
    )
    return ours / peer["per_iter_s"]["median"]


TARGETS = (
    Target(
        "full-batch cosine iteration, ours / scikit-learn's Lloyd",
        lambda r: _ratio_to_sklearn(r, "cosine"),
        0.8,
        at_most=True,
        unit="x",
    ),
    Target(
        "full-batch squared Euclidean iteration, ours / scikit-learn's Lloyd",
        lambda r: _ratio_to_sklearn(r, "squared_euclidean"),
        0.8,
        at_most=True,
        unit="x",
    ),
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
        4.0,
        at_most=False,
        unit="x",
    ),
    Target(
        "seed_tutorial training (init, compile, 50 steps), legacy op / ours",
        lambda r: r["tutorial"]["speedup"],
        8.0,
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
    Target(
        "sequential sweep overhead per job, from the command",
        lambda r: r["sweep"]["overhead_per_job_s"],
        1.0,
        at_most=True,
        unit=" s",
    ),
    Target(
        "default python -m kmeans_exp peak memory (max RSS)",
        lambda r: r["default_run"]["max_rss_mb"],
        1024,
        at_most=True,
        unit=" MB",
    ),
)


def check(report: dict) -> list[dict]:
    """Every target the report has a number for: text, value, bound and whether it is met."""
    rows = []
    for target in TARGETS:
        try:
            value = float(target.value(report))
        except (KeyError, StopIteration):
            continue  # not measured in this run
        met = value <= target.bound if target.at_most else value >= target.bound
        rows.append(
            {
                "text": target.text,
                "value": value,
                "bound": f"{'<=' if target.at_most else '>='} {target.bound:g}{target.unit}",
                "unit": target.unit,
                "met": met,
            }
        )
    return rows
