"""Tests for gangen.distances.js: properties, scipy and counting references, k-NN estimator behaviour."""

from __future__ import annotations

import math
from collections import Counter

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from scipy import integrate, stats
from scipy.spatial.distance import jensenshannon

from gangen.distances.js import empirical_js, js_divergence, knn_js

LOG2 = math.log(2.0)
TOL = 1e-12  # float64 rounding on sums of at most ~20 terms of size <= 1


@st.composite
def histogram_pairs(draw):
    """Two probability vectors of a common length 1..8 (zeros allowed, not all zero)."""
    k = draw(st.integers(1, 8))
    raw = hnp.arrays(np.float64, k, elements=st.floats(0.0, 10.0, allow_subnormal=False))
    p, q = draw(raw), draw(raw)
    p[draw(st.integers(0, k - 1))] += 1.0  # guarantee positive mass
    q[draw(st.integers(0, k - 1))] += 1.0
    return p / p.sum(), q / q.sum()


# Small integer grid so that shared and repeated rows happen often.
def point_sets(d, n_max=8):
    return st.integers(1, n_max).flatmap(
        lambda n: hnp.arrays(np.float64, (n, d), elements=st.integers(-2, 2).map(float))
    )


@given(histogram_pairs())
def test_js_divergence_equals_scipy_jensenshannon_squared(pq):
    p, q = pq
    # scipy.spatial.distance.jensenshannon returns sqrt(JS) in nats (its default base is e).
    assert js_divergence(p, q) == pytest.approx(jensenshannon(p, q) ** 2, abs=TOL)


@given(histogram_pairs())
def test_js_divergence_properties(pq):
    p, q = pq
    value = js_divergence(p, q)
    assert 0.0 <= value <= LOG2
    assert value == js_divergence(q, p)  # symmetric (exactly: the two KL terms swap)
    assert js_divergence(p, p) == 0.0


def test_js_divergence_closed_forms():
    assert js_divergence([1.0, 0.0], [0.0, 1.0]) == pytest.approx(LOG2, abs=TOL)  # disjoint
    assert js_divergence([0.5, 0.5, 0.0, 0.0], [0.0, 0.0, 0.5, 0.5]) == pytest.approx(LOG2, abs=TOL)
    # p = (1, 0), q = (1/2, 1/2): m = (3/4, 1/4); JS = 1/2 log(4/3) + 1/2 (1/2 log(2/3) + 1/2 log 2).
    expected = 0.5 * math.log(4 / 3) + 0.25 * math.log(2 / 3) + 0.25 * math.log(2)
    assert js_divergence([1.0, 0.0], [0.5, 0.5]) == pytest.approx(expected, abs=TOL)


def _counting_reference(x, y):
    """Independent reference: count rows as tuples, align the two histograms, scipy's JS squared."""
    cx, cy = Counter(map(tuple, np.asarray(x).tolist())), Counter(map(tuple, np.asarray(y).tolist()))
    atoms = sorted(set(cx) | set(cy))
    p = np.array([cx[a] for a in atoms], dtype=float) / len(x)
    q = np.array([cy[a] for a in atoms], dtype=float) / len(y)
    return jensenshannon(p, q) ** 2


@given(point_sets(2), point_sets(2))
def test_empirical_js_matches_counting_reference_and_properties(x, y):
    value = empirical_js(x, y)
    assert value == pytest.approx(_counting_reference(x, y), abs=TOL)
    assert 0.0 <= value <= LOG2
    assert value == empirical_js(y, x)
    assert empirical_js(x, x) == 0.0


@given(point_sets(3), st.randoms(use_true_random=False))
def test_empirical_js_same_multiset_in_any_order_is_zero(x, rnd):
    perm = list(range(len(x)))
    rnd.shuffle(perm)
    assert empirical_js(x, x[perm]) == 0.0
    doubled = np.concatenate([x, x])  # same distribution, twice the multiplicities
    assert empirical_js(x, doubled[::-1]) == pytest.approx(0.0, abs=TOL)


@given(point_sets(2), point_sets(2))
def test_empirical_js_is_log2_on_disjoint_supports(x, y):
    # x in [-2, 2]^2, y shifted to [8, 12]^2: no shared atom.
    assert empirical_js(x, y + 10.0) == pytest.approx(LOG2, abs=TOL)


