"""MIX+GAN mixtures and training loop (gangen.mixgan.mixture, gangen.mixgan.train).

Expected numbers come from hand formulas (stated at each assert), from a plain-GAN
reference loop written here with ordinary nn.Modules and torch.optim, or from scipy's
chi-square test.
"""

import math

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats
from torch import nn

from gangen.mixgan import MixGANConfig, Mixture, build_mixture, entropy_regularizer, preset, seed_streams, train
from gangen.mixgan.losses import log_payoff
from gangen.mixgan.train import adaptive_generator_steps, history_columns
from gangen.nn.players import MLPDiscriminator, MLPGenerator
from gangen.samplers import ring8


# Tiny tensors: one intra-op thread (see the fixture in conftest.py).
pytestmark = pytest.mark.usefixtures("one_torch_thread")


class Affine1D(nn.Module):
    """x -> a x + b on R^1, returning (n,) (a discriminator) or (n, 1) (a generator)."""

    def __init__(self, a, b, *, generator=False):
        super().__init__()
        self.a = nn.Parameter(torch.tensor(float(a), dtype=torch.float64))
        self.b = nn.Parameter(torch.tensor(float(b), dtype=torch.float64))
        self.generator, self.latent_dim, self.num_classes = generator, 1, 0

    def forward(self, x, labels=None):
        out = self.a * x[:, 0] + self.b
        return out[:, None] if self.generator else out


# ---------------------------------------------------------------- payoff matrix
def test_payoff_matrix_hand_computation_on_tiny_networks():
    # generators G_i(z) = b_i (a = 0: constant points), discriminators s_j(x) = a_j x + c_j
    gens = Mixture([Affine1D(0.0, b, generator=True) for b in (0.0, 1.0)])
    discs = Mixture([Affine1D(a, c) for a, c in ((1.0, 0.0), (-2.0, 0.5), (0.5, -1.0))])
    x = torch.tensor([[0.0], [2.0]], dtype=torch.float64)  # real batch
    z = torch.zeros(2, 4, 1, dtype=torch.float64)
    fake = gens(z, per_component=True)  # (T_g=2, 4, 1)
    F_mat = log_payoff(discs(x), discs(fake, groups=True)).detach()  # (2, 3)

    def sig(t):
        return 1.0 / (1.0 + math.exp(-t))

    for i, b in enumerate((0.0, 1.0)):
        for j, (a, c) in enumerate(((1.0, 0.0), (-2.0, 0.5), (0.5, -1.0))):
            # F(u_i, v_j) = mean_x log D_j(x) + log(1 - D_j(b_i))   (Section 4 payoff, phi = log)
            expected = 0.5 * (math.log(sig(a * 0.0 + c)) + math.log(sig(a * 2.0 + c))) + math.log(1 - sig(a * b + c))
            assert float(F_mat[i, j]) == pytest.approx(expected, abs=1e-12)

    # weighted objective: sum_ij w_ui w_vj F(u_i, v_j), never phi of averaged outputs
    with torch.no_grad():
        gens.logits.copy_(torch.tensor([0.3, -0.2]))
        discs.logits.copy_(torch.tensor([1.0, 0.0, -1.0]))
    w_g, w_d = gens.weights().detach(), discs.weights().detach()
    double_sum = sum(float(w_g[i] * w_d[j] * F_mat[i, j]) for i in range(2) for j in range(3))
    assert float(w_g @ F_mat @ w_d) == pytest.approx(double_sum, abs=1e-12)
    # the rejected alternative (phi of the weighted average of D outputs) gives another number
    with torch.no_grad():
        d_real = torch.sigmoid(discs(x)).T @ w_d  # averaged D on real
        d_fake = torch.sigmoid(discs(fake, groups=True)).permute(1, 2, 0) @ w_d  # (T_g, n)
        averaged_inside = float(torch.log(d_real).mean() + (w_g @ torch.log(1 - d_fake).mean(-1)))
    assert abs(averaged_inside - double_sum) > 1e-3


# ---------------------------------------------------------------- weights and R_ent
@pytest.mark.parametrize("T", [1, 2, 5])
def test_entropy_regularizer_is_log_T_at_uniform(T):
    mix = Mixture([nn.Linear(1, 1) for _ in range(T)])
    torch.testing.assert_close(mix.weights(), torch.full((T,), 1.0 / T))
    assert mix.entropy_regularizer().item() == pytest.approx(math.log(T), abs=1e-6)  # -(1/T) sum log(1/T)


