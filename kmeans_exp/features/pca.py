"""PCA of the rows (scikit-learn's ``PCA``), as an ``Affine`` step: centre, project, whiten."""

from __future__ import annotations

import numpy as np

from kmeans_exp.features.served_steps import Affine


def fit(x: np.ndarray, n_components: int, whiten: bool, seed: int) -> Affine:
    """The PCA of float rows ``x`` (its randomized solver seeded with ``seed``)."""
    from sklearn.decomposition import PCA

    pca = PCA(n_components=n_components, whiten=whiten, random_state=seed).fit(x)
    scale = 1.0 / np.sqrt(np.maximum(pca.explained_variance_, 1e-12)) if whiten else None
    return Affine(
        pca.mean_.astype(np.float32),
        pca.components_.T.astype(np.float32),
        None if scale is None else scale.astype(np.float32),
    )
