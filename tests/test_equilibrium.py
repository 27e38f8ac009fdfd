"""Measured epsilon (gangen.mixgan.equilibrium): the rock-paper-scissors GAN and neural best responses.

Expected values: the RPS payoff F = s A and its epsilons are derived in the
RockPaperScissorsGAN docstring; the best-response bounds are closed forms stated at
each test (sup over all discriminators of the log payoff = -log 4 + 2 JS).
"""

import itertools
import math

import numpy as np
import pytest
import torch
from torch import nn

from gangen.mixgan import (
    BestResponseBudget,
    MixGANConfig,
    Mixture,
    finite_game_equilibrium,
    measure_equilibrium,
    payoff_matrix,
    rock_paper_scissors,
    train,
)
from gangen.mixgan.equilibrium import PointGenerator
from gangen.mixgan.losses import linear_payoff


# Tiny tensors: one intra-op thread (see the fixture in conftest.py).
pytestmark = pytest.mark.usefixtures("one_torch_thread")

S = 0.5
RPS = rock_paper_scissors(margin=S)
A = RPS.beats()
W_CFG = MixGANConfig(n_components=3, loss="wasserstein")
NO_TRAINING = BestResponseBudget(restarts=0)


def test_rps_beats_matrix_is_rock_paper_scissors():
    # 0 rock, 1 paper, 2 scissors: paper (1) beats rock (0) -> A[0, 1] = +1 (the discriminator wins)
    assert A[0, 1] == 1 and A[1, 2] == 1 and A[2, 0] == 1
    np.testing.assert_array_equal(A, -A.T)  # zero-sum symmetric game
    np.testing.assert_array_equal(A.sum(0), 0)
    assert RPS.tables.min() >= 0 and RPS.tables.max() <= 1  # D in [0, 1]


def test_rps_payoff_through_the_players():
    G, D = Mixture(RPS.generators()), Mixture(RPS.discriminators())
    real = torch.as_tensor(RPS.points, dtype=torch.float32)  # the real distribution, each point once
    fake = G(torch.zeros(3, 1, 1), per_component=True)  # (3, 1, 2): each generator's one point
    F = linear_payoff(D(real), D(fake, groups=True))  # (T_g, T_d)
    np.testing.assert_allclose(F.numpy(), S * A, atol=1e-7)  # derived: F = s A
    np.testing.assert_allclose(RPS.payoff(), S * A, atol=1e-12)
    np.testing.assert_allclose(payoff_matrix(G, D, RPS.points, W_CFG, n_eval=None), S * A, atol=1e-7)


@pytest.mark.parametrize("u,v", list(itertools.product(range(3), range(3))))
def test_pure_strategies_have_large_eps(u, v):
    p, q = np.eye(3)[u], np.eye(3)[v]
    r = finite_game_equilibrium(RPS.payoff(), p, q)
    # V = s A[u,v]; D's best gain s - s A[u,v]; G's best gain s A[u,v] + s; eps = s (1 + |A[u,v]|)
    assert r.value == pytest.approx(S * A[u, v])
    assert r.d_gain == pytest.approx(S - S * A[u, v])
    assert r.g_gain == pytest.approx(S + S * A[u, v])
    assert r.eps == pytest.approx(S * (1 + abs(A[u, v])))
    assert r.eps >= S


def test_uniform_mixture_is_exact_and_near_uniform_is_small():
    u = np.full(3, 1 / 3)
    assert finite_game_equilibrium(RPS.payoff(), u, u).eps == pytest.approx(0.0, abs=1e-15)
    for d in (0.01, 0.05, 0.1):
        p = np.array([1 / 3 + d, 1 / 3 - d, 1 / 3])
        # against uniform q: V = 0, eps = max_v s (p^T A)_v = s d (derived in the docstring)
        assert finite_game_equilibrium(RPS.payoff(), p, u).eps == pytest.approx(S * d, rel=1e-9)