def test_entropy_regularizer_gradient_pushes_to_uniform():
    logits = torch.tensor([1.5, -0.5, 0.0, 0.3], dtype=torch.float64, requires_grad=True)
    R = entropy_regularizer(logits)
    (grad,) = torch.autograd.grad(R, logits)
    w = torch.softmax(logits.detach(), 0)
    # dR/dalpha_k = w_k - 1/T (differentiate -(1/T) sum_i log softmax_i)
    torch.testing.assert_close(grad, w - 0.25)
    assert R.item() > math.log(4)  # minimum log T only at uniform
    # a gradient-descent step moves the weights toward uniform (KL to uniform drops)
    w_new = torch.softmax(logits.detach() - 0.5 * grad, 0)
    kl = lambda p: float((p * torch.log(4 * p)).sum())  # noqa: E731
    assert kl(w_new) < kl(w)


@settings(max_examples=30)
@given(st.lists(st.floats(-8.0, 8.0), min_size=1, max_size=8))
def test_entropy_regularizer_at_least_log_T(logits):
    # -(1/T) sum log w_i >= -log(1/T sum w_i) = log T (Jensen), equality at uniform
    t = torch.tensor(logits, dtype=torch.float64)
    assert entropy_regularizer(t).item() >= math.log(len(logits)) - 1e-12


def test_entropy_gradient_zero_at_uniform():
    logits = torch.zeros(3, requires_grad=True)
    (grad,) = torch.autograd.grad(entropy_regularizer(logits), logits)
    torch.testing.assert_close(grad, torch.zeros(3))


# ---------------------------------------------------------------- sampling
class Constant(nn.Module):
    def __init__(self, value):
        super().__init__()
        self.register_buffer("value", torch.tensor([float(value)]))
        self.latent_dim, self.num_classes = 1, 0

    def forward(self, z, labels=None):
        return self.value.expand(z.shape[0], 1)


@pytest.mark.parametrize("group_size", [1, 10])
def test_sampling_frequencies_match_weights(group_size):
    # 3 constant generators at 0, 1, 2 with weights (0.5, 0.3, 0.2); chi-square goodness of fit
    # of the number of picks (samples / group_size) at significance 1e-3, fixed seed.
    mix = Mixture([Constant(v) for v in (0, 1, 2)])
    target = np.array([0.5, 0.3, 0.2])
    with torch.no_grad():
        mix.logits.copy_(torch.log(torch.tensor(target, dtype=torch.float32)))
    n = 20_000
    x = mix.sample(n, seed=123, group_size=group_size)
    assert x.shape == (n, 1)
    values = x[:, 0].numpy().astype(int)
    if group_size > 1:  # every group of 10 comes from one generator
        groups = values.reshape(-1, group_size)
        assert (groups == groups[:, :1]).all()
        values = groups[:, 0]
    counts = np.bincount(values, minlength=3)
    p = stats.chisquare(counts, counts.sum() * target).pvalue
    assert p > 1e-3, (counts, p)


def test_sampling_with_a_zero_weight_component_never_picks_it():
    mix = Mixture([Constant(v) for v in (0, 1)])
    with torch.no_grad():
        mix.logits.copy_(torch.tensor([0.0, -200.0]))  # w_1 = e^-200 ~ 0
    assert (mix.sample(1000, seed=0) == 0).all()


def test_sample_is_reproducible_with_seed():
    mix = build_mixture(lambda: MLPGenerator(2, 2, hidden=4), 3, seed=0)
    torch.testing.assert_close(mix.sample(50, seed=9), mix.sample(50, seed=9))


# ---------------------------------------------------------------- mixture mechanics
def test_vmapped_forward_equals_loop_and_component_copy():
    with torch.random.fork_rng():
        torch.manual_seed(0)
        players = [MLPDiscriminator(2, hidden=8) for _ in range(4)]
    mix = Mixture(players)
    x = torch.randn(10, 2)
    out = mix(x)  # (T, n)
    for t, p in enumerate(players):
        torch.testing.assert_close(out[t], p(x))
        torch.testing.assert_close(mix.component(t)(x), p(x))


