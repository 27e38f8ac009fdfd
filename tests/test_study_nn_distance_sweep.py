"""Tests of study 2, gangen.studies.nn_distance_sweep (Theorem 3.1: the neural-net distance generalizes)."""

from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import pandas as pd
import pytest
from scipy import integrate, stats

from _study_checks import assert_study_outputs
from gangen.distances.measuring import IdentityMeasuring, LogMeasuring
from gangen.distances.wasserstein import random_directions, sliced_wasserstein
from gangen.nn.ensemble import evaluate_ensemble
from gangen.nn.families import MLPFamily
from gangen.studies.nn_distance_sweep import (
    STUDY,
    NNSweepConfig,
    _heldout_standard_error,
    all_functions_sup,
    bound_epsilon,
    fit_bound_constant,
    loglog_fit,
    pooled_slope,
    sliced_w1_shift,
)
from gangen.studies.runner import check_group_independent, main, resolve_config, run_study
from gangen.theory import theorem_3_1_epsilon

TINY = resolve_config(STUDY, "tiny")  # d 4, widths (2, 4), m (64, 128, 256), 3 seeds, 150 steps
N_NN = len(TINY.widths) * len(TINY.phis) * 2 * len(TINY.m_values) * TINY.n_seeds  # x 2 pairs


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("nn_sweep")
    return out, run_study(STUDY, TINY, out, device="cpu", progress=False, preset="tiny")


def test_tiny_preset_writes_results_summary_and_figure(tiny_run):
    out, result = tiny_run
    res_dir = assert_study_outputs(out, "nn_distance_sweep", ["nn_distance_sweep"], min_bytes=10_000)
    assert json.loads((res_dir / "summary.json").read_text()) == result.summary
    assert json.loads((res_dir / "config.json").read_text())["preset"] == "tiny"
    t = pd.read_csv(res_dir / "results.csv")
    counts = t.groupby("measure").apply(lambda g: len(g.drop_duplicates(["width", "phi", "pair", "m", "rep"])))
    # nn: widths x phis x pairs x m x seeds; pop: widths x phis; w1 (all m <= w1_max_m = 256) and sw: pairs x m x seeds
    assert counts.to_dict() == {"nn": N_NN, "pop": 4, "sw": 18, "w1": 18}
    assert result.n_cells == N_NN + 4 + 18 + 18
    nn = t[t.measure == "nn"]
    assert set(nn.metric) == {"nn_train", "nn_heldout", "nn_gap"}
    # the optimisation budget is in every trained row
    for col, value in (("steps", TINY.steps), ("lr", TINY.lr), ("restarts", TINY.restarts), ("method", "adam")):
        assert (nn[col] == value).all(), col
    assert (nn["batch_size"] == nn["m"]).all()  # full batch
    # every column keeps one type: the transport rows carry zeros in the budget columns (no training)
    assert t["p"].dtype.kind == "i" and (t.loc[t.measure.isin(["w1", "sw"]), ["p", "steps"]] == 0).all().all()


def test_p_is_the_exact_parameter_count(tiny_run):
    _, result = tiny_run
    nn = result.table[result.table.measure == "nn"]
    d = TINY.d
    for w, p in nn.groupby("width")["p"].unique().items():
        # one hidden layer: W1 (d x w) + b1 (w) + w_out (w) + b_out (1)
        assert list(p) == [d * w + w + w + 1]
    assert result.summary["setting"]["p_by_width"] == {"2": 13, "4": 25}


def test_tiny_values_are_finite_and_sane(tiny_run):
    _, result = tiny_run
    t = result.table
    assert np.isfinite(t["value"]).all()
    wide = t[t.measure == "nn"].pivot_table(index=["width", "phi", "pair", "m", "rep"], columns="metric",
                                           values="value").reset_index()
    assert np.allclose(wide.nn_gap, wide.nn_train - wide.nn_heldout, atol=1e-12)
    # J <= its maximum: phi(1) + phi(1) - 2 phi(1/2) = -2 log((1 + delta)/2) for log, 1 for phi(t) = t.
    top = {"log": -2 * math.log((1 + TINY.delta) / 2), "identity": 1.0}
    for phi, part in wide.groupby("phi"):
        assert (part[["nn_train", "nn_heldout"]].abs().to_numpy() <= top[phi] + 1e-9).all()
    same = wide[wide.pair == "same"]
    # mu = nu: the sup is >= 0 (D = 1/2 is in F); training from a random start must get close to it.
    assert (same.nn_train >= -0.02).all()
    # phi = log: J(D) <= 0 for every D when mu = nu (concavity), so held-out values are <= 0 up to MC noise.
    assert (same[same.phi == "log"].nn_heldout <= 0.02).all()
    # the trained discriminator does better on its training samples than on fresh ones (mostly).
    assert (wide.nn_gap >= -0.05).mean() >= 0.95
    # sliced W1 <= W1 on the same samples (projections are 1-Lipschitz); both >= 0.
    ot = t[t.measure.isin(["w1", "sw"]) & t.metric.isin(["w1", "sw"])].pivot_table(
        index=["pair", "m", "rep"], columns="metric", values="value")
    assert ((ot.sw <= ot.w1 + 1e-12) & (ot.sw >= 0)).all()
    # population estimates lie below the sup over all functions (up to Monte Carlo error on 8192 points).
    pop = result.summary["population"]
    for phi in TINY.phis:
        for value in pop["estimate"][phi].values():
            assert 0 < value <= pop["all_functions_sup"][phi] + 0.03


