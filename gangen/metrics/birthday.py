r"""Birthday-paradox support estimate of a generator (Arora & Zhang 2017, arXiv:1706.08224).

Corollary 3.2 of Arora et al. (2017) says a discriminator with p parameters cannot tell
the data distribution from one supported on :math:`\tilde O(p/\varepsilon^2)` points. The
birthday-paradox test makes that support observable: for the uniform distribution on N
atoms, a batch of s i.i.d. draws contains a repeated atom with probability

.. math::
    P_N(s) = 1 - \prod_{i=1}^{s-1}\Big(1 - \frac iN\Big) \approx 1 - \exp\Big(-\frac{s(s-1)}{2N}\Big),

so :math:`P_N(s) = 1/2` at :math:`s(s-1)/2 = N\log 2`. The test draws batches of s samples,
declares a *duplicate* in a batch when its closest pair is within a distance ``threshold``,
finds the smallest s whose batches have a duplicate at least half the time, s_1/2, and
inverts the formula:

.. math::
    \hat N = \frac{s_{1/2}(s_{1/2}-1)}{2\log 2} \quad(\text{reported as ``support``}),\qquad
    \hat N_{\text{crude}} = s_{1/2}^2 \quad(\text{Arora \& Zhang's "support} \approx s^2\text{"}).

A second point estimate uses every tested batch size, not only the crossing: the
maximum-likelihood N of the uniform model given :math:`k_s` colliding batches out of n at
each tested s (``support_mle``),

.. math::
    \hat N_{\text{MLE}} = \arg\max_N \sum_s k_s \log P_N(s) + (n - k_s) \log(1 - P_N(s)),
    \qquad P_N(s) = 1 - e^{-s(s-1)/(2N)},

unique because the log-likelihood is concave in 1/N; it is None (+inf) when no batch
collided and 0 when every batch did. The adaptive choice of the batch sizes leaves the
likelihood unchanged (it depends on the data only through the counts), so the search
needs no correction here.

``support`` uses the calibrated constant :math:`1/(2\log 2) \approx 0.72`; the crude
:math:`s^2` overstates a uniform support by the factor :math:`2\log 2 \approx 1.39`. Both
are reported; on memorizers of known support m the calibrated one is the closer (see
``tests/test_birthday.py``).

What is measured: with a threshold, "a collision" is the event :math:`d(X, Y) \le \tau`
for two independent draws, of probability :math:`q_\tau`; the test estimates the
*effective* support :math:`1/q_\tau` (for exact duplicates, :math:`q = \sum_i p_i^2`, the
inverse collision probability). It equals N for a uniform distribution on N atoms that
are more than :math:`\tau` apart, and is at most the true support otherwise: mass spread
thinly over a long tail produces no collisions, so no collision-based test can bound the
true support from above.

Confidence bounds (``confidence`` = 1 - alpha, one-sided each). At the batch size
:math:`s_b` used for the bounds (s_1/2 when found, else s_max) with k of n trials
colliding, Clopper-Pearson gives :math:`p_{lo} = \text{Beta}^{-1}(\alpha; k, n-k+1)`
(0 if k = 0) and :math:`p_{hi} = \text{Beta}^{-1}(1-\alpha; k+1, n-k)` (1 if k = n) with
:math:`P(p \ge p_{lo}) \ge 1-\alpha` and :math:`P(p \le p_{hi}) \ge 1-\alpha`. Then

- uniform model: :math:`N(s, p) = s(s-1) / (2\,(-\log(1-p)))` is decreasing in p, so
  ``support_lower`` = N(s_b, p_hi) and ``support_upper`` = N(s_b, p_lo) (+inf if p_lo = 0);
- distribution-free (union bound over the :math:`\binom s2` pairs,
  :math:`p(s) \le \binom s2 q_\tau`): ``effective_support_upper`` =
  :math:`\binom{s_b}2 / p_{lo} \ge 1/q_\tau` for any distribution (+inf if p_lo = 0).

When s_1/2 is found, k comes from n *fresh* batches of size s_1/2 drawn after the search
(``bound_collisions``): the search picked s_1/2 because its frequency was high, which
biases that count upwards (reusing it, ``support_upper`` covered a known m in about
85-90% of runs at nominal 95%, and in 21% at nominal 50%). When not found, s_b = s_max
was fixed in advance and its search count is used. The fresh batches also enter
``support_mle``.

Similarity: ``metric="euclidean"`` (default) uses :math:`\|x - y\|_2` on the flattened
samples; ``metric="cosine"`` uses :math:`1 - \cos(x, y) = \|u - v\|^2/2` for the unit
vectors u = x/|x|, v = y/|y| (zero vectors are rejected). Choosing ``threshold``: 0 finds
exact duplicates (memorizers); for continuous generators use :func:`calibrate_threshold`,
a low quantile of the closest-pair distance of the *true* distribution at the largest
batch size you will test, so that the true distribution itself produces a false duplicate
in at most that fraction of batches.
"""

