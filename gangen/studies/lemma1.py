r"""Study 1, Lemma 1: for μ = N(0, I/d), JS and W1 between μ and its empirical version μ̂ do not shrink.

Lemma 1 (Arora et al. 2017): with μ̂ the empirical distribution of m i.i.d. samples of μ,

    d_JS(μ, μ̂) = log 2        and        d_W(μ, μ̂) >= 1.1   (high d, m polynomial in d),

with consequences (a) two independent empirical versions μ̂, ν̂ of the *same* μ are far
apart, d_W(μ̂, ν̂) > 1, and (b) a generator that memorizes the training set, G = μ̂_train,
has d_W(μ̂_train, G) = 0 yet d_W(μ, G) > 1. PAPER.md's caution: the 1.1 bound needs high
dimension (pairwise distances of μ tend to √2 only as d grows).

Per cell (d, m, rep) the study draws, from independent streams of the cell's seed, the
training sample μ̂_train (m points; it is also the support of ``Memorizer(Gaussian(d), m)``,
so the memorizer's distribution *is* μ̂_train), a second sample ν̂ (m points), a reference
sample (n_ref = ``ref_factor``·m points) and ``n_nn`` query points, all from μ, and records
(metric names as in ``results.csv``):

- ``js_hat_hat``: ``empirical_js(μ̂, ν̂)``, exact on the atoms; log 2 when no atom is shared,
  which holds almost surely for a continuous μ.
- ``w1_hat_hat``: W1(μ̂, ν̂), exact (assignment solver; equal sizes, uniform weights);
  consequence (a). For m <= ``w1_max_m`` (it costs ~m^2.5 time and m² memory).
- ``nn_lower``: the mean distance from the n_nn query points x_j ~ μ to their nearest atom
  of μ̂_train, with ``nn_lower_se`` its standard error. Since every coupling of μ and μ̂
  moves x to some atom,

      W1(μ, μ̂) >= E_{x~μ} min_i ||x - x_i||,

  so ``nn_lower`` is an unbiased Monte Carlo estimate of a *lower bound* on W1(μ, μ̂) =
  W1(μ, memorizer) (this is PAPER.md's nearest-neighbour measurement). Computed at every m.
- ``w1_ref_hat``: W1(μ̂_ref, μ̂_train) with a fresh reference sample of n_ref points, exact
  (network simplex), for m <= ``ref_max_m``. An *empirical estimate* of W1(μ, μ̂) =
  W1(μ, memorizer) that is biased upward: W1 is convex, so E W1(μ̂_ref, μ̂) >= W1(μ, μ̂),
  and the bias shrinks as n_ref grows (n_ref = m is ``w1_hat_hat`` itself, the largest
  bias). So E ``nn_lower`` <= W1(μ, μ̂) <= E ``w1_ref_hat`` <= E ``w1_hat_hat``: the
  measurements bracket the population value up to their sampling error over seeds.
- ``w1_train_memorizer``: W1(μ̂_train, memorizer) computed exactly between the training
  sample and the memorizer's support with uniform weights; consequence (b) says 0. For
  m <= ``memorizer_max_m``.

Population reference values: E||X - X'|| = (2/√d)·Γ((d+1)/2)/Γ(d/2) -> √2 for X, X' ~ μ
(the product coupling gives E W1(μ, μ̂) <= E||X - X'||), drawn as the √2 asymptote.

Run with ``python -m gangen.studies.lemma1 [--preset tiny|quick|paper]``; the paper preset
covers d ∈ {10, 30, 100, 300, 1000} and m from 10² to 10⁴ (exact W1(μ̂, ν̂) up to
``w1_max_m``, see ``--help``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from gangen._validation import check_nonneg_int, check_positive_float, check_positive_int
from gangen.distances.js import empirical_js
from gangen.distances.wasserstein import wasserstein
from gangen.samplers import Gaussian, Memorizer
from gangen.studies.runner import Cell, Study, grid, main

__all__ = [
    "Lemma1Config",
    "PRESETS",
    "STUDY",
    "cells",
    "mean_pairwise_distance",
    "nearest_distances",
    "plot",
    "run_group",
    "summarize",
]

LOG2 = math.log(2.0)
JS_ATOL = 1e-12  # |empirical_js - log 2| below this counts as "exactly log 2" (float64 rounding)
W1_METRICS = ("w1_hat_hat", "nn_lower", "w1_ref_hat")  # the three views of W1 tested against the threshold
METRIC_LABELS = {
    "w1_hat_hat": "W1(mu_hat, nu_hat), exact, consequence (a)",
    "nn_lower": "mean nearest-atom distance, a lower bound on W1(mu, mu_hat) = W1(mu, memorizer)",
    "w1_ref_hat": "W1(reference sample, mu_hat), an upward-biased estimate of W1(mu, mu_hat) = W1(mu, memorizer)",
}


@dataclass(frozen=True)
class Lemma1Config:
    """Grid and constants of the Lemma 1 study (every field becomes a CLI flag)."""

    d_values: tuple[int, ...] = field(default=(10, 100, 1000), metadata={"help": "dimensions d of mu = N(0, I/d)"})
    m_values: tuple[int, ...] = field(default=(100, 200, 500, 1000, 2000),
                                      metadata={"help": "sizes m of the empirical samples"})
    n_seeds: int = field(default=3, metadata={"help": "independent repetitions (seeds) per (d, m)"})
    w1_max_m: int = field(default=2000, metadata={
        "help": "exact W1(mu_hat, nu_hat) only for m <= this (assignment solver, ~m^2.5 time, m^2 memory)"})
    ref_factor: int = field(default=4, metadata={
        "help": "reference sample size n_ref = ref_factor * m for the estimate W1(mu_ref, mu_hat) of W1(mu, mu_hat)"})
    ref_max_m: int = field(default=1000, metadata={
        "help": "the reference estimate W1(mu_ref, mu_hat) only for m <= this (network simplex, costly)"})
    n_nn: int = field(default=2000, metadata={
        "help": "query points x ~ mu for the nearest-atom lower bound E min_i |x - x_i| <= W1(mu, mu_hat)"})
    memorizer_max_m: int = field(default=1000, metadata={
        "help": "exact W1(mu_hat_train, memorizer) (= 0 by consequence (b)) only for m <= this"})
    threshold: float = field(default=1.1, metadata={"help": "Lemma 1's bound on W1 (summary and figure only)"})
    seed: int = field(default=0, metadata={"help": "study seed; each cell derives its own from it"})

    def __post_init__(self) -> None:
        for name in ("d_values", "m_values"):
            values = getattr(self, name)
            if not values:
                raise ValueError(f"{name} must hold at least one value")
            for v in values:
                check_positive_int(v, f"each of {name}")
        for m in self.m_values:
            if m < 2:
                raise ValueError(f"each of m_values must be >= 2 (a sample of one point has no spread); got {m}")
        check_positive_int(self.n_seeds, "n_seeds")
        for name in ("w1_max_m", "ref_max_m", "memorizer_max_m"):
            check_nonneg_int(getattr(self, name), name)
        check_positive_int(self.ref_factor, "ref_factor")
        if self.ref_factor < 2:
            raise ValueError(f"ref_factor must be >= 2 (ref_factor = 1 is w1_hat_hat itself); got {self.ref_factor}")
        check_positive_int(self.n_nn, "n_nn")
        if self.n_nn < 2:
            raise ValueError(f"n_nn must be >= 2 (a standard error needs two query points); got {self.n_nn}")
        check_positive_float(self.threshold, "threshold")
        check_nonneg_int(self.seed, "seed")


# Sizes chosen from timings on the 2-core CPU, shared with other jobs (load ~4): quick = 45 cells in ~80 s;
# paper = 175 cells in ~9 min, its heaviest cells (m = 4642, exact W1) 7-26 s each (d = 10..1000).
# Exact W1 at m = 10^4 took 67 s for one cell at d = 100 and would add ~40 min over 25 cells, hence
# w1_max_m = 4642; the reference estimate (network simplex, n_ref = 4m) costs ~1.5-5 s at m = 1000.
PRESETS = {
    "tiny": {"d_values": (10, 100), "m_values": (50, 100), "n_seeds": 2, "w1_max_m": 100, "ref_factor": 2,
             "ref_max_m": 50, "n_nn": 200, "memorizer_max_m": 100},
    "quick": {},
    "paper": {"d_values": (10, 30, 100, 300, 1000),
              "m_values": tuple(int(round(10 ** (2 + k / 3))) for k in range(7)),  # 100, 215, ..., 4642, 10000
              "n_seeds": 5, "w1_max_m": 4642, "ref_factor": 4, "ref_max_m": 1000, "n_nn": 5000,
              "memorizer_max_m": 1000},
}


def mean_pairwise_distance(d: int) -> float:
    r"""E||X - X'|| for X, X' i.i.d. N(0, I/d): (2/√d)·Γ((d+1)/2)/Γ(d/2), increasing to √2.

    X - X' ~ N(0, (2/d) I), whose norm is sqrt(2/d) times a chi variable with d degrees
    of freedom, of mean √2·Γ((d+1)/2)/Γ(d/2).

    >>> round(mean_pairwise_distance(1), 6) == round(2 / math.sqrt(math.pi), 6)  # E|N(0, 2)|
    True
    >>> round(mean_pairwise_distance(10**6), 4)
    1.4142
    """
    d = check_positive_int(d, "d")
    return 2.0 / math.sqrt(d) * math.exp(math.lgamma((d + 1) / 2) - math.lgamma(d / 2))


def nearest_distances(queries: np.ndarray, points: np.ndarray, *, chunk_size: int = 1024) -> np.ndarray:
    r"""min_i ||q_j - x_i||_2 for each query q_j: shape (n_q,), from queries (n_q, d) and points (n, d).

    The nearest point is found with the BLAS expansion ||q||² + ||x||² - 2<q, x> (chunks
    of ``chunk_size`` queries, memory chunk_size·n); its distance is then recomputed from
    the exact difference q - x, so the values carry no cancellation error.

    >>> nearest_distances(np.array([[0.0, 0.0], [3.0, 4.0]]), np.array([[0.0, 1.0], [3.0, 0.0]])).tolist()
    [1.0, 4.0]
    """
    chunk_size = check_positive_int(chunk_size, "chunk_size")
    points_sq = np.einsum("ij,ij->i", points, points)  # (n,)
    out = np.empty(queries.shape[0])
    for start in range(0, queries.shape[0], chunk_size):
        q = queries[start:start + chunk_size]  # (c, d)
        sq = points_sq[None, :] - 2.0 * (q @ points.T)  # (c, n): ||x||² - 2<q, x>, argmin-equivalent
        nearest = np.argmin(sq, axis=1)  # (c,)
        out[start:start + q.shape[0]] = np.linalg.norm(q - points[nearest], axis=1)
    return out


def cells(config: Lemma1Config) -> list[Cell]:
    """One cell per (d, m, rep), each run alone (no state is shared between cells)."""
    return grid(config.seed, d=config.d_values, m=config.m_values, rep=range(config.n_seeds))


def _measure_cell(cell: Cell, config: Lemma1Config) -> list[dict]:
    d, m = int(cell["d"]), int(cell["m"])
    mu = Gaussian(d)
    # Independent integer seeds for the four samples (train, other, reference, queries).
    train_seed, other_seed, ref_seed, query_seed = (
        int(s) for s in np.random.default_rng(cell.seed).integers(0, 2**63 - 1, size=4))
    train = mu.sample(m, seed=train_seed)  # (m, d): mu_hat_train
    other = mu.sample(m, seed=other_seed)  # (m, d): nu_hat
    rows = [{"metric": "js_hat_hat", "value": empirical_js(train, other), "n_other": m, "solver": "exact_atoms"}]
    if m <= config.w1_max_m:
        rows.append({"metric": "w1_hat_hat", "value": wasserstein(train, other), "n_other": m,
                     "solver": "assignment"})
    nn = nearest_distances(mu.sample(config.n_nn, seed=query_seed), train)  # (n_nn,)
    rows.append({"metric": "nn_lower", "value": float(nn.mean()), "n_other": config.n_nn, "solver": "monte_carlo"})
    rows.append({"metric": "nn_lower_se", "value": float(nn.std(ddof=1) / math.sqrt(nn.size)),
                 "n_other": config.n_nn, "solver": "monte_carlo"})
    if m <= config.ref_max_m:
        n_ref = config.ref_factor * m
        rows.append({"metric": "w1_ref_hat", "value": wasserstein(mu.sample(n_ref, seed=ref_seed), train),
                     "n_other": n_ref, "solver": "network_simplex"})
    if m <= config.memorizer_max_m:
        memorizer = Memorizer(mu, m, seed=train_seed)  # a generator whose distribution is mu_hat_train
        rows.append({"metric": "w1_train_memorizer", "value": wasserstein(train, memorizer.support), "n_other": m,
                     "solver": "assignment"})
    return rows


def run_group(cells: list[Cell], config: Lemma1Config, device: str) -> list[list[dict]]:
    """Per cell: draw the samples from the cell's seed and record the measurements (CPU; ``device`` unused)."""
    return [_measure_cell(cell, config) for cell in cells]


