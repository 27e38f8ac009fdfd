"""Tests for gangen.distances.wasserstein: metric properties, invariances, and POT / scipy references."""

from __future__ import annotations

import math

import numpy as np
import ot
import pytest
import scipy.stats
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from scipy.spatial.distance import cdist

from gangen.distances.wasserstein import random_directions, sliced_wasserstein, wasserstein

# Values are O(10); the solvers are exact, so agreement is limited by float64 rounding of
# distances and sums over <= 64 entries: 1e-9 leaves a wide margin. References build the cost
# with scipy's cdist (differences, then norms), as gangen does; see
# test_cost_matrix_avoids_cancellation for why not POT's default BLAS expansion.
ATOL = 1e-9

coords = st.floats(-10.0, 10.0, allow_nan=False, allow_infinity=False, allow_subnormal=False)


def clouds(d, n_min=1, n_max=7):
    return st.integers(n_min, n_max).flatmap(lambda n: hnp.arrays(np.float64, (n, d), elements=coords))


@st.composite
def two_clouds(draw, same_size=False, d_max=3):
    d = draw(st.integers(1, d_max))
    x = draw(clouds(d))
    y = draw(hnp.arrays(np.float64, x.shape, elements=coords)) if same_size else draw(clouds(d))
    return x, y


@st.composite
def weights(draw, n):
    raw = draw(hnp.arrays(np.float64, n, elements=st.floats(0.0, 1.0, allow_subnormal=False)))
    raw[draw(st.integers(0, n - 1))] += 0.5
    return raw / raw.sum()


# ---------------------------------------------------------------- metric properties


@given(two_clouds())
def test_w1_nonnegative_symmetric_and_zero_on_itself(xy):
    x, y = xy
    value = wasserstein(x, y)
    assert value >= 0.0
    assert value == pytest.approx(wasserstein(y, x), abs=ATOL)
    assert wasserstein(x, x) == 0.0
    assert wasserstein(y, y[::-1]) == 0.0


@given(st.integers(1, 3).flatmap(lambda d: st.tuples(clouds(d), clouds(d), clouds(d))))
def test_w1_triangle_inequality(xyz):
    x, y, z = xyz
    assert wasserstein(x, z) <= wasserstein(x, y) + wasserstein(y, z) + ATOL


@given(two_clouds(), st.randoms(use_true_random=False))
def test_w1_invariant_to_sample_order(xy, rnd):
    x, y = xy
    px, py = list(range(len(x))), list(range(len(y)))
    rnd.shuffle(px)
    rnd.shuffle(py)
    assert wasserstein(x[px], y[py]) == pytest.approx(wasserstein(x, y), abs=ATOL)


@given(two_clouds(), st.integers(0, 2**31 - 1))
def test_w1_invariant_to_a_joint_rotation(xy, seed):
    x, y = xy
    d = x.shape[1]
    rot = scipy.stats.ortho_group.rvs(d, random_state=seed) if d > 1 else np.array([[-1.0]])
    assert wasserstein(x @ rot.T, y @ rot.T) == pytest.approx(wasserstein(x, y), abs=ATOL)


@given(st.integers(1, 3).flatmap(lambda d: st.tuples(clouds(d), hnp.arrays(np.float64, d, elements=coords))), st.sampled_from([1, 2, 3.5]))
def test_translation_moves_wp_by_norm_of_t(xt, p):
    # W_p(mu, mu + t) = ||t||: the coupling x -> x + t costs ||t||, and W_p >= W_1 >= <mean shift, t/||t||>.
    x, t = xt
    assert wasserstein(x, x + t, p=p) == pytest.approx(float(np.linalg.norm(t)), abs=ATOL)


@given(two_clouds(), st.floats(-5.0, 5.0, allow_subnormal=False))
def test_w1_is_absolutely_homogeneous(xy, scale):
    x, y = xy
    assert wasserstein(scale * x, scale * y) == pytest.approx(abs(scale) * wasserstein(x, y), abs=ATOL * 5)


