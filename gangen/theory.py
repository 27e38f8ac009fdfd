r"""The paper's bounds as functions, every constant a parameter (Arora et al. 2017).

As we read the paper (see ``shared/PAPER.md``; the exact logarithm's argument and the
Delta^2 factor are marked (?) there): Theorem 3.1 says that with

.. math::
    m \ge c\, \Delta^2\, p \log(L L_\phi / \varepsilon) / \varepsilon^2

samples, |d_{F,phi}(mu_hat, nu_hat) - d_{F,phi}(mu, nu)| <= epsilon with probability at
least 1 - exp(-p); Corollary 3.2 gives the same count as the support size of a
distribution that F cannot tell from mu. The universal constant c is unknown: studies
fit it to measurements instead of assuming it. Read as a rate, the generalization gap
scales like sqrt(p log(.) / m).
"""

from __future__ import annotations

import math

from gangen._validation import check_positive_float

__all__ = ["theorem_3_1_samples", "theorem_3_1_epsilon", "theorem_4_2_mixture_size"]


def _log_term(lipschitz: float, lipschitz_phi: float, eps: float) -> float:
    arg = lipschitz * lipschitz_phi / eps
    if arg <= 1.0:
        raise ValueError(
            f"the bound needs L * L_phi / epsilon > 1 (a positive logarithm); got L={lipschitz}, L_phi={lipschitz_phi}, epsilon={eps}"
        )
    return math.log(arg)


def theorem_3_1_samples(eps: float, p: float, *, c: float = 1.0, delta_range: float = 1.0, lipschitz: float = 1.0, lipschitz_phi: float = 1.0) -> float:
    r"""Samples m sufficient for generalization error epsilon (Theorem 3.1; Corollary 3.2's support size).

    .. math::
        m(\varepsilon, p) = c\, \Delta^2\, p \log(L L_\phi / \varepsilon) / \varepsilon^2

    eps: epsilon; p: parameters of F; c: the universal constant; delta_range: Delta (phi in
    [-Delta, Delta]); lipschitz: L (F's Lipschitz constant in its parameters); lipschitz_phi: L_phi.

    >>> round(theorem_3_1_samples(0.1, 100, lipschitz=math.e * 0.1), 6)   # log(e) = 1: 100 / 0.01
    10000.0
    """
    eps = check_positive_float(eps, "eps")
    p = check_positive_float(p, "p")
    for value, name in ((c, "c"), (delta_range, "delta_range"), (lipschitz, "lipschitz"), (lipschitz_phi, "lipschitz_phi")):
        check_positive_float(value, name)
    return c * delta_range**2 * p * _log_term(lipschitz, lipschitz_phi, eps) / eps**2


def theorem_3_1_epsilon(
    m: float, p: float, *, c: float = 1.0, delta_range: float = 1.0, lipschitz: float = 1.0, lipschitz_phi: float = 1.0, tol: float = 1e-12
) -> float:
    r"""The epsilon that Theorem 3.1 guarantees with m samples: the root of m(epsilon, p) = m.

    .. math::
        \varepsilon = \sqrt{c\,\Delta^2\, p \log(L L_\phi/\varepsilon) / m}

    m(eps) decreases in eps on (0, L L_phi), so the root is unique; found by bisection in
    log(eps) to relative tolerance ``tol``. Same symbols as :func:`theorem_3_1_samples`.

    >>> eps = theorem_3_1_epsilon(1e4, 100, lipschitz=10.0)
    >>> round(theorem_3_1_samples(eps, 100, lipschitz=10.0))
    10000
    """
    m = check_positive_float(m, "m")
    check_positive_float(tol, "tol")
    top = lipschitz * lipschitz_phi  # m(eps) -> 0 as eps -> L L_phi
    lo, hi = top * 1e-300, top * (1 - 1e-15)
    kw = dict(c=c, delta_range=delta_range, lipschitz=lipschitz, lipschitz_phi=lipschitz_phi)
    while hi / lo - 1 > tol:
        mid = math.sqrt(lo * hi)
        if theorem_3_1_samples(mid, p, **kw) > m:
            lo = mid
        else:
            hi = mid
    return math.sqrt(lo * hi)


def theorem_4_2_mixture_size(eps: float, p: float, *, c: float = 1.0, delta_range: float = 1.0, lipschitz: float = 1.0, lipschitz_generator: float = 1.0, lipschitz_phi: float = 1.0) -> float:
    r"""Mixture size T of Theorem 4.2 (an epsilon-approximate equilibrium with T players per side).

    .. math::
        T = c\, \Delta^2\, p \log(L L' L_\phi p / \varepsilon) / \varepsilon^2

    as we read the paper (the log argument is marked (?)); L and L' are the Lipschitz
    constants of discriminators and generators in their parameters.

    >>> round(theorem_4_2_mixture_size(0.5, 2, lipschitz=math.e / 4), 6)   # log(e) = 1: 2 / 0.25
    8.0
    """
    eps = check_positive_float(eps, "eps")
    p = check_positive_float(p, "p")
    for value, name in ((c, "c"), (delta_range, "delta_range"), (lipschitz, "lipschitz"), (lipschitz_generator, "lipschitz_generator"), (lipschitz_phi, "lipschitz_phi")):
        check_positive_float(value, name)
    return c * delta_range**2 * p * _log_term(lipschitz * lipschitz_generator * p, lipschitz_phi, eps) / eps**2