def test_measure_equilibrium_matches_the_finite_game():
    # the neural-path measurement, with the components as the only candidate responses, is exact here
    for u, v in [(0, 0), (0, 1), (2, 1)]:
        G, D = Mixture(RPS.generators()), Mixture(RPS.discriminators())
        with torch.no_grad():  # w_g ~ e_u, w_d ~ e_v (the others e^-80)
            G.logits.copy_(40.0 * (2 * torch.eye(3)[u] - 1))
            D.logits.copy_(40.0 * (2 * torch.eye(3)[v] - 1))
        r = measure_equilibrium(G, D, RPS.points, W_CFG, d_budget=NO_TRAINING, g_budget=NO_TRAINING, n_eval=None)
        exact = finite_game_equilibrium(RPS.payoff(), np.eye(3)[u], np.eye(3)[v])
        assert r.eps == pytest.approx(exact.eps, abs=1e-6)
        assert r.value == pytest.approx(exact.value, abs=1e-6)
        assert r.d_gain_trained is None and r.g_gain_trained is None


def test_mixgan_training_reaches_the_mixed_equilibrium():
    # MIX+GAN (T = 3, the players fixed, only the mixture logits learn) on the RPS GAN, entropy
    # coefficient 0.1: epsilon ends well below s = 0.5, the smallest epsilon of any pure pair (T = 1).
    gi, di = itertools.cycle(RPS.generators()), itertools.cycle(RPS.discriminators())
    cfg = MixGANConfig(n_components=3, loss="wasserstein", lr_g=0.02, lr_d=0.02, steps=400, batch_size=64, seed=0)
    res = train(cfg, RPS.points, generator_factory=lambda: next(gi), discriminator_factory=lambda: next(di))
    p = res.generators.weights().detach().double().numpy()
    q = res.discriminators.weights().detach().double().numpy()
    eps = finite_game_equilibrium(RPS.payoff(), p / p.sum(), q / q.sum()).eps
    assert eps < 0.1 * S


# ---------------------------------------------------------------- neural best responses
class ZeroCritic(nn.Module):
    """s(x) = 0, i.e. D = 1/2 everywhere."""

    num_classes = 0

    def forward(self, x, labels=None):
        return x[:, 0] * 0.0


class BumpCritic(nn.Module):
    """s(x) = 2 - 4 (x - 1)^2: D is largest at x = 1, where s = 2."""

    num_classes = 0

    def forward(self, x, labels=None):
        return 2.0 - 4.0 * (x[:, 0] - 1.0) ** 2


REAL_2ATOMS = np.array([[0.0], [1.0]])  # real: 1/2 delta_0 + 1/2 delta_1 (n_eval=None: exact)
CFG_1D = MixGANConfig(n_components=1, loss="nonsaturating", latent_dim=1, hidden=16, depth=2)
BUDGET = BestResponseBudget(steps=300, lr=1e-2, restarts=2, batch_size=64)


def test_discriminator_best_response_reaches_twice_js():
    # generator at delta_0, discriminator D = 1/2: V = 2 log(1/2) = -log 4. The best discriminator gains
    # sup_D F - V = 2 JS(real, fake) = 2 * (3/4) log(4/3) = 0.43152 (real (d0+d1)/2, fake d0).
    G, D = Mixture([PointGenerator([0.0])]), Mixture([ZeroCritic()])
    g_before = [p.clone() for p in G.buffers()]
    r = measure_equilibrium(G, D, REAL_2ATOMS, CFG_1D, d_budget=BUDGET, g_budget=BUDGET, n_eval=None)
    two_js = 1.5 * math.log(4 / 3)
    assert r.value == pytest.approx(-math.log(4), abs=1e-6)
    assert 0.85 * two_js < r.d_gain_trained <= two_js + 1e-6
    # against D = 1/2 no generator can gain anything: F does not depend on u
    assert r.g_gain_trained == pytest.approx(0.0, abs=1e-6)
    assert r.eps == pytest.approx(r.d_gain) and r.d_gain == pytest.approx(r.d_gain_trained)
    assert (r.d_gain_components, r.g_gain_components) == (0.0, 0.0)  # T = 1: the component is the pair itself
    assert all(torch.equal(a, b) for a, b in zip(g_before, G.buffers()))  # frozen side untouched
    row = r.to_dict()
    assert row["d_budget_steps"] == 300 and row["g_budget_restarts"] == 2 and row["n_eval"] == 2


