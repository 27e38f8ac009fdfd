"""Seeded distributions to draw samples from (Arora et al. 2017, Lemma 1 and Section 5).

Every sampler is an immutable object with a dimension ``d`` and a method
``sample(n, *, seed=None)`` that returns a float64 array of shape (n, d). The same seed
gives the same samples; ``seed`` may be an int, a ``numpy.random.Generator`` (which is
advanced) or ``None`` (fresh OS entropy, not reproducible).

- :class:`Gaussian`          N(mean, sigma2 * I_d); default sigma2 = 1/d, Lemma 1's N(0, I/d)
- :func:`shifted_gaussian`   a :class:`Gaussian` with mean shift * e_1
- :class:`GaussianMixture`   isotropic mixture; :func:`ring8` and :func:`grid25` are the
                             toy mode-collapse benchmarks (ring of 8, grid of 25)
- :class:`Empirical`         uniform over given points, with replacement
- :class:`Memorizer`         the paper's empirical version mu-hat of a base distribution: m
                             draws made once, then uniform over them
"""

from __future__ import annotations

import abc
import math
import numbers
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from gangen._validation import as_samples, as_weights, check_positive_float, check_positive_int

__all__ = [
    "Sampler",
    "Gaussian",
    "shifted_gaussian",
    "GaussianMixture",
    "ring8",
    "grid25",
    "Empirical",
    "Memorizer",
    "as_rng",
]

def as_rng(seed: int | np.random.Generator | None, name: str = "seed") -> np.random.Generator:
    """Turn ``seed`` into a ``numpy.random.Generator``.

    An int >= 0 seeds a new PCG64 generator (same int, same stream); a Generator is
    returned as is (and is advanced by whoever draws from it); ``None`` draws fresh OS
    entropy (not reproducible).

    >>> bool(as_rng(3).integers(10**6) == as_rng(3).integers(10**6))
    True
    """
    if seed is None or isinstance(seed, np.random.Generator):
        return np.random.default_rng(seed)
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral):
        raise TypeError(f"{name} must be an int >= 0, a numpy.random.Generator or None; got {type(seed).__name__} {seed!r}")
    if seed < 0:
        raise ValueError(f"{name} must be an int >= 0; got {seed}")
    return np.random.default_rng(int(seed))


def _frozen_array(values: np.ndarray) -> np.ndarray:
    arr = np.array(values, dtype=np.float64, copy=True)
    arr.setflags(write=False)
    return arr


