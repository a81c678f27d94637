"""The benchmark stays runnable and consistent: its quick mode on small data, peers included."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

pytest.importorskip("faiss", reason="benchmark peers: pip install -e '.[bench]'")


@pytest.mark.slow
def test_quick_benchmark_produces_consistent_tables_and_targets(tmp_path):
    done = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "bench.py"), "--quick", "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads((tmp_path / "latest-quick.json").read_text())

    rows = {row["name"]: row for row in report["full_batch"]}
    kernel = report["environment"]["openblas_kernel"]
    if kernel:  # faiss also ran in a child process with numpy's OpenBLAS kernel
        for label in ("spherical", "L2"):
            assert f"faiss-cpu {label} (OPENBLAS_CORETYPE={kernel})" in rows
    for metric in ("cosine", "squared_euclidean"):
        ours = rows[f"this engine, {metric}"]["per_iter_s"]["median"]
        peers = [r for r in report["full_batch"] if r["metric"] == metric and "ratio" in r]
        assert {r["name"].split(" (")[0].split(" KMeans")[0] for r in peers} >= {
            "faiss-cpu spherical" if metric == "cosine" else "faiss-cpu L2",
            "scikit-learn",
        }
        for peer in peers:  # every ratio is ours over that peer, from the same run
            assert peer["ratio"] == pytest.approx(ours / peer["per_iter_s"]["median"])
    for row in report["full_batch"]:
        t = row["per_iter_s"]
        assert 0 < t["min"] <= t["median"] <= t["max"]
        if row.get("test_accuracy") is not None:
            assert 0.4 < row["test_accuracy"] < 0.95

    tutorial = report["tutorial"]
    assert tutorial["speedup"] == pytest.approx(
        tutorial["legacy"]["total_s"] / tutorial["ours"]["total_s"]
    )
    assert {row["k"] for row in report["scaling"]} == {5, 10}
    cost = report["metrics_cost"]["seconds"]["median"]

    targets = {t["text"]: t for t in report["targets"]}
    scores = next(t for name, t in targets.items() if name.startswith("clustering scores"))
    assert scores["value"] == pytest.approx(cost) and scores["met"] == (cost <= 0.5)
    mini = report["mini_batch"]
    legacy = targets["mini-batch step (cosine), legacy op / ours"]
    assert legacy["value"] == pytest.approx(mini["legacy_s"] / mini["ours_cosine_s"])
    assert legacy["met"] == (legacy["value"] >= 4)
    assert "sequential sweep overhead per job, from the command" not in targets  # not in --quick

    table = (tmp_path / "latest-quick.md").read_text()
    assert "| this engine, cosine |" in table and "| target | measured | bound |" in table
