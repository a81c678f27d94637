"""Promises about the package itself: quickstart, CI, light imports, configs in the wheel."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from conftest import ROOT


def quickstart_commands() -> list[str]:
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Quickstart", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```bash\n(.+?)\n```", section)


def test_readme_quickstart_has_two_commands_and_ci_runs_the_test_one():
    install_and_run, install_and_test = quickstart_commands()
    assert install_and_run.endswith("python -m kmeans_exp")
    assert install_and_test.endswith("python -m pytest")
    assert install_and_test in (ROOT / ".ci" / "run").read_text()


def test_performance_page_quotes_the_committed_benchmark_results():
    """docs/performance.md quotes the latest results of each ISA profile under
    ``benchmarks/results/`` whole: one run each, machine, ISA and date; the README links to it
    and quotes no number of its own."""
    page = (ROOT / "docs" / "performance.md").read_text()
    committed = sorted((ROOT / "benchmarks" / "results").glob("*/latest.md"))
    assert {path.parent.name for path in committed} >= {"avx512", "avx2"}  # both kinds of CPU
    for path in committed:
        results = path.read_text()
        assert results.startswith("Measured ") and "| target | measured | bound |" in results
        assert "(AVX" in results.splitlines()[0] and results in page
    assert "docs/performance.md" in (ROOT / "README.md").read_text()


def test_representation_numbers_are_the_committed_benchmark_results():
    """docs/representations.md quotes ``benchmarks/results/representations.md`` whole; the
    README carries each data set's held-out table and its table as published (the curves
    stay in the docs)."""
    results = (ROOT / "benchmarks" / "results" / "representations.md").read_text()
    assert results.startswith("Measured ") and "(AVX" in results.splitlines()[0]
    assert results in (ROOT / "docs" / "representations.md").read_text()
    headers = r"\| pipeline \| (?:test ACC|epochs \| n \|)"
    tables = re.findall(rf"^{headers}.*?(?=\n[^|])", results, re.M | re.S)
    assert len(tables) == 4  # held out and as published, for each data set
    assert all(table in (ROOT / "README.md").read_text() for table in tables)


def test_readme_is_a_front_door_and_its_links_resolve():
    readme = (ROOT / "README.md").read_text()
    assert len(readme.splitlines()) <= 200
    pages = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    for page in pages:
        for target in re.findall(r"\]\(([^)#]+?\.(?:md|png))(?:#[^)]*)?\)", page.read_text()):
            assert (page.parent / target).is_file(), f"{page.name} links to missing {target}"


def run_python(code: str, env: dict[str, str] | None = None, cwd: Path = ROOT):
    return subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        cwd=cwd,
        env={**os.environ, **(env or {})},
        timeout=120,
    )


def test_import_and_help_do_not_import_tensorflow_or_mlflow(tmp_path):
    poisoned = tmp_path / "poisoned"
    for name in ("tensorflow", "mlflow"):
        (poisoned / name).mkdir(parents=True)
        (poisoned / name / "__init__.py").write_text(f"raise ImportError('{name} imported')\n")
    env = {"PYTHONPATH": os.pathsep.join([str(poisoned), str(ROOT)])}
    result = run_python("import kmeans_exp, kmeans_exp.hydra_app.app, kmeans_exp.config", env)
    assert result.returncode == 0, result.stderr
    help_run = subprocess.run(
        [sys.executable, "-m", "kmeans_exp", "--help"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={**os.environ, **env},
        timeout=60,
    )
    assert help_run.returncode == 0, help_run.stderr
    presets = "experiments: k_search, k_selection, k_sweep, metric_comparison, paper_baseline,"
    assert presets in help_run.stdout


LAYERS = [
    # (what is imported, what must not be loaded by it)
    ("kmeans_exp", ("tensorflow", "mlflow", "hydra")),
    ("kmeans_exp.engine", ("hydra", "mlflow")),
    ("kmeans_exp.features", ("tensorflow", "mlflow", "umap", "numba", "keras")),
    ("kmeans_exp.tracking, kmeans_exp.tracking.pyfunc_model", ("tensorflow",)),
    ("kmeans_exp.evaluate, kmeans_exp.summary, kmeans_exp.data", ("tensorflow", "mlflow")),
    ("kmeans_exp.config, kmeans_exp.hydra_app.app", ("tensorflow", "mlflow")),
    ("kmeans_exp.shards, kmeans_exp.shards.write", ("tensorflow", "mlflow", "hydra")),
    ("kmeans_exp.engine.sharded", ("hydra", "mlflow")),
]


@pytest.mark.parametrize("modules, absent", LAYERS, ids=[m for m, _ in LAYERS])
def test_each_layer_loads_only_what_it_needs(modules, absent):
    code = f"import json, sys, {modules}; print(json.dumps([m.split('.')[0] for m in sys.modules]))"
    result = run_python(code)
    assert result.returncode == 0, result.stderr
    loaded = set(json.loads(result.stdout))
    assert not loaded & set(absent), f"{modules} loaded {sorted(loaded & set(absent))}"


@pytest.mark.slow
def test_a_raw_run_loads_no_representation_library(tmp_path):
    """umap-learn (and numba, its compiler) load only for features=umap or n2d, Keras only for
    the autoencoder (``import tensorflow`` would import it: ``tf_runtime`` hides it), and the
    DEC/IDEC training code only for a refined run."""
    code = (
        "import json, sys, kmeans_exp\n"
        "kmeans_exp.run_experiment(k=5, steps=1, tracking={'enabled': False})\n"
        "print(json.dumps(list(sys.modules)))\n"
    )
    result = run_python(code, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    modules = set(json.loads(result.stdout.splitlines()[-1]))
    assert not {m.split(".")[0] for m in modules} & {"umap", "numba", "pynndescent", "keras"}
    assert "kmeans_exp.refine.student_t" not in modules
    # nor anything of the sharded, distributed path
    assert not {m for m in modules if m.startswith(("kmeans_exp.distributed", "kmeans_exp.shards"))}
    assert not {"kmeans_exp.engine.sharded", "kmeans_exp.engine.parts"} & modules


def test_keras_imports_as_usual_after_the_engine():
    code = (
        "import kmeans_exp.engine, keras\n"
        "from kmeans_exp.tf_runtime import tf\n"
        "layer = tf.keras.layers.Dense(2)\n"
        "print(type(layer).__module__, keras.backend.backend())\n"
    )
    result = run_python(code)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.split() == ["keras.src.layers.core.dense", "tensorflow"]


def test_tensorflow_start_up_noise_does_not_reach_the_console():
    code = (
        "from kmeans_exp.engine import KMeans\n"
        "import numpy as np\n"
        "KMeans(2, seed=0).fit(np.eye(4, dtype=np.float32), 2)\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120
    )
    assert result.returncode == 0, result.stderr
    for noise in ("absl::InitializeLog", "cuInit", "oneDNN", "cuda", "cpu_feature_guard"):
        assert noise not in result.stderr, result.stderr


def test_wheel_carries_configs_presets_and_data(tmp_path):
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(tmp_path),
            str(ROOT),
        ],
        check=True,
        timeout=300,
    )
    (wheel,) = tmp_path.glob("kmeans_exp-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    assert {
        "kmeans_exp/conf/config.yaml",
        "kmeans_exp/conf/experiments/seed_tutorial.yaml",
        "kmeans_exp/resources/mnist.npz",
        "kmeans_exp/resources/MNIST-LICENSE.md",
    } <= names
    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)
    result = subprocess.run(
        [sys.executable, "-m", "kmeans_exp", "experiments=seed_tutorial", "--cfg", "job"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(site)},
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert "steps: 50" in result.stdout and "init: random" in result.stdout
    where = run_python(
        "import kmeans_exp.hydra_app.app as a; print(a.CONFIG_DIR)",
        {"PYTHONPATH": str(site)},
        tmp_path,
    )
    assert where.stdout.strip() == str(site / "kmeans_exp" / "conf")


FIT_AND_REPORT_CACHE = (
    "import os\n"
    "import numpy as np\n"
    "from kmeans_exp.engine import KMeans\n"
    "model = KMeans(3, seed=0).fit(np.random.default_rng(0).random((300, 8), np.float32), 2)\n"
    "print(model.inertia_, repr(os.environ['TF_XLA_FLAGS']))\n"
)


@pytest.mark.slow
def test_compiled_programs_are_cached_where_writable_and_never_fail_a_run(tmp_path):
    """The XLA programs land in ``KMEANS_EXP_XLA_CACHE``; a folder that cannot be created
    (TensorFlow would fail the compiled call itself) means no cache and the same result."""
    env = {"TF_XLA_FLAGS": ""}  # this process's own cache flag must not be inherited
    cached = run_python(FIT_AND_REPORT_CACHE, {**env, "KMEANS_EXP_XLA_CACHE": str(tmp_path / "c")})
    assert cached.returncode == 0, cached.stderr
    assert f"--tf_xla_persistent_cache_directory={tmp_path / 'c'}" in cached.stdout
    assert len(list((tmp_path / "c").glob("xla_compile_cache__*"))) >= 3  # norms, pick, step

    blocked = tmp_path / "a-file"
    blocked.write_text("not a folder")
    env["KMEANS_EXP_XLA_CACHE"] = str(blocked / "cache")
    uncached = run_python(FIT_AND_REPORT_CACHE, env)
    assert uncached.returncode == 0, uncached.stderr
    assert uncached.stdout.split()[0] == cached.stdout.split()[0]  # the same inertia
    assert uncached.stdout.split()[1] == "''"  # no flag: TensorFlow was told of no cache
