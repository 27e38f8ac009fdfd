r"""Study 3, Corollary 3.2: a discriminator with p parameters cannot tell μ from a memorizer of ~p/ε² points.

Corollary 3.2 (Arora et al. 2017): for μ̂ the empirical distribution of s samples of μ,
with probability >= 1 - exp(-p),

    d_{F,φ}(μ, μ̂) <= ε        as soon as        s >= c·p·log(·)/ε²,

so a net with p parameters cannot detect that a generator's support has only Õ(p/ε²)
points, even given many more samples of μ than that. This study measures the smallest
such support, s*(p), and compares it with the prediction "roughly linear in p".

Setting. μ = N(0, I/d); the generator is ``Memorizer(μ, s)`` (uniform on s points drawn
once from μ) for log-spaced supports s, plus a *sampler* of μ itself (``generator = mu``,
stored with s = 0) as the reference. The discriminators are ``MLPFamily(d, hidden=(w,)*L,
activation, head="sigmoid")`` for several widths w (p = ``n_params``) and φ(t) =
log(δ + (1 - δ)t) (``phi = "identity"``: φ(t) = t, the IPM). Per cell (w, n, generator,
s, rep) one discriminator (or the best of ``restarts`` by training value) is trained by
the ensemble engine (:func:`gangen.nn.ensemble.train_ensemble`, Adam, minibatches of
``batch_size`` rows per side, full batch when n <= batch_size) to maximise

    J(D) = (1/n)Σ_i φ(D(x_i)) + (1/n)Σ_j φ(1 - D(y_j)) - 2φ(1/2)

on n fresh samples x_i ~ μ and n samples y_j of the generator, then evaluated, without
retraining (:func:`gangen.nn.ensemble.evaluate_ensemble`), on ``n_eval`` *held-out*
samples of each side: ``nn_heldout`` (also ``nn_train``, its value on the training
samples). The held-out value is an unbiased estimate of the trained D's population
objective, hence (up to its sampling error) a *lower bound* on d_F(μ, G): a better
optimiser could only find a larger value, so every s* below is a lower bound on the
s*(p) of the sup over F. Its maximum is J_max = -2φ(1/2) = 2 log(2/(1 + δ)) (1 for φ(t) = t).

All discriminators of one (w, n) train in one ensemble call. On the CPU the study hands
the engine one member per chunk (:class:`gangen.nn.ensemble.ChunkPlan`), so each member's
float32 arithmetic is the same whatever else shares the call: a cell gives bit-identical
rows in its group and alone (``check_group_independent`` passes with exact equality). On
CUDA the engine's own plan is used and the equality holds up to float32 rounding.

Repetition ``rep`` fixes the memorizer's support and the data: cells of every width share
them (paired comparisons across p), and the real samples are shared across s.

Measurements (``metric`` in ``results.csv``):

- ``nn_heldout``, ``nn_train`` (part ``nn``): above, with the budget (``p``, ``steps``,
  ``lr``, ``batch_size``, ``restarts``, ``n_eval``) in extra columns.
- ``nn_lower``, ``nn_lower_se`` (part ``support``, one per memorizer): the mean distance from
  ``n_nn`` fresh x ~ μ to the nearest atom, an unbiased Monte Carlo estimate of a lower
  bound on W1(μ, memorizer) (every coupling moves x to some atom; as in study 1).
- ``w1_ref`` (s <= ``w1_max_s``): exact W1 between ``n_ref`` fresh points of μ and the s
  atoms (uniform weights), an upward-biased estimate of W1(μ, memorizer).
- ``birthday_*``: :func:`gangen.metrics.birthday.birthday_support` on the memorizer with
  threshold 0 (exact duplicates): the estimated support s(s-1)/(2 log 2) at the batch size
  s_1/2 where half the batches repeat an atom, its crude s_1/2², the MLE, the uniform-model
  95% bounds, and ``birthday_found``. It validates s and gives "estimated support against
  discriminator size": the birthday estimate of the memorizer at s*(p).

Summary (``summary.json``). For each width and n, the held-out curve v(s) (mean over reps)
and s*(p) at ``eps``: ``s_star_grid``, the smallest tested s with v(s) < eps, and
``s_star``, the crossing interpolated linearly in log s between the two grid points around
it (None when v < eps already at the smallest s, or never). The exponent b of
s* ∝ p^b at the largest n by least squares on log-log axes, with a t-interval and a
bootstrap interval over reps; Corollary 3.2 predicts b ≈ 1 (linear up to logs). The same
for each ε of ``eps_scan``, and per width the exponent c of s* ∝ ε^c. The corollary's
sufficient support scales as ε^-2; with φ = log we expect c ≈ -1 instead (our reading:
near D = 1/2 the log objective is second order in the difference of the distributions,
max_t (a t - b t²) = a²/(4b) with a the IPM of the scaled class, so d_{F,log} ~ IPM² ~ p/s),
which does not contradict a sufficient condition. The effect of n: s*(p) at every n (no
discriminator can see repeated atoms that its n samples do not contain, so a small n caps
s*). The W1 contrast. The held-out finding of Gulrajani et al. (2019): the memorizer
scores worse against held-out real data than the sampler of μ, increasingly as s shrinks
(per width and s, the mean paired gap over reps with its 95% t-interval, and the Spearman
correlation of the gap with s), while against its training set (its own distribution) it
would score exactly 0. The birthday estimates. ``verdict`` states what agrees with
Corollary 3.2 and what does not.

Not done here: issue 7's optional richer version (small GANs with discriminators of
different sizes, trained by :mod:`gangen.mixgan`, whose support is estimated with a
calibrated threshold); it did not fit the time budget of the paper preset.

Run with ``python -m gangen.studies.diversity [--preset tiny|quick|paper]``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd

from gangen._validation import check_nonneg_int, check_open_unit, check_positive_float, check_positive_int
from gangen.studies.runner import Cell, Study, derive_seed, main, make_cell
from gangen.stats import loglog_fit

__all__ = [
    "DiversityConfig",
    "PRESETS",
    "STUDY",
    "cells",
    "crossing",
    "family_for",
    "fit_power_law",
    "heldout_curves",
    "max_objective",
    "plot",
    "run_group",
    "summarize",
]

PALETTE_FIT = "#56B4E9"  # Okabe-Ito sky blue (no width uses it): the fitted power law in panel (c)
PALETTE_BIRTHDAY = "#000000"  # black: the birthday estimates in panel (c)
GENERATORS = ("memorizer", "mu")  # Memorizer(mu, s), and a sampler of mu itself (the reference; s = 0)
# Byte budget that sets the engine's rows per forward/backward block on a CPU (see plan_chunks). Fixed here, not
# the engine's default, because the block size sets the float32 summation order and hence the last bits of results.
ROW_BLOCK_BYTES = 10 * 2**20
CI_ATOL = 1e-9  # slack when asking whether 1 lies in an interval: an exact fit has a zero-width interval


@dataclass(frozen=True)
class DiversityConfig:
    """Grid and constants of the Corollary 3.2 study (every field becomes a CLI flag)."""

    d: int = field(default=16, metadata={"help": "dimension d of mu = N(0, I/d)"})
    widths: tuple[int, ...] = field(default=(2, 4, 8, 16), metadata={
        "help": "hidden width w of the discriminators (n_hidden layers of w units); p = n_params is reported"})
    n_hidden: int = field(default=2, metadata={"help": "hidden layers of each discriminator"})
    activation: Literal["leaky_relu", "relu", "tanh"] = field(default="leaky_relu", metadata={
        "help": "hidden nonlinearity (leaky_relu: width-2 ReLU nets often die in training)"})
    supports: tuple[int, ...] = field(default=(16, 64, 256, 1024, 4096), metadata={
        "help": "support sizes s of the memorizers (log-spaced)"})
    n_values: tuple[int, ...] = field(default=(2048, 16384), metadata={
        "help": "training samples n per side of every discriminator (must exceed the supports tested)"})
    n_eval: int = field(default=16384, metadata={"help": "held-out samples per side for the evaluation"})
    n_seeds: int = field(default=2, metadata={"help": "repetitions (memorizer, data, initialisation) per grid point"})
    steps: int = field(default=400, metadata={"help": "Adam steps per discriminator"})
    lr: float = field(default=1e-2, metadata={"help": "Adam learning rate"})
    batch_size: int = field(default=2048, metadata={
        "help": "rows per side per Adam step (minibatches); full batch when n <= batch_size"})
    restarts: int = field(default=1, metadata={
        "help": "discriminators per cell; the best on its training samples is evaluated held-out"})
    phi: Literal["log", "identity"] = field(default="log", metadata={
        "help": "measuring function: log(delta + (1 - delta) t), or t (the IPM E D(x) - E D(y))"})
    delta: float = field(default=1e-3, metadata={"help": "delta of phi(t) = log(delta + (1 - delta) t)"})
    eps: float = field(default=0.1, metadata={"help": "threshold eps of s*(p) (summary and figure only)"})
    eps_scan: tuple[float, ...] = field(default=(0.05, 0.1, 0.2, 0.4), metadata={
        "help": "thresholds for the eps-dependence of s* (Corollary 3.2: s* ~ 1/eps^2; summary only)"})
    n_bootstrap: int = field(default=2000, metadata={"help": "bootstrap resamples of reps for the exponent's CI"})
    n_nn: int = field(default=2000, metadata={
        "help": "query points for the nearest-atom lower bound on W1(mu, memorizer)"})
    n_ref: int = field(default=1000, metadata={
        "help": "fresh points of mu in the exact W1(mu_ref, memorizer) estimate"})
    w1_max_s: int = field(default=1024, metadata={
        "help": "the exact W1(mu_ref, memorizer) only for s <= this (network simplex, n_ref x s costs)"})
    birthday_trials: int = field(default=30, metadata={"help": "batches per batch size in the birthday test"})
    birthday_s_max: int = field(default=4096, metadata={"help": "largest batch size of the birthday test"})
    seed: int = field(default=0, metadata={"help": "study seed; cells and data derive their seeds from it"})

    def __post_init__(self) -> None:
        check_positive_int(self.d, "d")
        for name in ("widths", "supports", "n_values"):
            values = getattr(self, name)
            if not values:
                raise ValueError(f"{name} must hold at least one value")
            for v in values:
                check_positive_int(v, f"each of {name}")
            if len(set(values)) != len(values):
                raise ValueError(f"{name} must not repeat a value; got {values}")
        for s in self.supports:
            if s < 2:
                raise ValueError(f"each support size must be >= 2 (one atom is trivially detected); got {s}")
        for name in ("n_hidden", "n_eval", "n_seeds", "steps", "batch_size", "restarts", "n_bootstrap", "n_nn",
                     "n_ref", "birthday_trials"):
            check_positive_int(getattr(self, name), name)
        check_nonneg_int(self.w1_max_s, "w1_max_s")
        check_positive_int(self.birthday_s_max, "birthday_s_max")
        if self.birthday_s_max < 2:
            raise ValueError(f"birthday_s_max must be >= 2; got {self.birthday_s_max}")
        if self.n_nn < 2:
            raise ValueError(f"n_nn must be >= 2 (a standard error needs two query points); got {self.n_nn}")
        check_positive_float(self.lr, "lr")
        check_open_unit(self.delta, "delta")
        check_positive_float(self.eps, "eps")
        if not self.eps_scan:
            raise ValueError("eps_scan must hold at least one threshold")
        for e in self.eps_scan:
            check_positive_float(e, "each of eps_scan")
        check_nonneg_int(self.seed, "seed")


# Sizes from timings on the shared 2-core CPU (load 6-8 from other jobs, so this process got ~0.3-0.4 of a core):
# quick = 106 cells (96 discriminators) in 107 s wall (31 s CPU); paper = 393 cells (360 discriminators of
# 800 Adam steps on 2 x 4096 rows, 33 support cells) in 1049 s wall (374 s CPU), the largest group
# (p = 1633, n = 65536, 36 discriminators) ~4 min. tiny: ~6 s.
PRESETS = {
    "tiny": {"d": 8, "widths": (2, 4), "supports": (4, 32, 256), "n_values": (256,), "n_eval": 512, "n_seeds": 2,
             "steps": 60, "lr": 0.03, "batch_size": 256, "eps_scan": (0.1, 0.2), "n_bootstrap": 50, "n_nn": 100,
             "n_ref": 64, "w1_max_s": 64, "birthday_trials": 20, "birthday_s_max": 64},
    "quick": {},
    "paper": {"widths": (2, 4, 8, 16, 32), "supports": tuple(2**k for k in range(4, 15)),  # 16, 32, ..., 16384
              "n_values": (4096, 65536), "n_eval": 32768, "n_seeds": 3, "steps": 800, "batch_size": 4096,
              "n_ref": 2000, "w1_max_s": 4096, "birthday_trials": 50, "birthday_s_max": 4096},
}


# --------------------------------------------------------------------------- grid and data


def family_for(config: DiversityConfig, width: int):
    """The discriminator class of width w: ``MLPFamily(d, hidden=(w,)*n_hidden, activation, head="sigmoid")``.

    >>> family_for(DiversityConfig(d=16), 8).n_params   # (16*8 + 8) + (8*8 + 8) + (8 + 1)
    217
    """
    from gangen.nn.families import MLPFamily

    return MLPFamily(d=config.d, hidden=(int(width),) * config.n_hidden, activation=config.activation, head="sigmoid")


def max_objective(phi: str, delta: float) -> float:
    r"""J_max = φ(1) + φ(1) - 2φ(1/2), reached by perfect separation (D = 1 on μ, 0 on G).

    -2 log((1 + δ)/2) for φ(t) = log(δ + (1 - δ)t); 1 for φ(t) = t.

    >>> round(max_objective("log", 1e-3), 4)   # about 2 log 2
    1.3843
    >>> max_objective("identity", 1e-3)
    1.0
    """
    if phi == "identity":
        return 1.0
    return -2.0 * math.log((1.0 + check_open_unit(delta, "delta")) / 2.0)


def _measuring(config: DiversityConfig):
    from gangen.distances.measuring import IdentityMeasuring, LogMeasuring

    return IdentityMeasuring() if config.phi == "identity" else LogMeasuring(config.delta)


def cells(config: DiversityConfig) -> list[Cell]:
    """Support cells (s, rep), each alone; then discriminator cells (w, n, generator, s, rep), one group per (w, n)."""
    out = [make_cell(config.seed, {"part": "support", "width": 0, "n": 0, "generator": "memorizer", "s": s,
                                   "rep": rep})
           for s in config.supports for rep in range(config.n_seeds)]
    memorizer, sampler = GENERATORS
    generators = [(memorizer, s) for s in config.supports] + [(sampler, 0)]
    for w in config.widths:
        for n in config.n_values:
            for gen, s in generators:
                for rep in range(config.n_seeds):
                    out.append(make_cell(config.seed, {"part": "nn", "width": w, "n": n, "generator": gen, "s": s,
                                                       "rep": rep}, group=("nn", w, n)))
    return out


def _data_seed(config: DiversityConfig, role: str, **params: int | str) -> int:
    """Seed of one data stream; the ``role`` key keeps it apart from every cell seed."""
    return derive_seed(config.seed, {"role": role, **params})


def _generator(config: DiversityConfig, generator: str, s: int, rep: int):
    """The memorizer of (s, rep), the same for every width and n; or mu itself."""
    from gangen.samplers import Gaussian, Memorizer

    mu = Gaussian(config.d)
    if generator == "mu":
        return mu
    return Memorizer(mu, int(s), seed=_data_seed(config, "support", s=int(s), rep=int(rep)))


def _member_seed(cell_seed: int, restart: int) -> int:
    return int(np.random.SeedSequence([cell_seed, restart]).generate_state(1)[0])


def _plans(family, rows_train: int, rows_eval: int, device: str):
    """Engine plans with one member per chunk on the CPU, so that a member's arithmetic (hence its
    result, bit for bit) does not depend on how many cells share the call; CUDA: the engine's default."""
    import torch

    from gangen.nn.ensemble import ChunkPlan, plan_chunks

    if device != "cpu":
        return None, None
    workers = max(1, torch.get_num_threads())
    budget = ROW_BLOCK_BYTES  # fixed, not the engine's default, which may change: it sets the summation order
    train = ChunkPlan(members=1, rows=plan_chunks(family, 1, rows_train, "cpu", cpu_cache_bytes=budget).rows, workers=workers)
    evaluate = ChunkPlan(members=1, rows=plan_chunks(family, 1, rows_eval, "cpu", cpu_cache_bytes=budget).rows, workers=workers)
    return train, evaluate


