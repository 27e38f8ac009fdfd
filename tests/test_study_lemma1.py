"""Tests of study 1, gangen.studies.lemma1 (Lemma 1: JS and W1 between mu = N(0, I/d) and its samples)."""

from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import ot
import pandas as pd
import pytest
from scipy import stats
from scipy.spatial import cKDTree
from scipy.spatial.distance import cdist

from _study_checks import assert_study_outputs
from gangen.samplers import Gaussian
from gangen.studies.lemma1 import (
    STUDY,
    Lemma1Config,
    mean_pairwise_distance,
    nearest_distances,
    summarize,
)
from gangen.studies.runner import check_group_independent, main, resolve_config, run_study

TINY = resolve_config(STUDY, "tiny")  # d (10, 100), m (50, 100), 2 seeds: 8 cells
LOG2 = math.log(2.0)


def cell_samples(seed: int, d: int, m: int, config: Lemma1Config) -> dict[str, np.ndarray]:
    """The samples a cell draws, rebuilt from its seed as the study's docstring describes."""
    train_seed, other_seed, ref_seed, query_seed = (
        int(s) for s in np.random.default_rng(seed).integers(0, 2**63 - 1, size=4))
    mu = Gaussian(d)
    return {"train": mu.sample(m, seed=train_seed), "other": mu.sample(m, seed=other_seed),
            "ref": mu.sample(config.ref_factor * m, seed=ref_seed), "query": mu.sample(config.n_nn, seed=query_seed)}


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("lemma1")
    return out, run_study(STUDY, TINY, out, device="cpu", progress=False, preset="tiny")


def test_tiny_preset_writes_results_summary_and_figures(tiny_run):
    out, result = tiny_run
    res_dir = assert_study_outputs(out, "lemma1", ["lemma1"])
    table = pd.read_csv(res_dir / "results.csv")
    assert len(table.groupby(["d", "m", "rep"])) == 2 * 2 * 2
    assert json.loads((res_dir / "summary.json").read_text()) == result.summary
    assert json.loads((res_dir / "config.json").read_text())["preset"] == "tiny"
    # Which metric each cell measured follows the caps of the tiny preset (w1 <= 100, ref <= 50, mem <= 100).
    count = table.groupby("metric").size().to_dict()
    assert count == {"js_hat_hat": 8, "w1_hat_hat": 8, "nn_lower": 8, "nn_lower_se": 8, "w1_ref_hat": 4,
                     "w1_train_memorizer": 8}


def test_tiny_values_make_sense(tiny_run):
    _, result = tiny_run
    t = result.table
    # Lemma 1: two samples of a continuous distribution share no atom, so JS = log 2 (up to float rounding).
    js = t.loc[t.metric == "js_hat_hat", "value"]
    assert np.all(np.abs(js - LOG2) <= 1e-12)
    # Consequence (b): the memorizer's distribution is the training sample, so W1 = 0 exactly.
    assert np.all(t.loc[t.metric == "w1_train_memorizer", "value"] == 0.0)
    w1 = t[t.metric.isin(["w1_hat_hat", "w1_ref_hat", "nn_lower"])]
    assert np.all(w1.value >= 0)
    # Every distance is below the largest distance between points of N(0, I/d): a loose sanity bound of 3.
    assert np.all(w1.value < 3.0)
    assert np.all(t.loc[t.metric == "nn_lower_se", "value"] > 0)
    s = result.summary
    assert s["js"]["all_equal_log2"] and s["memorizer"]["all_zero"] and s["memorizer"]["n"] == 8
    assert set(s["per_d"]) == {"10", "100"}
    for metric, smallest in s["smallest_d_all_m"].items():
        holds = [int(d) for d, e in s["per_d"].items() if e[metric]["holds_for_all_m_and_seeds"]]
        assert smallest == (min(holds) if holds else None)
    assert isinstance(s["verdict"], list) and all(isinstance(v, str) and v for v in s["verdict"])


