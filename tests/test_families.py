"""Discriminator families: exact parameter counts, seeded initialisation, forward map."""

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from gangen.nn.families import MLPFamily, linear_family

families = st.builds(
    MLPFamily,
    d=st.integers(1, 6),
    hidden=st.lists(st.integers(1, 7), min_size=0, max_size=3).map(tuple),
    activation=st.sampled_from(["relu", "leaky_relu", "tanh"]),
    head=st.sampled_from(["sigmoid", "tanh", "linear"]),
    bias=st.booleans(),
)


@given(fam=families)
def test_n_params_matches_torch_module(fam):
    # independent count: the parameters of the equivalent torch.nn.Sequential
    module = fam.to_module(fam.init([0])[0])
    assert fam.n_params == sum(p.numel() for p in module.parameters())


def test_n_params_closed_form():
    # d=16, hidden (32, 64): (16*32 + 32) + (32*64 + 64) + (64 + 1) = 544 + 2112 + 65 = 2721
    assert MLPFamily(d=16, hidden=(32, 64)).n_params == 2721
    assert MLPFamily(d=16, hidden=(32, 64), bias=False).n_params == 16 * 32 + 32 * 64 + 64


def test_unequal_widths_layout():
    # the benchmark's mixed network: hidden layers of widths 32 then 64 (issue 3's other reading)
    fam = MLPFamily(d=16, hidden=(32, 64))
    assert fam.layer_shapes == ((16, 32), (32, 64), (64, 1))
    assert fam.offsets == ((0, 512), (544, 2592), (2656, 2720))  # W_1 16*32, b_1 32, W_2 32*64, b_2 64, w_out 64
    shapes = [(tuple(W.shape), tuple(b.shape)) for W, b in fam.unflatten(torch.from_numpy(fam.init([0, 1])))]
    assert shapes == [((2, 16, 32), (2, 1, 32)), ((2, 32, 64), (2, 1, 64)), ((2, 64, 1), (2, 1, 1))]


@settings(max_examples=15)
@given(fam=families, seed=st.integers(0, 2**32 - 1))
def test_forward_matches_torch_module(fam, seed):
    params = fam.init([seed])
    x = torch.from_numpy(np.random.default_rng(seed).normal(size=(1, 9, fam.d)).astype(np.float32))
    ours = fam.apply(torch.from_numpy(params), x)[0]
    ref = fam.to_module(params[0])(x[0])[:, 0]
    torch.testing.assert_close(ours, ref, rtol=1e-5, atol=1e-6)  # float32, differently ordered sums


def test_init_depends_only_on_own_seed():
    fam = MLPFamily(d=5, hidden=(6, 4))
    batch = fam.init([11, 12, 13])
    for k, s in enumerate([11, 12, 13]):
        assert np.array_equal(batch[k], fam.init([s])[0])
    assert not np.array_equal(batch[0], batch[1])


def test_init_is_torch_linear_distribution():
    # nn.Linear's default init: U(-1/sqrt(fan_in), 1/sqrt(fan_in)) for weights and biases
    fam = MLPFamily(d=4, hidden=(50,))
    params = torch.from_numpy(fam.init(range(40)))
    (W1, b1), (W2, b2) = fam.unflatten(params)
    for t, fan_in in [(W1, 4), (b1, 4), (W2, 50), (b2, 50)]:
        bound = 1 / math.sqrt(fan_in)
        assert t.abs().max() <= bound
        if t.numel() > 100:  # uniform: mean 0, variance bound^2 / 3 (4 standard errors)
            n = t.numel()
            assert abs(t.mean().item()) < 4 * bound / math.sqrt(3 * n)
            assert t.var().item() == pytest.approx(bound**2 / 3, rel=4 * math.sqrt(0.8 / n))


def test_heads_bound_outputs():
    x = torch.randn(1, 200, 3) * 10
    for head, lo, hi in [("sigmoid", 0, 1), ("tanh", -1, 1)]:
        fam = MLPFamily(d=3, hidden=(8,), head=head)
        D = fam.apply(torch.from_numpy(fam.init([0])) * 10, x)
        assert D.min() >= lo and D.max() <= hi


def test_linear_family():
    fam = linear_family(3)
    assert fam.n_params == 4 and fam.hidden == () and fam.head == "linear" and fam.spectral_norm
    assert linear_family(3, bias=False).n_params == 3


@pytest.mark.parametrize(
    "kwargs, exc, match",
    [
        (dict(d=0), ValueError, "d"),
        (dict(d=2.5), TypeError, "d"),
        (dict(d=2, hidden=(4, 0)), ValueError, "hidden"),
        (dict(d=2, hidden=4), TypeError, "hidden"),
        (dict(d=2, activation="gelu"), ValueError, "activation"),
        (dict(d=2, head="softmax"), ValueError, "head"),
        (dict(d=2, weight_clip=0.0), ValueError, "weight_clip"),
        (dict(d=2, weight_clip=float("nan")), ValueError, "weight_clip"),
        (dict(d=2, negative_slope=-0.1), ValueError, "negative_slope"),
        (dict(d=2, bias=1), TypeError, "bias"),
        (dict(d=2, spectral_norm="yes"), TypeError, "spectral_norm"),
    ],
)
def test_bad_family_raises(kwargs, exc, match):
    with pytest.raises(exc, match=match):
        MLPFamily(**kwargs)


@pytest.mark.parametrize("seeds, exc", [([], ValueError), ([-1], ValueError), (3, TypeError), ([1.5], ValueError), ([True], ValueError)])
def test_bad_seeds_raise(seeds, exc):
    with pytest.raises(exc, match="seed"):
        MLPFamily(d=2).init(seeds)


def test_to_module_rejects_wrong_length():
    with pytest.raises(ValueError, match="p = "):
        MLPFamily(d=2, hidden=(3,)).to_module(np.zeros(5))
