"""Tests of the many-paths study (Fedus et al.): the JS-from-payoff identity, checkpoints of one run, a tiny run."""

from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import pandas as pd
import pytest
import torch

from _study_checks import assert_study_outputs
from gangen.distances.js import js_divergence
from gangen.mixgan.losses import log_payoff
from gangen.mixgan.train import train
from gangen.studies.many_paths import (
    STUDY,
    _disjoint_data,
    _shared_seed,
    cells,
    disjoint_config,
    js_from_payoff,
    measure_disjoint,
    ring_config,
    run_group,
)
from gangen.studies.runner import check_group_independent, resolve_config, run_study

TINY = resolve_config(STUDY, "tiny")  # disjoint: checkpoints 0, 4, 8 (1 seed); ring: NS-GAN and GAN-GP, 10 steps
LOG2 = math.log(2.0)


# Tiny networks: one torch thread (the conftest fixture; run_group does the same for the cells).
pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_js_from_payoff_of_the_optimal_discriminator_is_js():
    # Goodfellow et al. 2014: at D* = p / (p + q), F = E_p log D* + E_q log(1 - D*) = 2 JS(p, q) - log 4.
    # Two histograms on three atoms, written as samples with multiplicities (p: a a b c, q: a b c c);
    # the score s = log(p/q) gives sigmoid(s) = D*. The reference JS is gangen's histogram JS.
    p, q = np.array([0.5, 0.25, 0.25]), np.array([0.25, 0.25, 0.5])
    real_atoms, fake_atoms = [0, 0, 1, 2], [0, 1, 2, 2]
    score = torch.tensor(np.log(p / q), dtype=torch.float64)
    F = log_payoff(score[real_atoms][None], score[fake_atoms][None, None])
    assert js_from_payoff(float(F)) == pytest.approx(js_divergence(p, q), abs=1e-12)


SMALL = dataclasses.replace(TINY, parts=("disjoint",), disjoint_checkpoints=(7, 0, 3), hidden=8, batch_size=16,
                            n_eval=60, best_response_steps=4, disjoint_log_every=2)


def test_checkpoint_rows_of_one_run_equal_separate_runs_of_t_steps():
    # The cell trains once for 7 steps and measures t = 0, 3, 7 through train's callback. The reference
    # trains a separate run of t steps (the former design) and measures its final players with the same
    # function: training is deterministic and the callback cannot disturb it, so the rows agree exactly.
    (cell,) = cells(SMALL)
    assert (cell["step"], cell["checkpoints"]) == (7, "0,3,7")
    (rows,) = run_group([cell], SMALL, "cpu")
    got = pd.DataFrame(rows)
    train_seed = _shared_seed(SMALL, "disjoint", 0, "train")
    for t in (0, 3, 7):
        ref = train(disjoint_config(SMALL, t, train_seed), _disjoint_data(SMALL))
        expected = {r["metric"]: r["value"] for r in measure_disjoint(ref.generators, ref.discriminators, SMALL, 0)}
        at_t = got[(got["at_step"] == t) & (got["metric"] != "js_disc_train")]
        assert dict(zip(at_t["metric"], at_t["value"])) == expected, t  # exact, float for float
        assert {"w1", "js_plugin", "js_knn", "js_disc", "js_best", "gen_in_data", "gen_mean", "gen_std"} <= set(expected)
    # the training history of the measured run is that of a run without callback (steps 0, 2, 4, 6 and the last, 6)
    plain = train(disjoint_config(SMALL, 7, train_seed), _disjoint_data(SMALL)).history
    hist = got[got["metric"] == "js_disc_train"]
    assert hist["at_step"].tolist() == plain["step"].tolist() == [0, 2, 4, 6]
    assert hist["value"].tolist() == [js_from_payoff(v) for v in plain["value"]]


def test_measure_disjoint_leaves_the_players_unchanged():
    # Inside the callback the players are the live ones: the measurement (sampling, the payoff, a fresh
    # best response trained under enable_grad) must not touch their parameters, gradients, flags or modes.
    res = train(disjoint_config(SMALL, 3, seed=5), _disjoint_data(SMALL))
    players = (res.generators, res.discriminators)

    def state():
        return [(name, p.detach().clone(), p.requires_grad, None if p.grad is None else p.grad.clone())
                for mix in players for name, p in mix.named_parameters()] + [m.training for mix in players for m in mix.modules()]

    before = state()
    with torch.no_grad():  # as train runs the callback
        measure_disjoint(*players, SMALL, 0)
    after = state()
    assert len(before) == len(after)
    for a, b in zip(before, after):
        if isinstance(a, bool):
            assert a == b
            continue
        assert a[0] == b[0] and a[2] == b[2]
        torch.testing.assert_close(a[1], b[1], rtol=0, atol=0)
        assert (a[3] is None) == (b[3] is None)
        if a[3] is not None:
            torch.testing.assert_close(a[3], b[3], rtol=0, atol=0)


def test_cells_carry_their_checkpoints_and_ring_cells_keep_their_params():
    # The cache ignores the disjoint_checkpoints field, so a disjoint cell must name its checkpoints;
    # ring cells keep exactly their former params (their cache keys must not change).
    a = cells(dataclasses.replace(TINY, disjoint_checkpoints=(0, 4, 8)))
    b = cells(dataclasses.replace(TINY, disjoint_checkpoints=(0, 2, 8)))
    disjoint_a = [c for c in a if c["part"] == "disjoint"]
    assert len(disjoint_a) == TINY.disjoint_seeds == 1
    assert disjoint_a[0].as_dict() != [c for c in b if c["part"] == "disjoint"][0].as_dict()
    ring = [c for c in a if c["part"] == "ring"]
    assert ring and all(list(c.as_dict()) == ["part", "variant", "lr", "penalty_weight", "step", "rep"] for c in ring)
    assert [c.as_dict() for c in ring] == [c.as_dict() for c in b if c["part"] == "ring"]


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
    return out, run_study(STUDY, TINY, out, device="cpu", progress=False, preset="tiny")


def test_tiny_preset_writes_results_summary_and_figures(tiny_run):
    out, result = tiny_run
    res_dir = assert_study_outputs(out, "many_paths", ["many_paths_disjoint", "many_paths_ring"])
    table = pd.read_csv(res_dir / "results.csv")
    assert len(table.groupby(["part", "variant", "lr", "penalty_weight", "step", "rep"])) == 1 + 2  # one run per rep
    assert sorted(set(table.loc[(table.part == "disjoint") & (table.metric == "w1"), "at_step"])) == [0, 4, 8]
    assert json.loads((res_dir / "summary.json").read_text()) == result.summary
    # the robustness table: one row per variant, its run counts recomputed from results.csv
    md = (out / "figures" / "many_paths_robustness.md").read_text().splitlines()
    assert md[0].startswith("| variant |") and len(md) == 2 + 2
    ring = table[(table.part == "ring") & (table.metric == "all_modes")]
    for line, variant in zip(md[2:], ["ns-gan", "gan-gp"]):
        runs = ring[ring.variant == variant]["value"]
        assert f"{int(runs.sum())} of {len(runs)}" in line, line


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
    best = d[d.metric == "js_best"].set_index("at_step")["value"]
    disc = d[d.metric == "js_disc"].set_index("at_step")["value"]
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
