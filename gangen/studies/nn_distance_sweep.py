r"""Study 2, Theorem 3.1: the neural-net distance generalizes, at a rate set by p/m.

Theorem 3.1 (Arora et al. 2017; PAPER.md): for phi bounded in [-Delta, Delta] and
L_phi-Lipschitz and a class F of discriminators with p parameters, L-Lipschitz in them,
with probability >= 1 - exp(-p)

    |d_{F,phi}(mu_hat, nu_hat) - d_{F,phi}(mu, nu)| <= eps   once   m >= c Delta^2 p log(L L_phi / eps) / eps^2,

that is, as a rate, eps = sqrt(c Delta^2 p log(L L_phi / eps) / m) (:func:`gangen.theory.theorem_3_1_epsilon`;
the log argument and the Delta^2 factor are "as we read the paper", the universal c is unknown).
The paper runs no experiment for it; this study is that experiment. Definition 2:

    d_{F,phi}(mu_hat, nu_hat) = sup_{D in F} (1/m) sum_i phi(D(x_i)) + (1/m) sum_j phi(1 - D(y_j)) - 2 phi(1/2).

Setting. Two pairs of distributions in dimension d (default 8), sigma^2 = 1/d:

- ``same``: mu = nu = N(0, I/d). Then d_{F,phi}(mu, nu) = 0 exactly (phi concave: phi(t) + phi(1-t) <=
  2 phi(1/2); D = 1/2 is in F), so the empirical value *is* the gap |d(mu_hat, nu_hat) - d(mu, nu)|.
- ``shift``: mu = N(0, I/d), nu = N(shift e_1, I/d) (default shift 0.5). The population value
  d_{F,phi}(mu, nu) is estimated per (width, phi) by a ``pop`` cell: ``pop_restarts``
  discriminators trained with Adam on minibatches (``pop_batch_size``, ``pop_steps`` steps) of
  ``n_pop_train`` points per side, the best on those evaluated held-out on ``n_pop_eval`` fresh
  points per side (10^6 in the paper preset). That held-out value is an unbiased estimate of
  J(D_hat) <= d_{F,phi}(mu, nu), so the estimate is a lower bound up to its Monte Carlo error
  (recorded); the summary also gives the sup over *all* functions D: R^d -> [0, 1] (TV for
  phi = t, a 1-D quadrature for phi = log), an upper bound.

Discriminators: ReLU MLPs R^d -> [0, 1] with ``depth`` hidden layers of width w and a sigmoid
output (:class:`gangen.nn.families.MLPFamily`), p = ``family.n_params`` (d w + 2w + 1 for one
layer). Both measuring functions of the paper use this bounded class: phi(t) = log(delta + (1 -
delta) t) (Delta = -log delta, L_phi = 1/delta) and phi(t) = t (the IPM sup_D E_mu D - E_nu D with
D in [0, 1]; Delta = L_phi = 1). Each discriminator is trained by the ensemble engine
(:func:`gangen.nn.ensemble.train_ensemble`): Adam, full batch (every step sees all m points of
each side), ``steps`` steps at learning rate ``lr``, ``restarts`` initialisations of which the
best on the training samples is kept. Every value is therefore a *lower bound* on the sup,
attained as well as that budget allows; the budget is in every row of ``results.csv``.

Cells (``results.csv`` metric names):

- ``nn`` cells (width, phi, pair, m, rep), grouped by (width, phi, m) into one ensemble:
  ``nn_train`` = J(D_hat) on the training samples (the estimate of d_{F,phi}(mu_hat, nu_hat)),
  ``nn_heldout`` = J(D_hat) on fresh samples of ``n_heldout`` points per side, ``nn_gap`` =
  nn_train - nn_heldout (the generalization gap of the trained discriminator). The summary adds
  the theorem's quantity ``dev_pop`` = |nn_train - d_{F,phi}(mu, nu)| (= nn_train for ``same``).
- ``pop`` cells (width, phi) for the ``shift`` pair: ``pop_train``, ``pop_heldout`` (the
  population estimate) and ``pop_heldout_se`` (its Monte Carlo standard error).
- ``w1`` cells: exact W1(mu_hat, nu_hat) on the *same* samples as the nn cells of that (pair, m,
  rep), for m <= ``w1_max_m`` (cost ~m^2.5); ``sw`` cells: sliced W1 (``sw_projections`` random
  directions) and ``sw_population``, the exact SW1(mu, nu) over the same directions. Population
  values: 0 for ``same``; for ``shift`` (a translation) W1 = |shift| and SW1 = mean_l |shift theta_l1|
  (-> |shift| Gamma(d/2) / (sqrt(pi) Gamma((d+1)/2)) over all directions). For mu = nu the empirical
  W1 decays like m^(-1/d), the neural-net distance like a power of m independent of d.

Samples are common random numbers: the samples of (pair, m, rep) are the same for every width
and phi (and the w1 / sw cells), drawn from a seed derived from (study seed, pair, m, rep).

Analysis (``summary.json``): for each (pair, phi, p), the least-squares slope of log(value) on
log m over seeds, restricted to m >= ``fit_min_m_over_p`` * p ("m >> p"), with its 95%
t-interval, and a bootstrap interval over seeds (of the log of the seed mean); a slope common to
all p (separate intercepts); the slope of log(value) on log p at ``fixed_m``; the constant c of
Theorem 3.1's shape fitted by least squares in log space over all p and m >> p, and the
smallest c for which the bound covers every seed (``c_envelope``). Reading the slope: the
theorem is an upper bound, sqrt(p/m) up to logs; a fitted slope steeper than -1/2 is consistent
with the bound, not with its tightness. One mechanism for a steeper slope: with mu = nu and a
strictly concave phi (log), J(D) <= 0 falls off quadratically around D = 1/2, so the empirical sup
trades a fluctuation of size ~sqrt(p/m) in each direction against that curvature and comes out
of order p/m (as a likelihood-ratio statistic does); with phi(t) = t, J(D) = 0 for every D, no
curvature, and the sup is the empirical process's full size ~sqrt(p/m).

Run with ``python -m gangen.studies.nn_distance_sweep [--preset tiny|quick|paper]``; see
``--help`` for every field.
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Literal, Optional, Sequence

import numpy as np
import pandas as pd

from gangen._validation import check_nonneg_int, check_open_unit, check_positive_float, check_positive_int
from gangen.distances.measuring import IdentityMeasuring, LogMeasuring, Measuring
from gangen.samplers import Gaussian, shifted_gaussian
from gangen.stats import loglog_fit, pooled_slope
from gangen.studies.runner import Cell, Study, derive_seed, grid, main, make_cell

__all__ = [
    "NNSweepConfig",
    "PAIRS",
    "PHIS",
    "PRESETS",
    "STUDY",
    "all_functions_sup",
    "bound_epsilon",
    "cells",
    "family_for",
    "fit_bound_constant",
    "loglog_fit",
    "measuring_for",
    "plot",
    "pooled_slope",
    "run_group",
    "sliced_w1_shift",
    "summarize",
]

PAIRS = ("same", "shift")
PHIS = ("log", "identity")
NO_WIDTH, NO_PHI = 0, "none"  # placeholders of the w1 / sw cells, which train no discriminator
# budget columns of the w1 / sw rows (no training), so that every column of results.csv keeps one type
NO_TRAINING = {"p": 0, "steps": 0, "lr": 0.0, "restarts": 0, "batch_size": 0, "n_heldout": 0}
# Rows per forward/backward block on a CPU. Fixed here (the engine's plan_chunks tunes it to the cache and may
# change), because the block size sets the float32 summation order and hence the last bits of every result.
ROWS_IN_FLIGHT = 4096
METRIC_LABELS = {
    "nn_train": "J(D_hat) on the m training points per side: the estimate of d_F,phi(mu_hat, nu_hat), a lower bound on the sup",
    "nn_heldout": "J(D_hat) of the same discriminator on n_heldout fresh points per side",
    "nn_gap": "nn_train - nn_heldout: generalization gap of the trained discriminator",
    "dev_pop": "(summary only) |nn_train - d_F,phi(mu, nu)|: Theorem 3.1's quantity; nn_train itself for mu = nu",
    "pop_train": "population cell: J(D_hat) on its n_pop_train training points per side",
    "pop_heldout": "population cell: J(D_hat) on n_pop_eval fresh points per side, the estimate of d_F,phi(mu, nu)",
    "pop_heldout_se": "population cell: Monte Carlo standard error of pop_heldout",
    "w1": "exact W1(mu_hat, nu_hat) on the nn cells' samples (m <= w1_max_m)",
    "sw": "sliced W1(mu_hat, nu_hat) on the nn cells' samples",
}


# --------------------------------------------------------------------------- config


@dataclass(frozen=True)
class NNSweepConfig:
    """Grid, training budget and analysis constants of the Theorem 3.1 sweep (every field is a CLI flag)."""

    d: int = field(default=8, metadata={"help": "dimension d of mu = N(0, I/d)"})
    widths: tuple[int, ...] = field(default=(2, 4, 8, 16), metadata={
        "help": "hidden widths w of the ReLU MLP discriminators (p = d*w + 2*w + 1 for depth 1)"})
    depth: int = field(default=1, metadata={"help": "number of hidden layers (all of width w)"})
    m_values: tuple[int, ...] = field(default=(128, 256, 512, 1024, 2048, 4096), metadata={
        "help": "sample sizes m (points per side)"})
    n_seeds: int = field(default=5, metadata={"help": "independent repetitions (fresh samples and init) per cell"})
    phis: tuple[Literal["log", "identity"], ...] = field(default=PHIS, metadata={
        "help": "measuring functions: log = log(delta + (1-delta) t), identity = t (both with a sigmoid output)"})
    delta: float = field(default=1e-3, metadata={"help": "delta of phi = log(delta + (1-delta) t)"})
    shift: float = field(default=0.5, metadata={"help": "the mu != nu pair: nu = N(shift * e_1, I/d)"})
    steps: int = field(default=1000, metadata={"help": "Adam steps per discriminator (full batch)"})
    lr: float = field(default=0.02, metadata={"help": "Adam learning rate (betas 0.9, 0.999)"})
    restarts: int = field(default=1, metadata={
        "help": "initialisations per (sample, width, phi); the best on the training samples is kept"})
    n_heldout: int = field(default=16384, metadata={"help": "fresh points per side for the held-out value"})
    n_pop_train: int = field(default=16384, metadata={
        "help": "points per side on which the population discriminators (shift pair) are trained"})
    n_pop_eval: int = field(default=131072, metadata={
        "help": "fresh points per side on which they are evaluated (the population estimate)"})
    pop_steps: int = field(default=1000, metadata={"help": "Adam steps of the population discriminators"})
    pop_batch_size: int = field(default=2048, metadata={
        "help": "minibatch (points per side per step) of the population discriminators"})
    pop_restarts: int = field(default=2, metadata={
        "help": "initialisations of the population discriminators; the best on their training sample is kept"})
    w1_max_m: int = field(default=1024, metadata={"help": "exact W1(mu_hat, nu_hat) only for m <= this (cost ~m^2.5)"})
    sw_projections: int = field(default=200, metadata={"help": "directions of the sliced W1"})
    fit_min_m_over_p: float = field(default=4.0, metadata={
        "help": "slopes and c are fitted on m >= this * p (the m >> p regime)"})
    bound_lipschitz: float = field(default=1.0, metadata={
        "help": "L of Theorem 3.1 (F's Lipschitz constant in its parameters) in the log argument log(L L_phi / eps)"})
    fixed_m: Optional[int] = field(default=None, metadata={
        "help": "m of the gap-against-p panel and fit (none = the largest m)"})
    contrast_width: Optional[int] = field(default=None, metadata={
        "help": "width whose neural-net distance is set against W1 and SW in panel (c) (none = the largest)"})
    n_bootstrap: int = field(default=2000, metadata={"help": "bootstrap resamples (over seeds) of each slope"})
    seed: int = field(default=0, metadata={"help": "study seed; cells and samples derive their seeds from it"})

    def __post_init__(self) -> None:
        check_positive_int(self.d, "d")
        for name in ("widths", "m_values", "phis"):
            if not getattr(self, name):
                raise ValueError(f"{name} must hold at least one value")
        for w in self.widths:
            check_positive_int(w, "each of widths")
        if len(set(self.widths)) != len(self.widths):
            raise ValueError(f"widths must be distinct; got {self.widths}")
        check_positive_int(self.depth, "depth")
        for m in self.m_values:
            check_positive_int(m, "each of m_values")
            if m < 2:
                raise ValueError(f"each of m_values must be >= 2; got {m}")
        if len(set(self.m_values)) != len(self.m_values):
            raise ValueError(f"m_values must be distinct; got {self.m_values}")
        check_positive_int(self.n_seeds, "n_seeds")
        bad = [p for p in self.phis if p not in PHIS]
        if bad or len(set(self.phis)) != len(self.phis):
            raise ValueError(f"phis must be distinct names among {PHIS}; got {self.phis}")
        check_open_unit(self.delta, "delta")
        if not math.isfinite(self.shift) or self.shift == 0:
            raise ValueError(f"shift must be finite and non-zero (the mu != nu pair); got {self.shift}")
        check_positive_int(self.steps, "steps")
        check_positive_float(self.lr, "lr")
        check_positive_int(self.restarts, "restarts")
        for name in ("n_heldout", "n_pop_train", "n_pop_eval", "pop_steps", "pop_batch_size", "pop_restarts",
                     "sw_projections", "n_bootstrap"):
            check_positive_int(getattr(self, name), name)
        if self.pop_batch_size > self.n_pop_train:
            raise ValueError(f"pop_batch_size must be <= n_pop_train = {self.n_pop_train}; got {self.pop_batch_size}")
        check_nonneg_int(self.w1_max_m, "w1_max_m")
        check_positive_float(self.fit_min_m_over_p, "fit_min_m_over_p")
        check_positive_float(self.bound_lipschitz, "bound_lipschitz")
        if self.fixed_m is not None and self.fixed_m not in self.m_values:
            raise ValueError(f"fixed_m must be one of m_values {self.m_values} (or none); got {self.fixed_m}")
        if self.contrast_width is not None and self.contrast_width not in self.widths:
            raise ValueError(f"contrast_width must be one of widths {self.widths} (or none); got {self.contrast_width}")
        check_nonneg_int(self.seed, "seed")


# Sizes from timings on the shared 2-core CPU (load 6-9 from other jobs; CPU time in brackets, a proxy for a quiet
# machine): tiny ~15 s [~8 s]; quick 588 cells in ~4 min [~80 s user]; paper ~5x the quick training work.
# Exact W1 costs ~m^2.5 (m = 2048: ~1.6 s a cell, m = 4096: ~11 s), hence w1_max_m.
PRESETS = {
    "tiny": {"d": 4, "widths": (2, 4), "m_values": (64, 128, 256), "n_seeds": 3, "steps": 120, "lr": 0.03,
             "n_heldout": 2048, "n_pop_train": 2048, "n_pop_eval": 8192, "pop_steps": 150, "pop_batch_size": 512,
             "w1_max_m": 256, "sw_projections": 50, "n_bootstrap": 200},
    "quick": {},
    "paper": {"widths": (2, 4, 8, 16, 32), "m_values": tuple(2**k for k in range(7, 14)),  # 128 .. 8192
              "n_seeds": 6, "n_heldout": 65536, "n_pop_train": 65536, "n_pop_eval": 1_000_000, "pop_steps": 2000,
              "pop_batch_size": 4096, "w1_max_m": 2048},
}


# --------------------------------------------------------------------------- building blocks


def family_for(config: NNSweepConfig, width: int) -> "Any":
    """The discriminator class F of one width: ReLU MLP R^d -> [0, 1], ``depth`` hidden layers, sigmoid output.

    >>> family_for(NNSweepConfig(d=8), 4).n_params   # (8*4 + 4) + (4 + 1)
    41
    """
    from gangen.nn.families import MLPFamily

    return MLPFamily(d=config.d, hidden=(int(width),) * config.depth, activation="relu", head="sigmoid")


def measuring_for(config: NNSweepConfig, phi: str) -> Measuring:
    """phi by name: ``log`` -> LogMeasuring(config.delta), ``identity`` -> IdentityMeasuring().

    >>> measuring_for(NNSweepConfig(), "log")
    LogMeasuring(delta=0.001)
    """
    return LogMeasuring(config.delta) if phi == "log" else IdentityMeasuring()


def _pair_distributions(config: NNSweepConfig, pair: str) -> tuple[Gaussian, Gaussian]:
    mu = Gaussian(config.d)
    return mu, (mu if pair == "same" else shifted_gaussian(config.d, config.shift))


def _stream_seeds(seed: int, n: int) -> list[int]:
    return [int(s) for s in np.random.SeedSequence(seed).generate_state(n, dtype=np.uint64) >> np.uint64(1)]


def _samples(config: NNSweepConfig, pair: str, m: int, rep: int | str, n_held: int | None) -> dict[str, np.ndarray]:
    """The samples of (pair, m, rep), identical for every width and phi: x ~ mu, y ~ nu (m each), and
    optionally fresh held-out xh ~ mu, yh ~ nu (n_held each); float64 arrays (n, d)."""
    seed = derive_seed(config.seed, {"pair": pair, "m": int(m), "rep": rep})
    sx, sy, sxh, syh = _stream_seeds(seed, 4)
    mu, nu = _pair_distributions(config, pair)
    out = {"x": mu.sample(m, seed=sx), "y": nu.sample(m, seed=sy)}
    if n_held is not None:
        out["xh"] = mu.sample(n_held, seed=sxh)
        out["yh"] = nu.sample(n_held, seed=syh)
    return out


def _member_seeds(cell_seed: int, restarts: int) -> list[int]:
    return _stream_seeds(cell_seed, restarts)


def _plan(n_members: int, rows_per_member: int, device: str) -> Any:
    """Chunk plan making a member's arithmetic independent of its batch mates.

    On a CPU every member is its own chunk (``ChunkPlan(members=1, ...)``, rows in equal blocks of at
    most ROWS_IN_FLIGHT), trained by one of ``torch.get_num_threads()`` worker threads on one core: a
    cell then gives bit-identical results trained in its group or alone, so a resumed run equals an
    uninterrupted one. (Chunks of several members are faster for small m but differ in the last
    float32 bits, which Adam amplifies to ~1e-3 relative over a run.) On CUDA the engine's own plan
    is used: faster, equal only up to float32 rounding.
    """
    import torch

    from gangen.nn.ensemble import ChunkPlan

    if device != "cpu":
        return None
    n_blocks = -(-rows_per_member // ROWS_IN_FLIGHT)
    rows = -(-rows_per_member // n_blocks)
    return ChunkPlan(members=1, rows=rows, workers=max(1, min(torch.get_num_threads(), n_members)))


@contextlib.contextmanager
def _one_thread_if_single_worker(plan: Any) -> Iterator[None]:
    """With a one-worker CPU plan the engine runs in the calling thread with torch's intra-op threads;
    pin that to one thread, as in the engine's worker threads. Same arithmetic as a member trained in a
    group, and no collapse under CPU oversubscription (measured on the shared 2-core machine: 300 full-batch
    steps of a width-2 MLP on 32768 rows took 60.6 s with 2 intra-op threads and 1.1 s with 1)."""
    import torch

    if plan is None or plan.workers > 1:
        yield
        return
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(n)


def _train_and_evaluate(family: Any, phi: Measuring, data: dict[str, np.ndarray], cell_seeds: Sequence[int], *,
                        steps: int, lr: float, restarts: int, batch_size: int | None,
                        device: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Train ``restarts`` members per sample set k on (x[k], y[k]); keep the best on the training samples.

    data: x, y (K, m, d) and held-out xh, yh (K, n, d), float32. Member r of set k starts from a seed
    derived from (cell_seeds[k], r). Returns train values (K,), held-out values (K,) and parameters
    (K, p) of the kept members.
    """
    from gangen.nn.ensemble import evaluate_ensemble, train_ensemble

    x, y, xh, yh = data["x"], data["y"], data["xh"], data["yh"]
    K, m = x.shape[0], x.shape[1]
    seeds = [s for cs in cell_seeds for s in _member_seeds(cs, restarts)]
    index = np.repeat(np.arange(K), restarts)
    plan = _plan(K * restarts, 2 * (m if batch_size is None else batch_size), device)
    with _one_thread_if_single_worker(plan):
        res = train_ensemble(x, y, family=family, phi=phi, seeds=seeds, steps=steps, lr=lr, batch_size=batch_size,
                             data_index=index, device=device, plan=plan)
    plan = _plan(K * restarts, xh.shape[1] + yh.shape[1], device)
    with _one_thread_if_single_worker(plan):
        held = evaluate_ensemble(res.params, xh, yh, family=family, phi=phi, data_index=index, device=device,
                                 plan=plan)
    train = res.values.reshape(K, restarts)
    best = np.argmax(train, axis=1)  # (K,)
    kept = np.arange(K) * restarts + best
    return train[np.arange(K), best], held.reshape(K, restarts)[np.arange(K), best], res.params[kept]