from __future__ import annotations

import contextlib
import math
import numbers
import sys
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
from scipy import optimize, stats
from scipy.spatial import cKDTree

from gangen._validation import (
    as_samples,
    check_choice,
    check_open_unit,
    check_positive_int,
    is_torch_tensor,
)
from gangen.samplers import as_rng

__all__ = [
    "ClosestPair",
    "BirthdaySupport",
    "closest_pair",
    "birthday_support",
    "calibrate_threshold",
    "uniform_collision_probability",
    "uniform_support",
    "uniform_support_mle",
    "clopper_pearson",
    "METRICS",
    "METHODS",
]

#: Similarities a duplicate can be declared under.
METRICS = ("euclidean", "cosine")
#: Closest-pair algorithms: exact k-d tree (scipy cKDTree, k = 2), blocked Gram matrix, or auto.
METHODS = ("auto", "kdtree", "brute")
#: ``method="auto"`` uses the k-d tree up to this dimension, the Gram matrix above it.
_KDTREE_MAX_DIM = 16
#: Rows per block of the Gram matrix in the brute-force path (memory ~ block * s floats).
_BRUTE_BLOCK = 1024


@dataclass(frozen=True)
class ClosestPair:
    """The closest pair of a batch: indices ``i < j`` and their distance under the metric."""

    distance: float
    i: int
    j: int


@dataclass(frozen=True)
class BirthdaySupport:
    r"""Result of :func:`birthday_support` (formulas in the module docstring).

    Attributes
    ----------
    s_half : int or None
        Smallest tested batch size whose collision frequency is >= ``level``; None when no
        tested s up to ``s_max`` reached it ("no duplicates found up to s_max").
    support : float or None
        :math:`s(s-1)/(2\log(1/(1-\text{level})))` at s = s_half (= s(s-1)/(2 log 2) at
        level 1/2); None when not found.
    support_crude : float or None
        :math:`s_{1/2}^2`; None when not found.
    support_mle : float or None
        Uniform-model maximum-likelihood N from all tested batch sizes; None when no batch
        collided (it may exist when ``found`` is False: an extrapolation from the
        collisions seen below the level).
    support_lower, support_upper : float
        Uniform-model bounds N(s_b, p_hi) and N(s_b, p_lo) at the bound batch size (upper
        may be +inf). When not found, ``support_lower`` is the lower bound to report.
    effective_support_upper : float
        Distribution-free :math:`\binom{s_b}{2}/p_{lo}` (+inf if no collision at s_b).
    bound_batch_size : int
        s_b: s_half when found, else s_max (the largest tested s).
    bound_collisions : int
        k at s_b behind the bounds: from ``n_trials`` fresh batches when found, else the
        search's count at s_max.
    batch_sizes, collisions : tuple of int
        Every tested s (ascending) and the number of its ``n_trials`` batches with a duplicate.
    n_trials, threshold, metric, level, confidence, s_min, s_max : the settings used.
    """

    s_half: int | None
    support: float | None
    support_crude: float | None
    support_mle: float | None
    support_lower: float
    support_upper: float
    effective_support_upper: float
    bound_batch_size: int
    bound_collisions: int
    batch_sizes: tuple[int, ...]
    collisions: tuple[int, ...]
    n_trials: int
    threshold: float
    metric: str
    level: float
    confidence: float
    s_min: int
    s_max: int

    @property
    def found(self) -> bool:
        """True when some tested s <= s_max had a collision frequency >= ``level``."""
        return self.s_half is not None

    @property
    def frequencies(self) -> tuple[float, ...]:
        """Collision frequency k_s / n_trials per tested batch size (aligned with ``batch_sizes``)."""
        return tuple(k / self.n_trials for k in self.collisions)

    def describe(self) -> str:
        """One line for logs and study summaries."""
        c = f"{100 * self.confidence:g}%"
        if self.found:
            return (
                f"support ~ {self.support:.4g} (s at {self.level:g} = {self.s_half}; s^2 = {self.support_crude:.4g}; "
                f"MLE {self.support_mle:.4g}); "
                f"uniform-model {c} bounds [{self.support_lower:.4g}, {self.support_upper:.4g}]; "
                f"effective support <= {self.effective_support_upper:.4g}"
            )
        return (
            f"no duplicates in >= {self.level:g} of batches up to s_max = {self.s_max}; "
            f"support >= {self.support_lower:.4g} ({c}, uniform model)"
        )


