"""Import TensorFlow without its start-up noise on the user's console.

TensorFlow 2.21 prints C++ log lines while it loads (CUDA stubs, cuInit errors, oneDNN notices,
"All log messages before absl::InitializeLog()"), before ``TF_CPP_MIN_LOG_LEVEL`` takes effect.
Unless the user asked for logs (``TF_CPP_MIN_LOG_LEVEL`` set below 3), we set it to 3 and send
file descriptor 2 to /dev/null while TensorFlow loads and probes its devices. Python exceptions are
unaffected: they are raised after the descriptor is restored.
"""

from __future__ import annotations

import os
import sys
from types import ModuleType


def import_tensorflow() -> ModuleType:
    """Return the ``tensorflow`` module, imported quietly the first time."""
    if "tensorflow" in sys.modules:
        return sys.modules["tensorflow"]
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