def test_clip_touches_parameters_not_logits():
    mix = Mixture([nn.Linear(3, 2) for _ in range(2)])
    with torch.no_grad():
        mix.logits.copy_(torch.tensor([5.0, -5.0]))
        for p in mix.stacked:
            p.mul_(100)
    mix.clip_(0.01)
    assert all(p.abs().max().item() <= 0.01 for p in mix.stacked)
    assert mix.logits.tolist() == [5.0, -5.0]


def test_mixture_rejects_bad_players():
    with pytest.raises(ValueError, match="at least one"):
        Mixture([])
    with pytest.raises(ValueError, match="same parameter names"):
        Mixture([nn.Linear(2, 2), nn.Sequential(nn.Linear(2, 2))])


# ---------------------------------------------------------------- T = 1 is a plain GAN
def reference_gan(config, sampler, steps):
    """A plain GAN with ordinary modules and torch.optim, drawing exactly what train() draws."""
    seeds = seed_streams(config.seed)
    dtype = torch.float64
    make_g = lambda: MLPGenerator(config.latent_dim, 2, hidden=config.hidden, depth=config.depth)  # noqa: E731
    make_d = lambda: MLPDiscriminator(2, hidden=config.hidden, depth=config.depth)  # noqa: E731
    with torch.random.fork_rng():
        torch.manual_seed(seeds.init_g)
        G = make_g().to(dtype)
    with torch.random.fork_rng():
        torch.manual_seed(seeds.init_d)
        D = make_d().to(dtype)
    if config.optimizer == "adam":
        opt_g = torch.optim.Adam(G.parameters(), lr=config.lr_g, betas=(config.beta1, config.beta2))
        opt_d = torch.optim.Adam(D.parameters(), lr=config.lr_d, betas=(config.beta1, config.beta2))
    else:
        opt_g = torch.optim.RMSprop(G.parameters(), lr=config.lr_g)
        opt_d = torch.optim.RMSprop(D.parameters(), lr=config.lr_d)
    rng = np.random.default_rng(seeds.data)
    noise = torch.Generator().manual_seed(seeds.noise)
    B, k = config.batch_size, config.latent_dim
    for _ in range(steps):
        for _ in range(config.n_critic):
            x = torch.as_tensor(sampler.sample(B, seed=rng), dtype=dtype)
            fake = G(torch.randn(1, B, k, generator=noise, dtype=dtype)[0]).detach()
            if config.loss == "wasserstein":
                d_loss = -(D(x).mean() - D(fake).mean())
            else:
                d_loss = -(F.logsigmoid(D(x)).mean() + F.logsigmoid(-D(fake)).mean())
            if config.penalty == "gp":
                a = torch.rand(1, B, generator=noise, dtype=dtype)[0][:, None]
                x_hat = (a * x + (1 - a) * fake).requires_grad_(True)
                (g,) = torch.autograd.grad(D(x_hat).sum(), x_hat, create_graph=True)
                d_loss = d_loss + config.penalty_weight * ((g.norm(dim=1) - 1) ** 2).mean()
            opt_d.zero_grad()
            d_loss.backward()
            opt_d.step()
            if config.clip is not None:
                with torch.no_grad():
                    for p in D.parameters():
                        p.clamp_(-config.clip, config.clip)
        s = D(G(torch.randn(1, B, k, generator=noise, dtype=dtype)[0]))
        g_loss = -s.mean() if config.loss == "wasserstein" else -F.logsigmoid(s).mean()
        opt_g.zero_grad()
        g_loss.backward()
        opt_g.step()
    return G, D


