"""Tests of the many-paths study (Fedus et al.): the JS-from-payoff identity, snapshots by prefix runs, a tiny run."""

from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import pandas as pd
import pytest
import torch

from gangen.distances.js import js_divergence
from gangen.mixgan.losses import log_payoff
from gangen.mixgan.train import train
from gangen.samplers import Gaussian
from gangen.studies.many_paths import STUDY, disjoint_config, js_from_payoff, ring_config
from gangen.studies.runner import check_group_independent, resolve_config, run_study

TINY = resolve_config(STUDY, "tiny")  # disjoint: checkpoints 0, 4, 8 (1 seed); ring: NS-GAN and GAN-GP, 10 steps
LOG2 = math.log(2.0)


@pytest.fixture(autouse=True)
def one_thread():
    # Tiny networks: OpenMP threads only contend on a loaded machine; run_group does the same.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_js_from_payoff_of_the_optimal_discriminator_is_js():
    # Goodfellow et al. 2014: at D* = p / (p + q), F = E_p log D* + E_q log(1 - D*) = 2 JS(p, q) - log 4.
    # Two histograms on three atoms, written as samples with multiplicities (p: a a b c, q: a b c c);
    # the score s = log(p/q) gives sigmoid(s) = D*. The reference JS is gangen's histogram JS.
    p, q = np.array([0.5, 0.25, 0.25]), np.array([0.25, 0.25, 0.5])
    real_atoms, fake_atoms = [0, 0, 1, 2], [0, 1, 2, 2]
    score = torch.tensor(np.log(p / q), dtype=torch.float64)
    F = log_payoff(score[real_atoms][None], score[fake_atoms][None, None])
    assert js_from_payoff(float(F)) == pytest.approx(js_divergence(p, q), abs=1e-12)


def test_a_short_run_is_the_prefix_of_a_longer_one():
    # The study takes the generator at step t from a run of t steps; that is the state of a longer run
    # at step t only if training is deterministic and draws nothing that depends on the total length.
    # Every logged payoff F (it depends on both players at that step) must agree on the common steps.
    config = dataclasses.replace(TINY, hidden=8, batch_size=16, disjoint_log_every=1)
    data = Gaussian(1, sigma2=0.0625, mean=[5.0])
    short = train(disjoint_config(config, 6, seed=11), data).history
    long = train(disjoint_config(config, 12, seed=11), data).history
    np.testing.assert_array_equal(short["value"].to_numpy(), long["value"].to_numpy()[:6])
    again = train(disjoint_config(config, 6, seed=11), data)
    assert again.history["value"].tolist() == short["value"].tolist()


def test_ring_config_maps_variants_to_mixgan_presets():
    c = resolve_config(STUDY, "paper")
    ns, gp = ring_config(c, "ns-gan", 1e-3, 0.0, 0), ring_config(c, "gan-gp", 1e-3, 1.0, 0)
    dragan, wgp = ring_config(c, "dragan-ns", 1e-3, 1.0, 0), ring_config(c, "wgan-gp", 1e-3, 1.0, 0)
    assert (ns.loss, ns.penalty, ns.n_components) == ("nonsaturating", "none", 1)
    assert (gp.loss, gp.penalty, gp.penalty_weight) == ("nonsaturating", "gp", 1.0)
    assert (dragan.loss, dragan.penalty) == ("nonsaturating", "dragan")
    assert (wgp.loss, wgp.penalty, wgp.n_critic, wgp.beta1) == ("wasserstein", "gp", 5, 0.0)
    assert ns.lr_g == ns.lr_d == 1e-3


def test_config_rejects_bad_values():
    with pytest.raises(ValueError, match="parts"):
        dataclasses.replace(TINY, parts=("rings",))
    with pytest.raises(ValueError, match="ring_variants"):
        dataclasses.replace(TINY, ring_variants=("lsgan",))
    with pytest.raises(ValueError, match="n_eval"):
        dataclasses.replace(TINY, n_eval=5)


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("many_paths")
    threads = torch.get_num_threads()
    try:
        return out, run_study(STUDY, TINY, out, device="cpu", progress=False, preset="tiny")
    finally:
        torch.set_num_threads(threads)


def test_tiny_preset_writes_results_summary_and_figures(tiny_run):
    out, result = tiny_run
    res_dir = out / "studies" / "many_paths"
    for name in ("results.csv", "config.json", "summary.json"):
        assert (res_dir / name).is_file(), name
    for stem in ("many_paths_disjoint", "many_paths_ring"):
        for ext in ("pdf", "png"):
            assert (out / "figures" / f"{stem}.{ext}").stat().st_size > 1000, stem
    table = pd.read_csv(res_dir / "results.csv")
    assert len(table.groupby(["part", "variant", "lr", "penalty_weight", "step", "rep"])) == 3 + 2
    assert json.loads((res_dir / "summary.json").read_text()) == result.summary


def test_tiny_values_make_sense(tiny_run):
    _, result = tiny_run
    t = result.table
    d = t[t.part == "disjoint"]
    # continuous generator and data samples share no atom: the plug-in JS is log 2 exactly
    assert np.all(np.abs(d.loc[d.metric == "js_plugin", "value"] - LOG2) <= 1e-12)
    assert (d.loc[d.metric == "w1", "value"] > 3.0).all()  # 8 steps cannot carry a generator near 0 to N(5, .25^2)
    assert d.loc[d.metric == "gen_in_data", "value"].between(0.0, 1.0).all()
    for metric in ("js_disc", "js_best", "js_disc_train"):
        assert (d.loc[d.metric == metric, "value"] <= LOG2 + 1e-9).all(), metric  # lower bounds on JS <= log 2
    best = d[d.metric == "js_best"].set_index("step")["value"]
    disc = d[d.metric == "js_disc"].set_index("step")["value"]
    assert (best >= disc - 1e-12).all()  # the best of (training D, fresh D)
    assert d.loc[d.metric == "js_disc_train", "at_step"].max() == 7  # history of the 8-step run: steps 0..7
    r = t[t.part == "ring"]
    assert r.loc[r.metric == "modes_captured", "value"].between(0, 8).all()
    assert set(r.loc[r.metric == "all_modes", "value"]) <= {0.0, 1.0}
    s = result.summary
    assert s["disjoint"]["js_plugin_all_log2"] is True
    assert set(s["ring"]) == {"ns-gan", "gan-gp"} and s["ring"]["ns-gan"]["n_runs"] == 1
    assert len(s["verdict"]) == 2


def test_group_independent():
    small = dataclasses.replace(TINY, parts=("disjoint",), disjoint_checkpoints=(3,), hidden=8, n_eval=50,
                                best_response_steps=3)
    check_group_independent(STUDY, small)
