"""Figures logged with each run and sweep (matplotlib, headless)."""

from __future__ import annotations

import math
from collections.abc import Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure


def centroid_grid(
    centers: np.ndarray,
    labels: np.ndarray,
    purity: np.ndarray,
    image_shape: tuple[int, int],
    title: str = "Cluster centres: majority digit (purity)",
    class_names: Sequence[str] | None = None,
) -> Figure:
    """Every centre (or cluster mean image) drawn as an image, captioned with its majority
    class (by name when ``class_names`` are given) and purity.

    One mosaic image with text labels (not one axes per centre), so that even k=1000 renders
    in a fraction of a second.
    """
    k = len(centers)
    h, w = image_shape
    cols = math.ceil(math.sqrt(k))
    rows = math.ceil(k / cols)
    cell_h, cell_w = h + 10, w + 2  # room for the caption above each image
    mosaic = np.full((rows * cell_h, cols * cell_w), np.nan)
    for j in range(k):
        r, c = divmod(j, cols)
        tile = centers[j].reshape(image_shape)
        span = tile.max() - tile.min()
        mosaic[r * cell_h + 10 : (r + 1) * cell_h, c * cell_w + 1 : c * cell_w + 1 + w] = (
            (tile - tile.min()) / span if span > 0 else 0.0
        )
    height = 1.05 * rows + 0.6
    fig, ax = plt.subplots(figsize=(max(4.0, 0.9 * cols), height))
    # Fixed margins, 0.4 in for the title: tight_layout would lay out every caption once more.
    fig.subplots_adjust(left=0.01, right=0.99, bottom=0.1 / height, top=1 - 0.4 / height)
    ax.imshow(mosaic, cmap="gray_r", interpolation="nearest", vmin=0, vmax=1)
    fontsize = max(4, 9 - cols // 6)
    for j in range(k):
        r, c = divmod(j, cols)
        name = labels[j] if class_names is None else class_names[labels[j]]
        caption = "empty" if labels[j] < 0 else f"{name} ({purity[j]:.0%})"
        x, y = c * cell_w + 1 + w / 2, r * cell_h + 5
        ax.text(x, y, caption, ha="center", va="center", fontsize=fontsize)
    ax.axis("off")
    ax.set_title(title, fontsize=10)
    return fig


def embedding(
    x: np.ndarray, y: np.ndarray, what: str, noun: str = "digit", class_names: Sequence[str] = ()
) -> Figure:
    """The rows ``x`` in 2-D (their first two principal components when wider), by label."""
    xy = x[:, :2] if x.shape[1] <= 2 else _principal_plane(x)
    fig, ax = plt.subplots(figsize=(6.5, 5.5))
    points = ax.scatter(xy[:, 0], xy[:, 1], c=y, cmap="tab10", s=2, alpha=0.6, linewidths=0)
    handles, labels = points.legend_elements()
    if class_names:
        labels = [class_names[int(i)] for i in np.unique(y)]
    ax.legend(handles, labels, title=noun, fontsize=7, loc="best", markerscale=1.5)
    plane = "" if x.shape[1] <= 2 else ", first two principal components"
    ax.set_title(f"{what}: test set in 2-D{plane}", fontsize=10)
    ax.set_xticks([])
    ax.set_yticks([])
    fig.tight_layout()
    return fig


def _principal_plane(x: np.ndarray) -> np.ndarray:
    centred = x - x.mean(axis=0)
    _, _, vt = np.linalg.svd(centred, full_matrices=False)
    return centred @ vt[:2].T


def confusion_matrix(
    matrix: np.ndarray, accuracy: float, class_names: Sequence[str], rows: str = "Test"
) -> Figure:
    """Counts of true class (rows) against predicted class (columns), by name, over ``rows``
    (the test split, or every image under ``protocol=transductive``)."""
    n = len(matrix)
    fig, ax = plt.subplots(figsize=(0.55 * n + 2, 0.55 * n + 1.5))
    ax.imshow(matrix, cmap="Blues")
    threshold = matrix.max() / 2 if matrix.size else 0
    for i in range(n):
        for j in range(n):
            color = "white" if matrix[i, j] > threshold else "black"
            ax.text(j, i, str(matrix[i, j]), ha="center", va="center", fontsize=7, color=color)
    longest = max(map(len, class_names), default=1)
    ax.set_xticks(range(n), class_names, rotation=90 if longest > 2 else 0)
    ax.set_yticks(range(n), class_names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(f"{rows} confusion matrix (accuracy {accuracy:.4f})")
    margin = 0.012 * longest  # room for the names
    fig.subplots_adjust(left=0.12 + margin, right=0.97, bottom=0.1 + margin, top=0.92)
    return fig


def sweep_summary(
    rows: Sequence[dict], x_key: str, group_keys: Sequence[str], metrics: Sequence[str]
) -> Figure:
    """Each metric against the swept ``x_key``, one line per combination of the other keys."""
    fig, ax = plt.subplots(figsize=(6, 4))
    groups: dict[tuple, list[dict]] = {}
    for row in rows:
        groups.setdefault(tuple(row.get(key) for key in group_keys), []).append(row)
    numeric = all(_is_number(row.get(x_key)) for row in rows)
    for group, members in groups.items():
        members = sorted(members, key=lambda r: float(r[x_key]) if numeric else str(r[x_key]))
        xs = [float(r[x_key]) if numeric else str(r[x_key]) for r in members]
        suffix = ", ".join(f"{k}={v}" for k, v in zip(group_keys, group, strict=True))
        for metric in _present(metrics, rows):
            ys = [r.get(metric, float("nan")) for r in members]
            label = metric + (f" ({suffix})" if suffix else "")
            ax.plot(xs, ys, marker="o", label=label)
    _log_x_if_wide(ax, [float(r[x_key]) for r in rows] if numeric else [])
    ax.set_xlabel(x_key)
    ax.set_ylabel("accuracy")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=7)
    ax.set_title(f"Accuracy against {x_key}")
    fig.tight_layout()
    return fig


def _present(metrics: Sequence[str], rows: Sequence[dict], suffix: str = "") -> list[str]:
    """The metrics some row has a number for (held-out and transductive runs log different
    scores), so that no legend names an empty line."""
    return [
        m
        for m in metrics
        if any(_is_number(r.get(m + suffix)) and not math.isnan(float(r[m + suffix])) for r in rows)
    ]


def _is_number(value: object) -> bool:
    try:
        float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return False
    return True


def sweep_groups(groups: Sequence[dict], x_key: str) -> Figure:
    """Seed-group means with error bars (one standard deviation) against ``x_key``."""
    from kmeans_exp import metrics as registry

    metrics = registry.names("groups_figure")
    numeric = all(_is_number(g.get(x_key)) for g in groups)
    ordered = sorted(groups, key=lambda g: float(g[x_key]) if numeric else str(g[x_key]))
    xs = [float(g[x_key]) if numeric else str(g[x_key]) for g in ordered]
    fig, ax = plt.subplots(figsize=(6, 4))
    for metric in _present(metrics, groups, "_mean"):
        means = [_nan(g[f"{metric}_mean"]) for g in ordered]
        stds = [_nan(g[f"{metric}_std"], 0.0) for g in ordered]
        ax.errorbar(xs, means, yerr=stds, marker="o", capsize=3, label=metric)
    _log_x_if_wide(ax, xs if numeric else [])
    ax.set_xlabel(x_key)
    ax.set_ylabel("mean over seeds (± 1 std)")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=7)
    n = sorted({g["n"] for g in groups})
    ax.set_title(f"Seed repeats against {x_key} (n = {', '.join(map(str, n))} per point)")
    fig.tight_layout()
    return fig


