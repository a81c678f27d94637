"""The registry of a run's scores: each one's name, split, which way is better, and where it
is shown. The run's closing line, the sweep parent's job rows and seed groups, its figures and
``python -m kmeans_exp.report`` all read this table; a new score is one row here (plus the code
in ``evaluate`` or the runner that computes it). Nothing imported.

Where a metric is shown (``shown``):

- ``sweep``: carried into a sweep's job rows, and into its seed groups as mean ± std;
- ``report``: a column of ``python -m kmeans_exp.report`` (when some job logged it);
- ``sweep_figure``: a line of the parent's ``sweep_summary.png``;
- ``groups_figure``: a line of the parent's ``sweep_groups.png`` (means with error bars).
"""

from __future__ import annotations

from dataclasses import dataclass

UP, DOWN, NEITHER = True, False, None  # higher_is_better


@dataclass(frozen=True)
class Metric:
    name: str
    split: str  # train, val, test, all (transductive); "" for a cost or a count
    higher_is_better: bool | None
    shown: tuple[str, ...] = ()
    terminal: str = ""  # its place in the run's closing line, e.g. "test {:.4f}"


ALL_VIEWS = ("sweep", "report", "sweep_figure", "groups_figure")


def _before_refining(split: str) -> tuple[Metric, ...]:
    """``kmeans_<split>_*``: the K-Means a refinement started from."""
    return (
        Metric(
            f"kmeans_{split}_matched_accuracy",
            split,
            UP,
            ("sweep", "report"),
            "| before refining: matched {:.4f}",
        ),
        Metric(f"kmeans_{split}_nmi", split, UP, ("sweep",)),
        Metric(f"kmeans_{split}_ari", split, UP, ("sweep",)),
    )


METRICS = (
    Metric("train_accuracy", "train", UP, (), "accuracy: train {:.4f}"),
    Metric("val_accuracy", "val", UP, ALL_VIEWS, "val {:.4f}"),
    Metric("test_accuracy", "test", UP, ALL_VIEWS, "test {:.4f}"),
    Metric("val_nmi", "val", UP, ("sweep", "report")),
    Metric("test_nmi", "test", UP, ("sweep", "report", "groups_figure"), "| test NMI {:.4f}"),
    Metric(
        "test_matched_accuracy", "test", UP, ("sweep", "report", "groups_figure"), "matched {:.4f}"
    ),
    Metric("test_ari", "test", UP, ("sweep", "report")),
    Metric("test_ami", "test", UP),
    # protocol=transductive: every image fitted and scored, the papers' numbers (no test_*/val_*).
    Metric("all_matched_accuracy", "all", UP, ALL_VIEWS, "all images: matched {:.4f}"),
    Metric("all_nmi", "all", UP, ("sweep", "report", "groups_figure"), "NMI {:.4f}"),
    Metric("all_ari", "all", UP, ("sweep", "report"), "ARI {:.4f}"),
    Metric("all_ami", "all", UP),
    Metric("all_accuracy", "all", UP),  # majority labels of the same rows: purity, not a test
    # The K-Means a refinement (refine=dec, idec, gmm) started from, scored like the refined
    # result: on the test split, or on every image under protocol=transductive.
    *_before_refining("test"),
    *_before_refining("all"),
    Metric("inertia", "train", DOWN, ("sweep", "report"), "| inertia {:.1f}"),
    Metric("restarts_near_best", "", NEITHER, ("sweep", "report")),  # within 1% of the best
    Metric("silhouette", "train", UP, ("sweep",)),
    Metric("empty_clusters", "train", DOWN),
    Metric("data_seconds", "", NEITHER, (), "| data {:.2f}s"),
    Metric("features_seconds", "", NEITHER, ("sweep",), "features {:.2f}s"),
    Metric("train_seconds", "", NEITHER, ("sweep", "report"), "train {:.2f}s"),
    Metric("refine_seconds", "", NEITHER, ("sweep",), "refine {:.2f}s"),
    Metric("eval_seconds", "", NEITHER, (), "eval {:.2f}s"),
)


def names(view: str) -> tuple[str, ...]:
    """The metrics shown in ``view`` (see the module's docstring), in table order."""
    return tuple(m.name for m in METRICS if view in m.shown)


def closing_line(values: dict[str, float]) -> str:
    """The run's closing line: every metric with a ``terminal`` place that the run logged."""
    return "  ".join(
        m.terminal.format(values[m.name]) for m in METRICS if m.terminal and m.name in values
    )
