r"""Study 4, Section 4-5: does MIX+GAN reach a smaller measured epsilon and cover more modes than a GAN?

A pair of mixed strategies (S_u, S_v) is an epsilon-approximate equilibrium of the game
with payoff F(u, v) = E_x phi(D_v(x)) + E_z phi(1 - D_v(G_u(z))) when (Arora et al. 2017,
Section 4)

    for all v: E_{u~S_u} F(u, v) <= V + eps,      for all u: E_{v~S_v} F(u, v) >= V - eps.

Theorem 4.2 says small mixtures (T components) reach a small eps; the paper proposes
MIX+GAN (Section 5) but never measures eps. This study trains, on the toy mode-collapse
benchmarks ring-8 (8 Gaussians on the unit circle, std 0.01) and grid-25 (25 Gaussians
on {-4,-2,0,2,4}^2, std 0.05), per cell (dataset, method, rep):

- ``gan``      a non-saturating GAN (T = 1), MLP players (``depth`` x ``hidden``), Adam(``lr``, beta1 0.5);
- ``mixgan``   MIX+GAN, the same players with T = ``n_components``, entropy regulariser ``entropy_coef``;
- ``gan5x``    one GAN whose players are widened until generator + discriminator hold
               about ``big_factor`` times the parameters of the ``gan`` players (the paper's
               "DCGAN (5x size)" control; the exact counts are recorded as ``params_g``, ``params_d``);
- ``wgan``     WGAN, weight clip ``clip``, RMSProp(``wgan_lr``), ``n_critic`` critic steps;
- ``mixwgan``  MIX+WGAN, the same with T = ``n_components``;

all for ``steps`` generator steps on batches of ``batch_size``, and records (metric names
as in ``results.csv``):

- ``modes_captured``, ``hq_fraction``, ``occupancy_kl`` (left out when no sample is high
  quality) and ``occupancy_kl_all``: :func:`gangen.metrics.modes.mode_coverage` of
  ``n_samples`` samples of the generator mixture (component by weight, then G(z)), as
  VEEGAN/PacGAN define them; ``component_modes``: the modes captured by the samples of
  each component alone, averaged over the components (T = 1: equals ``modes_captured``);
- ``eps``, ``d_gain``, ``g_gain``, ``V`` and the trained/component gains:
  :func:`gangen.mixgan.measure_equilibrium` on ``n_eval`` fresh samples, each side's
  best response trained for ``br_steps`` Adam(``br_lr``) steps from ``br_restarts`` fresh
  networks of the players' family (budget columns ``d_budget_*``, ``g_budget_*``; the
  discriminators on the ensemble engine, the generators as a vmapped Mixture). The
  log-loss methods are measured in the *bounded* game phi(t) = log(delta + (1 - delta) t)
  (``delta``; F in [2 log delta, 0]), whatever they were trained with, since with the
  plain log a collapsed GAN has an unbounded best-response gain. The Wasserstein methods
  are measured in their own game (phi(t) = t, critic weights clipped), whose critic
  outputs are not bounded: a best-response generator gains by moving its mass far along
  the critic's descent direction, so their eps is a budget-limited lower bound of a
  quantity without a finite supremum (see the README);
- ``w_g{i}``, ``w_d{i}``: the final mixture weights; ``params_g``, ``params_d``: trainable
  parameters of each side, all components together (logits excluded);
- ``hist_value`` (column ``step``): the training payoff w_u^T F w_v on the training
  batches (for the Wasserstein methods the critic's objective, the paper's Figure 4),
  averaged in ``n_history_points`` equal bins of steps; ``hist_w_g{i}``, ``hist_w_d{i}``
  (T > 1): the weights at the end of each bin; ``value_roughness``: the mean absolute
  change of the logged payoff from one step to the next over the second half of training;
- ``sample_x``, ``sample_y``, ``sample_component`` (column ``index``), for rep <
  ``n_plot_reps``: the first ``n_plot_samples`` of the evaluation samples, for the figures.

Figures: ``equilibrium_samples`` (dataset x method scatter with the mode centres),
``equilibrium_wasserstein`` (WGAN vs MIX+WGAN objective over training), ``equilibrium_weights``
(mixture weights over training), ``equilibrium_eps`` (eps per method and seed) and
``equilibrium_modes`` (modes captured and high-quality fraction per method and seed).
``summary.json`` holds the table (mean, std, n over seeds per dataset x method), the
parameter counts, the sorted final weights and the verdict: ``verdict.text`` answers, per
dataset, whether MIX+GAN captures more modes, has a larger high-quality fraction and a
smaller eps than the GAN and the big GAN (and MIX+WGAN than WGAN, plus the Figure 4
claims), "yes"/"the opposite" only when a two-sided Welch test over seeds gives p < 0.05;
``verdict.details`` gives the numbers, with a Mann-Whitney p beside.

Every measured eps is a lower bound that depends on the best-response budget (it is
recorded beside it): a longer-trained response can only find a larger gain.

Run with ``python -m gangen.studies.equilibrium [--preset tiny|quick|paper]``.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from gangen._validation import (
    check_choice,
    check_nonneg_int,
    check_open_unit,
    check_positive_float,
    check_positive_int,
)
from gangen.studies.runner import Cell, Study, grid, main

DATASETS = ("ring8", "grid25")
METHODS = ("gan", "mixgan", "gan5x", "wgan", "mixwgan")
LABELS = {"gan": "GAN", "mixgan": "MIX+GAN", "gan5x": "GAN (5\u00d7 params)", "wgan": "WGAN", "mixwgan": "MIX+WGAN"}
DATASET_LABELS = {"ring8": "ring-8", "grid25": "grid-25"}
LOG_METHODS = ("gan", "mixgan", "gan5x")
WASSERSTEIN_METHODS = ("wgan", "mixwgan")
#: Metrics summarised per dataset x method (the table of ``summary.json``).
TABLE_METRICS = ("modes_captured", "hq_fraction", "occupancy_kl", "occupancy_kl_all", "component_modes", "eps",
                 "d_gain", "g_gain", "V", "value_roughness", "params_g", "params_d")


@dataclass(frozen=True)
class EquilibriumConfig:
    """Grid, players, training and measurement budgets of the equilibrium study (every field is a CLI flag)."""

    datasets: tuple[str, ...] = field(default=DATASETS, metadata={"help": "toy datasets (ring8, grid25)"})
    methods: tuple[str, ...] = field(default=METHODS, metadata={"help": "methods: gan, mixgan, gan5x, wgan, mixwgan"})
    n_seeds: int = field(default=2, metadata={"help": "independent runs (seeds) per dataset x method"})
    steps: int = field(default=600, metadata={"help": "generator steps of every run"})
    batch_size: int = field(default=64, metadata={"help": "batch size B (per generator and for the real batch)"})
    hidden: int = field(default=128, metadata={"help": "MLP width of the players"})
    depth: int = field(default=2, metadata={"help": "hidden layers of the MLP players"})
    latent_dim: int = field(default=2, metadata={"help": "latent dimension k, z ~ N(0, I_k)"})
    n_components: int = field(default=5, metadata={"help": "T of MIX+GAN and MIX+WGAN"})
    big_factor: float = field(default=5.0, metadata={"help": "parameter ratio of the big GAN (gan5x) to the GAN"})
    lr: float = field(default=1e-3, metadata={"help": "Adam learning rate of the log-loss methods (authors: 1e-4)"})
    beta1: float = field(default=0.5, metadata={"help": "Adam beta1 of the log-loss methods (authors' code: 0.5)"})
    entropy_coef: float = field(default=0.1, metadata={"help": "coefficient of R_ent on each side (authors: 0.1)"})
    wgan_lr: float = field(default=5e-4, metadata={"help": "RMSProp learning rate of WGAN / MIX+WGAN (WGAN paper: 5e-5)"})
    clip: float = field(default=0.01, metadata={"help": "WGAN weight clip c"})
    n_critic: int = field(default=5, metadata={"help": "critic steps per generator step (WGAN)"})
    delta: float = field(default=0.1, metadata={"help": "phi(t) = log(delta + (1-delta) t) of the eps measurement (log-loss methods)"})
    br_steps: int = field(default=200, metadata={"help": "Adam steps of each best response (eps)"})
    br_restarts: int = field(default=2, metadata={"help": "fresh networks per best response (eps)"})
    br_lr: float = field(default=1e-3, metadata={"help": "Adam learning rate of the best responses (eps)"})
    br_batch_size: int = field(default=256, metadata={"help": "batch size of the best responses (eps)"})
    n_eval: int = field(default=5000, metadata={"help": "samples behind every payoff estimate of the eps measurement"})
    n_samples: int = field(default=2500, metadata={"help": "generator samples for the mode metrics (VEEGAN/PacGAN: 2500)"})
    n_history_points: int = field(default=40, metadata={"help": "bins of the training history kept per run"})
    n_plot_reps: int = field(default=1, metadata={"help": "reps (from 0) whose samples are kept for the figures"})
    n_plot_samples: int = field(default=500, metadata={"help": "samples kept per plotted run"})
    seed: int = field(default=0, metadata={"help": "study seed; each cell derives its own from it"})

    def __post_init__(self) -> None:
        for name, allowed in (("datasets", DATASETS), ("methods", METHODS)):
            values = getattr(self, name)
            if not values or len(set(values)) != len(values):
                raise ValueError(f"{name} must be a non-empty tuple without repeats; got {values}")
            for v in values:
                check_choice(v, allowed, f"each of {name}")
        for name in ("n_seeds", "steps", "batch_size", "hidden", "depth", "latent_dim", "n_critic", "br_batch_size",
                     "n_eval", "n_samples", "n_history_points", "n_plot_samples"):
            check_positive_int(getattr(self, name), name)
        if self.n_components < 2:
            raise ValueError(f"n_components must be >= 2 (T = 1 is the plain GAN); got {self.n_components}")
        for name in ("lr", "wgan_lr", "clip", "br_lr"):
            check_positive_float(getattr(self, name), name)
        if not (isinstance(self.big_factor, (int, float)) and math.isfinite(self.big_factor) and self.big_factor >= 1):
            raise ValueError(f"big_factor must be a finite number >= 1; got {self.big_factor!r}")
        if not 0.0 <= self.beta1 < 1.0:
            raise ValueError(f"beta1 must lie in [0, 1); got {self.beta1}")
        if not (isinstance(self.entropy_coef, (int, float)) and math.isfinite(self.entropy_coef) and self.entropy_coef >= 0):
            raise ValueError(f"entropy_coef must be a finite number >= 0; got {self.entropy_coef!r}")
        check_open_unit(self.delta, "delta")
        check_nonneg_int(self.br_steps, "br_steps")
        check_positive_int(self.br_restarts, "br_restarts")
        check_nonneg_int(self.n_plot_reps, "n_plot_reps")
        check_nonneg_int(self.seed, "seed")
        if self.n_plot_samples > self.n_samples:
            raise ValueError(f"n_plot_samples ({self.n_plot_samples}) must be <= n_samples ({self.n_samples})")


PRESETS = {
    # smoke test: seconds
    "tiny": {"n_seeds": 1, "steps": 20, "hidden": 8, "n_components": 3, "br_steps": 10, "br_batch_size": 64,
             "n_eval": 300, "n_samples": 300, "n_history_points": 5, "n_plot_samples": 50},
    # <= 5 minutes on 2 CPU cores: 2 datasets x 5 methods x 2 seeds, short runs, narrow players
    "quick": {"n_seeds": 2, "steps": 600, "hidden": 64, "br_steps": 150},
    # the committed results (budget in the README): 2 x 5 x 5 = 50 cells
    "paper": {"n_seeds": 5, "steps": 1500, "hidden": 128, "br_steps": 300},
}


# --------------------------------------------------------------------------- players


def mlp_parameters(in_dim: int, out_dim: int, hidden: int, depth: int) -> int:
    """Trainable parameters of an MLP in -> (hidden x depth) -> out with biases.

    p = in*h + h + (depth - 1)(h^2 + h) + h*out + out  (depth >= 1); in*out + out for depth 0.

    >>> mlp_parameters(2, 2, 128, 2)   # MLPGenerator(latent 2, out 2, 2 x 128)
    17154
    """
    if depth == 0:
        return in_dim * out_dim + out_dim
    return in_dim * hidden + hidden + (depth - 1) * (hidden * hidden + hidden) + hidden * out_dim + out_dim


def player_parameters(hidden: int, *, depth: int, latent_dim: int, dim: int) -> int:
    """Parameters of one generator (latent -> dim) plus one discriminator (dim -> 1) of width ``hidden``.

    >>> player_parameters(128, depth=2, latent_dim=2, dim=2)   # 17154 + 17025
    34179
    """
    return mlp_parameters(latent_dim, dim, hidden, depth) + mlp_parameters(dim, 1, hidden, depth)


def matched_hidden(hidden: int, factor: float, *, depth: int, latent_dim: int, dim: int) -> int:
    """The width h' whose generator + discriminator hold closest to ``factor`` times those of width ``hidden``.

    >>> matched_hidden(128, 5.0, depth=2, latent_dim=2, dim=2)   # 5 x 34179 = 170895 ~ 2 h^2 + 11 h
    290
    """
    target = factor * player_parameters(hidden, depth=depth, latent_dim=latent_dim, dim=dim)
    h = hidden
    while player_parameters(h + 1, depth=depth, latent_dim=latent_dim, dim=dim) <= target:
        h += 1
    below, above = (player_parameters(k, depth=depth, latent_dim=latent_dim, dim=dim) for k in (h, h + 1))
    return h if target - below <= above - target else h + 1


def dataset(name: str) -> Any:
    """The toy target: ``ring8()`` (radius 1, std 0.01) or ``grid25()`` (spacing 2, std 0.05)."""
    from gangen.samplers import grid25, ring8

    return {"ring8": ring8, "grid25": grid25}[check_choice(name, DATASETS, "dataset")]()


def method_config(method: str, config: EquilibriumConfig, *, seed: int, dim: int = 2) -> Any:
    """The :class:`gangen.mixgan.MixGANConfig` that trains ``method`` (log_every = 1; history binned later)."""
    from gangen.mixgan import preset

    common = dict(steps=config.steps, batch_size=config.batch_size, hidden=config.hidden, depth=config.depth,
                  latent_dim=config.latent_dim, entropy_coef=config.entropy_coef, log_every=1, seed=seed)
    log_game = dict(loss="nonsaturating", lr_g=config.lr, lr_d=config.lr, beta1=config.beta1)
    w_game = dict(lr_g=config.wgan_lr, lr_d=config.wgan_lr, clip=config.clip, n_critic=config.n_critic)
    T = config.n_components
    if method == "gan":
        return preset("gan", **common, **log_game)
    if method == "mixgan":
        return preset("gan", **common, **log_game, n_components=T)
    if method == "gan5x":
        big = matched_hidden(config.hidden, config.big_factor, depth=config.depth, latent_dim=config.latent_dim, dim=dim)
        return preset("gan", **{**common, "hidden": big}, **log_game)
    if method == "wgan":
        return preset("wgan", **common, **w_game)
    if method == "mixwgan":
        return preset("wgan", **common, **w_game, n_components=T)
    raise ValueError(f"method must be one of {METHODS}; got {method!r}")


# --------------------------------------------------------------------------- one cell


def _bin_history(history: pd.DataFrame, n_bins: int, T: int) -> list[dict]:
    """Rows of the training history averaged in ``n_bins`` equal bins of steps (weights: end of bin)."""
    edges = np.linspace(0, len(history), min(n_bins, len(history)) + 1).round().astype(int)
    rows: list[dict] = []
    for lo, hi in zip(edges[:-1], edges[1:]):
        part = history.iloc[lo:hi]
        step = float(part["step"].iloc[-1]) + 1.0  # generator steps done by the end of the bin
        rows.append({"step": step, "metric": "hist_value", "value": float(part["value"].mean())})
        if T > 1:
            last = part.iloc[-1]
            rows += [{"step": step, "metric": f"hist_w_{side}{i}", "value": float(last[f"w_{side}{i}"])}
                     for side in ("g", "d") for i in range(T)]
    return rows


def _measure_cell(cell: Cell, config: EquilibriumConfig, device: str) -> list[dict]:
    from gangen.metrics.modes import mode_coverage
    from gangen.mixgan import BestResponseBudget, measure_equilibrium, train

    target = dataset(cell["dataset"])
    method = cell["method"]
    train_seed, eval_seed, sample_seed = (int(s) for s in np.random.SeedSequence(cell.seed).generate_state(3))
    cfg = method_config(method, config, seed=train_seed, dim=target.d)
    rows: list[dict] = []

    result = train(cfg, target, device=device)
    gens, discs, T = result.generators, result.discriminators, cfg.n_components

    # ---- mode metrics on n_samples draws of the generator mixture (component by weight, then G(z))
    comp = gens.draw_components(config.n_samples, seed=np.random.default_rng(sample_seed))  # (n,), as sample() draws
    x = gens.sample(config.n_samples, seed=sample_seed).detach().cpu().double().numpy()  # (n, 2)
    cov = mode_coverage(x, target.means, target.std)
    rows += [{"metric": "modes_captured", "value": cov.modes_captured},
             {"metric": "hq_fraction", "value": cov.high_quality_fraction},
             {"metric": "occupancy_kl_all", "value": cov.occupancy_kl_all}]
    if math.isfinite(cov.occupancy_kl):  # undefined (inf) when no sample is high quality: left out
        rows.append({"metric": "occupancy_kl", "value": cov.occupancy_kl})
    per_comp = [mode_coverage(x[comp == t], target.means, target.std).modes_captured
                for t in range(T) if np.any(comp == t)]
    rows.append({"metric": "component_modes", "value": float(np.mean(per_comp))})

    # ---- measured eps: log-loss methods in the bounded game (delta), Wasserstein methods in their own
    eps_cfg = dataclasses.replace(cfg, delta=config.delta) if method in LOG_METHODS else cfg
    budget = BestResponseBudget(steps=config.br_steps, lr=config.br_lr, restarts=config.br_restarts,
                                batch_size=config.br_batch_size)
    eq = measure_equilibrium(gens, discs, target, eps_cfg, d_budget=budget, g_budget=budget, n_eval=config.n_eval,
                             seed=eval_seed)
    record = eq.to_dict()
    cols = {k: v for k, v in record.items() if "_budget_" in k}
    cols.update(n_eval=int(record["n_eval"]), game="wasserstein" if method in WASSERSTEIN_METHODS else f"log(delta={config.delta:g})")
    for name, key in (("eps", "eps"), ("d_gain", "d_gain"), ("g_gain", "g_gain"), ("V", "value"),
                      ("d_gain_trained", "d_gain_trained"), ("g_gain_trained", "g_gain_trained"),
                      ("d_gain_components", "d_gain_components"), ("g_gain_components", "g_gain_components")):
        if record[key] is not None:
            rows.append({**cols, "metric": name, "value": record[key]})

    # ---- weights and sizes (no timings: a cell's rows must not depend on the machine's load)
    w_g = gens.weights().detach().cpu().double().numpy()
    w_d = discs.weights().detach().cpu().double().numpy()
    rows += [{"metric": f"w_g{i}", "value": float(w)} for i, w in enumerate(w_g)]
    rows += [{"metric": f"w_d{i}", "value": float(w)} for i, w in enumerate(w_d)]
    rows += [{"metric": "params_g", "value": sum(p.numel() for p in gens.player_parameters())},
             {"metric": "params_d", "value": sum(p.numel() for p in discs.player_parameters())},
             {"metric": "hidden", "value": cfg.hidden}]

    # ---- training history: binned payoff and weights, roughness of the payoff
    hist = result.history
    rows += _bin_history(hist, config.n_history_points, T)
    second_half = hist["value"].to_numpy()[len(hist) // 2:]
    if second_half.size >= 2:
        rows.append({"metric": "value_roughness", "value": float(np.mean(np.abs(np.diff(second_half))))})

    # ---- samples for the figures
    if cell["rep"] < config.n_plot_reps:
        for i in range(config.n_plot_samples):
            rows += [{"index": i, "metric": "sample_x", "value": float(x[i, 0])},
                     {"index": i, "metric": "sample_y", "value": float(x[i, 1])},
                     {"index": i, "metric": "sample_component", "value": int(comp[i])}]
    return rows


def cells(config: EquilibriumConfig) -> list[Cell]:
    """One cell per (dataset, method, rep); each cell runs alone (group None)."""
    return grid(config.seed, dataset=config.datasets, method=config.methods, rep=range(config.n_seeds))


def run_group(cells: list[Cell], config: EquilibriumConfig, device: str) -> list[list[dict]]:
    """Per cell: train, measure modes and eps; torch runs on one thread (tiny models), restored afterwards."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return [_measure_cell(cell, config, device) for cell in cells]
    finally:
        torch.set_num_threads(threads)


