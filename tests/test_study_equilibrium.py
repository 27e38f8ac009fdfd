"""Tests of study 4, gangen.studies.equilibrium (MIX+GAN vs GAN: modes, measured eps, weights)."""

from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import pandas as pd
import pytest
import torch

from _study_checks import assert_study_outputs
from gangen.nn.players import MLPDiscriminator, MLPGenerator, count_parameters
from gangen.studies.equilibrium import (
    METHODS,
    STUDY,
    EquilibriumConfig,
    matched_hidden,
    method_config,
    mlp_parameters,
    player_parameters,
)
from gangen.studies.runner import check_group_independent, resolve_config, run_study

TINY = resolve_config(STUDY, "tiny")  # 2 datasets x 5 methods x 1 seed, 20 steps, width 8, T = 3: 10 cells
N_MODES = {"ring8": 8, "grid25": 25}
FIGURES = ("equilibrium_samples", "equilibrium_wasserstein", "equilibrium_weights", "equilibrium_eps",
           "equilibrium_modes")


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("equilibrium")
    return out, run_study(STUDY, TINY, out, device="cpu", progress=False, preset="tiny")


def metric(table: pd.DataFrame, name: str) -> pd.DataFrame:
    return table[table["metric"] == name]


def test_tiny_preset_writes_results_summary_and_figures(tiny_run):
    out, result = tiny_run
    res_dir = assert_study_outputs(out, "equilibrium", FIGURES)
    table = pd.read_csv(res_dir / "results.csv")
    assert len(table.groupby(["dataset", "method", "rep"])) == 2 * len(METHODS) * 1
    assert json.loads((res_dir / "summary.json").read_text()) == result.summary
    config = json.loads((res_dir / "config.json").read_text())
    assert config["preset"] == "tiny" and config["config"]["delta"] == TINY.delta


def test_mode_metrics_lie_in_their_ranges(tiny_run):
    t = tiny_run[1].table
    for ds, k in N_MODES.items():
        modes = metric(t[t["dataset"] == ds], "modes_captured")["value"]
        assert len(modes) == len(METHODS) and modes.between(0, k).all() and (modes == modes.round()).all()
        comp = metric(t[t["dataset"] == ds], "component_modes")["value"]
        assert comp.between(0, k).all()
    assert metric(t, "hq_fraction")["value"].between(0, 1).all()
    # occupancy KL of a histogram over K modes against uniform lies in [0, log K] (modes.py docstring)
    for name in ("occupancy_kl", "occupancy_kl_all"):
        rows = metric(t, name)
        bound = rows["dataset"].map(lambda ds: math.log(N_MODES[ds]))
        assert (rows["value"] >= 0).all() and (rows["value"] <= bound + 1e-9).all()
    # a single generator is its only component: per-component modes = modes captured
    single = t[t["method"].isin(["gan", "gan5x", "wgan"])]
    a = metric(single, "component_modes").set_index(["dataset", "method"])["value"]
    b = metric(single, "modes_captured").set_index(["dataset", "method"])["value"]
    assert a.sort_index().equals(b.sort_index())


def test_eps_is_a_nonnegative_gain_bounded_in_the_log_game(tiny_run):
    t = tiny_run[1].table
    eps = metric(t, "eps").set_index(["dataset", "method"])["value"]
    d_gain = metric(t, "d_gain").set_index(["dataset", "method"])["value"]
    g_gain = metric(t, "g_gain").set_index(["dataset", "method"])["value"]
    # eps = max(d_gain, g_gain); each gain is >= 0 up to float32 rounding, since the existing components are
    # candidates and a maximum is at least the weighted mean (equilibrium.py)
    assert np.array_equal(eps.to_numpy(), np.maximum(d_gain, g_gain).to_numpy())
    assert (d_gain >= -1e-5).all() and (g_gain >= -1e-5).all()
    # bounded phi: F in [2 log delta, 0], so V lies there and no gain exceeds -2 log delta
    log_rows = t[t["method"].isin(["gan", "mixgan", "gan5x"])]
    V = metric(log_rows, "V")["value"]
    assert V.between(2 * math.log(TINY.delta) - 1e-5, 1e-5).all()
    assert (metric(log_rows, "eps")["value"] <= -2 * math.log(TINY.delta) + 1e-5).all()
    # budgets recorded beside every eps row
    rows = metric(t, "eps")
    assert (rows["d_budget_steps"] == TINY.br_steps).all() and (rows["g_budget_restarts"] == TINY.br_restarts).all()
    assert (rows["d_budget_lr"] == TINY.br_lr).all() and (rows["n_eval"] == TINY.n_eval).all()
    assert set(rows["game"]) == {f"log(delta={TINY.delta:g})", "wasserstein"}


