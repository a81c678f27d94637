"""kmeans_exp: Hydra-configured, MLflow-tracked K-Means experiments with a TensorFlow 2 engine.

From Python::

    import kmeans_exp
    result = kmeans_exp.run_experiment(k=50, steps=5)          # or a config from compose()
    result.metrics["test_accuracy"], result.run_id, result.model.cluster_centers_

Importing the package imports neither TensorFlow nor MLflow; the engine loads when a run
trains, MLflow when a run logs. The command line is ``python -m kmeans_exp``
(``kmeans_exp.hydra_app``).
"""

from kmeans_exp.config import ExperimentConfig, compose
from kmeans_exp.runner import ExperimentResult, run_experiment

__version__ = "0.1.0"
__all__ = ["ExperimentConfig", "ExperimentResult", "compose", "run_experiment"]
