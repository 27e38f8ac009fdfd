r"""Measuring functions phi of the F-distance (Arora et al. 2017, Definition 2).

.. math::
    d_{F,\phi}(\mu,\nu) = \sup_{D\in F}\ E_{x\sim\mu}[\phi(D(x))] + E_{x\sim\nu}[\phi(1-D(x))] - 2\phi(1/2)

phi : [0, 1] -> R is monotone and concave. Theorem 3.1 needs phi bounded in [-Delta, Delta]
and L_phi-Lipschitz; each measuring function here carries those two constants:

- :class:`LogMeasuring` phi(t) = log(delta + (1 - delta) t): values in [log delta, 0], so
  Delta = -log delta (= |log delta|), Lipschitz constant L_phi = 1/delta as the paper states
  (the exact sup of phi' is (1 - delta)/delta, slightly smaller).
- :class:`IdentityMeasuring` phi(t) = t (the WGAN / IPM case): on [0, 1], Delta = 1, L_phi = 1.

Measuring functions evaluate elementwise on floats, numpy arrays and torch tensors.
"""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass
from typing import Any, Union

import numpy as np

from gangen._validation import check_choice, check_open_unit, is_torch_tensor

__all__ = ["LogMeasuring", "IdentityMeasuring", "Measuring", "MEASURING_NAMES", "get_measuring", "DEFAULT_DELTA"]

#: default delta of phi(t) = log(delta + (1 - delta) t) used by the neural-net distance
DEFAULT_DELTA = 1e-3


def _log(t: Any) -> Any:
    if is_torch_tensor(t):
        return sys.modules["torch"].log(t)
    return np.log(t)


@dataclass(frozen=True)
class LogMeasuring:
    r"""phi(t) = log(delta + (1 - delta) t), the measuring function of the original GAN.

    Range [log delta, 0] (so Delta = -log delta) and phi'(t) = (1 - delta)/(delta + (1 - delta) t),
    largest at t = 0 where it equals (1 - delta)/delta; the paper's constant L_phi = 1/delta
    bounds it. As delta -> 0 this is log t, and d_{F,phi} with F = all functions tends to
    2 JS (Definition 2 and below).

    >>> phi = LogMeasuring(delta=0.5)
    >>> float(phi(1.0)), phi.phi_half == math.log(0.75)
    (0.0, True)
    """

    delta: float = DEFAULT_DELTA
    name = "log"

    def __post_init__(self) -> None:
        object.__setattr__(self, "delta", check_open_unit(self.delta, "delta"))

    def __call__(self, t: Any) -> Any:
        return _log(self.delta + (1.0 - self.delta) * t)

    def derivative(self, t: Any) -> Any:
        """phi'(t) = (1 - delta)/(delta + (1 - delta) t)."""
        return (1.0 - self.delta) / (self.delta + (1.0 - self.delta) * t)

    @property
    def phi_half(self) -> float:
        """phi(1/2) = log((1 + delta)/2)."""
        return math.log(self.delta + (1.0 - self.delta) * 0.5)

    @property
    def range(self) -> float:
        """Delta: |phi| <= Delta on [0, 1]; here -log delta."""
        return -math.log(self.delta)

    @property
    def lipschitz(self) -> float:
        """L_phi = 1/delta (the paper's constant; sup |phi'| on [0, 1] is (1 - delta)/delta <= 1/delta)."""
        return 1.0 / self.delta

    @property
    def needs_unit_interval(self) -> bool:
        """True: phi is defined only for D in [0, 1] (a sigmoid head)."""
        return True


@dataclass(frozen=True)
class IdentityMeasuring:
    r"""phi(t) = t: d_{F,phi}(mu, nu) = sup_D E_mu D - E_nu D (an integral probability metric).

    On [0, 1]: Delta = 1, L_phi = 1. Defined on all of R, so critics need not be bounded.

    >>> IdentityMeasuring().phi_half
    0.5
    """

    name = "identity"

    def __call__(self, t: Any) -> Any:
        return t

    def derivative(self, t: Any) -> Any:
        """phi'(t) = 1 (same type and shape as t)."""
        return t * 0 + 1

    @property
    def phi_half(self) -> float:
        return 0.5

    @property
    def range(self) -> float:
        return 1.0

    @property
    def lipschitz(self) -> float:
        return 1.0

    @property
    def needs_unit_interval(self) -> bool:
        return False


Measuring = Union[LogMeasuring, IdentityMeasuring]
MEASURING_NAMES = ("log", "identity")


def get_measuring(phi: Any, *, delta: float = DEFAULT_DELTA) -> Measuring:
    """A measuring function from a name (``"log"``, ``"identity"``) or an instance (returned as is).

    ``delta`` is used only by ``"log"``.

    >>> get_measuring("log", delta=0.1)
    LogMeasuring(delta=0.1)
    >>> get_measuring("identity")
    IdentityMeasuring()
    """
    if isinstance(phi, (LogMeasuring, IdentityMeasuring)):
        return phi
    if not isinstance(phi, str):
        raise TypeError(f"phi must be a name in {MEASURING_NAMES} or a measuring object; got {type(phi).__name__} {phi!r}")
    check_choice(phi, MEASURING_NAMES, "phi")
    return LogMeasuring(delta) if phi == "log" else IdentityMeasuring()
