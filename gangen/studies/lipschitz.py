r"""Zhou et al. (2019): under a Lipschitz constraint the critic's gradient at a fake sample points to a real one.

Zhou et al. ("Understanding the Effectiveness of Lipschitz-Continuity in GANs",
arXiv:1807.00751; "Lipschitz GANs", ICML 2019) argue, as we read the paper: without a
Lipschitz constraint the optimal discriminator f* reflects only local densities, so
∇f*(x) at a fake sample x says nothing about where the real data lie; under a
k-Lipschitz constraint, for every fake x there is a real y with f*(y) - f*(x) = k‖y - x‖,
hence ∇f*(x) = k (y - x)/‖y - x‖, and for the Wasserstein critic y is x's partner in the
optimal-transport (OT) coupling. Measured here, with both distributions fixed and only
the critic trained:

    cos_ot(x)      = cos(∇f(x), y_OT(x) - x),   y_OT(x) = x's partner in the exact OT
                     coupling of the n fake and n real samples (Euclidean cost, equal sizes:
                     a permutation, :func:`transport_partners`);
    cos_nearest(x) = cos(∇f(x), y_NN(x) - x),   y_NN(x) = x's nearest real sample;
    grad_norm(x)   = ‖∇f(x)‖,

averaged over the n fake samples (``frac_ot_aligned`` = fraction with cos_ot >
``aligned_cos``). f is the raw score (critic value, or logit for the log-sigmoid loss);
in every loss the critic is pushed *up* on real samples, so alignment means cos = +1.

Cases (2-D, isotropic standard deviation ``std`` = 0.15):

- ``mixture`` (Zhou et al.'s toy): fake N((-0.75, 0), σ²I) against the 50/50 mixture of
  N((1, 0), σ²I) and N((-1.25, 0), σ²I). Every fake is nearer the left mode, but the OT
  coupling sends half of them right: nearest-sample and OT directions disagree there.
- ``disjoint`` (our choice): fake N((-1, 0), σ²I) against the 50/50 mixture of
  N((0.5, 1.5), σ²I) and N((0.5, -1.5), σ²I): the component means are 2.1 = 14σ apart,
  so the samples' supports are separated, and the OT directions are ±45° from the
  horizontal (a critic rising merely "to the right" has cos = 0.71 with them).

Losses (the discriminator minimises; s = raw score):

- ``wasserstein``: -(E s(real) - E s(fake)) (:func:`gangen.mixgan.losses.wasserstein`);
- ``log_sigmoid``: -E log σ(s(real)) - E log σ(-s(fake)), the minimax / non-saturating
  discriminator loss (:func:`gangen.mixgan.losses.minimax`);
- ``least_squares``: E (s(real) - 1)² + E s(fake)² (LSGAN with targets 0/1,
  :func:`gangen.mixgan.losses.least_squares`).

Constraints: ``none``; ``clip`` (every weight clipped to [-c, c] after each step, WGAN);
``gp`` (WGAN-GP's λ E(‖∇s(x̂)‖ - 1)² on real-fake interpolates); ``maxgp`` (Zhou et al.'s
λ max_k ‖∇s(x̂_k)‖² over interpolates); ``sn`` (spectral normalisation of every linear
layer, :func:`torch.nn.utils.parametrizations.spectral_norm`). The penalties are those of
:mod:`gangen.mixgan.losses`.

Training (:func:`fit_critic`): the critic is an MLP (:class:`gangen.nn.players.MLPDiscriminator`)
fit full-batch to the *fixed* n fake and n real samples (so the optimum is that of the
empirical game the OT coupling is computed for) with Adam for ``steps`` steps, the learning
rate decayed linearly from ``lr`` to ``lr * lr_final_fraction``. Convergence is recorded,
not assumed: ``loss_drift`` is the change of the full-batch loss over the last 10% of the
steps. The unconstrained Wasserstein critic has no optimum (its loss is unbounded below);
it is trained for the same budget and its gradients grow with the budget.

Run with ``python -m gangen.studies.lipschitz [--preset tiny|quick|paper]``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from scipy.optimize import linear_sum_assignment
from scipy.spatial.distance import cdist
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm

from gangen._validation import (
    as_samples,
    check_choice,
    check_nonneg_int,
    check_open_unit,
    check_positive_float,
    check_positive_int,
    check_same_dim,
)
from gangen.mixgan.losses import Loss, gradient_penalty, least_squares, max_gradient_penalty, minimax, wasserstein
from gangen.nn.players import MLPDiscriminator
from gangen.samplers import Gaussian, GaussianMixture, Sampler
from gangen.studies.runner import Cell, Study, derive_seed, make_cell, main

__all__ = [
    "Alignment",
    "CASES",
    "CONSTRAINTS",
    "CriticFit",
    "LOSS_NAMES",
    "LipschitzConfig",
    "PRESETS",
    "STUDY",
    "case_distributions",
    "case_samples",
    "cells",
    "fit_critic",
    "gradient_alignment",
    "input_gradients",
    "make_loss",
    "plot",
    "row_cosines",
    "run_group",
    "summarize",
    "transport_partners",
]

CASES = ("mixture", "disjoint")
LOSS_NAMES = ("wasserstein", "log_sigmoid", "least_squares")
CONSTRAINTS = ("none", "clip", "gp", "maxgp", "sn")
LIPSCHITZ_CONSTRAINTS = ("clip", "gp", "maxgp", "sn")
LOSS_LABELS = {"wasserstein": "Wasserstein", "log_sigmoid": "log-sigmoid", "least_squares": "least squares"}
CONSTRAINT_LABELS = {"none": "no constraint", "clip": "weight clipping", "gp": "WGAN-GP", "maxgp": "MaxGP",
                     "sn": "spectral norm"}
SHORT_CONSTRAINT_LABELS = {"none": "none", "clip": "clipping", "gp": "WGAN-GP", "maxgp": "MaxGP", "sn": "SN"}


# --------------------------------------------------------------------------- distributions


def case_distributions(case: str, *, std: float = 0.15) -> tuple[Sampler, Sampler]:
    """The fixed (fake, real) distributions of a case (see the module docstring).

    >>> fake, real = case_distributions("mixture")
    >>> fake.mean.tolist(), real.means.tolist()
    ([-0.75, 0.0], [[1.0, 0.0], [-1.25, 0.0]])
    """
    check_choice(case, CASES, "case")
    std = check_positive_float(std, "std")
    if case == "mixture":
        return Gaussian(2, sigma2=std**2, mean=[-0.75, 0.0]), GaussianMixture([[1.0, 0.0], [-1.25, 0.0]], std)
    return Gaussian(2, sigma2=std**2, mean=[-1.0, 0.0]), GaussianMixture([[0.5, 1.5], [0.5, -1.5]], std)


def case_samples(case: str, n: int, *, seed: int, std: float = 0.15) -> tuple[np.ndarray, np.ndarray]:
    """n fake and n real samples of a case, each (n, 2), from two streams of ``seed``.

    >>> fake, real = case_samples("disjoint", 5, seed=0)
    >>> fake.shape, real.shape, bool((fake[:, 0] < 0).all() and (real[:, 0] > 0).all())
    ((5, 2), (5, 2), True)
    """
    n = check_positive_int(n, "n")
    fake_dist, real_dist = case_distributions(case, std=std)
    fake_seed, real_seed = np.random.SeedSequence(check_nonneg_int(seed, "seed")).generate_state(2)
    return fake_dist.sample(n, seed=int(fake_seed)), real_dist.sample(n, seed=int(real_seed))


# --------------------------------------------------------------------------- losses and critics


def make_loss(name: str) -> Loss:
    """The :class:`~gangen.mixgan.losses.Loss` of a loss name in :data:`LOSS_NAMES`.

    >>> make_loss("log_sigmoid").name
    'minimax'
    """
    check_choice(name, LOSS_NAMES, "loss")
    return {"wasserstein": wasserstein, "log_sigmoid": minimax, "least_squares": least_squares}[name]()


class _OneCritic(nn.Module):
    """One critic network behind the interface of a discriminator :class:`~gangen.mixgan.Mixture` with T_d = 1.

    The penalties of :mod:`gangen.mixgan.losses` call ``disc(x, per_component=True,
    groups=True)`` on x of shape (1, S, n, d) and read ``disc.n_components``; this wrapper
    runs the plain network on all points and returns the scores with the leading T_d = 1
    axis, so those penalties apply unchanged (also to a spectrally normalised network,
    which a vmapped Mixture cannot hold: its power iteration updates buffers in place).
    """

    n_components = 1

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor, *, per_component: bool = False, groups: bool = False,
                labels: torch.Tensor | None = None) -> torch.Tensor:
        lead = x.shape[:-1]  # (1, S, n) | (S, n) | (n,)
        scores = self.net(x.reshape(-1, x.shape[-1])).reshape(lead)
        return scores if per_component else scores.unsqueeze(0)


@dataclass(frozen=True)
class CriticFit:
    """A critic fit to fixed samples by :func:`fit_critic`.

    Attributes
    ----------
    critic : nn.Module, the trained network x (n, d) -> s(x) (n,), in eval mode.
    loss : float, the final full-batch adversarial loss -F (without the penalty).
    penalty : float, the final penalty term (0 without one).
    loss_drift : float, |mean loss over the last 5% of steps - mean over the 5% before|,
        a convergence diagnostic (0 at a fixed point; grows with the unconstrained
        Wasserstein critic, which diverges).
    steps : int; lr : float, the optimisation budget.
    """

    critic: nn.Module = field(repr=False)
    loss: float
    penalty: float
    loss_drift: float
    steps: int
    lr: float


def _make_critic(d: int, hidden: int, depth: int, constraint: str, seed: int) -> nn.Module:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        net = MLPDiscriminator(d, hidden=hidden, depth=depth)
        if constraint == "sn":  # the power-iteration vectors u, v are drawn here, under the seed
            for module in net.modules():
                if isinstance(module, nn.Linear):
                    spectral_norm(module)
    return net


def fit_critic(
    real: Any,
    fake: Any,
    *,
    loss: str,
    constraint: str,
    steps: int = 2000,
    lr: float = 1e-3,
    lr_final_fraction: float = 0.1,
    beta1: float = 0.9,
    beta2: float = 0.999,
    hidden: int = 128,
    depth: int = 2,
    clip: float = 0.01,
    gp_weight: float = 10.0,
    maxgp_weight: float = 10.0,
    seed: int = 0,
) -> CriticFit:
    r"""Train a critic s on fixed samples: minimise L_D(s) (+ penalty) full-batch with Adam.

    .. math:: \min_s\ L_D(s; \{x_i\}_{real}, \{\tilde x_i\}_{fake}) + \lambda P(s)
        \quad (\text{or weights clipped to } [-c, c], \text{ or } s \text{ spectrally normalised})

    Parameters
    ----------
    real, fake : arrays (n, d), the same n (the penalties pair real and fake samples).
    loss : one of :data:`LOSS_NAMES`; constraint : one of :data:`CONSTRAINTS`.
    steps, lr, lr_final_fraction, beta1, beta2 : Adam for ``steps`` full-batch steps, the
        learning rate decayed linearly from ``lr`` to ``lr * lr_final_fraction``.
    hidden, depth : the MLP critic (leaky ReLU).
    clip : c of ``constraint="clip"``; gp_weight, maxgp_weight : λ of ``"gp"``, ``"maxgp"``.
    seed : seeds the critic's initialisation (global torch RNG untouched) and the pairings
        of real and fake samples for the interpolates (a fresh permutation every step).

    Two point masses 2 apart (W1 = 2): with the Wasserstein loss and MaxGP, a critic of
    slope k along the segment scores k W1 - λ k², maximal at k* = W1 / (2λ) = 0.1 for λ = 10;
    its gradient at the fake points is k* times the unit vector toward the real points.

    >>> real, fake = np.array([[1.0, 0.0]] * 4), np.array([[-1.0, 0.0]] * 4)
    >>> fit = fit_critic(real, fake, loss="wasserstein", constraint="maxgp", steps=100, lr=0.01, hidden=8)
    >>> np.round(input_gradients(fit.critic, fake)[0], 2).tolist()
    [0.1, 0.0]
    """
    x_real = as_samples(real, "real")
    x_fake = as_samples(fake, "fake")
    check_same_dim(x_real, x_fake, ("real", "fake"))
    if x_real.shape[0] != x_fake.shape[0]:
        raise ValueError(f"real and fake must have the same number of samples; got {x_real.shape[0]} and {x_fake.shape[0]}")
    adv = make_loss(loss)
    check_choice(constraint, CONSTRAINTS, "constraint")
    steps = check_positive_int(steps, "steps")
    check_positive_float(lr, "lr")
    check_open_unit(lr_final_fraction, "lr_final_fraction")
    for name, b in (("beta1", beta1), ("beta2", beta2)):
        if not 0.0 <= b < 1.0:
            raise ValueError(f"{name} must lie in [0, 1); got {b}")
    check_positive_float(clip, "clip")
    seed = check_nonneg_int(seed, "seed")
    penalty = {"gp": gradient_penalty(gp_weight), "maxgp": max_gradient_penalty(maxgp_weight)}.get(constraint)

    n, d = x_real.shape
    net = _make_critic(d, hidden, depth, constraint, seed)
    critic = _OneCritic(net)
    points = torch.as_tensor(np.concatenate([x_real, x_fake]), dtype=torch.float32)  # (2n, d): real, then fake
    real_t, fake_t = points[:n], points[n:]
    opt = torch.optim.Adam(net.parameters(), lr=lr, betas=(beta1, beta2))
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda t: 1.0 - (1.0 - lr_final_fraction) * t / max(steps - 1, 1))
    pairing = torch.Generator().manual_seed(seed)
    losses = np.empty(steps)
    pen_value = 0.0
    net.train()
    for t in range(steps):
        scores = net(points)  # (2n,): one forward, so spectral norm does one power iteration per step
        adv_loss = adv.discriminator_loss(scores[None, :n], scores[None, None, n:])[0, 0]
        total = adv_loss
        if penalty is not None:
            perm = torch.randperm(n, generator=pairing)
            pen = penalty(critic, real_t[perm], fake_t[None], generator=pairing)[0, 0]  # interpolates of pairs
            total = total + pen
            pen_value = float(pen.detach())
        opt.zero_grad(set_to_none=True)
        total.backward()
        opt.step()
        sched.step()
        if constraint == "clip":
            with torch.no_grad():
                for p in net.parameters():
                    p.clamp_(-clip, clip)
        losses[t] = float(adv_loss.detach())
    net.eval()
    with torch.no_grad():
        scores = net(points)  # (2n,)
        final = float(adv.discriminator_loss(scores[None, :n], scores[None, None, n:])[0, 0])
    w = max(steps // 20, 1)  # 5% of the steps
    drift = abs(losses[-w:].mean() - losses[-2 * w:-w].mean()) if steps >= 2 * w else 0.0
    return CriticFit(critic=net, loss=final, penalty=pen_value, loss_drift=float(drift), steps=steps, lr=float(lr))


def input_gradients(critic: nn.Module, points: Any) -> np.ndarray:
    r"""∇_x s(x) at each point, shape (n, d), for a critic mapping (n, d) to scores (n,).

    >>> lin = nn.Linear(2, 1)
    >>> with torch.no_grad():
    ...     _ = lin.weight.copy_(torch.tensor([[3.0, -4.0]]))
    >>> input_gradients(lambda x: lin(x).squeeze(-1), np.zeros((2, 2))).tolist()
    [[3.0, -4.0], [3.0, -4.0]]
    """
    x = torch.as_tensor(as_samples(points, "points"), dtype=torch.float32).requires_grad_(True)
    (grad,) = torch.autograd.grad(critic(x).sum(), x)
    return grad.detach().double().numpy()


# --------------------------------------------------------------------------- the alignment metric


def row_cosines(u: Any, v: Any) -> np.ndarray:
    r"""cos(u_i, v_i) = <u_i, v_i> / (‖u_i‖ ‖v_i‖) row by row, shape (n,); 0 where either row is 0.

    A zero gradient has no direction, so it counts as not aligned (0) rather than NaN.

    >>> row_cosines([[1.0, 0.0], [1.0, 1.0], [0.0, 0.0]], [[2.0, 0.0], [-1.0, -1.0], [1.0, 0.0]]).round(12).tolist()
    [1.0, -1.0, 0.0]
    """
    a, b = as_samples(u, "u"), as_samples(v, "v")
    if a.shape != b.shape:
        raise ValueError(f"u and v must have the same shape (n, d); got {a.shape} and {b.shape}")
    na, nb = np.linalg.norm(a, axis=1), np.linalg.norm(b, axis=1)
    denom = na * nb
    dots = np.einsum("ij,ij->i", a, b)
    out = np.zeros(a.shape[0])
    ok = denom > 0
    out[ok] = np.clip(dots[ok] / denom[ok], -1.0, 1.0)
    return out


def transport_partners(fake: Any, real: Any) -> np.ndarray:
    r"""π(i): the real partner of fake sample i in the exact optimal coupling, shape (n,) of ints.

    .. math:: \pi = \arg\min_{\sigma \in S_n} \sum_i \|\tilde x_i - x_{\sigma(i)}\|_2

    With equal sizes and uniform weights an optimal plan of W1 is a permutation
    (Birkhoff), found by ``scipy.optimize.linear_sum_assignment`` on the Euclidean cost.

    >>> transport_partners([[0.0, 0.0], [10.0, 0.0]], [[9.0, 0.0], [1.0, 0.0]]).tolist()
    [1, 0]
    """
    xf, xr = as_samples(fake, "fake"), as_samples(real, "real")
    check_same_dim(xf, xr, ("fake", "real"))
    if xf.shape[0] != xr.shape[0]:
        raise ValueError(f"fake and real must have the same number of samples; got {xf.shape[0]} and {xr.shape[0]}")
    rows, cols = linear_sum_assignment(cdist(xf, xr))
    partner = np.empty(xf.shape[0], dtype=np.int64)
    partner[rows] = cols
    return partner


@dataclass(frozen=True)
class Alignment:
    """Per fake sample: cosines of the gradient to the OT partner and to the nearest real sample.

    Attributes (arrays of shape (n,))
    ----------
    cos_ot : cos(∇f(x_i), y_π(i) - x_i); cos_nearest : cos(∇f(x_i), y_ν(i) - x_i);
    grad_norm : ‖∇f(x_i)‖; partner : π(i); nearest : ν(i), the nearest real sample.
    """

    cos_ot: np.ndarray
    cos_nearest: np.ndarray
    grad_norm: np.ndarray
    partner: np.ndarray
    nearest: np.ndarray


def gradient_alignment(grads: Any, fake: Any, real: Any) -> Alignment:
    r"""Alignment of critic gradients at fake samples with the directions to real samples.

    .. math:: \cos_{OT}(x_i) = \cos(\nabla f(x_i),\ y_{\pi(i)} - x_i),\qquad
        \cos_{NN}(x_i) = \cos(\nabla f(x_i),\ y_{\nu(i)} - x_i)

    π: :func:`transport_partners`; ν(i) = argmin_j ‖x_i - y_j‖. grads and fake (n, d),
    real (n, d).

    >>> a = gradient_alignment([[1.0, 0.0], [0.0, 1.0]], [[0.0, 0.0], [5.0, 0.0]], [[5.0, 1.0], [0.5, 0.0]])
    >>> a.partner.tolist(), a.cos_ot.round(3).tolist(), a.cos_nearest.round(3).tolist()
    ([1, 0], [1.0, 1.0], [1.0, 1.0])
    """
    g, xf, xr = as_samples(grads, "grads"), as_samples(fake, "fake"), as_samples(real, "real")
    if g.shape != xf.shape:
        raise ValueError(f"grads must have the shape of fake {xf.shape}; got {g.shape}")
    partner = transport_partners(xf, xr)
    nearest = cdist(xf, xr).argmin(axis=1)
    return Alignment(
        cos_ot=row_cosines(g, xr[partner] - xf),
        cos_nearest=row_cosines(g, xr[nearest] - xf),
        grad_norm=np.linalg.norm(g, axis=1),
        partner=partner,
        nearest=nearest,
    )


# --------------------------------------------------------------------------- the study


@dataclass(frozen=True)
class LipschitzConfig:
    """Grid and constants of the Lipschitz-critic study (every field becomes a CLI flag)."""

    cases: tuple[str, ...] = field(default=CASES, metadata={"help": f"fixed (fake, real) pairs, from {CASES}"})
    losses: tuple[str, ...] = field(default=LOSS_NAMES, metadata={"help": f"critic losses, from {LOSS_NAMES}"})
    constraints: tuple[str, ...] = field(default=CONSTRAINTS, metadata={"help": f"constraints, from {CONSTRAINTS}"})
    n_seeds: int = field(default=2, metadata={"help": "repetitions (samples and critic initialisation) per cell"})
    n_samples: int = field(default=256, metadata={"help": "n fake and n real samples, fixed during training"})
    std: float = field(default=0.15, metadata={"help": "standard deviation of every Gaussian component"})
    steps: int = field(default=3000, metadata={"help": "full-batch Adam steps per critic"})
    lr: float = field(default=3e-3, metadata={"help": "Adam's initial learning rate"})
    lr_final_fraction: float = field(default=0.1, metadata={"help": "learning rate decays linearly to lr * this"})
    hidden: int = field(default=64, metadata={"help": "critic MLP width"})
    depth: int = field(default=2, metadata={"help": "critic MLP hidden layers"})
    clip: float = field(default=0.01, metadata={"help": "weight clip c of constraint 'clip' (WGAN's 0.01)"})
    gp_weight: float = field(default=10.0, metadata={"help": "lambda of WGAN-GP (10, Gulrajani et al.)"})
    maxgp_weight: float = field(default=10.0, metadata={
        "help": "lambda of MaxGP (gangen's default 10, not a value taken from Zhou et al.)"})
    aligned_cos: float = field(default=0.9, metadata={"help": "a fake sample counts as OT-aligned when cos_ot > this"})
    n_quiver: int = field(default=64, metadata={"help": "fake samples whose gradients are stored (rep 0) for the quiver figure"})
    seed: int = field(default=0, metadata={"help": "study seed; each cell derives its own from it"})

    def __post_init__(self) -> None:
        for name, allowed in (("cases", CASES), ("losses", LOSS_NAMES), ("constraints", CONSTRAINTS)):
            values = getattr(self, name)
            if not values or any(v not in allowed for v in values):
                raise ValueError(f"{name} must be a non-empty subset of {allowed}; got {values}")
        check_positive_int(self.n_seeds, "n_seeds")
        if check_positive_int(self.n_samples, "n_samples") < 2:
            raise ValueError(f"n_samples must be >= 2; got {self.n_samples}")
        check_positive_float(self.std, "std")
        check_positive_int(self.steps, "steps")
        check_positive_float(self.lr, "lr")
        check_open_unit(self.lr_final_fraction, "lr_final_fraction")
        check_positive_int(self.hidden, "hidden")
        check_nonneg_int(self.depth, "depth")
        for name in ("clip", "gp_weight", "maxgp_weight"):
            check_positive_float(getattr(self, name), name)
        if not -1.0 < self.aligned_cos < 1.0:
            raise ValueError(f"aligned_cos must lie in (-1, 1); got {self.aligned_cos}")
        check_nonneg_int(self.n_quiver, "n_quiver")
        check_nonneg_int(self.seed, "seed")


# Timings on the shared 2-core CPU (load ~5, one thread): a critic of width 64 with n = 256 takes
# ~2.2 ms per step without a penalty and ~3.3 ms with one (double backward). Convergence was
# checked by hand: the WGAN-GP critic's alignment still moves between 2000 and 3000 steps at
# lr 3e-3 (0.83 -> 0.998 on the mixture case) and is stable after; hence 3000 steps.
PRESETS = {
    "tiny": {"n_samples": 48, "steps": 60, "hidden": 16, "n_seeds": 1, "n_quiver": 8},
    "quick": {"n_samples": 128, "steps": 1500, "n_seeds": 1},
    "paper": {"n_samples": 256, "steps": 3000, "n_seeds": 3},
}


def _sample_seed(config: LipschitzConfig, case: str, rep: int) -> int:
    # shared by every (loss, constraint) of one (case, rep): the same samples and the same initial critic
    return derive_seed(config.seed, {"case": case, "rep": rep, "stream": "samples"})


def cells(config: LipschitzConfig) -> list[Cell]:
    """One cell per (case, loss, constraint, rep), each run alone."""
    return [make_cell(config.seed, {"case": c, "loss": l, "constraint": k, "rep": r})
            for c in config.cases for l in config.losses for k in config.constraints for r in range(config.n_seeds)]


def _measure_cell(cell: Cell, config: LipschitzConfig) -> list[dict]:
    case, rep = str(cell["case"]), int(cell["rep"])
    shared = _sample_seed(config, case, rep)
    fake, real = case_samples(case, config.n_samples, seed=shared, std=config.std)
    fit = fit_critic(real, fake, loss=str(cell["loss"]), constraint=str(cell["constraint"]), steps=config.steps,
                     lr=config.lr, lr_final_fraction=config.lr_final_fraction, hidden=config.hidden,
                     depth=config.depth, clip=config.clip, gp_weight=config.gp_weight,
                     maxgp_weight=config.maxgp_weight, seed=shared % (2**31))
    grads = input_gradients(fit.critic, fake)  # (n, 2)
    a = gradient_alignment(grads, fake, real)
    budget = {"steps": fit.steps, "lr": fit.lr}
    norm_mean = float(a.grad_norm.mean())
    rows = [
        {**budget, "metric": "cos_ot", "value": float(a.cos_ot.mean())},
        {**budget, "metric": "cos_nearest", "value": float(a.cos_nearest.mean())},
        {**budget, "metric": "frac_ot_aligned", "value": float((a.cos_ot > config.aligned_cos).mean())},
        {**budget, "metric": "grad_norm", "value": norm_mean},
        {**budget, "metric": "loss", "value": fit.loss},
        {**budget, "metric": "penalty", "value": fit.penalty},
        {**budget, "metric": "loss_drift", "value": fit.loss_drift},
    ]
    if norm_mean > 0:
        rows.append({**budget, "metric": "grad_norm_cv", "value": float(a.grad_norm.std() / norm_mean)})
    if rep == 0:  # per-sample gradients for the quiver figure
        for i in range(min(config.n_quiver, config.n_samples)):
            for metric, v in (("grad_x", grads[i, 0]), ("grad_y", grads[i, 1]), ("cos_ot_sample", a.cos_ot[i])):
                rows.append({"sample": i, "metric": metric, "value": float(v)})
    return rows


def run_group(cells: list[Cell], config: LipschitzConfig, device: str) -> list[list[dict]]:
    """Per cell: draw the case's fixed samples, fit the critic, measure the alignment (CPU; one thread)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny networks: OpenMP threads only contend
    try:
        return [_measure_cell(cell, config) for cell in cells]
    finally:
        torch.set_num_threads(threads)


