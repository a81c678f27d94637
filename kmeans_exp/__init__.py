"""kmeans_exp: Hydra-configured, MLflow-tracked K-Means experiments with a TensorFlow 2 engine.

Importing the package imports neither TensorFlow nor MLflow; the engine lives in
``kmeans_exp.kmeans`` and the command line in ``kmeans_exp.app`` (``python -m kmeans_exp``).
"""

__version__ = "0.1.0"
