"""One fit beyond one process: sharded data, N workers, out of core (``distributed=...``).

    python benchmarks/scale.py --equality            # centres on 1, 2, 4 local workers
    python benchmarks/scale.py --overhead            # 2 workers vs the in-memory engine, 1M x 96
    python benchmarks/scale.py --init                # k-means|| vs k-means++ on shards
    python benchmarks/scale.py --out-of-core FOLDER  # a shard folder larger than memory
    PEERS_PYTHON=/path/to/venv/bin/python python benchmarks/scale.py --peers   # Spark, dask-ml

Each part merges its numbers into ``benchmarks/results/scale.json`` and rewrites
``scale.md`` from it (quoted by docs/performance.md). The peers need their own environment
(``pip install -e '.[scale-peers]'`` in a fresh venv: dask needs cloudpickle >= 3, which the
``ray`` extra's Hydra launcher refuses); ``benchmarks/scale_peers.py`` runs there.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402  (pins BLAS threads before NumPy loads)
import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
SCRATCH = Path(os.environ.get("KMEANS_BENCH_SCRATCH", tempfile.gettempdir()))


# ------------------------------------------------------------------ helpers


def write_mixture(folder: Path, rows: int, dim: int, clusters: int, test_rows: int, **kw) -> Path:
    """A synthetic mixture as shards (reused when it exists)."""
    if not (folder / "train").is_dir():
        from kmeans_exp.shards import write

        write.mixture(folder / "train", rows, dim, clusters, seed=0, **kw)
        if test_rows:
            write.mixture(folder / "test", test_rows, dim, clusters, seed=0, first_row=rows, **kw)
    return folder


def run_cli(overrides: list[str], store: Path) -> tuple[dict, float, dict]:
    """``python -m kmeans_exp OVERRIDES`` (tracking to ``store``): its run's metrics, wall time,
    and the peak RssAnon (bytes) of the launcher and of each worker process."""
    import mlflow
    import psutil

    uri = f"sqlite:///{store / 'mlflow.db'}"
    env = os.environ | {"MLFLOW_TRACKING_URI": uri}
    start = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-m", "kmeans_exp", *overrides, f"hydra.run.dir={store / 'hydra'}"],
        env=env,
        cwd=store,
    )
    peaks: dict[str, int] = {}

    def sample() -> None:
        root = psutil.Process(proc.pid)
        while proc.poll() is None:
            try:
                family = [root, *root.children(recursive=True)]
                for p in family:
                    name = "launcher" if p.pid == proc.pid else f"pid {p.pid}"
                    rss = _rss_anon(p.pid)
                    peaks[name] = max(peaks.get(name, 0), rss)
            except psutil.Error:
                pass
            time.sleep(0.5)

    watcher = threading.Thread(target=sample, daemon=True)
    watcher.start()
    code = proc.wait()
    seconds = time.perf_counter() - start
    watcher.join()
    if code != 0:
        raise SystemExit(f"python -m kmeans_exp {' '.join(overrides)}: exit status {code}")
    client = mlflow.MlflowClient(uri)
    run = client.search_runs(
        [e.experiment_id for e in client.search_experiments()],
        order_by=["attribute.start_time DESC"],
        max_results=1,
    )[0]
    return dict(run.data.metrics), seconds, peaks


def _rss_anon(pid: int) -> int:
    """Private resident memory (RssAnon: not the page cache that memory maps fill)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("RssAnon:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def disk_read_rate(folder: Path) -> float:
    """Bytes/s of a direct (uncached) sequential read of the largest shard, with dd."""
    shard = max(folder.glob("*.npy"), key=lambda p: p.stat().st_size)
    start = time.perf_counter()
    subprocess.run(
        ["dd", f"if={shard}", "of=/dev/null", "bs=16M", "iflag=direct"],
        check=True,
        capture_output=True,
    )
    return shard.stat().st_size / (time.perf_counter() - start)


def in_memory_rows_per_second(folder: Path, k: int, rows: int, steps: int = 3) -> float:
    """The in-memory engine's full-batch step on the first ``rows`` rows of the shards."""
    from kmeans_exp.engine import KMeans
    from kmeans_exp.shards import ShardSet

    x = ShardSet.open(folder).read(0, rows)
    model = KMeans(k, distance_metric="squared_euclidean", init="random", seed=0)
    model.fit(x, steps)
    return rows / float(np.median([s.seconds for s in model.history_[1:]]))


def save(part: str, numbers: dict) -> None:
    """Merge one part's numbers into results/scale.json and rewrite results/scale.md."""
    path = RESULTS / "scale.json"
    results = json.loads(path.read_text()) if path.exists() else {}
    results[part] = numbers | {"machine": common.cpu_name(), "isa": common.profile_name()}
    path.write_text(json.dumps(results, indent=2) + "\n")
    (RESULTS / "scale.md").write_text(report(results))
    print(json.dumps(numbers, indent=2))


# ------------------------------------------------------------------ parts


def out_of_core(folder: Path, workers: int, steps: int) -> None:
    """k=100, k-means||, ``steps`` full-batch steps over every row of ``folder``."""
    from kmeans_exp.shards import ShardSet

    train = ShardSet.open(folder / "train")
    nbytes = train.rows * train.dim * train.dtype.itemsize
    disk = disk_read_rate(folder / "train")
    memory_rate = in_memory_rows_per_second(folder / "train", 100, 200_000)
    with tempfile.TemporaryDirectory(dir=SCRATCH) as store:
        overrides = [
            "data=shards",
            f"data.path={folder / 'train'}",
            f"data.test_path={folder / 'test'}",
            "k=100",
            "distance_metric=squared_euclidean",
            f"steps={steps}",
            "distributed=local",
            f"distributed.workers={workers}",
            f"distributed.scratch={SCRATCH}",
            "distributed.timeout_seconds=1800",
            "tracking.log_model=false",
        ]
        metrics, seconds, peaks = run_cli(overrides, Path(store))
    step = metrics["step_seconds"]
    disk_step = nbytes / disk
    memory_step = train.rows / memory_rate
    bound = max(disk_step, memory_step)
    save(
        "out_of_core",
        {
            "rows": train.rows,
            "dim": train.dim,
            "bytes": nbytes,
            "workers": workers,
            "steps": steps,
            "wall_seconds": seconds,
            "init_seconds": metrics["init_seconds"],
            "step_seconds": step,
            "rows_per_second": train.rows / step,
            "in_memory_rows_per_second": memory_rate,
            "disk_bytes_per_second": disk,
            "disk_bound_step_seconds": disk_step,
            "memory_bound_step_seconds": memory_step,
            "step_over_slower_bound": step / bound,
            "peak_rss_anon_bytes": peaks,
            "test_accuracy": metrics.get("test_accuracy"),
            "test_nmi": metrics.get("test_nmi"),
            "inertia": metrics["inertia"],
        },
    )


def report(results: dict) -> str:
    """results/scale.md from results/scale.json."""
    lines = ["# Scale benchmark (benchmarks/scale.py)", ""]
    ooc = results.get("out_of_core")
    if ooc:
        gib = 2**30
        peaks = ", ".join(f"{name} {b / gib:.2f}" for name, b in ooc["peak_rss_anon_bytes"].items())
        lines += [
            f"## Out of core ({ooc['machine']}, {ooc['isa']})",
            "",
            f"{ooc['rows']:,} rows x {ooc['dim']} ({ooc['bytes'] / gib:.1f} GiB of "
            f"{'uint8' if ooc['bytes'] == ooc['rows'] * ooc['dim'] else 'float32'}) on disk, "
            f"k=100, init=kmeans_parallel, {ooc['steps']} full-batch steps, "
            f"{ooc['workers']} local workers.",
            "",
            "| measure | value |",
            "| --- | --- |",
            f"| wall time, whole run | {ooc['wall_seconds']:.0f} s |",
            f"| k-means\\|\\| init | {ooc['init_seconds']:.0f} s |",
            f"| full-batch step (median) | {ooc['step_seconds']:.1f} s |",
            f"| rows/s | {ooc['rows_per_second']:,.0f} |",
            f"| in-memory engine, same k and d | {ooc['in_memory_rows_per_second']:,.0f} rows/s "
            f"(a step over these rows: {ooc['memory_bound_step_seconds']:.1f} s) |",
            f"| disk, direct read | {ooc['disk_bytes_per_second'] / 1e6:,.0f} MB/s "
            f"(a step's bytes: {ooc['disk_bound_step_seconds']:.1f} s) |",
            f"| step / slower bound | {ooc['step_over_slower_bound']:.2f}x (target <= 1.5x) |",
            f"| peak RssAnon per process, GiB | {peaks} (target <= 3) |",
            f"| test accuracy / NMI | {ooc['test_accuracy']:.4f} / {ooc['test_nmi']:.4f} |",
            "",
        ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out-of-core", type=Path, metavar="FOLDER")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--steps", type=int, default=10)
    args = parser.parse_args()
    if args.out_of_core:
        out_of_core(args.out_of_core, args.workers, args.steps)


if __name__ == "__main__":
    main()