def test_empirical_js_merges_identical_rows_and_signed_zero():
    # x = {a, a, b}, y = {a, c}: atoms a, b, c with p = (2/3, 1/3, 0), q = (1/2, 0, 1/2).
    x = [[0.0, 1.0], [0.0, 1.0], [5.0, 5.0]]
    y = [[-0.0, 1.0], [7.0, 7.0]]  # -0.0 is the same point as 0.0
    expected = jensenshannon([2 / 3, 1 / 3, 0.0], [1 / 2, 0.0, 1 / 2]) ** 2
    assert empirical_js(x, y) == pytest.approx(expected, abs=TOL)


def test_empirical_js_of_continuous_samples_is_log2():
    # Lemma 1: two samples of a density share no atom almost surely.
    rng = np.random.default_rng(0)
    assert empirical_js(rng.normal(size=(100, 3)), rng.normal(size=(100, 3))) == pytest.approx(LOG2, abs=TOL)


# ---------------------------------------------------------------- knn_js


def _gaussian_pair(n, d, seed, shift=0.0):
    return (
        np.random.default_rng(seed).normal(size=(n, d)),
        np.random.default_rng(seed + 1000).normal(size=(n, d)) + shift,
    )


@pytest.mark.parametrize("d", [1, 2])
def test_knn_js_of_equal_distributions_tends_to_zero(d):
    # Root-mean-square over 5 seeds. Measured (this implementation, k=5): about 0.029 at n=200 and
    # 0.0035 (d=1) / 0.0073 (d=2) at n=5000 -- consistent estimator, error shrinking with n.
    def rms(n):
        return math.sqrt(np.mean([knn_js(*_gaussian_pair(n, d, s)) ** 2 for s in range(5)]))

    small, large = rms(200), rms(5000)
    assert large < 0.5 * small
    assert large < 0.015


def test_knn_js_matches_quadrature_for_shifted_gaussians():
    # Reference: JS(N(0,1), N(2,1)) by numerical integration of its definition (about 0.3368).
    p, q = stats.norm(0, 1).pdf, stats.norm(2, 1).pdf

    def integrand(t):
        m = 0.5 * (p(t) + q(t))
        return 0.5 * p(t) * math.log(p(t) / m) + 0.5 * q(t) * math.log(q(t) / m)

    reference = integrate.quad(integrand, -25.0, 27.0, limit=200)[0]
    # Measured sd over seeds at n=5000: 0.005; tolerance 0.02.
    assert knn_js(*_gaussian_pair(5000, 1, 0, shift=2.0)) == pytest.approx(reference, abs=0.02)


def test_knn_js_matches_closed_form_for_overlapping_uniforms():
    # U[0,1] vs U[1/2, 3/2]: half of each mass is shared, so JS = 1/2 log 2 (closed form).
    x = np.random.default_rng(0).random((5000, 1))
    y = np.random.default_rng(1).random((5000, 1)) + 0.5
    assert knn_js(x, y) == pytest.approx(0.5 * LOG2, abs=0.02)  # measured sd 0.005


def test_knn_js_disjoint_supports_near_log2():
    # Far apart samples: every pooled neighbour is from the point's own sample, and the estimate
    # is exactly psi(2n) - psi(n) = log 2 - 1/(4n) + O(1/n^2).
    from scipy.special import digamma

    x, y = _gaussian_pair(500, 2, 0, shift=100.0)
    assert knn_js(x, y) == pytest.approx(digamma(1000) - digamma(500), abs=1e-9)
    assert knn_js(x, y) == pytest.approx(LOG2, abs=1e-3)


def test_knn_js_symmetric_for_equal_sizes_and_seeded_for_unequal():
    x, y = _gaussian_pair(300, 2, 0, shift=1.0)
    assert knn_js(x, y) == pytest.approx(knn_js(y, x), abs=1e-12)
    z = y[:200]
    assert knn_js(x, z, seed=1) == knn_js(x, z, seed=1)
    assert knn_js(x, z, seed=1) != knn_js(x, z, seed=2)  # the subsample of x differs


def test_knn_js_rejects_discrete_data():
    x = np.repeat(np.arange(10.0)[:, None], 10, axis=0)  # every point repeated 10 times
    with pytest.raises(ValueError, match="empirical_js"):
        knn_js(x, x + 0.5, k=5)
