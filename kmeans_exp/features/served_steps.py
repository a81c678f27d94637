"""A fitted representation as plain steps over float rows: the one code path that computes the
features, in a run and in the served model.

This file imports NumPy only (umap-learn for a UMAP step, when one is loaded), because the
served model carries a copy of it (MLflow ``code_paths``) and must run without kmeans_exp,
TensorFlow or Keras. The rows are what the engine reads as floats: pixels / 255, or embeddings.

- ``Affine``: ``(x - mean) @ matrix * scale`` (PCA, whitened or not);
- ``Dense``: dense layers, ReLU between them, the last one linear (an autoencoder's encoder, or
  its decoder);
- ``Umap``: a fitted ``umap.UMAP``'s ``transform``.

``Mixture`` is not a step but how a Gaussian mixture (``refine=gmm``) assigns the features to
its components, here because the served model assigns with it too.

Each step says what it needs to be served (``REQUIREMENTS``: distributions beside MLflow), how
to write itself as arrays and how to come back from them; ``STEP_TYPES`` finds a type by name.
"""

from __future__ import annotations

import json
import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

BATCH_ROWS = 4096  # rows per batch: bounds the widest layer's activations (4096 x 2000 floats)


@dataclass
class Affine:
    mean: np.ndarray  # (d,)
    matrix: np.ndarray  # (d, c)
    scale: np.ndarray | None = None  # (c,): 1/sqrt(explained variance) when whitened

    REQUIREMENTS: ClassVar[tuple[str, ...]] = ()

    @property
    def width(self) -> int:
        return self.matrix.shape[1]

    def __call__(self, x: np.ndarray) -> np.ndarray:
        out = (x - self.mean) @ self.matrix
        return out * self.scale if self.scale is not None else out

    def arrays(self, prefix: str) -> dict[str, np.ndarray]:
        found = {"mean": self.mean, "matrix": self.matrix}
        found |= {} if self.scale is None else {"scale": self.scale}
        return {f"{prefix}.{name}": value for name, value in found.items()}

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray], prefix: str) -> Affine:
        return cls(
            arrays[f"{prefix}.mean"], arrays[f"{prefix}.matrix"], arrays.get(f"{prefix}.scale")
        )


@dataclass
class Dense:
    weights: list[np.ndarray]  # (d_in, d_out) per layer
    biases: list[np.ndarray]

    REQUIREMENTS: ClassVar[tuple[str, ...]] = ()

    @property
    def width(self) -> int:
        return self.weights[-1].shape[1]

    def __call__(self, x: np.ndarray) -> np.ndarray:
        last = len(self.weights) - 1
        for i, (w, b) in enumerate(zip(self.weights, self.biases, strict=True)):
            x = x @ w + b
            if i < last:
                np.maximum(x, 0.0, out=x)
        return x

    def arrays(self, prefix: str) -> dict[str, np.ndarray]:
        found = {f"{prefix}.w{i}": w for i, w in enumerate(self.weights)}
        return found | {f"{prefix}.b{i}": b for i, b in enumerate(self.biases)}

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray], prefix: str) -> Dense:
        layers = sum(1 for name in arrays if name.startswith(f"{prefix}.w"))
        return cls(
            [arrays[f"{prefix}.w{j}"] for j in range(layers)],
            [arrays[f"{prefix}.b{j}"] for j in range(layers)],
        )


