"""Tests of study 3, gangen.studies.diversity (Corollary 3.2: small discriminators cannot detect a memorizer).

The tiny preset (d = 8, widths 2 and 4, supports 4, 32 and 256, n = 256, 60 Adam steps, two reps)
runs once per module; the checks on it are sanity bounds that hold for any trained
discriminator (stated with each assert), identities of the analysis on a synthetic table,
and agreement of one cell's W1 values with POT and a k-d tree.
"""

from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import ot
import pandas as pd
import pytest
from scipy.spatial import cKDTree

from _study_checks import assert_study_outputs
from gangen.samplers import Gaussian
from gangen.studies.diversity import (
    STUDY,
    DiversityConfig,
    _data_seed,
    _generator,
    crossing,
    fit_power_law,
    max_objective,
    summarize,
)
from gangen.studies.runner import check_group_independent, main, resolve_config, run_study

TINY = resolve_config(STUDY, "tiny")
N_SUPPORT_CELLS = len(TINY.supports) * TINY.n_seeds


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("diversity")
    return out, run_study(STUDY, TINY, out, device="cpu", progress=False, preset="tiny")


def test_tiny_preset_writes_results_summary_and_figures(tiny_run):
    out, result = tiny_run
    res_dir = assert_study_outputs(out, "diversity", ["diversity"])
    table = pd.read_csv(res_dir / "results.csv")
    nn = table[table["part"] == "nn"]
    # one discriminator per (width, n, generator, s, rep): 2 widths x 1 n x (3 memorizers + mu) x 2 reps
    assert len(nn.groupby(["width", "n", "generator", "s", "rep"])) == 2 * 1 * 4 * 2
    assert set(nn["metric"]) == {"nn_heldout", "nn_train"}
    # the budget travels with every value (PAPER.md: report it beside every trained estimate)
    for col in ("p", "steps", "lr", "batch_size", "restarts", "n_eval"):
        assert nn[col].notna().all(), col
    assert json.loads((res_dir / "summary.json").read_text()) == result.summary
    assert json.loads((res_dir / "config.json").read_text())["preset"] == "tiny"


def test_tiny_values_are_sane(tiny_run):
    _, result = tiny_run
    t = result.table
    nn = t[t["part"] == "nn"]
    j_max = max_objective("log", TINY.delta)
    # every row term of J is at most phi(1) - phi(1/2), so J <= J_max on any samples, trained or held out
    assert np.all(np.isfinite(nn["value"])) and np.all(nn["value"] <= j_max + 1e-9)
    assert set(nn["p"]) == {27, 61}  # (8*2 + 2) + (2*2 + 2) + (2 + 1) and (8*4 + 4) + (4*4 + 4) + (4 + 1)
    held = nn[nn["metric"] == "nn_heldout"].set_index(["width", "generator", "s", "rep"])["value"]
    for w in TINY.widths:
        for rep in range(TINY.n_seeds):
            # 4 atoms against N(0, I/8) are easy to detect: the memorizer scores far above the sampler of mu
            assert held[(w, "memorizer", 4, rep)] > held[(w, "mu", 0, rep)] + 0.3
    sup = t[t["part"] == "support"].set_index(["s", "rep", "metric"])["value"]
    for s in TINY.supports:
        for rep in range(TINY.n_seeds):
            # nearest-atom distances of N(0, I/8): positive and below a loose bound of 3 (points have norm ~ 1)
            assert 0.0 < sup[(s, rep, "nn_lower")] < 3.0
            # s_max = 64 >= s_half ~ 1.18 sqrt(s) for s <= 256, so every memorizer shows a duplicate
            assert sup[(s, rep, "birthday_found")] == 1.0
            # the acceptance check of the birthday estimator: within a factor 2 of the known support
            assert s / 2 <= sup[(s, rep, "birthday_support")] <= 2 * s
    summary = result.summary
    assert set(summary["s_star"]) == {"256"} and set(summary["s_star"]["256"]) == {"2", "4"}
    assert summary["j_max"] == pytest.approx(j_max)
    assert isinstance(summary["verdict"], list) and all(isinstance(v, str) and v for v in summary["verdict"])


def test_support_cell_matches_pot_and_kdtree(tiny_run):
    """One support cell's W1 values recomputed from its seeds with POT's network simplex and a k-d tree."""
    _, result = tiny_run
    t = result.table
    s, rep = 32, 1
    rows = t[(t["part"] == "support") & (t["s"] == s) & (t["rep"] == rep)].set_index("metric")["value"]
    mu = Gaussian(TINY.d)
    support = _generator(TINY, "memorizer", s, rep).support
    queries = mu.sample(TINY.n_nn, seed=_data_seed(TINY, "w1_queries", s=s, rep=rep))
    assert rows["nn_lower"] == pytest.approx(cKDTree(support).query(queries)[0].mean(), rel=1e-12)
    ref = mu.sample(TINY.n_ref, seed=_data_seed(TINY, "w1_ref", s=s, rep=rep))
    assert rows["w1_ref"] == pytest.approx(ot.emd2([], [], ot.dist(ref, support, metric="euclidean")), rel=1e-9)


def test_rerun_from_cache_recomputes_nothing_and_gives_the_same_table(tiny_run):
    out, result = tiny_run
    again = run_study(STUDY, TINY, out, device="cpu", progress=False, plot=False)
    assert (again.n_cells, again.n_computed) == (len(STUDY.cells(TINY)), 0)
    pd.testing.assert_frame_equal(again.table, result.table)


