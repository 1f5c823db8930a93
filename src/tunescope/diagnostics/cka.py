"""Linear CKA and Delta-CKA under a shared PCA basis, in O(n d) memory (no n x n Gram matrix).

Formulas (METHODS.md section 1, [ours]):
- linearCKA(X, Y) = ||Y^T X||_F^2 / (||X^T X||_F * ||Y^T Y||_F) after centering every column of X and Y;
  only d x d (or k x k) cross-products are formed, never the n x n Gram matrices of the HSIC form.
- Delta-CKA: fit PCA on the reference representations X_l (n x d); k = the smallest number of components whose
  cumulative explained variance reaches `variance` (default 99%), at most `max_components` (128); project X_l and
  the other checkpoint's Y_l (same inputs) onto that same basis P; Delta-CKA_l = 1 - linearCKA(X_l P, Y_l P).
"""

from __future__ import annotations

import numpy as np
import torch
from sklearn.decomposition import PCA

from tunescope.errors import UserError


def _as_numpy(x) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().double().numpy()
    return np.asarray(x, dtype=np.float64)


def linear_cka(x, y) -> float:
    """linearCKA(X, Y) for X [n, d1], Y [n, d2] (same rows = same inputs); 1 for identical representations.

    ||Y^T X||_F^2 / (||X^T X||_F ||Y^T Y||_F) on column-centred X, Y. Returns NaN when either is constant.
    """
    x, y = _as_numpy(x), _as_numpy(y)
    if x.ndim != 2 or y.ndim != 2 or x.shape[0] != y.shape[0]:
        raise UserError(f"bad shapes {x.shape} and {y.shape} for linear CKA: expected [n, d1] and [n, d2]")
    x = x - x.mean(axis=0, keepdims=True)
    y = y - y.mean(axis=0, keepdims=True)
    cross = np.linalg.norm(y.T @ x) ** 2
    denom = np.linalg.norm(x.T @ x) * np.linalg.norm(y.T @ y)
    return float(cross / denom) if denom > 0 else float("nan")


def pca_basis(x, *, variance: float = 0.99, max_components: int = 128) -> tuple[np.ndarray, np.ndarray]:
    """PCA of X [n, d] (sklearn): (mean [d], components [k, d]) with k the smallest number of components
    whose cumulative explained variance reaches `variance`, capped at `max_components`."""
    x = _as_numpy(x)
    if not 0.0 < variance <= 1.0:
        raise UserError(f"bad value {variance} for variance: expected a fraction in (0, 1]")
    cap = max(1, min(max_components, x.shape[0], x.shape[1]))
    pca = PCA(n_components=cap, svd_solver="full").fit(x)
    cumulative = np.cumsum(pca.explained_variance_ratio_)
    k = int(np.searchsorted(cumulative, variance - 1e-12)) + 1
    k = max(1, min(k, cap))
    return pca.mean_, pca.components_[:k]


def delta_cka(x, y, *, variance: float = 0.99, max_components: int = 128) -> float:
    """1 - linearCKA(X P, Y P) with P the PCA basis of the reference X (see module docstring).

    x: [n, d] reference representations; y: [n, d] the other checkpoint's, same inputs in the same order.
    """
    x, y = _as_numpy(x), _as_numpy(y)
    if x.shape != y.shape:
        raise UserError(f"bad shapes {x.shape} and {y.shape} for Delta-CKA: expected the same [n, d]")
    mean, components = pca_basis(x, variance=variance, max_components=max_components)
    # Both checkpoints go through the SAME basis (the reference's mean and components): [n, k] each.
    return 1.0 - linear_cka((x - mean) @ components.T, (y - mean) @ components.T)
