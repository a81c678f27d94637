"""What clustering a representation buys, and what it costs: the ``representations`` preset.

Runs ``python -m kmeans_exp -m experiments=representations`` (features raw, pca, umap,
autoencoder, n2d x seeds 0-2; k=10, squared Euclidean, k-means++) twice in a fresh folder: with
an empty feature cache, then again (cache hits). Reads the parent's ``sweep_groups.json``
through MlflowClient and writes ``benchmarks/results/representations.{md,json}``: test matched
accuracy, NMI and ARI per representation (mean ± std over the K-Means seeds), the time each
representation took to fit, both sweeps' wall time, and the autoencoder's training speed with
and without XLA against this machine's sgemm.

    python benchmarks/representations.py            # ~25-30 min on a 2-core machine
    python benchmarks/representations.py --curve    # also test ACC after 5, 10, 25, 50 epochs
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import cpu_name

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
KINDS = ("raw", "pca", "umap", "autoencoder", "n2d")
PUBLISHED = {  # all 70,000 images, Hungarian-matched ACC / NMI (DEC-keras README, N2D paper)
    "raw": "0.53 / 0.50 (K-Means on pixels)",
    "autoencoder": "0.88 / 0.81 (AE + K-Means, 300 epochs)",
    "n2d": "0.979 / – (N2D, 1000 epochs)",
    "umap": "ARI 0.924 (UMAP + HDBSCAN, umap-learn docs)",
}
TARGETS = {"umap": 0.80, "autoencoder": 0.80, "n2d": 0.95}  # pca: >= raw


def machine() -> str:
    """The CPU, its vector ISA (AVX-512 or AVX2) and core count."""
    return f"{cpu_name()}, {os.cpu_count()} cores"


def run_sweep(cwd: Path, env: dict[str, str]) -> float:
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "kmeans_exp", "-m", "experiments=representations"],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        raise SystemExit(f"the preset failed:\n{done.stderr[-3000:]}")
    return time.perf_counter() - start


def newest_groups(cwd: Path) -> list[dict]:
    import mlflow

    client = mlflow.MlflowClient(f"sqlite:///{cwd / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("kmeans_exp")
    (parent, *_) = client.search_runs(
        [experiment.experiment_id],
        filter_string="tags.`kmeans_exp.sweep` = 'parent'",
        order_by=["attributes.start_time DESC"],
    )
    table = json.loads(
        Path(client.download_artifacts(parent.info.run_id, "sweep_groups.json")).read_text()
    )
    return [dict(zip(table["columns"], row, strict=True)) for row in table["data"]]


def autoencoder_speed() -> dict[str, float]:
    """Seconds per epoch and GFLOP/s of the preset's autoencoder, with and without XLA, on the
    55,000 training images, and numpy's sgemm GFLOP/s in the same process."""
    import numpy as np

    from kmeans_exp import data
    from kmeans_exp.features import autoencoder

    x = data.features(data.load_splits("bundled", None, "mnist", None, 5000).x_train)
    dims = [784, 500, 500, 2000, 10, 2000, 500, 500, 784]
    macs = sum(a * b for a, b in itertools.pairwise(dims))
    flop_per_epoch = 6 * macs * len(x)  # forward 2, backward 4 per multiply-add
    out = {}
    for jit in (True, False):
        times = []

        def tick(epoch, encoder, times=times):
            times.append(time.perf_counter())

        start = time.perf_counter()
        autoencoder.fit(
            x, [500, 500, 2000], 10, 3, 256, 1e-3, 0, jit_compile=jit, on_epoch_end=tick
        )
        steady = (times[-1] - times[0]) / (len(times) - 1)  # epochs 2-3: compiled already
        name = "xla" if jit else "graph"
        out[f"{name}_seconds_per_epoch"] = steady
        out[f"{name}_gflops"] = flop_per_epoch / steady / 1e9
        out[f"{name}_first_epoch_seconds"] = times[0] - start
    a = np.random.default_rng(0).random((2000, 2000), dtype=np.float32)
    a @ a
    start = time.perf_counter()
    for _ in range(5):
        a @ a
    out["sgemm_gflops"] = 5 * 2 * 2000**3 / (time.perf_counter() - start) / 1e9
    return out


