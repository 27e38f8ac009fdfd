"""gangen.stats: power-law fits against numpy's polyfit and closed forms."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from gangen.stats import loglog_fit, pooled_slope


@given(b=st.floats(-3, 3), c=st.floats(0.01, 100), n=st.integers(2, 12))
def test_exact_power_law_is_recovered(b, c, n):
    x = np.geomspace(1, 1e4, n)
    fit = loglog_fit(x, c * x**b, min_points=2)
    assert fit["slope"] == pytest.approx(b, abs=1e-9)
    assert fit["prefactor"] == pytest.approx(c, rel=1e-9)
    assert (fit["ci95"] is None) == (n < 3)


@given(seed=st.integers(0, 2**32 - 1), level=st.sampled_from([0.5, 0.9, 0.95]))
def test_noisy_fit_equals_polyfit_and_t_interval(seed, level):
    from scipy import stats

    rng = np.random.default_rng(seed)
    x = np.geomspace(10, 1e5, 9)
    y = 2.0 * x**-0.5 * np.exp(rng.normal(0, 0.1, x.size))
    fit = loglog_fit(x, y, level=level)
    slope, intercept = np.polyfit(np.log(x), np.log(y), 1)  # independent least squares
    assert fit["slope"] == pytest.approx(slope, abs=1e-10)
    assert fit["intercept"] == pytest.approx(intercept, abs=1e-10)
    # residual standard error of the slope, by hand
    resid = np.log(y) - (intercept + slope * np.log(x))
    se = np.sqrt(resid @ resid / (x.size - 2) / np.sum((np.log(x) - np.log(x).mean()) ** 2))
    half = stats.t.ppf(0.5 + level / 2, x.size - 2) * se
    assert fit["ci95"] == pytest.approx([slope - half, slope + half], abs=1e-10)


def test_nonpositive_values_are_excluded_and_counted():
    fit = loglog_fit([1, 10, 100, 1000], [1.0, 0.1, 0.0, -1.0], min_points=2)
    assert (fit["n"], fit["n_excluded"]) == (2, 2) and fit["slope"] == pytest.approx(-1.0)
    assert loglog_fit([1, 10, 100, 1000], [1.0, 0.1, 0.0, -1.0])["slope"] is None  # default needs 3 points
    assert loglog_fit([5, 5, 5], [1.0, 2.0, 3.0])["slope"] is None  # one distinct x: no line


def test_pooled_slope_shares_the_slope_across_groups():
    x = np.tile(np.geomspace(1, 1000, 4), 3)
    groups = np.repeat(["a", "b", "c"], 4)
    y = np.repeat([1.0, 3.0, 9.0], 4) * x**-0.7
    fit = pooled_slope(x, y, groups)
    assert fit["slope"] == pytest.approx(-0.7, abs=1e-12) and fit["n_groups"] == 3


def test_bad_input():
    with pytest.raises(ValueError, match="equal length"):
        loglog_fit([1, 2, 3], [1, 2])
    with pytest.raises(ValueError, match="min_points"):
        loglog_fit([1, 2, 3], [1, 2, 3], min_points=1)
    with pytest.raises(ValueError, match="level"):
        loglog_fit([1, 2, 3], [1, 2, 3], level=1.5)
