r"""Measured epsilon of an approximate equilibrium (Arora et al. 2017, Section 4), via best responses.

A pair of mixed strategies (S_u, S_v) is an epsilon-approximate equilibrium when for
some V

.. math::
    \forall v:\ \mathbb{E}_{u\sim S_u} F(u, v) \le V + \epsilon, \qquad
    \forall u:\ \mathbb{E}_{v\sim S_v} F(u, v) \ge V - \epsilon .

The paper defines epsilon but never measures it. Here, for trained mixtures
(w_u, {u_i}), (w_v, {v_j}):

- V = w_u^T F w_v, the payoff of the pair (F estimated on ``n_eval`` fresh samples);
- the discriminator's gain = max_v sum_i w_{u_i} F(u_i, v) - V, the most a fresh
  best-response discriminator, trained against the frozen generator mixture, gains;
- the generator's gain = V - min_u sum_j w_{v_j} F(u, v_j), likewise for a fresh
  generator against the frozen discriminator mixture;
- epsilon = max(discriminator gain, generator gain).

A best response to a fixed mixture may be taken pure (the objective is linear in the
responder's mixed strategy), so a single fresh network per restart suffices. Both
maxima are estimated by optimisation, so each gain is a *lower bound* on the true one;
the budget (steps, learning rate, restarts, batch size) is recorded in the result. The
existing components are candidates too (free, and they give gains >= 0 exactly, since
a maximum is at least the weighted mean). The responders train on the game's own
losses (penalties and weight clipping included, which define the class of
discriminators the game is played over); the gains are measured in the payoff F alone.

Best-response discriminators train on the ensemble engine
(:func:`gangen.nn.ensemble.train_ensemble_stream`: the R restarts at once, a fresh batch of
real rows and of B latent draws per generator component every step, fake rows weighted
w_ui / B) whenever the game is within its scope: MLP players in float32, the bounded log
game (minimax or non-saturating, delta > 0) or the Wasserstein game with or without a
weight clip, no penalty. There the discriminator's loss is exactly -J of Definition 2.
Other games (gradient penalties, which need second derivatives; delta = 0; least
squares; DCGAN or custom players; float64) train the R responders as a vmapped
:class:`~gangen.mixgan.mixture.Mixture` on the same batches. Best-response generators
always train as a Mixture (the engine trains discriminators).

Also here: the exact epsilon of a finite game (:func:`finite_game_equilibrium`) and a
finite-capacity GAN without a pure equilibrium, rock-paper-scissors
(:func:`rock_paper_scissors`), the paper's footnote example.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Callable, Iterator

import numpy as np
import torch
from torch import nn

from gangen._validation import check_nonneg_int, check_positive_float, check_positive_int
from gangen.mixgan.losses import Objective
from gangen.mixgan.mixture import Mixture, build_mixture
from gangen.mixgan.train import DTYPES, MixGANConfig, RealData, build_players

__all__ = [
    "BestResponseBudget",
    "EquilibriumResult",
    "FiniteGameEquilibrium",
    "measure_equilibrium",
    "payoff_matrix",
    "finite_game_equilibrium",
    "rock_paper_scissors",
    "RockPaperScissorsGAN",
    "PointGenerator",
    "TableDiscriminator",
]


# ====================================================================== finite games
@dataclass(frozen=True)
class FiniteGameEquilibrium:
    """Exact epsilon of mixed strategies in a finite zero-sum game (best responses by enumeration).

    value = p^T F q; d_gain = max_v (p^T F)_v - value; g_gain = value - min_u (F q)_u;
    eps = max(d_gain, g_gain); d_best, g_best = the pure best responses.
    """

    value: float
    d_gain: float
    g_gain: float
    eps: float
    d_best: int
    g_best: int


def _as_prob(p: Any, n: int, name: str) -> np.ndarray:
    arr = np.asarray(p, dtype=np.float64)
    if arr.shape != (n,):
        raise ValueError(f"{name} must have shape ({n},); got {arr.shape}")
    if not np.all(np.isfinite(arr)) or np.any(arr < 0) or abs(arr.sum() - 1.0) > 1e-9:
        raise ValueError(f"{name} must be a probability vector (finite, >= 0, summing to 1); got {arr}")
    return arr


def finite_game_equilibrium(payoff: Any, gen_weights: Any, disc_weights: Any) -> FiniteGameEquilibrium:
    r"""Exact epsilon of (p, q) in the zero-sum game with payoff F (rows: generators, minimising).

    .. math::
        V = p^\top F q,\quad \epsilon = \max\big(\max_v (p^\top F)_v - V,\ V - \min_u (F q)_u\big)

    Parameters
    ----------
    payoff : array (n_g, n_d), F[u, v]
    gen_weights : array (n_g,), p; disc_weights : array (n_d,), q

    >>> F = [[0.0, 1.0], [1.0, 0.0]]       # matching pennies: the uniform pair is exact
    >>> finite_game_equilibrium(F, [0.5, 0.5], [0.5, 0.5]).eps
    0.0
    """
    F = np.asarray(payoff, dtype=np.float64)
    if F.ndim != 2 or 0 in F.shape or not np.all(np.isfinite(F)):
        raise ValueError(f"payoff must be a finite (n_g, n_d) matrix; got shape {F.shape}")
    p = _as_prob(gen_weights, F.shape[0], "gen_weights")
    q = _as_prob(disc_weights, F.shape[1], "disc_weights")
    value = float(p @ F @ q)
    d_values, g_values = p @ F, F @ q  # (n_d,), (n_g,)
    d_gain = float(d_values.max() - value)
    g_gain = float(value - g_values.min())
    return FiniteGameEquilibrium(value, d_gain, g_gain, max(d_gain, g_gain), int(d_values.argmax()), int(g_values.argmin()))


class PointGenerator(nn.Module):
    """A generator of capacity one point: G(z) = a for every z (no trainable parameters).

    >>> PointGenerator([1.0, 2.0])(torch.zeros(3, 1)).tolist()
    [[1.0, 2.0], [1.0, 2.0], [1.0, 2.0]]
    """

    def __init__(self, point: Any, *, latent_dim: int = 1) -> None:
        super().__init__()
        self.register_buffer("point", torch.as_tensor(np.asarray(point, dtype=np.float64), dtype=torch.float32))
        self.latent_dim = check_positive_int(latent_dim, "latent_dim")
        self.num_classes = 0

    def forward(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        return self.point.to(z.dtype).expand(z.shape[0], -1)  # (n, d)


class TableDiscriminator(nn.Module):
    """A discriminator that only knows a few points: s(x) = values[k(x)], k(x) the nearest of ``points``.

    >>> D = TableDiscriminator([[0.0], [1.0]], [0.25, 0.75])
    >>> D(torch.tensor([[0.1], [0.9]])).tolist()
    [0.25, 0.75]
    """

    def __init__(self, points: Any, values: Any) -> None:
        super().__init__()
        pts = np.asarray(points, dtype=np.float64)
        vals = np.asarray(values, dtype=np.float64)
        if pts.ndim != 2 or vals.shape != (pts.shape[0],):
            raise ValueError(f"points must be (k, d) and values (k,); got {pts.shape} and {vals.shape}")
        self.register_buffer("points", torch.as_tensor(pts, dtype=torch.float32))
        self.register_buffer("values", torch.as_tensor(vals, dtype=torch.float32))
        self.num_classes = 0

    def forward(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        dist = ((x[:, None, :] - self.points.to(x.dtype)[None]) ** 2).sum(-1)  # (n, k)
        return self.values.to(x.dtype)[dist.argmin(1)]  # (n,)


@dataclass(frozen=True)
class RockPaperScissorsGAN:
    r"""Rock-paper-scissors as a finite-capacity GAN with the Wasserstein payoff (phi(t) = t).

    Three points a_0, a_1, a_2 (rock, paper, scissors; the vertices of an equilateral
    triangle of circumradius 1); the real distribution is uniform on them. Generator u
    outputs a_u only (capacity: one point). Discriminator v is a table on the three
    points, D_v(a_u) = 1/2 - s A[u, v], where A[u, v] = +1 when v beats u
    (v = u + 1 mod 3: paper beats rock, scissors paper, rock scissors), -1 when u beats
    v, 0 on a tie, and s = ``margin`` in (0, 1/2] keeps D in [0, 1]. Since each column
    of A sums to 0, E_real D_v = 1/2 and the payoff is

    .. math:: F(u, v) = \mathbb{E}_{real} D_v - D_v(a_u) = s\,A[u, v]

    (the paper's phi(t) = t payoff E D_v(x) + E (1 - D_v(G_u)) is this plus 1). This
    game has no pure equilibrium: at a pure pair (u, v), epsilon = s + s |A[u, v]|
    (s on a tie, 2s otherwise). The uniform mixtures are an exact equilibrium (V = 0,
    epsilon = 0): the uniform generator mixture *is* the real distribution. Since the
    rows and columns of A sum to 0, V = 0 whenever one side plays uniformly; e.g. for p
    against uniform q, epsilon = max_v s (p^T A)_v, which is s * d for
    p = (1/3 + d, 1/3 - d, 1/3): the gap grows linearly away from the equilibrium.

    Attributes
    ----------
    points : (3, 2) array, a_u; tables : (3, 3) array, tables[v, u] = D_v(a_u); margin : s.
    """

    points: np.ndarray
    tables: np.ndarray
    margin: float

    @staticmethod
    def beats() -> np.ndarray:
        """A[u, v]: +1 if v beats u, -1 if u beats v, 0 on a tie (0 rock, 1 paper, 2 scissors)."""
        A = np.zeros((3, 3))
        for u in range(3):
            A[u, (u + 1) % 3] = 1.0
            A[(u + 1) % 3, u] = -1.0
        return A

    def payoff(self) -> np.ndarray:
        """F[u, v] = mean_k D_v(a_k) - D_v(a_u), shape (3, 3), computed from the tables."""
        return self.tables.mean(axis=1)[None, :] - self.tables.T

    def generators(self) -> list[nn.Module]:
        """The three generators (one point each), as players for :class:`Mixture`."""
        return [PointGenerator(a) for a in self.points]

    def discriminators(self) -> list[nn.Module]:
        """The three table discriminators, as players for :class:`Mixture`."""
        return [TableDiscriminator(self.points, t) for t in self.tables]


def rock_paper_scissors(*, margin: float = 0.5) -> RockPaperScissorsGAN:
    """The rock-paper-scissors GAN with margin s (see :class:`RockPaperScissorsGAN`).

    >>> g = rock_paper_scissors(margin=0.5)
    >>> bool((g.payoff() == 0.5 * g.beats()).all())
    True
    """
    s = check_positive_float(margin, "margin")
    if s > 0.5:
        raise ValueError(f"margin must be in (0, 1/2] so that D stays in [0, 1]; got {margin}")
    angles = np.pi / 2 + 2 * np.pi * np.arange(3) / 3
    points = np.stack([np.cos(angles), np.sin(angles)], axis=1)  # (3, 2)
    tables = 0.5 - s * RockPaperScissorsGAN.beats().T  # tables[v, u] = 1/2 - s A[u, v]
    return RockPaperScissorsGAN(points, tables, s)


# ====================================================================== neural games
#: Byte budget that sets the rows per block of engine-trained best responses on a CPU (see
#: gangen.nn.ensemble.plan_chunks). Fixed, not the engine's backend-dependent default, because the
#: block size sets the float32 summation order and hence the last bits of every result.
BEST_RESPONSE_ROW_BYTES = 10 * 2**20

@dataclass(frozen=True)
class BestResponseBudget:
    """Optimisation budget of one side's best response: Adam(lr, betas) for ``steps`` on batches
    of ``batch_size``, ``restarts`` fresh networks trained at once (0: only the existing components)."""

    steps: int = 1000
    lr: float = 1e-3
    restarts: int = 3
    batch_size: int = 256
    beta1: float = 0.5
    beta2: float = 0.999

    def __post_init__(self) -> None:
        check_nonneg_int(self.steps, "steps")
        check_positive_float(self.lr, "lr")
        check_nonneg_int(self.restarts, "restarts")
        check_positive_int(self.batch_size, "batch_size")


@dataclass(frozen=True)
class EquilibriumResult:
    """Measured epsilon of a trained (generator mixture, discriminator mixture).

    Attributes
    ----------
    value : float
        V = w_u^T F w_v on the evaluation samples.
    d_gain, g_gain : float
        Best found gain of each side's response (>= 0): the max of the trained and the
        component gains below.
    eps : float
        max(d_gain, g_gain), a lower bound on the pair's epsilon (optimisation).
    d_gain_trained, g_gain_trained : float or None
        Gain of the best fresh trained response (None when restarts = 0); can be < 0
        when the budget is too small to beat the mixture.
    d_gain_components, g_gain_components : float
        Gain of the best existing component (max_j (w_u^T F)_j - V, V - min_i (F w_v)_i).
    d_budget, g_budget : BestResponseBudget
    n_eval : int
        Real samples (and latent draws per generator) behind every estimate.
    """

    value: float
    d_gain: float
    g_gain: float
    eps: float
    d_gain_trained: float | None
    g_gain_trained: float | None
    d_gain_components: float
    g_gain_components: float
    d_budget: BestResponseBudget
    g_budget: BestResponseBudget
    n_eval: int

    def to_dict(self) -> dict[str, Any]:
        """Flat dict (budgets as ``d_budget_steps`` etc.) for a results table row."""
        out = {k: v for k, v in asdict(self).items() if not k.endswith("_budget")}
        for side in ("d", "g"):
            out.update({f"{side}_budget_{k}": v for k, v in asdict(getattr(self, f"{side}_budget")).items()})
        return out


def _eval_batches(data: RealData, n_eval: int | None, batch: int, rng: np.random.Generator) -> Iterator[tuple[torch.Tensor, torch.Tensor | None]]:
    if n_eval is None:  # the whole dataset, once, in order
        if data.data is None:
            raise ValueError("n_eval=None (the whole dataset) needs an array dataset, not a sampler")
        for start in range(0, data.data.shape[0], batch):
            sl = slice(start, start + batch)
            yield data.data[sl], (None if data.labels is None else data.labels[sl])
        return
    done = 0
    while done < n_eval:
        m = min(batch, n_eval - done)
        yield data.draw(m, rng)
        done += m


@torch.no_grad()
def _payoff(
    gens: Mixture,
    discs: Mixture,
    data: RealData,
    objective: Objective,
    *,
    n_eval: int | None,
    batch: int,
    seed: int,
) -> tuple[torch.Tensor, int]:
    """F (T_g, T_d) averaged over evaluation batches (weights = batch sizes), and the sample count."""
    rng = np.random.default_rng(seed)
    noise = torch.Generator().manual_seed(seed)
    total, count = None, 0
    for x, y in _eval_batches(data, n_eval, batch, rng):
        m = x.shape[0]
        fake = gens(gens.latent(m, generator=noise), per_component=True, labels=y)  # (T_g, m, ...)
        F_chunk = objective.loss.payoff(discs(x, labels=y), discs(fake, groups=True, labels=y))  # (T_g, T_d)
        total = F_chunk * m if total is None else total + F_chunk * m
        count += m
    assert total is not None
    return total / count, count


def payoff_matrix(
    generators: Mixture,
    discriminators: Mixture,
    real: Any,
    config: MixGANConfig,
    *,
    labels: Any = None,
    n_eval: int | None = 10_000,
    eval_batch_size: int = 1000,
    seed: int = 0,
) -> np.ndarray:
    """F(u_i, v_j) for all pairs, shape (T_g, T_d), with the config's payoff, on ``n_eval`` samples.

    ``n_eval=None`` uses an array dataset once, in order (exact for a finite real distribution).
    """
    data = RealData(real, labels=labels, dtype=generators.logits.dtype, device=generators.logits.device)
    F, _ = _payoff(generators, discriminators, data, config.objective(), n_eval=n_eval, batch=eval_batch_size, seed=seed)
    return F.cpu().numpy().astype(np.float64)


def _optimizer(budget: BestResponseBudget, mix: Mixture) -> torch.optim.Optimizer:
    return torch.optim.Adam(mix.player_parameters(), lr=budget.lr, betas=(budget.beta1, budget.beta2))


def _engine_game(config: MixGANConfig, objective: Objective, data: RealData, dtype: torch.dtype) -> tuple[Any, Any] | None:
    """(family, phi) of the ensemble engine for this game's discriminator best response, or None
    when the game is outside the engine's scope (then a vmapped Mixture trains the responders).

    In scope: the config's MLP discriminators (leaky_relu 0.2, float32, unconditional) in the
    bounded log game (minimax or non-saturating with delta > 0: phi = log(delta + (1 - delta) t))
    or the Wasserstein game, with or without a weight clip, and no penalty. For these games the
    discriminator's loss -F is exactly -J of Definition 2 with the mixture's weighted fake rows.
    """
    from gangen.distances.measuring import IdentityMeasuring, LogMeasuring
    from gangen.nn.families import MLPFamily
    from gangen.nn.players import LEAKY_SLOPE

    if config.family != "mlp" or dtype != torch.float32 or objective.penalties or data.labels is not None:
        return None
    if len(data.example_shape) != 1:
        return None
    if config.loss in ("minimax", "nonsaturating") and config.delta > 0.0:
        head, phi = "sigmoid", LogMeasuring(config.delta)
    elif config.loss == "wasserstein":
        head, phi = "linear", IdentityMeasuring()
    else:
        return None
    family = MLPFamily(
        d=data.example_shape[0], hidden=(config.hidden,) * config.depth, activation="leaky_relu", negative_slope=LEAKY_SLOPE,
        head=head, weight_clip=objective.clip,
    )
    return family, phi


def _engine_discriminator_response(gens: Mixture, family: Any, phi: Any, data: RealData, budget: BestResponseBudget, seed: int) -> Mixture:
    # R fresh discriminators on the ensemble engine, all on the same fresh batches as the Mixture path
    # draws them (real rows, then B latent draws per generator component, rows weighted w_ui / B).
    from gangen.nn.ensemble import plan_chunks, train_ensemble_stream
    from gangen.nn.players import MLPDiscriminator

    rng, noise = np.random.default_rng(seed + 1), torch.Generator().manual_seed(seed + 2)
    B, T = budget.batch_size, gens.n_components
    w_g = gens.weights().detach().double().cpu().numpy()
    y_weights = np.repeat(w_g / B, B)

    def batches(step: int) -> tuple[torch.Tensor, torch.Tensor, np.ndarray]:
        x, _ = data.draw(B, rng)
        with torch.no_grad():
            fake = gens(gens.latent(B, generator=noise), per_component=True)  # (T_g, B, d)
        return x, fake.reshape(T * B, -1), y_weights

    seeds = [int(s) for s in np.random.SeedSequence([seed, 3]).generate_state(budget.restarts)]
    if budget.steps == 0:  # untrained fresh networks, as the Mixture path gives
        params = family.init(seeds)
    else:
        rows = plan_chunks(family, 1, B * (T + 1), data.device, cpu_cache_bytes=BEST_RESPONSE_ROW_BYTES).rows
        params = train_ensemble_stream(
            batches, family=family, seeds=seeds, phi=phi, steps=budget.steps, lr=budget.lr,
            betas=(budget.beta1, budget.beta2), device=data.device, rows=rows,
        ).params
    return Mixture([MLPDiscriminator.from_family(family, row) for row in params]).to(data.device)


def _train_discriminator_response(
    gens: Mixture,
    make_d: Callable[[], nn.Module],
    data: RealData,
    objective: Objective,
    budget: BestResponseBudget,
    seed: int,
    dtype: torch.dtype,
    engine: tuple[Any, Any] | None = None,
) -> Mixture:
    if engine is not None:
        return _engine_discriminator_response(gens, *engine, data, budget, seed)
    # Outside the engine's scope (penalties, DCGAN or custom players, float64, delta = 0, least squares):
    # R fresh discriminators as a vmapped Mixture, each minimising sum_i w_ui (-F(u_i, v_r) + P(v_r; u_i)) on its own.
    responders = build_mixture(make_d, budget.restarts, seed=seed, dtype=dtype).to(data.device)
    opt = _optimizer(budget, responders)
    rng, noise = np.random.default_rng(seed + 1), torch.Generator().manual_seed(seed + 2)
    w_g = gens.weights().detach()
    for _ in range(budget.steps):
        x, y = data.draw(budget.batch_size, rng)
        with torch.no_grad():
            fake = gens(gens.latent(budget.batch_size, generator=noise), per_component=True, labels=y)  # (T_g, B, ...)
        loss_mat = objective.loss.discriminator_loss(responders(x, labels=y), responders(fake, groups=True, labels=y))  # (T_g, R)
        loss_mat = loss_mat + objective.penalty(responders, x, fake, generator=noise, labels=y)
        loss = (w_g @ loss_mat).sum()  # restarts are independent: summing keeps their gradients apart
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if objective.clip is not None:
            responders.clip_(objective.clip)
    return responders


def _train_generator_response(
    discs: Mixture, make_g: Callable[[], nn.Module], data: RealData, objective: Objective, budget: BestResponseBudget, seed: int, dtype: torch.dtype
) -> Mixture:
    # R fresh generators, each minimising sum_j w_vj L_G(u_r, v_j) on its own.
    responders = build_mixture(make_g, budget.restarts, seed=seed, dtype=dtype).to(data.device)
    opt = _optimizer(budget, responders)
    rng, noise = np.random.default_rng(seed + 1), torch.Generator().manual_seed(seed + 2)
    w_d = discs.weights().detach()
    flags = [(p, p.requires_grad) for p in discs.parameters()]
    discs.requires_grad_(False)
    try:
        for _ in range(budget.steps):
            y = data.draw(budget.batch_size, rng)[1]  # labels only (conditional players)
            fake = responders(responders.latent(budget.batch_size, generator=noise), per_component=True, labels=y)  # (R, B, ...)
            loss = (objective.loss.generator_loss(discs(fake, groups=True, labels=y)) @ w_d).sum()  # (R,) summed
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    finally:
        for p, flag in flags:  # as they were (a caller may have frozen some on purpose)
            p.requires_grad_(flag)
    return responders


def measure_equilibrium(
    generators: Mixture,
    discriminators: Mixture,
    real: Any,
    config: MixGANConfig,
    *,
    labels: Any = None,
    d_budget: BestResponseBudget = BestResponseBudget(),
    g_budget: BestResponseBudget = BestResponseBudget(),
    n_eval: int | None = 10_000,
    eval_batch_size: int = 1000,
    seed: int = 0,
    generator_factory: Callable[[], nn.Module] | None = None,
    discriminator_factory: Callable[[], nn.Module] | None = None,
) -> EquilibriumResult:
    r"""V, each side's best-response gain and epsilon for trained mixtures (see the module docstring).

    Parameters
    ----------
    generators, discriminators : Mixture
        The trained pair (e.g. ``train(config, real)``'s result), left unchanged.
    real : sampler or array (N, ...)
        The real distribution (see :class:`gangen.mixgan.train.RealData`).
    config : MixGANConfig
        Gives the game (loss, penalty, clip) and, unless factories are given, the family
        of the fresh responders (the same as the trained players').
    d_budget, g_budget : BestResponseBudget
        Optimisation budget of each side's fresh best responses.
    n_eval : int or None
        Evaluation samples for F (fresh, the same for V and every response: common random
        numbers); None = an array dataset once in order.
    seed : int
        Seeds the evaluation draws and the responders (initialisation, batches, noise).

    Returns
    -------
    EquilibriumResult

    >>> g = rock_paper_scissors()
    >>> G, D = Mixture(g.generators()), Mixture(g.discriminators())     # uniform mixtures
    >>> cfg = MixGANConfig(n_components=3, loss="wasserstein")
    >>> r = measure_equilibrium(G, D, g.points, cfg, d_budget=BestResponseBudget(restarts=0),
    ...                         g_budget=BestResponseBudget(restarts=0), n_eval=None)
    >>> abs(r.eps) < 1e-6      # the uniform mixtures are an exact equilibrium
    True
    """
    if not isinstance(config, MixGANConfig):
        raise TypeError(f"config must be a MixGANConfig; got {type(config).__name__}")
    if n_eval is not None:
        check_positive_int(n_eval, "n_eval")
    check_positive_int(eval_batch_size, "eval_batch_size")
    check_nonneg_int(seed, "seed")
    dtype = generators.logits.dtype
    if dtype not in DTYPES.values():
        raise TypeError(f"mixtures must be float32 or float64; got {dtype}")
    data = RealData(real, labels=labels, dtype=dtype, device=generators.logits.device)
    make_g, make_d = build_players(config, data.example_shape)
    make_g, make_d = generator_factory or make_g, discriminator_factory or make_d
    objective = config.objective()
    eval_kw = dict(n_eval=n_eval, batch=eval_batch_size, seed=seed)
    w_g, w_d = generators.weights().detach(), discriminators.weights().detach()

    # ---- V and the existing components as candidate responses
    F, count = _payoff(generators, discriminators, data, objective, **eval_kw)  # (T_g, T_d)
    value = float(w_g @ F @ w_d)
    d_gain_comp = float((w_g @ F).max()) - value
    g_gain_comp = value - float((F @ w_d).min())

    # ---- fresh best-response discriminators against the frozen generator mixture
    d_gain_trained = None
    if d_budget.restarts:
        engine = None if discriminator_factory is not None else _engine_game(config, objective, data, dtype)
        resp = _train_discriminator_response(generators, make_d, data, objective, d_budget, seed + 10, dtype, engine)
        F_d, _ = _payoff(generators, resp, data, objective, **eval_kw)  # (T_g, R)
        d_gain_trained = float((w_g @ F_d).max()) - value

    # ---- fresh best-response generators against the frozen discriminator mixture
    g_gain_trained = None
    if g_budget.restarts:
        resp = _train_generator_response(discriminators, make_g, data, objective, g_budget, seed + 20, dtype)
        F_g, _ = _payoff(resp, discriminators, data, objective, **eval_kw)  # (R, T_d)
        g_gain_trained = value - float((F_g @ w_d).min())

    d_gain = max(d_gain_comp, d_gain_trained if d_gain_trained is not None else -np.inf)
    g_gain = max(g_gain_comp, g_gain_trained if g_gain_trained is not None else -np.inf)
    return EquilibriumResult(
        value=value,
        d_gain=float(d_gain),
        g_gain=float(g_gain),
        eps=float(max(d_gain, g_gain)),
        d_gain_trained=d_gain_trained,
        g_gain_trained=g_gain_trained,
        d_gain_components=d_gain_comp,
        g_gain_components=g_gain_comp,
        d_budget=d_budget,
        g_budget=g_budget,
        n_eval=count,
    )