@dataclass
class Mixture:
    """A fitted Gaussian mixture as the arrays that assign rows to components: each component's
    mean, the Cholesky factor of its precision (every covariance type written as full ``(k, d,
    d)`` matrices) and its weight. A row goes to the component of highest
    ``log w_k + log N(x | mean_k, cov_k)``, as scikit-learn's ``GaussianMixture.predict``."""

    means: np.ndarray  # (k, d)
    precisions_cholesky: np.ndarray  # (k, d, d)
    weights: np.ndarray  # (k,)

    def log_weighted_density(self, x: np.ndarray) -> np.ndarray:
        """(n, k) log w_k + log N(x | mean_k, cov_k), without the constant -d/2 log 2 pi."""
        out = np.empty((len(x), len(self.means)), np.float64)
        for j, (mean, chol) in enumerate(zip(self.means, self.precisions_cholesky, strict=True)):
            y = x @ chol - mean @ chol
            log_det = np.sum(np.log(np.diagonal(chol)))
            out[:, j] = np.log(self.weights[j]) + log_det - 0.5 * np.einsum("ij,ij->i", y, y)
        return out

    def predict(self, x: np.ndarray) -> np.ndarray:
        return np.argmax(self.log_weighted_density(np.asarray(x, np.float64)), axis=1)

    def arrays(self, prefix: str) -> dict[str, np.ndarray]:
        found = {"means": self.means, "precisions_cholesky": self.precisions_cholesky}
        found["weights"] = self.weights
        return {f"{prefix}.{name}": value for name, value in found.items()}

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray], prefix: str) -> Mixture | None:
        """The mixture stored under ``prefix``, or None when there is none."""
        if f"{prefix}.means" not in arrays:
            return None
        names = ("means", "precisions_cholesky", "weights")
        return cls(*(np.asarray(arrays[f"{prefix}.{name}"], np.float64) for name in names))


@dataclass
class Umap:
    model: Any  # a fitted umap.UMAP, kept as umap-learn keeps one: a pickle

    REQUIREMENTS: ClassVar[tuple[str, ...]] = ("umap-learn",)

    @property
    def width(self) -> int:
        return self.model.n_components

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return np.asarray(self.model.transform(x), dtype=np.float32)


Step = Affine | Dense | Umap
STEP_TYPES = {cls.__name__: cls for cls in (Affine, Dense, Umap)}


def transform(steps: list[Step], x: np.ndarray) -> np.ndarray:
    """The steps applied in order to float rows, in batches; float32 out."""
    x = np.asarray(x, dtype=np.float32)
    if x.ndim != 2:  # images (n, rows, cols): one row each
        x = x.reshape(len(x), -1)
    if not steps:
        return x
    if not len(x):  # no rows (an empty validation split): nothing for a step to see
        return np.zeros((0, steps[-1].width), np.float32)
    if any(isinstance(s, Umap) for s in steps):  # UMAP's transform wants the rows at once
        batches = [x]
    else:
        batches = [x[i : i + BATCH_ROWS] for i in range(0, len(x), BATCH_ROWS)]
    parts = []
    for batch in batches:
        for step in steps:
            batch = step(batch)
        parts.append(np.asarray(batch, dtype=np.float32))
    return np.concatenate(parts)


def requirements(steps: list[Step]) -> list[str]:
    """The distributions that serving ``steps`` needs beside MLflow (and NumPy)."""
    return sorted({name for step in steps for name in step.REQUIREMENTS})


def save(steps: list[Step], folder: Path) -> None:
    """Write ``steps`` to ``folder``: ``steps.json`` (their order and types), ``steps.npz``
    (their arrays) and one pickle per UMAP model (umap-learn's own way to keep one)."""
    folder.mkdir(parents=True, exist_ok=True)
    kinds, arrays = [], {}
    for i, step in enumerate(steps):
        kinds.append(type(step).__name__)
        if isinstance(step, Umap):
            with open(folder / f"umap{i}.pkl", "wb") as f:
                pickle.dump(step.model, f, protocol=pickle.HIGHEST_PROTOCOL)
        else:
            arrays |= step.arrays(str(i))
    (folder / "steps.json").write_text(json.dumps(kinds))
    np.savez(folder / "steps.npz", **arrays)


def load(folder: Path) -> list[Step]:
    """The steps ``save`` wrote (a UMAP step needs umap-learn installed)."""
    kinds = json.loads((folder / "steps.json").read_text())
    with np.load(folder / "steps.npz", allow_pickle=False) as f:
        arrays = {name: f[name] for name in f.files}
    steps: list[Step] = []
    for i, kind in enumerate(kinds):
        if kind == "Umap":  # our own pickle, written by save() next to the arrays
            with open(folder / f"umap{i}.pkl", "rb") as f:
                steps.append(Umap(pickle.load(f)))
        else:
            steps.append(STEP_TYPES[kind].from_arrays(arrays, str(i)))
    return steps
