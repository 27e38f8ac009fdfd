"""Tests for gangen.samplers: shapes, determinism, moments against the defining parameters, modes, validation."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest

from gangen.samplers import (
    Empirical,
    Gaussian,
    GaussianMixture,
    Memorizer,
    Sampler,
    as_rng,
    grid25,
    ring8,
    shifted_gaussian,
)

ALL_SAMPLERS = [
    pytest.param(lambda: Gaussian(3), id="gaussian"),
    pytest.param(lambda: shifted_gaussian(3, 2.0), id="shifted"),
    pytest.param(lambda: ring8(), id="ring8"),
    pytest.param(lambda: grid25(), id="grid25"),
    pytest.param(lambda: Empirical(np.arange(12.0).reshape(4, 3)), id="empirical"),
    pytest.param(lambda: Memorizer(Gaussian(3), 7, seed=1), id="memorizer"),
]


@pytest.mark.parametrize("make", ALL_SAMPLERS)
def test_shape_dtype_and_seed_determinism(make):
    sampler = make()
    assert isinstance(sampler, Sampler)
    x = sampler.sample(50, seed=3)
    assert x.shape == (50, sampler.d) and x.dtype == np.float64
    np.testing.assert_array_equal(x, sampler.sample(50, seed=3))
    assert not np.array_equal(x, sampler.sample(50, seed=4))
    # A Generator is advanced: two draws from the same generator differ, and match one draw of 100.
    rng = np.random.default_rng(9)
    first, second = sampler.sample(50, seed=rng), sampler.sample(50, seed=rng)
    assert not np.array_equal(first, second)
    assert sampler.sample(1, seed=np.int64(2)).shape == (1, sampler.d)  # numpy ints accepted


@pytest.mark.parametrize("make", ALL_SAMPLERS)
def test_samplers_are_frozen_and_have_a_repr(make):
    sampler = make()
    name = type(sampler).__name__
    assert repr(sampler).startswith(name + "(")
    first_field = dataclasses.fields(sampler)[0].name
    with pytest.raises(dataclasses.FrozenInstanceError):
        setattr(sampler, first_field, None)
    for value in vars(sampler).values():
        if isinstance(value, np.ndarray):
            assert not value.flags.writeable


def test_gaussian_default_is_lemma1_distribution():
    # Lemma 1: N(0, I/d). Sample variance of 20000 draws has sd sigma2*sqrt(2/n) = 0.25*0.01;
    # tolerance 0.02 is 8 sd. The sample mean has sd sqrt(sigma2/n) = 0.0035; tolerance 0.02 is 5.7 sd.
    g = Gaussian(4)
    assert g.sigma2 == 0.25
    x = g.sample(20_000, seed=0)
    np.testing.assert_allclose(x.var(axis=0), 0.25, atol=0.02)
    np.testing.assert_allclose(x.mean(axis=0), 0.0, atol=0.02)
    # In high dimension the squared norm concentrates at 1 with sd sqrt(2/d) = 0.045 for d = 1000.
    norms2 = np.sum(Gaussian(1000).sample(200, seed=1) ** 2, axis=1)
    assert abs(norms2.mean() - 1.0) < 0.02 and norms2.std() < 0.07


def test_gaussian_mean_and_variance_are_used():
    g = Gaussian(2, sigma2=4.0, mean=[1.0, -3.0])
    x = g.sample(20_000, seed=0)
    # sd of the sample mean: 2/sqrt(20000) = 0.014; of the variance: 4*sqrt(2/20000) = 0.04.
    np.testing.assert_allclose(x.mean(axis=0), [1.0, -3.0], atol=0.07)
    np.testing.assert_allclose(x.var(axis=0), 4.0, atol=0.2)


def test_shifted_gaussian_is_a_gaussian_with_mean_on_first_axis():
    g = shifted_gaussian(5, -1.5, sigma2=0.1)
    assert isinstance(g, Gaussian) and g.sigma2 == 0.1
    np.testing.assert_array_equal(g.mean, [-1.5, 0, 0, 0, 0])
    assert shifted_gaussian(3, 2.0).sigma2 == pytest.approx(1 / 3)
    assert "-1.5*e_1" in repr(g)


def test_mixture_component_frequencies_follow_weights():
    mix = GaussianMixture([[0.0], [100.0], [200.0]], 0.1, weights=[0.2, 0.3, 0.5])
    x = mix.sample(10_000, seed=0)[:, 0]
    freq = np.array([np.mean(np.abs(x - c) < 1.0) for c in (0.0, 100.0, 200.0)])
    # Binomial sd at n=10000 is at most 0.005; tolerance 0.025 is 5 sd.
    np.testing.assert_allclose(freq, [0.2, 0.3, 0.5], atol=0.025)
    assert freq.sum() == 1.0  # every draw within 10 std of its mode


def test_ring8_has_8_distinct_modes_at_2pi_k_over_8():
    ring = ring8(radius=2.0, std=0.01)
    assert ring.means.shape == (8, 2) and ring.std == 0.01
    np.testing.assert_allclose(np.linalg.norm(ring.means, axis=1), 2.0)
    angles = np.sort(np.mod(np.arctan2(ring.means[:, 1], ring.means[:, 0]), 2 * np.pi))
    np.testing.assert_allclose(angles, 2 * np.pi * np.arange(8) / 8, atol=1e-12)
    # 8 distinct modes; the pairwise minimum distance is the chord 2 r sin(pi/8).
    diffs = np.linalg.norm(ring.means[:, None] - ring.means[None], axis=2)
    assert np.min(diffs[~np.eye(8, dtype=bool)]) == pytest.approx(2 * 2.0 * math.sin(math.pi / 8))
    # The check above fails on the widely copied linspace ring, which repeats a mode:
    bad = np.stack([np.cos(np.linspace(0, 2 * np.pi, 8)), np.sin(np.linspace(0, 2 * np.pi, 8))], axis=1)
    assert len(np.unique(bad.round(9), axis=0)) == 7


def test_ring8_samples_are_near_a_mode():
    ring = ring8()
    x = ring.sample(2_000, seed=0)
    nearest = np.min(np.linalg.norm(x[:, None] - ring.means[None], axis=2), axis=1)
    # Distance to the own mode is chi with 2 dof times std; P(> 5 std) = exp(-12.5) ~ 4e-6.
    assert np.all(nearest < 5 * ring.std)
    counts = np.bincount(np.argmin(np.linalg.norm(x[:, None] - ring.means[None], axis=2), axis=1), minlength=8)
    assert np.all(counts > 150)  # expected 250 each, binomial sd 14.8


def test_grid25_modes():
    g = grid25()
    assert g.std == 0.05
    expected = {(float(a), float(b)) for a in (-4, -2, 0, 2, 4) for b in (-4, -2, 0, 2, 4)}
    assert {tuple(row) for row in g.means.tolist()} == expected
    assert {tuple(row) for row in grid25(spacing=1.0).means.tolist()} == {(a / 2, b / 2) for a, b in expected}


def test_empirical_samples_rows_uniformly_with_replacement():
    points = np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    e = Empirical(points)
    x = e.sample(8_000, seed=0)
    idx = x @ np.array([1.0, 2.0])  # row index 0..3 encoded
    np.testing.assert_array_equal(np.unique(idx), [0, 1, 2, 3])
    freq = np.bincount(idx.astype(int), minlength=4) / 8_000
    np.testing.assert_allclose(freq, 0.25, atol=0.025)  # binomial sd 0.0048
    np.testing.assert_array_equal(e.points, points)
    assert Empirical([1.0, 2.0, 3.0]).d == 1  # 1-D input is n points in dimension 1


def test_memorizer_is_uniform_over_m_base_draws():
    base = Gaussian(3)
    mem = Memorizer(base, 10, seed=5)
    assert mem.m == 10 and mem.d == 3 and mem.support.shape == (10, 3)
    np.testing.assert_array_equal(mem.support, base.sample(10, seed=5))
    np.testing.assert_array_equal(mem.points, mem.support)
    x = mem.sample(1_000, seed=0)
    rows = {tuple(r) for r in mem.support.tolist()}
    assert {tuple(r) for r in x.tolist()} == rows  # only memorized points, and (w.h.p.) all of them
    assert Memorizer(base, 10).support.tolist() == Memorizer(base, 10).support.tolist()  # default seed fixed
    assert "m=10" in repr(mem) and "Gaussian(d=3" in repr(mem)


def test_as_rng():
    assert as_rng(3).integers(10**9) == as_rng(3).integers(10**9)
    g = np.random.default_rng(0)
    assert as_rng(g) is g


BAD_SAMPLER_ARGS = [
    ("gaussian d=0", lambda: Gaussian(0), ValueError),
    ("gaussian d float", lambda: Gaussian(2.5), TypeError),
    ("gaussian sigma2<=0", lambda: Gaussian(2, sigma2=0.0), ValueError),
    ("gaussian sigma2 nan", lambda: Gaussian(2, sigma2=float("nan")), ValueError),
    ("gaussian mean wrong length", lambda: Gaussian(2, mean=[0.0, 0.0, 0.0]), ValueError),
    ("gaussian mean 2-D", lambda: Gaussian(2, mean=[[0.0, 0.0]]), ValueError),
    ("gaussian mean nan", lambda: Gaussian(2, mean=[0.0, np.nan]), ValueError),
    ("shift inf", lambda: shifted_gaussian(2, float("inf")), ValueError),
    ("shift str", lambda: shifted_gaussian(2, "1"), TypeError),
    ("mixture std 0", lambda: GaussianMixture([[0.0]], 0.0), ValueError),
    ("mixture weights negative", lambda: GaussianMixture([[0.0], [1.0]], 1.0, weights=[1.5, -0.5]), ValueError),
    ("mixture weights unnormalised", lambda: GaussianMixture([[0.0], [1.0]], 1.0, weights=[1.0, 1.0]), ValueError),
    ("mixture weights wrong length", lambda: GaussianMixture([[0.0], [1.0]], 1.0, weights=[1.0]), ValueError),
    ("mixture means empty", lambda: GaussianMixture(np.zeros((0, 2)), 1.0), ValueError),
    ("mixture means inf", lambda: GaussianMixture([[np.inf, 0.0]], 1.0), ValueError),
    ("ring radius 0", lambda: ring8(radius=0.0), ValueError),
    ("grid spacing <0", lambda: grid25(spacing=-1.0), ValueError),
    ("empirical 3-D", lambda: Empirical(np.zeros((2, 2, 2))), ValueError),
    ("empirical empty", lambda: Empirical(np.zeros((0, 2))), ValueError),
    ("empirical nan", lambda: Empirical([[np.nan]]), ValueError),
    ("memorizer base not a sampler", lambda: Memorizer(np.zeros((3, 2)), 2), TypeError),
    ("memorizer m=0", lambda: Memorizer(Gaussian(2), 0), ValueError),
    ("memorizer seed negative", lambda: Memorizer(Gaussian(2), 3, seed=-1), ValueError),
    ("sample n=0", lambda: Gaussian(2).sample(0), ValueError),
    ("sample n float", lambda: Gaussian(2).sample(2.0), TypeError),
    ("sample n bool", lambda: Gaussian(2).sample(True), TypeError),
    ("sample seed float", lambda: Gaussian(2).sample(2, seed=1.5), TypeError),
    ("sample seed str", lambda: ring8().sample(2, seed="0"), TypeError),
]


@pytest.mark.parametrize("case, call, exc", BAD_SAMPLER_ARGS, ids=[c[0] for c in BAD_SAMPLER_ARGS])
def test_bad_sampler_arguments_raise(case, call, exc):
    with pytest.raises(exc, match=r"(must|expected)"):
        call()