def test_summary_has_slopes_bound_and_verdict(tiny_run):
    _, result = tiny_run
    s = result.summary
    for pair in ("same", "shift"):
        for phi in TINY.phis:
            for metric in ("dev_pop", "gap"):
                entry = s["fits"][pair][phi][metric]
                assert set(entry["per_p"]) == {"13", "25"}
                fit = entry["per_p"]["13"]  # m >= 4 p = 52: all three m
                assert fit["m_used"] == [64, 128, 256] and fit["n"] + fit["n_excluded"] == 9
                assert fit["ci95"][0] <= fit["slope"] <= fit["ci95"][1]
                assert fit["consistent_with_minus_half"] == (fit["ci95"][0] <= -0.5 <= fit["ci95"][1])
                bound = entry["bound"]
                assert bound["c"] > 0 and bound["c_envelope"] >= bound["c"]
    assert all(isinstance(line, str) and line for line in s["verdict"])


def test_rerun_from_cache_recomputes_nothing_and_gives_the_same_table(tiny_run):
    out, result = tiny_run
    again = run_study(STUDY, TINY, out, device="cpu", progress=False, plot=False)
    assert (again.n_cells, again.n_computed) == (result.n_cells, 0)
    pd.testing.assert_frame_equal(again.table, result.table)


def test_resume_after_losing_part_of_the_cache_recomputes_only_that_and_matches(tiny_run, tmp_path):
    """An interrupted run: copy the finished cache, drop every third cell (splitting groups), rerun."""
    import shutil

    out, result = tiny_run
    cache = out / "studies" / "nn_distance_sweep" / "cache"
    resumed = tmp_path / "studies" / "nn_distance_sweep" / "cache"
    shutil.copytree(cache, resumed)
    files = sorted(resumed.glob("*.json"))
    for f in files[::3]:
        f.unlink()
    again = run_study(STUDY, TINY, tmp_path, device="cpu", progress=False, plot=False)
    assert again.n_computed == len(files[::3])
    pd.testing.assert_frame_equal(again.table, result.table)


def test_cells_give_identical_rows_in_their_group_and_alone():
    # the first two groups are ensembles of 2 pairs x 3 seeds (exact equality: one member per chunk on a CPU)
    small = dataclasses.replace(TINY, steps=60, n_heldout=512)
    check_group_independent(STUDY, small, device="cpu", n_groups=2)


# --------------------------------------------------------------------------- building blocks


def test_bound_epsilon_matches_theory_solver():
    for phi in (LogMeasuring(1e-3), IdentityMeasuring()):
        for m, p, c, L in ((1e3, 21, 0.3, 1.0), (5e4, 321, 1e-4, 2.0), (200, 5, 2.0, 10.0)):
            ref = theorem_3_1_epsilon(m, p, c=c, delta_range=phi.range, lipschitz=L, lipschitz_phi=phi.lipschitz)
            assert bound_epsilon(m, p, c=c, phi=phi, lipschitz=L) == pytest.approx(ref, rel=1e-9)


def test_fit_bound_constant_recovers_c_and_envelope():
    phi = LogMeasuring(1e-3)
    rng = np.random.default_rng(0)
    m = np.repeat([1e3, 4e3, 1.6e4], 8)
    p = np.tile([21, 41, 81, 161], 6)
    eps = bound_epsilon(m, p, c=2e-4, phi=phi)
    exact = fit_bound_constant(m, p, eps, phi=phi)
    assert exact["c"] == pytest.approx(2e-4, rel=1e-6) and exact["rms_log_residual"] < 1e-6
    noisy = eps * np.exp(rng.normal(0, 0.2, size=eps.size))
    fit = fit_bound_constant(m, p, noisy, phi=phi)
    assert fit["c"] == pytest.approx(2e-4, rel=0.2)
    # the envelope is the smallest c whose bound covers every point
    assert np.all(bound_epsilon(m, p, c=fit["c_envelope"] * (1 + 1e-9), phi=phi) >= noisy)
    assert not np.all(bound_epsilon(m, p, c=fit["c_envelope"] * 0.99, phi=phi) >= noisy)


