"""The MLflow pyfunc model, logged as code: rows in (pixels / 255, or embeddings), digits out.

MLflow copies this file into the model (``python_model=<this path>``, "models from code"), with
``served_steps`` beside it (``code_paths``), so a logged model loads and serves without
TensorFlow and without kmeans_exp installed. Its artifacts: ``features`` (the fitted
representation's steps; none for raw pixels) and ``clusters`` (the centres, the cluster -> digit
map and the metric). Assignment follows the engine: cosine compares L2-normalised rows with
normalised centres.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from mlflow.models import set_model
from mlflow.pyfunc import PythonModel

try:
    import served_steps  # the copy logged with the model (MLflow code_paths)
except ImportError:  # imported from the package itself
    from kmeans_exp.features import served_steps


class KMeansDigitClassifier(PythonModel):
    """Features, nearest centre, then that cluster's majority digit (-1: a cluster no training
    image fell in)."""

    def load_context(self, context) -> None:
        with np.load(context.artifacts["clusters"], allow_pickle=False) as f:
            self.metric = str(f["distance_metric"])
            centers = f["centers"].astype(np.float32)
            self.labels = f["labels"].astype(np.int64)
        if self.metric == "cosine":
            centers = centers / np.maximum(np.linalg.norm(centers, axis=1, keepdims=True), 1e-12)
        self.centers = centers
        self.center_sq = np.sum(centers * centers, axis=1)
        self.steps = served_steps.load(Path(context.artifacts["features"]))

    def predict(self, context, model_input: np.ndarray, params=None) -> np.ndarray:
        x = served_steps.transform(self.steps, np.asarray(model_input, dtype=np.float32))
        dots = x @ self.centers.T
        if self.metric == "cosine":
            nearest = np.argmax(dots, axis=1)  # the norm of x does not change the argmax
        else:
            nearest = np.argmin(self.center_sq[None, :] - 2.0 * dots, axis=1)
        return self.labels[nearest]


set_model(KMeansDigitClassifier())
