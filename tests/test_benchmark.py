"""The benchmark stays runnable and consistent: its quick mode on small data, peers included."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from conftest import ROOT

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
    assert (legacy["met"], legacy["bound"]) == (None, "information")  # no user picks the op
    assert "sequential sweep overhead per job, from the command" not in targets  # not in --quick
    for row in report["full_batch_by_k"]:  # larger k: ours over scikit-learn, same run
        assert row["ratio"] == pytest.approx(row["ours_s"] / row["sklearn_s"])
        name = f"full-batch {row['metric'].replace('_', ' ')} iteration, k={row['k']}"
        assert not any(t.startswith(name) for t in targets)  # bounds: k = 10, 25, 100, 400
    assert {(r["k"], r["metric"]) for r in report["full_batch_by_k"]} == {
        (50, "cosine"),
        (50, "squared_euclidean"),
    }

    parts = report["pass_parts"]
    assert min(parts["pass_s"], parts["product_s"], parts["stream_s"]) > 0
    rest = next(t for name, t in targets.items() if name.startswith("whole-set pass"))
    assert rest["value"] == pytest.approx(
        (parts["pass_s"] - parts["product_s"]) / parts["stream_s"]
    )

    table = (tmp_path / "latest-quick.md").read_text()
    assert "| this engine, cosine |" in table and "| target | measured | bound |" in table


def test_the_scale_probe_writes_an_idx_set_of_noisy_copies(tmp_path, mnist_raw):
    """The 10x memory probe's data: n copies of the training images, each within 8 grey levels
    of the original, loadable with ``data.source=idx``."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    import probes

    from kmeans_exp import data

    probes._write_noisy_copies(tmp_path / "big", 2)
    raw = data.load_raw("idx", str(tmp_path / "big"), "mnist2x")
    assert raw.train_images.shape == (120_000, 28, 28) and raw.train_images.dtype == np.uint8
    np.testing.assert_array_equal(raw.train_labels, np.tile(mnist_raw.train_labels, 2))
    np.testing.assert_array_equal(raw.test_images, mnist_raw.test_images)
    for copy in (raw.train_images[:60_000], raw.train_images[60_000:]):
        diff = copy.astype(np.int16) - mnist_raw.train_images
        assert np.abs(diff).max() == 8 and np.mean(diff != 0) > 0
    assert not np.array_equal(raw.train_images[:60_000], raw.train_images[60_000:])


def test_the_avx2_profile_sets_xla_and_openblas_and_names_itself():
    code = "import common, os; print(os.environ['XLA_FLAGS']); print(common.cpu_name())"
    env = {**os.environ, "KMEANS_BENCH_ISA": "avx2", "XLA_FLAGS": "--xla_dump_to=/tmp/x"}
    env.pop("OPENBLAS_CORETYPE", None)
    done = subprocess.run(
        [sys.executable, "-c", code + "; print(os.environ['OPENBLAS_CORETYPE'])"],
        cwd=ROOT / "benchmarks",
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    flags, cpu, coretype = done.stdout.splitlines()
    assert flags == "--xla_dump_to=/tmp/x --xla_cpu_max_isa=AVX2"
    assert "run as AVX2" in cpu and coretype == "Haswell"