# ---------------------------------------------------------------------------------------
# small closed forms


def uniform_collision_probability(s: int, n: float) -> float:
    r"""Birthday approximation :math:`1 - \exp(-s(s-1)/(2N))`: P(some repeat among s draws, uniform on N atoms).

    >>> round(uniform_collision_probability(23, 365), 4)   # the birthday problem (exact: 0.5073)
    0.5
    >>> uniform_collision_probability(1, 10)
    0.0
    """
    s = check_positive_int(s, "s")
    if isinstance(n, bool) or not isinstance(n, numbers.Real) or not (n > 0):
        raise ValueError(f"n (the support size) must be a real number > 0; got {n!r}")
    return float(-math.expm1(-s * (s - 1) / (2.0 * float(n))))


def uniform_support(s: int, p: float) -> float:
    r"""Inverse of :func:`uniform_collision_probability`: :math:`N = s(s-1) / (2\,(-\log(1-p)))`.

    p = 0 gives +inf (no collisions: any support fits); p = 1 gives 0.

    >>> round(uniform_support(23, 0.5), 1)   # 23 people share a birthday half the time: N = 23*22/(2 log 2)
    365.0
    >>> uniform_support(10, 0.0)
    inf
    """
    s = check_positive_int(s, "s")
    if isinstance(p, bool) or not isinstance(p, numbers.Real) or not (0.0 <= float(p) <= 1.0):
        raise ValueError(f"p must be a probability in [0, 1]; got {p!r}")
    if p == 0.0:
        return math.inf
    if p == 1.0:
        return 0.0
    return s * (s - 1) / (2.0 * -math.log1p(-float(p)))


def clopper_pearson(k: int, n: int, *, confidence: float = 0.95) -> tuple[float, float]:
    r"""One-sided Clopper-Pearson bounds (p_lo, p_hi) on a binomial probability from k of n.

    :math:`p_{lo} = \text{Beta}^{-1}(\alpha; k, n-k+1)` (0 if k = 0),
    :math:`p_{hi} = \text{Beta}^{-1}(1-\alpha; k+1, n-k)` (1 if k = n), alpha = 1 - confidence;
    each holds with probability >= ``confidence`` on its own.

    >>> lo, hi = clopper_pearson(0, 10, confidence=0.9)
    >>> lo, round(hi, 6) == round(1 - 0.1 ** (1 / 10), 6)
    (0.0, True)
    """
    n = check_positive_int(n, "n")
    if isinstance(k, bool) or not isinstance(k, numbers.Integral) or not (0 <= k <= n):
        raise ValueError(f"k must be an integer in [0, n={n}]; got {k!r}")
    alpha = 1.0 - check_open_unit(confidence, "confidence")
    k = int(k)
    lo = 0.0 if k == 0 else float(stats.beta.ppf(alpha, k, n - k + 1))
    hi = 1.0 if k == n else float(stats.beta.ppf(1.0 - alpha, k + 1, n - k))
    return lo, hi


