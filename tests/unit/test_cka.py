"""Linear CKA: identity, invariances, agreement with the O(n^2) HSIC formula; Delta-CKA in a shared PCA basis."""

import numpy as np
import pytest
from scipy.stats import ortho_group

from tunescope.diagnostics.cka import delta_cka, linear_cka, pca_basis
from tunescope.errors import UserError


def _hsic_cka(x, y):
    """Kornblith et al.: HSIC(K, L) / sqrt(HSIC(K, K) HSIC(L, L)), K = X X^T, L = Y Y^T, H = I - 11^T/n."""
    n = x.shape[0]
    h = np.eye(n) - np.ones((n, n)) / n
    k, l_ = h @ (x @ x.T) @ h, h @ (y @ y.T) @ h
    hsic = lambda a, b: np.trace(a @ b) / (n - 1) ** 2  # noqa: E731
    return hsic(k, l_) / np.sqrt(hsic(k, k) * hsic(l_, l_))


def test_cka_of_a_representation_with_itself_is_one():
    x = np.random.default_rng(0).normal(size=(50, 8))
    assert linear_cka(x, x) == pytest.approx(1.0, abs=1e-12)


def test_cka_invariant_to_orthogonal_transform_and_isotropic_scaling():
    rng = np.random.default_rng(1)
    x, y = rng.normal(size=(40, 6)), rng.normal(size=(40, 6)) + 0.5 * rng.normal(size=(40, 1))
    q = ortho_group.rvs(6, random_state=2)
    base = linear_cka(x, y)
    assert linear_cka(x @ q, y) == pytest.approx(base, rel=1e-10)
    assert linear_cka(x, 3.7 * y) == pytest.approx(base, rel=1e-10)
    assert linear_cka(0.01 * x @ q, y + 5.0) == pytest.approx(base, rel=1e-10)  # also shift-invariant (centred)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_cka_agrees_with_hsic_formula(seed):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(30, 5))
    y = x @ rng.normal(size=(5, 7)) + rng.normal(size=(30, 7))
    assert linear_cka(x, y) == pytest.approx(_hsic_cka(x, y), rel=1e-9)


def test_pca_basis_keeps_the_components_reaching_the_variance():
    rng = np.random.default_rng(3)
    signal = rng.normal(size=(200, 3)) @ rng.normal(size=(3, 20)) * 10
    x = signal + 1e-3 * rng.normal(size=(200, 20))
    mean, comps = pca_basis(x, variance=0.99)
    assert comps.shape == (3, 20)
    assert pca_basis(x, variance=0.99, max_components=2)[1].shape == (2, 20)
    with pytest.raises(UserError):
        pca_basis(x, variance=1.5)


def test_delta_cka_uses_the_reference_basis():
    rng = np.random.default_rng(4)
    x = rng.normal(size=(100, 3)) @ rng.normal(size=(3, 12)) + 1e-3 * rng.normal(size=(100, 12))
    assert delta_cka(x, x) == pytest.approx(0.0, abs=1e-10)
    # A change orthogonal to the reference's principal subspace is invisible in the shared basis.
    _, comps = pca_basis(x)
    orth = rng.normal(size=(100, 12))
    orth -= orth @ comps.T @ comps
    assert delta_cka(x, x + 5 * orth) == pytest.approx(0.0, abs=1e-8)
    # Independent check: project both onto the reference's top right-singular vectors by hand.
    y = x + rng.normal(size=(100, 12))
    xc = x - x.mean(0)
    _, s, vt = np.linalg.svd(xc, full_matrices=False)
    k = int(np.searchsorted(np.cumsum(s**2) / np.sum(s**2), 0.99)) + 1
    p = vt[:k].T
    expected = 1 - _hsic_cka(xc @ p, (y - x.mean(0)) @ p)
    assert delta_cka(x, y) == pytest.approx(expected, rel=1e-8)
    assert 0.0 < delta_cka(x, y) < 1.0