# ---------------------------------------------------------------- references


@given(two_clouds(same_size=True, d_max=4))
def test_assignment_path_agrees_with_pot_emd(xy):
    x, y = xy
    # Reference: raw POT on the Euclidean cost (the W1, not W2^2, cost matrix).
    reference = ot.emd2([], [], cdist(x, y))
    assert wasserstein(x, y) == pytest.approx(reference, abs=ATOL)
    # Same value through the network-simplex path: duplicating y keeps its distribution, n != m.
    assert wasserstein(x, np.concatenate([y, y])) == pytest.approx(reference, abs=ATOL)
    # Explicit uniform weights also select the assignment path and give the same value.
    n = len(x)
    assert wasserstein(x, y, a=np.full(n, 1 / n), b=np.full(n, 1 / n)) == pytest.approx(reference, abs=ATOL)


@given(two_clouds(same_size=True), st.sampled_from([2, 3]))
def test_wp_assignment_agrees_with_pot_emd(xy, p):
    x, y = xy
    # Compare W_p^p, the optimal cost: its p-th root amplifies rounding near 0 (an error of 5e-17
    # in the cost becomes 7e-9 in W_2, seen with hypothesis on identical clouds).
    reference = ot.emd2([], [], cdist(x, y) ** p)
    assert wasserstein(x, y, p=p) ** p == pytest.approx(reference, abs=ATOL)
    assert wasserstein(x, np.concatenate([y, y]), p=p) ** p == pytest.approx(reference, abs=ATOL)


@given(st.data())
def test_weighted_exact_agrees_with_pot_emd(data):
    x, y = data.draw(two_clouds())
    a, b = data.draw(weights(len(x))), data.draw(weights(len(y)))
    reference = ot.emd2(a, b, cdist(x, y))
    assert wasserstein(x, y, a=a, b=b) == pytest.approx(reference, abs=ATOL)


@given(st.data())
def test_1d_w1_matches_scipy_with_and_without_weights(data):
    x = data.draw(clouds(1))[:, 0]
    y = data.draw(clouds(1))[:, 0]
    reference = scipy.stats.wasserstein_distance(x, y)
    assert wasserstein(x, y, method="1d") == pytest.approx(reference, abs=ATOL)
    assert wasserstein(x, y, method="exact") == pytest.approx(reference, abs=ATOL)
    a, b = data.draw(weights(len(x))), data.draw(weights(len(y)))
    reference_w = scipy.stats.wasserstein_distance(x, y, u_weights=a, v_weights=b)
    assert wasserstein(x, y, a=a, b=b, method="1d") == pytest.approx(reference_w, abs=ATOL)
    assert wasserstein(x, y, a=a, b=b, method="exact") == pytest.approx(reference_w, abs=ATOL)


@given(st.data(), st.sampled_from([1.5, 2, 3]))
def test_1d_wp_matches_pot_wasserstein_1d(data, p):
    x = data.draw(clouds(1))[:, 0]
    y = data.draw(clouds(1))[:, 0]
    a, b = data.draw(weights(len(x))), data.draw(weights(len(y)))
    # ot.wasserstein_1d returns W_p^p.
    reference = ot.wasserstein_1d(x, y, a, b, p=p)
    assert wasserstein(x, y, a=a, b=b, p=p, method="1d") ** p == pytest.approx(reference, abs=ATOL)
    assert wasserstein(x, y, a=a, b=b, p=p, method="exact") ** p == pytest.approx(reference, abs=ATOL)


def test_w1_closed_forms():
    # Two points at distance 1 vs their midpoint: each point travels 1/2.
    assert wasserstein([[0.0, 0.0], [1.0, 0.0]], [[0.5, 0.0]]) == pytest.approx(0.5, abs=ATOL)
    # Point masses: W_p(delta_x, delta_y) = ||x - y|| for every p.
    for p in (1, 2, 7):
        assert wasserstein([[0.0, 0.0, 0.0]], [[1.0, 2.0, 2.0]], p=p) == pytest.approx(3.0, abs=ATOL)