def uniform_support_mle(batch_sizes: Any, collisions: Any, n_trials: int) -> float:
    r"""Maximum-likelihood N of the uniform model from k_s of ``n_trials`` colliding batches at each s.

    Maximises :math:`\ell(\lambda) = \sum_s k_s \log(1 - e^{-c_s\lambda}) - (n - k_s) c_s \lambda`
    over :math:`\lambda = 1/N`, :math:`c_s = s(s-1)/2`; :math:`\ell` is concave, so the root
    of :math:`\ell'(\lambda) = \sum_s k_s c_s / (e^{c_s\lambda} - 1) - (n - k_s) c_s` is the
    maximum. No collision at all gives +inf, collisions in every batch give 0.

    >>> round(uniform_support_mle([23], [1], 2), 1)   # half of the batches of 23 collide: N = 23*22/(2 log 2)
    365.0
    """
    s = np.asarray(batch_sizes, dtype=np.float64)
    k = np.asarray(collisions, dtype=np.float64)
    n_trials = check_positive_int(n_trials, "n_trials")
    if s.ndim != 1 or s.shape != k.shape or s.size == 0 or np.any(s < 2) or np.any(k < 0) or np.any(k > n_trials):
        raise ValueError(
            f"batch_sizes (>= 2) and collisions (in [0, n_trials={n_trials}]) must be 1-D arrays of one length; "
            f"got {batch_sizes!r} and {collisions!r}"
        )
    c = s * (s - 1) / 2.0  # pairs per batch
    if not np.any(k > 0):
        return math.inf
    if np.all(k == n_trials):
        return 0.0

    def score(log_lam: float) -> float:  # l'(lambda), decreasing in lambda
        lam = math.exp(log_lam)
        with np.errstate(over="ignore"):  # expm1 -> inf for huge c * lambda: that term is 0
            return float(np.sum(k * c / np.expm1(c * lam)) - np.sum((n_trials - k) * c))

    lo, hi = math.log(1e-12 / c.max()), math.log(50.0 / c.min())
    while score(lo) <= 0:  # pragma: no cover - needs supports beyond 1e12 * s^2
        lo -= 10.0
    return float(1.0 / math.exp(optimize.brentq(score, lo, hi, xtol=1e-12)))


# ---------------------------------------------------------------------------------------
# closest pair of one batch


def _flatten(x: Any, name: str) -> np.ndarray:
    """Samples of shape (n, ...) (numpy or torch, e.g. images (n, C, H, W)) as float64 (n, D)."""
    if is_torch_tensor(x):
        x = x.detach().cpu().double().numpy()
    if isinstance(x, np.ndarray) and x.ndim > 2:
        x = x.reshape(x.shape[0], -1)  # (n, C, H, W) -> (n, C*H*W)
    return as_samples(x, name)