# --------------------------------------------------------------------------- summary


def _stats(values: pd.Series) -> dict:
    v = values.to_numpy(dtype=np.float64)
    return {"mean": float(v.mean()), "std": float(v.std(ddof=1)) if v.size > 1 else 0.0, "n": int(v.size)}


def _welch(a: np.ndarray, b: np.ndarray) -> float | None:
    """Two-sided Welch t-test p-value of mean(a) = mean(b); None when undefined (n < 2 or no spread)."""
    from scipy import stats

    if a.size < 2 or b.size < 2 or (a.std() == 0 and b.std() == 0):
        return None if a.size < 2 or b.size < 2 or a.mean() == b.mean() else 0.0
    return float(stats.ttest_ind(a, b, equal_var=False).pvalue)


def _compare(va: np.ndarray, vb: np.ndarray, *, higher_better: bool, alpha: float = 0.05) -> tuple[str, str]:
    """(outcome, text) of method a against b over seeds: outcome "better", "worse" or "no clear difference".

    "better"/"worse" need a two-sided Welch test at level ``alpha``; the text gives the
    means, standard deviations, p and the numbers of seeds.
    """
    from scipy import stats

    p = _welch(va, vb)
    if p is None or p >= alpha:
        outcome = "no clear difference"
    else:
        outcome = "better" if (va.mean() > vb.mean()) == higher_better else "worse"
    sd = [v.std(ddof=1) if v.size > 1 else 0.0 for v in (va, vb)]
    ptxt = "Welch p undefined" if p is None else f"Welch p = {p:.2g}"
    if va.size and vb.size and np.ptp(np.concatenate([va, vb])) > 0:  # a rank test beside it (heavy tails)
        ptxt += f", Mann-Whitney p = {stats.mannwhitneyu(va, vb, alternative='two-sided').pvalue:.2g}"
    return outcome, f"{va.mean():.3g} \u00b1 {sd[0]:.2g} vs {vb.mean():.3g} \u00b1 {sd[1]:.2g} ({ptxt}, n = {va.size}/{vb.size})"


