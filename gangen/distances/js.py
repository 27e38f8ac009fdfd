r"""Jensen-Shannon divergence: between histograms, between empirical samples, and a k-NN estimate between densities.

.. math::
    d_{JS}(\mu, \nu) = \tfrac12 KL(\mu \,\|\, M) + \tfrac12 KL(\nu \,\|\, M), \qquad M = \tfrac12(\mu + \nu),

in nats, so :math:`0 \le d_{JS} \le \log 2` (Arora et al. 2017, Section 2). Lemma 1: for
:math:`\mu = N(0, I/d)` and its empirical version :math:`\hat\mu` (m atoms),
:math:`d_{JS}(\mu, \hat\mu) = \log 2` (a density and a finite set are mutually singular),
which is why JS does not generalize.

- :func:`js_divergence`  histograms over a common finite alphabet.
- :func:`empirical_js`   the two empirical distributions themselves (exact on their atoms).
- :func:`knn_js`         an estimate of JS between the densities the samples came from.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from scipy.special import digamma

from gangen._validation import as_samples, as_weights, check_positive_int, check_same_dim
from gangen.samplers import as_rng

__all__ = ["js_divergence", "empirical_js", "knn_js"]

LOG2 = math.log(2.0)


def _js_of_histograms(p: np.ndarray, q: np.ndarray) -> float:
    """JS in nats of two validated probability vectors of equal length; 0 log 0 := 0."""
    mix = 0.5 * (p + q)

    def kl_to_mix(h: np.ndarray) -> float:
        support = h > 0  # 0 log(0 / m) := 0; where h > 0 also mix > 0
        return float(np.sum(h[support] * np.log(h[support] / mix[support])))

    value = 0.5 * kl_to_mix(p) + 0.5 * kl_to_mix(q)
    # Exact up to rounding; keep the result in the valid range [0, log 2].
    return min(max(value, 0.0), LOG2)


def _as_histogram(h: Any, name: str, atol: float) -> np.ndarray:
    try:
        n = len(h)
    except TypeError:
        raise TypeError(f"{name} must be a 1-D array of probabilities; got {type(h).__name__} {h!r}") from None
    if n == 0:
        raise ValueError(f"{name} must be a non-empty 1-D array of probabilities; got an empty array")
    return as_weights(h, n, name, atol=atol)


def js_divergence(p: Any, q: Any, *, atol: float = 1e-6) -> float:
    r"""Jensen-Shannon divergence between two histograms, in nats.

    .. math::
        d_{JS}(p, q) = \tfrac12 \sum_i p_i \log\frac{p_i}{m_i} + \tfrac12 \sum_i q_i \log\frac{q_i}{m_i},
        \qquad m = \tfrac12(p + q),

    with :math:`0 \log 0 := 0`. Equals ``scipy.spatial.distance.jensenshannon(p, q) ** 2``
    (scipy returns the square root, the JS *distance*, with natural log by default).

    Parameters
    ----------
    p, q : arrays of shape (k,), non-negative, finite, each summing to 1 within ``atol``
        (they are not renormalised: an unnormalised input is an error).
    atol : tolerance on the sums.

    Returns
    -------
    float in [0, log 2].

    >>> js_divergence([0.5, 0.5], [0.5, 0.5])
    0.0
    >>> js_divergence([1.0, 0.0], [0.0, 1.0])  # disjoint supports: log 2
    0.6931471805599453
    """
    p = _as_histogram(p, "p", atol)
    q = _as_histogram(q, "q", atol)
    if p.shape != q.shape:
        raise ValueError(f"p and q must have the same length (one probability per bin); got {p.shape[0]} and {q.shape[0]}")
    return _js_of_histograms(p, q)


def empirical_js(x: Any, y: Any) -> float:
    r"""Plug-in JS between the empirical distributions of two samples, exact over the union of their atoms.

    .. math::
        d_{JS}(\hat\mu, \hat\nu), \qquad \hat\mu = \frac1n \sum_{i=1}^n \delta_{x_i},\
        \hat\nu = \frac1m \sum_{j=1}^m \delta_{y_j}.

    Identical rows are merged into one atom whose mass counts their multiplicity (so the
    order of rows does not matter); atoms seen in only one sample contribute
    :math:`\tfrac12 \cdot \text{mass} \cdot \log 2`. Hence :math:`\log 2` for disjoint
    supports and 0 for the same multiset. Rows are compared exactly (after mapping -0.0 to 0.0).
    For continuous data this is log 2 almost surely (Lemma 1); use :func:`knn_js` to estimate
    JS between the underlying densities.

    Parameters
    ----------
    x : array (n, d); y : array (m, d) (or 1-D arrays of scalars).

    Returns
    -------
    float in [0, log 2].

    >>> empirical_js([[0.0], [1.0]], [[2.0], [3.0]])  # disjoint supports
    0.6931471805599453
    >>> empirical_js([[0.0], [1.0], [1.0]], [[1.0], [0.0], [1.0]])  # same multiset
    0.0
    """
    xs = as_samples(x, "x")
    ys = as_samples(y, "y")
    check_same_dim(xs, ys)
    n, m = xs.shape[0], ys.shape[0]
    pooled = np.concatenate([xs, ys], axis=0) + 0.0  # (n + m, d); + 0.0 maps -0.0 to 0.0
    _, atom = np.unique(pooled, axis=0, return_inverse=True)  # atom index of each row, (n + m,)
    atom = atom.reshape(-1)
    n_atoms = int(atom.max()) + 1
    p = np.bincount(atom[:n], minlength=n_atoms) / n  # (K,) mass of each atom under mu-hat
    q = np.bincount(atom[n:], minlength=n_atoms) / m  # (K,) under nu-hat
    return _js_of_histograms(p, q)


def _log_unit_ball_volume(d: int) -> float:
    return 0.5 * d * math.log(math.pi) - math.lgamma(0.5 * d + 1.0)


def _kl_entropy(points: np.ndarray, k: int, name: str) -> float:
    r"""Kozachenko-Leonenko entropy estimate (nats) of the density of ``points`` (N, d).

    :math:`\hat H = \psi(N) - \psi(k) + \log V_d + \frac dN \sum_i \log \rho_k(i)`, with
    :math:`\rho_k(i)` the distance from point i to its k-th nearest other point.
    """
    from scipy.spatial import cKDTree

    n_points, d = points.shape
    # k + 1 neighbours: the point itself (distance 0) is the first.
    rho = cKDTree(points).query(points, k=k + 1)[0][:, k]  # (N,)
    if np.any(rho <= 0):
        n_bad = int(np.sum(rho <= 0))
        raise ValueError(
            f"knn_js estimates JS between densities, but {n_bad} points of {name} have at least k={k} exact "
            f"duplicates (k-th neighbour distance 0): the data look discrete. Use empirical_js for "
            f"empirical (atomic) distributions, or a larger k"
        )
    return float(digamma(n_points) - digamma(k) + _log_unit_ball_volume(d) + d * np.mean(np.log(rho)))


def knn_js(x: Any, y: Any, *, k: int = 5, seed: int | np.random.Generator | None = 0) -> float:
    r"""k-nearest-neighbour estimate of JS between the densities p, q that x and y were drawn from.

    Uses :math:`d_{JS}(p, q) = H(M) - \tfrac12 H(p) - \tfrac12 H(q)`, :math:`M = \tfrac12(p + q)`,
    with each differential entropy H replaced by the Kozachenko-Leonenko estimate

    .. math::
        \hat H(z_1..z_N) = \psi(N) - \psi(k) + \log V_d + \frac dN \sum_{i=1}^N \log \rho_k(i),

    :math:`\rho_k(i)` the Euclidean distance from :math:`z_i` to its k-th nearest other point,
    :math:`V_d = \pi^{d/2} / \Gamma(d/2 + 1)`, :math:`\psi` the digamma function.
    :math:`\hat H(p)` uses all of x, :math:`\hat H(q)` all of y, and :math:`\hat H(M)` the pooled
    sample of N = 2 min(n, m) points, min(n, m) from each (the larger sample is subsampled
    without replacement with ``seed`` when n != m), which is a sample of M. The terms
    :math:`\log V_d` and :math:`\psi(k)` cancel when n = m.

    Consistency: for fixed k the Kozachenko-Leonenko estimator is consistent (mean-square) for
    densities with finite entropy and mild tail/smoothness conditions (Kozachenko & Leonenko
    1987; Goria et al. 2005; Berrett, Samworth & Yuan 2019), so the estimate converges to
    :math:`d_{JS}(p, q)` as n, m -> infinity. Disjoint, well-separated supports give
    :math:`\psi(2n) - \psi(n) \approx \log 2 - 1/(4n)` exactly (every pooled neighbour is
    from the point's own sample).

    Bias and caveats: at finite n the three entropy estimates carry different
    finite-sample biases (boundary and curvature effects that shrink with n but grow with
    the dimension d), so the estimate of equal distributions is not exactly 0 and can be
    negative or above log 2; it is returned unclipped, so averages over seeds are not
    biased by clipping. Measured for two independent N(0, I_d) samples of size n each
    (k = 5, mean +- sd over 10 seeds): d = 1: 0.008 +- 0.024 (n = 200), -0.003 +- 0.004
    (n = 5000); d = 2: 0.006 +- 0.022, 0.002 +- 0.007; d = 10: -0.112 +- 0.043 (n = 200),
    -0.063 +- 0.006 (n = 1000), -0.031 +- 0.005 (n = 5000). So in low dimension the error
    is mostly variance, and from d ~ 10 a negative bias dominates that decays slowly with n:
    compare estimates only at equal n and d, against the same-distribution baseline. Not
    defined for discrete data (duplicated points): raises ValueError then; use
    :func:`empirical_js`. Symmetric when n = m. Cost O((n + m) log(n + m)) with KD-trees
    (``scipy.spatial.cKDTree``) in low dimension, approaching O((n + m)^2) in high dimension.

    Parameters
    ----------
    x : array (n, d), n > k; y : array (m, d), m > k.
    k : int >= 1, the neighbour rank.
    seed : int, Generator or None; used only to subsample the larger sample when n != m.

    Returns
    -------
    float, an estimate of :math:`d_{JS}(p, q)` in nats.

    >>> x = np.arange(100.0)[:, None]  # two samples 1000 apart: disjoint supports
    >>> round(knn_js(x, x + 1000.0), 3), round(math.log(2) - 1 / 400, 3)
    (0.69, 0.69)
    """
    k = check_positive_int(k, "k")
    xs = as_samples(x, "x")
    ys = as_samples(y, "y")
    check_same_dim(xs, ys)
    n, m = xs.shape[0], ys.shape[0]
    for name, size in (("x", n), ("y", m)):
        if size <= k:
            raise ValueError(f"knn_js needs more than k={k} points in {name} (each point needs k other points); got {size}")
    h_p = _kl_entropy(xs, k, "x")
    h_q = _kl_entropy(ys, k, "y")
    n_each = min(n, m)
    if n != m:
        rng = as_rng(seed)
        xs = xs[rng.choice(n, size=n_each, replace=False)] if n > n_each else xs
        ys = ys[rng.choice(m, size=n_each, replace=False)] if m > n_each else ys
    h_mix = _kl_entropy(np.concatenate([xs, ys], axis=0), k, "the pooled sample (x, y)")
    return float(h_mix - 0.5 * h_p - 0.5 * h_q)
