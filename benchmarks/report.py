"""The benchmark's report as Markdown (docs/performance.md quotes it) and JSON."""

from __future__ import annotations

import json
from pathlib import Path


def ms(seconds: float) -> str:
    return f"{seconds * 1e3:.1f}"


def number(value: float) -> str:
    """Three significant digits, without an exponent for large values (1601, not 1.6e+03)."""
    return f"{value:.0f}" if abs(value) >= 100 else f"{value:.3g}"


def markdown(report: dict) -> str:
    env = report["environment"]
    lines = [
        f"Measured {env['date']} on {env['cpu']} ({env['cores']} cores), {env['threads']} threads "
        f"for every implementation; TensorFlow {env['tensorflow']} on {env['device']}; "
        f"faiss {env['faiss']}, scikit-learn {env['sklearn']}; data {env['data']}; this "
        f"engine's whole-set passes in chunks of {env['pass_chunk']}.",
        "",
        "| full-batch iteration, k=25 | ms/iter (median, min-max) | ours ÷ peer | test acc |",
        "| --- | --- | --- | --- |",
    ]
    for row in report["full_batch"]:
        t = row["per_iter_s"]
        ratio = "" if row.get("ratio") is None else f"{row['ratio']:.2f}"
        acc = "" if row.get("test_accuracy") is None else f"{row['test_accuracy']:.4f}"
        spread = f"{ms(t['median'])} ({ms(t['min'])}–{ms(t['max'])})"
        lines.append(f"| {row['name']} | {spread} | {ratio} | {acc} |")
    lines += [
        "",
        "| full-batch iteration, alternating fits | this engine ms (best, worst) "
        "| scikit-learn ms (best, worst) | ours ÷ peer |",
        "| --- | --- | --- | --- |",
    ]
    for row in report["full_batch_by_k"]:
        ours, peer = row["ours_rounds_s"], row["sklearn_rounds_s"]
        lines.append(
            f"| k={row['k']}, {row['metric']} | {ms(min(ours))} ({ms(max(ours))}) | "
            f"{ms(min(peer))} ({ms(max(peer))}) | {row['ratio']:.2f} |"
        )
    mb = report["mini_batch"]
    lines += [
        "",
        f"| mini-batch step, batch {mb['batch']}, k=25 | ms/step (median) | ours ÷ peer |",
        "| --- | --- | --- |",
        f"| this engine, cosine | {mb['ours_cosine_s'] * 1e3:.3f} |  |",
        f"| this engine, squared_euclidean | {mb['ours_squared_euclidean_s'] * 1e3:.3f} |  |",
        f"| TF legacy op (cosine, feed_dict) | {mb['legacy_s'] * 1e3:.3f} | "
        f"{mb['ours_cosine_s'] / mb['legacy_s']:.2f} |",
        f"| scikit-learn MiniBatchKMeans (squared Euclidean) | {mb['sklearn_s'] * 1e3:.3f} | "
        f"{mb['ours_squared_euclidean_s'] / mb['sklearn_s']:.2f} |",
    ]
    tut = report["tutorial"]
    lines += [
        "",
        f"| tutorial (k=25, cosine, whole set each step, {tut['steps']} steps) "
        "| total s | ms/step | test acc |",
        "| --- | --- | --- | --- |",
        f"| TF legacy op, tf.compat.v1 graph + feed_dict | {tut['legacy']['total_s']:.2f} | "
        f"{ms(tut['legacy']['per_step_s'])} | {tut['legacy']['test_accuracy']:.4f} |",
        f"| this engine (`experiments=seed_tutorial`) | {tut['ours']['total_s']:.2f} | "
        f"{ms(tut['ours']['per_step_s'])} | {tut['ours']['test_accuracy']:.4f} |",
        f"| speed-up | {tut['speedup']:.1f}x | | |",
        "",
        "| full-batch scaling (cosine) | "
        + " | ".join(f"k={k}" for k in report["scaling_ks"])
        + " |",
        "| --- |" + " --- |" * len(report["scaling_ks"]),
    ]
    for n in report["scaling_ns"]:
        cells = [
            f"{ms(r['per_iter_s'])} ms ({r['ns_per_point_centre']:.2f} ns/pt·ctr)"
            + (" ⚠" if r["flag"] else "")
            for r in report["scaling"]
            if r["n"] == n
        ]
        lines.append(f"| n={n:,} | " + " | ".join(cells) + " |")
    cost = report["metrics_cost"]["seconds"]
    lines += [
        "",
        f"Clustering scores per run at k=25 (test NMI/ARI/AMI/matched accuracy, validation NMI, "
        f"silhouette on a 2,000-row sample): {cost['median']:.3f} s "
        f"({cost['min']:.3f}–{cost['max']:.3f}).",
    ]
    if "pass_parts" in report:
        parts = report["pass_parts"]
        lines += [
            "",
            f"Whole-set cosine pass at k=25: {parts['pass_s'] * 1e3:.1f} ms; XLA's product alone "
            f"{parts['product_s'] * 1e3:.1f} ms; streaming the float32 set once "
            f"{parts['stream_s'] * 1e3:.1f} ms; the pass minus its product is "
            f"{parts['rest_over_stream']:.2f}x the stream.",
        ]
    if "sweep" in report:
        sw = report["sweep"]
        lines += [
            "",
            f"Sequential sweep `-m k={sw['ks']}`: {sw['wall_s']:.1f} s wall, "
            f"{sw['train_eval_s']:.1f} s of train+eval, per-job overhead "
            f"{sw['overhead_per_job_s']:.2f} s (from the command; "
            f"{sw['overhead_per_job_inside_sweep_s']:.2f} s inside the parent run); "
            f"the same sweep over three seeds ({sw['jobs_tripled']} jobs) costs "
            f"{sw['overhead_per_extra_job_s']:.2f} s of overhead per extra job.",
        ]
    if "k_selection" in report:
        ks = report["k_selection"]
        lines += [
            "",
            f"`-m experiments=k_selection` ({ks['jobs']} sequential jobs): "
            f"{ks['ours_wall_s']:.1f} s wall, {ks['ours_train_eval_s']:.1f} s of train+eval; "
            "the same study as a scikit-learn + MLflow loop in one process: "
            f"{ks['sklearn_loop_wall_s']:.1f} s ({ks['ratio']:.2f}x).",
        ]
    if "default_run" in report:
        cold, warm = report["default_run"]["cold"], report["default_run"]["warm"]
        script = report["sklearn_mlflow_script"]
        lines += [
            "",
            "| default run (k=25, 15 steps, MNIST) | wall s | max RSS MB | train_seconds |",
            "| --- | --- | --- | --- |",
            f"| `python -m kmeans_exp`, fresh store, no cached programs | {cold['wall_s']:.2f} | "
            f"{cold['max_rss_mb']:.0f} | {cold['train_seconds']:.2f} |",
            f"| `python -m kmeans_exp`, existing store, cached programs | {warm['wall_s']:.2f} | "
            f"{warm['max_rss_mb']:.0f} | {warm['train_seconds']:.2f} |",
        ]
        for store in ("fresh_store", "existing_store"):
            peer = script[store]
            lines.append(
                f"| scikit-learn + MLflow script, {store.replace('_', ' ')} | "
                f"{peer['wall_s']:.2f} | {peer['max_rss_mb']:.0f} | |"
            )
    if "scale_10x" in report:
        big = report["scale_10x"]
        lines += [
            "",
            f"| data size (10x: {big['data_mb']:.0f} MB of uint8 IDX pixels) | wall s | "
            "max RSS MB | s/step |",
            "| --- | --- | --- | --- |",
        ]
        for name in ("full_batch_1x", "full_batch_10x", "mini_batch_10x"):
            row = big[name]
            lines.append(
                f"| {name.replace('_', ' ')} | {row['wall_s']:.1f} | {row['max_rss_mb']:.0f} | "
                f"{row['seconds_per_step']:.3f} |"
            )
    if "startup" in report:
        parts = ", ".join(
            f"{k.removesuffix('_s').replace('_', ' ')} {v:.2f} s"
            for k, v in report["startup"].items()
        )
        lines += ["", f"Start-up to the first training step: {parts}."]
    lines += ["", "| target | measured | bound | |", "| --- | --- | --- | --- |"]
    verdict = {True: "met", False: "NOT met", None: ""}  # None: an information row
    for t in report["targets"]:
        lines.append(
            f"| {t['text']} | {number(t['value'])}{t['unit']} | {t['bound']} | "
            f"{verdict[t['met']]} |"
        )
    return "\n".join(lines) + "\n"


def write(report: dict, out: Path, quick: bool) -> str:
    """``latest[-quick].md`` and ``.json`` under ``out``; returns the Markdown."""
    out.mkdir(parents=True, exist_ok=True)
    table = markdown(report)
    suffix = "-quick" if quick else ""
    (out / f"latest{suffix}.md").write_text(table)
    (out / f"latest{suffix}.json").write_text(json.dumps(report, indent=2, default=str))
    return table