def _values(table: pd.DataFrame, ds: str, method: str, metric: str) -> np.ndarray:
    rows = table[(table["dataset"] == ds) & (table["method"] == method) & (table["metric"] == metric)]
    return rows["value"].to_numpy(dtype=np.float64)


def summarize(table: pd.DataFrame, config: EquilibriumConfig) -> dict:
    """Mean, std, n over seeds per dataset x method; sorted final weights; Figure-4 numbers; the verdict."""
    out: dict = {"table": {}, "weights_sorted": {}, "figure4": {}, "parameters": {}}
    for (ds, method), rows in table.groupby(["dataset", "method"], sort=False):
        entry = {"label": LABELS[method]}
        for metric in TABLE_METRICS:
            part = rows.loc[rows["metric"] == metric, "value"]
            if len(part):
                entry[metric] = _stats(part)
        seeds = rows["seed"].nunique()
        entry["n_seeds"] = int(seeds)
        out["table"].setdefault(ds, {})[method] = entry
        for side in ("g", "d"):
            w = rows[rows["metric"].str.fullmatch(f"w_{side}\\d+")].pivot(index="seed", columns="metric", values="value")
            srt = -np.sort(-w.to_numpy(), axis=1)  # (seeds, T), descending per seed
            out["weights_sorted"].setdefault(ds, {}).setdefault(method, {})[side] = {
                "mean": srt.mean(0).tolist(), "std": (srt.std(0, ddof=1) if srt.shape[0] > 1 else 0 * srt[0]).tolist()}
        p = rows[rows["metric"].isin(["params_g", "params_d", "hidden"])].groupby("metric")["value"].first()
        out["parameters"][method] = {"hidden": int(p["hidden"]), "params_g": int(p["params_g"]),
                                     "params_d": int(p["params_d"]), "total": int(p["params_g"] + p["params_d"])}
    for ds, rows in table[table["metric"] == "hist_value"].groupby("dataset", sort=False):
        fig4 = {}
        for method in WASSERSTEIN_METHODS:
            part = rows[rows["method"] == method]
            if len(part):
                last = part[part["step"] == part["step"].max()]["value"]
                fig4[method] = {"final_objective": _stats(last)}
                rough = table[(table["dataset"] == ds) & (table["method"] == method) & (table["metric"] == "value_roughness")]
                fig4[method]["roughness"] = _stats(rough["value"])
        out["figure4"][ds] = fig4
    if "gan5x" in out["parameters"] and "gan" in out["parameters"]:
        out["parameters"]["gan5x_over_gan"] = out["parameters"]["gan5x"]["total"] / out["parameters"]["gan"]["total"]
    out["verdict"] = _verdict(table, out)
    out["budget"] = {"steps": config.steps, "batch_size": config.batch_size, "hidden": config.hidden,
                     "depth": config.depth, "lr": config.lr, "wgan_lr": config.wgan_lr, "n_critic": config.n_critic,
                     "n_components": config.n_components, "delta": config.delta,
                     "best_response": {"steps": config.br_steps, "restarts": config.br_restarts, "lr": config.br_lr,
                                       "batch_size": config.br_batch_size, "n_eval": config.n_eval}}
    return out


