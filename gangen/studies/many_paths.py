r"""Fedus et al. (2018): GANs learn without decreasing a divergence, and gradient penalties help outside WGAN.

Fedus et al., "Many Paths to Equilibrium: GANs Do Not Need to Decrease a Divergence At
Every Step" (arXiv:1710.08446), as we read the paper, make two measurable claims. This
study checks each with the one training loop :func:`gangen.mixgan.train` (T = 1: a plain GAN).

(a) ``part="disjoint"``: progress while the Jensen-Shannon divergence is stuck. 1-D data
N(μ_r, σ_r²) (μ_r = ``disjoint_data_mean`` = 5, σ_r = 0.25) and a non-saturating GAN whose
freshly initialised generator puts its mass near 0, so the two do not overlap. At
checkpoints t along one training run per repetition (column ``at_step``; see
"Snapshots" below) the study records, on ``n_eval`` fresh generator samples and data
samples:

- ``js_plugin``: :func:`gangen.distances.empirical_js` of the two samples. It is exactly
  log 2 at every t: the generator's samples (an MLP pushing forward a Gaussian) and the
  data's are continuous, so with probability 1 no generator sample equals a data sample;
  every atom then carries mass in one of the two empirical measures only, and
  JS = Σ_atoms ½ mass log 2 = log 2 whatever the distance between the samples.
- ``js_knn``: :func:`gangen.distances.knn_js`, a consistent estimate of JS between the
  two *densities*; ≈ log 2 while the supports are (numerically) disjoint.
- ``js_disc``: the training discriminator's own estimate. With φ = log, D = sigmoid(s),
  :mod:`gangen.mixgan.losses` defines F = E log D(x) + E log(1 - D(G(z))), maximised by
  the discriminator, and max_D F = 2 JS - log 4, so JS_hat = (F + log 4)/2 (F on the
  ``n_eval`` fresh samples; a lower bound on JS for every D). ``js_disc_train`` is the
  same from the training history: F on the training batch every ``disjoint_log_every``
  steps (and at the last step), with ``at_step`` the step of that batch.
- ``js_best``: (F + gain + log 4)/2 with a fresh discriminator trained against the frozen
  generator for ``best_response_steps`` (:func:`gangen.mixgan.measure_equilibrium`): the
  best of the two discriminators, a tighter lower bound on JS.
- ``w1``: W1 between the generator's and the data's samples (exact 1-D closed form).
- ``gen_in_data``: fraction of generator samples within μ_r ± ``support_sigmas`` σ_r
  (the data's mass outside is 6e-5 for 4σ): 0 means no overlap; ``gen_mean``, ``gen_std``.

Fedus et al.'s claim holds when W1 falls while JS (the k-NN density estimate and the
fresh best response's lower bound) stays near log 2: the generator makes progress that a
JS-minimisation view cannot see. The plug-in JS is log 2 by construction for any two
continuous samples (see above), so it stays log 2 even once the generator matches the data;
and the training discriminator's own estimate ``js_disc`` is far below log 2 (it lags the
moving generator), so only the best response makes the discriminators' side of the claim.

Snapshots: each repetition is one cell that trains once for max(``disjoint_checkpoints``)
steps and measures every checkpoint t inside :func:`gangen.mixgan.train`'s ``callback``
(called with the live players after t steps, under ``torch.no_grad()``; the fresh
best response trains under ``torch.enable_grad()``). The callback cannot disturb
training (it sees none of the training streams; torch's global random state and the
players' train/eval modes are restored after it), the measurement draws only from its
own seeds (the same evaluation seeds at every checkpoint of a repetition), and
:func:`gangen.mixgan.measure_equilibrium` trains fresh responders only and leaves the
passed players unchanged. So the rows at checkpoint t are those of a separate run of t
steps measured afterwards (checked exactly in the tests), at the cost of the largest
checkpoint instead of the sum. The cell carries its checkpoints (param ``checkpoints``,
e.g. ``"0,25,50"``) and its training length (param ``step``) so the cache tells
different checkpoint sets apart.

(b) ``part="ring"``: robustness over hyperparameters on the ring of 8
(:func:`gangen.samplers.ring8`, radius 1, std ``ring_std``). Four variants (T = 1):
NS-GAN (``preset("gan")``), GAN-GP (NS + WGAN-GP's two-sided penalty on real-fake
interpolates, ``preset("gan-gp")``), DRAGAN-NS (NS + DRAGAN's penalty around perturbed
real points, ``preset("dragan")``) and WGAN-GP (``preset("wgan-gp")``: Adam (0, 0.9),
5 critic steps), over a grid of learning rate (generator and discriminator alike) ×
penalty weight λ × seeds (NS-GAN has no λ: its cells carry ``penalty_weight = 0``). Each
run trains ``ring_steps`` generator steps; then :func:`gangen.metrics.modes.model_mode_coverage`
on 2,500 samples gives the modes captured (a mode is captured when one sample lies
within 3 std of it and nearer to it than to any other mode) and the high-quality
fraction. The claim holds when the penalised variants capture all 8 modes in a larger
fraction of the grid than NS-GAN.

Run with ``python -m gangen.studies.many_paths [--preset tiny|quick|paper]``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from gangen._io import atomic_write_text
from gangen._validation import check_nonneg_int, check_positive_float, check_positive_int
from gangen.distances.js import empirical_js, knn_js
from gangen.distances.wasserstein import wasserstein
from gangen.metrics.modes import model_mode_coverage
from gangen.mixgan.equilibrium import BestResponseBudget, measure_equilibrium
from gangen.mixgan.mixture import Mixture
from gangen.mixgan.train import MixGANConfig, preset, train
from gangen.samplers import Gaussian, ring8
from gangen.studies.runner import Cell, Study, derive_seed, main, make_cell, parse_steps_param, steps_param

__all__ = [
    "LOG4",
    "ManyPathsConfig",
    "PRESETS",
    "STUDY",
    "VARIANTS",
    "cells",
    "disjoint_config",
    "js_from_payoff",
    "measure_disjoint",
    "plot",
    "ring_config",
    "robustness_table",
    "run_group",
    "summarize",
]

LOG2 = math.log(2.0)
LOG4 = math.log(4.0)
#: variant name -> gangen.mixgan.train preset
VARIANTS = {"ns-gan": "gan", "gan-gp": "gan-gp", "dragan-ns": "dragan", "wgan-gp": "wgan-gp"}
VARIANT_LABELS = {"ns-gan": "NS-GAN", "gan-gp": "GAN-GP", "dragan-ns": "DRAGAN-NS", "wgan-gp": "WGAN-GP"}
N_MODES = 8


def js_from_payoff(value: float) -> float:
    r"""JS_hat = (F + log 4)/2, the JS estimate of a discriminator with payoff F = E log D(x) + E log(1 - D(G(z))).

    max_D F = 2 d_JS - log 4 (Goodfellow et al. 2014), so for every D this is a lower
    bound on d_JS; D = 1/2 everywhere (F = -log 4) gives 0.

    >>> js_from_payoff(-math.log(4.0))
    0.0
    >>> round(js_from_payoff(0.0), 6) == round(math.log(2.0), 6)   # a perfect discriminator: log 2
    True
    """
    return 0.5 * (float(value) + LOG4)


@dataclass(frozen=True)
class ManyPathsConfig:
    """Both parts' grids and constants (every field becomes a CLI flag)."""

    parts: tuple[str, ...] = field(default=("disjoint", "ring"), metadata={"help": "which parts to run: disjoint, ring"})
    # ---- (a) disjoint supports, 1-D
    disjoint_checkpoints: tuple[int, ...] = field(default=(0, 25, 50, 75, 100, 125, 150, 200, 300, 400, 600, 800), metadata={
        "help": "generator steps at which the disjoint-support run is measured (one run per seed, to the largest)"})
    disjoint_seeds: int = field(default=2, metadata={"help": "repetitions of the disjoint-support run"})
    disjoint_data_mean: float = field(default=5.0, metadata={"help": "mean of the 1-D data N(mean, std^2)"})
    disjoint_data_std: float = field(default=0.25, metadata={"help": "standard deviation of the 1-D data"})
    disjoint_lr: float = field(default=1e-4, metadata={"help": "Adam learning rate of both players (NS-GAN)"})
    disjoint_log_every: int = field(default=10, metadata={"help": "history row every this many steps (js_disc_train)"})
    support_sigmas: float = field(default=4.0, metadata={"help": "the data's support is taken as mean +- this many std"})
    n_eval: int = field(default=2000, metadata={"help": "fresh generator and data samples per measurement"})
    best_response_steps: int = field(default=200, metadata={"help": "steps of the fresh best-response discriminator"})
    best_response_lr: float = field(default=1e-3, metadata={"help": "Adam learning rate of the best response"})
    # ---- (b) ring of 8
    ring_variants: tuple[str, ...] = field(default=tuple(VARIANTS), metadata={"help": f"variants, from {tuple(VARIANTS)}"})
    ring_lrs: tuple[float, ...] = field(default=(1e-4, 1e-3, 1e-2), metadata={"help": "learning rates (both players)"})
    ring_penalty_weights: tuple[float, ...] = field(default=(0.1, 1.0, 10.0), metadata={
        "help": "penalty weights lambda (not used by ns-gan)"})
    ring_seeds: int = field(default=2, metadata={"help": "repetitions per (variant, lr, lambda)"})
    ring_steps: int = field(default=2000, metadata={"help": "generator steps per ring run"})
    ring_std: float = field(default=0.05, metadata={
        "help": "std of each ring mode (PacGAN's is 0.01; 0.05 lets short CPU runs reach the 3-std quality radius)"})
    ring_eval_samples: int = field(default=2500, metadata={"help": "generator samples for mode coverage (VEEGAN/PacGAN: 2500)"})
    # ---- players and batches (both parts)
    hidden: int = field(default=128, metadata={"help": "MLP width of both players"})
    depth: int = field(default=2, metadata={"help": "MLP hidden layers of both players"})
    batch_size: int = field(default=128, metadata={"help": "batch size"})
    seed: int = field(default=0, metadata={"help": "study seed; each cell derives its own from it"})

    def __post_init__(self) -> None:
        if not self.parts or any(p not in ("disjoint", "ring") for p in self.parts):
            raise ValueError(f"parts must be a non-empty subset of ('disjoint', 'ring'); got {self.parts}")
        if not self.disjoint_checkpoints:
            raise ValueError("disjoint_checkpoints must hold at least one step count")
        for t in self.disjoint_checkpoints:
            check_nonneg_int(t, "each of disjoint_checkpoints")
        for name in ("disjoint_seeds", "ring_seeds", "ring_steps", "disjoint_log_every", "n_eval", "best_response_steps",
                     "ring_eval_samples", "hidden", "batch_size"):
            check_positive_int(getattr(self, name), name)
        if self.n_eval <= 5:
            raise ValueError(f"n_eval must exceed knn_js's k = 5; got {self.n_eval}")
        check_nonneg_int(self.depth, "depth")
        for name in ("disjoint_data_std", "disjoint_lr", "support_sigmas", "best_response_lr", "ring_std"):
            check_positive_float(getattr(self, name), name)
        if not math.isfinite(self.disjoint_data_mean):
            raise ValueError(f"disjoint_data_mean must be finite; got {self.disjoint_data_mean}")
        if not self.ring_variants or any(v not in VARIANTS for v in self.ring_variants):
            raise ValueError(f"ring_variants must be a non-empty subset of {tuple(VARIANTS)}; got {self.ring_variants}")
        for name in ("ring_lrs", "ring_penalty_weights"):
            values = getattr(self, name)
            if not values:
                raise ValueError(f"{name} must hold at least one value")
            for v in values:
                check_positive_float(v, f"each of {name}")
        check_nonneg_int(self.seed, "seed")