def _heldout_standard_error(family: Any, phi: Measuring, params: np.ndarray, xh: np.ndarray, yh: np.ndarray, *,
                            chunk: int = 65536) -> tuple[float, float]:
    """(mean, Monte Carlo standard error) of J(D) = mean_i a_i + mean_j b_j on held-out samples xh, yh (n, d),
    a_i = phi(D(x_i)) - phi(1/2), b_j = phi(1 - D(y_j)) - phi(1/2); s.e. = sqrt(var(a)/n_x + var(b)/n_y).
    D is one member (params (p,)) of a sigmoid-output family, evaluated with ``family.logits`` in float64."""
    import torch

    P = torch.from_numpy(np.asarray(params, np.float64)[None])  # (1, p)

    def terms(z: np.ndarray, sign: float) -> np.ndarray:
        out = []
        with torch.no_grad():
            for i in range(0, z.shape[0], chunk):
                o = family.logits(P, torch.from_numpy(np.asarray(z[i:i + chunk], np.float64))[None])[0]  # (c,)
                out.append((phi(torch.sigmoid(sign * o)) - phi.phi_half).numpy())  # 1 - D(y) = sigmoid(-o)
        return np.concatenate(out)

    a, b = terms(xh, 1.0), terms(yh, -1.0)
    return float(a.mean() + b.mean()), float(math.sqrt(a.var(ddof=1) / a.size + b.var(ddof=1) / b.size))


