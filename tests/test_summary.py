"""A sweep's rows summarised: seed groups, the best row and group, the suggested k."""

from __future__ import annotations

import pytest

from kmeans_exp import summary


def row(k: str, seed: str, val: float, sil: float, status: str = "FINISHED") -> dict:
    metrics = dict.fromkeys(summary.SUMMARY_METRICS, 1.0)
    metrics.update(val_accuracy=val, silhouette=sil, inertia=100.0 / int(k))
    # A held-out run: no transductive (all_*) scores.
    metrics.update({m: None for m in summary.SUMMARY_METRICS if "all_" in m})
    return {"k": k, "seed": seed, **metrics, "status": status, "run_id": f"{k}-{seed}"}


ROWS = [
    row("10", "0", 0.50, 0.20),
    row("10", "1", 0.54, 0.22),
    row("20", "0", 0.60, 0.10),
    row("20", "1", 0.64, 0.12),
    row("20", "2", 0.99, 0.90, status="FAILED"),  # never counted
]


def test_groups_average_over_seeds_with_sample_std():
    groups = summary.group_by_seed(ROWS, ["k", "seed"])
    assert [(g["k"], g["n"]) for g in groups] == [("10", 2), ("20", 2)]
    assert groups[0]["val_accuracy_mean"] == pytest.approx(0.52)
    assert groups[0]["val_accuracy_std"] == pytest.approx(0.0282842712)  # |0.54-0.50|/sqrt(2)
    assert groups[1]["run_ids"] == ["20-0", "20-1"]
    single = summary.group_by_seed(ROWS[:1], ["k", "seed"])
    assert single[0]["n"] == 1 and single[0]["val_accuracy_std"] is None


def test_best_row_group_and_suggested_k():
    assert summary.best_row(ROWS)["run_id"] == "20-1"  # the FAILED row's 0.99 does not count
    groups = summary.group_by_seed(ROWS, ["k", "seed"])
    top = summary.best_group(groups)
    assert summary.group_name(top, ["k", "seed"]) == "k=20"
    assert summary.suggested_k(ROWS) == 10  # mean silhouette 0.21 against 0.11
    tie = [row("30", "0", 0.5, 0.3), row("15", "0", 0.5, 0.3)]
    assert summary.suggested_k(tie) == 15  # ties go to the smaller k


def test_groups_sort_numbers_numerically():
    rows = [row(k, "0", 0.5, 0.1) for k in ("100", "5", "25")]
    assert [g["k"] for g in summary.group_by_seed(rows, ["k", "seed"])] == ["5", "25", "100"]


def test_report_groups_without_the_score_still_name_a_run():
    """No validation split: no val_accuracy, so no best; each group still names a run."""
    from kmeans_exp import report

    rows = [{**row("5", s, 0.5, 0.1), "val_accuracy": None} for s in ("0", "1")]
    (group,) = report.group_table(rows, ["k", "seed"], "val_accuracy")
    assert group["run_id"] == "5-0" and group["best"] is False and group["n"] == 2
    assert group["status"] == "2/2 FINISHED"


def test_decide_chooses_by_the_sweeps_score_and_reports_it():
    rows = [{**row("10", s, 0.5, sil), "val_accuracy": None} for s, sil in (("0", 0.2), ("1", 0.3))]
    rows += [
        {**row("20", s, 0.9, sil), "val_accuracy": None} for s, sil in (("0", 0.1), ("1", 0.1))
    ]
    outcome = summary.decide(rows, ["k", "seed"], "silhouette")
    assert summary.group_name(outcome.best_group, ["k", "seed"]) == "k=10"
    assert outcome.best_run["run_id"] == "10-1" and outcome.suggested_k == 10
    assert outcome.best_metrics == pytest.approx(
        {
            "best_silhouette_mean": 0.25,
            "best_test_accuracy_mean": 1.0,
            "best_silhouette": 0.3,
            "best_test_accuracy": 1.0,
        }
    )
    # A transductive sweep: the silhouette chooses, the papers' score is shown beside it.
    transductive = [
        {**r, "test_accuracy": None, "all_matched_accuracy": 0.6 + i / 10}
        for i, r in enumerate(rows)
    ]
    outcome = summary.decide(transductive, ["k", "seed"], "silhouette")
    assert outcome.best_metrics["best_all_matched_accuracy"] == pytest.approx(0.7)  # run 10-1
    assert "best_test_accuracy" not in outcome.best_metrics


def test_decide_without_seeds_or_k_picks_the_best_run_only():
    rows = [{**row("10", "0", v, 0.1), "distance_metric": m} for v, m in ((0.4, "a"), (0.6, "b"))]
    outcome = summary.decide(rows, ["distance_metric"], "val_accuracy")
    assert outcome.groups == [] and outcome.best_group is None and outcome.suggested_k is None
    assert outcome.best_run["distance_metric"] == "b"
    assert outcome.best_metrics["best_val_accuracy"] == 0.6
