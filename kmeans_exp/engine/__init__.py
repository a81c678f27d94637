"""The K-Means engine: TensorFlow 2, with the semantics of TensorFlow's ``clustering_ops.KMeans``.

- ``estimator``: ``KMeans`` itself (settings, restarts, fit, predict, save and restore);
- ``passes``: the compiled passes over the rows (assignment, Lloyd and mini-batch updates);
- ``initialization``: the initial centres (``random``, ``kmeans_plus_plus``);
- ``batches``: which rows each mini-batch step reads;
- ``persistence``: a fitted model in one ``.npz`` (``save``, ``restore``);
- ``legacy_op``: TensorFlow's own op, the oracle of the tests and a peer of the benchmark.

Importing it loads TensorFlow, never Hydra or MLflow.
"""

from kmeans_exp.engine.estimator import KMeans, StepStats

__all__ = ["KMeans", "StepStats"]
