"""The MLflow pyfunc model, logged as code: rows in (pixels / 255, or embeddings), digits out.

MLflow copies this file into the model (``python_model=<this path>``, "models from code"), with
``served_steps`` beside it (``code_paths``), so a logged model loads and serves without
TensorFlow and without kmeans_exp installed. Its artifacts: ``features`` (the fitted
representation's steps; none for raw pixels) and ``clusters`` (the centres, the cluster -> digit
map, the metric, what it takes, and a Gaussian mixture's arrays after ``refine=gmm``).
Assignment follows the run: cosine compares L2-normalised rows with normalised centres; a
mixture assigns each row to its most likely component.

It refuses, with a ``ValueError`` naming the problem and the expected input (through ``mlflow
models serve``: a 400), a row holding NaN or inf, and for a model of images a value outside
[0, 1]: pixels are expected divided by 255.
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
            self.images = str(f["input"]) == "images" if "input" in f.files else True
            self.mixture = served_steps.Mixture.from_arrays(dict(f), "mixture")
        if self.metric == "cosine":
            centers = centers / np.maximum(np.linalg.norm(centers, axis=1, keepdims=True), 1e-12)
        self.centers = centers
        self.center_sq = np.sum(centers * centers, axis=1)
        self.steps = served_steps.load(Path(context.artifacts["features"]))

    def predict(self, context, model_input: np.ndarray, params=None) -> np.ndarray:
        rows = np.asarray(model_input, dtype=np.float32)
        check_rows(rows, self.images)
        x = served_steps.transform(self.steps, rows)
        if self.mixture is not None:
            return self.labels[self.mixture.predict(x)]
        dots = x @ self.centers.T
        if self.metric == "cosine":
            nearest = np.argmax(dots, axis=1)  # the norm of x does not change the argmax
        else:
            nearest = np.argmin(self.center_sq[None, :] - 2.0 * dots, axis=1)
        return self.labels[nearest]


def check_rows(rows: np.ndarray, images: bool) -> None:
    """Refuse rows the model cannot answer for, naming the first bad row."""
    finite = np.isfinite(rows).all(axis=1)
    if not finite.all():
        row = int(np.argmin(finite))
        raise ValueError(f"row {row} holds NaN or inf: expected finite values")
    if images:
        inside = ((rows >= 0) & (rows <= 1)).all(axis=1)
        if not inside.all():
            row = int(np.argmin(inside))
            low, high = float(rows[row].min()), float(rows[row].max())
            hint = " (raw 0-255 pixels?)" if high > 1 and high <= 255 and low >= 0 else ""
            raise ValueError(
                f"row {row} holds values in [{low:g}, {high:g}]{hint}: expected pixels "
                "divided by 255, in [0, 1]"
            )


set_model(KMeansDigitClassifier())