# --------------------------------------------------------------------------- grid and cells


def cells(config: NNSweepConfig) -> list[Cell]:
    """nn cells grouped by (width, phi, m); one pop cell per (width, phi); w1 and sw cells per (pair, m, rep)."""
    reps = range(config.n_seeds)
    out = grid(config.seed, group_by=("measure", "width", "phi", "m"), measure=["nn"], width=config.widths,
               phi=config.phis, pair=PAIRS, m=config.m_values, rep=reps)
    out += grid(config.seed, group_by=("measure", "width", "phi"), measure=["pop"], width=config.widths,
                phi=config.phis, pair=["shift"], m=[config.n_pop_train], rep=[0])
    w1_m = [m for m in config.m_values if m <= config.w1_max_m]
    if w1_m:
        out += grid(config.seed, group_by=("measure", "m"), measure=["w1"], width=[NO_WIDTH], phi=[NO_PHI],
                    pair=PAIRS, m=w1_m, rep=reps)
    out += grid(config.seed, group_by=("measure", "m"), measure=["sw"], width=[NO_WIDTH], phi=[NO_PHI],
                pair=PAIRS, m=config.m_values, rep=reps)
    return out


def _run_nn(cells: list[Cell], config: NNSweepConfig, device: str) -> list[list[dict]]:
    width, phi_name, m = int(cells[0]["width"]), str(cells[0]["phi"]), int(cells[0]["m"])
    assert all((c["width"], c["phi"], c["m"]) == (width, phi_name, m) for c in cells), "nn group must share width, phi, m"
    family, phi = family_for(config, width), measuring_for(config, phi_name)
    data = [_samples(config, str(c["pair"]), m, int(c["rep"]), config.n_heldout) for c in cells]
    stack = {k: np.stack([s[k] for s in data]).astype(np.float32) for k in ("x", "y", "xh", "yh")}  # (K, n, d)
    train, held, _ = _train_and_evaluate(family, phi, stack, [c.seed for c in cells], steps=config.steps,
                                         lr=config.lr, restarts=config.restarts, batch_size=None, device=device)
    # the optimisation budget and the class, in every row
    budget = {"p": family.n_params, "steps": config.steps, "lr": config.lr, "restarts": config.restarts,
              "batch_size": m, "n_heldout": config.n_heldout, "method": "adam"}
    return [[{**budget, "metric": "nn_train", "value": float(t)},
             {**budget, "metric": "nn_heldout", "value": float(h)},
             {**budget, "metric": "nn_gap", "value": float(t - h)}] for t, h in zip(train, held)]