# --------------------------------------------------------------------------- summary


def _threshold_stats(rows: pd.DataFrame, threshold: float) -> dict:
    """Fraction of seeds with value >= threshold per m and overall; mean, min and max per m."""
    ge = rows["value"] >= threshold
    by_m = rows.assign(ge=ge).groupby("m")
    return {
        "m_tested": sorted(int(m) for m in rows["m"].unique()),
        "frac_seeds_ge_threshold_by_m": {str(int(m)): float(g["ge"].mean()) for m, g in by_m},
        "frac_ge_threshold_all_m": float(ge.mean()),
        "holds_for_all_m_and_seeds": bool(ge.all()),
        "mean_by_m": {str(int(m)): float(g["value"].mean()) for m, g in by_m},
        "min": float(rows["value"].min()),
        "max": float(rows["value"].max()),
    }


def _range_text(stats: dict) -> str:
    return f"{stats['min']:.3f}-{stats['max']:.3f}"


def _verdict(summary: dict, config: Lemma1Config) -> list[str]:
    """Plain-text statements of what agrees with Lemma 1 and what does not, built from the numbers."""
    t = config.threshold
    js = summary["js"]
    lines = [
        (f"JS: {js['n_equal_log2']} of {js['n']} values of empirical_js(mu_hat, nu_hat) equal log 2 within "
         f"{JS_ATOL:g} (max deviation {js['max_abs_dev_from_log2']:.1e}); "
         + ("agrees with Lemma 1 (d_JS = log 2: no atom is shared)." if js["all_equal_log2"]
            else "DISAGREES with Lemma 1 for some cells (shared atoms?)."))]
    per_d = summary["per_d"]
    se = max((e.get("nn_lower_max_se", 0.0) for e in per_d.values()), default=0.0)
    for metric, what in (("nn_lower", f"the nearest-atom lower bound on W1(mu, mu_hat) (Monte Carlo, s.e. <= {se:.1g})"),
                         ("w1_ref_hat", "the reference estimate of W1(mu, mu_hat) (biased upward)"),
                         ("w1_hat_hat", "W1(mu_hat, nu_hat) (consequence (a))")):
        ds = [d for d in per_d if metric in per_d[d]]
        if not ds:
            continue
        hold = [d for d in ds if per_d[d][metric]["holds_for_all_m_and_seeds"]]
        fail = [d for d in ds if not per_d[d][metric]["holds_for_all_m_and_seeds"]]
        m_tested = sorted({m for d in ds for m in per_d[d][metric]["m_tested"]})
        text = f"{what} >= {t:g} for every seed and every m tested (m = {m_tested[0]}..{m_tested[-1]}): "
        text += f"d in {{{', '.join(hold)}}}" if hold else "at no d tested"
        if fail:
            ranges = "; ".join(f"d = {d}: {_range_text(per_d[d][metric])}" for d in fail)
            text += f". Below {t:g} somewhere at d in {{{', '.join(fail)}}} (observed range {ranges})"
        for d in fail:  # where the bound holds at small m but not at large m, say at which m it breaks
            frac = per_d[d][metric]["frac_seeds_ge_threshold_by_m"]
            ok = [int(m) for m, f in frac.items() if f == 1.0]
            if ok:
                broken = [int(m) for m, f in frac.items() if f < 1.0]
                means = ", ".join(f"{per_d[d][metric]['mean_by_m'][str(m)]:.3f}" for m in broken)
                text += f"; at d = {d} it holds for every seed at m in {ok} but not at m in {broken} (mean {means})"
        lines.append(text + ".")
    low = min(per_d, key=int)
    if "nn_lower" in per_d[low]:
        s = per_d[low]["nn_lower"]
        m_lo, m_hi = s["m_tested"][0], s["m_tested"][-1]
        lines.append(
            f"Dimension: at d = {low} the nearest-atom distance falls from {s['mean_by_m'][str(m_lo)]:.3f} "
            f"(m = {m_lo}) to {s['mean_by_m'][str(m_hi)]:.3f} (m = {m_hi}); the 1.1 bound "
            + ("does not hold there: it needs high dimension (PAPER.md's numerical caution)."
               if not s["holds_for_all_m_and_seeds"] else "holds even there."))
    mem = summary["memorizer"]
    if mem["n"]:
        lines.append(
            f"Consequence (b): max |W1(mu_hat_train, memorizer)| over {mem['n']} cells = {mem['max_abs']:.3g}"
            + (", i.e. exactly 0 as the paper says" if mem["all_zero"] else ", NOT exactly 0")
            + "; meanwhile W1(mu, memorizer) = W1(mu, mu_hat_train) is bounded below by the nearest-atom "
            "distance (see above).")
    series = [[e[metric]["mean_by_m"][str(m)] for m in e[metric]["m_tested"]]
              for e in per_d.values() for metric in W1_METRICS if metric in e]
    decreasing = all(all(b < a for a, b in zip(v, v[1:])) for v in series)
    lines.append(
        ("The seed-mean of every W1 view decreases strictly with m at every d" if decreasing
         else "The seed-means of the W1 views do NOT all decrease with m")
        + ": at fixed d, W1(mu, mu_hat) -> 0 as m -> infinity (about m^(-1/d) for d >= 3), so a bound like 1.1 "
        "can only hold for m not too large given d, as Lemma 1's condition 'm polynomial in d' says.")
    sd = summary["smallest_d_all_m"]
    lines.append(
        "Smallest d with W1 >= threshold for every m and seed: "
        + ", ".join(f"{metric}: {sd[metric] if sd[metric] is not None else 'none'}" for metric in sd) + ".")
    return lines


