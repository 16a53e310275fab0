"""Exact PCA against scikit-learn's, and the fixed sign convention."""

import numpy as np
import pytest
import torch
from scipy.linalg import subspace_angles
from sklearn.decomposition import PCA

from subdistill.errors import UserError
from subdistill.pca import covariance, fit_pca, fix_signs


def correlated_features(n: int = 600, d: int = 48, seed: int = 0) -> torch.Tensor:
    """Features with a decaying spectrum and a large mean, like post-ReLU teacher_features."""
    generator = torch.Generator().manual_seed(seed)
    mixing = torch.randn(d, d, generator=generator) * torch.logspace(0, -2, d)[None, :]
    return torch.randn(n, d, generator=generator) @ mixing.T + 5.0


@pytest.mark.parametrize("k", [1, 8, 24])
def test_subspace_matches_scikit_learn(k):
    features = correlated_features()
    basis = fit_pca(features, k)
    reference = PCA(n_components=k, svd_solver="full").fit(features.double().numpy())
    angles = subspace_angles(basis.components.numpy().T, reference.components_.T)
    assert angles.max() < 1e-3
    np.testing.assert_allclose(basis.explained_variance.numpy(), reference.explained_variance_, rtol=1e-6)
    np.testing.assert_allclose(basis.mean.numpy(), reference.mean_, rtol=1e-10)


def test_projection_matches_scikit_learn_up_to_sign():
    features = correlated_features()
    basis = fit_pca(features, 6)
    reference = PCA(n_components=6, svd_solver="full").fit(features.double().numpy())
    ours = basis.project(features).double().numpy()
    theirs = reference.transform(features.double().numpy())
    signs = np.sign((ours * theirs).sum(0))
    np.testing.assert_allclose(ours, theirs * signs, atol=1e-3)


def test_float16_features_give_the_float64_covariance_of_their_values():
    features = correlated_features(n=300).half()
    mean, cov = covariance(features, chunk=64)  # several chunks
    reference = np.cov(features.double().numpy(), rowvar=False)
    np.testing.assert_allclose(cov.numpy(), reference, rtol=1e-9, atol=1e-12)
    assert mean.dtype == torch.float64


def test_sign_convention_and_determinism():
    features = correlated_features()
    first, second = fit_pca(features, 10), fit_pca(features.clone(), 10)
    assert torch.equal(first.components, second.components)
    largest = first.components.gather(1, first.components.abs().argmax(1, keepdim=True))
    assert (largest > 0).all()
    # Flipping a component and fixing again gives it back.
    flipped = first.components * torch.tensor([-1.0, 1.0] * 5, dtype=torch.float64)[:, None]
    assert torch.equal(fix_signs(flipped), first.components)
    # Orthonormal rows.
    gram = first.components @ first.components.T
    assert torch.allclose(gram, torch.eye(10, dtype=torch.float64), atol=1e-10)


def test_top_components_are_nested_and_k_is_checked():
    basis = fit_pca(correlated_features(), 12)
    assert torch.equal(basis.top(4).components, basis.components[:4])
    with pytest.raises(UserError):
        basis.top(13)
    with pytest.raises(UserError):
        fit_pca(correlated_features(d=8), 9)
