from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from usbrain.evaluate.distribution import frechet_distance, mmd, ms_ssim_diversity


def _exact_gaussian_sample(mean, std, n=50, seed=0):
    """n samples whose sample mean is exactly ``mean`` and sample covariance exactly diag(std²)."""
    rng = np.random.default_rng(seed)
    z = rng.normal(size=(n, len(mean)))
    z -= z.mean(0)
    chol = np.linalg.cholesky(np.cov(z, rowvar=False))
    white = z @ np.linalg.inv(chol).T  # sample covariance = identity
    return white * np.asarray(std) + np.asarray(mean)


def test_frechet_distance_of_identical_sets_is_zero():
    a = np.random.default_rng(1).normal(size=(20, 30))  # N < F: singular covariance
    assert abs(frechet_distance(a, a)) < 1e-6


def test_frechet_distance_matches_the_closed_form_for_diagonal_gaussians():
    mu1, sd1 = np.array([0.0, 1.0, -2.0]), np.array([1.0, 2.0, 0.5])
    mu2, sd2 = np.array([1.0, 1.0, 0.0]), np.array([3.0, 2.0, 1.5])
    a = _exact_gaussian_sample(mu1, sd1, seed=2)
    b = _exact_gaussian_sample(mu2, sd2, n=40, seed=3)
    # |μ1 − μ2|² + Σ(σ1² + σ2² − 2σ1σ2) = 5 + (1 + 9 − 6) + 0 + (0.25 + 2.25 − 1.5) = 10
    expected = np.sum((mu1 - mu2) ** 2) + np.sum((sd1 - sd2) ** 2)
    assert math.isclose(expected, 10.0)
    assert math.isclose(frechet_distance(a, b), expected, abs_tol=1e-5)
    assert math.isclose(frechet_distance(b, a), expected, abs_tol=1e-5)


def test_frechet_distance_refuses_mismatched_features():
    with pytest.raises(ValueError, match="feature sizes differ"):
        frechet_distance(np.zeros((4, 3)), np.zeros((4, 2)))


def test_mmd_hand_computed_in_one_dimension():
    # k(x, y) = (xy + 1)³: within a: k(0, 1) = 1; within b: k(2, 3) = 343;
    # across: 1, 1, 27, 64 → mean 23.25; MMD² = 1 + 343 − 2 · 23.25
    a, b = np.array([[0.0], [1.0]]), np.array([[2.0], [3.0]])
    assert math.isclose(mmd(a, b), 297.5)


def test_mmd_near_zero_for_identical_sets_and_grows_with_a_shift():
    rng = np.random.default_rng(4)
    a = rng.normal(size=(200, 8))
    # Unbiased: for identical sets the estimate is 2 (mean off-diagonal k − mean diagonal k) / N.
    same, other_sample = mmd(a, a), mmd(a, rng.normal(size=(200, 8)))
    assert max(abs(same), abs(other_sample)) < 0.1 < mmd(a, a + 0.5) < mmd(a, a + 1.0)


def test_ms_ssim_diversity_of_identical_and_different_volumes():
    gen = torch.Generator().manual_seed(0)
    a, b = torch.rand(2, 1, 1, 32, 32, 32, generator=gen)
    assert math.isclose(ms_ssim_diversity(torch.cat([a, a, a])), 1.0, abs_tol=1e-5)
    pair = ms_ssim_diversity(torch.cat([a, b]))
    assert pair < 0.2  # independent noise volumes share little structure
    # Pairs of [a, a, b]: (a, a) = 1, twice (a, b); also checks batching across pairs
    mixed = ms_ssim_diversity(torch.cat([a, a, b]), batch_size=2)
    assert math.isclose(mixed, (1 + 2 * pair) / 3, abs_tol=1e-5)


def test_ms_ssim_diversity_needs_two_volumes():
    with pytest.raises(ValueError, match="N ≥ 2"):
        ms_ssim_diversity(torch.rand(1, 1, 32, 32, 32))