def summarize(table: pd.DataFrame, config: Lemma1Config) -> dict:
    """JS == log 2 check; per d and W1 view, the fraction of seeds with W1 >= threshold; a verdict."""
    js = table.loc[table["metric"] == "js_hat_hat", "value"].to_numpy()
    dev = np.abs(js - LOG2)
    summary: dict = {
        "threshold": config.threshold,
        "metrics": METRIC_LABELS,
        "js": {"n": int(js.size), "log2": LOG2, "n_equal_log2": int(np.sum(dev <= JS_ATOL)),
               "all_equal_log2": bool(js.size > 0 and np.all(dev <= JS_ATOL)),
               "max_abs_dev_from_log2": float(dev.max()) if js.size else None},
        "per_d": {},
    }
    for d in sorted(table["d"].unique()):
        rows_d = table[table["d"] == d]
        entry: dict = {"mean_pairwise_distance": mean_pairwise_distance(int(d))}
        for metric in W1_METRICS:
            rows = rows_d[rows_d["metric"] == metric]
            if len(rows):
                entry[metric] = _threshold_stats(rows, config.threshold)
        se = rows_d.loc[rows_d["metric"] == "nn_lower_se", "value"]
        if len(se):
            entry["nn_lower_max_se"] = float(se.max())
        summary["per_d"][str(int(d))] = entry
    summary["smallest_d_all_m"] = {
        metric: next((int(d) for d, e in summary["per_d"].items()
                      if metric in e and e[metric]["holds_for_all_m_and_seeds"]), None)
        for metric in W1_METRICS}
    mem = table.loc[table["metric"] == "w1_train_memorizer", "value"].to_numpy()
    summary["memorizer"] = {"n": int(mem.size), "max_abs": float(np.abs(mem).max()) if mem.size else None,
                            "all_zero": bool(mem.size > 0 and np.all(mem == 0.0))}
    summary["verdict"] = _verdict(summary, config)
    return summary


