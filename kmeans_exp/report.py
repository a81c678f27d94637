"""``python -m kmeans_exp.report``: a sweep's results as a table in the terminal.

    python -m kmeans_exp.report                       # the newest sweep in ./mlflow.db's kmeans_exp
    python -m kmeans_exp.report PARENT_RUN_ID --format markdown
    python -m kmeans_exp.report --experiment other --tracking-uri http://127.0.0.1:5000

One row per job, or one per group of seeds when ``seed`` was swept (mean ± std over the seeds),
with the swept values, validation and test accuracy, NMI, matched accuracy and ARI when logged,
inertia, training time, status and run id; the best row is marked (the highest
``optimized_metric`` the sweep ran with, validation accuracy unless set otherwise; for groups,
the highest mean). The store is
``--tracking-uri``, else ``MLFLOW_TRACKING_URI``, else ``sqlite:///mlflow.db`` here, as for runs.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import math
import sys
from typing import Any

from kmeans_exp import metrics, summary, tracking
from kmeans_exp.errors import KMeansExpError, TrackingError

FORMATS = ("table", "markdown", "csv", "json")
JOB_COLUMNS = metrics.names("report")


def job_table(rows: list[dict], keys: list[str], score: str) -> list[dict]:
    """One row per job: swept values, scores, status, run id, and ``best`` on the best job."""
    best = summary.best_row(rows, score)
    logged = [c for c in JOB_COLUMNS if any(r.get(c) is not None for r in rows)]
    out = []
    for row in sorted(rows, key=lambda r: summary.sort_key(tuple(r[k] for k in keys))):
        line = {k: row[k] for k in keys}
        line.update({c: row.get(c) for c in logged})
        line.update(status=row["status"], run_id=row["run_id"], best=row is best)
        out.append(line)
    return out


def group_table(rows: list[dict], keys: list[str], score: str) -> list[dict]:
    """One row per combination of the non-seed keys: n, means and stds, its best run."""
    groups = summary.group_by_seed(rows, keys)
    top = summary.best_group(groups, score)
    logged = [c for c in JOB_COLUMNS if any(g.get(f"{c}_mean") is not None for g in groups)]
    out = []
    for group in groups:
        members = [r for r in rows if r["run_id"] in group["run_ids"]]
        values = {k: group[k] for k in keys if k != summary.SEED_KEY}
        line = {**values, "n": group["n"]}
        for c in logged:
            line[f"{c}_mean"] = group[f"{c}_mean"]
            line[f"{c}_std"] = group[f"{c}_std"]
        total = sum(1 for r in rows if all(r[k] == v for k, v in values.items()))
        line["status"] = f"{group['n']}/{total} FINISHED"
        best = summary.best_row(members, score)  # None when no member logged the score
        line["run_id"] = best["run_id"] if best else group["run_ids"][0]
        line["best"] = group is top
        out.append(line)
    return out


def cell(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if isinstance(value, bool):
        return "*" if value else ""
    if isinstance(value, float):
        return f"{value:.4f}" if abs(value) < 1000 else f"{value:.1f}"
    return str(value)


def for_people(table: list[dict]) -> list[dict]:
    """Rows as text for reading: ``X_mean`` and ``X_std`` shown together as ``X`` (mean ± std)."""
    out = []
    for row in table:
        line = {}
        for key, value in row.items():
            if key.endswith("_std"):
                continue
            if key.endswith("_mean"):
                std = row[key.removesuffix("_mean") + "_std"]
                text = cell(value) + ("" if std is None else f" ± {cell(std)}")
                line[key.removesuffix("_mean")] = text
            else:
                line[key] = cell(value)
        out.append(line)
    return out


def render(table: list[dict], fmt: str, title: str) -> str:
    """The table in ``fmt``: numbers in full for csv and json, rounded text for people."""
    if fmt == "json":
        return json.dumps({"sweep": title, "rows": table}, indent=2)
    if fmt == "csv":
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, list(table[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows(table)
        return buffer.getvalue().rstrip("\n")
    shown = for_people(table)
    columns = list(shown[0])
    if fmt == "markdown":
        lines = [f"| {' | '.join(columns)} |", "|" + " --- |" * len(columns)]
        lines += [f"| {' | '.join(r[c] for c in columns)} |" for r in shown]
        return "\n".join(lines)
    from rich.console import Console
    from rich.table import Table

    rich_table = Table(title=title)
    for c in columns:
        rich_table.add_column(c, justify="right" if c not in ("status", "run_id") else "left")
    for r in shown:
        rich_table.add_row(*(r[c] for c in columns), style="bold" if r["best"] else None)
    console = Console(file=io.StringIO(), width=200, record=True)
    console.print(rich_table)
    return console.export_text().rstrip("\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m kmeans_exp.report", description=__doc__)
    parser.add_argument("run_id", nargs="?", help="a sweep's parent run id (default: the newest)")
    parser.add_argument("--experiment", default="kmeans_exp", help="MLflow experiment name")
    parser.add_argument("--tracking-uri", default=None, help="default: MLFLOW_TRACKING_URI")
    parser.add_argument("--format", choices=FORMATS, default="table")
    args = parser.parse_args(argv)
    try:
        uri = tracking.resolve_uri(args.tracking_uri)
        sweep = tracking.find_sweep(uri, args.run_id, args.experiment)
        rows = tracking.job_rows(sweep)
        if not rows:
            raise TrackingError(f"nothing to report: sweep {sweep.parent_run_id} has no jobs")
    except KMeansExpError as e:
        print(f"kmeans_exp.report: {e}", file=sys.stderr)
        return 1
    keys = sweep.swept_keys
    seeds = summary.SEED_KEY in keys
    make = group_table if seeds else job_table
    table = make(rows, keys, sweep.score)
    if not table:
        print(
            f"kmeans_exp.report: nothing to report: no FINISHED job in {sweep.parent_run_id}",
            file=sys.stderr,
        )
        return 1
    print(render(table, args.format, f"sweep {sweep.parent_run_id} ({uri})"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