# --------------------------------------------------------------------------- summary


def _means(table: pd.DataFrame) -> pd.DataFrame:
    """Mean and standard deviation over reps of each (case, loss, constraint, metric)."""
    t = table[table["metric"].isin(["cos_ot", "cos_nearest", "frac_ot_aligned", "grad_norm", "grad_norm_cv",
                                    "loss_drift"])]
    return t.groupby(["case", "loss", "constraint", "metric"])["value"].agg(["mean", "std", "count"]).reset_index()


def summarize(table: pd.DataFrame, config: LipschitzConfig) -> dict:
    """Per case: the (loss, constraint) table of means over reps, and the verdict against Zhou et al."""
    means = _means(table)
    out: dict[str, Any] = {"budget": {"steps": config.steps, "lr": config.lr, "n_samples": config.n_samples,
                                      "n_seeds": config.n_seeds, "hidden": config.hidden, "depth": config.depth}}
    verdict = []
    for case, part in means.groupby("case"):
        entry: dict[str, Any] = {}
        for (loss, constraint), cell in part.groupby(["loss", "constraint"]):
            by_metric = cell.set_index("metric")
            entry.setdefault(loss, {})[constraint] = {
                **{m: float(r["mean"]) for m, r in by_metric.iterrows()},
                "cos_ot_std_over_reps": float(by_metric.loc["cos_ot", "std"]) if by_metric.loc["cos_ot", "count"] > 1 else None,
                "n_reps": int(by_metric.loc["cos_ot", "count"])}
        cos = part[part["metric"] == "cos_ot"]
        lip = cos[cos["constraint"].isin(LIPSCHITZ_CONSTRAINTS)]
        free = cos[cos["constraint"] == "none"]
        nn_cos = part[(part["metric"] == "cos_nearest") & (part["constraint"] == "none")]
        stats = {
            "cos_ot_lipschitz_mean": float(lip["mean"].mean()) if len(lip) else None,
            "cos_ot_lipschitz_min": float(lip["mean"].min()) if len(lip) else None,
            "cos_ot_unconstrained_mean": float(free["mean"].mean()) if len(free) else None,
            "cos_ot_unconstrained_by_loss": {l: float(v) for l, v in free.set_index("loss")["mean"].items()},
            "cos_nearest_unconstrained_by_loss": {l: float(v) for l, v in nn_cos.set_index("loss")["mean"].items()},
            "lowest_lipschitz_cell": (None if not len(lip) else
                                      "/".join(lip.loc[lip["mean"].idxmin(), ["loss", "constraint"]].astype(str))),
        }
        entry["aggregate"] = stats
        out[case] = entry
        if stats["cos_ot_lipschitz_mean"] is not None and stats["cos_ot_unconstrained_mean"] is not None:
            high = stats["cos_ot_lipschitz_min"] > config.aligned_cos
            lower = stats["cos_ot_unconstrained_mean"] < stats["cos_ot_lipschitz_mean"]
            verdict.append(
                f"{case}: mean cos(grad f, OT direction) over the Lipschitz-constrained critics "
                f"{stats['cos_ot_lipschitz_mean']:.3f} (lowest cell {stats['lowest_lipschitz_cell']} "
                f"{stats['cos_ot_lipschitz_min']:.3f}), unconstrained {stats['cos_ot_unconstrained_mean']:.3f} "
                f"(by loss: " + ", ".join(f"{l} {v:.3f}" for l, v in stats["cos_ot_unconstrained_by_loss"].items())
                + "). " + ("Agrees with Zhou et al.: aligned under every Lipschitz constraint"
                           if high else f"Some constrained cells stay below {config.aligned_cos:g}")
                + ("; less aligned without one." if lower else "; NOT less aligned without one."))
    out["verdict"] = verdict
    return out