def test_weights_parameters_and_samples(tiny_run):
    t = tiny_run[1].table
    T = TINY.n_components
    for (ds, method), rows in t.groupby(["dataset", "method"]):
        n = T if method.startswith("mix") else 1
        for side in ("g", "d"):
            w = rows[rows["metric"].str.fullmatch(f"w_{side}\\d+")]["value"]
            assert len(w) == n and (w > 0).all() and abs(w.sum() - 1.0) < 1e-6
        comp = metric(rows, "sample_component")["value"]
        assert len(comp) == TINY.n_plot_samples and comp.between(0, n - 1).all()
        assert len(metric(rows, "hist_value")) == TINY.n_history_points
    params = tiny_run[1].summary["parameters"]
    # MIX+GAN holds T copies of the GAN's players; the big GAN is widened to ~big_factor times the GAN
    assert params["mixgan"]["total"] == T * params["gan"]["total"]
    h = params["gan5x"]["hidden"]
    gap = (player_parameters(h + 1, depth=2, latent_dim=2, dim=2) - player_parameters(h, depth=2, latent_dim=2, dim=2))
    assert abs(params["gan5x"]["total"] - TINY.big_factor * params["gan"]["total"]) <= gap / 2


def test_summary_has_table_and_verdict(tiny_run):
    s = tiny_run[1].summary
    assert set(s["table"]) == {"ring8", "grid25"}
    entry = s["table"]["ring8"]["mixgan"]
    assert entry["n_seeds"] == 1 and entry["modes_captured"]["n"] == 1
    verdict = s["verdict"]
    assert isinstance(verdict["text"], str) and "Figure 4 analogue" in verdict["text"]
    # 3 comparisons x 3 metrics x 2 datasets, plus 2 Figure-4 lines per dataset
    assert len(verdict["details"]) == 3 * 3 * 2 + 2 * 2
    assert all("Welch p" in line for line in verdict["details"])
    w = s["weights_sorted"]["ring8"]["mixgan"]["g"]["mean"]
    assert len(w) == TINY.n_components and w == sorted(w, reverse=True)


def test_cells_are_independent_and_deterministic():
    config = dataclasses.replace(TINY, datasets=("ring8",), methods=("mixgan", "wgan"), steps=10)
    check_group_independent(STUDY, config, device="cpu", n_groups=2)


@pytest.mark.parametrize("hidden,depth", [(1, 1), (16, 2), (128, 2), (7, 3), (5, 0)])
def test_mlp_parameters_matches_the_modules(hidden, depth):
    # closed form against torch's own count of the players' parameters
    assert mlp_parameters(2, 2, hidden, depth) == count_parameters(MLPGenerator(2, 2, hidden=hidden, depth=depth))
    assert mlp_parameters(2, 1, hidden, depth) == count_parameters(MLPDiscriminator(2, hidden=hidden, depth=depth))


@pytest.mark.parametrize("hidden,factor", [(16, 5.0), (64, 5.0), (128, 5.0), (32, 1.0), (20, 2.5)])
def test_matched_hidden_is_the_closest_width(hidden, factor):
    # brute force over all widths up to 10x as the reference
    target = factor * player_parameters(hidden, depth=2, latent_dim=2, dim=2)
    best = min(range(1, 10 * hidden), key=lambda h: abs(player_parameters(h, depth=2, latent_dim=2, dim=2) - target))
    assert matched_hidden(hidden, factor, depth=2, latent_dim=2, dim=2) == best


def test_method_configs():
    c = EquilibriumConfig()
    assert method_config("gan", c, seed=1).n_components == 1
    mix = method_config("mixwgan", c, seed=1)
    assert (mix.n_components, mix.loss, mix.clip, mix.n_critic, mix.lr_d) == (5, "wasserstein", c.clip, c.n_critic, c.wgan_lr)
    assert method_config("gan5x", c, seed=1).hidden == matched_hidden(c.hidden, 5.0, depth=2, latent_dim=2, dim=2)
    assert method_config("mixgan", c, seed=1).lr_g == c.lr


@pytest.mark.parametrize("bad", [{"methods": ("gan", "vae")}, {"datasets": ()}, {"delta": 0.0}, {"delta": 1.0},
                                 {"n_components": 1}, {"big_factor": 0.5}, {"n_plot_samples": 5000},
                                 {"methods": ("gan", "gan")}])
def test_bad_config_is_rejected(bad):
    with pytest.raises(ValueError):
        EquilibriumConfig(**bad)


def test_sample_components_are_the_ones_sample_draws():
    # The study recovers each sample's component as draw_components(n, seed=default_rng(s)) and relies on it
    # being the first draw of Mixture.sample(n, seed=s) (mixture.py docstring). Point generators make the
    # component of every sample visible: sample i must equal the point of its recovered component.
    from gangen.mixgan import Mixture
    from gangen.mixgan.equilibrium import PointGenerator

    points = np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    mix = Mixture([PointGenerator(p) for p in points])
    with torch.no_grad():
        mix.logits.copy_(torch.tensor([0.0, 1.0, -1.0]))
    comp = mix.draw_components(200, seed=np.random.default_rng(7))
    x = mix.sample(200, seed=7).numpy()
    assert np.array_equal(x, points[comp].astype(np.float32)) and len(set(comp)) == 3