COMPARISONS = (("mixgan", "gan"), ("mixgan", "gan5x"), ("mixwgan", "wgan"))
VERDICT_METRICS = (("modes_captured", True, "capture more modes"), ("hq_fraction", True, "have a larger high-quality fraction"),
                   ("eps", False, "have a smaller measured eps"))
WORDS = {"better": "yes", "worse": "NO, the opposite (significant)", "no clear difference": "no clear difference"}


def _verdict(table: pd.DataFrame, summary: dict) -> dict:
    """Per comparison and dataset: outcome and numbers; plus one plain-text paragraph."""
    datasets = list(summary["table"])
    details: list[str] = []
    headline: list[str] = []
    for a, b in COMPARISONS:
        for metric, higher_better, claim in VERDICT_METRICS:
            outcomes = []
            for ds in datasets:
                va, vb = _values(table, ds, a, metric), _values(table, ds, b, metric)
                if va.size == 0 or vb.size == 0:
                    continue
                outcome, text = _compare(va, vb, higher_better=higher_better)
                outcomes.append(f"{DATASET_LABELS[ds]}: {WORDS[outcome]}")
                details.append(f"{DATASET_LABELS[ds]}, {metric}: {LABELS[a]} vs {LABELS[b]}: {outcome}; {text}")
            if outcomes:
                headline.append(f"Does {LABELS[a]} {claim} than {LABELS[b]}? " + "; ".join(outcomes) + ".")
    for ds in datasets:
        hist = table[(table["dataset"] == ds) & (table["metric"] == "hist_value")]
        final = hist[hist["step"] == hist["step"].max()]  # the last bin of every run
        fig4 = {m: (_values(final, ds, m, "hist_value"), _values(table, ds, m, "value_roughness")) for m in WASSERSTEIN_METHODS}
        if all(v[0].size and v[1].size for v in fig4.values()):
            lower, t_low = _compare(fig4["mixwgan"][0], fig4["wgan"][0], higher_better=False)
            rough, t_rough = _compare(fig4["mixwgan"][1], fig4["wgan"][1], higher_better=True)
            headline.append(f"Figure 4 analogue, {DATASET_LABELS[ds]}: is the final critic objective of MIX+WGAN lower than "
                            f"WGAN's (paper: yes)? {WORDS[lower]}. Is its curve less smooth (paper: yes)? {WORDS[rough]}.")
            details.append(f"{DATASET_LABELS[ds]}, final critic objective: MIX+WGAN vs WGAN: {t_low}")
            details.append(f"{DATASET_LABELS[ds]}, step-to-step change of the critic objective: MIX+WGAN vs WGAN: {t_rough}")
    return {"text": " ".join(headline), "details": details}


