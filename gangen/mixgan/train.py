r"""The one adversarial training loop: MIX+GAN with T generators and T discriminators (T = 1: a GAN).

.. math::
    \min_{\{u_i\},\alpha_u}\ \max_{\{v_j\},\alpha_v}\ \sum_{i,j} w_{u_i} w_{v_j} F(u_i, v_j),
    \qquad w_u = \mathrm{softmax}(\alpha_u),\ w_v = \mathrm{softmax}(\alpha_v)

(Arora et al. 2017, Section 5). Each step alternates:

1. discriminator phase (``n_critic`` times): minimise
   w_u^T (-F + P) w_v + beta R_ent(w_v) over the discriminators' parameters and
   logits (w_u held fixed), then clip the weights when the objective says so;
2. generator phase (1 step, or 1/3/5/7 with the authors' heuristic): minimise
   w_u^T L_G w_v + beta R_ent(w_u) over the generators' parameters and logits;

with R_ent(w) = -(1/T) sum log w_i and beta = ``entropy_coef`` (0.1 in the authors'
code). Every generator is scored by every discriminator on its own batch; no
component is sampled during training. With T = 1 the weights are identically 1,
R_ent = 0 and its gradient 0, so the loop is a plain GAN step for step.

Randomness: three streams from ``seed`` (:func:`seed_streams`): player
initialisation (generators, then discriminators, each under ``torch.manual_seed``),
the real batches (``numpy.random.default_rng``) and the latent noise and penalty draws
(one ``torch.Generator``). Per step the draws happen in this order: for each
discriminator update a real batch, then z of shape (T, B, k), then the penalty's
draws; for each generator update z of shape (T, B, k).

The authors' Theano code (PrincetonML/MIX-plus-GANs, ``train_mixgan.py``) has two
heuristics that are not in the paper, offered here off by default:
``skip_d_below`` (0.3 there) skips the discriminator update when its adversarial loss
is below the threshold, and ``adaptive_g_steps`` runs 1, 3, 5 or 7 generator updates
when that loss is > 0.65, > 0.5, > 0.3 or below. "Its adversarial loss" is, as in that
code, the mean of the real and fake cross-entropies, 0.5 (BCE_real + BCE_fake) =
-0.5 F, weighted over the pairs. Both need a log-loss game. Their code also uses the
saturating generator loss: ``loss="minimax"``.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from typing import Any, Callable

import numpy as np
import pandas as pd
import torch
from torch import nn

from gangen._validation import (
    check_choice,
    check_nonneg_int,
    check_positive_float,
    check_positive_int,
)
from gangen.mixgan.losses import LOSSES, NON_LOG_LOSSES, PENALTIES, Objective, make_objective
from gangen.mixgan.mixture import Mixture, build_mixture
from gangen.nn.players import DCGANDiscriminator, DCGANGenerator, MLPDiscriminator, MLPGenerator

__all__ = [
    "MixGANConfig",
    "MixGANResult",
    "SeedStreams",
    "PRESETS",
    "preset",
    "seed_streams",
    "train",
    "build_players",
    "RealData",
    "adaptive_generator_steps",
    "history_columns",
]

OPTIMIZERS = ("adam", "rmsprop")
FAMILIES = ("mlp", "dcgan")
DTYPES = {"float32": torch.float32, "float64": torch.float64}


@dataclass(frozen=True)
class MixGANConfig:
    """Everything that determines a MIX+GAN run (defaults: the authors' code, NS loss).

    Game
      n_components   T generators and T discriminators (1: a plain GAN)
      loss           "minimax" | "nonsaturating" | "wasserstein" | "least_squares"
      delta          phi(t) = log(delta + (1 - delta) t) for the log losses (0: plain log;
                     > 0: the paper's bounded phi, values in [log delta, 0])
      penalty        "none" | "gp" | "dragan" | "maxgp" (added to the discriminator loss)
      penalty_weight lambda of the penalty (10, WGAN-GP)
      perturb_scale  DRAGAN's c in x + c std(x) U[0,1] (0.5, DRAGAN's code)
      clip           weight clip c after each discriminator step, None for none (WGAN: 0.01)
      entropy_coef   beta, coefficient of R_ent on each side (0.1, authors' code)
      train_weights  learn the mixture logits (False: weights stay uniform)
    Optimisation
      optimizer      "adam" | "rmsprop" (WGAN: rmsprop, lr 5e-5)
      lr_g, lr_d     learning rates (1e-4, authors' code)
      beta1, beta2   Adam's betas (0.5, 0.999)
      n_critic       discriminator updates per generator phase (WGAN: 5)
      steps          generator phases
      batch_size     B, per generator and for the real batch
    Players
      family         "mlp" (toy data, (n, d)) | "dcgan" (images (n, C, H, W))
      latent_dim     k, z ~ N(0, I_k)
      hidden, depth  MLP width and number of hidden layers
      width          DCGAN base channel count
      d_norm, g_norm DCGAN normalisation ("batch" | "layer" | "none")
      num_classes    > 0: label-conditional DCGAN players
      dtype          "float32" | "float64"
    Authors' heuristics (off by default; see the module docstring)
      skip_d_below       threshold or None
      adaptive_g_steps   1/3/5/7 generator updates by discriminator loss
    Bookkeeping
      log_every      history row every this many steps (and at the last step)
      seed           master seed (see :func:`seed_streams`)
    """

    n_components: int = 5
    loss: str = "nonsaturating"
    delta: float = 0.0
    penalty: str = "none"
    penalty_weight: float = 10.0
    perturb_scale: float = 0.5
    clip: float | None = None
    entropy_coef: float = 0.1
    train_weights: bool = True
    optimizer: str = "adam"
    lr_g: float = 1e-4
    lr_d: float = 1e-4
    beta1: float = 0.5
    beta2: float = 0.999
    n_critic: int = 1
    steps: int = 2000
    batch_size: int = 64
    family: str = "mlp"
    latent_dim: int = 2
    hidden: int = 128
    depth: int = 2
    width: int = 64
    d_norm: str = "batch"
    g_norm: str = "batch"
    num_classes: int = 0
    dtype: str = "float32"
    skip_d_below: float | None = None
    adaptive_g_steps: bool = False
    log_every: int = 100
    seed: int = 0

    def __post_init__(self) -> None:
        check_positive_int(self.n_components, "n_components")
        check_choice(self.loss, LOSSES, "loss")
        check_choice(self.penalty, ("none", *PENALTIES), "penalty")
        if not 0.0 <= self.delta < 1.0 or (self.delta and self.loss in NON_LOG_LOSSES):
            raise ValueError(f"delta must lie in [0, 1) and be 0 for the losses {NON_LOG_LOSSES}; got delta={self.delta} with loss={self.loss!r}")
        check_positive_float(self.penalty_weight, "penalty_weight")
        check_positive_float(self.perturb_scale, "perturb_scale")
        if self.clip is not None:
            check_positive_float(self.clip, "clip")
        if self.entropy_coef < 0 or not np.isfinite(self.entropy_coef):
            raise ValueError(f"entropy_coef must be a finite number >= 0; got {self.entropy_coef}")
        check_choice(self.optimizer, OPTIMIZERS, "optimizer")
        check_positive_float(self.lr_g, "lr_g")
        check_positive_float(self.lr_d, "lr_d")
        for name in ("beta1", "beta2"):
            b = getattr(self, name)
            if not 0.0 <= b < 1.0:
                raise ValueError(f"{name} must lie in [0, 1); got {b}")
        check_positive_int(self.n_critic, "n_critic")
        check_nonneg_int(self.steps, "steps")
        check_positive_int(self.batch_size, "batch_size")
        check_choice(self.family, FAMILIES, "family")
        check_positive_int(self.latent_dim, "latent_dim")
        check_positive_int(self.hidden, "hidden")
        check_nonneg_int(self.depth, "depth")
        check_positive_int(self.width, "width")
        check_nonneg_int(self.num_classes, "num_classes")
        check_choice(self.dtype, DTYPES, "dtype")
        if self.num_classes and self.family != "dcgan":
            raise ValueError("num_classes > 0 (label-conditional players) needs family='dcgan'")
        if (self.skip_d_below is not None or self.adaptive_g_steps) and self.loss in NON_LOG_LOSSES:
            raise ValueError(f"the authors' heuristics (skip_d_below, adaptive_g_steps) need a log-loss game, not {self.loss!r}")
        check_positive_int(self.log_every, "log_every")
        check_nonneg_int(self.seed, "seed")

    def objective(self) -> Objective:
        """The composed loss + penalty (+ clip) of this config."""
        return make_objective(
            self.loss,
            self.penalty,
            penalty_weight=self.penalty_weight,
            perturb_scale=self.perturb_scale,
            clip=self.clip,
            delta=self.delta,
        )

    def to_dict(self) -> dict[str, Any]:
        """Plain dict of the fields (JSON-serialisable)."""
        return asdict(self)


#: Named variants; ``preset(name, **overrides)`` returns the config. "mix-" prefixes set T = 5.
PRESETS: dict[str, dict[str, Any]] = {
    "gan": dict(n_components=1, loss="nonsaturating"),
    "wgan": dict(n_components=1, loss="wasserstein", clip=0.01, optimizer="rmsprop", lr_g=5e-5, lr_d=5e-5, n_critic=5),
    "wgan-gp": dict(n_components=1, loss="wasserstein", penalty="gp", beta1=0.0, beta2=0.9, n_critic=5),
    "gan-gp": dict(n_components=1, loss="nonsaturating", penalty="gp"),
    "dragan": dict(n_components=1, loss="nonsaturating", penalty="dragan"),
    "maxgp": dict(n_components=1, loss="wasserstein", penalty="maxgp", n_critic=5),
}


def preset(name: str, **overrides: Any) -> MixGANConfig:
    """A config for a named variant; ``"mix-<name>"`` (or ``"mixgan"``) is the same with T = 5.

    >>> preset("mix-wgan").n_components, preset("mix-wgan").clip
    (5, 0.01)
    >>> preset("gan", steps=10).steps
    10
    """
    base = "gan" if name == "mixgan" else name.removeprefix("mix-")
    check_choice(base, PRESETS, "preset (without the 'mix-' prefix)")
    fields = dict(PRESETS[base])
    if name != base:
        fields["n_components"] = 5
    fields.update(overrides)
    return MixGANConfig(**fields)


@dataclass(frozen=True)
class SeedStreams:
    """Seeds derived from a master seed: generator init, discriminator init, real data, noise."""

    init_g: int
    init_d: int
    data: int
    noise: int


def seed_streams(seed: int) -> SeedStreams:
    """Four independent 31-bit seeds from ``numpy.random.SeedSequence(seed)``.

    >>> seed_streams(0) == seed_streams(0)
    True
    """
    s = np.random.SeedSequence(check_nonneg_int(seed, "seed")).generate_state(4) % (2**31 - 1)
    return SeedStreams(int(s[0]), int(s[1]), int(s[2]), int(s[3]))


@dataclass(frozen=True)
class MixGANResult:
    """A trained MIX+GAN.

    Attributes
    ----------
    generators, discriminators : Mixture
        The T trained players of each side with their mixture weights.
    history : pandas.DataFrame
        One row every ``log_every`` steps: ``step``; ``d_loss`` and ``g_loss`` (each
        side's full minimised objective); ``d_adv`` (w_u^T (-F) w_v); ``penalty``
        (w_u^T P w_v); ``value`` (w_u^T F w_v; for the Wasserstein game the estimated
        critic objective of the paper's Figure 4); ``d_updates`` (discriminator updates
        done since the last row, fewer than n_critic * steps when skipped);
        ``g_updates``; ``w_g{i}``, ``w_d{j}``; ``F_{i}_{j}``; ``time_s``.
        All quantities are measured on the training batch of the logged step, before
        its updates.
    config : MixGANConfig
    """

    generators: Mixture
    discriminators: Mixture
    history: pd.DataFrame
    config: MixGANConfig


class RealData:
    """Real batches from a sampler (``.sample(n, seed=rng)``) or from an array dataset.

    ``source`` is either an object with ``sample(n, *, seed)`` returning an (n, d)
    array (a :mod:`gangen.samplers` sampler), or an array/tensor of N examples of any
    shape (N, ...), from which batches are drawn uniformly with replacement
    (``rng.integers(0, N, size=n)``). ``labels`` (N,) ints go with a dataset.
    """

    def __init__(self, source: Any, *, labels: Any = None, dtype: torch.dtype = torch.float32, device: str | torch.device = "cpu") -> None:
        self.dtype, self.device = dtype, torch.device(device)
        self.sampler = source if hasattr(source, "sample") and not isinstance(source, (np.ndarray, torch.Tensor)) else None
        self.data: torch.Tensor | None = None
        self.labels: torch.Tensor | None = None
        if self.sampler is None:
            data = source if isinstance(source, torch.Tensor) else torch.as_tensor(np.asarray(source))
            if data.ndim < 2 or data.shape[0] == 0:
                raise ValueError(f"a real dataset must have shape (N, ...) with N >= 1 and at least one feature axis; got {tuple(data.shape)}")
            if not torch.isfinite(data).all():
                raise ValueError("the real dataset contains NaN or inf entries")
            self.data = data.to(dtype=dtype, device=self.device)
            if labels is not None:
                lab = torch.as_tensor(np.asarray(labels) if not isinstance(labels, torch.Tensor) else labels)
                if lab.shape != (data.shape[0],):
                    raise ValueError(f"labels must have shape ({data.shape[0]},), one per example; got {tuple(lab.shape)}")
                self.labels = lab.long().to(self.device)
        elif labels is not None:
            raise ValueError("labels go with an array dataset, not with a sampler")

    @property
    def example_shape(self) -> tuple[int, ...]:
        """Shape of one example: (d,) or (C, H, W)."""
        if self.data is not None:
            return tuple(self.data.shape[1:])
        return (int(self.sampler.d),)

    def draw(self, n: int, rng: np.random.Generator) -> tuple[torch.Tensor, torch.Tensor | None]:
        """A batch (n, ...) and its labels (n,) or None."""
        if self.data is None:
            x = torch.as_tensor(np.asarray(self.sampler.sample(n, seed=rng)), dtype=self.dtype, device=self.device)
            return x, None
        idx = torch.as_tensor(rng.integers(0, self.data.shape[0], size=n), device=self.device)
        return self.data[idx], (None if self.labels is None else self.labels[idx])


def build_players(config: MixGANConfig, example_shape: tuple[int, ...]) -> tuple[Callable[[], nn.Module], Callable[[], nn.Module]]:
    """Factories (generator, discriminator) for the config's player family and the data shape."""
    if config.family == "mlp":
        if len(example_shape) != 1:
            raise ValueError(f"family='mlp' needs flat examples of shape (d,); got {example_shape}")
        d = example_shape[0]
        return (
            lambda: MLPGenerator(config.latent_dim, d, hidden=config.hidden, depth=config.depth),
            lambda: MLPDiscriminator(d, hidden=config.hidden, depth=config.depth),
        )
    shape = tuple(example_shape)
    return (
        lambda: DCGANGenerator(shape, latent_dim=config.latent_dim, width=config.width, num_classes=config.num_classes, norm=config.g_norm),
        lambda: DCGANDiscriminator(shape, width=config.width, num_classes=config.num_classes, norm=config.d_norm),
    )


def adaptive_generator_steps(d_adv: float) -> int:
    """The authors' rule: 1, 3, 5 or 7 generator updates when the discriminator's loss is > 0.65, > 0.5, > 0.3 or lower.

    ``d_adv`` is 0.5 (BCE_real + BCE_fake) (see the module docstring).

    >>> [adaptive_generator_steps(x) for x in (0.7, 0.6, 0.4, 0.1)]
    [1, 3, 5, 7]
    """
    if d_adv > 0.65:
        return 1
    if d_adv > 0.5:
        return 3
    if d_adv > 0.3:
        return 5
    return 7


def _optimizer(config: MixGANConfig, params: list[nn.Parameter], lr: float) -> torch.optim.Optimizer:
    if config.optimizer == "adam":
        return torch.optim.Adam(params, lr=lr, betas=(config.beta1, config.beta2))
    return torch.optim.RMSprop(params, lr=lr)


def _side_parameters(mix: Mixture, config: MixGANConfig) -> list[nn.Parameter]:
    params = mix.player_parameters()
    if config.train_weights and mix.n_components > 1:
        params.append(mix.logits)
    return params


def train(
    config: MixGANConfig,
    real: Any,
    *,
    labels: Any = None,
    generator_factory: Callable[[], nn.Module] | None = None,
    discriminator_factory: Callable[[], nn.Module] | None = None,
    device: str | torch.device = "cpu",
    callback: Callable[[int, Mixture, Mixture], Any] | None = None,
) -> MixGANResult:
    """Train MIX+GAN (T = ``config.n_components``) against ``real``; T = 1 is a plain GAN.

    Parameters
    ----------
    config : MixGANConfig
    real : sampler or array (N, ...)
        See :class:`RealData`.
    labels : array (N,), optional
        Class labels of an array dataset (label-conditional players); the fakes of a
        step are generated for the labels of that step's real batch (as the authors' code).
    generator_factory, discriminator_factory : callables returning nn.Module, optional
        Override the config's player family (see :mod:`gangen.nn.players` for the contract).
    device : torch device
    callback : callable ``callback(t, generators, discriminators)``, optional
        Called at ``t = 0`` (before the first step) and after every step ``t = 1, ...,
        steps`` (``t`` = generator phases done), under ``torch.no_grad()``, so that a
        study can evaluate checkpoints of one run instead of retraining shorter runs.
        It cannot disturb training: it sees none of the training streams, torch's
        global random state is restored after it, and so is each player's
        train/eval mode. Its return value is ignored.

    Returns
    -------
    MixGANResult
        The trained mixtures and the history table.

    >>> import numpy as np
    >>> cfg = MixGANConfig(n_components=2, steps=3, batch_size=8, hidden=4, log_every=1)
    >>> res = train(cfg, np.random.default_rng(0).normal(size=(50, 2)))
    >>> list(res.history["step"]), res.generators.n_components
    ([0, 1, 2], 2)
    """
    if not isinstance(config, MixGANConfig):
        raise TypeError(f"config must be a MixGANConfig; got {type(config).__name__}")
    dtype = DTYPES[config.dtype]
    data = RealData(real, labels=labels, dtype=dtype, device=device)
    if config.num_classes and data.labels is None:
        raise ValueError(f"config.num_classes={config.num_classes} (conditional players) needs labels for the real data")
    make_g, make_d = build_players(config, data.example_shape)
    make_g = generator_factory or make_g
    make_d = discriminator_factory or make_d
    seeds = seed_streams(config.seed)
    T, B = config.n_components, config.batch_size

    # ---- setup: players, optimisers, random streams
    gens = build_mixture(make_g, T, seed=seeds.init_g, dtype=dtype).to(device)
    discs = build_mixture(make_d, T, seed=seeds.init_d, dtype=dtype).to(device)
    objective = config.objective()
    opt_g = _optimizer(config, _side_parameters(gens, config), config.lr_g)
    opt_d = _optimizer(config, _side_parameters(discs, config), config.lr_d)
    rng = np.random.default_rng(seeds.data)
    noise = torch.Generator().manual_seed(seeds.noise)
    beta = config.entropy_coef

    if callback is not None and not callable(callback):
        raise TypeError(f"callback must be callable as callback(t, generators, discriminators); got {type(callback).__name__}")

    def checkpoint(t: int) -> None:
        if callback is None:
            return
        modes = [(m, m.training) for m in (*gens.modules(), *discs.modules())]
        with torch.random.fork_rng(devices=[]), torch.no_grad():
            callback(t, gens, discs)
        for m, mode in modes:
            m.train(mode)

    rows: list[dict[str, Any]] = []
    d_updates = g_updates = 0
    t0 = time.perf_counter()
    checkpoint(0)
    for step in range(config.steps):
        log_now = step % config.log_every == 0 or step == config.steps - 1

        # ---- 1. discriminator phase: n_critic updates of {v_j} and alpha_v, generators frozen
        for k in range(config.n_critic):
            x, y = data.draw(B, rng)  # (B, ...), (B,) | None
            with torch.no_grad():
                fake = gens(gens.latent(B, generator=noise), per_component=True, labels=y)  # (T, B, ...)
            real_s = discs(x, labels=y)  # (T_d, B)
            fake_s = discs(fake, groups=True, labels=y)  # (T_d, T_g, B)
            payoff = objective.loss.payoff(real_s, fake_s)  # F, (T_g, T_d)
            pen = objective.penalty(discs, x, fake, generator=noise, labels=y)  # (T_g, T_d)
            w_g, w_d = gens.weights().detach(), discs.weights()
            d_adv = w_g @ (-payoff) @ w_d
            d_loss = d_adv + w_g @ pen @ w_d + beta * discs.entropy_regularizer()
            # authors' heuristic: their "loss" is 0.5 (BCE_real + BCE_fake) = 0.5 * d_adv
            skip = config.skip_d_below is not None and 0.5 * d_adv.item() < config.skip_d_below
            if k == 0 and log_now:  # record this step's first discriminator batch
                with torch.no_grad():
                    row = {"step": step, "d_loss": d_loss.item(), "d_adv": d_adv.item(), "penalty": (w_g @ pen @ w_d).item()}
                    row["value"] = (w_g @ payoff @ w_d).item()
                    F_np = payoff.detach().cpu().numpy()
            if not skip:
                opt_d.zero_grad(set_to_none=True)
                d_loss.backward()
                opt_d.step()
                if objective.clip is not None:
                    discs.clip_(objective.clip)
                d_updates += 1

        # ---- 2. generator phase: 1 update (1/3/5/7 with the authors' heuristic), discriminators frozen
        n_g = adaptive_generator_steps(0.5 * d_adv.item()) if config.adaptive_g_steps else 1
        discs.requires_grad_(False)
        for k in range(n_g):
            fake = gens(gens.latent(B, generator=noise), per_component=True, labels=y)  # (T, B, ...)
            fake_s = discs(fake, groups=True, labels=y)  # (T_d, T_g, B)
            g_mat = objective.loss.generator_loss(fake_s)  # (T_g, T_d)
            g_loss = gens.weights() @ g_mat @ discs.weights() + beta * gens.entropy_regularizer()
            if k == 0 and log_now:
                row["g_loss"] = g_loss.item()
            opt_g.zero_grad(set_to_none=True)
            g_loss.backward()
            opt_g.step()
            g_updates += 1
        discs.requires_grad_(True)

        # ---- 3. bookkeeping: a light history row every log_every steps
        if log_now:
            row.update(d_updates=d_updates, g_updates=g_updates)
            row.update({f"w_g{i}": float(w) for i, w in enumerate(gens.weights().detach().cpu())})
            row.update({f"w_d{j}": float(w) for j, w in enumerate(discs.weights().detach().cpu())})
            row.update({f"F_{i}_{j}": float(F_np[i, j]) for i in range(T) for j in range(T)})
            row["time_s"] = time.perf_counter() - t0
            rows.append(row)
            d_updates = g_updates = 0
        checkpoint(step + 1)

    return MixGANResult(gens, discs, pd.DataFrame(rows, columns=history_columns(T) if not rows else None), config)


def history_columns(n_components: int) -> list[str]:
    """The columns of :attr:`MixGANResult.history` for T = ``n_components`` (in order).

    >>> history_columns(1)
    ['step', 'd_loss', 'd_adv', 'penalty', 'value', 'g_loss', 'd_updates', 'g_updates', 'w_g0', 'w_d0', 'F_0_0', 'time_s']
    """
    T = check_positive_int(n_components, "n_components")
    return [
        "step", "d_loss", "d_adv", "penalty", "value", "g_loss", "d_updates", "g_updates",
        *(f"w_g{i}" for i in range(T)), *(f"w_d{j}" for j in range(T)),
        *(f"F_{i}_{j}" for i in range(T) for j in range(T)), "time_s",
    ]