class Sampler(abc.ABC):
    """A distribution on R^d that draws seeded samples of shape (n, d), float64.

    Subclasses implement ``_draw(n, rng)``; :meth:`sample` validates ``n`` and the seed.
    """

    d: int

    def sample(self, n: int, *, seed: int | np.random.Generator | None = None) -> np.ndarray:
        """Draw ``n`` i.i.d. points; returns an array of shape (n, d), float64.

        ``seed``: int (reproducible), ``numpy.random.Generator`` (advanced) or ``None``
        (fresh entropy).
        """
        n = check_positive_int(n, "n")
        out = self._draw(n, as_rng(seed))
        assert out.shape == (n, self.d) and out.dtype == np.float64
        return out

    @abc.abstractmethod
    def _draw(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """Draw n points with ``rng``; shape (n, d), float64."""


@dataclass(frozen=True, eq=False, repr=False)
class Gaussian(Sampler):
    r"""Isotropic Gaussian :math:`N(\text{mean}, \sigma^2 I_d)`.

    The default :math:`\sigma^2 = 1/d` and mean 0 give Lemma 1's :math:`N(0, I/d)`, whose
    samples have norm close to 1 and pairwise distances close to :math:`\sqrt 2`.

    Parameters
    ----------
    d : int >= 1, the dimension.
    sigma2 : float > 0, the per-coordinate variance; default ``1/d``.
    mean : array of shape (d,), default zeros.

    >>> g = Gaussian(4)
    >>> g.sigma2, g.sample(3, seed=0).shape
    (0.25, (3, 4))
    >>> bool(np.array_equal(g.sample(5, seed=1), g.sample(5, seed=1)))
    True
    """

    d: int
    sigma2: float | None = field(default=None, kw_only=True)
    mean: Any = field(default=None, kw_only=True)

    def __post_init__(self) -> None:
        d = check_positive_int(self.d, "d")
        sigma2 = 1.0 / d if self.sigma2 is None else check_positive_float(self.sigma2, "sigma2")
        if self.mean is None:
            mean = np.zeros(d)
        else:
            mean = as_samples(self.mean, "mean")  # a 1-D mean of length d arrives as shape (d, 1)
            if mean.shape != (d, 1):
                raise ValueError(f"mean must have shape ({d},) to match d={d}; got shape {np.shape(self.mean)}")
            mean = mean[:, 0]
        object.__setattr__(self, "d", d)
        object.__setattr__(self, "sigma2", sigma2)
        object.__setattr__(self, "mean", _frozen_array(mean))

    def _draw(self, n: int, rng: np.random.Generator) -> np.ndarray:
        return self.mean + math.sqrt(self.sigma2) * rng.standard_normal((n, self.d))

    def __repr__(self) -> str:
        if not np.any(self.mean):
            mean = "0"
        elif np.count_nonzero(self.mean) == 1 and self.mean[0] != 0:
            mean = f"{self.mean[0]:g}*e_1"
        else:
            mean = f"array(shape=({self.d},), norm={np.linalg.norm(self.mean):.4g})"
        return f"Gaussian(d={self.d}, sigma2={self.sigma2:.6g}, mean={mean})"


def shifted_gaussian(d: int, shift: float, *, sigma2: float | None = None) -> Gaussian:
    r"""Gaussian :math:`N(\text{shift}\cdot e_1, \sigma^2 I_d)`: Lemma 1's distribution moved by ``shift`` along the first axis.

    Since a translation by t moves any distribution by exactly :math:`\|t\|` in W1, the
    population distance W1(N(0, sigma2 I), shifted_gaussian(d, s)) is |s|.

    Parameters
    ----------
    d : int >= 1. shift : finite real (may be 0 or negative). sigma2 : default 1/d.

    >>> shifted_gaussian(3, 2.0).mean.tolist()
    [2.0, 0.0, 0.0]
    """
    d = check_positive_int(d, "d")
    if isinstance(shift, bool) or not isinstance(shift, numbers.Real):
        raise TypeError(f"shift must be a real number; got {type(shift).__name__} {shift!r}")
    if not math.isfinite(shift):
        raise ValueError(f"shift must be finite; got {shift}")
    mean = np.zeros(d)
    mean[0] = float(shift)
    return Gaussian(d, sigma2=sigma2, mean=mean)


@dataclass(frozen=True, eq=False, repr=False)
class GaussianMixture(Sampler):
    r"""Mixture :math:`\sum_j w_j N(\mu_j, \text{std}^2 I_d)` of isotropic Gaussians.

    Sampling first picks a component j with probability :math:`w_j`, then draws from it.

    Parameters
    ----------
    means : array of shape (k, d), the component means :math:`\mu_j`.
    std : float > 0, the common standard deviation of every coordinate.
    weights : array of shape (k,), non-negative, summing to 1; default uniform.

    >>> mix = GaussianMixture([[0.0, 0.0], [10.0, 0.0]], 0.1)
    >>> mix.d, mix.weights.tolist()
    (2, [0.5, 0.5])
    """

    means: Any
    std: float
    weights: Any = field(default=None, kw_only=True)

    def __post_init__(self) -> None:
        means = as_samples(self.means, "means")
        std = check_positive_float(self.std, "std")
        weights = as_weights(self.weights, means.shape[0], "weights")
        object.__setattr__(self, "means", _frozen_array(means))
        object.__setattr__(self, "std", std)
        object.__setattr__(self, "weights", _frozen_array(weights))

    @property
    def d(self) -> int:  # type: ignore[override]
        return int(self.means.shape[1])

    @property
    def k(self) -> int:
        """Number of components."""
        return int(self.means.shape[0])

    def _draw(self, n: int, rng: np.random.Generator) -> np.ndarray:
        component = rng.choice(self.k, size=n, p=self.weights)  # (n,)
        return self.means[component] + self.std * rng.standard_normal((n, self.d))

    def __repr__(self) -> str:
        uniform = np.allclose(self.weights, 1.0 / self.k)
        w = "uniform" if uniform else np.array2string(self.weights, precision=3)
        return f"GaussianMixture(k={self.k}, d={self.d}, std={self.std:g}, weights={w})"


def ring8(*, radius: float = 1.0, std: float = 0.01) -> GaussianMixture:
    r"""Ring of 8 Gaussians: modes at :math:`r(\cos 2\pi k/8, \sin 2\pi k/8)`, k = 0..7, uniform weights.

    PacGAN's setting (radius 1, std 0.01). The angles are 2*pi*k/8, not
    ``np.linspace(0, 2*pi, 8)``, whose first and last angles give the same mode.

    >>> ring = ring8()
    >>> ring.k, len(np.unique(ring.means.round(9), axis=0))
    (8, 8)
    """
    radius = check_positive_float(radius, "radius")
    angles = 2.0 * np.pi * np.arange(8) / 8.0
    means = radius * np.stack([np.cos(angles), np.sin(angles)], axis=1)  # (8, 2)
    return GaussianMixture(means, std)


def grid25(*, spacing: float = 2.0, std: float = 0.05) -> GaussianMixture:
    r"""Grid of 25 Gaussians: modes at :math:`\{-2s, -s, 0, s, 2s\}^2` (s = spacing), uniform weights.

    The default spacing 2 gives the usual {-4, -2, 0, 2, 4}^2 with std 0.05.

    >>> g = grid25()
    >>> g.k, float(g.means.min()), float(g.means.max())
    (25, -4.0, 4.0)
    """
    spacing = check_positive_float(spacing, "spacing")
    ticks = spacing * np.arange(-2, 3, dtype=np.float64)  # (5,)
    gx, gy = np.meshgrid(ticks, ticks, indexing="ij")
    means = np.stack([gx.ravel(), gy.ravel()], axis=1)  # (25, 2)
    return GaussianMixture(means, std)


@dataclass(frozen=True, eq=False, repr=False)
class Empirical(Sampler):
    r"""Uniform distribution :math:`\frac1N \sum_i \delta_{x_i}` over the rows of ``points``.

    Sampling draws rows uniformly with replacement. Repeated rows count with their
    multiplicity.

    Parameters
    ----------
    points : array of shape (N, d) (or (N,) for d = 1).

    >>> e = Empirical([[1.0, 2.0]])
    >>> e.sample(2, seed=0).tolist()
    [[1.0, 2.0], [1.0, 2.0]]
    """

    points: Any

    def __post_init__(self) -> None:
        object.__setattr__(self, "points", _frozen_array(as_samples(self.points, "points")))

    @property
    def d(self) -> int:  # type: ignore[override]
        return int(self.points.shape[1])

    def _draw(self, n: int, rng: np.random.Generator) -> np.ndarray:
        idx = rng.integers(0, self.points.shape[0], size=n)  # (n,)
        return self.points[idx]

    def __repr__(self) -> str:
        return f"Empirical(n_points={self.points.shape[0]}, d={self.d})"


@dataclass(frozen=True, eq=False, repr=False)
class Memorizer(Sampler):
    r"""The empirical version :math:`\hat\mu` of ``base`` (Arora et al. 2017, Lemma 1, Corollary 3.2).

    At construction draws m points :math:`x_1..x_m \sim` ``base`` once, with ``seed``; then
    samples uniformly from them with replacement, i.e. it is
    ``Empirical(support)``. A "generator that memorizes the training set" of size m.

    Parameters
    ----------
    base : Sampler, the distribution memorized.
    m : int >= 1, the support size.
    seed : int, Generator or None (default 0) for drawing the support.

    Attributes
    ----------
    support : array of shape (m, d) (also available as ``points``).

    >>> mem = Memorizer(Gaussian(3), 5, seed=0)
    >>> mem.support.shape, bool(np.array_equal(mem.support, Gaussian(3).sample(5, seed=0)))
    ((5, 3), True)
    >>> bool(np.isin(mem.sample(100, seed=1)[:, 0], mem.support[:, 0]).all())
    True
    """

    base: Sampler
    m: int
    seed: int | np.random.Generator | None = field(default=0, kw_only=True)
    support: np.ndarray = field(init=False)

    def __post_init__(self) -> None:
        if not isinstance(self.base, Sampler):
            raise TypeError(f"base must be a gangen Sampler; got {type(self.base).__name__}")
        m = check_positive_int(self.m, "m")
        support = self.base.sample(m, seed=self.seed)
        object.__setattr__(self, "m", m)
        object.__setattr__(self, "support", _frozen_array(support))

    @property
    def d(self) -> int:  # type: ignore[override]
        return self.base.d

    @property
    def points(self) -> np.ndarray:
        """The memorized support, shape (m, d) (alias of ``support``, as in :class:`Empirical`)."""
        return self.support

    def _draw(self, n: int, rng: np.random.Generator) -> np.ndarray:
        idx = rng.integers(0, self.m, size=n)  # (n,)
        return self.support[idx]

    def __repr__(self) -> str:
        seed = self.seed if not isinstance(self.seed, np.random.Generator) else "Generator"
        return f"Memorizer(base={self.base!r}, m={self.m}, seed={seed})"
