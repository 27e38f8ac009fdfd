r"""Power-law fits on log-log axes, shared by the studies (rates in m, scaling in p).

A power law y = C x^b is a line in log-log coordinates, log y = log C + b log x, fitted
by ordinary least squares; the interval on the exponent b is Student's t with n - 2
(one group) or n - 1 - groups (common slope, one intercept per group) degrees of freedom.
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np

from gangen._validation import check_open_unit, check_positive_int

__all__ = ["loglog_fit", "pooled_slope"]


def loglog_fit(x: Sequence[float], y: Sequence[float], *, level: float = 0.95, min_points: int = 3) -> dict:
    r"""Least-squares line log y = a + b log x (a power law y = e^a x^b) with a Student-t interval on b.

    Uses only points with y > 0 (``n_excluded`` counts the others). Returns ``slope`` (b),
    ``intercept`` (a), ``prefactor`` (e^a), ``stderr``, ``ci95`` ([lo, hi] at ``level``), ``n`` and
    ``n_excluded``. The fit entries are None with fewer than ``min_points`` points (>= 2) or fewer
    than two distinct x; ``stderr`` and ``ci95`` need >= 3 points (one residual degree of freedom).

    >>> fit = loglog_fit([1, 10, 100], [1.0, 0.1, 0.01])
    >>> round(fit["slope"], 12), fit["ci95"] == [fit["slope"], fit["slope"]]
    (-1.0, True)
    >>> f = loglog_fit([1, 10], [3, 30], min_points=2)
    >>> round(f["slope"], 12), round(f["prefactor"], 12), f["ci95"]
    (1.0, 3.0, None)
    """
    from scipy import stats

    check_open_unit(level, "level")
    if check_positive_int(min_points, "min_points") < 2:
        raise ValueError(f"min_points must be >= 2 (a line needs two points); got {min_points}")
    x, y = np.asarray(x, float), np.asarray(y, float)
    if x.shape != y.shape or x.ndim != 1:
        raise ValueError(f"x and y must be 1-D of equal length; got shapes {x.shape} and {y.shape}")
    keep = y > 0
    x, y = x[keep], y[keep]
    out: dict = {"n": int(x.size), "n_excluded": int((~keep).sum()), "slope": None, "intercept": None,
                 "prefactor": None, "stderr": None, "ci95": None}
    if x.size < min_points or np.unique(x).size < 2:
        return out
    lx, ly = np.log(x), np.log(y)
    fit = stats.linregress(lx, ly)
    out.update(slope=float(fit.slope), intercept=float(fit.intercept), prefactor=float(math.exp(fit.intercept)))
    if x.size >= 3:
        half = stats.t.ppf(0.5 + level / 2, x.size - 2) * fit.stderr
        out.update(stderr=float(fit.stderr), ci95=[float(fit.slope - half), float(fit.slope + half)])
    return out


def pooled_slope(x: Sequence[float], y: Sequence[float], groups: Sequence[Any], *, level: float = 0.95) -> dict:
    r"""One slope b common to all groups, log y = a_g + b log x (a separate intercept per group), OLS + t-interval.

    Points with y <= 0 are dropped (``n_excluded``). Returns ``slope``, ``stderr``, ``ci95``, ``n``, ``n_groups``.

    >>> fit = pooled_slope([1, 10, 100, 1, 10, 100], [1.0, 0.1, 0.01, 5.0, 0.5, 0.05], ["a"] * 3 + ["b"] * 3)
    >>> round(fit["slope"], 12), fit["n_groups"]
    (-1.0, 2)
    """
    from scipy import stats

    x, y, g = np.asarray(x, float), np.asarray(y, float), np.asarray(groups)
    keep = y > 0
    x, y, g = x[keep], y[keep], g[keep]
    levels = list(dict.fromkeys(g.tolist()))
    out: dict = {"n": int(x.size), "n_excluded": int((~keep).sum()), "n_groups": len(levels), "slope": None,
                 "stderr": None, "ci95": None}
    k = 1 + len(levels)
    if x.size <= k or np.unique(x).size < 2:
        return out
    X = np.column_stack([np.log(x)] + [(g == lv).astype(float) for lv in levels])  # (n, 1 + groups)
    ly = np.log(y)
    coef, *_ = np.linalg.lstsq(X, ly, rcond=None)
    resid = ly - X @ coef
    dof = x.size - k
    s2 = float(resid @ resid) / dof
    cov = s2 * np.linalg.pinv(X.T @ X)
    se = math.sqrt(max(cov[0, 0], 0.0))
    half = stats.t.ppf(0.5 + level / 2, dof) * se
    out.update(slope=float(coef[0]), stderr=se, ci95=[float(coef[0] - half), float(coef[0] + half)])
    return out
