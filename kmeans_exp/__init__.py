"""kmeans_exp: Hydra-configured, MLflow-tracked K-Means experiments with a TensorFlow 2 engine.

From Python::

    import kmeans_exp
    result = kmeans_exp.run_experiment(k=50, steps=5)          # or a config from compose()
    result.metrics["test_accuracy"], result.run_id, result.model.cluster_centers_

Importing the package imports none of TensorFlow, MLflow or Hydra: the names below load on
first use, the engine when a run trains, MLflow when a run logs. So ``kmeans_exp.engine`` can be
used without Hydra or MLflow. The command line is ``python -m kmeans_exp``
(``kmeans_exp.hydra_app``).
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"
__all__ = ["ExperimentConfig", "ExperimentResult", "compose", "run_experiment"]
_HOMES = {
    "ExperimentConfig": "kmeans_exp.config",
    "compose": "kmeans_exp.config",
    "ExperimentResult": "kmeans_exp.runner",
    "run_experiment": "kmeans_exp.runner",
}


def __getattr__(name: str) -> Any:
    if name in _HOMES:
        return getattr(importlib.import_module(_HOMES[name]), name)
    raise AttributeError(f"module 'kmeans_exp' has no attribute {name!r}")