def test_slope_fits_against_numpy_and_a_known_common_slope():
    rng = np.random.default_rng(1)
    x = np.repeat([100, 200, 400, 800], 5).astype(float)
    y = 3.0 * x**-0.5 * np.exp(rng.normal(0, 0.1, x.size))
    fit = loglog_fit(x, y)
    assert fit["slope"] == pytest.approx(np.polyfit(np.log(x), np.log(y), 1)[0], rel=1e-12)
    assert fit["ci95"][0] < -0.5 < fit["ci95"][1]
    assert loglog_fit(x, -y)["slope"] is None  # no positive value: no fit
    groups = np.repeat(["a", "b"], x.size)
    xx = np.concatenate([x, x])
    yy = np.concatenate([np.exp(1.0) * x**-1.0, np.exp(-2.0) * x**-1.0])  # same slope, different intercepts
    assert pooled_slope(xx, yy, groups)["slope"] == pytest.approx(-1.0, abs=1e-12)


def test_all_functions_sup_against_independent_references():
    d, shift = 8, 0.5
    sigma = 1 / math.sqrt(d)
    # phi(t) = t: the sup over D in [0, 1] is TV = int (f - g)_+ (Scheffe), integrated here numerically
    f = stats.norm(0, sigma).pdf
    g = stats.norm(shift, sigma).pdf
    tv = integrate.quad(lambda x: max(f(x) - g(x), 0.0), -6, 6, points=[shift / 2], limit=200)[0]
    assert all_functions_sup(IdentityMeasuring(), d, shift) == pytest.approx(tv, rel=1e-8)
    # phi = log(delta + (1 - delta) t) with delta -> 0: the sup tends to 2 JS (PAPER.md, Definition 2)
    js = 0.5 * integrate.quad(lambda x: f(x) * math.log(2 * f(x) / (f(x) + g(x)))
                              + g(x) * math.log(2 * g(x) / (f(x) + g(x))), -6, 6, limit=200)[0]
    assert all_functions_sup(LogMeasuring(1e-9), d, shift) == pytest.approx(2 * js, rel=1e-6)
    # a larger delta can only lower it (phi_delta(t) - phi_delta(1/2) shrinks toward 0)
    assert all_functions_sup(LogMeasuring(1e-2), d, shift) < 2 * js
    assert all_functions_sup(LogMeasuring(1e-3), d, 1e-9) == pytest.approx(0.0, abs=1e-12)


def test_sliced_w1_of_a_translation():
    assert sliced_w1_shift(2, 1.0) == pytest.approx(2 / math.pi, rel=1e-12)  # E|cos U| on the circle
    # Monte Carlo over many directions, with the library's sliced W1 between a sample and its exact translate
    x = np.random.default_rng(0).normal(size=(200, 8)) / math.sqrt(8)
    shifted = x + np.eye(8)[0] * 0.5
    mc = sliced_wasserstein(x, shifted, n_projections=5000, seed=3)
    assert mc == pytest.approx(sliced_w1_shift(8, 0.5), rel=0.04)  # ~4 s.e. of the mean over 5000 directions
    theta = random_directions(8, 5000, seed=3)
    assert mc == pytest.approx(np.mean(np.abs(0.5 * theta[0])), rel=1e-9)  # the same directions: exact


@pytest.mark.parametrize("phi", [LogMeasuring(1e-3), IdentityMeasuring()])
def test_heldout_standard_error_agrees_with_the_engine(phi):
    """The population cell's Monte Carlo s.e. helper evaluates J in float64 with family.logits (autograd's
    forward); its mean must equal the engine's float32 evaluate_ensemble up to float32 rounding."""
    fam = MLPFamily(d=3, hidden=(5,))
    params = fam.init([11])
    rng = np.random.default_rng(2)
    xh, yh = rng.normal(size=(4000, 3)), rng.normal(0.3, 1.0, size=(3000, 3))
    mean, se = _heldout_standard_error(fam, phi, params[0], xh, yh, chunk=1500)
    ref = evaluate_ensemble(params, xh[None], yh[None], family=fam, phi=phi, device="cpu")[0]
    assert mean == pytest.approx(ref, abs=1e-5)
    import torch  # an independent s.e.: per-point terms from the module form of the member

    net = fam.to_module(params[0]).double()
    with torch.no_grad():
        dx, dy = net(torch.from_numpy(xh))[:, 0], net(torch.from_numpy(yh))[:, 0]
    a, b = (phi(dx) - phi.phi_half).numpy(), (phi(1 - dy) - phi.phi_half).numpy()
    assert se == pytest.approx(math.sqrt(a.var(ddof=1) / a.size + b.var(ddof=1) / b.size), rel=1e-6)


def test_config_rejects_bad_values():
    with pytest.raises(ValueError, match="phis"):
        NNSweepConfig(phis=("log", "kl"))
    with pytest.raises(ValueError, match="fixed_m"):
        NNSweepConfig(fixed_m=3)
    with pytest.raises(ValueError, match="shift"):
        NNSweepConfig(shift=0.0)
    with pytest.raises(ValueError, match="pop_batch_size"):
        NNSweepConfig(n_pop_train=100, pop_batch_size=200)


def test_cli_help_lists_every_field(capsys):
    with pytest.raises(SystemExit) as exc:
        main(STUDY, ["--help"])
    assert exc.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    for f in dataclasses.fields(NNSweepConfig):
        assert "--" + f.name.replace("_", "-") in text
    assert "paper: 128,256,512,1024,2048,4096,8192" in text