def test_generator_best_response_against_a_fixed_discriminator():
    # D fixed with s(x) = 2 - 4 (x - 1)^2; the generator at 0 has fake term log(1 - sigmoid(-2)); the best
    # generator sits at x = 1 with log(1 - sigmoid(2)). The gain is at most
    # log(sigmoid(2) / sigmoid(-2)) = 2 exactly.
    G, D = Mixture([PointGenerator([0.0])]), Mixture([BumpCritic()])
    r = measure_equilibrium(G, D, REAL_2ATOMS, CFG_1D, d_budget=NO_TRAINING, g_budget=BUDGET, n_eval=None)
    assert 1.9 < r.g_gain_trained <= 2.0 + 1e-6
    assert r.eps == pytest.approx(r.g_gain_trained)
    # the frozen discriminators keep their requires_grad flags, whatever they were
    flags = [p.requires_grad for p in D.parameters()]
    assert any(flags)
    first = next(iter(D.parameters()))
    first.requires_grad_(False)
    before = [p.requires_grad for p in D.parameters()]
    measure_equilibrium(G, D, REAL_2ATOMS, CFG_1D, d_budget=NO_TRAINING, g_budget=BUDGET, n_eval=None)
    assert [p.requires_grad for p in D.parameters()] == before and not first.requires_grad


def test_bad_input():
    with pytest.raises(ValueError, match="probability"):
        finite_game_equilibrium(RPS.payoff(), [0.5, 0.5, 0.5], np.full(3, 1 / 3))
    with pytest.raises(ValueError, match="shape"):
        finite_game_equilibrium(RPS.payoff(), [1.0, 0.0], np.full(3, 1 / 3))
    with pytest.raises(ValueError, match="margin"):
        rock_paper_scissors(margin=0.6)
    with pytest.raises(ValueError, match="restarts"):
        BestResponseBudget(restarts=-1)
    G, D = Mixture(RPS.generators()), Mixture(RPS.discriminators())
    with pytest.raises(TypeError, match="MixGANConfig"):
        measure_equilibrium(G, D, RPS.points, {"loss": "wasserstein"})
    with pytest.raises(ValueError, match="n_eval=None"):
        from gangen.samplers import ring8

        measure_equilibrium(G, D, ring8(), W_CFG, d_budget=NO_TRAINING, g_budget=NO_TRAINING, n_eval=None)


# ------------------------------------------------------------------ best responses on the ensemble engine
DELTA = 0.1
CFG_1D_BOUNDED = MixGANConfig(n_components=1, loss="nonsaturating", delta=DELTA, latent_dim=1, hidden=16, depth=2)


def _spy_engine(monkeypatch):
    """Count calls of the engine's stream trainer made by measure_equilibrium."""
    import gangen.nn.ensemble as ensemble

    calls = []
    real = ensemble.train_ensemble_stream

    def spy(*args, **kwargs):
        calls.append(kwargs["family"])
        return real(*args, **kwargs)

    monkeypatch.setattr(ensemble, "train_ensemble_stream", spy)
    return calls