def _unit_rows(x: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(x, axis=1)  # (n,)
    if np.any(norms == 0):
        raise ValueError(f"metric='cosine' needs non-zero samples; got {int((norms == 0).sum())} zero vector(s)")
    return x / norms[:, None]


def _closest_kdtree(x: np.ndarray) -> tuple[float, int, int]:
    dist, idx = cKDTree(x).query(x, k=2)  # (n, 2) each; column 0 is usually the point itself
    i = int(np.argmin(dist[:, 1]))
    j = int(idx[i, 1]) if idx[i, 1] != i else int(idx[i, 0])  # exact duplicates may come in either order
    return float(dist[i, 1]), i, j


def _closest_brute(x: np.ndarray, block: int = _BRUTE_BLOCK) -> tuple[float, int, int]:
    n = x.shape[0]
    sq = np.einsum("ij,ij->i", x, x)  # (n,)
    best = (math.inf, 0, 1)
    for start in range(0, n, block):
        stop = min(start + block, n)
        rows = np.arange(start, stop)
        d2 = sq[start:stop, None] - 2.0 * (x[start:stop] @ x.T) + sq[None, :]  # (b, n), rounding ~ eps |x|^2
        d2[rows - start, rows] = np.inf  # exclude each point itself
        cand = d2.argmin(axis=1)  # (b,) nearest other point of each row
        # recompute the candidates' distances exactly (Gram rounding would turn an exact duplicate's 0 into ~1e-16)
        exact = np.linalg.norm(x[start:stop] - x[cand], axis=1)  # (b,)
        r = int(np.argmin(exact))
        if exact[r] < best[0]:
            best = (float(exact[r]), int(rows[r]), int(cand[r]))
    return best


def _closest(x: np.ndarray, metric: str, method: str) -> ClosestPair:
    """Closest pair of validated float64 samples x (n >= 2, d) under ``metric``."""
    z = _unit_rows(x) if metric == "cosine" else x
    if method == "auto":
        method = "kdtree" if z.shape[1] <= _KDTREE_MAX_DIM else "brute"
    dist, i, j = _closest_kdtree(z) if method == "kdtree" else _closest_brute(z)
    if metric == "cosine":
        dist = dist * dist / 2.0  # 1 - cos(x, y) = |u - v|^2 / 2 for unit u, v
    i, j = min(i, j), max(i, j)
    assert i != j
    return ClosestPair(distance=float(dist), i=i, j=j)


def closest_pair(samples: Any, *, metric: str = "euclidean", method: str = "auto") -> ClosestPair:
    r"""The closest pair :math:`\arg\min_{i<j} d(x_i, x_j)` of a batch, exactly.

    Parameters
    ----------
    samples : array (s, d) or (s, ...) (flattened to (s, D)), numpy or torch; s >= 2.
    metric : "euclidean" (:math:`\|x-y\|`) or "cosine" (:math:`1 - \cos(x, y)`).
    method : "kdtree" (scipy cKDTree query with k = 2: each point's nearest other point),
        "brute" (blocked Gram matrix; the candidates' distances are recomputed exactly),
        or "auto" (k-d tree for D <= 16, Gram matrix above). They agree up to rounding.

    >>> closest_pair([[0.0, 0.0], [5.0, 0.0], [0.0, 3.0], [5.0, 0.0]])
    ClosestPair(distance=0.0, i=1, j=3)
    """
    metric = check_choice(metric, METRICS, "metric")
    method = check_choice(method, METHODS, "method")
    x = _flatten(samples, "samples")
    if x.shape[0] < 2:
        raise ValueError(f"samples must contain at least 2 points to have a pair; got shape {x.shape}")
    return _closest(x, metric, method)


# ---------------------------------------------------------------------------------------
# the test


def _as_draw(sampler: Any) -> Callable[..., Any]:
    """``sampler.sample`` for an object with a ``sample`` method, else the callable itself."""
    sample = getattr(sampler, "sample", None)
    if callable(sample):
        return sample
    if callable(sampler):
        return sampler
    raise TypeError(
        "sampler must have a method sample(n, *, seed) (a gangen Sampler or generator Mixture) or be a callable "
        f"f(n, *, seed) returning n samples; got {type(sampler).__name__}"
    )


def _draw_batch(draw: Callable[..., Any], s: int, rng: np.random.Generator) -> np.ndarray:
    torch = sys.modules.get("torch")  # a torch generator needs no autograd graph here
    with torch.no_grad() if torch is not None else contextlib.nullcontext():
        x = _flatten(draw(s, seed=rng), "sampler output")
    if x.shape[0] != s:
        raise ValueError(f"sampler returned {x.shape[0]} samples when asked for {s}")
    return x


def _check_threshold(threshold: Any) -> float:
    if isinstance(threshold, bool) or not isinstance(threshold, numbers.Real):
        raise TypeError(f"threshold must be a real number >= 0; got {type(threshold).__name__} {threshold!r}")
    if not math.isfinite(threshold) or threshold < 0:
        raise ValueError(f"threshold must be a finite number >= 0; got {threshold}")
    return float(threshold)


def _check_batch_size(s: Any, name: str) -> int:
    s = check_positive_int(s, name)
    if s < 2:
        raise ValueError(f"{name} must be >= 2 (a batch needs two samples to hold a pair); got {s}")
    return s


def birthday_support(
    sampler: Any,
    *,
    threshold: float = 0.0,
    n_trials: int = 50,
    s_min: int = 2,
    s_max: int = 4096,
    metric: str = "euclidean",
    level: float = 0.5,
    confidence: float = 0.95,
    method: str = "auto",
    seed: int | np.random.Generator | None = 0,
) -> BirthdaySupport:
    r"""Birthday-paradox estimate of the support size of ``sampler`` (Arora & Zhang 2017; Corollary 3.2).

    For a batch size s, draws ``n_trials`` independent batches of s samples and counts
    :math:`k_s`, the batches whose closest pair has distance :math:`\le \tau` (``threshold``).
    Batch sizes: s_min, 2 s_min, 4 s_min, ... (capped at s_max) until
    :math:`k_s / n \ge` ``level``, then bisection between the last failing and the first
    succeeding s down to consecutive integers. With :math:`s_{1/2}` the smallest tested s
    that reached the level (L = ``level``),

    .. math::
        \hat N = \frac{s_{1/2}(s_{1/2}-1)}{2\log\frac1{1-L}} \;\Big(= \frac{s(s-1)}{2\log 2}\ \text{at } L = \tfrac12\Big),
        \qquad \hat N_{\text{crude}} = s_{1/2}^2,

    the inversion of :math:`P_N(s) \approx 1 - e^{-s(s-1)/(2N)}` for a uniform distribution
    on N atoms. Bounds: module docstring. If no tested s <= s_max reaches the level the
    result has ``found == False``, ``support is None`` and ``support_lower`` is the
    uniform-model lower bound at s_max. If s_half == s_min > 2 the crossing lies at or
    below s_min and ``support`` is an overestimate; keep s_min = 2 unless you know better.

    Parameters
    ----------
    sampler : a :class:`gangen.samplers.Sampler`, anything with ``sample(n, *, seed)``
        (e.g. a generator :class:`gangen.mixgan.Mixture`), or a callable ``f(n, *, seed)``;
        it must return n samples of shape (n, d) or (n, ...) (flattened), numpy or torch,
        and accept a ``numpy.random.Generator`` as ``seed``.
    threshold : float >= 0, tau: a pair with distance <= tau is a duplicate. 0 finds exact
        duplicates only; for continuous generators see :func:`calibrate_threshold`.
    n_trials : int >= 1, batches per batch size.
    s_min, s_max : int >= 2, the first and the largest batch size tried.
    metric : "euclidean" or "cosine" (see :func:`closest_pair`).
    level : float in (0, 1), the collision frequency that defines s_1/2 (1/2).
    confidence : float in (0, 1), one-sided level of each Clopper-Pearson bound.
    method : closest-pair algorithm (see :func:`closest_pair`); does not change results.
    seed : int, Generator or None; every batch is drawn from one generator made from it.

    Returns
    -------
    BirthdaySupport

    >>> from gangen.samplers import Gaussian, Memorizer
    >>> r = birthday_support(Memorizer(Gaussian(2), 1), n_trials=5)   # support 1: duplicate at s = 2
    >>> r.s_half, r.batch_sizes, r.collisions, r.support_crude
    (2, (2,), (5,), 4)
    >>> birthday_support(Gaussian(2), s_max=64, n_trials=5).found       # continuous: never an exact duplicate
    False
    """
    draw = _as_draw(sampler)
    threshold = _check_threshold(threshold)
    n_trials = check_positive_int(n_trials, "n_trials")
    s_min = _check_batch_size(s_min, "s_min")
    s_max = _check_batch_size(s_max, "s_max")
    if s_max < s_min:
        raise ValueError(f"s_max must be >= s_min; got s_min={s_min}, s_max={s_max}")
    metric = check_choice(metric, METRICS, "metric")
    method = check_choice(method, METHODS, "method")
    level = check_open_unit(level, "level")
    confidence = check_open_unit(confidence, "confidence")
    rng = as_rng(seed)

    counts: dict[int, int] = {}

    def count_collisions(s: int) -> int:
        return sum(_closest(_draw_batch(draw, s, rng), metric, method).distance <= threshold for _ in range(n_trials))

    def reaches_level(s: int) -> bool:
        counts[s] = count_collisions(s)
        return counts[s] >= level * n_trials

    lo: int | None = None  # largest tested s below the level
    hi: int | None = None  # smallest tested s at or above it
    s = s_min
    while True:  # doubling
        if reaches_level(s):
            hi = s
            break
        lo = s
        if s >= s_max:
            break
        s = min(2 * s, s_max)
    if hi is not None and lo is not None:  # bisection to consecutive integers
        while hi - lo > 1:
            mid = (lo + hi) // 2
            if reaches_level(mid):
                hi = mid
            else:
                lo = mid

    batch_sizes = tuple(sorted(counts))
    collisions = tuple(counts[b] for b in batch_sizes)
    if hi is not None:  # fresh batches at the selected s (see the module docstring)
        s_b, k_b = hi, count_collisions(hi)
        mle = uniform_support_mle(batch_sizes + (s_b,), collisions + (k_b,), n_trials)
    else:
        s_b = max(counts)
        assert s_b == s_max
        k_b = counts[s_b]
        mle = uniform_support_mle(batch_sizes, collisions, n_trials)
    p_lo, p_hi = clopper_pearson(k_b, n_trials, confidence=confidence)
    return BirthdaySupport(
        s_half=hi,
        support=None if hi is None else hi * (hi - 1) / (2.0 * -math.log1p(-level)),
        support_crude=None if hi is None else hi * hi,
        support_mle=None if math.isinf(mle) else mle,
        support_lower=uniform_support(s_b, p_hi),
        support_upper=uniform_support(s_b, p_lo),
        effective_support_upper=math.inf if p_lo == 0 else s_b * (s_b - 1) / 2.0 / p_lo,
        bound_batch_size=s_b,
        bound_collisions=k_b,
        batch_sizes=batch_sizes,
        collisions=collisions,
        n_trials=n_trials,
        threshold=threshold,
        metric=metric,
        level=level,
        confidence=confidence,
        s_min=s_min,
        s_max=s_max,
    )


def calibrate_threshold(
    reference: Any,
    *,
    batch_size: int,
    quantile: float = 0.05,
    n_trials: int = 50,
    metric: str = "euclidean",
    method: str = "auto",
    seed: int | np.random.Generator | None = 0,
) -> float:
    r"""Duplicate threshold from the true distribution: the ``quantile`` of its closest-pair distance.

    .. math::
        \tau = Q_q\big(\min_{i<j} d(x_i, x_j)\big),\qquad x_1..x_s \sim \text{reference},\ s = \text{batch\_size},

    estimated from ``n_trials`` batches (``numpy.quantile``, linear interpolation). By
    construction the reference itself has a "duplicate" in a batch of s with probability
    about q, and less for smaller batches; so with ``s_max = batch_size`` and q < ``level``
    the true distribution passes :func:`birthday_support` as "no duplicates found", while a
    generator that repeats (near-)copies more often than the data does is caught. The
    estimated support is then the number of atoms at this resolution tau: a smaller q
    (or larger ``batch_size``) gives a smaller tau and a stricter notion of "duplicate".

    Parameters
    ----------
    reference : sampler of the true distribution (as for :func:`birthday_support`).
    batch_size : int >= 2, the largest s you will test (use it as ``s_max``).
    quantile : float in (0, 1), q (0.05).
    n_trials, metric, method, seed : as for :func:`birthday_support`.

    Returns
    -------
    float, tau >= 0 (0 if the reference itself repeats exactly).

    >>> from gangen.samplers import Empirical
    >>> calibrate_threshold(Empirical([[0.0], [1.0]]), batch_size=3, n_trials=5)   # 3 draws of 2 atoms always repeat
    0.0
    """
    draw = _as_draw(reference)
    batch_size = _check_batch_size(batch_size, "batch_size")
    quantile = check_open_unit(quantile, "quantile")
    n_trials = check_positive_int(n_trials, "n_trials")
    metric = check_choice(metric, METRICS, "metric")
    method = check_choice(method, METHODS, "method")
    rng = as_rng(seed)
    dists = np.array([_closest(_draw_batch(draw, batch_size, rng), metric, method).distance for _ in range(n_trials)])
    return float(np.quantile(dists, quantile))
