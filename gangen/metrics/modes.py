r"""Mode coverage of samples from a toy Gaussian mixture (ring of 8, grid of 25), as VEEGAN/PacGAN.

For modes mu_1..mu_K with common standard deviation sigma and samples x_1..x_n:

.. math::
    k(x) = \arg\min_k \|x - \mu_k\|,\qquad
    \text{HQ}(x) = \big[\|x - \mu_{k(x)}\| / \sigma < 3\big],\qquad
    c_k = \#\{i : \text{HQ}(x_i),\ k(x_i) = k\}

- high-quality fraction = sum_k c_k / n;
- modes captured = #{k : c_k >= 1} (``min_count`` = 1: a mode is captured when it is the
  nearest mode of at least one high-quality sample);
- occupancy KL = KL(p || U) = sum_k p_k log(K p_k) with p = c / sum(c), the histogram of
  the *high-quality* samples over their nearest modes against the uniform target
  (0 log 0 := 0; it lies in [0, log K]).

These follow PacGAN's evaluation code (``MetricLogger`` in fjxmlzn/PacGAN: std-normalised
distance to the nearest mode, strict threshold 3, counts of high-quality samples per
mode); VEEGAN states the same high-quality and captured-mode definitions, with 2,500
samples (:data:`N_SAMPLES`). When no sample is high quality the histogram p is undefined:
``occupancy_kl`` is then +inf. ``occupancy_kl_all`` is the same KL over *all* samples
assigned to their nearest mode (always finite), for comparison.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from gangen._validation import as_samples, check_positive_float, check_positive_int, check_same_dim, is_torch_tensor

__all__ = ["ModeCoverage", "mode_coverage", "model_mode_coverage", "occupancy_kl", "N_SAMPLES", "THRESHOLD"]

#: Samples per evaluation in VEEGAN and PacGAN.
N_SAMPLES = 2500
#: High-quality radius in standard deviations.
THRESHOLD = 3.0


@dataclass(frozen=True)
class ModeCoverage:
    """Mode-coverage metrics of n samples against K modes (see the module docstring).

    Attributes
    ----------
    n_samples, n_modes : int
    modes_captured : int
        Modes with at least ``min_count`` high-quality samples.
    high_quality_fraction : float
        Fraction of samples within ``threshold`` std of their nearest mode.
    occupancy_kl : float
        KL(histogram of high-quality samples over modes || uniform), nats; +inf if none.
    occupancy_kl_all : float
        The same over all samples (nearest mode, no quality filter).
    counts : tuple of int
        c_k, high-quality samples per mode (length K).
    """

    n_samples: int
    n_modes: int
    modes_captured: int
    high_quality_fraction: float
    occupancy_kl: float
    occupancy_kl_all: float
    counts: tuple[int, ...]


def occupancy_kl(counts: Any) -> float:
    r"""KL(p || uniform) = sum_k p_k log(K p_k) for p = counts / sum(counts), with 0 log 0 := 0.

    >>> occupancy_kl([5, 5, 5, 5])
    0.0
    >>> round(occupancy_kl([4, 0, 0, 0]), 6) == round(math.log(4), 6)   # all mass on one mode
    True
    """
    c = np.asarray(counts, dtype=np.float64)
    if c.ndim != 1 or c.size == 0 or np.any(c < 0) or not np.all(np.isfinite(c)):
        raise ValueError(f"counts must be a non-empty 1-D array of non-negative finite numbers; got {c}")
    total = c.sum()
    if total == 0:
        return math.inf
    p = c[c > 0] / total
    return float(max(np.sum(p * np.log(c.size * p)), 0.0))


def mode_coverage(
    samples: Any,
    means: Any,
    std: float,
    *,
    threshold: float = THRESHOLD,
    min_count: int = 1,
) -> ModeCoverage:
    """Mode-coverage metrics of ``samples`` (n, d) against modes ``means`` (K, d) of common ``std``.

    Parameters
    ----------
    samples : array (n, d) (numpy or torch)
    means : array (K, d), the mode centres mu_k
    std : float, sigma (per coordinate, isotropic)
    threshold : float, the high-quality radius in units of sigma (3)
    min_count : int, high-quality samples a mode needs to count as captured (1)

    >>> r = mode_coverage([[0.0, 0.0], [10.0, 0.0], [5.0, 5.0]], [[0.0, 0.0], [10.0, 0.0]], 0.1)
    >>> r.modes_captured, round(r.high_quality_fraction, 4), r.counts, r.occupancy_kl
    (2, 0.6667, (1, 1), 0.0)
    """
    x = as_samples(samples, "samples")
    mu = as_samples(means, "means")
    check_same_dim(x, mu, ("samples", "means"))
    sigma = check_positive_float(std, "std")
    threshold = check_positive_float(threshold, "threshold")
    min_count = check_positive_int(min_count, "min_count")
    k = mu.shape[0]
    # squared distances (n, K) without forming (n, K, d): |x|^2 - 2 x.mu + |mu|^2, clipped at 0
    d2 = np.maximum((x * x).sum(1)[:, None] - 2.0 * x @ mu.T + (mu * mu).sum(1)[None, :], 0.0)
    nearest = d2.argmin(axis=1)  # (n,)
    dist = np.sqrt(d2[np.arange(x.shape[0]), nearest]) / sigma  # (n,), in units of sigma
    hq = dist < threshold
    counts = np.bincount(nearest[hq], minlength=k)
    counts_all = np.bincount(nearest, minlength=k)
    return ModeCoverage(
        n_samples=int(x.shape[0]),
        n_modes=int(k),
        modes_captured=int((counts >= min_count).sum()),
        high_quality_fraction=float(hq.mean()),
        occupancy_kl=occupancy_kl(counts),
        occupancy_kl_all=occupancy_kl(counts_all),
        counts=tuple(int(c) for c in counts),
    )


def model_mode_coverage(
    model: Any,
    target: Any,
    *,
    n_samples: int = N_SAMPLES,
    seed: int | np.random.Generator | None = 0,
    threshold: float = THRESHOLD,
    min_count: int = 1,
) -> ModeCoverage:
    """:func:`mode_coverage` of ``model.sample(n_samples, seed=seed)`` against a Gaussian mixture ``target``.

    ``model`` is anything with ``sample(n, *, seed)`` returning (n, d) samples (a
    :mod:`gangen.samplers` sampler or a generator :class:`gangen.mixgan.Mixture`);
    ``target`` has attributes ``means`` (K, d) and ``std`` (a
    :class:`gangen.samplers.GaussianMixture`, e.g. ``ring8()``).
    """
    if not hasattr(target, "means") or not hasattr(target, "std"):
        raise TypeError(f"target must have 'means' and 'std' (a GaussianMixture); got {type(target).__name__}")
    n_samples = check_positive_int(n_samples, "n_samples")
    x = model.sample(n_samples, seed=seed)
    if is_torch_tensor(x):
        x = x.detach().cpu().double().numpy()
    return mode_coverage(x, target.means, target.std, threshold=threshold, min_count=min_count)