# --------------------------------------------------------------------------- figures


def _quiver_figure(table: pd.DataFrame, config: LipschitzConfig, case: str, fig_dir: Path) -> list[Path]:
    import matplotlib as mpl
    from matplotlib.lines import Line2D

    from gangen.plotting import new_panels, save_figure

    rows = table[(table["case"] == case) & (table["rep"] == 0) & table["metric"].isin(["grad_x", "grad_y", "cos_ot_sample"])]
    if rows.empty:
        return []
    losses = [l for l in LOSS_NAMES if l in set(rows["loss"])]
    constraints = [k for k in CONSTRAINTS if k in set(rows["constraint"])]
    fake, real = case_samples(case, config.n_samples, seed=_sample_seed(config, case, 0), std=config.std)
    pts = np.concatenate([fake, real])
    lo, hi = pts.min(axis=0), pts.max(axis=0)
    pad = 0.06 * (hi - lo).max()
    lo, hi = lo - pad, hi + pad
    aspect = float((hi - lo)[1] / (hi - lo)[0])
    # flat data: constraints down, losses across; tall data: the transpose, so the figure stays page-sized
    by_rows = aspect < 1.0
    n_r, n_c = (len(constraints), len(losses)) if by_rows else (len(losses), len(constraints))
    fig, axes = new_panels(n_r, n_c, width="double", panel_aspect=aspect, sharex=True, sharey=True)
    cmap, norm = mpl.colormaps["coolwarm_r"], mpl.colors.Normalize(-1.0, 1.0)
    arrow = 0.055 * float((hi - lo).max())  # every arrow has this length: directions only; colour = cos to OT partner
    for i, k in enumerate(constraints):
        for j, l in enumerate(losses):
            r, c = (i, j) if by_rows else (j, i)
            ax = axes[r * n_c + c]
            ax.scatter(real[:, 0], real[:, 1], s=1.5, color="0.6", linewidths=0, zorder=1)
            ax.scatter(fake[:, 0], fake[:, 1], s=1.5, color="#E69F00", linewidths=0, zorder=1)
            part = rows[(rows["loss"] == l) & (rows["constraint"] == k)].pivot(index="sample", columns="metric", values="value")
            if not part.empty:
                idx = part.index.to_numpy(dtype=int)
                g = part[["grad_x", "grad_y"]].to_numpy()
                norms = np.linalg.norm(g, axis=1, keepdims=True)
                unit = np.divide(g, norms, out=np.zeros_like(g), where=norms > 0)
                ax.quiver(fake[idx, 0], fake[idx, 1], arrow * unit[:, 0], arrow * unit[:, 1],
                          part["cos_ot_sample"].to_numpy(), cmap=cmap, norm=norm, angles="xy", scale_units="xy",
                          scale=1.0, width=0.005, headwidth=3.5, headlength=4, headaxislength=3.5, zorder=3)
                cos_mean = table[(table["case"] == case) & (table["loss"] == l) & (table["constraint"] == k)
                                 & (table["metric"] == "cos_ot")]["value"].mean()
                ax.text(0.02, 0.97, f"{cos_mean:.2f}", transform=ax.transAxes, ha="left", va="top", fontsize=6.5,
                        bbox=dict(facecolor="white", edgecolor="none", alpha=0.85, pad=0.5))
            ax.set(xlim=(lo[0], hi[0]), ylim=(lo[1], hi[1]))
            ax.set_aspect("equal", adjustable="box")
            ax.grid(False)
            ax.tick_params(labelsize=6)
            top, left = (LOSS_LABELS[l], SHORT_CONSTRAINT_LABELS[k]) if by_rows else (CONSTRAINT_LABELS[k], LOSS_LABELS[l])
            if r == 0:
                ax.set_title(top)
            if c == 0:
                ax.set_ylabel(left)
    handles = [Line2D([], [], linestyle="none", marker="o", markersize=3, color="0.6", label="real"),
               Line2D([], [], linestyle="none", marker="o", markersize=3, color="#E69F00", label="fake"),
               Line2D([], [], color=cmap(norm(1.0)), label=r"$\nabla f$ toward the OT partner"),
               Line2D([], [], color=cmap(norm(-1.0)), label="away from it")]
    fig.legend(handles=handles, loc="outside upper center", ncol=4, fontsize=6.5)
    cbar = fig.colorbar(mpl.cm.ScalarMappable(norm=norm, cmap=cmap), ax=list(axes), shrink=0.6, pad=0.01, aspect=30)
    cbar.set_label(r"cos($\nabla f(x)$, $y_{OT}(x) - x$)   (corner: mean over all fakes)")
    return list(save_figure(fig, fig_dir / f"lipschitz_quiver_{case}"))


