"""The Hydra layer: ``python -m kmeans_exp`` and its multirun callback, thin adapters only.

- ``app``: the ``@hydra.main`` task (Hydra config -> ``ExperimentConfig`` -> ``run_experiment``);
- ``callback``: ``MlflowSweepCallback``, a sweep's MLflow parent run, opened and closed;
- ``sweep_check``: a sweep's values, composed and checked before its parent run exists.

Nothing below this layer imports Hydra's application machinery; ``config`` only uses Hydra's
compose API and config store.
"""