# --------------------------------------------------------------------------- figure


def plot(table: pd.DataFrame, config: Lemma1Config, summary: dict, fig_dir: Path) -> list[Path]:
    """(a) W1(μ̂, ν̂) against m per d; (b) bounds on W1(μ, μ̂) = W1(μ, memorizer) and W1(μ̂_train, memorizer)."""
    from gangen.plotting import new_panels, paper_style, plot_band, save_figure, series_colors

    ds = sorted(int(d) for d in table["d"].unique())
    colors = series_colors(ds)
    with paper_style():
        fig, axes = new_panels(1, 2, width="double", panel_aspect=0.72, sharey=True)
        ax_a, ax_b = axes
        for d in ds:
            rows = table[table["d"] == d]
            part = rows[rows["metric"] == "w1_hat_hat"]
            if len(part):
                plot_band(ax_a, part["m"], part["value"], color=colors[d], label=f"$d = {d}$")
            part = rows[rows["metric"] == "nn_lower"]
            plot_band(ax_b, part["m"], part["value"], color=colors[d], marker="s")
            part = rows[rows["metric"] == "w1_ref_hat"]
            if len(part):
                plot_band(ax_b, part["m"], part["value"], color=colors[d], marker="^", linestyle=":", alpha=0.12)
        mem = table[table["metric"] == "w1_train_memorizer"]
        if len(mem):
            means = mem.groupby("m")["value"].max()
            ax_b.plot(means.index, means.to_numpy(), linestyle="none", marker="x", color="black", markersize=4,
                      label=r"$W_1(\hat\mu_{\rm train}, G_{\rm mem})$")
        m_all = table["m"]
        for ax in axes:
            ax.axhline(config.threshold, color="0.25", linestyle="--", linewidth=0.9, zorder=1.5)
            ax.axhline(math.sqrt(2.0), color="0.55", linestyle="-.", linewidth=0.9, zorder=1.5)
            ax.set_xscale("log")
            ax.set_xlim(m_all.min() / 1.25, m_all.max() * 1.25)
            ax.set_xlabel("sample size $m$")
        w1_m = table.loc[table["metric"] == "w1_hat_hat", "m"]
        if len(w1_m) and w1_m.max() < m_all.max():
            ax_a.text(0.98, 0.03, f"exact $W_1$ computed for $m \\leq {int(w1_m.max())}$ (cost)", fontsize=6.5,
                      color="0.35", ha="right", va="bottom", transform=ax_a.transAxes)
        ax_a.set_ylim(-0.05, 1.62)
        ax_a.set_ylabel(r"$W_1$")
        ax_a.set_title(r"(a) two empirical samples: $W_1(\hat\mu, \hat\nu)$, exact")
        ax_b.set_title(r"(b) $W_1(\mu, \hat\mu) = W_1(\mu, G_{\rm mem})$ and $W_1(\hat\mu_{\rm train}, G_{\rm mem})$")
        from matplotlib.lines import Line2D

        # Panel (a) legend: the d's (same colours in (b)) and the two reference lines.
        handles, _ = ax_a.get_legend_handles_labels()
        handles += [Line2D([], [], color="0.25", linestyle="--", linewidth=0.9,
                           label=f"Lemma 1 bound {config.threshold:g}"),
                    Line2D([], [], color="0.55", linestyle="-.", linewidth=0.9, label=r"$\sqrt{2}$ ($d \to \infty$)")]
        ax_a.legend(handles=handles, loc="lower left", ncol=2)
        # Panel (b) legend: the estimator styles.
        ref_size = f"$n_{{\\rm ref}} = {config.ref_factor}m$"
        handles = [
            Line2D([], [], color="0.3", marker="s", label=r"nearest-atom distance $\leq W_1(\mu, \hat\mu)$"),
            Line2D([], [], color="0.3", marker="^", linestyle=":",
                   label=f"$W_1$(fresh sample, $\\hat\\mu$), {ref_size}"),
        ]
        if len(mem):
            handles.append(Line2D([], [], color="black", marker="x", linestyle="none", markersize=4,
                                  label=r"$W_1(\hat\mu_{\rm train}, G_{\rm mem})$, exact"))
        ax_b.legend(handles=handles, loc="lower left", bbox_to_anchor=(0.0, 0.06))
        return list(save_figure(fig, fig_dir / "lemma1"))


STUDY = Study(
    name="lemma1",
    config_cls=Lemma1Config,
    cells=cells,
    run_group=run_group,
    summarize=summarize,
    plot=plot,
    presets=PRESETS,
    version="1",
    cache_ignore=("d_values", "m_values", "n_seeds", "threshold"),
    description=__doc__.split("\n\n")[0],
)

if __name__ == "__main__":
    main(STUDY)
