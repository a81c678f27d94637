"""What every benchmark part shares: the thread count, the data, and how timings are summarised.

Imported first: it pins the BLAS thread pools (``KMEANS_BENCH_THREADS``, default 2) before NumPy
loads, so every implementation gets the same threads.
"""

from __future__ import annotations

import os
import platform
from dataclasses import dataclass
from pathlib import Path

THREADS = int(os.environ.get("KMEANS_BENCH_THREADS", "2"))
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, str(THREADS))

# KMEANS_BENCH_ISA=avx2 on an AVX-512 host: XLA builds its programs for AVX2, oneDNN (TensorFlow
# without XLA) dispatches its AVX2 kernels and the peers' OpenBLAS its Haswell ones, so one
# machine measures both profiles.
AVX2_PROFILE = os.environ.get("KMEANS_BENCH_ISA", "").lower() == "avx2"
if AVX2_PROFILE:
    os.environ["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} --xla_cpu_max_isa=AVX2".strip()
    os.environ.setdefault("OPENBLAS_CORETYPE", "Haswell")
    os.environ.setdefault("ONEDNN_MAX_CPU_ISA", "AVX2")

import numpy as np  # noqa: E402

K = 25
QUICK_ROWS = 3000


@dataclass(frozen=True)
class BenchData:
    """MNIST training and test images: uint8 pixels (what this engine is given, as in a run),
    float32 features in [0, 1] and their L2-normalised rows (what the peers are given)."""

    pixels: np.ndarray
    pixels_test: np.ndarray
    x: np.ndarray
    xn: np.ndarray
    x_test: np.ndarray
    xn_test: np.ndarray
    y: np.ndarray
    y_test: np.ndarray


def load_data(quick: bool) -> BenchData:
    """The bundled MNIST split as the runs use it (first 3,000 training rows when ``quick``)."""
    from kmeans_exp import data

    splits = data.split(data.load_raw("bundled", None, "mnist"), 5000)
    rows = QUICK_ROWS if quick else len(splits.x_train)
    pixels, y = splits.x_train[:rows], splits.y_train[:rows]
    x, x_test = data.features(pixels), data.features(splits.x_test)
    return BenchData(
        pixels, splits.x_test, x, normalise(x), x_test, normalise(x_test), y, splits.y_test
    )


def normalise(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def nearest_cosine(x: np.ndarray, centers: np.ndarray) -> np.ndarray:
    """TF's cosine assignment: the largest dot product with the L2-normalised centre."""
    return np.argmax(x @ (centers / np.linalg.norm(centers, axis=1, keepdims=True)).T, axis=1)


def median_spread(samples: list[float]) -> dict[str, float]:
    arr = np.asarray(samples, dtype=np.float64)
    return {"median": float(np.median(arr)), "min": float(arr.min()), "max": float(arr.max())}


def majority_accuracy(train_idx, test_idx, bench: BenchData) -> float:
    """Test accuracy with every cluster labelled by its training majority (the runs' metric)."""
    from kmeans_exp import evaluate

    labels = evaluate.label_clusters(np.asarray(train_idx), bench.y, K, 10)
    return evaluate.accuracy(bench.y_test, labels.predict(np.asarray(test_idx)))


def _cpuinfo() -> tuple[str, list[str]]:
    """The CPU's model name and its flags, from /proc/cpuinfo (empty where there is none)."""
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        return platform.processor() or platform.machine(), []
    model = next((ln.split(":", 1)[1].strip() for ln in lines if ln.startswith("model name")), "")
    flags = next((ln.split() for ln in lines if ln.startswith("flags")), [])
    return model or platform.machine(), flags


def host_isa() -> str:
    """The widest vector ISA the host has: the engine ranks differently on AVX-512 and AVX2."""
    flags = _cpuinfo()[1]
    return "AVX-512" if "avx512f" in flags else "AVX2" if "avx2" in flags else "no AVX2"


def profile_name() -> str:
    """Where a run's results go under ``benchmarks/results/``: one folder per ISA profile
    (``avx512``, ``avx2``, ``avx512-as-avx2`` for an AVX-512 host run as AVX2)."""
    name = host_isa().lower().replace("-", "").replace(" ", "-")
    return f"{name}-as-avx2" if AVX2_PROFILE and name != "avx2" else name


def cpu_name() -> str:
    """The CPU's model and its widest vector ISA (AVX-512 or AVX2), with the profile it ran as:
    every result names it."""
    isa = host_isa()
    if AVX2_PROFILE:
        isa += (
            ", run as AVX2: XLA_FLAGS=--xla_cpu_max_isa=AVX2, ONEDNN_MAX_CPU_ISA=AVX2, "
            "OPENBLAS_CORETYPE=Haswell"
        )
    return f"{_cpuinfo()[0]} ({isa})"


def openblas_kernel_for_this_cpu() -> str:
    """The kernel numpy's (current) OpenBLAS picked here, e.g. SkylakeX."""
    from threadpoolctl import threadpool_info

    for info in threadpool_info():
        if info.get("internal_api") == "openblas" and "numpy" in info.get("filepath", ""):
            return info.get("architecture") or ""
    return ""
