"""Mode-coverage metrics (gangen.metrics.modes) on hand-constructed samples."""

import math

import numpy as np
import pytest
from scipy.spatial import cKDTree

from gangen.metrics.modes import N_SAMPLES, mode_coverage, model_mode_coverage, occupancy_kl
from gangen.samplers import GaussianMixture, grid25, ring8


def test_three_of_eight_ring_modes():
    ring = ring8()
    # exactly on modes 0, 2, 2, 5 plus one point at the centre (distance 1 = 100 std from every mode)
    x = np.vstack([ring.means[[0, 2, 2, 5]], [[0.0, 0.0]]])
    r = mode_coverage(x, ring.means, ring.std)
    assert r.modes_captured == 3
    assert r.high_quality_fraction == pytest.approx(4 / 5)
    assert r.counts == (1, 0, 2, 0, 0, 1, 0, 0)
    # histogram (1/4, 1/2, 1/4) on 3 of 8 modes: KL = sum p log(8 p)
    expected = 0.25 * math.log(2) + 0.5 * math.log(4) + 0.25 * math.log(2)
    assert r.occupancy_kl == pytest.approx(expected, rel=1e-12)
    assert (r.n_samples, r.n_modes) == (5, 8)


def test_threshold_is_three_std_strict():
    means, std = np.array([[0.0, 0.0], [10.0, 0.0]]), 0.1
    x = np.array([[0.29, 0.0], [0.0, 0.31], [10.0, 0.2999]])  # 2.9, 3.1, 2.999 std from the nearest mode
    r = mode_coverage(x, means, std)
    assert r.counts == (1, 1)
    assert r.high_quality_fraction == pytest.approx(2 / 3)
    # a sample exactly 3 std away (0.75 / 0.25, exact in binary) is not high quality (PacGAN: distance < 3)
    assert mode_coverage([[0.75, 0.0]], means, 0.25).high_quality_fraction == 0.0
    # a wider threshold admits it; min_count raises the bar for "captured"
    assert mode_coverage([[0.75, 0.0]], means, 0.25, threshold=3.5).modes_captured == 1
    assert mode_coverage([[0.0, 0.0], [10.0, 0.0], [10.0, 0.0]], means, std, min_count=2).modes_captured == 1


def test_no_high_quality_sample():
    r = mode_coverage([[5.0, 5.0], [5.0, 6.0]], [[0.0, 0.0], [10.0, 0.0]], 0.1)
    assert (r.modes_captured, r.high_quality_fraction) == (0, 0.0)
    assert r.occupancy_kl == math.inf  # histogram undefined (documented)
    assert r.occupancy_kl_all == pytest.approx(math.log(2))  # both points nearest to mode 0 (tie -> lower index)


def test_occupancy_kl_values():
    assert occupancy_kl([3, 3, 3]) == 0.0
    assert occupancy_kl([7, 0, 0, 0, 0]) == pytest.approx(math.log(5))  # all mass on one of K modes: log K
    assert occupancy_kl([1, 3]) == pytest.approx(0.25 * math.log(0.5) + 0.75 * math.log(1.5))
    with pytest.raises(ValueError):
        occupancy_kl([-1, 2])


def test_assignment_agrees_with_kdtree():
    rng = np.random.default_rng(0)
    grid = grid25()
    x = rng.uniform(-5, 5, size=(3000, 2))
    dist, idx = cKDTree(grid.means).query(x)  # independent nearest-mode reference
    hq = dist / grid.std < 3.0
    r = mode_coverage(x, grid.means, grid.std)
    assert r.counts == tuple(np.bincount(idx[hq], minlength=25))
    assert r.high_quality_fraction == pytest.approx(hq.mean())
    assert r.occupancy_kl_all == pytest.approx(occupancy_kl(np.bincount(idx, minlength=25)))


def test_true_distribution_scores_perfectly():
    # samples of the ring itself: all 8 modes, HQ fraction = P(chi2_2 < 9) = 1 - exp(-4.5) = 0.98889;
    # binomial sd at n = 2500 is 0.0021, tolerance 5 sd
    r = model_mode_coverage(ring8(), ring8(), seed=1)
    assert r.n_samples == N_SAMPLES == 2500
    assert r.modes_captured == 8
    assert r.high_quality_fraction == pytest.approx(1 - math.exp(-4.5), abs=0.0105)
    assert r.occupancy_kl < 0.01  # uniform up to sampling noise (expected about (K-1)/(2n) = 0.0014)


def test_collapsed_generator():
    collapsed = GaussianMixture(ring8().means[:1], 0.01)  # one mode only
    r = model_mode_coverage(collapsed, ring8(), seed=0)
    assert r.modes_captured == 1
    assert r.occupancy_kl == pytest.approx(math.log(8))


def test_bad_input():
    with pytest.raises(ValueError, match="dimension"):
        mode_coverage(np.zeros((3, 3)), ring8().means, 0.01)
    with pytest.raises(ValueError, match="finite"):
        mode_coverage([[np.nan, 0.0]], ring8().means, 0.01)
    with pytest.raises(ValueError, match="std"):
        mode_coverage([[0.0, 0.0]], ring8().means, 0.0)
    with pytest.raises(TypeError, match="means"):
        model_mode_coverage(ring8(), np.zeros((8, 2)))