def k_selection(rows: Sequence[dict], swept_keys: Sequence[str]) -> Figure:
    """Inertia (the elbow), val NMI, majority val accuracy and silhouette against k.

    Means with error bars over the seeds when seeds are swept; one line per combination of the
    other swept keys.
    """
    from kmeans_exp import summary

    panels = (
        ("inertia", "inertia (elbow)"),
        ("val_nmi", "validation NMI"),
        ("val_accuracy", "validation accuracy (majority)"),
        ("silhouette", "silhouette (training sample)"),
    )
    others = [k for k in swept_keys if k not in ("k", summary.SEED_KEY)]
    lines: dict[tuple, list[dict]] = {}
    for row in rows:
        lines.setdefault(tuple(row.get(k) for k in others), []).append(row)
    fig, axes = plt.subplots(2, 2, figsize=(9, 6.5))
    for ax, (metric, title) in zip(axes.flat, panels, strict=True):
        for values, members in lines.items():
            stats = summary.by_k(members, [metric])
            ks = [k for k in stats if metric in stats[k]]
            label = ", ".join(f"{k}={v}" for k, v in zip(others, values, strict=True)) or None
            ax.errorbar(
                ks,
                [stats[k][metric][0] for k in ks],
                yerr=[stats[k][metric][1] for k in ks],
                marker="o",
                capsize=3,
                label=label,
            )
        _log_x_if_wide(ax, [float(r["k"]) for r in rows])
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("k")
        ax.grid(True, alpha=0.3)
        if others:
            ax.legend(fontsize=6)
    suggested = summary.suggested_k(rows)
    note = f" (suggested k = {suggested}: highest silhouette)" if suggested is not None else ""
    fig.suptitle("Choosing k" + note, fontsize=10)
    fig.tight_layout()
    return fig


def _nan(value: float | None, default: float = float("nan")) -> float:
    return default if value is None else value


def _log_x_if_wide(ax, xs: Sequence[float]) -> None:
    """A log x axis when the values span a factor of 10 or more."""
    values = sorted(set(xs))
    if len(values) > 2 and values[0] > 0 and values[-1] / values[0] >= 10:
        ax.set_xscale("log")