def _alignment_figure(table: pd.DataFrame, config: LipschitzConfig, fig_dir: Path) -> list[Path]:
    import matplotlib as mpl

    from gangen.plotting import new_panels, save_figure

    means = _means(table)
    cases = [c for c in CASES if c in set(means["case"])]
    if not cases:
        return []
    fig, axes = new_panels(1, len(cases), width="double", panel_aspect=0.8 if len(cases) > 1 else 0.4, sharey=True)
    cmap, norm = mpl.colormaps["coolwarm_r"], mpl.colors.Normalize(-1.0, 1.0)
    for ax, case in zip(axes, cases):
        part = means[means["case"] == case]
        losses = [l for l in LOSS_NAMES if l in set(part["loss"])]
        constraints = [k for k in CONSTRAINTS if k in set(part["constraint"])]
        grid_ot = part[part["metric"] == "cos_ot"].pivot(index="constraint", columns="loss", values="mean").reindex(
            index=constraints, columns=losses)
        grid_nn = part[part["metric"] == "cos_nearest"].pivot(index="constraint", columns="loss", values="mean").reindex(
            index=constraints, columns=losses)
        ax.imshow(grid_ot.to_numpy(), cmap=cmap, norm=norm, aspect="auto")
        for i in range(len(constraints)):
            for j in range(len(losses)):
                v, w = grid_ot.iat[i, j], grid_nn.iat[i, j]
                dark = abs(v) > 0.6
                ax.text(j, i, f"{v:.2f}\n({w:.2f})", ha="center", va="center", fontsize=6.5,
                        color="white" if dark else "black")
        ax.set_xticks(range(len(losses)), [LOSS_LABELS[l] for l in losses])
        ax.set_yticks(range(len(constraints)), [CONSTRAINT_LABELS[k] for k in constraints])
        ax.set_title(f"{case} case: cos to OT partner (to nearest real)")
        ax.grid(False)
        ax.tick_params(length=0)
    cbar = fig.colorbar(mpl.cm.ScalarMappable(norm=norm, cmap=cmap), ax=list(axes), shrink=0.8, pad=0.02)
    cbar.set_label(r"mean cos($\nabla f(x)$, $y_{OT}(x) - x$)")
    return list(save_figure(fig, fig_dir / "lipschitz_alignment"))


def plot(table: pd.DataFrame, config: LipschitzConfig, summary: dict, fig_dir: Path) -> list[Path]:
    """Quiver figures of ∇f at the fake samples (one per case) and the heatmap of mean alignments."""
    from gangen.plotting import paper_style

    paths: list[Path] = []
    with paper_style():
        for case in CASES:
            if case in set(table["case"]):
                paths += _quiver_figure(table, config, case, fig_dir)
        paths += _alignment_figure(table, config, fig_dir)
    return paths


STUDY = Study(
    name="lipschitz",
    config_cls=LipschitzConfig,
    cells=cells,
    run_group=run_group,
    summarize=summarize,
    plot=plot,
    presets=PRESETS,
    version="1",
    cache_ignore=("cases", "losses", "constraints", "n_seeds"),
    description=__doc__.split("\n\n")[0],
)

if __name__ == "__main__":
    main(STUDY)
