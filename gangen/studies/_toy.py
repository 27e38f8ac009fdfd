"""Toy study: the error of the sample mean and median of N(0, σ²) shrinks as n^{-1/2}.

For X_1..X_n iid N(0, σ²) the sample mean X̄ ~ N(0, σ²/n), so

    E|X̄| = σ · sqrt(2 / (π n))                       (half-normal mean)

and the sample median is asymptotically N(0, π σ² / (2n)), so E|median| ≈ σ / sqrt(n).
The study measures both errors on a grid of n and seeds, fits the log-log slope of the
error against n (expect -1/2) with a 95% confidence interval, and draws the errors with
their bands and the two closed forms.

It exists to test :mod:`gangen.studies.runner` and to serve as the template of a study
(config dataclass with help metadata, presets, cells, run_group, summarize, plot,
``main``). Run it with ``python -m gangen.studies._toy [--preset tiny|quick|paper]``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from gangen._validation import check_nonneg_int, check_positive_float, check_positive_int
from gangen.studies.runner import Cell, Study, grid, main

ESTIMATORS = {"mean": np.mean, "median": np.median}


@dataclass(frozen=True)
class ToyConfig:
    """Grid and constants of the toy study (every field becomes a CLI flag)."""

    n_values: tuple[int, ...] = field(default=(10, 100, 1000), metadata={"help": "sample sizes n"})
    n_seeds: int = field(default=5, metadata={"help": "independent repetitions (seeds) per n"})
    sigma: float = field(default=1.0, metadata={"help": "standard deviation σ of the samples"})
    estimators: tuple[str, ...] = field(default=("mean", "median"), metadata={"help": "estimators of the centre"})
    seed: int = field(default=0, metadata={"help": "study seed; each cell derives its own from it"})
    sleep_s: float = field(default=0.0, metadata={"help": "seconds each cell sleeps (resume tests; changes no result)"})

    def __post_init__(self) -> None:
        if not self.n_values:
            raise ValueError("n_values must hold at least one sample size")
        for n in self.n_values:
            check_positive_int(n, "each of n_values")
        check_positive_int(self.n_seeds, "n_seeds")
        check_positive_float(self.sigma, "sigma")
        check_nonneg_int(self.seed, "seed")
        unknown = [e for e in self.estimators if e not in ESTIMATORS]
        if unknown or not self.estimators:
            raise ValueError(f"estimators must be a non-empty subset of {sorted(ESTIMATORS)}; got {self.estimators}")
        if self.sleep_s < 0:
            raise ValueError(f"sleep_s must be >= 0; got {self.sleep_s}")


PRESETS = {
    "tiny": {"n_values": (10, 100), "n_seeds": 3},
    "quick": {"n_values": (10, 30, 100, 300, 1000, 3000, 10000), "n_seeds": 8},
    "paper": {"n_values": tuple(int(round(10 ** (k / 2))) for k in range(2, 11)), "n_seeds": 32},
}


def cells(config: ToyConfig) -> list[Cell]:
    """One cell per (n, rep); cells of equal n form one group."""
    return grid(config.seed, group_by=("n",), n=config.n_values, rep=range(config.n_seeds))


def run_group(cells: list[Cell], config: ToyConfig, device: str) -> list[list[dict]]:
    """Per cell: draw n samples with the cell's own seed and record each estimator's |error|."""
    out = []
    for cell in cells:
        rng = np.random.default_rng(cell.seed)
        x = rng.normal(0.0, config.sigma, size=cell["n"])  # (n,)
        out.append([{"estimator": e, "metric": "abs_error", "value": float(abs(ESTIMATORS[e](x)))}
                    for e in config.estimators])
        time.sleep(config.sleep_s)
    return out


def theory_abs_error(estimator: str, n: np.ndarray, sigma: float) -> np.ndarray:
    """E|X̄| = σ·sqrt(2/(π n)) (exact); E|median| ≈ σ/sqrt(n) (asymptotic)."""
    n = np.asarray(n, dtype=np.float64)
    return sigma * (np.sqrt(2.0 / (np.pi * n)) if estimator == "mean" else 1.0 / np.sqrt(n))


def summarize(table: pd.DataFrame, config: ToyConfig) -> dict:
    """Per estimator: least-squares slope of log|error| on log n with its 95% t-interval."""
    from scipy import stats

    out = {}
    for est, rows in table[table["metric"] == "abs_error"].groupby("estimator"):
        entry: dict = {"n_points": int(len(rows))}
        if rows["n"].nunique() >= 2 and len(rows) >= 3:
            fit = stats.linregress(np.log(rows["n"]), np.log(rows["value"]))
            half = stats.t.ppf(0.975, len(rows) - 2) * fit.stderr
            entry.update(slope=fit.slope, slope_ci95=[fit.slope - half, fit.slope + half],
                         consistent_with_minus_half=bool(abs(fit.slope + 0.5) <= half))
        by_n = rows.groupby("n")["value"].mean()
        entry["mean_abs_error_over_theory"] = {
            str(n): float(v / theory_abs_error(est, n, config.sigma)) for n, v in by_n.items()}
        out[est] = entry
    return out


def plot(table: pd.DataFrame, config: ToyConfig, summary: dict, fig_dir: Path) -> list[Path]:
    """|error| against n (log-log), mean ± 95% CI over seeds, with the closed forms dashed."""
    from gangen.plotting import new_figure, paper_style, plot_band, save_figure, series_colors

    rows = table[table["metric"] == "abs_error"]
    colors = series_colors(ESTIMATORS)
    with paper_style():
        fig, ax = new_figure(width="single")
        n_grid = np.geomspace(rows["n"].min(), rows["n"].max(), 50)
        for est, part in rows.groupby("estimator"):
            fit = summary.get(est, {})
            slope = f", slope {fit['slope']:.2f}".replace("-", "\u2212") if "slope" in fit else ""
            plot_band(ax, part["n"], part["value"], color=colors[est], label=f"{est}{slope}", alpha=0.15)
            ax.plot(n_grid, theory_abs_error(est, n_grid, config.sigma), color=colors[est], linestyle="--",
                    linewidth=0.9)
        ax.plot([], [], color="0.35", linestyle="--", linewidth=0.9, label="closed form")
        ax.set(xscale="log", yscale="log", xlabel="sample size $n$", ylabel=r"$|\hat\theta_n - \theta|$")
        ax.legend()
        return list(save_figure(fig, fig_dir / "toy"))


STUDY = Study(
    name="toy",
    config_cls=ToyConfig,
    cells=cells,
    run_group=run_group,
    summarize=summarize,
    plot=plot,
    presets=PRESETS,
    version="1",
    cache_ignore=("n_values", "n_seeds", "sleep_s"),
    description=__doc__.split("\n\n")[0],
)

if __name__ == "__main__":
    main(STUDY)
