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
import common
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
SCRATCH = Path(os.environ.get("KMEANS_BENCH_SCRATCH", tempfile.gettempdir()))


# ------------------------------------------------------------------ helpers


def shard_run(folder: Path, *extra: str) -> list[str]:
    """The command line of a k=100 squared-Euclidean fit of ``folder/train`` (no model logged)."""
    return [
        "data=shards",
        f"data.path={folder / 'train'}",
        "k=100",
        "distance_metric=squared_euclidean",
        "tracking.log_model=false",
        *extra,
    ]


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
    memory_rate = in_memory_rows_per_second(folder / "train", 100, 1_000_000)
    with tempfile.TemporaryDirectory(dir=SCRATCH) as store:
        overrides = shard_run(
            folder,
            f"data.test_path={folder / 'test'}",
            f"steps={steps}",
            "distributed=local",
            f"distributed.workers={workers}",
            f"distributed.scratch={SCRATCH}",
            "distributed.timeout_seconds=1800",
        )
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


def sharded_model(init: str, mini_batch: bool, k: int, seed: int = 0):
    from kmeans_exp.engine.sharded import ShardedKMeans

    return ShardedKMeans(
        k,
        distance_metric="squared_euclidean",
        init=init,
        use_mini_batch=mini_batch,
        batch_size=EQUALITY_BATCH if mini_batch else None,
        seed=seed,
    )


EQUALITY_CASES = [
    (i, m) for i in ("random", "kmeans_plus_plus", "kmeans_parallel") for m in (False, True)
]
EQUALITY_K, EQUALITY_STEPS, EQUALITY_BATCH = 50, 10, 4096
PEER_ITERATIONS = 10  # the peers are timed over 1 + 10 iterations (scale_peers.py)


def fit_cases(folder: Path, reducer) -> dict[str, np.ndarray]:
    """Every init, full batch and mini-batch, on this worker's share of ``folder/train``:
    the centres and the nearest centre of every test row."""
    from kmeans_exp.engine.parts import Part
    from kmeans_exp.shards import ShardSet

    train, test = ShardSet.open(folder / "train"), ShardSet.open(folder / "test")
    x_test = test.read(0, test.rows).astype(np.float64)
    out = {}
    for init, mini in EQUALITY_CASES:
        model = sharded_model(init, mini, EQUALITY_K)
        model.fit(Part.of(train, 0, train.rows, reducer), EQUALITY_STEPS, reducer)
        c = model.cluster_centers_.astype(np.float64)
        name = f"{init} {'mini-batch' if mini else 'full batch'}"
        out[name] = c
        out[f"{name} test"] = np.argmin(np.sum(c * c, 1)[None] - 2 * x_test @ c.T, axis=1)
    return out


def fit_worker(folder: Path, out: Path) -> None:
    """One worker of ``equality`` (TF_CONFIG set by the parent)."""
    from kmeans_exp.distributed.collective import StrategyReducer

    reducer = StrategyReducer(600)
    result = fit_cases(folder, reducer)
    if reducer.rank == 0:
        np.savez(out, **result)


