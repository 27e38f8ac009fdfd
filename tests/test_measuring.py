"""Measuring functions phi (Definition 2; Theorem 3.1's Delta and L_phi)."""

import math

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from gangen.distances.measuring import (
    DEFAULT_DELTA,
    IdentityMeasuring,
    LogMeasuring,
    get_measuring,
)

deltas = st.floats(min_value=1e-6, max_value=0.999, allow_nan=False)
unit = st.floats(min_value=0.0, max_value=1.0, allow_nan=False)
GRID = np.linspace(0.0, 1.0, 2001)


@given(delta=deltas)
def test_log_measuring_endpoints_and_constants(delta):
    # closed forms: phi(0) = log delta, phi(1) = log 1 = 0, phi(1/2) = log((1 + delta)/2)
    phi = LogMeasuring(delta)
    assert phi(0.0) == pytest.approx(math.log(delta), rel=1e-12)
    assert phi(1.0) == pytest.approx(0.0, abs=1e-15)
    assert phi.phi_half == pytest.approx(math.log((1 + delta) / 2), rel=1e-12)
    assert phi.range == pytest.approx(-math.log(delta), rel=1e-12)
    assert phi.lipschitz == pytest.approx(1.0 / delta, rel=1e-12)  # the paper's constant


@given(delta=deltas)
def test_log_measuring_bounded_and_lipschitz_on_unit_interval(delta):
    # |phi| <= Delta and |phi'| <= L_phi on [0, 1] (the hypotheses of Theorem 3.1)
    phi = LogMeasuring(delta)
    assert np.all(np.abs(phi(GRID)) <= phi.range * (1 + 1e-12))
    assert np.all(np.abs(phi.derivative(GRID)) <= phi.lipschitz * (1 + 1e-12))


@given(delta=deltas, t=st.floats(min_value=0.01, max_value=0.99))
def test_log_measuring_derivative_matches_autograd(delta, t):
    phi = LogMeasuring(delta)
    tt = torch.tensor(t, dtype=torch.float64, requires_grad=True)
    phi(tt).backward()
    assert float(phi.derivative(t)) == pytest.approx(tt.grad.item(), rel=1e-12)


@pytest.mark.parametrize("phi", [LogMeasuring(0.01), LogMeasuring(0.5), IdentityMeasuring()])
@given(t=unit)
def test_concave_midpoint_inequality(phi, t):
    # concavity: phi(t) + phi(1 - t) <= 2 phi(1/2), the reason d_{F,phi}(mu, mu) = 0 (equality at t = 1/2)
    assert phi(t) + phi(1.0 - t) <= 2 * phi.phi_half + 1e-12


def test_identity_measuring():
    phi = IdentityMeasuring()
    t = np.array([0.0, 0.25, 1.0])
    assert np.array_equal(phi(t), t)
    assert np.array_equal(phi.derivative(t), np.ones(3))
    assert (phi.phi_half, phi.range, phi.lipschitz) == (0.5, 1.0, 1.0)


def test_measuring_works_on_numpy_and_torch_alike():
    phi = LogMeasuring(0.1)
    t = np.linspace(0, 1, 11)
    np.testing.assert_allclose(phi(torch.from_numpy(t)).numpy(), phi(t), rtol=1e-15)
    assert isinstance(phi(torch.from_numpy(t)), torch.Tensor)


def test_get_measuring_by_name_and_instance():
    assert get_measuring("log") == LogMeasuring(DEFAULT_DELTA)
    assert get_measuring("log", delta=0.2) == LogMeasuring(0.2)
    assert get_measuring("identity") == IdentityMeasuring()
    phi = LogMeasuring(0.3)
    assert get_measuring(phi) is phi


@pytest.mark.parametrize("delta", [0.0, 1.0, -0.1, 1.5, float("nan"), float("inf")])
def test_delta_outside_open_unit_interval_raises(delta):
    with pytest.raises(ValueError, match="open interval"):
        LogMeasuring(delta)
    with pytest.raises(ValueError, match="open interval"):
        get_measuring("log", delta=delta)


@pytest.mark.parametrize(
    "bad, exc",
    [("logit", ValueError), ("", ValueError), (None, TypeError), (1, TypeError), (np.log, TypeError)],
)
def test_unknown_measuring_raises(bad, exc):
    with pytest.raises(exc, match="phi"):
        get_measuring(bad)


@pytest.mark.parametrize("delta", [True, "0.1", None])
def test_delta_wrong_type_raises(delta):
    with pytest.raises(TypeError, match="delta"):
        LogMeasuring(delta)