def _nn_rows(cells: list[Cell], config: DiversityConfig, device: str) -> list[list[dict]]:
    """Train the discriminators of cells sharing (width, n) in one ensemble; evaluate them held-out."""
    from gangen.nn.ensemble import evaluate_ensemble, train_ensemble
    from gangen.samplers import Gaussian

    width, n = int(cells[0]["width"]), int(cells[0]["n"])
    assert all(int(c["width"]) == width and int(c["n"]) == n for c in cells)
    family = family_for(config, width)
    phi = _measuring(config)
    mu = Gaussian(config.d)
    K, d, R = len(cells), config.d, config.restarts
    x = np.empty((K, n, d), dtype=np.float32)  # real training samples
    y = np.empty((K, n, d), dtype=np.float32)  # generator training samples
    xh = np.empty((K, config.n_eval, d), dtype=np.float32)  # held-out real
    yh = np.empty((K, config.n_eval, d), dtype=np.float32)  # held-out generator
    for k, c in enumerate(cells):
        gen, s, rep = str(c["generator"]), int(c["s"]), int(c["rep"])
        g = _generator(config, gen, s, rep)
        x[k] = mu.sample(n, seed=_data_seed(config, "real_train", n=n, rep=rep))
        y[k] = g.sample(n, seed=_data_seed(config, "fake_train", n=n, generator=gen, s=s, rep=rep))
        xh[k] = mu.sample(config.n_eval, seed=_data_seed(config, "real_eval", rep=rep))
        yh[k] = g.sample(config.n_eval, seed=_data_seed(config, "fake_eval", generator=gen, s=s, rep=rep))
    batch = None if n <= config.batch_size else config.batch_size
    plan_train, plan_eval = _plans(family, 2 * (n if batch is None else batch), 2 * config.n_eval, device)
    seeds = [_member_seed(c.seed, r) for c in cells for r in range(R)]
    index = np.repeat(np.arange(K), R)  # member k * R + r trains on cell k's samples
    res = train_ensemble(x, y, family=family, seeds=seeds, phi=phi, steps=config.steps, lr=config.lr,
                         batch_size=batch, data_index=index, device=device, plan=plan_train)
    held = evaluate_ensemble(res.params, xh, yh, family=family, phi=phi, data_index=index, device=device,
                             plan=plan_eval)
    train_vals, held_vals = res.values.reshape(K, R), held.reshape(K, R)
    budget = {"p": family.n_params, "steps": config.steps, "lr": config.lr, "batch_size": n if batch is None else batch,
              "restarts": R, "n_eval": config.n_eval, "phi": config.phi}
    out = []
    for k in range(K):
        best = int(np.argmax(train_vals[k]))  # the sup over restarts, chosen on the training samples
        out.append([{**budget, "metric": "nn_heldout", "value": float(held_vals[k, best])},
                    {**budget, "metric": "nn_train", "value": float(train_vals[k, best])}])
    return out