# Timings on the shared 2-core CPU (load ~4-5, one thread), MLP width 128: a generator step
# takes ~4-8 ms for NS-GAN, GAN-GP and DRAGAN-NS and ~20-75 ms for WGAN-GP (5 critic steps,
# each with a double backward); the 1-D disjoint run ~5-10 ms per step, plus one
# measurement per checkpoint (the best response's 200 steps dominate it).
PRESETS = {
    "tiny": {"disjoint_checkpoints": (0, 4, 8), "disjoint_seeds": 1, "disjoint_log_every": 2, "n_eval": 200,
             "best_response_steps": 10, "ring_variants": ("ns-gan", "gan-gp"), "ring_lrs": (1e-3,),
             "ring_penalty_weights": (1.0,), "ring_seeds": 1, "ring_steps": 10, "ring_eval_samples": 500,
             "hidden": 16, "batch_size": 32},
    "quick": {"disjoint_checkpoints": (0, 25, 50, 75, 100, 150, 200, 300, 400), "disjoint_seeds": 2,
              "ring_lrs": (1e-3, 1e-2), "ring_penalty_weights": (1.0, 10.0), "ring_seeds": 1, "ring_steps": 1000},
    # the generator leaves the disjoint phase after ~100 steps (quick preset): dense checkpoints there
    "paper": {"disjoint_checkpoints": tuple(range(0, 151, 15)) + (200, 300, 400, 600, 800, 1000), "disjoint_seeds": 3},
}


