"""What clustering a representation buys, and what it costs: the ``representations`` preset.

Runs ``python -m kmeans_exp -m experiments=representations`` (pipelines raw, pca, umap, umap +
gmm, autoencoder, autoencoder + dec, autoencoder + idec, n2d, n2d + gmm x seeds 0-2; k=10,
squared Euclidean, k-means++ with 10 restarts) twice in a fresh folder: with an empty feature
cache, then again (cache hits). Reads the parent's ``sweep_groups.json`` through MlflowClient
and writes ``benchmarks/results/representations.{md,json}``: test matched accuracy, NMI and ARI per
pipeline (mean ± std over whole-pipeline seeds: each seed refits the representation), the
K-Means before refining for dec and idec, the restarts near the best inertia, each pipeline's
fit time, both sweeps' wall time, and the autoencoder's training speed with and without XLA
against this machine's sgemm.

    python benchmarks/representations.py                      # ~40 min on a 2-core machine
    python benchmarks/representations.py --data fashion_mnist # the same on Fashion-MNIST
    python benchmarks/representations.py --curve              # also ACC after 10-100 epochs
    python benchmarks/representations.py --curve-only         # only that curve (seed 0)
    python benchmarks/representations.py --speed-only         # only the autoencoder's speed
    KMEANS_BENCH_ISA=avx2 python benchmarks/representations.py --speed-only  # run as AVX2
    python benchmarks/representations.py --published          # the papers' pipelines, as run
    python benchmarks/representations.py --published --data fashion_mnist --n2d-epochs 25,50
    python benchmarks/representations.py --continuation       # a curve's cost, continued

Each data set is one block of the results file: a run replaces its own block and keeps the
other's. ``--published`` writes the block's ``published`` part: each published pipeline
(``experiments=representations_published``: transductive, each paper's recipe and budget) per
seed, and its curve over pretraining epochs from one continued training. It uses the user's
feature cache (``KMEANS_EXP_FEATURE_CACHE``), so a later run continues the longest trainings
instead of starting over; each point reports the epochs it trained and those it read.
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

from common import AVX2_PROFILE, cpu_name

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
SPEED_KEY = "autoencoder_speed_as_avx2" if AVX2_PROFILE else "autoencoder_speed"
PIPELINES = (
    "raw",
    "pca",
    "umap",
    "umap_gmm",
    "autoencoder",
    "autoencoder_dec",
    "autoencoder_idec",
    "n2d",
    "n2d_gmm",
)
DATA_SETS = {"mnist": "MNIST", "fashion_mnist": "Fashion-MNIST"}
# Hungarian-matched ACC / NMI; the papers fit and score all 70,000 images.
PUBLISHED = {
    "mnist": {
        "raw": "0.53 / 0.50 (K-Means on pixels, DEC paper)",
        "autoencoder": "0.818 (IDEC paper); 0.88 / 0.81 (DEC-keras, 300 epochs)",
        "autoencoder_dec": "0.843 (DEC paper); 0.863 / 0.834 (IDEC paper)",
        "autoencoder_idec": "0.881 / 0.867 (IDEC paper)",
        "n2d": "0.979 / – (N2D, 1000 epochs)",
        "umap": "ARI 0.924 (UMAP + HDBSCAN, umap-learn docs)",
    },
    "fashion_mnist": {
        "raw": "0.474 / 0.512 (K-Means, N2D paper)",
        "autoencoder": "about 0.61 (AE + K-Means, 300 epochs)",
        "autoencoder_dec": "0.518 / 0.546 (DEC, N2D paper)",
        "n2d": "0.672 / 0.684 (N2D)",
    },
}
# The issues' targets: mean test matched ACC over seeds 0-2 (pca: >= raw; n2d on MNIST also
# std <= 0.01; idec on Fashion-MNIST: the autoencoder's + 0.02).
TARGETS = {
    "mnist": {"raw": 0.53, "umap": 0.80, "autoencoder": 0.80, "autoencoder_dec": 0.84,
              "autoencoder_idec": 0.88, "n2d": 0.96},
    "fashion_mnist": {"raw": 0.47, "umap": 0.58, "autoencoder": 0.55, "n2d": 0.65},
}  # fmt: skip


# The published pipelines (conf/pipeline/published_*.yaml) and what their papers report on all
# 70,000 images: mean matched ACC and, where the reference code's trials give it, their range.
PUBLISHED_PIPELINES = ("published_autoencoder", "published_dec", "published_idec", "published_n2d")
AS_PUBLISHED = {
    "mnist": {
        "published_autoencoder": (0.879, (0.807, 0.921), "DEC-keras, 10 trials"),
        "published_dec": (0.912, (0.830, 0.964), "DEC-keras, 10 trials"),
        "published_idec": (0.881, None, "IDEC paper"),
        "published_n2d": (0.979, None, "N2D paper"),
    },
    "fashion_mnist": {
        "published_autoencoder": (0.606, (0.561, 0.648), "DEC-keras, 10 trials"),
        "published_dec": (0.618, None, "DEC-keras"),
        "published_n2d": (0.672, None, "N2D paper"),
    },
}
# The targets for the published block: at or above the low end of the published range.
PUBLISHED_TARGETS = {
    "mnist": {"published_autoencoder": 0.807, "published_dec": 0.830, "published_idec": 0.86,
              "published_n2d": 0.97},
    "fashion_mnist": {"published_autoencoder": 0.561, "published_dec": 0.57,
                      "published_n2d": 0.62},
}  # fmt: skip
PUBLISHED_SCORES = ("all_matched_accuracy", "all_nmi", "all_ari")


def machine() -> str:
    """The CPU, its vector ISA (AVX-512 or AVX2) and core count."""
    return f"{cpu_name()}, {os.cpu_count()} cores"


def run_sweep(cwd: Path, env: dict[str, str], data_set: str) -> float:
    start = time.perf_counter()
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "kmeans_exp",
            "-m",
            "experiments=representations",
            f"data={data_set}",
        ],
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


def autoencoder_speed(rounds: int = 3) -> dict:
    """Seconds per epoch and GFLOP/s of the preset's autoencoder, with and without XLA (and in
    bfloat16, both ways, where the CPU has it natively), on the 55,000 training images, and
    numpy's sgemm GFLOP/s in the same process.

    The ways take turns, ``rounds`` times (3 epochs each, the first one compiling), and each
    reports its median: a busy neighbour then slows every way alike instead of one of them.
    """
    import dataclasses
    import statistics

    import numpy as np

    from kmeans_exp import compose, data
    from kmeans_exp.features.kinds import autoencoder
    from kmeans_exp.options import Precision

    config = compose(["features=autoencoder", "features.epochs=3", "features.seed=0"]).features
    x = data.features(data.load_splits("bundled", None, "mnist", None, 5000).x_train)
    dims = [784, 500, 500, 2000, 10, 2000, 500, 500, 784]
    macs = sum(a * b for a, b in itertools.pairwise(dims))
    flop_per_epoch = 6 * macs * len(x)  # forward 2, backward 4 per multiply-add
    ways = [("xla", True, Precision.float32), ("graph", False, Precision.float32)]
    if autoencoder.native_bfloat16() and not AVX2_PROFILE:  # AVX2 has no bfloat16
        ways += [("bfloat16_xla", True, Precision.bfloat16)]
        ways += [("bfloat16_graph", False, Precision.bfloat16)]
    seconds: dict[str, list[float]] = {name: [] for name, _, _ in ways}
    sgemm: list[float] = []
    a = np.random.default_rng(0).random((2000, 2000), dtype=np.float32)
    a @ a
    for _ in range(rounds):
        for name, jit, precision in ways:
            times: list[float] = []

            def tick(epoch, encoder, decoder, times=times):
                times.append(time.perf_counter())

            run_config = dataclasses.replace(config, precision=precision)
            autoencoder.train(run_config, x, jit_compile=jit, on_epoch_end=tick)
            seconds[name] += list(np.diff(times))  # epochs 2-3: compiled already
        start = time.perf_counter()
        for _ in range(5):
            a @ a
        sgemm.append(5 * 2 * 2000**3 / (time.perf_counter() - start) / 1e9)
    out: dict = {"machine": machine(), "rounds": rounds}
    for name, values in seconds.items():
        steady = statistics.median(values)
        out[f"{name}_seconds_per_epoch"] = steady
        out[f"{name}_seconds_range"] = [min(values), max(values)]
        out[f"{name}_gflops"] = flop_per_epoch / steady / 1e9
    out["sgemm_gflops"] = statistics.median(sgemm)
    return out


def accuracy_curve(
    data_set: str, epochs: tuple[int, ...] = (10, 25, 50, 100)
) -> dict[str, dict[int, float]]:
    """Test matched ACC of autoencoder + K-Means, + dec and + idec (the preset's settings), after
    each of ``epochs`` of one seed-0 pretraining run: where the pretraining budget bounds them."""
    import dataclasses

    from kmeans_exp import compose, data, evaluate
    from kmeans_exp.engine import KMeans
    from kmeans_exp.features import served_steps
    from kmeans_exp.features.kinds import autoencoder
    from kmeans_exp.refine import stage
    from kmeans_exp.refine.kinds import Start, kind

    overrides = ["features=autoencoder", f"features.epochs={max(epochs)}", "features.seed=0"]
    config = compose(overrides).features
    d = compose([f"data={data_set}"]).data
    splits = data.load_splits(d.source, d.path, d.dataset, d.url, d.validation_size)
    x, test = data.features(splits.x_train), data.features(splits.x_test)
    curve: dict[str, dict[int, float]] = {"autoencoder": {}, "dec": {}, "idec": {}}

    def score(epoch, encoder, decoder):
        if epoch not in epochs:
            return
        codes = served_steps.transform([encoder], x)
        model = KMeans(10, distance_metric="squared_euclidean", seed=0, n_init=10)
        model.fit(codes, 100)
        test_codes = served_steps.transform([encoder], test)
        curve["autoencoder"][epoch] = evaluate.matched_accuracy(
            splits.y_test, model.predict(test_codes)
        )
        for method in ("dec", "idec"):
            refine = compose(["experiments=representations", f"pipeline=autoencoder_{method}"])
            start = Start(x, codes, model.labels_, test_codes, model.cluster_centers_)
            start = dataclasses.replace(start, encoder=encoder, decoder=decoder)
            refined = kind(refine.refine).fit(refine.refine, start, 0)
            found = stage.nearest(served_steps.transform([refined.encoder], test), refined.centres)
            curve[method][epoch] = evaluate.matched_accuracy(splits.y_test, found[0])
        print(epoch, {m: c[epoch] for m, c in curve.items()}, flush=True)

    autoencoder.train(config, x, on_epoch_end=score)
    return curve


def published_run(data_set: str, pipeline: str, seed: int, epochs: int | None, store: str) -> dict:
    """One published pipeline, run as the command line runs it (``run_experiment``), logged to
    ``store``: its all_* scores, what its autoencoder trained and read, and its stages' costs."""
    from kmeans_exp import compose, run_experiment

    overrides = [
        "experiments=representations_published",
        f"pipeline={pipeline}",
        f"data={data_set}",
        f"seed={seed}",
        f"tracking.uri={store}",
        "tracking.experiment_name=published",
    ]
    if epochs is not None:
        overrides.append(f"features.epochs={epochs}")
    exp = compose(overrides)
    result = run_experiment(exp)
    keep = (*PUBLISHED_SCORES, "kmeans_all_matched_accuracy", "features_epochs_trained",
            "features_epochs_cached", "features_fit_seconds", "train_seconds", "refine_seconds",
            "gmm_converged", "gmm_iterations")  # fmt: skip
    row = {name: result.metrics[name] for name in keep if name in result.metrics}
    row |= {"pipeline": pipeline, "seed": seed, "epochs": exp.features.epochs}
    print(json.dumps(row), flush=True)
    return row


def published(
    data_set: str,
    seeds: list[int],
    curves: dict[str, list[int]],
    budgets: dict[str, int],
    pipelines: tuple[str, ...] = PUBLISHED_PIPELINES,
) -> dict:
    """The ``published`` part of a data set's block: every published pipeline at its paper's
    budget (or ``budgets[pipeline]`` epochs, as far as time allowed) for each seed
    (``groups``), and each pipeline's curve over ``curves[pipeline]`` epochs, seed 0, asked
    shortest first so that one training continues along it."""
    import numpy as np

    store = f"sqlite:///{Path(tempfile.mkdtemp()) / 'mlflow.db'}"
    names = [p for p in pipelines if p in AS_PUBLISHED[data_set]]
    curve: dict[str, list[dict]] = {}
    for name in names:
        points = curves.get(name, [])
        if points:
            curve[name] = [published_run(data_set, name, 0, e, store) for e in sorted(points)]
    runs = {
        name: [published_run(data_set, name, s, budgets.get(name), store) for s in seeds]
        for name in names
    }
    groups = []
    for name, rows in runs.items():
        if not rows:  # --seeds "": only the curves
            continue
        mean, span, source = AS_PUBLISHED[data_set][name]
        group = {"pipeline": name, "n": len(rows), "epochs": rows[0]["epochs"]}
        for score in PUBLISHED_SCORES:
            values = np.array([r[score] for r in rows])
            group[f"{score}_mean"] = float(values.mean())
            group[f"{score}_std"] = float(values.std(ddof=1)) if len(values) > 1 else None
            group[f"{score}_min"], group[f"{score}_max"] = float(values.min()), float(values.max())
        group |= {"published_mean": mean, "published_range": span, "published_source": source}
        groups.append(group)
    return {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "machine": machine(),
        "seeds": seeds,
        "groups": groups,
        "curve": curve,
    }


def merge_published(earlier: dict, new: dict) -> dict:
    """``new``'s published part, keeping ``earlier``'s groups and curves of the pipelines it
    did not run; the date and machine are the newest run's."""
    ran = {g["pipeline"] for g in new["groups"]} | set(new["curve"])
    groups = [g for g in earlier["groups"] if g["pipeline"] not in ran] + new["groups"]
    order = {name: i for i, name in enumerate(PUBLISHED_PIPELINES)}
    groups.sort(key=lambda g: order[g["pipeline"]])
    curve = {k: v for k, v in earlier["curve"].items() if k not in ran} | new["curve"]
    curve = dict(sorted(curve.items(), key=lambda item: order[item[0]]))
    seeds = sorted(set(earlier["seeds"]) | set(new["seeds"]))
    return new | {"groups": groups, "curve": curve, "seeds": seeds}


def published_text(part: dict, data_set: str) -> str:
    """The published block as Markdown: the groups beside the papers', then the curves."""
    targets = PUBLISHED_TARGETS[data_set]
    seeds = ", ".join(map(str, part["seeds"]))
    lines = [
        "",
        f"As published ({DATA_SETS[data_set]}; measured {part['date']} on {part['machine']}): "
        "`experiments=representations_published`, every image fitted and scored "
        f"(transductive), each paper's recipe and budget, seeds {seeds}.",
        "",
        "| pipeline | epochs | n | all ACC (matched) mean ± std [min, max] | NMI | ARI "
        "| published ACC (range) | target |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for g in part["groups"]:
        acc = f"{g['all_matched_accuracy_mean']:.3f} ± {g['all_matched_accuracy_std'] or 0:.3f}"
        acc += f" [{g['all_matched_accuracy_min']:.3f}, {g['all_matched_accuracy_max']:.3f}]"
        span = g["published_range"]
        pub = f"{g['published_mean']:.3f}" + (f" ({span[0]:.3f}–{span[1]:.3f})" if span else "")
        pub += f", {g['published_source']}"
        target = targets.get(g["pipeline"])
        met = ""
        if target is not None:
            ok = g["all_matched_accuracy_mean"] >= target
            met = f"≥ {target:.3f}: {'met' if ok else 'NOT met'}"
        nmi, ari = g["all_nmi_mean"], g["all_ari_mean"]
        lines.append(
            f"| {g['pipeline']} | {g['epochs']} | {g['n']} | {acc} | {nmi:.3f} | {ari:.3f} "
            f"| {pub} | {met} |"
        )
    lines += [
        "",
        "Curve over pretraining epochs, seed 0 (each point continues the previous one's "
        "training: epochs trained by this run / read from the cache; features s: what the "
        "fit of the point's cache entry cost when it ran, i.e. its own epochs, and for n2d "
        "UMAP too; after it s: the K-Means and the refinement, timed apart):",
        "",
        "| pipeline | epochs | all ACC (matched) | NMI | K-Means before refining "
        "| epochs trained / cached | features s | after it s |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for name, points in part["curve"].items():
        for r in points:
            before = r.get("kmeans_all_matched_accuracy")
            after = r["train_seconds"] + r.get("refine_seconds", 0.0)
            lines.append(
                f"| {name} | {r['epochs']} | {r['all_matched_accuracy']:.3f} "
                f"| {r['all_nmi']:.3f} | {'' if before is None else f'{before:.3f}'} "
                f"| {r['features_epochs_trained']:.0f} / {r['features_epochs_cached']:.0f} "
                f"| {r['features_fit_seconds']:.0f} | {after:.0f} |"
            )
    return "\n".join(lines) + "\n"


def continuation_cost(rows: int = 10000, points: tuple[int, ...] = (5, 10, 20)) -> dict:
    """What a curve over ``points`` epochs costs against one straight training to the last:
    DEC-keras's recipe on the first ``rows`` MNIST training images, each through the
    representation stage (a fresh cache for the curve, none for the straight training), the
    straight training run first and last (its mean is the reference)."""
    import dataclasses

    from kmeans_exp import compose, data
    from kmeans_exp.features import stage

    overrides = ["pipeline=published_autoencoder", "features.seed=0", "features.fit_on=train"]
    config = compose(overrides).features
    splits = data.load_splits("bundled", None, "mnist", None, 5000)
    small = dataclasses.replace(splits, x_train=splits.x_train[:rows])

    def timed(epochs: int) -> tuple[float, int]:
        start = time.perf_counter()
        rep = stage.represent(dataclasses.replace(config, epochs=epochs), small, 0)
        return time.perf_counter() - start, rep.epochs_trained

    out: dict = {"machine": machine(), "rows": rows, "points": list(points)}
    saved = os.environ.get("KMEANS_EXP_FEATURE_CACHE")
    try:
        os.environ["KMEANS_EXP_FEATURE_CACHE"] = "off"
        straight = [timed(points[-1])[0]]
        with tempfile.TemporaryDirectory() as tmp:
            os.environ["KMEANS_EXP_FEATURE_CACHE"] = tmp
            curve = [timed(e) for e in points]
        os.environ["KMEANS_EXP_FEATURE_CACHE"] = "off"
        straight.append(timed(points[-1])[0])
    finally:
        if saved is None:
            os.environ.pop("KMEANS_EXP_FEATURE_CACHE", None)
        else:
            os.environ["KMEANS_EXP_FEATURE_CACHE"] = saved
    out["straight_seconds"] = straight
    out["curve_seconds"] = [seconds for seconds, _ in curve]
    out["curve_epochs_trained"] = [trained for _, trained in curve]
    out["ratio"] = sum(out["curve_seconds"]) / (sum(straight) / len(straight))
    return out


def continuation_text(cost: dict) -> str:
    points = ", ".join(map(str, cost["points"]))
    straight = " and ".join(f"{s:.1f}" for s in cost["straight_seconds"])
    curve = " + ".join(f"{s:.1f}" for s in cost["curve_seconds"])
    trained = " + ".join(map(str, cost["curve_epochs_trained"]))
    ok = "met" if cost["ratio"] <= 1.1 else "NOT met"
    return (
        f"Continuation ({cost['machine']}): a curve of {points} epochs on {cost['rows']:,} "
        f"images trained {trained} epochs in {curve} s, against {straight} s for one straight "
        f"{cost['points'][-1]}-epoch training: {cost['ratio']:.2f}x (target ≤ 1.1x: {ok})."
    )


def speed_text(speed: dict) -> str:
    """The autoencoder's speed in both precisions, against sgemm, on the machine it ran on."""
    text = (
        f"Autoencoder (784-500-500-2000-10, batch 256, Adam) on 55,000 images, "
        f"{speed['machine']}, median of {2 * speed['rounds']} epochs per way, the ways taking "
        f"turns: {speed['xla_seconds_per_epoch']:.1f} s/epoch with XLA ({speed['xla_gflops']:.0f} "
        f"GFLOP/s), {speed['graph_seconds_per_epoch']:.1f} s/epoch without "
        f"({speed['graph_gflops']:.0f} GFLOP/s); numpy sgemm {speed['sgemm_gflops']:.0f} GFLOP/s "
        f"(XLA: {speed['xla_gflops'] / speed['sgemm_gflops']:.2f}x)."
    )
    for way in ("xla", "graph"):
        seconds = speed.get(f"bfloat16_{way}_seconds_per_epoch")
        if seconds:
            text += (
                f" In bfloat16 (`features.precision=bfloat16`, "
                f"{'XLA' if way == 'xla' else 'without XLA'}): {seconds:.1f} s/epoch, "
                f"{speed['xla_seconds_per_epoch'] / seconds:.2f}x float32's epochs per second "
                "with XLA."
            )
    return text


def report(blocks: dict) -> str:
    """Every data set's block, MNIST first."""
    return "\n".join(block(blocks[name], name) for name in DATA_SETS if name in blocks)


def block(results: dict, data_set: str) -> str:
    published, targets = PUBLISHED[data_set], TARGETS[data_set]
    if "groups" not in results:  # only the published part measured so far
        part = results.get("published")
        return published_text(part, data_set) if part else ""
    lines = [
        f"Measured {results['date']} on {results['machine']}; {DATA_SETS[data_set]}, "
        "`experiments=representations` "
        "(k=10, squared Euclidean, k-means++ with 10 restarts, 100 steps; dec and idec at most "
        "2,800 batches), test split (10,000 images), mean ± std over whole-pipeline seeds 0-2 "
        "(each seed refits the representation).",
        "",
        "| pipeline | test ACC (matched) | NMI | ARI | K-Means before refining "
        "| restarts near best | fit s per seed, cold | target ACC | published |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    groups = {g["pipeline"]: g for g in results["groups"]}
    for name in PIPELINES:
        group = groups.get(name)
        if group is None:
            continue
        cells = [
            f"{group[f'{m}_mean']:.3f} ± {group[f'{m}_std'] or 0:.3f}"
            for m in ("test_matched_accuracy", "test_nmi", "test_ari")
        ]
        before = group.get("kmeans_test_matched_accuracy_mean")
        cells.append("" if before is None else f"{before:.3f}")
        cells.append(f"{group['restarts_near_best_mean']:.1f} of 10")
        cells.append(f"{results['fit_seconds'].get(name, 0.0):.1f}")
        target = targets.get(name)
        if name == "pca":  # its target is the pixels' own accuracy
            target = groups["raw"]["test_matched_accuracy_mean"]
        if name == "autoencoder_idec" and data_set == "fashion_mnist":
            target = groups["autoencoder"]["test_matched_accuracy_mean"] + 0.02
        if name == "n2d_gmm" and data_set == "fashion_mnist" and "n2d" in groups:
            target = groups["n2d"]["test_matched_accuracy_mean"] + 0.02
        met = ""
        if target is not None:
            ok = group["test_matched_accuracy_mean"] >= target
            spread = name == "n2d" and data_set == "mnist"
            if spread:
                ok = ok and (group["test_matched_accuracy_std"] or 0) <= 0.01
            met = f"≥ {target:.2f}{', std ≤ 0.01' if spread else ''}: "
            met += "met" if ok else "NOT met"
        lines.append(f"| {name} | {' | '.join(cells)} | {met} | {published.get(name, '')} |")
    lines += [
        "",
        f"Whole preset ({3 * len(groups)} jobs): {results['cold_seconds'] / 60:.1f} min with an "
        f"empty feature cache, {results['warm_seconds'] / 60:.1f} min again (every "
        "representation and refinement a cache hit). Fit s per seed, cold: features_seconds + "
        "refine_seconds of the empty-cache sweep, mean over the seeds; dec, idec and n2d start "
        "from the autoencoder "
        "pipeline's cached codes, so their fit adds to the autoencoder's.",
    ]
    for key in ("autoencoder_speed", "autoencoder_speed_as_avx2"):
        if results.get(key):
            lines.append(speed_text(results[key]))
    if results.get("curve"):
        lines += [
            "",
            "Test ACC (matched) by pretraining epochs, seed 0 (one autoencoder training; "
            "K-Means with 10 restarts, then dec and idec with the preset's settings at each):",
            "",
            "| epochs | " + " | ".join(results["curve"]) + " |",
            "| --- |" + " --- |" * len(results["curve"]),
        ]
        for epoch in sorted(next(iter(results["curve"].values())), key=int):
            cells = [f"{c[epoch]:.3f}" for c in results["curve"].values()]
            lines.append(f"| {epoch} | {' | '.join(cells)} |")
    if results.get("published"):
        lines.append(published_text(results["published"], data_set))
    if results.get("continuation"):
        lines += ["", continuation_text(results["continuation"])]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", choices=list(DATA_SETS), default="mnist")
    parser.add_argument("--curve", action="store_true", help="ACC after 10, 25, 50, 100 epochs")
    only_flags = {
        "--curve-only": "only the curve, into the data set's block",
        "--speed-only": "only the autoencoder's speed (KMEANS_BENCH_ISA=avx2: as AVX2)",
        "--published": "only the published pipelines, as run",
        "--continuation": "only what a curve over epochs costs against one straight training",
    }
    for flag, text in only_flags.items():
        parser.add_argument(flag, action="store_true", help=text)
    parser.add_argument("--seeds", default="0", help="--published: seeds, e.g. 0,1,2")
    parser.add_argument(
        "--pipelines",
        default=",".join(PUBLISHED_PIPELINES),
        help="--published: which published pipelines",
    )
    parser.add_argument("--ae-epochs", default="25,50,100,300", help="--published: AE curve")
    parser.add_argument("--refine-epochs", default="300", help="--published: dec, idec curve")
    parser.add_argument("--n2d-epochs", default="25,50,100", help="--published: n2d curve")
    parser.add_argument(
        "--n2d-budget", type=int, help="--published: n2d's epochs (default: the paper's 1,000)"
    )
    args = parser.parse_args()
    only = args.curve_only or args.speed_only or args.published or args.continuation
    measured = {} if only else measure(args.data)
    if args.continuation:
        measured["continuation"] = continuation_cost()
    if args.published:

        def numbers(text: str) -> list[int]:
            return [int(v) for v in text.split(",") if v]

        curves = {
            "published_autoencoder": numbers(args.ae_epochs),
            "published_dec": numbers(args.refine_epochs),
            "published_idec": numbers(args.refine_epochs),
            "published_n2d": numbers(args.n2d_epochs),
        }
        budgets = {} if args.n2d_budget is None else {"published_n2d": args.n2d_budget}
        pipelines = tuple(args.pipelines.split(","))
        measured["published"] = published(
            args.data, numbers(args.seeds), curves, budgets, pipelines
        )
    if args.curve or args.curve_only:
        measured["curve"] = accuracy_curve(args.data)
    if args.speed_only:
        measured[SPEED_KEY] = autoencoder_speed()
    stored = RESULTS / "representations.json"
    blocks = json.loads(stored.read_text()) if stored.is_file() else {}  # read last: other runs
    earlier = blocks.get(args.data, {})
    if args.published and earlier.get("published"):  # keep the pipelines not run this time
        measured["published"] = merge_published(earlier["published"], measured["published"])
    blocks[args.data] = earlier | measured if only else measured
    RESULTS.mkdir(exist_ok=True)
    stored.write_text(json.dumps(blocks, indent=2) + "\n")
    (RESULTS / "representations.md").write_text(report(blocks))
    print(report(blocks))


def measure(data_set: str) -> dict:
    """The preset on ``data_set``, cold then warm, and the autoencoder's speed."""
    results: dict = {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "machine": machine(),
    }
    with tempfile.TemporaryDirectory() as tmp:
        cwd = Path(tmp)
        env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
        env["KMEANS_EXP_FEATURE_CACHE"] = str(cwd / "features")
        env["KMEANS_EXP_NUMBA_CACHE"] = str(cwd / "numba")  # cold: UMAP compiles too
        results["cold_seconds"] = run_sweep(cwd, env, data_set)
        cold = newest_groups(cwd)
        results["warm_seconds"] = run_sweep(cwd, env, data_set)
        results["groups"] = newest_groups(cwd)
        # The fit's cost per seed: the cold sweep's features and refinement seconds.
        results["fit_seconds"] = {
            g["pipeline"]: g["features_seconds_mean"] + (g["refine_seconds_mean"] or 0.0)
            for g in cold
        }
    print(block(results, data_set), flush=True)
    results[SPEED_KEY] = autoencoder_speed()
    return results


if __name__ == "__main__":
    main()