# --------------------------------------------------------------------------- figures


def _methods_in(table: pd.DataFrame, config: EquilibriumConfig) -> list[str]:
    present = set(table["method"])
    return [m for m in config.methods if m in present]


def _datasets_in(table: pd.DataFrame, config: EquilibriumConfig) -> list[str]:
    present = set(table["dataset"])
    return [d for d in config.datasets if d in present]


def plot(table: pd.DataFrame, config: EquilibriumConfig, summary: dict, fig_dir: Path) -> list[Path]:
    """Samples per method, Figure-4 analogue, weights over training, eps per method, modes per method."""
    from gangen.plotting import paper_style

    paths: list[Path] = []
    with paper_style():
        paths += _plot_samples(table, config, fig_dir)
        paths += _plot_wasserstein(table, config, fig_dir)
        paths += _plot_weights(table, config, fig_dir)
        paths += _plot_strips(table, config, fig_dir, name="equilibrium_eps", metrics=("eps",))
        paths += _plot_strips(table, config, fig_dir, name="equilibrium_modes", metrics=("modes_captured", "hq_fraction"))
    return paths


def _plot_samples(table: pd.DataFrame, config: EquilibriumConfig, fig_dir: Path) -> list[Path]:
    from gangen.plotting import PALETTE, new_panels, save_figure

    datasets, methods = _datasets_in(table, config), _methods_in(table, config)
    s = table[table["metric"].isin(["sample_x", "sample_y", "sample_component"]) & (table["rep"] == 0)]
    if s.empty:
        return []
    fig, axes = new_panels(len(datasets), len(methods), width="double", panel_aspect=1.0)
    for r, ds in enumerate(datasets):
        target = dataset(ds)
        lim = 1.5 * np.abs(target.means).max() + 0.3
        for c, method in enumerate(methods):
            ax = axes[r * len(methods) + c]
            part = s[(s["dataset"] == ds) & (s["method"] == method)].pivot(index="index", columns="metric", values="value")
            if len(part):
                comp = part["sample_component"].to_numpy().astype(int)
                colors = [PALETTE[k % len(PALETTE)] for k in comp] if comp.max() > 0 else PALETTE[0]
                ax.scatter(part["sample_x"], part["sample_y"], s=1.5, c=colors, alpha=0.6, linewidths=0, rasterized=True)
                out = int(((part["sample_x"].abs() > lim) | (part["sample_y"].abs() > lim)).sum())
                if out:
                    ax.text(0.98, 0.02, f"{out} outside", transform=ax.transAxes, ha="right", va="bottom", fontsize=6)
            ax.scatter(target.means[:, 0], target.means[:, 1], marker="x", s=10, c="k", linewidths=0.6, zorder=3)
            ax.set(xlim=(-lim, lim), ylim=(-lim, lim), aspect="equal", xticks=[], yticks=[])
            ax.grid(False)
            modes = table[(table["dataset"] == ds) & (table["method"] == method) & (table["rep"] == 0)
                          & (table["metric"] == "modes_captured")]["value"]
            if r == 0:
                ax.set_title(LABELS[method])
            if len(modes):
                ax.text(0.02, 0.98, f"{int(modes.iloc[0])}/{target.k} modes", transform=ax.transAxes,
                        ha="left", va="top", fontsize=6)
            if c == 0:
                ax.set_ylabel(DATASET_LABELS[ds])
    return list(save_figure(fig, fig_dir / "equilibrium_samples"))


