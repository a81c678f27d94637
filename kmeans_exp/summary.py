"""A sweep's results as tables: one row per job, repeats over seeds grouped, the best, a k.

Pure Python and NumPy, fed with plain dicts (one per job: its swept values, metrics, status and
run id), so the sweep's parent run and the terminal report compute exactly the same numbers.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from kmeans_exp import metrics

SEED_KEY = "seed"
# What every job row carries from its child run, and what the seed groups average.
SUMMARY_METRICS = metrics.names("sweep")
# What "best" maximises unless the sweep says otherwise (config: optimized_metric); never a
# test score.
DEFAULT_SCORE = "val_accuracy"


@dataclass(frozen=True)
class SweepOutcome:
    """What a sweep's summary decides from its job rows: groups, the best, a k to suggest.

    ``best_metrics`` are the parent's ``best_*`` metrics: the choosing ``score`` first, then
    validation and test accuracy where the chosen run (or group, as ``best_*_mean``) has them.
    """

    groups: list[dict] = field(default_factory=list)  # seed groups; empty unless seed is swept
    best_group: dict | None = None
    best_run: dict | None = None  # the best run overall, or inside the best group
    suggested_k: int | None = None
    best_metrics: dict[str, float] = field(default_factory=dict)


REPORTED_BEST = ("val_accuracy", "test_accuracy", "all_matched_accuracy")  # beside the score


def decide(rows: Sequence[dict], swept_keys: Sequence[str], score: str) -> SweepOutcome:
    """The best group (seeds swept), the best run and the suggested k (k swept) of a sweep."""
    reported = dict.fromkeys((score, *REPORTED_BEST))
    groups = group_by_seed(rows, swept_keys) if SEED_KEY in swept_keys else []
    top = best_group(groups, score)
    best_metrics: dict[str, float] = {}
    candidates = rows
    if top is not None:
        candidates = [r for r in rows if r["run_id"] in top["run_ids"]]
        for metric in reported:
            if _number(top.get(f"{metric}_mean")):
                best_metrics[f"best_{metric}_mean"] = top[f"{metric}_mean"]
    best = best_row(candidates, score)
    if best is not None:
        for metric in reported:
            if _number(best.get(metric)):
                best_metrics[f"best_{metric}"] = best[metric]
    k = suggested_k(rows) if "k" in swept_keys else None
    return SweepOutcome(groups, top, best, k, best_metrics)


def finished(rows: Iterable[dict]) -> list[dict]:
    """The rows of jobs that ended FINISHED."""
    return [r for r in rows if r["status"] == "FINISHED"]


def group_by_seed(rows: Sequence[dict], swept_keys: Sequence[str]) -> list[dict]:
    """One row per combination of the swept keys other than ``seed``, over finished jobs.

    Each group row has those keys' values, ``n`` (its finished jobs) and, for every metric in
    ``SUMMARY_METRICS``, ``<metric>_mean`` and ``<metric>_std`` (sample standard deviation,
    ``ddof=1``; None for a single job), plus the ``run_ids`` of its members.
    """
    keys = [k for k in swept_keys if k != SEED_KEY]
    groups: dict[tuple, list[dict]] = {}
    for row in finished(rows):
        groups.setdefault(tuple(row.get(k) for k in keys), []).append(row)
    out = []
    for values, members in sorted(groups.items(), key=lambda item: sort_key(item[0])):
        group: dict[str, Any] = dict(zip(keys, values, strict=True))
        group["n"] = len(members)
        for metric in SUMMARY_METRICS:
            group[f"{metric}_mean"], group[f"{metric}_std"] = _mean_std(members, metric)
        group["run_ids"] = [r["run_id"] for r in members]
        out.append(group)
    return out


def group_name(group: dict, swept_keys: Sequence[str]) -> str:
    """``k=50 distance_metric=cosine``: the group's swept values other than the seed."""
    return job_name(group, [k for k in swept_keys if k != SEED_KEY]) or "all"


def best_row(rows: Sequence[dict], score: str = DEFAULT_SCORE) -> dict | None:
    """The finished job with the highest ``score``."""
    scored = [r for r in finished(rows) if _number(r.get(score))]
    return max(scored, key=lambda r: r[score]) if scored else None


def best_group(groups: Sequence[dict], score: str = DEFAULT_SCORE) -> dict | None:
    """The seed group with the highest mean ``score``."""
    scored = [g for g in groups if _number(g.get(f"{score}_mean"))]
    return max(scored, key=lambda g: g[f"{score}_mean"]) if scored else None


def job_name(row: dict, swept_keys: Sequence[str]) -> str:
    """``k=50 seed=1``: a job's swept values."""
    return " ".join(f"{k}={row[k]}" for k in swept_keys)


def by_k(rows: Sequence[dict], metrics: Sequence[str]) -> dict[int, dict[str, tuple]]:
    """For each swept k: (mean, std) of each metric over its finished jobs (std 0 for one)."""
    per_k: dict[int, list[dict]] = {}
    for row in finished(rows):
        per_k.setdefault(int(row["k"]), []).append(row)
    out: dict[int, dict[str, tuple]] = {}
    for k in sorted(per_k):
        out[k] = {}
        for metric in metrics:
            mean, std = _mean_std(per_k[k], metric)
            if mean is not None:
                out[k][metric] = (mean, std or 0.0)
    return out


def suggested_k(rows: Sequence[dict]) -> int | None:
    """The k with the highest mean silhouette over its finished jobs (ties: the smaller k).

    The silhouette uses no labels, so this is the choice a user without labels would make; the
    labelled scores (NMI, accuracy) then say how good that choice was.
    """
    scores = {k: v["silhouette"][0] for k, v in by_k(rows, ["silhouette"]).items() if v}
    if not scores:
        return None
    return max(sorted(scores), key=lambda k: scores[k])


def _mean_std(rows: Sequence[dict], metric: str) -> tuple[float | None, float | None]:
    """Mean and sample standard deviation (``ddof=1``) of ``metric`` over the rows that have it;
    None for a mean of nothing and for the spread of a single value."""
    series = [r[metric] for r in rows if _number(r.get(metric))]
    mean = float(np.mean(series)) if series else None
    return mean, float(np.std(series, ddof=1)) if len(series) > 1 else None


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not math.isnan(value)


def sort_key(values: tuple) -> tuple:
    """Numbers in numeric order, before any text."""
    out = []
    for v in values:
        try:
            out.append((0, float(v), ""))
        except (TypeError, ValueError):
            out.append((1, 0.0, str(v)))
    return tuple(out)