@pytest.mark.parametrize(
    "variant",
    [
        dict(loss="nonsaturating"),
        dict(loss="wasserstein", clip=0.01, optimizer="rmsprop", lr_g=5e-5, lr_d=5e-5, n_critic=2),
        dict(loss="nonsaturating", penalty="gp"),
    ],
    ids=["ns-gan", "wgan-clip", "gan-gp"],
)
def test_T1_equals_plain_gan_step_for_step(variant):
    steps = 6
    fields = dict(n_components=1, steps=steps, batch_size=16, hidden=8, dtype="float64", lr_g=1e-2, lr_d=1e-2, seed=5)
    cfg = MixGANConfig(**{**fields, **variant})
    res = train(cfg, ring8())
    G, D = reference_gan(cfg, ring8(), steps)
    for mix, ref in ((res.generators, G), (res.discriminators, D)):
        ref_params = dict(ref.named_parameters())
        assert len(mix.stacked) == len(ref_params)
        for name, p in zip(mix._names, mix.stacked):
            torch.testing.assert_close(p[0], ref_params[name], rtol=1e-10, atol=1e-12)
    # and the players did move (the comparison is not between two initialisations)
    with torch.random.fork_rng():
        torch.manual_seed(seed_streams(5).init_g)
        G0 = MLPGenerator(2, 2, hidden=8).double()
    assert not torch.allclose(G0.net[0].weight, G.net[0].weight)


# ---------------------------------------------------------------- the loop's outputs and options
def test_history_table():
    cfg = MixGANConfig(n_components=3, steps=7, batch_size=8, hidden=4, log_every=3)
    res = train(cfg, ring8())
    h = res.history
    assert list(h["step"]) == [0, 3, 6]  # every log_every steps and the last
    for col in ["d_loss", "g_loss", "d_adv", "penalty", "value", "d_updates", "g_updates", "time_s", "w_g2", "w_d0", "F_2_1"]:
        assert col in h.columns
    np.testing.assert_allclose(h[["w_g0", "w_g1", "w_g2"]].sum(axis=1), 1.0, rtol=1e-6)
    assert list(h["d_updates"]) == [1, 3, 3] and list(h["g_updates"]) == [1, 3, 3]
    # value = w_g^T F w_d with the weights before the step's updates: at step 0 the weights are uniform
    F0 = h.loc[0, [f"F_{i}_{j}" for i in range(3) for j in range(3)]].to_numpy(float).reshape(3, 3)
    assert h.loc[0, "value"] == pytest.approx(F0.mean(), rel=1e-5)
    assert h.loc[0, "d_adv"] == pytest.approx(-F0.mean(), rel=1e-5)


def test_zero_steps_gives_an_empty_history_with_the_columns():
    res = train(MixGANConfig(n_components=2, steps=0, hidden=4), ring8())
    assert len(res.history) == 0
    assert list(res.history.columns) == history_columns(2)
    full = train(MixGANConfig(n_components=2, steps=2, hidden=4, batch_size=8), ring8())
    assert list(full.history.columns) == history_columns(2)


@pytest.mark.parametrize("family", ["mlp", "dcgan"])
def test_callback_sees_every_checkpoint_and_cannot_disturb_training(family):
    """callback(t, G, D) at t = 0..steps equals a run of t steps; a meddling callback changes nothing."""
    if family == "mlp":
        real, kw = ring8(), dict(hidden=8)
    else:
        real, kw = np.random.default_rng(0).uniform(-1, 1, size=(30, 1, 28, 28)).astype(np.float32), dict(width=4, latent_dim=4)
    cfg = MixGANConfig(n_components=2, steps=3, batch_size=8, family=family, log_every=1, **kw)
    seen: dict[int, list[torch.Tensor]] = {}

    def meddle(t, gens, discs):
        assert not torch.is_grad_enabled()
        seen[t] = [p.detach().clone() for p in gens.stacked]
        gens.eval(), discs.eval()  # a careless evaluator: switches BatchNorm to eval mode ...
        torch.rand(100)  # ... and draws from torch's global stream
        gens.sample(16, seed=t)

    with_cb = train(cfg, real, callback=meddle)
    plain = train(cfg, real)
    assert sorted(seen) == [0, 1, 2, 3]
    for p, q in zip(with_cb.generators.stacked, plain.generators.stacked):
        torch.testing.assert_close(p, q, rtol=0, atol=0)
    cols = [c for c in plain.history.columns if c != "time_s"]
    pd.testing.assert_frame_equal(with_cb.history[cols], plain.history[cols])
    assert with_cb.generators.training and with_cb.discriminators.training
    # the snapshot at t is the state of a run stopped after t steps
    short = train(MixGANConfig(**{**cfg.to_dict(), "steps": 2}), real)
    for p, q in zip(seen[2], short.generators.stacked):
        torch.testing.assert_close(p, q, rtol=0, atol=0)
    with pytest.raises(TypeError, match="callback"):
        train(cfg, real, callback="every step")