def _plot_wasserstein(table: pd.DataFrame, config: EquilibriumConfig, fig_dir: Path) -> list[Path]:
    from gangen.plotting import new_panels, plot_band, save_figure, series_colors

    methods = [m for m in WASSERSTEIN_METHODS if m in _methods_in(table, config)]
    datasets = _datasets_in(table, config)
    if not methods:
        return []
    colors = series_colors(METHODS)
    fig, axes = new_panels(1, len(datasets), width="double" if len(datasets) > 1 else "single", panel_aspect=0.62)
    h = table[table["metric"] == "hist_value"]
    for ax, ds in zip(axes, datasets):
        lo, hi, clipped = np.inf, -np.inf, False
        for method in methods:
            part = h[(h["dataset"] == ds) & (h["method"] == method)]
            if len(part):
                s = plot_band(ax, part["step"], part["value"], band="std", color=colors[method], marker=None,
                              label=f"{LABELS[method]} (mean \u00b1 sd, {part['seed'].nunique()} seeds)")
                # the first steps (untrained critic) are much larger: scale the axis to the rest
                late = s.x >= 0.2 * s.x.max()
                lo, hi = min(lo, s.lower[late].min()), max(hi, s.upper[late].max())
                clipped |= bool(np.any(s.lower[~late] < lo) or np.any(s.upper[~late] > hi))
        if np.isfinite(lo) and hi > lo:
            pad = 0.1 * (hi - lo)
            ax.set_ylim(lo - pad, hi + pad)
        ax.axhline(0.0, color="0.5", linewidth=0.5)
        ax.set(xlabel="generator step", ylabel=r"critic objective $\mathbb{E}\,D(x) - \mathbb{E}\,D(G(z))$",
               title=DATASET_LABELS[ds] + (" (first 20% of steps partly off scale)" if clipped else ""))
        ax.ticklabel_format(axis="y", style="sci", scilimits=(-2, 3))
        ax.legend()
    return list(save_figure(fig, fig_dir / "equilibrium_wasserstein"))


