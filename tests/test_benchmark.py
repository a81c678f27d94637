"""The benchmark stays runnable: its quick mode on small data, end to end (peers included)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

pytest.importorskip("faiss", reason="benchmark peers: pip install -e '.[bench]'")


@pytest.mark.slow
def test_quick_benchmark_produces_tables_and_json(tmp_path):
    done = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "bench.py"), "--quick", "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads((tmp_path / "latest-quick.json").read_text())
    names = [row["name"] for row in report["full_batch"]]
    assert any(name.startswith("faiss-cpu spherical") for name in names)
    assert any(name.startswith("scikit-learn KMeans") for name in names)
    for row in report["full_batch"]:
        assert 0 < row["per_iter_s"]["median"] < 5
        if row.get("test_accuracy") is not None:
            assert 0.4 < row["test_accuracy"] < 0.95
    assert report["tutorial"]["legacy"]["total_s"] > 0 and report["tutorial"]["speedup"] > 0
    assert {row["k"] for row in report["scaling"]} == {5, 10}
    table = (tmp_path / "latest-quick.md").read_text()
    assert "| this engine, cosine |" in table and "Targets:" in table