def test_bounded_game_best_response_runs_on_the_engine_and_reaches_the_supremum(monkeypatch):
    # real (d0 + d1)/2, fake d0, D = 1/2: V = 2 phi(1/2). The supremum over all D of
    # F = 1/2 phi(D(0)) + 1/2 phi(D(1)) + phi(1 - D(0)) takes D(1) = 1 and D(0) = a* with
    # 1/2 phi'(a) = phi'(1 - a), i.e. a* = (1 - 2 delta)/(3 (1 - delta)) (phi = log(delta + (1 - delta) t)).
    calls = _spy_engine(monkeypatch)
    phi = lambda t: math.log(DELTA + (1 - DELTA) * t)  # noqa: E731
    a = (1 - 2 * DELTA) / (3 * (1 - DELTA))
    sup_gain = 0.5 * phi(a) + phi(1 - a) + 0.5 * phi(1.0) - 2 * phi(0.5)
    G, D = Mixture([PointGenerator([0.0])]), Mixture([ZeroCritic()])
    r = measure_equilibrium(G, D, REAL_2ATOMS, CFG_1D_BOUNDED, d_budget=BUDGET, g_budget=NO_TRAINING, n_eval=None)
    assert len(calls) == 1 and calls[0].head == "sigmoid" and calls[0].hidden == (16, 16)
    assert calls[0].activation == "leaky_relu" and calls[0].negative_slope == 0.2
    assert r.value == pytest.approx(2 * phi(0.5), abs=1e-6)
    assert 0.85 * sup_gain < r.d_gain_trained <= sup_gain + 1e-6


def test_wasserstein_best_response_on_the_engine_respects_the_clip(monkeypatch):
    calls = _spy_engine(monkeypatch)
    cfg = MixGANConfig(n_components=1, loss="wasserstein", clip=0.05, latent_dim=1, hidden=8, depth=1)
    G, D = Mixture([PointGenerator([0.0])]), Mixture([ZeroCritic()])
    budget = BestResponseBudget(steps=200, lr=1e-2, restarts=2, batch_size=32)
    r = measure_equilibrium(G, D, REAL_2ATOMS, cfg, d_budget=budget, g_budget=NO_TRAINING, n_eval=None)
    assert len(calls) == 1 and calls[0].head == "linear" and calls[0].weight_clip == 0.05
    # a clipped critic (|every parameter| <= c, width 8, one hidden layer) moves its value by at most
    # |s(1) - s(0)| <= (8 c)(c * 1) = 8 c^2 between the atoms; the gain is (s(1) - s(0)) / 2 > 0
    assert 0.0 < r.d_gain_trained <= 8 * 0.05**2 / 2 + 1e-6


def test_games_outside_the_engine_keep_the_mixture_path(monkeypatch):
    calls = _spy_engine(monkeypatch)
    G, D = Mixture([PointGenerator([0.0])]), Mixture([ZeroCritic()])
    small = BestResponseBudget(steps=5, lr=1e-2, restarts=1, batch_size=8)
    for cfg in (CFG_1D,  # delta = 0: the unbounded log game
                MixGANConfig(n_components=1, loss="wasserstein", penalty="gp", latent_dim=1, hidden=8, depth=1),
                MixGANConfig(n_components=1, loss="least_squares", latent_dim=1, hidden=8, depth=1)):
        measure_equilibrium(G, D, REAL_2ATOMS, cfg, d_budget=small, g_budget=NO_TRAINING, n_eval=None)
    measure_equilibrium(G, D, REAL_2ATOMS, CFG_1D_BOUNDED, d_budget=small, g_budget=NO_TRAINING, n_eval=None,
                        discriminator_factory=lambda: nn.Sequential(nn.Linear(1, 1), nn.Flatten(0)))
    assert calls == []


def test_engine_best_response_with_zero_steps_uses_untrained_networks(monkeypatch):
    calls = _spy_engine(monkeypatch)
    G, D = Mixture([PointGenerator([0.0])]), Mixture([ZeroCritic()])
    r = measure_equilibrium(G, D, REAL_2ATOMS, CFG_1D_BOUNDED, d_budget=BestResponseBudget(steps=0, restarts=2, batch_size=8),
                            g_budget=NO_TRAINING, n_eval=None)
    assert calls == []  # nothing to train
    assert r.d_gain_trained is not None and math.isfinite(r.d_gain_trained)