def _plot_weights(table: pd.DataFrame, config: EquilibriumConfig, fig_dir: Path) -> list[Path]:
    from matplotlib.lines import Line2D

    from gangen.plotting import PALETTE, new_panels, save_figure

    methods = [m for m in ("mixgan", "mixwgan") if m in _methods_in(table, config)]
    datasets = _datasets_in(table, config)
    if not methods:
        return []
    T = config.n_components
    fig, axes = new_panels(len(methods), len(datasets), width="double" if len(datasets) > 1 else "single",
                           panel_aspect=0.55, sharey=True)
    for r, method in enumerate(methods):
        for c, ds in enumerate(datasets):
            ax = axes[r * len(datasets) + c]
            part = table[(table["dataset"] == ds) & (table["method"] == method) & (table["rep"] == 0)]
            for i in range(T):
                for side, style in (("g", "-"), ("d", ":")):
                    w = part[part["metric"] == f"hist_w_{side}{i}"]
                    ax.plot(w["step"], w["value"], linestyle=style, color=PALETTE[i % len(PALETTE)],
                            linewidth=1.0 if side == "g" else 0.9)
            ax.axhline(1.0 / T, color="0.5", linewidth=0.6, linestyle="--")
            dev = part[part["metric"].str.fullmatch("hist_w_[gd]\\d+")]["value"]
            dev_txt = f"; max $|w - 1/{T}|$ = {np.abs(dev - 1.0 / T).max():.1e}" if len(dev) else ""
            ax.set(title=f"{LABELS[method]}, {DATASET_LABELS[ds]} (first seed{dev_txt})", xlabel="generator step")
            if c == 0:
                ax.set_ylabel("mixture weight")
    handles = [Line2D([], [], color="0.3", linestyle="-", label="generators $w_{u_i}$ (colour: component)"),
               Line2D([], [], color="0.3", linestyle=":", label="discriminators $w_{v_j}$"),
               Line2D([], [], color="0.5", linestyle="--", linewidth=0.6, label=f"uniform 1/{T}")]
    fig.legend(handles=handles, loc="outside lower center", ncol=3)
    return list(save_figure(fig, fig_dir / "equilibrium_weights"))