def test_weights_learned_or_frozen():
    cfg = MixGANConfig(n_components=3, steps=20, batch_size=8, hidden=4, lr_g=0.05, lr_d=0.05)
    moved = train(cfg, ring8())
    frozen = train(MixGANConfig(**{**cfg.to_dict(), "train_weights": False}), ring8())
    assert not torch.allclose(moved.generators.weights(), torch.full((3,), 1 / 3))
    torch.testing.assert_close(frozen.generators.weights(), torch.full((3,), 1 / 3))
    torch.testing.assert_close(frozen.discriminators.weights(), torch.full((3,), 1 / 3))


def test_authors_heuristics():
    assert [adaptive_generator_steps(v) for v in (0.66, 0.65, 0.51, 0.5, 0.31, 0.3, 0.0)] == [1, 3, 3, 5, 5, 7, 7]
    # skip_d_below above any possible loss: the discriminators never move
    cfg = MixGANConfig(n_components=2, steps=3, batch_size=8, hidden=4, skip_d_below=100.0, log_every=1)
    res = train(cfg, ring8())
    init = build_mixture(lambda: MLPDiscriminator(2, hidden=4), 2, seed=seed_streams(0).init_d)
    for p, q in zip(res.discriminators.stacked, init.stacked):
        torch.testing.assert_close(p, q)
    assert (res.history["d_updates"] == 0).all()
    # adaptive generator steps: each logged step ran the rule's count for its discriminator loss
    res = train(MixGANConfig(n_components=2, steps=4, batch_size=8, hidden=4, adaptive_g_steps=True, log_every=1), ring8())
    expected = [adaptive_generator_steps(0.5 * v) for v in res.history["d_adv"]]
    assert list(res.history["g_updates"]) == expected


def test_conditional_dcgan_training_runs():
    rng = np.random.default_rng(0)
    images = rng.uniform(-1, 1, size=(20, 1, 28, 28)).astype(np.float32)
    labels = rng.integers(0, 10, size=20)
    cfg = MixGANConfig(n_components=2, family="dcgan", latent_dim=4, width=4, num_classes=10, steps=2, batch_size=4, log_every=1)
    res = train(cfg, images, labels=labels)
    x = res.generators.sample(6, seed=0, labels=torch.arange(6))
    assert x.shape == (6, 1, 28, 28) and torch.isfinite(x).all()
    assert np.isfinite(res.history[["d_loss", "g_loss"]].to_numpy()).all()


def test_presets():
    assert preset("gan").n_components == 1
    mw = preset("mix-wgan")
    assert (mw.n_components, mw.clip, mw.optimizer, mw.n_critic, mw.lr_d) == (5, 0.01, "rmsprop", 5, 5e-5)
    assert preset("mixgan").n_components == 5 and preset("mixgan").entropy_coef == 0.1
    with pytest.raises(ValueError, match="preset"):
        preset("began")


def test_bad_input_rejected():
    with pytest.raises(ValueError, match="n_components"):
        MixGANConfig(n_components=0)
    with pytest.raises(ValueError, match="heuristics"):
        MixGANConfig(loss="wasserstein", adaptive_g_steps=True)
    with pytest.raises(ValueError, match="heuristics"):
        MixGANConfig(loss="least_squares", skip_d_below=0.3)
    with pytest.raises(ValueError, match="delta"):
        MixGANConfig(loss="least_squares", delta=0.1)
    with pytest.raises(ValueError, match="loss"):
        MixGANConfig(loss="hinge")
    with pytest.raises(TypeError, match="MixGANConfig"):
        train({"steps": 1}, ring8())
    with pytest.raises(ValueError, match="labels"):
        train(MixGANConfig(family="dcgan", num_classes=10, steps=1), np.zeros((4, 1, 28, 28)))
    with pytest.raises(ValueError, match="NaN"):
        train(MixGANConfig(steps=1), np.array([[0.0, np.nan]]))
    with pytest.raises(ValueError, match="family='mlp'"):
        train(MixGANConfig(steps=1), np.zeros((4, 1, 28, 28)))