def _support_rows(cell: Cell, config: DiversityConfig) -> list[dict]:
    """W1 bounds and the birthday estimate of the memorizer of (s, rep)."""
    from gangen.distances.wasserstein import wasserstein
    from gangen.metrics.birthday import birthday_support
    from gangen.samplers import Gaussian
    from gangen.studies.lemma1 import nearest_distances

    s, rep = int(cell["s"]), int(cell["rep"])
    mu = Gaussian(config.d)
    mem = _generator(config, "memorizer", s, rep)
    nn = nearest_distances(mu.sample(config.n_nn, seed=_data_seed(config, "w1_queries", s=s, rep=rep)), mem.support)
    rows = [{"n_other": config.n_nn, "metric": "nn_lower", "value": float(nn.mean())},
            {"n_other": config.n_nn, "metric": "nn_lower_se", "value": float(nn.std(ddof=1) / math.sqrt(nn.size))}]
    if s <= config.w1_max_s:
        ref = mu.sample(config.n_ref, seed=_data_seed(config, "w1_ref", s=s, rep=rep))
        rows.append({"n_other": config.n_ref, "metric": "w1_ref", "value": wasserstein(ref, mem.support)})
    b = birthday_support(mem, threshold=0.0, n_trials=config.birthday_trials, s_max=config.birthday_s_max,
                         seed=_data_seed(config, "birthday", s=s, rep=rep))
    values = {"birthday_found": float(b.found), "birthday_support": b.support,
              "birthday_support_crude": b.support_crude, "birthday_support_mle": b.support_mle,
              "birthday_support_lower": b.support_lower, "birthday_support_upper": b.support_upper,
              "birthday_s_half": b.s_half}
    rows += [{"n_other": config.birthday_trials, "metric": k, "value": float(v)} for k, v in values.items()
             if v is not None and math.isfinite(v)]  # a bound that does not exist (inf) is left out
    return rows


