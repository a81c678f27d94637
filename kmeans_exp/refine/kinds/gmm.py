"""``gmm``: a Gaussian mixture after the K-Means (scikit-learn's ``GaussianMixture``), N2D's last
step and a standard one after any representation.

The mixture starts from this K-Means: its means are the K-Means centres, its weights and
covariances those of the K-Means partition (plus ``reg_covar`` on the diagonal; a cluster the
K-Means left empty starts with the covariance of every row and the weight of one row). EM then
runs on the rows the K-Means was fitted on. Rows go to their most likely component.
"""

from __future__ import annotations

import typing
from dataclasses import dataclass
from enum import Enum

import numpy as np
from omegaconf import MISSING

from kmeans_exp import options
from kmeans_exp.refine.kinds import RefineConfig, Refined, Start

LIBRARIES = ("scikit-learn",)


class CovarianceType(Enum):
    full = "full"  # each component its own covariance matrix (N2D's)
    tied = "tied"  # one matrix shared by every component
    diag = "diag"  # each component its own diagonal
    spherical = "spherical"  # each component its own variance


@dataclass
class Config(RefineConfig):
    KIND: typing.ClassVar[str] = "gmm"
    DISTANCE: typing.ClassVar[str | None] = "squared_euclidean"
    covariance_type: CovarianceType = MISSING
    reg_covar: float = MISSING  # added to the covariances' diagonal
    max_iter: int = MISSING  # EM iterations at most
    tol: float = MISSING  # stop when the mean log-likelihood gains less than this

    def __post_init__(self) -> None:
        super().__post_init__()
        options.non_negative("refine.reg_covar", self.reg_covar)
        options.at_least("refine.max_iter", self.max_iter, 1, "EM iterations")
        options.positive("refine.tol", self.tol)


def fit(config: Config, start: Start, seed: int) -> Refined:
    """EM from the K-Means partition of ``start.codes``; scores on the fit rows and on
    ``start.held_out`` (the test rows' codes, when there are any)."""
    from sklearn.mixture import GaussianMixture

    codes = np.asarray(start.codes, np.float64)
    k = len(start.centres)
    weights, covariances = partition_moments(codes, start.labels, k, config)
    mixture = GaussianMixture(
        k,
        covariance_type=config.covariance_type.value,
        tol=config.tol,
        reg_covar=config.reg_covar,
        max_iter=config.max_iter,
        random_state=seed,
        weights_init=weights,
        means_init=np.asarray(start.centres, np.float64),
        precisions_init=_inverse(covariances, config.covariance_type),
    )
    mixture.fit(codes)
    scores = {
        "gmm_train_log_likelihood": float(mixture.score(codes)),
        "gmm_bic": float(mixture.bic(codes)),
        "gmm_converged": float(mixture.converged_),
        "gmm_iterations": float(mixture.n_iter_),
    }
    if len(start.held_out):
        scores["gmm_test_log_likelihood"] = float(mixture.score(start.held_out))
    return Refined(None, mixture.means_, mixture=full_precision_cholesky(mixture), scores=scores)


def partition_moments(
    x: np.ndarray, labels: np.ndarray, k: int, config: Config
) -> tuple[np.ndarray, np.ndarray]:
    """The weights and covariances (in ``config.covariance_type``'s shape) of a partition."""
    counts = np.bincount(labels, minlength=k).astype(np.float64)
    everything = np.cov(x, rowvar=False, bias=True).reshape(x.shape[1], x.shape[1])
    full = np.empty((k, x.shape[1], x.shape[1]))
    for j in range(k):
        members = x[labels == j]
        full[j] = np.cov(members, rowvar=False, bias=True) if len(members) > 1 else everything
    full += config.reg_covar * np.eye(x.shape[1])
    weights = np.maximum(counts, 1.0) / np.maximum(counts, 1.0).sum()
    kind = config.covariance_type
    if kind is CovarianceType.full:
        return weights, full
    if kind is CovarianceType.tied:
        return weights, np.einsum("j,jab->ab", counts / counts.sum(), full)
    diagonals = np.diagonal(full, axis1=1, axis2=2)
    return weights, diagonals if kind is CovarianceType.diag else diagonals.mean(axis=1)


def _inverse(covariances: np.ndarray, kind: CovarianceType) -> np.ndarray:
    """Precisions (scikit-learn's ``precisions_init``) of covariances of ``kind``'s shape."""
    if kind in (CovarianceType.full, CovarianceType.tied):
        return np.linalg.inv(covariances)
    return 1.0 / covariances


def full_precision_cholesky(mixture) -> dict[str, np.ndarray]:
    """A fitted mixture's arrays for ``served_steps.Mixture``: every covariance type's precision
    Cholesky factors written as full ``(k, d, d)`` matrices."""
    k, d = mixture.means_.shape
    chol = np.asarray(mixture.precisions_cholesky_)
    kind = CovarianceType(mixture.covariance_type)
    if kind is CovarianceType.tied:
        chol = np.broadcast_to(chol, (k, d, d)).copy()
    elif kind is CovarianceType.diag:
        chol = np.stack([np.diag(row) for row in chol])
    elif kind is CovarianceType.spherical:
        chol = chol[:, None, None] * np.eye(d)
    return {"means": mixture.means_, "precisions_cholesky": chol, "weights": mixture.weights_}
