"""The MLflow pyfunc model, logged as code: images in, digits out, NumPy only.

MLflow copies this file into the model (``python_model=<this path>``, "models from code"), so a
logged model loads and serves without TensorFlow and without kmeans_exp installed. The centres,
the cluster -> digit map and the metric come from the ``clusters`` artifact (an ``.npz``).
Assignment follows the engine: cosine compares L2-normalised rows with normalised centres.
"""

from __future__ import annotations

import numpy as np
from mlflow.models import set_model
from mlflow.pyfunc import PythonModel


class KMeansDigitClassifier(PythonModel):
    """Nearest centre, then that cluster's majority digit (-1 for a cluster with no images)."""

    def load_context(self, context) -> None:
        with np.load(context.artifacts["clusters"], allow_pickle=False) as f:
            self.metric = str(f["distance_metric"])
            centers = f["centers"].astype(np.float32)
            self.labels = f["labels"].astype(np.int64)
        if self.metric == "cosine":
            centers = centers / np.maximum(np.linalg.norm(centers, axis=1, keepdims=True), 1e-12)
        self.centers = centers
        self.center_sq = np.sum(centers * centers, axis=1)

    def predict(self, context, model_input: np.ndarray, params=None) -> np.ndarray:
        x = np.asarray(model_input, dtype=np.float32)
        x = x.reshape(len(x), -1)
        dots = x @ self.centers.T
        if self.metric == "cosine":
            nearest = np.argmax(dots, axis=1)  # the norm of x does not change the argmax
        else:
            nearest = np.argmin(self.center_sq[None, :] - 2.0 * dots, axis=1)
        return self.labels[nearest]


set_model(KMeansDigitClassifier())