def run_group(cells: list[Cell], config: DiversityConfig, device: str) -> list[list[dict]]:
    """Support cells one by one (CPU); discriminator cells one ensemble per (width, n) on ``device``."""
    out: dict[int, list[dict]] = {}
    batches: dict[tuple[int, int], list[int]] = {}
    for i, c in enumerate(cells):
        if c["part"] == "support":
            out[i] = _support_rows(c, config)
        else:
            batches.setdefault((int(c["width"]), int(c["n"])), []).append(i)
    for idx in batches.values():
        for i, rows in zip(idx, _nn_rows([cells[i] for i in idx], config, device)):
            out[i] = rows
    return [out[i] for i in range(len(cells))]


# --------------------------------------------------------------------------- analysis


def crossing(s_values, values, eps: float) -> tuple[float | None, int | None, str]:
    r"""First crossing of a decreasing curve below ε: (s* interpolated in log s, s* on the grid, status).

    With v_j the values at increasing s_j and j the first index with v_j < ε,
    ``s_grid`` = s_j and, for j > 0, log s* = log s_{j-1} + t·(log s_j - log s_{j-1}),
    t = (v_{j-1} - ε)/(v_{j-1} - v_j). Status ``"ok"``; ``"below_at_smallest"`` when
    v_0 < ε (s* <= s_0: s* is None, s_grid = s_0); ``"never_below"`` when no v_j < ε
    (s* > the largest s: both None).

    >>> crossing([10, 100, 1000], [1.0, 0.2, 0.0], 0.1)   # halfway between 100 and 1000 in log s
    (316.22776601683796, 1000, 'ok')
    >>> crossing([10, 100], [0.5, 0.3], 0.1)
    (None, None, 'never_below')
    """
    s = np.asarray(s_values, dtype=np.float64)
    v = np.asarray(values, dtype=np.float64)
    below = np.flatnonzero(v < eps)
    if below.size == 0:
        return None, None, "never_below"
    j = int(below[0])
    if j == 0:
        return None, int(s[0]), "below_at_smallest"
    t = (v[j - 1] - eps) / (v[j - 1] - v[j])
    return float(math.exp(math.log(s[j - 1]) + t * (math.log(s[j]) - math.log(s[j - 1])))), int(s[j]), "ok"


def fit_power_law(x, y) -> dict:
    r"""Least squares of log y = a + b·log x (:func:`gangen.stats.loglog_fit` with two points allowed),
    under this study's summary keys: ``exponent`` (b), ``exponent_se``, ``exponent_ci95`` (95% t-interval;
    both need >= 3 points, else None), ``prefactor`` (e^a) and ``n_points``.

    >>> f = fit_power_law([1, 10, 100], [3, 30, 300])
    >>> round(f["exponent"], 12), round(f["prefactor"], 12)
    (1.0, 3.0)
    """
    fit = loglog_fit(x, y, min_points=2)
    return {"n_points": fit["n"] + fit["n_excluded"], "exponent": fit["slope"], "exponent_se": fit["stderr"],
            "exponent_ci95": fit["ci95"], "prefactor": fit["prefactor"]}


def heldout_curves(table: pd.DataFrame, metric: str = "nn_heldout") -> dict[tuple[int, int], pd.DataFrame]:
    """Per (width, n): the memorizers' ``metric`` as a DataFrame indexed by s (ascending), one column per rep."""
    rows = table[(table["part"] == "nn") & (table["metric"] == metric) & (table["generator"] == "memorizer")]
    out = {}
    for (w, n), part in rows.groupby(["width", "n"]):
        out[(int(w), int(n))] = part.pivot_table(index="s", columns="rep", values="value").sort_index()
    return out


def _p_of(table: pd.DataFrame) -> dict[int, int]:
    rows = table[table["part"] == "nn"]
    return {int(w): int(p) for w, p in rows.groupby("width")["p"].first().items()}


def _s_star_table(curves: dict, p_of: dict, eps: float, reps=None) -> dict[int, dict[int, dict]]:
    """s* per n and width at one eps; ``reps`` (column labels, repeats allowed) resamples the reps."""
    out: dict[int, dict[int, dict]] = {}
    for (w, n), mat in curves.items():
        vals = mat.to_numpy() if reps is None else mat[list(reps)].to_numpy()  # (n_s, n_reps)
        mean = np.nanmean(vals, axis=1)
        s_star, s_grid, status = crossing(mat.index.to_numpy(), mean, eps)
        out.setdefault(n, {})[w] = {"p": p_of[w], "s_star": s_star, "s_star_grid": s_grid, "status": status}
    return out


def _fit_s_star(per_width: dict[int, dict]) -> dict:
    ok = [(e["p"], e["s_star"]) for e in per_width.values() if e["status"] == "ok"]
    fit = fit_power_law([p for p, _ in ok], [s for _, s in ok])
    fit["widths_in_fit"] = [w for w, e in per_width.items() if e["status"] == "ok"]
    return fit


