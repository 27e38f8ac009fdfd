r"""Payoffs, players' losses and penalties of the GAN game, for every (generator, discriminator) pair.

The game of Section 4 (Arora et al. 2017) has payoff

.. math::
    F(u, v) = \mathbb{E}_{x\sim D_{real}}[\phi(D_v(x))] + \mathbb{E}_{z}[\phi(1 - D_v(G_u(z)))]

which the discriminator maximises and the generator minimises. Here D_v(x) =
sigmoid(s_v(x)) for a raw score s_v, and phi(t) = log t for the log-loss games
(minimax, non-saturating), so log D = logsigmoid(s), log(1 - D) = logsigmoid(-s);
for the Wasserstein game phi(t) = t and the critic is the score itself,
F(u, v) = E s_v(x) - E s_v(G_u(z)). The least-squares game (LSGAN) is not of this
form: its discriminator is the raw score too and F(u, v) = -(E (s_v(x) - 1)^2 +
E s_v(G_u(z))^2), minus the squared error of the targets 1 (real) and 0 (fake).
In every game the discriminator minimises -F (:meth:`Loss.discriminator_loss`) and the
generator minimises its own loss, F or a surrogate (:attr:`Loss.generator_loss`).

Every function takes the scores of T_d discriminators on a real batch,
``real_scores`` of shape (T_d, n), and on the batches of T_g generators,
``fake_scores`` of shape (T_d, T_g, m), and returns a (T_g, T_d) matrix whose entry
(i, j) is the quantity for the pair (u_i, v_j). MIX+GAN weights these matrices with
the mixture weights, w_u^T M w_v, so discriminator outputs are never averaged inside
phi (Section 4: "the discriminator draws v per sample").

Variants are built by composition, not flags: a :class:`Loss` (payoff and the two
players' minimised losses) plus zero or more :class:`Penalty` terms plus an optional
weight clip make an :class:`Objective` (:func:`compose`). The named variants:

=================  ===============  ==============================  ======================
name               loss             penalty / constraint            reference
=================  ===============  ==============================  ======================
GAN (minimax)      minimax          -                               Goodfellow et al. 2014
NS-GAN             nonsaturating    -                               Goodfellow et al. 2014
WGAN               wasserstein      weight clip c = 0.01            Arjovsky et al. 2017
WGAN-GP            wasserstein      gradient_penalty(10)            Gulrajani et al. 2017
GAN-GP             nonsaturating    gradient_penalty(10)            Fedus et al. 2018
DRAGAN (-NS)       nonsaturating    dragan_penalty(10)              Kodali et al. 2017
MaxGP              wasserstein      max_gradient_penalty            Zhou et al. 2019
LSGAN              least_squares    -                               Mao et al. 2017
=================  ===============  ==============================  ======================
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING, Callable

import torch
import torch.nn.functional as F

from gangen._validation import check_choice, check_positive_float

if TYPE_CHECKING:
    from gangen.mixgan.mixture import Mixture

__all__ = [
    "Loss",
    "Penalty",
    "Objective",
    "log_phi",
    "log_payoff",
    "linear_payoff",
    "least_squares_payoff",
    "NON_LOG_LOSSES",
    "minimax",
    "nonsaturating",
    "wasserstein",
    "least_squares",
    "gradient_penalty",
    "dragan_penalty",
    "max_gradient_penalty",
    "compose",
    "make_objective",
    "LOSSES",
    "PENALTIES",
]

Matrix = torch.Tensor  # (T_g, T_d)


def _check_scores(real_scores: torch.Tensor | None, fake_scores: torch.Tensor) -> None:
    if fake_scores.ndim != 3:
        raise ValueError(f"fake_scores must have shape (T_d, T_g, m); got {tuple(fake_scores.shape)}")
    if real_scores is not None and (real_scores.ndim != 2 or real_scores.shape[0] != fake_scores.shape[0]):
        raise ValueError(
            f"real_scores must have shape (T_d, n) with T_d={fake_scores.shape[0]} matching fake_scores; got {tuple(real_scores.shape)}"
        )


# ---------------------------------------------------------------- payoffs F
def log_phi(scores: torch.Tensor, delta: float = 0.0) -> torch.Tensor:
    r"""phi(D) = log(delta + (1 - delta) D) with D = sigmoid(scores), elementwise and stable.

    delta = 0 is the plain log, log sigmoid(s) (unbounded below); delta in (0, 1) is the
    paper's bounded measuring function, with values in [log delta, 0] (Section 3),
    computed as logaddexp(log delta, log(1 - delta) + logsigmoid(s)).

    >>> import math
    >>> round(float(log_phi(torch.tensor(-100.0), 0.1)), 6) == round(math.log(0.1), 6)   # D ~ 0: phi = log delta
    True
    """
    if delta == 0.0:
        return F.logsigmoid(scores)
    return torch.logaddexp(torch.full_like(scores, math.log(delta)), math.log1p(-delta) + F.logsigmoid(scores))


def log_payoff(real_scores: torch.Tensor, fake_scores: torch.Tensor, *, delta: float = 0.0) -> Matrix:
    r"""F(u_i, v_j) = E phi(D_j(x)) + E phi(1 - D_j(G_i(z))) with D = sigmoid(s), phi = :func:`log_phi`.

    With delta = 0: E log D_j(x) + E log(1 - D_j(G_i(z))), using 1 - sigmoid(s) = sigmoid(-s).

    >>> import math
    >>> F0 = log_payoff(torch.zeros(1, 4), torch.zeros(1, 1, 4))   # D = 1/2 everywhere
    >>> round(float(F0), 6) == round(2 * math.log(0.5), 6)          # 2 phi(1/2) = -log 4
    True
    """
    _check_scores(real_scores, fake_scores)
    real_term = log_phi(real_scores, delta).mean(-1)  # (T_d,)
    fake_term = log_phi(-fake_scores, delta).mean(-1)  # (T_d, T_g)
    return real_term[None, :] + fake_term.T


def linear_payoff(real_scores: torch.Tensor, fake_scores: torch.Tensor) -> Matrix:
    r"""F(u_i, v_j) = E s_j(x) - E s_j(G_i(z)) (phi(t) = t; the Wasserstein game).

    >>> float(linear_payoff(torch.ones(1, 3), torch.zeros(1, 1, 3)))
    1.0
    """
    _check_scores(real_scores, fake_scores)
    return real_scores.mean(-1)[None, :] - fake_scores.mean(-1).T


def least_squares_payoff(real_scores: torch.Tensor, fake_scores: torch.Tensor) -> Matrix:
    r"""F(u_i, v_j) = -(E (s_j(x) - 1)^2 + E s_j(G_i(z))^2), the least-squares game (LSGAN, targets b = 1, a = 0).

    Minus the discriminator's squared error against the target 1 on real and 0 on fake
    samples, so that, as in every game here, the discriminator maximises F. Over all
    functions the maximiser is s* = p_r / (p_r + p_g) pointwise, and
    max_s F = -∫ p_r p_g / (p_r + p_g) = Δ(p_r, p_g)/4 - 1/2, with
    Δ = ∫ (p_r - p_g)^2 / (p_r + p_g) the triangular discrimination (0 for equal
    distributions: max F = -1/2; 2 for disjoint ones: max F = 0). See :func:`least_squares`.

    >>> float(least_squares_payoff(torch.tensor([[1.0, 3.0]]), torch.tensor([[[0.0, -2.0]]])))  # -((0 + 4)/2 + (0 + 4)/2)
    -4.0
    """
    _check_scores(real_scores, fake_scores)
    real_term = ((real_scores - 1.0) ** 2).mean(-1)  # (T_d,)
    fake_term = (fake_scores**2).mean(-1)  # (T_d, T_g)
    return -(real_term[None, :] + fake_term.T)


# ---------------------------------------------------------------- generator losses
def _g_minimax(fake_scores: torch.Tensor, *, delta: float = 0.0) -> Matrix:
    # E phi(1 - D(G(z))): the generator minimises the payoff's fake term (saturating).
    _check_scores(None, fake_scores)
    return log_phi(-fake_scores, delta).mean(-1).T


def _g_nonsaturating(fake_scores: torch.Tensor, *, delta: float = 0.0) -> Matrix:
    # -E phi(D(G(z))) (Goodfellow et al. 2014, the "-log D trick").
    _check_scores(None, fake_scores)
    return -log_phi(fake_scores, delta).mean(-1).T


def _g_wasserstein(fake_scores: torch.Tensor) -> Matrix:
    # -E s(G(z)); differs from F by the real term, a constant for the generator.
    _check_scores(None, fake_scores)
    return -fake_scores.mean(-1).T


def _g_least_squares(fake_scores: torch.Tensor) -> Matrix:
    # E (s(G(z)) - 1)^2: the generator wants its samples scored as real (LSGAN's target c = 1).
    _check_scores(None, fake_scores)
    return ((fake_scores - 1.0) ** 2).mean(-1).T


@dataclass(frozen=True)
class Loss:
    """A GAN game: its payoff F and the losses each player minimises, all (T_g, T_d) matrices.

    Attributes
    ----------
    name : str
    payoff : callable (real_scores (T_d, n), fake_scores (T_d, T_g, m)) -> (T_g, T_d)
        F(u_i, v_j), the quantity the equilibrium is about.
    generator_loss : callable fake_scores (T_d, T_g, m) -> (T_g, T_d)
        What generator u_i minimises against v_j (terms constant in u dropped).
    measuring : str
        "log" (phi = log, D = sigmoid(score)) or "identity" (the discriminator is the raw
        score: phi(t) = t for the Wasserstein game; also the least-squares game, whose
        payoff is not of the phi form).

    The discriminator always minimises -F (it maximises the payoff).
    """

    name: str
    payoff: Callable[[torch.Tensor, torch.Tensor], Matrix] = field(repr=False)
    generator_loss: Callable[[torch.Tensor], Matrix] = field(repr=False)
    measuring: str = "log"

    def discriminator_loss(self, real_scores: torch.Tensor, fake_scores: torch.Tensor) -> Matrix:
        """-F(u_i, v_j): the discriminator maximises the payoff. Shape (T_g, T_d)."""
        return -self.payoff(real_scores, fake_scores)


def _check_delta(delta: float) -> float:
    if isinstance(delta, bool) or not isinstance(delta, (int, float)) or not 0.0 <= delta < 1.0:
        raise ValueError(f"delta must be a number in [0, 1) (phi(t) = log(delta + (1 - delta) t)); got {delta!r}")
    return float(delta)


def _log_loss(name: str, g_loss: Callable[..., Matrix], delta: float) -> Loss:
    delta = _check_delta(delta)
    label = name if delta == 0.0 else f"{name}(delta={delta:g})"
    return Loss(label, partial(log_payoff, delta=delta), partial(g_loss, delta=delta), "log")


def minimax(*, delta: float = 0.0) -> Loss:
    """The original (saturating) GAN: D maximises F with phi = log(delta + (1 - delta) t), G minimises F.

    >>> minimax().measuring, minimax(delta=0.01).name
    ('log', 'minimax(delta=0.01)')
    """
    return _log_loss("minimax", _g_minimax, delta)


def nonsaturating(*, delta: float = 0.0) -> Loss:
    """D maximises F (phi as :func:`minimax`); G minimises -E phi(D(G(z))) instead of E phi(1 - D(G(z)))."""
    return _log_loss("nonsaturating", _g_nonsaturating, delta)


def wasserstein() -> Loss:
    """The Wasserstein game (phi(t) = t): F = E s(x) - E s(G(z)); needs a Lipschitz constraint."""
    return Loss("wasserstein", linear_payoff, _g_wasserstein, "identity")


def least_squares() -> Loss:
    r"""The least-squares GAN (LSGAN, Mao et al. 2017) with targets a, b, c = 0, 1, 1.

    .. math::
        L_D = \mathbb{E}_x (s(x) - 1)^2 + \mathbb{E}_z s(G(z))^2 = -F, \qquad
        L_G = \mathbb{E}_z (s(G(z)) - 1)^2

    s is the discriminator's raw score (no sigmoid). Mao et al.'s losses are
    min_D 1/2 E(D(x) - b)^2 + 1/2 E(D(G(z)) - a)^2 and min_G 1/2 E(D(G(z)) - c)^2; here a = 0
    (fake target), b = 1 (real target), c = 1 (the generator wants its samples called
    real), without the factors 1/2 (a common factor 2: same optima, gradients doubled).
    For a fixed generator the optimal discriminator is s* = (b p_r + a p_g)/(p_r + p_g)
    = p_r / (p_r + p_g) pointwise. The game is not zero-sum: L_G is not F up to a term
    constant in the generator (like the non-saturating loss), so F, the payoff reported
    by training and :func:`~gangen.mixgan.equilibrium.measure_equilibrium`, is the
    discriminator's objective. There is no delta (phi is not involved).

    >>> ls = least_squares()
    >>> float(ls.discriminator_loss(torch.ones(1, 3), torch.zeros(1, 1, 3)))   # perfect scores: no error
    0.0
    >>> float(ls.generator_loss(torch.zeros(1, 1, 3)))                           # fakes scored 0, target 1
    1.0
    """
    return Loss("least_squares", least_squares_payoff, _g_least_squares, "identity")


LOSSES: dict[str, Callable[..., Loss]] = {
    "minimax": minimax,
    "nonsaturating": nonsaturating,
    "wasserstein": wasserstein,
    "least_squares": least_squares,
}
#: The games without a measuring function phi = log(delta + (1 - delta) t): no delta, no log-loss heuristics.
NON_LOG_LOSSES = ("wasserstein", "least_squares")


# ---------------------------------------------------------------- penalties
PenaltyFn = Callable[..., Matrix]


@dataclass(frozen=True)
class Penalty:
    """A term lambda * P(v_j; u_i) added to the discriminator's loss for each pair, shape (T_g, T_d).

    ``fn(disc, real, fake, *, generator, labels)`` gets the discriminator mixture, the
    real batch (n, ...), the generators' batches (T_g, n, ...) (detached), a
    ``torch.Generator`` for its random draws and the labels (or None); it returns the
    unweighted penalty matrix, which is then multiplied by ``weight``.
    """

    name: str
    weight: float
    fn: PenaltyFn = field(repr=False)

    def __call__(
        self,
        disc: "Mixture",
        real: torch.Tensor,
        fake: torch.Tensor,
        *,
        generator: torch.Generator,
        labels: torch.Tensor | None = None,
    ) -> Matrix:
        return self.weight * self.fn(disc, real, fake, generator=generator, labels=labels)


def input_gradient_norms(disc: "Mixture", points: torch.Tensor, *, labels: torch.Tensor | None = None) -> torch.Tensor:
    r"""||grad_x s_j(x)||_2 at every point, for every discriminator j, differentiable (create_graph).

    ``points`` has shape (S, n, ...) (S batches, each evaluated as its own batch);
    returns shape (T_d, S, n). Each discriminator gets its own copy of the points so its
    gradient is not mixed with the others'. The norm's gradient at 0 is taken as 0
    (torch's subgradient), so a flat critic gives a finite penalty gradient.
    """
    t_d = disc.n_components
    xx = points.detach().unsqueeze(0).expand(t_d, *points.shape).clone().requires_grad_(True)  # (T_d, S, n, ...)
    scores = disc(xx, per_component=True, groups=True, labels=labels)  # (T_d, S, n)
    (grad,) = torch.autograd.grad(scores.sum(), xx, create_graph=True)  # (T_d, S, n, ...)
    return torch.linalg.vector_norm(grad.flatten(3), dim=-1)  # (T_d, S, n)


def interpolates(real: torch.Tensor, fake: torch.Tensor, *, generator: torch.Generator) -> torch.Tensor:
    """x_hat = a x + (1 - a) x_tilde, a ~ U[0, 1] per sample; real (n, ...), fake (T_g, n, ...) -> (T_g, n, ...)."""
    t_g, n = fake.shape[:2]
    a = torch.rand(t_g, n, generator=generator, dtype=fake.dtype).to(fake.device)
    a = a.view(t_g, n, *([1] * (fake.ndim - 2)))
    return a * real.unsqueeze(0) + (1 - a) * fake


def _gp(disc, real, fake, *, generator, labels, target: float) -> Matrix:
    x_hat = interpolates(real, fake.detach(), generator=generator)  # (T_g, n, ...)
    norms = input_gradient_norms(disc, x_hat, labels=labels)  # (T_d, T_g, n)
    return ((norms - target) ** 2).mean(-1).T


def gradient_penalty(weight: float = 10.0, *, target: float = 1.0) -> Penalty:
    r"""WGAN-GP's two-sided penalty (Gulrajani et al. 2017) on real-fake interpolates.

    .. math:: P(v_j; u_i) = \lambda\,\mathbb{E}_{\hat x}\,(\|\nabla_{\hat x} s_j(\hat x)\| - \text{target})^2,
        \quad \hat x = a x + (1-a) G_i(z),\ a \sim U[0,1]

    ``weight`` is lambda (10 in WGAN-GP). Added to the non-saturating GAN this is
    Fedus et al.'s GAN-GP. Applied to the raw score (the logit for log-loss games).

    >>> gradient_penalty().weight
    10.0
    """
    check_positive_float(weight, "weight")
    return Penalty("gp", float(weight), lambda d, r, f, *, generator, labels: _gp(d, r, f, generator=generator, labels=labels, target=target))


def _dragan(disc, real, fake, *, generator, labels, perturb_scale: float) -> Matrix:
    # x_p = x + c * std(x) * U[0,1] (elementwise), x_hat = x + a (x_p - x), a ~ U[0,1] per sample:
    # the DRAGAN authors' code (std over the whole batch), penalised towards norm 1.
    u = torch.rand(real.shape, generator=generator, dtype=real.dtype).to(real.device)
    x_p = real + perturb_scale * real.std(unbiased=False) * u  # numpy-style std (ddof 0), as their code
    a = torch.rand(real.shape[0], generator=generator, dtype=real.dtype).to(real.device)
    a = a.view(-1, *([1] * (real.ndim - 1)))
    x_hat = real + a * (x_p - real)  # (n, ...)
    norms = input_gradient_norms(disc, x_hat.unsqueeze(0), labels=labels)  # (T_d, 1, n)
    per_d = ((norms - 1.0) ** 2).mean(-1)  # (T_d, 1)
    return per_d.T.expand(fake.shape[0], -1)  # same for every generator: (T_g, T_d)


def dragan_penalty(weight: float = 10.0, *, perturb_scale: float = 0.5) -> Penalty:
    r"""DRAGAN's penalty (Kodali et al. 2017) around perturbed real points.

    .. math:: P(v_j) = \lambda\,\mathbb{E}\,(\|\nabla s_j(\hat x)\| - 1)^2,\quad
        \hat x = x + a\,c\,\sigma_x\,u,\ u \sim U[0,1]^{d},\ a \sim U[0,1]

    sigma_x is the standard deviation of the real batch (all entries), c =
    ``perturb_scale`` (0.5 in the authors' code). It does not depend on the generator.
    Added to the non-saturating GAN it is Fedus et al.'s DRAGAN-NS.
    """
    check_positive_float(weight, "weight")
    check_positive_float(perturb_scale, "perturb_scale")
    return Penalty(
        "dragan",
        float(weight),
        lambda d, r, f, *, generator, labels: _dragan(d, r, f, generator=generator, labels=labels, perturb_scale=perturb_scale),
    )


def _maxgp(disc, real, fake, *, generator, labels) -> Matrix:
    x_hat = interpolates(real, fake.detach(), generator=generator)
    norms = input_gradient_norms(disc, x_hat, labels=labels)  # (T_d, T_g, n)
    return (norms**2).amax(-1).T


def max_gradient_penalty(weight: float = 10.0) -> Penalty:
    r"""The max-gradient penalty MaxGP (Zhou et al. 2019) over real-fake interpolates.

    .. math:: P(v_j; u_i) = \lambda \max_{k} \|\nabla s_j(\hat x_k)\|^2

    ``weight`` is lambda; 10 here is our default, not a value taken from the paper.
    """
    check_positive_float(weight, "weight")
    return Penalty("maxgp", float(weight), _maxgp)


PENALTIES: dict[str, Callable[..., Penalty]] = {
    "gp": gradient_penalty,
    "dragan": dragan_penalty,
    "maxgp": max_gradient_penalty,
}


# ---------------------------------------------------------------- composition
@dataclass(frozen=True)
class Objective:
    """A loss, the penalties added to the discriminator's loss, and an optional weight clip c.

    The discriminator minimises w_u^T (-F + sum_k P_k) w_v, the generator minimises
    w_u^T L_G w_v; after each discriminator step every parameter is clipped to [-c, c]
    when ``clip`` is set (WGAN).
    """

    loss: Loss
    penalties: tuple[Penalty, ...] = ()
    clip: float | None = None

    @property
    def name(self) -> str:
        parts = [self.loss.name] + [p.name for p in self.penalties] + ([f"clip{self.clip:g}"] if self.clip else [])
        return "+".join(parts)

    def penalty(
        self,
        disc: "Mixture",
        real: torch.Tensor,
        fake: torch.Tensor,
        *,
        generator: torch.Generator,
        labels: torch.Tensor | None = None,
    ) -> Matrix:
        """Sum of the penalties, shape (T_g, T_d); zeros when there are none."""
        total = real.new_zeros(fake.shape[0], disc.n_components)
        for p in self.penalties:
            total = total + p(disc, real, fake, generator=generator, labels=labels)
        return total


def compose(loss: Loss, *penalties: Penalty, clip: float | None = None) -> Objective:
    """Objective = loss + penalties (+ weight clip c).

    >>> compose(wasserstein(), gradient_penalty(10.0)).name
    'wasserstein+gp'
    >>> compose(wasserstein(), clip=0.01).name
    'wasserstein+clip0.01'
    """
    if clip is not None:
        check_positive_float(clip, "clip")
    return Objective(loss, tuple(penalties), clip)


def make_objective(
    loss: str,
    penalty: str = "none",
    *,
    penalty_weight: float = 10.0,
    perturb_scale: float = 0.5,
    clip: float | None = None,
    delta: float = 0.0,
) -> Objective:
    """Build an :class:`Objective` from names (used by configs): ``loss`` in :data:`LOSSES`,
    ``penalty`` in ``"none"`` or :data:`PENALTIES`; ``delta`` is phi's delta for the log losses
    (it must be 0 for the :data:`NON_LOG_LOSSES`).

    >>> make_objective("nonsaturating", "gp").name      # GAN-GP
    'nonsaturating+gp'
    """
    check_choice(loss, LOSSES, "loss")
    check_choice(penalty, ("none", *PENALTIES), "penalty")
    pens: tuple[Penalty, ...] = ()
    if penalty == "dragan":
        pens = (dragan_penalty(penalty_weight, perturb_scale=perturb_scale),)
    elif penalty != "none":
        pens = (PENALTIES[penalty](penalty_weight),)
    if loss in NON_LOG_LOSSES:
        if delta != 0.0:
            raise ValueError(f"delta applies to the log-loss games only (phi = log); got delta={delta} with loss={loss!r}")
        base = LOSSES[loss]()
    else:
        base = LOSSES[loss](delta=delta)
    return compose(base, *pens, clip=clip)