def test_cell_values_match_independent_solvers(tiny_run):
    """One cell's W1 values recomputed with POT's network simplex and its nn bound with a KD-tree."""
    _, result = tiny_run
    t = result.table
    rows = t[(t.d == 10) & (t.m == 50) & (t.rep == 1)].set_index("metric")
    x = cell_samples(int(rows["seed"].iloc[0]), 10, 50, TINY)
    cost = ot.dist(x["train"], x["other"], metric="euclidean")
    assert rows.loc["w1_hat_hat", "value"] == pytest.approx(ot.emd2([], [], cost), rel=1e-9)
    cost_ref = ot.dist(x["ref"], x["train"], metric="euclidean")
    assert rows.loc["w1_ref_hat", "n_other"] == 100
    assert rows.loc["w1_ref_hat", "value"] == pytest.approx(ot.emd2([], [], cost_ref), rel=1e-9)
    nn = cKDTree(x["train"]).query(x["query"])[0]
    assert rows.loc["nn_lower", "value"] == pytest.approx(nn.mean(), rel=1e-12)
    assert rows.loc["nn_lower_se", "value"] == pytest.approx(nn.std(ddof=1) / math.sqrt(nn.size), rel=1e-9)


def test_rerun_from_cache_recomputes_nothing_and_gives_the_same_table(tiny_run):
    out, result = tiny_run
    again = run_study(STUDY, TINY, out, device="cpu", progress=False, plot=False)
    assert (again.n_cells, again.n_computed) == (8, 0)
    pd.testing.assert_frame_equal(again.table, result.table)


def test_cells_are_group_independent():
    check_group_independent(STUDY, TINY, device="cpu", n_groups=2)


def test_cli_help_lists_every_field(capsys):
    with pytest.raises(SystemExit) as exc:
        main(STUDY, ["--help"])
    assert exc.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    for f in dataclasses.fields(Lemma1Config):
        assert "--" + f.name.replace("_", "-") in text
    assert "paper: 10,30,100,300,1000" in text  # the paper preset's d_values
    assert "paper: 100,215,464,1000,2154,4642,10000" in text  # m from 10^2 to 10^4, log-spaced


@pytest.mark.parametrize("bad", [{"ref_factor": 1}, {"d_values": ()}, {"m_values": (1,)}, {"n_nn": 1},
                                 {"threshold": 0.0}, {"n_seeds": 0}])
def test_bad_config_is_rejected(bad):
    with pytest.raises((ValueError, TypeError)):
        Lemma1Config(**bad)


def test_nearest_distances_match_cdist():
    rng = np.random.default_rng(0)
    q, p = rng.normal(size=(37, 5)), rng.normal(size=(23, 5))
    expected = cdist(q, p).min(axis=1)  # scipy's exact pairwise distances
    np.testing.assert_allclose(nearest_distances(q, p, chunk_size=8), expected, rtol=1e-12, atol=0)


@pytest.mark.parametrize("d", [1, 2, 10, 1000])
def test_mean_pairwise_distance_is_scaled_chi_mean(d):
    # X - X' ~ N(0, (2/d) I): its norm is sqrt(2/d) times a chi(d) variable (scipy.stats.chi).
    assert mean_pairwise_distance(d) == pytest.approx(math.sqrt(2 / d) * stats.chi(d).mean(), rel=1e-10)
    assert mean_pairwise_distance(d) < math.sqrt(2)


def test_summary_fractions_on_a_hand_made_table():
    # d = 10: one of two seeds >= 1.1 at m = 100, none at m = 200 -> fractions 0.5, 0.0, overall 0.25.
    # d = 100: all >= 1.1 -> holds; it is then the smallest such d.
    records = []
    for d, values in ((10, {100: (1.0, 1.2), 200: (0.9, 1.05)}), (100, {100: (1.3, 1.25), 200: (1.2, 1.1)})):
        for m, vals in values.items():
            for rep, v in enumerate(vals):
                records += [{"d": d, "m": m, "rep": rep, "seed": rep, "metric": "w1_hat_hat", "value": v},
                            {"d": d, "m": m, "rep": rep, "seed": rep, "metric": "js_hat_hat", "value": LOG2}]
    s = summarize(pd.DataFrame(records), Lemma1Config())
    e10 = s["per_d"]["10"]["w1_hat_hat"]
    assert e10["frac_seeds_ge_threshold_by_m"] == {"100": 0.5, "200": 0.0}
    assert e10["frac_ge_threshold_all_m"] == 0.25 and not e10["holds_for_all_m_and_seeds"]
    assert s["per_d"]["100"]["w1_hat_hat"]["holds_for_all_m_and_seeds"]  # 1.1 >= 1.1 counts
    assert s["smallest_d_all_m"] == {"w1_hat_hat": 100, "nn_lower": None, "w1_ref_hat": None}
    assert s["js"]["all_equal_log2"] and s["memorizer"] == {"n": 0, "max_abs": None, "all_zero": False}