def equality(folder: Path) -> None:
    """Centres of 2 and 4 local workers against one worker (in process), and one worker's
    against the in-memory engine (random init: the same initial rows)."""
    from kmeans_exp.distributed import cluster
    from kmeans_exp.engine import KMeans
    from kmeans_exp.engine.parts import Part
    from kmeans_exp.engine.reduce import SingleProcess
    from kmeans_exp.shards import ShardSet

    reference = fit_cases(folder, SingleProcess())
    rows = []
    with tempfile.TemporaryDirectory(dir=SCRATCH) as tmp:
        for workers in (2, 4):
            out = Path(tmp) / f"{workers}.npz"
            addresses = [f"127.0.0.1:{p}" for p in cluster.free_ports(workers)]
            procs = [
                subprocess.Popen(
                    [sys.executable, __file__, "--fit-worker", str(folder), str(out)],
                    env=os.environ | {"TF_CONFIG": cluster.tf_config(addresses, i)},
                )
                for i in range(workers)
            ]
            if any(p.wait() for p in procs):
                raise SystemExit(f"equality: a worker of {workers} failed")
            got = np.load(out)
            for init, mini in EQUALITY_CASES:
                name = f"{init} {'mini-batch' if mini else 'full batch'}"
                ref = reference[name]
                rows.append(
                    {
                        "case": name,
                        "workers": workers,
                        "max_relative_difference": float(
                            np.max(np.abs(got[name] - ref)) / np.max(np.abs(ref))
                        ),
                        "test_assignments_equal": float(
                            np.mean(got[f"{name} test"] == reference[f"{name} test"])
                        ),
                    }
                )
    train = ShardSet.open(folder / "train")
    reducer = SingleProcess()
    sharded = sharded_model("random", False, EQUALITY_K)
    sharded.fit(Part.of(train, 0, train.rows, reducer), EQUALITY_STEPS, reducer)
    memory = KMeans(EQUALITY_K, distance_metric="squared_euclidean", init="random", seed=0)
    memory.fit(train.read(0, train.rows), EQUALITY_STEPS)
    test_set = ShardSet.open(folder / "test")
    test = test_set.read(0, test_set.rows)
    in_memory = {
        "max_relative_difference": float(
            np.max(np.abs(sharded.cluster_centers_ - memory.cluster_centers_))
            / np.max(np.abs(memory.cluster_centers_))
        ),
        "test_assignments_equal": float(
            np.mean(memory.predict(test) == common_nearest(test, sharded.cluster_centers_))
        ),
        "inertia_relative_difference": float(sharded.inertia_ / memory.inertia_ - 1),
    }
    save(
        "equality",
        {
            "rows": train.rows,
            "dim": train.dim,
            "k": EQUALITY_K,
            "steps": EQUALITY_STEPS,
            "batch_size": EQUALITY_BATCH,
            "cases": rows,
            "sharded_vs_in_memory": in_memory,
        },
    )


def common_nearest(x: np.ndarray, c: np.ndarray) -> np.ndarray:
    x, c = x.astype(np.float64), c.astype(np.float64)
    return np.argmin(np.sum(c * c, 1)[None] - 2 * x @ c.T, axis=1)


def overhead(folder: Path, steps: int = 10) -> None:
    """Time per full-batch step: the in-memory engine (one process, every core) against the
    sharded fit in one process and on 2 local workers (one core each), same rows, k=100."""
    from kmeans_exp.engine import KMeans
    from kmeans_exp.shards import ShardSet

    train = ShardSet.open(folder / "train")
    x = train.read(0, train.rows)
    memory = KMeans(100, distance_metric="squared_euclidean", init="random", seed=0)
    memory.fit(x, steps)
    memory_step = float(np.median([s.seconds for s in memory.history_[1:]]))
    del x
    result = {
        "rows": train.rows,
        "dim": train.dim,
        "k": 100,
        "steps": steps,
        "in_memory_step_seconds": memory_step,
    }
    for name, extra in (
        ("one_process", []),
        ("two_workers", ["distributed=local", "distributed.workers=2"]),
    ):
        with tempfile.TemporaryDirectory(dir=SCRATCH) as store:
            metrics, _, _ = run_cli(
                shard_run(folder, "init=random", f"steps={steps}", *extra),
                Path(store),
            )
        train_s = metrics["train_seconds"] - metrics["init_seconds"]
        result[f"{name}_step_seconds"] = metrics["step_seconds"]
        result[f"{name}_collective_share"] = (
            metrics["collective_seconds"] / metrics["train_seconds"]
        )
        result[f"{name}_over_in_memory"] = metrics["step_seconds"] / memory_step
        result[f"{name}_steps_seconds"] = train_s
    save("overhead", result)