def test_cost_matrix_avoids_cancellation():
    # Found by hypothesis: POT's default Euclidean cost computes sqrt(|x|^2 + |y|^2 - 2<x, y>), whose
    # rounding error (~1e-15 * |x|^2) becomes ~4e-8 after the square root for identical points.
    # gangen uses exact differences (cdist), so identical clouds are at distance exactly 0.
    x = np.array([[1.0, 1.83781145, 0.0, 0.2873976]])
    y = x.copy()
    assert wasserstein(x, y) == 0.0
    assert wasserstein(x, np.concatenate([y, y])) == 0.0  # network-simplex path
    blas = float(ot.dist(x, y, metric="euclidean")[0, 0])
    assert blas == pytest.approx(0.0, abs=1e-6)  # POT's value: zero only up to ~1e-7


def test_exact_raises_when_simplex_stops_before_optimality():
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(30, 2)), rng.normal(size=(40, 2))
    with pytest.raises(RuntimeError, match="num_iter_max"):
        wasserstein(x, y, num_iter_max=1)
    assert wasserstein(x, y) > 0.0  # the default cap is enough


# ---------------------------------------------------------------- Sinkhorn


def test_sinkhorn_approaches_exact_from_above_and_accepts_torch():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(40, 3)), rng.normal(size=(30, 3)) + 1.0
    exact = wasserstein(x, y)
    # The entropic plan is feasible (up to the 1e-9 marginal error), so its cost is >= the optimum,
    # and it converges to the optimum as reg -> 0. Measured: +0.022 at reg 0.05, +0.0013 at 0.01.
    values = [wasserstein(x, y, method="sinkhorn", reg=reg) for reg in (0.5, 0.05, 0.01)]
    assert all(v >= exact - 1e-6 for v in values)
    assert values[0] > values[1] > values[2]
    assert values[2] == pytest.approx(exact, abs=0.01)
    tx, ty = torch.from_numpy(x), torch.from_numpy(y)
    out = wasserstein(tx, ty, method="sinkhorn", reg=0.05)
    assert type(out) is float and out == pytest.approx(values[1], rel=1e-9)
    out32 = wasserstein(tx.float(), ty.float(), method="sinkhorn", reg=0.05)
    assert type(out32) is float and out32 == pytest.approx(values[1], rel=1e-5)
    assert type(wasserstein(tx, ty)) is float  # the exact path takes tensors too
    assert wasserstein(tx, ty) == pytest.approx(exact, abs=ATOL)


def test_sinkhorn_raises_when_not_converged():
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(20, 2)), rng.normal(size=(25, 2)) + 3.0
    with pytest.raises(RuntimeError, match="did not converge"):
        wasserstein(x, y, method="sinkhorn", reg=0.01, num_iter_max=5)


@given(two_clouds())
@settings(max_examples=10)
def test_sinkhorn_symmetric_and_nonnegative(xy):
    x, y = xy
    value = wasserstein(x, y, method="sinkhorn", reg=1.0)
    assert value >= 0.0
    assert value == pytest.approx(wasserstein(y, x, method="sinkhorn", reg=1.0), rel=1e-6, abs=1e-6)


# ---------------------------------------------------------------- sliced


@given(st.data(), st.sampled_from([1, 2]), st.booleans())
def test_sliced_matches_pot_with_the_same_directions(data, p, weighted):
    x, y = data.draw(two_clouds(d_max=4))
    a = data.draw(weights(len(x))) if weighted else None
    b = data.draw(weights(len(y))) if weighted else None
    theta = random_directions(x.shape[1], 20, seed=7)
    # POT's definition is the same: (mean over directions of W_p^p)^(1/p).
    reference = ot.sliced_wasserstein_distance(x, y, a=a, b=b, projections=theta, p=p)
    ours = sliced_wasserstein(x, y, a=a, b=b, n_projections=20, seed=7, p=p)
    assert ours**p == pytest.approx(reference**p, abs=ATOL)  # p-th powers: see test_wp_assignment...