def _plot_strips(table: pd.DataFrame, config: EquilibriumConfig, fig_dir: Path, *, name: str,
                 metrics: tuple[str, ...]) -> list[Path]:
    """Strip plot: one point per seed, mean +- sd as a bar, per dataset (rows) x metric (columns)."""
    from gangen.plotting import new_panels, save_figure, series_colors

    datasets, methods = _datasets_in(table, config), _methods_in(table, config)
    colors = series_colors(METHODS)
    ylabels = {"eps": r"measured $\varepsilon$", "modes_captured": "modes captured", "hq_fraction": "high-quality fraction"}
    # eps lives in two games with different units: split the log-loss and Wasserstein methods
    groups = [[m for m in methods if m in LOG_METHODS], [m for m in methods if m in WASSERSTEIN_METHODS]] \
        if metrics == ("eps",) else [methods]
    groups = [g for g in groups if g]
    panels = [(ds, metric, g) for ds in datasets for metric in metrics for g in groups]
    ncols = len(metrics) * len(groups)
    fig, axes = new_panels(len(datasets), ncols, width="double", panel_aspect=0.6 if ncols > 1 else 0.35)
    rng = np.random.default_rng(0)  # horizontal jitter of the points only
    for ax, (ds, metric, group) in zip(axes, panels):
        rows = table[(table["dataset"] == ds) & (table["metric"] == metric)]
        for k, method in enumerate(group):
            v = rows.loc[rows["method"] == method, "value"].to_numpy(dtype=np.float64)
            if v.size == 0:
                continue
            ax.scatter(k + rng.uniform(-0.12, 0.12, v.size), v, s=9, color=colors[method], alpha=0.8, linewidths=0,
                       zorder=3)
            sd = v.std(ddof=1) if v.size > 1 else 0.0
            ax.errorbar(k + 0.28, v.mean(), yerr=sd, fmt="_", color="k", markersize=8, capsize=0, linewidth=0.8)
        ax.set_xticks(range(len(group)), [LABELS[m].replace(" (", "\n(") for m in group])
        ax.set_xlim(-0.5, len(group) - 0.3)
        game = ""
        if metric == "eps":
            game = (" (Wasserstein game, unbounded critic)" if group[0] in WASSERSTEIN_METHODS
                    else rf" (log game, $\delta$ = {config.delta:g})")
        ax.set_title(f"{DATASET_LABELS[ds]}{game}")
        ax.set_ylabel(ylabels[metric])
        if metric == "modes_captured":
            ax.axhline(dataset(ds).k, color="0.5", linewidth=0.6, linestyle="--")
            ax.set_ylim(-0.5, dataset(ds).k + 1)
        if metric == "hq_fraction":
            ax.set_ylim(-0.03, 1.03)
        if metric == "eps":
            ax.set_ylim(bottom=-0.03 * ax.get_ylim()[1])  # eps >= 0; room for points at 0
            ax.set_ylabel(rf"measured $\varepsilon$ ({config.br_steps}-step best responses)")
    return list(save_figure(fig, fig_dir / name))


STUDY = Study(
    name="equilibrium",
    config_cls=EquilibriumConfig,
    cells=cells,
    run_group=run_group,
    summarize=summarize,
    plot=plot,
    presets=PRESETS,
    version="2",  # 2: discriminator best responses on the ensemble engine
    cache_ignore=("datasets", "methods", "n_seeds"),
    description=__doc__.split("\n\n")[0],
    engine=True,
)

if __name__ == "__main__":
    main(STUDY)