def disjoint_config(config: ManyPathsConfig, steps: int, seed: int) -> MixGANConfig:
    """The NS-GAN (T = 1) of part (a): 1-D latent, ``steps`` generator steps.

    >>> cfg = disjoint_config(ManyPathsConfig(), 400, seed=1)
    >>> (cfg.loss, cfg.n_components, cfg.latent_dim, cfg.steps)
    ('nonsaturating', 1, 1, 400)
    """
    return preset("gan", steps=steps, hidden=config.hidden, depth=config.depth, batch_size=config.batch_size,
                  latent_dim=1, lr_g=config.disjoint_lr, lr_d=config.disjoint_lr,
                  log_every=config.disjoint_log_every, seed=seed)


def ring_config(config: ManyPathsConfig, variant: str, lr: float, penalty_weight: float, seed: int) -> MixGANConfig:
    """The GAN (T = 1) of part (b) for one grid point; ``penalty_weight`` is ignored by ns-gan."""
    extra = {} if variant == "ns-gan" else {"penalty_weight": penalty_weight}
    return preset(VARIANTS[variant], steps=config.ring_steps, hidden=config.hidden, depth=config.depth,
                  batch_size=config.batch_size, latent_dim=2, lr_g=lr, lr_d=lr,
                  log_every=max(config.ring_steps // 10, 1), seed=seed, **extra)


def _shared_seed(config: ManyPathsConfig, part: str, rep: int, stream: str) -> int:
    # One training seed per (part, rep): every checkpoint of a disjoint run is a state of the same
    # trajectory, and every ring grid point starts from the same initial players.
    return derive_seed(config.seed, {"part": part, "rep": rep, "stream": stream}) % (2**31 - 1)


def _checkpoint_steps(config: ManyPathsConfig) -> tuple[int, ...]:
    return tuple(sorted(set(config.disjoint_checkpoints)))


def cells(config: ManyPathsConfig) -> list[Cell]:
    """Part (a): one cell per rep (one run, every checkpoint); part (b): one per (variant, lr, lambda, rep). Each alone.

    >>> c = cells(ManyPathsConfig(parts=("disjoint",), disjoint_checkpoints=(50, 0, 25), disjoint_seeds=2))
    >>> [(x["rep"], x["step"], x["checkpoints"]) for x in c]
    [(0, 50, '0,25,50'), (1, 50, '0,25,50')]
    """
    out = []
    if "disjoint" in config.parts:
        steps = _checkpoint_steps(config)
        for rep in range(config.disjoint_seeds):
            out.append(make_cell(config.seed, {"part": "disjoint", "variant": "ns-gan", "lr": config.disjoint_lr,
                                               "penalty_weight": 0.0, "step": max(steps),
                                               "checkpoints": steps_param(steps), "rep": rep}))
    if "ring" in config.parts:
        for variant in config.ring_variants:
            weights = (0.0,) if variant == "ns-gan" else config.ring_penalty_weights
            for lr in config.ring_lrs:
                for w in weights:
                    for rep in range(config.ring_seeds):
                        out.append(make_cell(config.seed, {"part": "ring", "variant": variant, "lr": lr,
                                                           "penalty_weight": w, "step": config.ring_steps, "rep": rep}))
    return out


def _disjoint_data(config: ManyPathsConfig) -> Gaussian:
    return Gaussian(1, sigma2=config.disjoint_data_std**2, mean=[config.disjoint_data_mean])


def measure_disjoint(generators: Mixture, discriminators: Mixture, config: ManyPathsConfig, rep: int) -> list[dict]:
    """Part (a)'s measurement of one state of the players: w1, js_plugin, js_knn, js_disc, js_best, gen_* rows.

    Draws ``n_eval`` generator and data samples and trains the fresh best-response
    discriminator from the evaluation seeds of repetition ``rep`` only (the same at every
    checkpoint), so the rows depend on the players' parameters alone. Callable inside
    :func:`gangen.mixgan.train`'s callback (under ``torch.no_grad()``): the best response
    trains under ``torch.enable_grad()``. The players are not modified. Rows are dicts
    ``{"metric", "value"}``; ``js_knn`` is missing when the generator's samples repeat.

    >>> c = ManyPathsConfig(hidden=4, batch_size=8, n_eval=20, best_response_steps=2)
    >>> res = train(disjoint_config(c, 0, seed=0), _disjoint_data(c))
    >>> rows = {r["metric"]: r["value"] for r in measure_disjoint(res.generators, res.discriminators, c, 0)}
    >>> round(rows["js_plugin"], 12) == round(math.log(2.0), 12)   # no generator sample equals a data sample
    True
    """
    data = _disjoint_data(config)
    cfg = disjoint_config(config, 0, _shared_seed(config, "disjoint", rep, "train"))  # the game and the players
    eval_seed = _shared_seed(config, "disjoint", rep, "eval")
    x_gen = generators.sample(config.n_eval, seed=eval_seed).double().numpy()  # (n_eval, 1)
    x_data = data.sample(config.n_eval, seed=eval_seed + 1)  # (n_eval, 1)
    lo = config.disjoint_data_mean - config.support_sigmas * config.disjoint_data_std
    hi = config.disjoint_data_mean + config.support_sigmas * config.disjoint_data_std
    budget = BestResponseBudget(steps=config.best_response_steps, lr=config.best_response_lr, restarts=1,
                                batch_size=config.batch_size)
    with torch.enable_grad():  # the fresh best response trains a network
        eq = measure_equilibrium(generators, discriminators, data, cfg, d_budget=budget,
                                 g_budget=BestResponseBudget(restarts=0), n_eval=config.n_eval, seed=eval_seed + 2)
    rows = [
        {"metric": "w1", "value": wasserstein(x_gen, x_data, method="1d")},
        {"metric": "js_plugin", "value": empirical_js(x_gen, x_data)},
        {"metric": "js_disc", "value": js_from_payoff(eq.value)},
        {"metric": "js_best", "value": js_from_payoff(eq.value + eq.d_gain)},
        {"metric": "gen_in_data", "value": float(np.mean((x_gen[:, 0] >= lo) & (x_gen[:, 0] <= hi)))},
        {"metric": "gen_mean", "value": float(x_gen.mean())},
        {"metric": "gen_std", "value": float(x_gen.std())},
    ]
    try:
        rows.append({"metric": "js_knn", "value": knn_js(x_gen, x_data)})
    except ValueError:  # the generator collapsed onto repeated points: no density, no estimate
        pass
    return rows


def _disjoint_rows(cell: Cell, config: ManyPathsConfig) -> list[dict]:
    rep = int(cell["rep"])
    checkpoints = set(parse_steps_param(cell["checkpoints"]))
    cfg = disjoint_config(config, int(cell["step"]), _shared_seed(config, "disjoint", rep, "train"))
    rows: list[dict] = []

    def measure(t: int, generators: Mixture, discriminators: Mixture) -> None:
        if t in checkpoints:
            rows.extend({"at_step": t, **row} for row in measure_disjoint(generators, discriminators, config, rep))

    result = train(cfg, _disjoint_data(config), callback=measure)
    for at_step, value in zip(result.history["step"], result.history["value"]):  # the training history
        rows.append({"at_step": int(at_step), "metric": "js_disc_train", "value": js_from_payoff(value)})
    return rows


def _ring_rows(cell: Cell, config: ManyPathsConfig) -> list[dict]:
    variant, rep = str(cell["variant"]), int(cell["rep"])
    target = ring8(std=config.ring_std)
    cfg = ring_config(config, variant, float(cell["lr"]), float(cell["penalty_weight"]),
                      _shared_seed(config, "ring", rep, "train"))
    result = train(cfg, target)
    cov = model_mode_coverage(result.generators, target, n_samples=config.ring_eval_samples,
                              seed=_shared_seed(config, "ring", rep, "eval"))
    rows = [
        {"metric": "modes_captured", "value": float(cov.modes_captured)},
        {"metric": "all_modes", "value": float(cov.modes_captured == N_MODES)},
        {"metric": "high_quality_fraction", "value": cov.high_quality_fraction},
        {"metric": "occupancy_kl_all", "value": cov.occupancy_kl_all},
        {"metric": "train_seconds", "value": float(result.history["time_s"].iloc[-1])},
    ]
    if math.isfinite(cov.occupancy_kl):
        rows.append({"metric": "occupancy_kl", "value": cov.occupancy_kl})
    return rows


def run_group(cells: list[Cell], config: ManyPathsConfig, device: str) -> list[list[dict]]:
    """Per cell: train the cell's GAN with :func:`gangen.mixgan.train` and measure it (CPU; one thread).

    A disjoint cell measures every checkpoint of its one run through the training callback
    (rows with ``at_step``); a ring cell measures its final players.
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny networks: OpenMP threads only contend
    try:
        return [_disjoint_rows(c, config) if c["part"] == "disjoint" else _ring_rows(c, config) for c in cells]
    finally:
        torch.set_num_threads(threads)


# --------------------------------------------------------------------------- summary


def _disjoint_summary(t: pd.DataFrame, config: ManyPathsConfig) -> dict:
    m = t[t["metric"] != "js_disc_train"].groupby(["at_step", "metric"])["value"].mean().unstack("metric")
    if m.empty:
        return {}
    js = t.loc[t["metric"] == "js_plugin", "value"]
    disjoint_steps = m.index[m["gen_in_data"] < 0.01].tolist()
    phase_end = max((s for s in disjoint_steps if all(x in disjoint_steps for x in m.index[m.index <= s])), default=None)
    out: dict[str, Any] = {
        "js_plugin_all_log2": bool(np.all(np.abs(js - LOG2) <= 1e-12)),
        "js_plugin_max_abs_dev_from_log2": float(np.abs(js - LOG2).max()),
        "by_step": {str(int(s)): {k: float(v) for k, v in row.items() if pd.notna(v)} for s, row in m.iterrows()},
        "disjoint_phase_last_step": None if phase_end is None else int(phase_end),
    }
    if phase_end is not None and phase_end > m.index.min():
        first, last = m.loc[m.index.min()], m.loc[phase_end]
        out["disjoint_phase"] = {
            "w1_start": float(first["w1"]), "w1_end": float(last["w1"]),
            "js_knn_range": [float(m.loc[:phase_end, "js_knn"].min()), float(m.loc[:phase_end, "js_knn"].max())]
            if "js_knn" in m else None,
            "js_best_range": [float(m.loc[:phase_end, "js_best"].min()), float(m.loc[:phase_end, "js_best"].max())],
            "js_disc_range": [float(m.loc[:phase_end, "js_disc"].min()), float(m.loc[:phase_end, "js_disc"].max())],
        }
    final = m.loc[m.index.max()]
    out["final"] = {k: float(v) for k, v in final.items() if pd.notna(v)}
    return out


def _ring_summary(t: pd.DataFrame) -> dict:
    out: dict[str, Any] = {}
    for variant in [v for v in VARIANTS if v in set(t["variant"])]:
        part = t[t["variant"] == variant]
        allm = part[part["metric"] == "all_modes"]
        modes = part[part["metric"] == "modes_captured"]
        hq = part[part["metric"] == "high_quality_fraction"]
        grid = allm.groupby(["lr", "penalty_weight"])["value"].mean()
        out[variant] = {
            "n_runs": int(len(allm)),
            "frac_runs_all_modes": float(allm["value"].mean()),
            "frac_grid_points_all_modes_every_seed": float((grid == 1.0).mean()),
            "mean_modes_captured": float(modes["value"].mean()),
            "mean_high_quality_fraction": float(hq["value"].mean()),
            "frac_all_modes_by_lr_lambda": {f"lr={lr:g},lambda={w:g}": float(v) for (lr, w), v in grid.items()},
            "frac_all_modes_by_lr": {f"{lr:g}": float(v) for lr, v in allm.groupby("lr")["value"].mean().items()},
        }
    return out


def summarize(table: pd.DataFrame, config: ManyPathsConfig) -> dict:
    """Part (a): per-checkpoint means and the disjoint phase; part (b): robustness per variant; verdicts."""
    out: dict[str, Any] = {"disjoint": {}, "ring": {}, "verdict": []}
    d = table[table["part"] == "disjoint"]
    if len(d):
        s = _disjoint_summary(d, config)
        out["disjoint"] = s
        ph = s.get("disjoint_phase")
        if ph:
            out["verdict"].append(
                f"(a) disjoint supports: until step {s['disjoint_phase_last_step']} fewer than 1% of generator samples "
                f"lie in the data's support; meanwhile W1 falls from {ph['w1_start']:.3f} to {ph['w1_end']:.3f}, the "
                f"plug-in JS is log 2 at every checkpoint ({'exactly' if s['js_plugin_all_log2'] else 'NOT exactly'}), "
                + (f"the k-NN density JS stays in [{ph['js_knn_range'][0]:.3f}, {ph['js_knn_range'][1]:.3f}], "
                   if ph.get("js_knn_range") else "")
                + f"the discriminators' lower bounds on JS reach [{ph['js_best_range'][0]:.3f}, "
                f"{ph['js_best_range'][1]:.3f}] (fresh best response) and [{ph['js_disc_range'][0]:.3f}, "
                f"{ph['js_disc_range'][1]:.3f}] (training discriminator); log 2 = {LOG2:.3f}.")
        elif s:
            out["verdict"].append("(a) disjoint supports: the generator overlapped the data already at the second "
                                  "checkpoint; use earlier checkpoints to resolve the disjoint phase.")
    r = table[table["part"] == "ring"]
    if len(r):
        s = _ring_summary(r)
        out["ring"] = s
        text = ", ".join(f"{VARIANT_LABELS[v]} {e['frac_runs_all_modes']:.2f} of {e['n_runs']}" for v, e in s.items())
        ns = s.get("ns-gan", {}).get("frac_runs_all_modes")
        better = [VARIANT_LABELS[v] for v, e in s.items() if v != "ns-gan" and ns is not None
                  and e["frac_runs_all_modes"] > ns]
        out["verdict"].append(
            f"(b) ring of 8 (std {config.ring_std:g}, {config.ring_steps} steps): fraction of runs capturing all 8 "
            f"modes: {text}. " + (f"More robust than NS-GAN: {', '.join(better) if better else 'none'}."
                                  if ns is not None else ""))
        out["ring_table_markdown"] = robustness_table(s, config)
    return out


def robustness_table(ring: dict, config: ManyPathsConfig) -> str:
    """Part (b) as a markdown table: per variant, runs capturing all 8 modes, overall and per learning rate.

    ``ring`` is ``summarize(...)["ring"]`` (per variant: ``n_runs``, ``frac_runs_all_modes``,
    ``frac_grid_points_all_modes_every_seed``, ``mean_modes_captured``, ``mean_high_quality_fraction``,
    ``frac_all_modes_by_lr``).

    >>> row = {"n_runs": 2, "frac_runs_all_modes": 0.5, "frac_grid_points_all_modes_every_seed": 0.0,
    ...        "mean_modes_captured": 6.5, "mean_high_quality_fraction": 0.4, "frac_all_modes_by_lr": {"0.001": 0.5}}
    >>> print(robustness_table({"ns-gan": row}, ManyPathsConfig(ring_lrs=(1e-3,))).splitlines()[2])
    | NS-GAN | 1 of 2 (0.50) | 0.00 | 6.50 | 0.40 | 0.50 |
    """
    lrs = [f"{lr:g}" for lr in sorted(config.ring_lrs)]
    head = ("| variant | runs with all 8 modes | grid points with all 8 in every seed | mean modes captured "
            "| mean high-quality fraction | " + " | ".join(f"all 8 modes at lr {lr}" for lr in lrs) + " |")
    lines = [head, "|" + "---|" * (5 + len(lrs))]
    for variant, e in ring.items():
        by_lr = {f"{float(k):g}": v for k, v in e.get("frac_all_modes_by_lr", {}).items()}
        cells = [VARIANT_LABELS.get(variant, variant),
                 f"{round(e['frac_runs_all_modes'] * e['n_runs'])} of {e['n_runs']} ({e['frac_runs_all_modes']:.2f})",
                 f"{e['frac_grid_points_all_modes_every_seed']:.2f}", f"{e['mean_modes_captured']:.2f}",
                 f"{e['mean_high_quality_fraction']:.2f}"]
        cells += [f"{by_lr[lr]:.2f}" if lr in by_lr else "–" for lr in lrs]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------- figures


def _disjoint_figure(t: pd.DataFrame, config: ManyPathsConfig, summary: dict, fig_dir: Path) -> list[Path]:
    from gangen.plotting import new_panels, plot_band, save_figure, series_colors

    if t.empty:
        return []
    fig, axes = new_panels(1, 2, width="double", panel_aspect=0.62)
    ax_js, ax_w = axes
    colors = series_colors(["js_plugin", "js_knn", "js_best", "js_disc", "w1", "gen_in_data"])
    labels = {"js_plugin": "plug-in JS (samples)", "js_knn": "k-NN JS (densities)",
              "js_best": "fresh best-response D", "js_disc": "training D"}
    train_rows = t[t["metric"] == "js_disc_train"]
    if len(train_rows):
        hist = train_rows.groupby("at_step")["value"].mean()
        ax_js.plot(hist.index, hist.values, color=colors["js_disc"], linewidth=0.6, alpha=0.45,
                   label="training D, training batches")
    for metric in ("js_plugin", "js_knn", "js_best", "js_disc"):
        rows = t[t["metric"] == metric]
        if len(rows):
            plot_band(ax_js, rows["at_step"], rows["value"], band="std", color=colors[metric], label=labels[metric],
                      marker="o" if metric != "js_plugin" else None, linestyle="-" if metric != "js_plugin" else "--")
    ax_js.axhline(LOG2, color="0.4", linewidth=0.6, linestyle=":")
    ax_js.text(1.0, LOG2, "log 2", transform=ax_js.get_yaxis_transform(), ha="right", va="bottom", fontsize=6.5,
               color="0.3")
    ax_js.set(xlabel="generator step", ylabel="JS estimate (nats)", ylim=(-0.08, 1.05))
    ax_js.legend(loc="upper right", fontsize=6, ncol=2, columnspacing=1.0)
    w1 = t[t["metric"] == "w1"]
    plot_band(ax_w, w1["at_step"], w1["value"], band="std", log=True, color=colors["w1"], label=r"$W_1$(generator, data)")
    ax_w.set(xlabel="generator step", ylabel=r"$W_1$ (log scale)", yscale="log")
    ax_o = ax_w.twinx()
    ov = t[t["metric"] == "gen_in_data"]
    plot_band(ax_o, ov["at_step"], ov["value"], band="std", color=colors["gen_in_data"], label="generator mass in data support",
              marker="s", linestyle="--")
    ax_o.set(ylim=(-0.03, 1.03), ylabel="generator mass in data support")
    ax_o.spines["right"].set_visible(True)
    ax_o.grid(False)
    end = summary.get("disjoint", {}).get("disjoint_phase_last_step")
    measured = t.loc[t["metric"] != "js_disc_train", "at_step"]
    last = int(measured.max())
    lin = max(min(100, last), 1)  # linear up to 100 steps (the disjoint phase), logarithmic after
    ticks = [x for x in (0, 25, 50, 75, 100, 200, 500, 1000, 2000, 5000) if x <= last]
    for ax in (ax_js, ax_w):
        if end is not None:
            ax.axvspan(measured.min(), end, color="0.92", zorder=0, linewidth=0)
        if last > lin:
            ax.set_xscale("symlog", linthresh=lin, linscale=2.0)
            ax.set_xticks(ticks, [str(x) for x in ticks])
            ax.minorticks_off()
    handles = ax_w.get_legend_handles_labels()[0] + ax_o.get_legend_handles_labels()[0]
    ax_w.legend(handles, [h.get_label() for h in handles], loc="center left", fontsize=6)
    ax_js.set_title(f"JS between generator and data N({config.disjoint_data_mean:g}, {config.disjoint_data_std:g}$^2$)")
    ax_w.set_title("progress: $W_1$ and overlap (grey: supports disjoint)")
    n_rep = t["rep"].nunique()
    fig.text(0.5, -0.01, f"mean ± sd over {n_rep} seeds" if n_rep > 1 else "one seed", ha="center", va="top",
             fontsize=6.5, color="0.35")
    return list(save_figure(fig, fig_dir / "many_paths_disjoint"))


def _ring_figure(t: pd.DataFrame, config: ManyPathsConfig, summary: dict, fig_dir: Path) -> list[Path]:
    import matplotlib as mpl

    from gangen.plotting import new_panels, save_figure

    variants = [v for v in VARIANTS if v in set(t["variant"])]
    if not variants:
        return []
    allm = t[t["metric"] == "all_modes"]
    modes = t[t["metric"] == "modes_captured"]
    lrs = sorted(allm["lr"].unique())
    fig, axes = new_panels(1, len(variants), width="double", panel_aspect=1.0)
    cmap, norm = mpl.colormaps["viridis"], mpl.colors.Normalize(0.0, 1.0)
    for ax, variant in zip(axes, variants):
        part = allm[allm["variant"] == variant]
        weights = sorted(part["penalty_weight"].unique())
        frac = part.groupby(["lr", "penalty_weight"])["value"].mean().unstack("penalty_weight").reindex(index=lrs, columns=weights)
        nmod = modes[modes["variant"] == variant].groupby(["lr", "penalty_weight"])["value"].mean().unstack(
            "penalty_weight").reindex(index=lrs, columns=weights)
        count = part.groupby(["lr", "penalty_weight"])["value"].count().unstack("penalty_weight").reindex(index=lrs, columns=weights)
        ax.imshow(frac.to_numpy(dtype=float), cmap=cmap, norm=norm, aspect="auto", origin="lower")
        for i in range(len(lrs)):
            for j in range(len(weights)):
                f, k, n = frac.iat[i, j], nmod.iat[i, j], count.iat[i, j]
                if pd.isna(f):
                    continue
                ax.text(j, i, f"{int(round(f * n))}/{int(n)}\n{k:.1f} modes", ha="center", va="center", fontsize=6,
                        color="white" if f < 0.6 else "black")
        ax.set_xticks(range(len(weights)), ["—" if w == 0 else f"{w:g}" for w in weights])
        ax.set_yticks(range(len(lrs)), [f"{lr:g}" for lr in lrs])
        ax.set_xlabel(r"penalty weight $\lambda$")
        s = summary.get("ring", {}).get(variant, {})
        ax.set_title(f"{VARIANT_LABELS[variant]}\nall 8 modes in {int(round(s.get('frac_runs_all_modes', 0.0) * s.get('n_runs', 0)))}"
                     f" of {s.get('n_runs', 0)} runs")
        ax.grid(False)
        ax.tick_params(length=0)
    axes[0].set_ylabel("learning rate")
    cbar = fig.colorbar(mpl.cm.ScalarMappable(norm=norm, cmap=cmap), ax=list(axes), shrink=0.8, pad=0.02)
    cbar.set_label("fraction of seeds with all 8 modes")
    steps = int(t["step"].iloc[0])
    fig.text(0.5, -0.02, f"ring of 8 (radius 1, std {config.ring_std:g}), {steps} generator steps per run; "
             "each cell: seeds capturing all 8 modes / seeds, and the mean number of modes captured",
             ha="center", va="top", fontsize=6.5, color="0.35")
    return list(save_figure(fig, fig_dir / "many_paths_ring"))


def plot(table: pd.DataFrame, config: ManyPathsConfig, summary: dict, fig_dir: Path) -> list[Path]:
    """Part (a): JS estimates and W1 along training; part (b): heatmaps of the all-modes fraction."""
    from gangen.plotting import paper_style

    with paper_style():
        paths = (_disjoint_figure(table[table["part"] == "disjoint"], config, summary, fig_dir)
                 + _ring_figure(table[table["part"] == "ring"], config, summary, fig_dir))
    if summary.get("ring_table_markdown"):
        table_path = fig_dir / "many_paths_robustness.md"
        atomic_write_text(table_path, summary["ring_table_markdown"])
        paths.append(table_path)
    return paths


STUDY = Study(
    name="many_paths",
    config_cls=ManyPathsConfig,
    cells=cells,
    run_group=run_group,
    summarize=summarize,
    plot=plot,
    presets=PRESETS,
    version="1",
    cache_ignore=("parts", "disjoint_checkpoints", "disjoint_seeds", "disjoint_lr", "ring_variants", "ring_lrs",
                  "ring_penalty_weights", "ring_seeds", "ring_steps"),
    description=__doc__.split("\n\n")[0],
)

if __name__ == "__main__":
    main(STUDY)
