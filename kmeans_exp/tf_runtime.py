"""Import TensorFlow quietly, with XLA's compiled programs cached on disk between processes.

Shared by everything that runs TensorFlow: the engine, the autoencoder and the refinements.

TensorFlow 2.21 prints C++ log lines while it loads (CUDA stubs, cuInit errors, oneDNN notices,
"All log messages before absl::InitializeLog()"), before ``TF_CPP_MIN_LOG_LEVEL`` takes effect.
Unless the user asked for logs (``TF_CPP_MIN_LOG_LEVEL`` set below 3), we set it to 3 and send
file descriptor 2 to /dev/null while TensorFlow loads and probes its devices. Python exceptions are
unaffected: they are raised after the descriptor is restored.

Each process compiles the engine's XLA programs anew (~0.15-0.25 s each, four or more a run).
TensorFlow's persistent cache (``--tf_xla_persistent_cache_directory``) stores them on disk: a
later process with the same shapes loads them instead (~0.04 s each). Entries are written to a
temporary file and renamed, so parallel jobs can share the folder. The folder is per TensorFlow
version and CPU (the programs are built for the host's instruction set), under the user cache
directory (``cache_dirs``); ``KMEANS_EXP_XLA_CACHE`` names another folder, or turns the cache
off with ``off``. A folder that cannot be written means no cache. A
``--tf_xla_persistent_cache_directory`` already in ``TF_XLA_FLAGS`` is left as it is.

``import tensorflow`` also imports Keras (and scikit-learn through it) at once, only to register
Keras' optimizers; that is half of TensorFlow's import time (2.5 of 5.2 s on an AVX-512 EPYC)
and the engine never uses it. ``import_tensorflow`` hides Keras while TensorFlow loads (TF
catches the ImportError), then un-hides it: ``import keras`` and ``tf.keras`` work as usual
afterwards (the autoencoder representation imports Keras when it runs). If Keras is already
imported, nothing is hidden.
"""

from __future__ import annotations

import hashlib
import os
import platform
import sys
from importlib import metadata
from pathlib import Path
from types import ModuleType

from kmeans_exp import cache_dirs

CACHE_FLAG = "--tf_xla_persistent_cache_directory"


def xla_cache_dir() -> Path | None:
    """The folder for compiled XLA programs: ``KMEANS_EXP_XLA_CACHE`` or the default; None: off."""
    return cache_dirs.folder(
        "KMEANS_EXP_XLA_CACHE", "xla", f"tf{metadata.version('tensorflow')}-{_cpu_id()}"
    )


def _cpu_id() -> str:
    """A short fingerprint of this CPU's model and instruction-set flags, and of ``XLA_FLAGS``
    (``--xla_cpu_max_isa=AVX2`` builds other programs for the same CPU)."""
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
        wanted = [line for line in lines if line.startswith(("model name", "flags"))][:2]
        described = "\n".join(wanted)
    except OSError:
        described = f"{platform.machine()} {platform.processor()}"
    described += "\n" + os.environ.get("XLA_FLAGS", "")
    return hashlib.sha256(described.encode()).hexdigest()[:12]


def _enable_xla_cache() -> None:
    """Point TensorFlow's persistent cache at ``xla_cache_dir()`` if that folder is writable.

    TensorFlow fails the compiled call itself when it cannot write there (a read-only home),
    so an unusable folder means no cache, not a failed run.
    """
    flags = os.environ.get("TF_XLA_FLAGS", "")
    if CACHE_FLAG in flags:
        return
    directory = xla_cache_dir()
    if directory is None:
        return
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError:
        return
    if os.access(directory, os.W_OK | os.X_OK):
        os.environ["TF_XLA_FLAGS"] = f"{flags} {CACHE_FLAG}={directory}".strip()


KERAS_MODULES = ("keras", "tf_keras")  # what TensorFlow's __init__ imports eagerly


def import_tensorflow() -> ModuleType:
    """Return the ``tensorflow`` module, imported quietly (and without Keras) the first time."""
    if "tensorflow" in sys.modules:
        return sys.modules["tensorflow"]
    _enable_xla_cache()
    hidden = [name for name in KERAS_MODULES if name not in sys.modules]
    for name in hidden:
        sys.modules[name] = None  # an import of it raises ImportError, which TF catches
    try:
        return _import_quietly()
    finally:
        for name in hidden:
            if sys.modules.get(name, False) is None:
                del sys.modules[name]


def _import_quietly() -> ModuleType:
    if os.environ.get("TF_CPP_MIN_LOG_LEVEL", "3") != "3":  # the user asked for logs
        import tensorflow as tf

        return tf
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
    sys.stderr.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    try:
        import tensorflow as tf

        tf.config.list_physical_devices()  # device probing (cuInit) logs here
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)
    return tf


tf = import_tensorflow()