def init_quality(folder: Path, steps: int = 20) -> None:
    """k-means|| against k-means++ on the same shards (one process): init time, inertia after
    ``steps`` full-batch steps; the in-memory engine's k-means++ for reference."""
    from kmeans_exp.engine import KMeans
    from kmeans_exp.shards import ShardSet

    result = {}
    for init in ("kmeans_parallel", "kmeans_plus_plus"):
        with tempfile.TemporaryDirectory(dir=SCRATCH) as store:
            metrics, _, _ = run_cli(
                shard_run(folder, f"init={init}", f"steps={steps}"),
                Path(store),
            )
        result[init] = {"init_seconds": metrics["init_seconds"], "inertia": metrics["inertia"]}
    train = ShardSet.open(folder / "train")
    memory = KMeans(100, distance_metric="squared_euclidean", seed=0)
    memory.fit(train.read(0, train.rows), steps)
    result["in_memory_kmeans_plus_plus"] = {
        "init_seconds": memory.init_seconds_,
        "inertia": memory.inertia_,
    }
    save("init", result | {"rows": train.rows, "dim": train.dim, "k": 100, "steps": steps})


def peers(folder: Path) -> None:
    """Spark MLlib and dask-ml on the same shards (``scale_peers.py`` in their environment),
    beside this engine in memory, in one process on shards and on 2 local workers."""
    python = os.environ.get("PEERS_PYTHON")
    if not python:
        raise SystemExit("--peers: set PEERS_PYTHON to the python of a venv with '.[scale-peers]'")
    with tempfile.TemporaryDirectory(dir=SCRATCH) as tmp:
        out = Path(tmp) / "peers.json"
        subprocess.run(
            [
                python,
                str(Path(__file__).with_name("scale_peers.py")),
                str(folder / "train"),
                str(out),
            ],
            check=True,
        )
        result = json.loads(out.read_text())
    ours = {}
    for name, extra in (
        ("one_process", []),
        ("two_workers", ["distributed=local", "distributed.workers=2"]),
    ):
        with tempfile.TemporaryDirectory(dir=SCRATCH) as store:
            metrics, _, _ = run_cli(
                shard_run(folder, f"steps={1 + PEER_ITERATIONS}", *extra),
                Path(store),
            )
        ours[name] = {
            "init_seconds": metrics["init_seconds"],
            "iteration_seconds": metrics["step_seconds"],  # the median step
            "inertia_after_11": metrics["inertia"],
        }
    from kmeans_exp.engine import KMeans
    from kmeans_exp.shards import ShardSet

    train = ShardSet.open(folder / "train")
    memory = KMeans(100, distance_metric="squared_euclidean", seed=0)
    memory.fit(train.read(0, train.rows), 1 + PEER_ITERATIONS)
    ours["in_memory"] = {
        "init_seconds": memory.init_seconds_,
        "iteration_seconds": float(np.median([s.seconds for s in memory.history_[1:]])),
        "inertia_after_11": memory.inertia_,
    }
    save("peers", result | {"this_engine": ours})


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
    eq = results.get("equality")
    if eq:
        lines += [
            f"## The same centres on 1, 2 and 4 workers ({eq['machine']}, {eq['isa']})",
            "",
            f"{eq['rows']:,} x {eq['dim']} float32 rows (a 50-component mixture), k={eq['k']}, "
            f"{eq['steps']} steps, mini-batch {eq['batch_size']} rows; the reference is one "
            "worker on the same shards.",
            "",
            "| init, steps | workers | max centre difference / max centre | equal test rows |",
            "| --- | --- | --- | --- |",
        ]
        for row in eq["cases"]:
            lines.append(
                f"| {row['case']} | {row['workers']} | {row['max_relative_difference']:.1e} | "
                f"{row['test_assignments_equal']:.4%} |"
            )
        mem = eq["sharded_vs_in_memory"]
        lines += [
            "",
            "One worker on shards (float64 sums) against the in-memory engine (float32 sums), "
            f"random init (the same initial rows): max centre difference "
            f"{mem['max_relative_difference']:.1e} of the largest centre value, inertia "
            f"{mem['inertia_relative_difference']:+.1e}, equal test assignments "
            f"{mem['test_assignments_equal']:.4%}.",
            "",
        ]
    ov = results.get("overhead")
    if ov:
        lines += [
            f"## Time per full-batch step ({ov['machine']}, {ov['isa']})",
            "",
            f"{ov['rows']:,} x {ov['dim']} float32 rows, k={ov['k']}, {ov['steps']} steps "
            "(median step; the collective's share is of the whole fit's time).",
            "",
            "| engine | step | / in-memory | collective's share |",
            "| --- | --- | --- | --- |",
            f"| in memory, one process, 2 cores | {ov['in_memory_step_seconds']:.3f} s | 1.00x | |",
            f"| shards, one process, 2 cores | {ov['one_process_step_seconds']:.3f} s | "
            f"{ov['one_process_over_in_memory']:.2f}x | {ov['one_process_collective_share']:.1%} |",
            f"| shards, 2 local workers, 1 core each | {ov['two_workers_step_seconds']:.3f} s | "
            f"{ov['two_workers_over_in_memory']:.2f}x (target <= 1.25x) | "
            f"{ov['two_workers_collective_share']:.1%} |",
            "",
        ]
    ini = results.get("init")
    if ini:
        lines += [
            f"## k-means|| against k-means++ ({ini['machine']}, {ini['isa']})",
            "",
            f"{ini['rows']:,} x {ini['dim']} float32 rows (a 100-component mixture), k={ini['k']}, "
            f"inertia after {ini['steps']} full-batch steps.",
            "",
            "| init | init time | inertia |",
            "| --- | --- | --- |",
        ]
        for name in ("kmeans_parallel", "kmeans_plus_plus", "in_memory_kmeans_plus_plus"):
            r = ini[name]
            lines.append(f"| {name} | {r['init_seconds']:.1f} s | {r['inertia']:,.0f} |")
        lines.append("")
    peers = results.get("peers")
    if peers:
        lines += [
            f"## Peers on the same shards ({peers['machine']}, {peers['isa']})",
            "",
            "5,000,000 x 64 float32 rows (a 100-component mixture), k=100, k-means|| "
            "(Spark: initSteps 2; ours: 5 rounds; dask-ml: oversampling 2). A peer's iteration "
            "= (fit with 11 iterations - fit with 1) / 10; every inertia is of the centres "
            "after 11 iterations, computed the same way (float64).",
            "",
            "| implementation | init | per iteration | inertia after 11 iterations |",
            "| --- | --- | --- | --- |",
        ]
        for name, label in (("spark", "Spark MLlib local[2]"), ("dask_ml", "dask-ml")):
            r = peers[name]
            lines.append(
                f"| {label} {r['version']} | {r['init_seconds']:.1f} s | "
                f"{r['iteration_seconds']:.3f} s | {r['inertia_after_11']:,.0f} "
                f"({r['centers_found']} distinct centres; its own figure "
                f"{r['own_inertia_after_11']:,.0f}) |"
            )
        for name, label in (
            ("in_memory", "this engine in memory (k-means++), one process"),
            ("one_process", "this engine, shards, one process"),
            ("two_workers", "this engine, shards, 2 local workers"),
        ):
            r = peers["this_engine"][name]
            lines.append(
                f"| {label} | {r['init_seconds']:.1f} s | {r['iteration_seconds']:.3f} s "
                f"(median step) | {r['inertia_after_11']:,.0f} |"
            )
        lines.append("")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out-of-core", type=Path, metavar="FOLDER")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--equality", action="store_true")
    parser.add_argument("--overhead", action="store_true")
    parser.add_argument("--init", action="store_true")
    parser.add_argument("--peers", action="store_true")
    parser.add_argument("--fit-worker", nargs=2, type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.fit_worker:
        fit_worker(*args.fit_worker)
        return
    data = SCRATCH / "kmeans_exp-scale"
    if args.equality:
        equality(write_mixture(data / "equality", 200_000, 32, 50, 20_000))
    if args.overhead:
        overhead(write_mixture(data / "1m-96", 1_000_000, 96, 100, 0))
    if args.init:
        init_quality(write_mixture(data / "1m-96", 1_000_000, 96, 100, 0))
    if args.peers:
        peers(write_mixture(data / "5m-64", 5_000_000, 64, 100, 0))
    if args.out_of_core:
        out_of_core(args.out_of_core, args.workers, args.steps)


if __name__ == "__main__":
    main()
