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
    centers: np.ndarray, labels: np.ndarray, purity: np.ndarray, image_shape: tuple[int, int]
) -> Figure:
    """Every centre drawn as an image, titled with its digit and purity."""
    k = len(centers)
    cols = math.ceil(math.sqrt(k))
    rows = math.ceil(k / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(1.3 * cols, 1.5 * rows), squeeze=False)
    for j, ax in enumerate(axes.flat):
        ax.axis("off")
        if j >= k:
            continue
        ax.imshow(centers[j].reshape(image_shape), cmap="gray_r")
        title = "empty" if labels[j] < 0 else f"{labels[j]} ({purity[j]:.0%})"
        ax.set_title(title, fontsize=8)
    fig.suptitle("Cluster centres: majority digit (purity)", fontsize=10)
    fig.tight_layout()
    return fig


def confusion_matrix(matrix: np.ndarray, accuracy: float) -> Figure:
    """Counts of true digit (rows) against predicted digit (columns)."""
    n = len(matrix)
    fig, ax = plt.subplots(figsize=(0.55 * n + 2, 0.55 * n + 1.5))
    ax.imshow(matrix, cmap="Blues")
    threshold = matrix.max() / 2 if matrix.size else 0
    for i in range(n):
        for j in range(n):
            color = "white" if matrix[i, j] > threshold else "black"
            ax.text(j, i, str(matrix[i, j]), ha="center", va="center", fontsize=7, color=color)
    ax.set_xticks(range(n))
    ax.set_yticks(range(n))
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(f"Test confusion matrix (accuracy {accuracy:.4f})")
    fig.tight_layout()
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
        for metric in metrics:
            ys = [r.get(metric, float("nan")) for r in members]
            label = metric + (f" ({suffix})" if suffix else "")
            ax.plot(xs, ys, marker="o", label=label)
    if numeric and len({float(r[x_key]) for r in rows}) > 2:
        values = sorted({float(r[x_key]) for r in rows})
        if values[0] > 0 and values[-1] / values[0] >= 10:
            ax.set_xscale("log")
    ax.set_xlabel(x_key)
    ax.set_ylabel("accuracy")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=7)
    ax.set_title(f"Accuracy against {x_key}")
    fig.tight_layout()
    return fig


def _is_number(value: object) -> bool:
    try:
        float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return False
    return True