def _run_pop(cell: Cell, config: NNSweepConfig, device: str) -> list[dict]:
    width, phi_name, n = int(cell["width"]), str(cell["phi"]), int(cell["m"])
    family, phi = family_for(config, width), measuring_for(config, phi_name)
    s = _samples(config, "shift", n, "pop", config.n_pop_eval)  # shared by every width and phi
    data = {k: v[None].astype(np.float32) for k, v in s.items()}  # (1, n, d)
    train, held, params = _train_and_evaluate(family, phi, data, [cell.seed], steps=config.pop_steps, lr=config.lr,
                                              restarts=config.pop_restarts, batch_size=config.pop_batch_size,
                                              device=device)
    _, se = _heldout_standard_error(family, phi, params[0], s["xh"], s["yh"])
    budget = {"p": family.n_params, "steps": config.pop_steps, "lr": config.lr, "restarts": config.pop_restarts,
              "batch_size": config.pop_batch_size, "n_heldout": config.n_pop_eval, "method": "adam"}
    return [{**budget, "metric": "pop_train", "value": float(train[0])},
            {**budget, "metric": "pop_heldout", "value": float(held[0])},
            {**budget, "metric": "pop_heldout_se", "value": se}]


def _run_transport(cell: Cell, config: NNSweepConfig) -> list[dict]:
    from gangen.distances.wasserstein import random_directions, sliced_wasserstein, wasserstein

    pair = str(cell["pair"])
    s = _samples(config, pair, int(cell["m"]), int(cell["rep"]), None)
    if cell["measure"] == "w1":
        return [{**NO_TRAINING, "method": "exact", "metric": "w1", "value": wasserstein(s["x"], s["y"])}]
    seed = _stream_seeds(cell.seed, 1)[0]
    L = config.sw_projections
    value = sliced_wasserstein(s["x"], s["y"], n_projections=L, seed=seed)
    # SW1(mu, nu) over the *same* L directions (the ones sliced_wasserstein draws from this seed): each
    # projection of nu is that of mu translated by shift * theta_1, so its W1 is |shift * theta_1|.
    theta = random_directions(config.d, L, seed=seed)  # (d, L)
    population = 0.0 if pair == "same" else float(np.mean(np.abs(config.shift * theta[0])))
    return [{**NO_TRAINING, "method": f"sliced_{L}", "metric": "sw", "value": value},
            {**NO_TRAINING, "method": f"sliced_{L}", "metric": "sw_population", "value": population}]


def run_group(cells: list[Cell], config: NNSweepConfig, device: str) -> list[list[dict]]:
    """Rows of each cell. nn cells of one (width, phi, m) train in one ensemble; others run one by one."""
    out: list[list[dict] | None] = [None] * len(cells)
    nn = [i for i, c in enumerate(cells) if c["measure"] == "nn"]
    by_key: dict[tuple, list[int]] = {}
    for i in nn:
        by_key.setdefault((cells[i]["width"], cells[i]["phi"], cells[i]["m"]), []).append(i)
    for idx in by_key.values():
        for i, rows in zip(idx, _run_nn([cells[i] for i in idx], config, device)):
            out[i] = rows
    for i, c in enumerate(cells):
        if c["measure"] == "pop":
            out[i] = _run_pop(c, config, device)
        elif c["measure"] in ("w1", "sw"):
            out[i] = _run_transport(c, config)
    assert all(rows is not None for rows in out)
    return out  # type: ignore[return-value]


# --------------------------------------------------------------------------- reference values


def all_functions_sup(phi: Measuring, d: int, shift: float) -> float:
    r"""sup over *all* D: R^d -> [0, 1] of E_mu phi(D) + E_nu phi(1 - D) - 2 phi(1/2), mu = N(0, I/d), nu = N(shift e_1, I/d).

    An upper bound on d_{F,phi}(mu, nu) for any class F. The density ratio depends on x_1 only,
    so the sup is a 1-D integral over x_1 with densities f = N(0, 1/d), g = N(shift, 1/d):

    - phi(t) = t: sup = int (f - g)_+ = TV = 2 Phi(|shift| sqrt(d) / 2) - 1.
    - phi(t) = log(delta + (1 - delta) t): pointwise maximiser t* = clip((f - delta g) / ((1 - delta)(f + g)), 0, 1)
      (stationarity of f phi(t) + g phi(1 - t)), integrated by quadrature.

    >>> round(all_functions_sup(IdentityMeasuring(), 1, 2.0), 6)   # TV of N(0,1), N(2,1) = 2 Phi(1) - 1
    0.682689
    """
    from scipy import integrate, stats

    sigma = 1.0 / math.sqrt(d)
    if isinstance(phi, IdentityMeasuring):
        return float(2.0 * stats.norm.cdf(abs(shift) / (2.0 * sigma)) - 1.0)
    delta = phi.delta

    def integrand(x: float) -> float:
        f, g = stats.norm.pdf(x, 0.0, sigma), stats.norm.pdf(x, shift, sigma)
        if f + g == 0.0:
            return 0.0
        t = min(max((f - delta * g) / ((1.0 - delta) * (f + g)), 0.0), 1.0)
        return f * float(phi(t)) + g * float(phi(1.0 - t))

    lo, hi = min(0.0, shift) - 12 * sigma, max(0.0, shift) + 12 * sigma
    value, _ = integrate.quad(integrand, lo, hi, points=[0.0, shift / 2, shift], limit=200, epsabs=1e-12)
    return float(value - 2.0 * phi.phi_half)