def test_cells_are_group_independent():
    """A discriminator trained inside its (width, n) ensemble equals the same cell trained alone, bit for bit.

    The study gives the engine one member per chunk on the CPU, so a member's arithmetic does not
    depend on its neighbours. The first N_SUPPORT_CELLS groups are the support cells (each alone),
    the next one the first (width, n) ensemble.
    """
    config = dataclasses.replace(TINY, supports=(4, 32), n_seeds=1, steps=20)
    check_group_independent(STUDY, config, device="cpu", n_groups=len(config.supports) + 1)


def test_cli_help_lists_every_field(capsys):
    with pytest.raises(SystemExit) as exc:
        main(STUDY, ["--help"])
    assert exc.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    for f in dataclasses.fields(DiversityConfig):
        assert "--" + f.name.replace("_", "-") in text
    assert "paper: 4096,65536" in text  # the two n of the paper preset


@pytest.mark.parametrize("bad", [{"widths": ()}, {"supports": (1,)}, {"n_values": (0,)}, {"eps": 0.0},
                                 {"delta": 1.0}, {"widths": (2, 2)}, {"n_nn": 1}, {"eps_scan": ()}])
def test_bad_config_is_rejected(bad):
    with pytest.raises((ValueError, TypeError)):
        DiversityConfig(**bad)


# --------------------------------------------------------------------------- analysis identities


def test_crossing_cases():
    # exact: v linear in log s crosses 0.1 at log s = log 10 + (0.5 - 0.1)/0.5 * log 10, i.e. s = 10^1.8
    s_star, s_grid, status = crossing([1, 10, 100], [1.0, 0.5, 0.0], 0.1)
    assert status == "ok" and s_grid == 100 and s_star == pytest.approx(10**1.8, rel=1e-12)
    assert crossing([8, 16], [0.01, 0.0], 0.1) == (None, 8, "below_at_smallest")
    assert crossing([8, 16], [0.5, 0.2], 0.1) == (None, None, "never_below")
    # the first crossing counts, even if the curve comes back above eps later (noise)
    assert crossing([1, 2, 4], [1.0, 0.05, 0.2], 0.1)[1] == 2


def test_fit_power_law_recovers_exponent_and_t_interval():
    p = np.array([43.0, 93.0, 217.0, 561.0])
    fit = fit_power_law(p, 5.0 * p**1.5)
    assert fit["exponent"] == pytest.approx(1.5, abs=1e-12) and fit["prefactor"] == pytest.approx(5.0, rel=1e-12)
    assert fit["exponent_ci95"][0] == pytest.approx(1.5, abs=1e-9)  # exact data: zero-width interval
    assert fit_power_law([10.0], [3.0])["exponent"] is None


def _synthetic_table(a: float, b: float, widths: dict[int, int], supports, reps: int, n: int) -> pd.DataFrame:
    """Held-out values v(s) = a - b log(s / p), linear in log s, so that s* = p exp((a - eps)/b) exactly."""
    rows = []
    for w, p in widths.items():
        for rep in range(reps):
            for s in supports:
                rows.append({"part": "nn", "width": w, "n": n, "generator": "memorizer", "s": s, "rep": rep, "p": p,
                             "metric": "nn_heldout", "value": a - b * math.log(s / p)})
                rows.append({"part": "nn", "width": w, "n": n, "generator": "memorizer", "s": s, "rep": rep, "p": p,
                             "metric": "nn_train", "value": a - b * math.log(s / p) + 0.01})
            for metric, value in (("nn_heldout", -0.01), ("nn_train", 0.02)):
                rows.append({"part": "nn", "width": w, "n": n, "generator": "mu", "s": 0, "rep": rep, "p": p,
                             "metric": metric, "value": value})
    for s in supports:
        for rep in range(reps):
            for metric, value in (("nn_lower", 0.7), ("birthday_found", 1.0), ("birthday_support", float(s)),
                                  ("birthday_support_lower", s / 2), ("birthday_support_upper", 2.0 * s)):
                rows.append({"part": "support", "width": 0, "n": 0, "generator": "memorizer", "s": s, "rep": rep,
                             "p": np.nan, "metric": metric, "value": value})
    return pd.DataFrame(rows)


def test_summary_recovers_a_linear_law_from_a_synthetic_table():
    """s* = p exp((a - eps)/b) is exactly linear in p: the fitted exponent must be 1 (bootstrap too)."""
    a, b, eps = 0.5, 0.1, 0.1
    widths = {2: 43, 4: 93, 8: 217, 16: 561}
    supports = [2**k for k in range(4, 16)]
    table = _synthetic_table(a, b, widths, supports, reps=3, n=65536)
    config = DiversityConfig(widths=tuple(widths), supports=tuple(supports), n_values=(65536,), n_seeds=3, eps=eps,
                             eps_scan=(0.1, 0.2), n_bootstrap=50)
    summary = summarize(table, config)
    for w, p in widths.items():
        entry = summary["s_star"]["65536"][str(w)]
        assert entry["status"] == "ok"
        assert entry["s_star"] == pytest.approx(p * math.exp((a - eps) / b), rel=1e-9)
    assert summary["exponent"]["exponent"] == pytest.approx(1.0, abs=1e-9)
    assert summary["exponent"]["consistent_with_linear"] is True
    assert summary["exponent"]["bootstrap"]["ci95"] == pytest.approx([1.0, 1.0], abs=1e-9)
    # the memorizer (positive values at small s) is worse than the sampler (-0.01), more so for small s
    g = summary["gulrajani"]["8"]
    assert g["sampler_mean"] == pytest.approx(-0.01) and g["spearman_gap_vs_s"] == pytest.approx(-1.0)
    assert all(e["birthday_within_factor_2"] for e in summary["support"].values())
