"""The MLflow UI as users use it: a sweep over k, compared in headless Chromium.

Needs Debian's ``chromium`` and Playwright's Python package (``pip install -e '.[ui]'``);
``.ci/run`` installs both. Screenshots go to ``$KMEANS_EXP_SCREENSHOTS`` (docs/tracking.md's
come from there) or the test's temporary directory.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import mlflow
import pytest
from conftest import run_cli
from servers import tracking_server

pytestmark = pytest.mark.slow

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
sync_api = pytest.importorskip("playwright.sync_api", reason="pip install -e '.[ui]'")
if not Path(CHROMIUM).exists():
    pytest.skip("Debian's chromium is not installed", allow_module_level=True)

BROWSER_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def cell_texts(page, column: str) -> list[str]:
    cells = page.locator(f'[role="gridcell"][col-id="{column}"]')
    # A run-name cell starts with the run's colour swatch ("#308613\n"): keep the last line.
    return [cells.nth(i).inner_text().strip().splitlines()[-1] for i in range(cells.count())]


def test_sweep_runs_and_their_comparison_show_in_the_mlflow_ui(tmp_path):
    shots = Path(os.environ.get("KMEANS_EXP_SCREENSHOTS", tmp_path))
    shots.mkdir(parents=True, exist_ok=True)
    with tracking_server(tmp_path) as url:
        args = ["-m", "k=10,25,50", "steps=10", "tracking.log_model=false"]
        result = run_cli(args, tmp_path, env={"MLFLOW_TRACKING_URI": url})
        assert result.returncode == 0, result.stderr[-3000:]
        client = mlflow.MlflowClient(url)
        experiment_id = client.get_experiment_by_name("kmeans_exp").experiment_id
        runs = {r.info.run_name: r for r in client.search_runs([experiment_id])}
        parent_name = next(n for n in runs if n.startswith("sweep "))
        parent_id = runs[parent_name].info.run_id

        with sync_api.sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=BROWSER_ARGS)
            page = browser.new_page(viewport={"width": 1400, "height": 720})
            page.goto(f"{url}/#/experiments/{experiment_id}/runs?workflowType=machine_learning")
            page.get_by_text(parent_name[:20]).first.wait_for(timeout=60_000)
            close_assistant = page.locator(
                '[data-component-id="mlflow.assistant.chat_panel.close"]'
            )
            if close_assistant.count():
                close_assistant.first.click()
            page.locator('[data-component-id*="runnamecellrenderer"]').first.click()  # expand
            page.get_by_text("k=25", exact=True).wait_for(timeout=30_000)

            page.locator('[data-testid="column-selection-dropdown"]').first.click()
            dialog = page.locator('[role="dialog"]')
            for name in ("Dataset", "Source", "Models", "k", "test_accuracy", "test_nmi"):
                dialog.get_by_text(name, exact=True).first.click()  # hide three, show three
            page.keyboard.press("Escape")
            page.locator('[role="gridcell"][col-id="params.`k`"]').first.wait_for(timeout=30_000)

            names = cell_texts(page, "attributes.`Run Name`")
            assert parent_name[:20] in " ".join(names)
            for k in (10, 25, 50):
                assert f"k={k}" in names
            ks = cell_texts(page, "params.`k`")
            for metric in ("test_accuracy", "test_nmi"):
                shown = dict(zip(ks, cell_texts(page, f"metrics.`{metric}`"), strict=True))
                for k in (10, 25, 50):
                    expected = runs[f"k={k}"].data.metrics[metric]
                    assert float(shown[str(k)]) == pytest.approx(expected, abs=1e-3)
            page.screenshot(path=str(shots / "mlflow-runs-table.png"))

            # Chart view: the children's avg_distance histories, one curve per k, overlaid.
            page.locator('label:has(input[name="runs-view-mode"][value="CHART"])').click()
            search = page.get_by_placeholder("Search metric charts")
            search.wait_for(timeout=30_000)
            search.fill("avg_distance")
            charts = page.locator(".js-plotly-plot")
            sync_api.expect(charts).to_have_count(1, timeout=30_000)  # only avg_distance left
            charts.locator(".trace").nth(2).wait_for(timeout=30_000)  # a curve per child
            page.screenshot(path=str(shots / "mlflow-runs-charts.png"))

            # The parent's k-selection figure: validation NMI and accuracy against k.
            page.goto(
                f"{url}/#/experiments/{experiment_id}/runs/{parent_id}/artifacts/k_selection.png"
            )
            page.get_by_text("sweep_summary.json").first.wait_for(timeout=30_000)
            page.wait_for_function(  # the figure itself, decoded at its full width
                "() => [...document.images].some(i => i.complete && i.naturalWidth >= 800)",
                timeout=30_000,
            )
            assert page.get_by_text("sweep_groups.json").count() == 0  # no seeds swept
            page.screenshot(path=str(shots / "mlflow-k-selection.png"))
            browser.close()
    assert runs[parent_name].data.tags["suggested_k"] in {"10", "25", "50"}