def accuracy_curve(epochs: tuple[int, ...] = (5, 10, 25, 50)) -> dict[int, float]:
    """Test matched ACC (mean over K-Means seeds 0-2) of the autoencoder's codes after each of
    ``epochs``, from one training run."""
    import numpy as np

    from kmeans_exp import data, evaluate
    from kmeans_exp.engine import KMeans
    from kmeans_exp.features import autoencoder, served_steps

    splits = data.load_splits("bundled", None, "mnist", None, 5000)
    x = data.features(splits.x_train)
    curve = {}

    def score(epoch, encoder):
        if epoch not in epochs:
            return
        codes, test = (
            served_steps.transform([encoder], data.features(s))
            for s in (splits.x_train, splits.x_test)
        )
        accs = []
        for seed in (0, 1, 2):
            model = KMeans(10, distance_metric="squared_euclidean", seed=seed).fit(codes, 100)
            accs.append(evaluate.matched_accuracy(splits.y_test, model.predict(test)))
        curve[epoch] = float(np.mean(accs))
        print(f"epoch {epoch}: test matched ACC {curve[epoch]:.3f}", flush=True)

    autoencoder.fit(x, [500, 500, 2000], 10, max(epochs), 256, 1e-3, 0, on_epoch_end=score)
    return curve


def report(results: dict) -> str:
    lines = [
        f"Measured {results['date']} on {results['machine']}; `experiments=representations` "
        "(k=10, squared Euclidean, k-means++, 100 steps), test split (10,000 images), mean ± "
        "std over K-Means seeds 0-2 (each representation fitted once, features.seed=0).",
        "",
        "| features | test ACC (matched) | NMI | ARI | features s, cold | target ACC "
        "| published (70k images) |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for group in sorted(results["groups"], key=lambda g: KINDS.index(g["features"])):
        kind = group["features"]
        cells = [
            f"{group[f'{m}_mean']:.3f} ± {group[f'{m}_std'] or 0:.3f}"
            for m in ("test_matched_accuracy", "test_nmi", "test_ari")
        ]
        target = TARGETS.get(kind)
        if kind == "pca":  # its target is the pixels' own accuracy
            raw = next(g for g in results["groups"] if g["features"] == "raw")
            target = raw["test_matched_accuracy_mean"]
        met = ""
        if target is not None:
            met_or_not = "met" if group["test_matched_accuracy_mean"] >= target else "NOT met"
            met = f"≥ {target:.2f}: {met_or_not}"
        fit = results["fit_seconds"].get(kind, 0.0)
        lines.append(
            f"| {kind} | {' | '.join(cells)} | {fit:.1f} | {met} | {PUBLISHED.get(kind, '')} |"
        )
    lines += [
        "",
        f"Whole preset (15 jobs): {results['cold_seconds'] / 60:.1f} min with an empty feature "
        f"cache, {results['warm_seconds'] / 60:.1f} min again (every representation a cache hit). "
        "Features s, cold: the three jobs' features_seconds in the empty-cache sweep, summed "
        "(one fit and two cache reads); n2d's starts from the autoencoder row's cached codes, "
        "so its fit is the autoencoder's plus its own.",
    ]
    speed = results.get("autoencoder_speed")
    if speed:
        lines.append(
            f"Autoencoder (784-500-500-2000-10, batch 256, Adam) on 55,000 images: "
            f"{speed['xla_seconds_per_epoch']:.1f} s/epoch with XLA ({speed['xla_gflops']:.0f} "
            f"GFLOP/s), {speed['graph_seconds_per_epoch']:.1f} s/epoch without "
            f"({speed['graph_gflops']:.0f} GFLOP/s); numpy sgemm "
            f"{speed['sgemm_gflops']:.0f} GFLOP/s."
        )
    if results.get("curve"):
        points = ", ".join(f"{e} epochs {a:.3f}" for e, a in sorted(results["curve"].items()))
        lines.append(f"Autoencoder + K-Means test ACC by epochs (mean over seeds 0-2): {points}.")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--curve", action="store_true", help="ACC after 5, 10, 25, 50 epochs")
    args = parser.parse_args()
    results: dict = {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "machine": machine(),
    }
    with tempfile.TemporaryDirectory() as tmp:
        cwd = Path(tmp)
        env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
        env["KMEANS_EXP_FEATURE_CACHE"] = str(cwd / "features")
        results["cold_seconds"] = run_sweep(cwd, env)
        cold = newest_groups(cwd)
        results["warm_seconds"] = run_sweep(cwd, env)
        results["groups"] = newest_groups(cwd)
        # The fit's cost: the longest features_seconds of the cold sweep's group (its miss).
        results["fit_seconds"] = {g["features"]: g["features_seconds_mean"] * g["n"] for g in cold}
    print(report(results), flush=True)
    results["autoencoder_speed"] = autoencoder_speed()
    if args.curve:
        results["curve"] = accuracy_curve()
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "representations.json").write_text(json.dumps(results, indent=2) + "\n")
    (RESULTS / "representations.md").write_text(report(results))
    print(report(results))


if __name__ == "__main__":
    main()