@given(two_clouds())
def test_sliced_properties(xy):
    x, y = xy
    value = sliced_wasserstein(x, y, n_projections=30)
    assert value >= 0.0
    assert value == pytest.approx(sliced_wasserstein(y, x, n_projections=30), abs=ATOL)
    assert sliced_wasserstein(x, x, n_projections=30) == 0.0
    # Projections are 1-Lipschitz, so every sliced W1 is at most W1.
    assert value <= wasserstein(x, y) + ATOL


def test_sliced_in_one_dimension_is_w1_and_is_seeded():
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(20, 1)), rng.normal(size=(15, 1))
    assert sliced_wasserstein(x, y, n_projections=3) == pytest.approx(scipy.stats.wasserstein_distance(x[:, 0], y[:, 0]), abs=ATOL)
    u, v = rng.normal(size=(50, 5)), rng.normal(size=(50, 5)) + 0.5
    assert sliced_wasserstein(u, v, seed=3) == sliced_wasserstein(u, v, seed=3)
    assert sliced_wasserstein(u, v, seed=3) != sliced_wasserstein(u, v, seed=4)
    # Monte Carlo agreement with POT's own random directions: both estimate the same SW_1.
    # Measured spread over seeds at L=2000 is ~0.002 here; tolerance 0.02.
    ours = sliced_wasserstein(u, v, n_projections=2000, seed=0)
    pots = ot.sliced_wasserstein_distance(u, v, n_projections=2000, p=1, seed=0)
    assert ours == pytest.approx(pots, abs=0.02)


def test_random_directions_are_unit_and_seeded():
    theta = random_directions(4, 1000, seed=0)
    np.testing.assert_allclose(np.linalg.norm(theta, axis=0), 1.0, atol=1e-12)
    # Uniform on the sphere: E[theta theta^T] = I/d; sd of each diagonal entry ~ sqrt(2/(d(d+2)1000)).
    np.testing.assert_allclose(theta @ theta.T / 1000, np.eye(4) / 4, atol=0.03)
    np.testing.assert_array_equal(theta, random_directions(4, 1000, seed=0))


def test_lemma1_gaussian_vs_its_empirical_version_is_far_in_high_dimension():
    # Sanity link to Lemma 1 (not a proof): two independent samples of N(0, I/d) with d = 200 are
    # at W1 distance close to the typical nearest-neighbour distance (about sqrt(2) * 0.8 >= 1).
    from gangen.samplers import Gaussian

    g = Gaussian(200)
    value = wasserstein(g.sample(100, seed=0), g.sample(100, seed=1))
    assert value > 1.0
    assert value < math.sqrt(2.0) + 0.1  # pairwise distances concentrate at sqrt(2)


def test_sinkhorn_on_cuda_tensors_matches_cpu():
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device on this machine")
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(40, 3)), rng.normal(size=(30, 3)) + 1.0
    cpu = wasserstein(x, y, method="sinkhorn", reg=0.05)
    gpu = wasserstein(torch.from_numpy(x).cuda(), torch.from_numpy(y).cuda(), method="sinkhorn", reg=0.05)
    assert type(gpu) is float and gpu == pytest.approx(cpu, rel=1e-9)


def test_public_names_resolve_to_the_functions():
    # gangen/distances/wasserstein.py shares its name with the function: the package must bind
    # the name to the function (eager import in gangen/distances/__init__.py), not the submodule.
    from gangen import distances
    from gangen.distances import sliced_wasserstein as public_sw
    from gangen.distances import wasserstein as public_w

    assert public_w is wasserstein and public_sw is sliced_wasserstein
    assert distances.wasserstein is wasserstein