def _bootstrap_exponent(curves: dict, p_of: dict, n: int, eps: float, n_boot: int, seed: int) -> dict:
    """Percentile 95% interval of the exponent over resamples of the reps (jointly for all widths: the
    reps are paired across widths). Resamples in which a width's s* is not found are dropped. With R
    reps there are only C(2R-1, R) distinct resamples (10 for R = 3), so the interval is coarse;
    none is given for R < 3."""
    sub = {k: v for k, v in curves.items() if k[1] == n}
    reps = sorted(set().union(*[set(v.columns) for v in sub.values()])) if sub else []
    out = {"ci95": None, "n_reps": len(reps), "n_valid": 0, "n_resamples": 0}
    widths_ok = [w for w, e in _s_star_table(sub, p_of, eps)[n].items() if e["status"] == "ok"] if sub else []
    if len(reps) < 3 or len(widths_ok) < 2:
        return out
    rng = np.random.default_rng(seed)
    slopes = []
    for _ in range(n_boot):
        draw = rng.choice(reps, size=len(reps), replace=True)
        table = _s_star_table(sub, p_of, eps, reps=draw)[n]
        if any(table[w]["status"] != "ok" for w in widths_ok):
            continue
        slopes.append(fit_power_law([table[w]["p"] for w in widths_ok], [table[w]["s_star"] for w in widths_ok])
                      ["exponent"])
    out.update(n_valid=len(slopes), n_resamples=n_boot)
    if len(slopes) >= max(10, n_boot // 10):
        lo, hi = np.quantile(slopes, [0.025, 0.975])
        out["ci95"] = [float(lo), float(hi)]
    return out


def _mean_ci(values: np.ndarray) -> tuple[float, float | None]:
    """Mean and half-width of the 95% t-interval (None with one value)."""
    from scipy import stats

    values = np.asarray(values, dtype=np.float64)
    if values.size < 2:
        return float(values.mean()), None
    half = stats.t.ppf(0.975, values.size - 1) * values.std(ddof=1) / math.sqrt(values.size)
    return float(values.mean()), float(half)


def _gulrajani(table: pd.DataFrame, n: int) -> dict:
    """Held-out score of the memorizer against that of the sampler of mu, paired by rep, per width and s."""
    from scipy import stats

    rows = table[(table["part"] == "nn") & (table["metric"] == "nn_heldout") & (table["n"] == n)]
    out = {}
    for w, part in rows.groupby("width"):
        sampler = part[part["generator"] == "mu"].set_index("rep")["value"]
        mem = part[part["generator"] == "memorizer"]
        sampler_mean, sampler_half = _mean_ci(sampler.to_numpy())
        entry: dict = {"sampler_mean": sampler_mean, "sampler_ci95_half": sampler_half, "by_s": {}}
        gaps_mean = []
        for s, g in mem.groupby("s"):
            gap = g.set_index("rep")["value"] - sampler  # paired by rep
            gap = gap.dropna().to_numpy()
            mean, half = _mean_ci(gap)
            entry["by_s"][str(int(s))] = {"gap_mean": mean, "gap_ci95_half": half,
                                          "memorizer_worse": bool(half is not None and mean - half > 0)}
            gaps_mean.append((int(s), mean))
        if len(gaps_mean) >= 3:
            rho = stats.spearmanr([s for s, _ in gaps_mean], [m for _, m in gaps_mean]).statistic
            entry["spearman_gap_vs_s"] = float(rho)
        entry["frac_s_memorizer_worse"] = float(np.mean([e["memorizer_worse"] for e in entry["by_s"].values()]))
        out[str(int(w))] = entry
    return out


def _support_summary(table: pd.DataFrame) -> dict:
    """Per s: means over reps of the W1 bounds and birthday estimates; how the estimates compare with s."""
    rows = table[table["part"] == "support"]
    out = {}
    for s, part in rows.groupby("s"):
        s = int(s)
        entry = {k: float(v) for k, v in part.groupby("metric")["value"].mean().items() if k != "nn_lower_se"}
        per_rep = part.pivot_table(index="rep", columns="metric", values="value")
        found = per_rep.get("birthday_found", pd.Series(dtype=float)).fillna(0.0)
        entry["birthday_n"], entry["birthday_n_found"] = int(found.size), int(found.sum())
        if "birthday_support" in per_rep:
            ratio = per_rep["birthday_support"].to_numpy() / s  # NaN where not found
            entry["birthday_ratio_min"], entry["birthday_ratio_max"] = float(np.nanmin(ratio)), float(np.nanmax(ratio))
            entry["birthday_within_factor_2"] = bool(np.all((ratio >= 0.5) & (ratio <= 2.0)))
        if "birthday_support_lower" in per_rep:
            upper = per_rep.get("birthday_support_upper", pd.Series(np.inf, index=per_rep.index)).fillna(np.inf)
            entry["birthday_bounds_cover_s"] = int(np.sum((per_rep["birthday_support_lower"] <= s) & (upper >= s)))
        out[str(s)] = entry
    return out


def _fmt_s(e: dict) -> str:
    if e["status"] == "ok":
        return f"{e['s_star']:.0f}"
    if e["status"] == "below_at_smallest":
        return f"<= {e['s_star_grid']}"
    return "> max s"


def _verdict(summary: dict, config: DiversityConfig) -> list[str]:
    lines = []
    n_fit = summary["n_fit"]
    eps = config.eps
    per_w = summary["s_star"][str(n_fit)]
    lines.append(f"s*(p) at eps = {eps:g}, n = {n_fit}: "
                 + "; ".join(f"p = {e['p']}: {_fmt_s(e)}" for e in per_w.values()) + ".")
    fit = summary["exponent"]
    if fit["exponent"] is not None:
        ci = fit["exponent_ci95"]
        boot = fit["bootstrap"]["ci95"]
        text = (f"Fitted s* ~ p^b: b = {fit['exponent']:.2f} over {fit['n_points']} widths"
                + (f" (95% t-interval [{ci[0]:.2f}, {ci[1]:.2f}]" if ci else " (no interval: 2 points")
                + (f"; bootstrap over reps [{boot[0]:.2f}, {boot[1]:.2f}])" if boot else ")"))
        boot_ok = None if boot is None else bool(boot[0] - CI_ATOL <= 1.0 <= boot[1] + CI_ATOL)
        if ci:
            if fit["consistent_with_linear"] and boot_ok is not False:
                text += ": consistent with Corollary 3.2's linear growth (up to logs)."
            elif fit["consistent_with_linear"]:
                text += (": 1 lies inside the t-interval but not the bootstrap interval (coarse with "
                         f"{fit['bootstrap']['n_reps']} reps): linear or slightly sublinear.")
            elif ci[1] < 1.0:
                text += (": sublinear; Corollary 3.2 bounds s* from above by ~p/eps^2 (up to logs), so a smaller "
                         "exponent does not contradict it, but the prediction 'roughly linear' is not borne out.")
            else:
                text += ": superlinear, more than the 'linear up to logs' of Corollary 3.2."
            if fit["exponent"] < 1.0:
                big = max(per_w.values(), key=lambda e: e["p"])
                if big["status"] == "ok":
                    text += (" Two known biases lower b: the largest discriminators are furthest from their sup after "
                             f"the same {config.steps} steps, and their s* is closest to n (n/s* = "
                             f"{n_fit / big['s_star']:.0f} at p = {big['p']}), where the finite sample caps s*.")
        lines.append(text)
    else:
        lines.append("Too few widths reached s* within the supports tested to fit an exponent.")
    scan = summary["eps_scan"]
    eps_slopes = [e["eps_exponent"] for e in summary["eps_exponent_by_width"].values() if e["eps_exponent"] is not None]
    if eps_slopes:
        why = (" For phi = log this is what we expect (our reading): near D = 1/2 the objective is second order in "
               "the difference of the distributions (it maximises a t - b t^2 over the scale t of D - 1/2), so "
               "d_{F,log} ~ IPM_F^2 ~ p/s and s* ~ p/eps; Corollary 3.2's s >= c p log(.)/eps^2 is a sufficient "
               "condition and is not contradicted." if config.phi == "log" else "")
        lines.append(f"Dependence on eps: per width, s* ~ eps^c with c in "
                     f"[{min(eps_slopes):.2f}, {max(eps_slopes):.2f}] (Corollary 3.2's sufficient support scales "
                     "as eps^-2); exponents in p per eps: "
                     + ", ".join(f"eps = {k}: {v['exponent']:.2f}" if v["exponent"] is not None else f"eps = {k}: n/a"
                                 for k, v in scan.items()) + "." + why)
    if len(config.n_values) > 1:
        n_min = min(config.n_values)
        small = summary["s_star"][str(n_min)]
        lines.append(f"Effect of n (training samples per side): at n = {n_min}, s* = "
                     + "; ".join(f"p = {e['p']}: {_fmt_s(e)}" for e in small.values())
                     + f" against the values at n = {n_fit} above: a discriminator trained on n samples cannot see "
                     "repeated atoms that its sample does not contain, so a small n caps s* and the corollary's "
                     "regime needs n well above s*.")
    g = summary["gulrajani"]
    worse = [w for w, e in g.items() if e["frac_s_memorizer_worse"] > 0]
    rhos = [e.get("spearman_gap_vs_s") for e in g.values() if e.get("spearman_gap_vs_s") is not None]
    lines.append(
        "Held-out finding (Gulrajani et al. 2019): against held-out real data the sampler of mu scores "
        + ", ".join(f"{e['sampler_mean']:+.3f}" for e in g.values())
        + " (per width) and the memorizer scores higher (worse) at a fraction "
        + ", ".join(f"{e['frac_s_memorizer_worse']:.2f}" for e in g.values())
        + " of the supports (95% paired interval above 0)"
        + (f"; the gap grows as s shrinks (Spearman rho of gap vs s: {min(rhos):.2f} to {max(rhos):.2f})"
           if rhos else "")
        + ". Against its own training set (its own distribution) the memorizer would score exactly 0: only the "
        "held-out protocol penalises memorization." if worse else
        "Held-out finding: the memorizer never scored significantly worse than the sampler of mu.")
    sup = summary["support"]
    s_tested = sorted(int(s) for s in sup)
    w1 = [sup[str(s)].get("nn_lower") for s in s_tested]
    if all(v is not None for v in w1):
        fell = [e["p"] for e in per_w.values() if e["s_star_grid"] is not None]
        lines.append(f"W1 contrast: the lower bound on W1(mu, memorizer) goes from {w1[0]:.3f} (s = {s_tested[0]}) to "
                     f"{w1[-1]:.3f} (s = {s_tested[-1]}), "
                     + ("above eps at every s" if min(w1) > eps else "NOT above eps at every s")
                     + f", while the held-out neural-net distance falls below eps for {len(fell)} of {len(per_w)} "
                     "widths within the supports tested"
                     + (": W1 sees the missing diversity, these discriminators do not." if min(w1) > eps and fell
                        else "."))
    within = [sup[str(s)].get("birthday_within_factor_2") for s in s_tested]
    lines.append(f"Birthday test (exact duplicates): the estimated support is within a factor 2 of s for "
                 f"{sum(bool(v) for v in within)} of {len(within)} support sizes (ratios "
                 f"{min(sup[str(s)].get('birthday_ratio_min', math.nan) for s in s_tested):.2f} to "
                 f"{max(sup[str(s)].get('birthday_ratio_max', math.nan) for s in s_tested):.2f}).")
    bf = summary["birthday_vs_p"]["fit"]
    if bf["exponent"] is not None:
        lines.append(f"Birthday-estimated support of the smallest memorizer each discriminator cannot tell from mu "
                     f"grows as p^{bf['exponent']:.2f} (on the s grid; Arora & Zhang 2017 found roughly linear growth "
                     "with discriminator size on real GANs).")
    lines.append("Every neural-net distance here is a trained lower bound on the sup over F (budget in "
                 "results.csv), so each s* is a lower bound on the corollary's s*(p).")
    return lines


def summarize(table: pd.DataFrame, config: DiversityConfig) -> dict:
    """s*(p) per n and eps, the fitted exponents, the n effect, W1, held-out and birthday summaries, a verdict."""
    curves = heldout_curves(table)
    p_of = _p_of(table)
    n_values = sorted({n for _, n in curves})
    n_fit = max(n_values)
    summary: dict = {"eps": config.eps, "n_fit": n_fit, "j_max": max_objective(config.phi, config.delta),
                     "p_by_width": {str(w): p for w, p in sorted(p_of.items())}}
    summary["heldout_mean"] = {
        str(n): {str(w): {str(int(s)): float(v) for s, v in curves[(w, n)].mean(axis=1).items()}
                 for w in sorted(p_of) if (w, n) in curves} for n in n_values}
    s_star = _s_star_table(curves, p_of, config.eps)
    summary["s_star"] = {str(n): {str(w): s_star[n][w] for w in sorted(s_star[n])} for n in n_values}
    fit = _fit_s_star(s_star[n_fit])
    fit["bootstrap"] = _bootstrap_exponent(curves, p_of, n_fit, config.eps, config.n_bootstrap, config.seed)
    ci = fit["exponent_ci95"]
    fit["consistent_with_linear"] = None if ci is None else bool(ci[0] - CI_ATOL <= 1.0 <= ci[1] + CI_ATOL)
    summary["exponent"] = fit
    summary["exponent_by_n"] = {str(n): _fit_s_star(s_star[n]) for n in n_values}
    scan = {}
    for e in config.eps_scan:
        table_e = _s_star_table(curves, p_of, e)
        f = _fit_s_star(table_e[n_fit])
        f["s_star"] = {str(w): table_e[n_fit][w]["s_star"] for w in sorted(table_e[n_fit])}
        scan[f"{e:g}"] = f
    summary["eps_scan"] = scan
    summary["eps_exponent_by_width"] = {}
    for w in sorted(p_of):
        pts = [(float(e), scan[e]["s_star"][str(w)]) for e in scan if scan[e]["s_star"].get(str(w)) is not None]
        f = fit_power_law([a for a, _ in pts], [b for _, b in pts]) if len(pts) >= 2 else {"exponent": None}
        summary["eps_exponent_by_width"][str(w)] = {"eps_exponent": f["exponent"], "n_points": len(pts)}
    summary["gulrajani"] = _gulrajani(table, n_fit)
    summary["support"] = _support_summary(table)
    # Estimated support against discriminator size: the birthday estimate of the memorizer at s*_grid(p).
    bvp = {}
    for w, e in s_star[n_fit].items():
        s_grid = e["s_star_grid"]
        est = summary["support"].get(str(s_grid), {}).get("birthday_support") if s_grid is not None else None
        bvp[str(w)] = {"p": e["p"], "s_star_grid": s_grid, "birthday_support": est}
    ok = [(v["p"], v["birthday_support"]) for v in bvp.values() if v["birthday_support"] is not None]
    summary["birthday_vs_p"] = {"by_width": bvp, "fit": fit_power_law([p for p, _ in ok], [b for _, b in ok])}
    summary["sampler_train_gap"] = {  # overfitting: training minus held-out value of the mu-vs-mu discriminators
        str(int(w)): float((g[g.metric == "nn_train"]["value"].mean() - g[g.metric == "nn_heldout"]["value"].mean()))
        for w, g in table[(table.part == "nn") & (table.generator == "mu") & (table.n == n_fit)].groupby("width")}
    summary["budget"] = {"steps": config.steps, "lr": config.lr, "batch_size": config.batch_size,
                         "restarts": config.restarts, "n_eval": config.n_eval, "optimizer": "Adam (0.9, 0.999)",
                         "activation": config.activation, "n_hidden": config.n_hidden, "phi": config.phi,
                         "delta": config.delta}
    summary["verdict"] = _verdict(summary, config)
    return summary


# --------------------------------------------------------------------------- figure


def _log2_ticks(ax, values, extra: dict | None = None) -> None:
    """Ticks at the powers of 2 among ``values`` (every other one when there are many), labelled 2^k."""
    ks = sorted({int(round(math.log2(v))) for v in values if v > 0 and math.log2(v).is_integer()})
    if len(ks) > 6:
        ks = [k for k in ks if k % 2 == ks[0] % 2]
    ticks = [2.0 ** k for k in ks] + list((extra or {}).keys())
    labels = [f"$2^{{{k}}}$" for k in ks] + list((extra or {}).values())
    ax.set_xticks(ticks)
    ax.set_xticklabels(labels)
    ax.minorticks_off()


def plot(table: pd.DataFrame, config: DiversityConfig, summary: dict, fig_dir: Path) -> list[Path]:
    """(a), (b) held-out d_F(mu, memorizer) against s per p at the largest and smallest n; (c) s*(p) and
    the birthday estimate against p; (d) W1(mu, memorizer) bounds against s beside the NN distances.
    Lines: means over reps; bands: ± one standard deviation over reps (few reps: a t-interval would be huge)."""
    from matplotlib.lines import Line2D
    from matplotlib.ticker import NullLocator

    from gangen.plotting import MARKERS, new_panels, paper_style, plot_band, save_figure, series_colors, slope_guide

    nn = table[(table["part"] == "nn") & (table["metric"] == "nn_heldout")].copy()
    widths = sorted(int(w) for w in nn["width"].unique())
    p_of = {int(w): int(p) for w, p in summary["p_by_width"].items()}
    colors = series_colors(widths)
    n_values = sorted(int(n) for n in nn["n"].unique())
    n_fit = int(summary["n_fit"])
    s_all = sorted(int(s) for s in nn.loc[nn.generator == "memorizer", "s"].unique())
    x_mu = s_all[-1] * 2.0 ** 1.5  # where the sampler of mu is drawn on the s axis
    j_max = summary["j_max"]
    eps = config.eps
    y_low = min(-0.06, float(nn["value"].min()) - 0.03)
    phi_txt = r"2\log\frac{2}{1+\delta}" if config.phi == "log" else "1"
    with paper_style():
        fig, axes = new_panels(2, 2, width="double", panel_aspect=0.68)
        ax_a, ax_b, ax_c, ax_d = axes
        panels = [(ax_a, n_fit, "(a)")] + ([(ax_b, min(n_values), "(b)")] if len(n_values) > 1 else [])
        for ax, n, tag in panels:
            part = nn[nn["n"] == n]
            for w in widths:
                mem = part[(part.width == w) & (part.generator == "memorizer")]
                plot_band(ax, mem["s"], mem["value"], band="std", color=colors[w], label=f"$p = {p_of[w]}$")
                mu = part[(part.width == w) & (part.generator == "mu")]["value"]
                if len(mu):
                    ax.errorbar([x_mu], [mu.mean()], yerr=[[mu.mean() - mu.min()], [mu.max() - mu.mean()]],
                                color=colors[w], marker="D", markersize=3, capsize=1.5, linewidth=0.8)
            ax.axhline(eps, color="0.25", linestyle="--", linewidth=0.9, zorder=1.5)
            ax.axhline(j_max, color="0.55", linestyle=":", linewidth=0.9, zorder=1.5)
            if n <= s_all[-1]:
                ax.axvline(n, color="0.55", linestyle="-.", linewidth=0.8, zorder=1.5)
                ax.text(n * 1.15, 0.5 * j_max, "$s = n$", color="0.4", fontsize=6.5, ha="left", va="center")
            ax.set_xscale("log")
            ax.set_xlim(s_all[0] / 1.4, x_mu * 1.5)
            _log2_ticks(ax, s_all, {x_mu: r"$\mu$"})
            ax.set_ylim(y_low, j_max * 1.06)
            ax.set_xlabel(r"support $s$ of the memorizer $G$ (at $\mu$: $G$ samples $\mu$)")
            ax.set_ylabel(r"held-out $d_{F,\phi}(\mu, G)$")
            ax.set_title(f"{tag} held-out neural-net distance, $n = {n}$ per side")
        ax_a.legend(loc="upper right", bbox_to_anchor=(0.93, 0.98))
        ref_handles = [Line2D([], [], color="0.25", linestyle="--", linewidth=0.9, label=f"$\\varepsilon = {eps:g}$"),
                       Line2D([], [], color="0.55", linestyle=":", linewidth=0.9, label=f"$J_{{\\max}} = {phi_txt}$"),
                       Line2D([], [], color="0.3", marker="D", markersize=3, linestyle="none",
                              label="sampler of $\\mu$ (range over reps)")]
        (ax_b if len(n_values) > 1 else ax_a).legend(handles=ref_handles, loc="upper right",
                                                     bbox_to_anchor=(0.93, 0.98))

        # (c) s*(p) per n, the fit at the largest n, the birthday estimate at s*_grid(p).
        markers = {n: MARKERS[i % len(MARKERS)] for i, n in enumerate(reversed(n_values))}
        shade = {n: "0.35" if n == n_fit else "0.7" for n in n_values}
        for n in n_values:
            entries = summary["s_star"][str(n)].values()
            pts = [(e["p"], e["s_star"]) for e in entries if e["status"] == "ok"]
            if pts:
                ax_c.plot([p for p, _ in pts], [s for _, s in pts], marker=markers[n], color=shade[n],
                          label=f"$s^*(p)$, $n = {n}$")
            cens = [e["p"] for e in entries if e["status"] == "never_below"]
            if cens:  # s* above the largest support tested
                ax_c.plot(cens, [s_all[-1]] * len(cens), marker="^", linestyle="none", color=shade[n],
                          markerfacecolor="none", label=f"$s^* > {s_all[-1]}$, $n = {n}$")
        fit = summary["exponent"]
        ps = np.geomspace(min(p_of.values()), max(p_of.values()), 20)
        if fit["exponent"] is not None:
            ci = fit["exponent_ci95"]
            ci_txt = f", 95% CI [{ci[0]:.2f}, {ci[1]:.2f}]" if ci else ""
            ax_c.plot(ps, fit["prefactor"] * ps ** fit["exponent"], color=PALETTE_FIT, linewidth=1.0,
                      label=f"fit $\\propto p^{{{fit['exponent']:.2f}}}${ci_txt}", zorder=1.6)
            pts = [(e["p"], e["s_star"]) for e in summary["s_star"][str(n_fit)].values() if e["status"] == "ok"]
            gp = math.exp(np.mean([math.log(p) for p, _ in pts]))
            gs = math.exp(np.mean([math.log(s) for _, s in pts]))
            slope_guide(ax_c, ps, slope=1.0, through=(gp, gs), label=r"$\propto p$ (Corollary 3.2)")
        bvp = [(v["p"], v["s_star_grid"], v["birthday_support"]) for v in summary["birthday_vs_p"]["by_width"].values()
               if v["birthday_support"] is not None]
        if bvp:
            ax_c.plot([p for p, _, _ in bvp], [g for _, g, _ in bvp], marker="_", markersize=9, linestyle="none",
                      color=PALETTE_BIRTHDAY, label=r"$s^*_{\rm grid}(p)$: first $s$ on the grid below $\varepsilon$")
            ax_c.plot([p for p, _, _ in bvp], [b for _, _, b in bvp], marker="o", linestyle="none", markersize=4.5,
                      markerfacecolor="none", color=PALETTE_BIRTHDAY, label=r"birthday estimate of that support")
        ax_c.set(xscale="log", yscale="log", xlabel="discriminator parameters $p$", ylabel=r"support $s$")
        ax_c.set_xticks(sorted(p_of.values()))
        ax_c.set_xticklabels([str(p) for p in sorted(p_of.values())])
        ax_c.xaxis.set_minor_locator(NullLocator())
        y0, y1 = ax_c.get_ylim()
        ks = range(math.ceil(math.log2(y0)), math.floor(math.log2(y1)) + 1)
        ax_c.set_yticks([2.0 ** k for k in ks])
        ax_c.set_yticklabels([f"$2^{{{k}}}$" for k in ks])
        ax_c.yaxis.set_minor_locator(NullLocator())
        ax_c.set_ylim(y0, y0 * (y1 / y0) ** 1.45)  # head room above the data for the legend
        ax_c.set_title(f"(c) smallest support with held-out $d_{{F,\\phi}} < {eps:g}$, and its birthday estimate")
        ax_c.legend(loc="upper left", fontsize=6.5)

        # (d) W1(mu, memorizer) bounds against s, beside the neural-net distances at the largest n.
        sup = table[table["part"] == "support"]
        lower = sup[sup.metric == "nn_lower"]
        plot_band(ax_d, lower["s"], lower["value"], band="std", color="black", marker="s",
                  label=r"nearest-atom distance $\leq W_1(\mu, G)$")
        ref = sup[sup.metric == "w1_ref"]
        if len(ref):
            plot_band(ax_d, ref["s"], ref["value"], band="std", color="0.45", marker="^", linestyle=":",
                      label=f"$W_1$(fresh {config.n_ref}-point sample, $G$)")
        part = nn[(nn["n"] == n_fit) & (nn.generator == "memorizer")]
        for w in (widths[0], widths[-1]):
            rows = part[part.width == w]
            plot_band(ax_d, rows["s"], rows["value"], band="std", color=colors[w], alpha=0.12,
                      label=f"held-out $d_{{F,\\phi}}$, $p = {p_of[w]}$")
        ax_d.axhline(eps, color="0.25", linestyle="--", linewidth=0.9, zorder=1.5)
        ax_d.set_xscale("log")
        ax_d.set_xlim(s_all[0] / 1.4, s_all[-1] * 1.4)
        _log2_ticks(ax_d, s_all)
        d_low = min(-0.06, float(part["value"].min()) - 0.03) if len(part) else -0.06
        top = max(j_max, float(lower["value"].max()) if len(lower) else 0.0)
        ax_d.set_ylim(d_low, top * 1.4)  # head room for the legend
        ax_d.set_xlabel(r"support $s$ of the memorizer $G$")
        ax_d.set_ylabel("distance")
        ax_d.set_title(f"(d) $W_1(\\mu, G)$ stays large while $d_{{F,\\phi}}(\\mu, G)$ falls ($n = {n_fit}$)")
        ax_d.legend(loc="upper right", ncol=2, fontsize=6.5, columnspacing=1.0)
        return list(save_figure(fig, fig_dir / "diversity"))


STUDY = Study(
    name="diversity",
    config_cls=DiversityConfig,
    cells=cells,
    run_group=run_group,
    summarize=summarize,
    plot=plot,
    presets=PRESETS,
    version="1",
    cache_ignore=("widths", "supports", "n_values", "n_seeds", "eps", "eps_scan", "n_bootstrap"),
    description=__doc__.split("\n\n")[0],
    engine=True,
)

if __name__ == "__main__":
    main(STUDY)