def sliced_w1_shift(d: int, shift: float) -> float:
    r"""SW1 between N(0, s^2 I) and its translate by shift e_1: |shift| E|theta_1|, theta uniform on S^{d-1}.

    E|theta_1| = Gamma(d/2) / (sqrt(pi) Gamma((d+1)/2)); each projection is a 1-D translate by shift theta_1.

    >>> sliced_w1_shift(1, 2.0)   # d = 1: theta = +-1
    2.0
    """
    return abs(shift) * math.exp(math.lgamma(d / 2) - math.lgamma((d + 1) / 2)) / math.sqrt(math.pi)


# --------------------------------------------------------------------------- fits


def _bootstrap_slope(x: np.ndarray, y: np.ndarray, n_boot: int, seed: int) -> list[float] | None:
    """95% percentile interval of the slope of log(mean y) on log x, resampling the seeds at each x."""
    xs = np.unique(x)
    if xs.size < 2:
        return None
    rng = np.random.default_rng(seed)
    means = np.empty((n_boot, xs.size))
    for j, xv in enumerate(xs):
        v = y[x == xv]
        means[:, j] = v[rng.integers(0, v.size, size=(n_boot, v.size))].mean(axis=1)
    ok = np.all(means > 0, axis=1)
    if ok.sum() < max(10, n_boot // 2):
        return None
    lx = np.log(xs) - np.log(xs).mean()
    slopes = (np.log(means[ok]) - np.log(means[ok]).mean(axis=1, keepdims=True)) @ lx / (lx @ lx)
    return [float(np.quantile(slopes, 0.025)), float(np.quantile(slopes, 0.975))]


def bound_epsilon(m: Any, p: Any, *, c: float, phi: Measuring, lipschitz: float = 1.0) -> np.ndarray:
    r"""Theorem 3.1's eps(m, p), vectorised: the root of eps^2 = c Delta^2 p log(L L_phi / eps) / m.

    Delta = ``phi.range``, L_phi = ``phi.lipschitz``, L = ``lipschitz``; the same equation as
    :func:`gangen.theory.theorem_3_1_epsilon` (which solves it one point at a time), solved here by
    bisection in u = log eps on (log(L L_phi) - 200, log(L L_phi)), where 2u - log(c Delta^2 p / m) -
    log(log(L L_phi) - u) increases from negative to +inf. m, p broadcast; returns float64 eps.

    >>> from gangen.theory import theorem_3_1_epsilon
    >>> eps = bound_epsilon([1e3, 1e5], 50, c=0.1, phi=IdentityMeasuring(), lipschitz=3.0)
    >>> ref = [theorem_3_1_epsilon(m, 50, c=0.1, lipschitz=3.0) for m in (1e3, 1e5)]
    >>> bool(np.allclose(eps, ref, rtol=1e-10, atol=0))
    True
    """
    m, p = np.broadcast_arrays(np.asarray(m, float), np.asarray(p, float))
    log_top = math.log(lipschitz * phi.lipschitz)
    log_k = np.log(c * phi.range**2 * p / m)
    lo, hi = np.full(m.shape, log_top - 200.0), np.full(m.shape, log_top)
    for _ in range(64):  # interval 200 / 2^64 ~ 1e-17
        mid = 0.5 * (lo + hi)
        pos = 2.0 * mid - log_k - np.log(log_top - mid) > 0
        hi, lo = np.where(pos, mid, hi), np.where(pos, lo, mid)
    return np.exp(0.5 * (lo + hi))


def fit_bound_constant(m: Sequence[float], p: Sequence[float], gap: Sequence[float], *, phi: Measuring,
                       lipschitz: float = 1.0) -> dict:
    r"""Fit c in Theorem 3.1's shape eps(m, p) = sqrt(c Delta^2 p log(L L_phi / eps) / m) to measured gaps.

    Least squares in log space, min_c sum_i (log gap_i - log eps(m_i, p_i; c))^2, over points with
    0 < gap_i < L L_phi (Delta = ``phi.range``, L_phi = ``phi.lipschitz``, L = ``lipschitz``).
    Also returns ``c_envelope``, the smallest c with eps(m_i, p_i; c) >= gap_i at every point (from
    c_i = m_i gap_i^2 / (Delta^2 p_i log(L L_phi / gap_i))), and the rms log residual of the fit.

    >>> from gangen.theory import theorem_3_1_epsilon
    >>> phi = IdentityMeasuring()
    >>> ms, ps = [1e3, 1e4, 1e3], [10, 10, 40]
    >>> gaps = [theorem_3_1_epsilon(m, p, c=0.02, lipschitz=5.0) for m, p in zip(ms, ps)]
    >>> round(fit_bound_constant(ms, ps, gaps, phi=phi, lipschitz=5.0)["c"], 6)
    0.02
    """
    from scipy import optimize

    m, p, g = (np.asarray(v, float) for v in (m, p, gap))
    top = lipschitz * phi.lipschitz
    keep = (g > 0) & (g < top)
    out: dict = {"c": None, "c_envelope": None, "rms_log_residual": None, "n": int(keep.sum()),
                 "n_excluded": int((~keep).sum()), "delta_range": phi.range, "lipschitz_phi": phi.lipschitz,
                 "lipschitz": lipschitz, "log_argument": "L * L_phi / eps"}
    if not keep.any():
        return out
    m, p, g = m[keep], p[keep], g[keep]
    c_i = m * g**2 / (phi.range**2 * p * np.log(top / g))
    out["c_envelope"] = float(c_i.max())
    lg = np.log(g)

    def loss(log_c: float) -> float:
        pred = np.log(bound_epsilon(m, p, c=math.exp(log_c), phi=phi, lipschitz=lipschitz))
        return float(np.sum((lg - pred) ** 2))

    start = float(np.log(np.median(c_i)))
    res = optimize.minimize_scalar(loss, bracket=(start - 1.0, start + 1.0), tol=1e-10)
    out["c"] = float(math.exp(res.x))
    out["rms_log_residual"] = float(math.sqrt(res.fun / g.size))
    return out


# --------------------------------------------------------------------------- summary


def _nn_table(table: pd.DataFrame) -> pd.DataFrame:
    """nn rows as one row per (width, phi, pair, m, rep): columns p, nn_train, nn_heldout, nn_gap, dev_pop."""
    nn = table[table["measure"] == "nn"]
    wide = nn.pivot_table(index=["width", "phi", "pair", "m", "rep", "p"], columns="metric", values="value",
                          aggfunc="first").reset_index()
    pop = _population(table)
    ref = wide.apply(lambda r: 0.0 if r["pair"] == "same" else pop.get((int(r["width"]), r["phi"]), np.nan), axis=1)
    wide["dev_pop"] = (wide["nn_train"] - ref).abs()
    return wide


def _transport_deviation(table: pd.DataFrame, config: NNSweepConfig, pair: str, metric: str) -> pd.DataFrame:
    """Rows (m, rep, value, dev) of ``w1`` or ``sw`` for one pair; dev = |value - population| (= value for mu = nu)."""
    part = table[(table["measure"] == metric) & (table["pair"] == pair) & (table["metric"] == metric)]
    part = part[["m", "rep", "value"]].reset_index(drop=True)
    if pair == "same":
        return part.assign(dev=part["value"])
    if metric == "w1":
        ref = np.full(len(part), abs(config.shift))
    else:
        pop = table[(table["measure"] == "sw") & (table["pair"] == pair) & (table["metric"] == "sw_population")]
        ref = part.merge(pop[["m", "rep", "value"]], on=["m", "rep"], how="left", suffixes=("", "_pop"))["value_pop"]
    return part.assign(dev=(part["value"] - np.asarray(ref, float)).abs())


def _population(table: pd.DataFrame) -> dict[tuple[int, str], float]:
    pop = table[(table["measure"] == "pop") & (table["metric"] == "pop_heldout")]
    return {(int(r.width), str(r.phi)): float(r.value) for r in pop.itertuples()}


def _fits_for(rows: pd.DataFrame, metric: str, config: NNSweepConfig, phi: Measuring, fixed_m: int) -> dict:
    """Slopes in m per p, pooled slope, slope in p at fixed m, and the bound constant, for one (pair, phi)."""
    per_p, sel = {}, []
    for p, part in rows.groupby("p"):
        big = part[part["m"] >= config.fit_min_m_over_p * p]
        fit = loglog_fit(big["m"], big[metric])
        boot = _bootstrap_slope(big["m"].to_numpy(float), big[metric].to_numpy(float), config.n_bootstrap,
                                config.seed) if len(big) else None
        fit.update(m_used=sorted(int(v) for v in big["m"].unique()), bootstrap_ci95=boot,
                   consistent_with_minus_half=None if fit["ci95"] is None
                   else bool(fit["ci95"][0] <= -0.5 <= fit["ci95"][1]),
                   mean_by_m={str(int(m)): float(v) for m, v in part.groupby("m")[metric].mean().items()})
        per_p[str(int(p))] = fit
        sel.append(big)
    big = pd.concat(sel) if sel else rows.iloc[:0]
    pooled = pooled_slope(big["m"], big[metric], big["p"])
    if pooled["ci95"] is not None:
        pooled["consistent_with_minus_half"] = bool(pooled["ci95"][0] <= -0.5 <= pooled["ci95"][1])
    at_m = rows[rows["m"] == fixed_m]
    vs_p = loglog_fit(at_m["p"], at_m[metric])
    vs_p.update(m=int(fixed_m), m_over_p_min=float(fixed_m / at_m["p"].max()) if len(at_m) else None,
                consistent_with_plus_half=None if vs_p["ci95"] is None
                else bool(vs_p["ci95"][0] <= 0.5 <= vs_p["ci95"][1]))
    bound = fit_bound_constant(big["m"], big["p"], big[metric], phi=phi, lipschitz=config.bound_lipschitz)
    return {"per_p": per_p, "pooled": pooled, "vs_p_at_fixed_m": vs_p, "bound": bound}


def _resolved_fixed_m(config: NNSweepConfig, table: pd.DataFrame) -> int:
    return int(config.fixed_m) if config.fixed_m is not None else int(table.loc[table["measure"] == "nn", "m"].max())


def _resolved_contrast_width(config: NNSweepConfig) -> int:
    return int(config.contrast_width) if config.contrast_width is not None else int(max(config.widths))


def _fmt_ci(fit: dict) -> str:
    if fit.get("slope") is None:
        return "n/a"
    lo, hi = fit["ci95"]
    return f"{fit['slope']:+.2f} [{lo:+.2f}, {hi:+.2f}]"


def _verdict(summary: dict, config: NNSweepConfig) -> list[str]:
    lines = []
    crit = f"m >= {config.fit_min_m_over_p:g} p"
    for phi, entry in summary["fits"]["same"].items():
        dev = entry["dev_pop"]
        per_p = ", ".join(f"p = {p}: {_fmt_ci(f)}" for p, f in dev["per_p"].items())
        pooled = dev["pooled"]
        c = dev["bound"]["c"]
        text = (f"mu = nu, phi = {phi}: slope of d_F(mu_hat, nu_hat) (= the gap) against m over {crit}: {per_p}; "
                f"common slope {_fmt_ci(pooled)}")
        if pooled.get("slope") is not None:
            text += (" - consistent with -1/2" if pooled["consistent_with_minus_half"] else
                     (" - steeper than -1/2: faster than the theorem's rate, which is an upper bound"
                      if pooled["ci95"][1] < -0.5 else " - shallower than -1/2: slower than the theorem's rate"))
        vp = dev["vs_p_at_fixed_m"]
        if vp.get("slope") is not None:
            text += (f"; slope against p at m = {vp['m']}: {_fmt_ci(vp)} ("
                     + ("consistent with" if vp["consistent_with_plus_half"] else "not") + " the bound's +1/2)")
        if c is not None:
            text += (f"; fitted c = {c:.3g} (rms log residual {dev['bound']['rms_log_residual']:.2f}), "
                     f"envelope c = {dev['bound']['c_envelope']:.3g}")
        lines.append(text + ".")
    for phi, entry in summary["fits"].get("shift", {}).items():
        dev, gap = entry["dev_pop"], entry["gap"]
        lines.append(f"mu != nu (shift {config.shift:g}), phi = {phi}: common slope of |d_F(mu_hat, nu_hat) - "
                     f"d_F(mu, nu)| against m: {_fmt_ci(dev['pooled'])}; of the trained discriminator's gap "
                     f"(train - held-out): {_fmt_ci(gap['pooled'])}.")
    tr = summary["transport"].get("same", {})
    if tr:
        lines.append(f"mu = nu: W1(mu_hat, nu_hat) slope {_fmt_ci(tr.get('w1', {}))} (m^(-1/d) = m^({-1 / config.d:.3f}) "
                     f"asymptotically), sliced W1 slope {_fmt_ci(tr.get('sw', {}))} (m^(-1/2)): W1 between "
                     "samples shrinks far more slowly than the neural-net distance.")
    pop = summary["population"]
    for phi, per_w in pop["estimate"].items():
        vals = [v for v in per_w.values() if v is not None]
        if vals:
            sup = pop["all_functions_sup"][phi]
            ses = [se for se in pop["estimate_se"].get(phi, {}).values() if se is not None]
            text = (f"Population (shift pair), phi = {phi}: estimates {min(vals):.4f}-{max(vals):.4f} across widths "
                    f"(held-out on {config.n_pop_eval} points per side")
            if ses:
                z = max((v - sup) / se for v, se in zip(per_w.values(), pop["estimate_se"][phi].values())
                        if v is not None and se)
                text += f", Monte Carlo s.e. <= {max(ses):.1g}; largest excess over the sup {z:+.1f} s.e."
            lines.append(text + f") against the sup over all functions {sup:.4f}, an upper bound.")
    lines.append(f"Budget: Adam, full batch, {config.steps} steps, lr {config.lr:g}, {config.restarts} restart(s); every "
                 "d_F value is a lower bound on the sup, so measured gaps can fall short of the true ones where "
                 "training has not converged (small m / large p first).")
    return lines


def summarize(table: pd.DataFrame, config: NNSweepConfig) -> dict:
    """Slopes (per p, pooled, in p), bound constants, transport slopes, population values and a verdict."""
    wide = _nn_table(table)
    fixed_m = _resolved_fixed_m(config, table)
    widths = sorted(int(w) for w in wide["width"].unique())
    summary: dict = {
        "setting": {
            "d": config.d, "shift": config.shift, "p_by_width": {str(w): family_for(config, w).n_params for w in widths},
            "discriminator": f"ReLU MLP, {config.depth} hidden layer(s), sigmoid output",
            "phis": list(config.phis), "delta": config.delta, "steps": config.steps, "lr": config.lr,
            "restarts": config.restarts, "batch": "full", "optimizer": "adam (0.9, 0.999)",
            "n_heldout": config.n_heldout, "n_seeds": config.n_seeds, "n_pop_train": config.n_pop_train,
            "n_pop_eval": config.n_pop_eval, "pop_steps": config.pop_steps, "pop_batch_size": config.pop_batch_size,
            "pop_restarts": config.pop_restarts,
            "fit_criterion": f"m >= {config.fit_min_m_over_p:g} * p", "fixed_m": fixed_m,
            "bound": "eps = sqrt(c * Delta^2 * p * log(L * L_phi / eps) / m), Delta = phi range, L_phi = phi Lipschitz",
        },
        "metrics": METRIC_LABELS,
        "fits": {},
        "transport": {},
    }
    for pair in PAIRS:
        for phi_name in config.phis:
            rows = wide[(wide["pair"] == pair) & (wide["phi"] == phi_name)]
            if not len(rows):
                continue
            phi = measuring_for(config, phi_name)
            entry = {"dev_pop": _fits_for(rows, "dev_pop", config, phi, fixed_m),
                     "gap": _fits_for(rows.rename(columns={"nn_gap": "gap"}), "gap", config, phi, fixed_m)}
            summary["fits"].setdefault(pair, {})[phi_name] = entry
    for pair in PAIRS:
        for metric in ("w1", "sw"):
            part = _transport_deviation(table, config, pair, metric)
            fit = loglog_fit(part["m"], part["dev"])
            fit["mean_by_m"] = {str(int(m)): float(v) for m, v in part.groupby("m")["dev"].mean().items()}
            summary["transport"].setdefault(pair, {})[metric] = fit
    summary["transport"]["population"] = {
        "same": 0.0, "w1_shift": abs(config.shift), "sw_shift": sliced_w1_shift(config.d, config.shift),
        "note": "shift pair: deviations from W1 = |shift| (exact) and from SW1 over the same directions (exact)"}
    pop = _population(table)
    def pop_metric(metric: str) -> dict:
        rows = table[(table["measure"] == "pop") & (table["metric"] == metric)]
        return {phi: {str(int(r.width)): float(r.value) for r in rows[rows["phi"] == phi].itertuples()}
                for phi in config.phis}

    summary["population"] = {
        "estimate": {phi: {str(w): pop.get((w, phi)) for w in widths} for phi in config.phis},
        "estimate_se": pop_metric("pop_heldout_se"),
        "train_value": pop_metric("pop_train"),
        "all_functions_sup": {phi: all_functions_sup(measuring_for(config, phi), config.d, config.shift)
                              for phi in config.phis},
    }
    summary["verdict"] = _verdict(summary, config)
    return summary


# --------------------------------------------------------------------------- figure

PHI_TEX = {"log": r"$\phi(t)=\log(\delta+(1-\delta)t)$", "identity": r"$\phi(t)=t$"}


def _band(ax: Any, x: Any, y: Any, **kw: Any) -> Any:
    """Geometric mean and 95% band over seeds when every value is positive, else arithmetic mean."""
    from gangen.plotting import plot_band

    y = np.asarray(y, float)
    return plot_band(ax, x, y, log=bool(np.all(y > 0)), **kw)


def _log_ticks(ax: Any, *, x_values: Sequence[float] | None = None) -> None:
    """Plain-number ticks on log axes (1, 2, 5 per decade, minor labels off); ``x_values``: ticks at exactly these x."""
    from matplotlib.ticker import FixedLocator, FuncFormatter, LogLocator, NullFormatter

    fmt = FuncFormatter(lambda v, _: f"{v:g}")
    lo, hi = ax.get_ylim()
    subs = (1.0, 2.0, 5.0) if lo > 0 and hi / lo < 300 else (1.0,)  # 1-2-5 ticks unless > 2.5 decades
    for axis, values in ((ax.xaxis, x_values), (ax.yaxis, None)):
        if values is not None:
            axis.set_major_locator(FixedLocator(sorted(values)))
        else:
            axis.set_major_locator(LogLocator(base=10, subs=subs))
        axis.set_major_formatter(fmt)
        axis.set_minor_formatter(NullFormatter())


def _end_labels(ax: Any, items: list[tuple[float, str, str]], x: float, *, min_gap: float = 0.06) -> None:
    """Text labels (y, text, colour) at x on a log-y axis, nudged apart to at least ``min_gap`` of the axis height."""
    lo, hi = (math.log10(v) for v in ax.get_ylim())
    gap = min_gap * (hi - lo)
    items = sorted((math.log10(y), t, c) for y, t, c in items if y > 0)
    ys = [y for y, _, _ in items]
    for i in range(1, len(ys)):  # push up
        ys[i] = max(ys[i], ys[i - 1] + gap)
    if ys and ys[-1] > hi - gap / 2:  # then down from the top if needed
        ys[-1] = hi - gap / 2
        for i in range(len(ys) - 2, -1, -1):
            ys[i] = min(ys[i], ys[i + 1] - gap)
    for y, (_, text, color) in zip(ys, items):
        ax.text(x, 10**y, text, color=color, fontsize=6, va="center", ha="left")


def _tex_number(v: float) -> str:
    r"""2 significant digits, scientific notation as a x 10^k in TeX.

    >>> _tex_number(3.1e-05), _tex_number(0.37)
    ('3.1\\times10^{-5}', '0.37')
    """
    text = f"{v:.2g}"
    if "e" not in text:
        return text
    mant, exp = text.split("e")
    return f"{mant}\\times10^{{{int(exp)}}}"


def _slope_text(slope: float | None) -> str:
    return "" if slope is None else f"{slope:+.2f}".replace("-", "\u2212")


def plot(table: pd.DataFrame, config: NNSweepConfig, summary: dict, fig_dir: Path) -> list[Path]:
    """Rows phi = log, t. (a) d_F(mu_hat, nu_hat) against m per p with the fitted bound (mu = nu); (b) against p
    at fixed m; (c) d_F against W1 and SW on the same m axis: mu = nu (top), |estimate - population| for mu != nu.
    Numbers at the right end of curves are fitted log-log slopes (in (a) over m >= fit_min_m_over_p * p)."""
    from matplotlib.lines import Line2D

    from gangen.plotting import PALETTE, new_panels, paper_style, save_figure, series_colors

    wide = _nn_table(table)
    ps = sorted(int(p) for p in wide["p"].unique())
    colors = series_colors(ps)
    fixed_m = _resolved_fixed_m(config, table)
    cw = _resolved_contrast_width(config)
    cp = family_for(config, cw).n_params
    phis = [p for p in config.phis if p in set(wide["phi"])]
    m_all = sorted(int(m) for m in wide["m"].unique())
    m_ticks = m_all if len(m_all) <= 6 else m_all[::2]
    m_grid = np.geomspace(m_all[0], m_all[-1], 40)
    x_right = m_all[-1] * (m_all[-1] / m_all[0]) ** 0.2  # room for the slope labels
    x_text = m_all[-1] * (m_all[-1] / m_all[0]) ** 0.03
    with paper_style():
        fig, axes = new_panels(len(phis), 3, width="double", panel_aspect=0.8)
        axes = axes.reshape(len(phis), 3)
        for r, phi_name in enumerate(phis):
            phi = measuring_for(config, phi_name)
            same = wide[(wide["pair"] == "same") & (wide["phi"] == phi_name)]
            fits = summary["fits"]["same"][phi_name]["dev_pop"]
            c = fits["bound"]["c"]

            # (a) against m, one curve per p
            ax = axes[r, 0]
            labels = []
            for p in ps:
                part = same[same["p"] == p]
                band = _band(ax, part["m"], part["dev_pop"], color=colors[p], alpha=0.18)
                small = band.x < config.fit_min_m_over_p * p
                ax.plot(band.x[small], band.center[small], linestyle="none", marker="o", markerfacecolor="white",
                        markeredgecolor=colors[p], zorder=3)
                if c is not None:
                    ax.plot(m_grid, bound_epsilon(m_grid, p, c=c, phi=phi, lipschitz=config.bound_lipschitz),
                            color=colors[p], linestyle="--", linewidth=0.8, alpha=0.9)
                labels.append((band.center[-1], _slope_text(fits["per_p"].get(str(p), {}).get("slope")), colors[p]))
            ax.set(xscale="log", yscale="log", xlim=(m_all[0] / 1.15, x_right), xlabel="sample size $m$",
                   ylabel=r"$d_{F,\phi}(\hat\mu,\hat\nu)$ ($\mu=\nu$: the gap)")
            _log_ticks(ax, x_values=m_ticks)
            _end_labels(ax, labels, x_text)
            ax.set_title(f"(a{r + 1}) gap against $m$, " + PHI_TEX[phi_name]
                         + (f", $c={_tex_number(c)}$" if c is not None else ""), fontsize=7.5)

            # (b) against p at fixed m
            ax = axes[r, 1]
            at = same[same["m"] == fixed_m]
            vp = fits["vs_p_at_fixed_m"]
            _band(ax, at["p"], at["dev_pop"], color="black", alpha=0.15,
                  label="geometric mean" + (f", slope {_slope_text(vp['slope'])}" if vp.get("slope") is not None else ""))
            for p in ps:
                vals = at.loc[at["p"] == p, "dev_pop"]
                ax.plot([p] * len(vals), vals, linestyle="none", marker=".", color=colors[p], alpha=0.7, zorder=3)
            if c is not None:
                p_grid = np.geomspace(min(ps), max(ps), 40)
                ax.plot(p_grid, bound_epsilon(fixed_m, p_grid, c=c, phi=phi, lipschitz=config.bound_lipschitz),
                        color="0.3", linestyle="--", linewidth=0.8, label="Thm 3.1 shape, fitted $c$")
            ax.set(xscale="log", yscale="log", xlabel="parameters $p$ of the discriminator",
                   ylabel=r"$d_{F,\phi}(\hat\mu,\hat\nu)$, $\mu=\nu$")
            _log_ticks(ax, x_values=ps)
            ax.set_title(f"(b{r + 1}) gap against $p$ at $m={fixed_m}$", fontsize=7.5)
            ax.legend(loc="upper left", fontsize=6)

        # (c) the contrast with W1 and SW; top: mu = nu values; bottom: mu != nu deviations from the population.
        series = [("log", "black", "o", "-", r"$d_{F,\log}$"), ("identity", "0.5", "s", "-", r"$d_{F,t}$"),
                  ("w1", PALETTE[1], "^", "--", "$W_1$"), ("sw", PALETTE[0], "D", "--", "sliced $W_1$")]
        c_handles: list = []
        for r, pair in enumerate(PAIRS[: len(phis)]):
            ax = axes[r, 2]
            labels = []
            for key, col, mk, ls, name in series:
                if key in ("w1", "sw"):
                    part = _transport_deviation(table, config, pair, key)
                    x, y = part["m"], part["dev"]
                    slope = summary["transport"].get(pair, {}).get(key, {}).get("slope")
                else:
                    if key not in phis:
                        continue
                    part = wide[(wide["pair"] == pair) & (wide["phi"] == key) & (wide["width"] == cw)]
                    x, y = part["m"], part["dev_pop"]
                    slope = summary["fits"][pair][key]["dev_pop"]["per_p"].get(str(cp), {}).get("slope")
                    name = f"{name} ($p={cp}$)"
                if not len(part):
                    continue
                band = _band(ax, x, y, color=col, marker=mk, linestyle=ls, alpha=0.15)
                labels.append((band.x[-1], band.center[-1], _slope_text(slope), col))
                if r == 0:
                    c_handles.append(Line2D([], [], color=col, marker=mk, linestyle=ls, label=name))
            ax.set(xscale="log", yscale="log", xlim=(m_all[0] / 1.15, x_right), xlabel="sample size $m$")
            _log_ticks(ax, x_values=m_ticks)
            for x_end in sorted({lab[0] for lab in labels}):  # label each curve at its own last point
                _end_labels(ax, [lab[1:] for lab in labels if lab[0] == x_end], x_end * x_text / m_all[-1])
            if pair == "same":
                ax.set_ylabel(r"value on $(\hat\mu,\hat\nu)$; population: 0")
                ax.set_title(r"(c1) $\mu=\nu$: neural-net distance vs $W_1$, SW", fontsize=7.5)
            else:
                ax.set_ylabel(r"$|$value on $(\hat\mu,\hat\nu)$ $-$ population$|$")
                ax.set_title(f"(c2) $\\nu=\\mu+{config.shift:g}e_1$: error against population", fontsize=7.5)

        # one legend for the figure: row 1 the p colours and the bound of (a, b), row 2 the series of (c)
        row1 = [Line2D([], [], color=colors[p], marker="o", label=f"$p={p}$") for p in ps]
        row1 += [Line2D([], [], color="0.3", linestyle="--", linewidth=0.8,
                        label=r"Thm 3.1: $\sqrt{c\Delta^2 p\log(LL_\phi/\epsilon)/m}$, $c$ fitted"),
                 Line2D([], [], color="0.3", marker="o", markerfacecolor="white", linestyle="none",
                        label=f"$m<{config.fit_min_m_over_p:g}p$ (not fitted)")]
        blank = Line2D([], [], linestyle="none", label=" ")
        note = Line2D([], [], linestyle="none",
                      label=f"numbers: log-log slopes ($d_F$ over $m\\geq{config.fit_min_m_over_p:g}p$)")
        row2 = c_handles + [blank] * max(0, len(row1) - 2 - len(c_handles)) + [note]  # note under the bound entry
        ncol = max(len(row1), len(row2))
        row1 += [blank] * (ncol - len(row1))
        row2 += [blank] * (ncol - len(row2))
        handles = [h for pair_ in zip(row1, row2) for h in pair_]  # legend fills column by column
        fig.legend(handles=handles, loc="outside upper center", ncol=ncol, fontsize=6.5, handlelength=1.6,
                   columnspacing=1.0)
        return list(save_figure(fig, fig_dir / "nn_distance_sweep"))


STUDY = Study(
    name="nn_distance_sweep",
    config_cls=NNSweepConfig,
    cells=cells,
    run_group=run_group,
    summarize=summarize,
    plot=plot,
    presets=PRESETS,
    version="2",
    cache_ignore=("widths", "m_values", "n_seeds", "phis", "n_pop_train", "w1_max_m", "fit_min_m_over_p",
                  "bound_lipschitz", "fixed_m", "contrast_width", "n_bootstrap"),
    description=__doc__.split("\n\n")[0],
    engine=True,
)

if __name__ == "__main__":
    main(STUDY)
