"""Losses and penalties (gangen.mixgan.losses) against hand computations.

Scores are chosen where the sigmoid is rational: s = log 3 gives D = 3/4, s = 0 gives
1/2, s = -log 3 gives 1/4. Penalty draws (interpolation weights, DRAGAN noise) are
replayed from a torch.Generator with the same seed and the formula is recomputed in numpy.
"""

import math

import numpy as np
import pytest
import torch
from scipy.optimize import minimize
from torch import nn

from gangen.mixgan import Mixture
from gangen.mixgan.losses import (
    LOSSES,
    compose,
    dragan_penalty,
    gradient_penalty,
    least_squares,
    least_squares_payoff,
    linear_payoff,
    log_payoff,
    make_objective,
    max_gradient_penalty,
    minimax,
    nonsaturating,
    wasserstein,
)
from gangen.mixgan.train import MixGANConfig, train
from gangen.samplers import ring8


# Tiny tensors: one intra-op thread (see the fixture in conftest.py).
pytestmark = pytest.mark.usefixtures("one_torch_thread")

L3 = math.log(3.0)


def scores():
    # T_d = 2 discriminators, T_g = 3 generators, n = m = 2 samples
    real = torch.tensor([[L3, 0.0], [0.0, 0.0]], dtype=torch.float64)  # D_0 real: 3/4, 1/2; D_1: 1/2, 1/2
    fake = torch.tensor(
        [
            [[-L3, -L3], [0.0, 0.0], [L3, L3]],  # D_0 on G_0, G_1, G_2: 1/4, 1/2, 3/4
            [[0.0, -L3], [L3, 0.0], [-L3, -L3]],  # D_1
        ],
        dtype=torch.float64,
    )
    return real, fake


def D(s):  # sigmoid by hand on the three values used
    return {round(L3, 12): 0.75, 0.0: 0.5, round(-L3, 12): 0.25}[round(float(s), 12)]


def test_log_payoff_hand():
    real, fake = scores()
    F = log_payoff(real, fake)
    assert F.shape == (3, 2)  # (T_g, T_d)
    for i in range(3):
        for j in range(2):
            real_term = np.mean([math.log(D(s)) for s in real[j]])
            fake_term = np.mean([math.log(1 - D(s)) for s in fake[j, i]])
            assert float(F[i, j]) == pytest.approx(real_term + fake_term, abs=1e-12)


def test_generator_losses_hand():
    real, fake = scores()
    g_mm = minimax().generator_loss(fake)
    g_ns = nonsaturating().generator_loss(fake)
    for i in range(3):
        for j in range(2):
            assert float(g_mm[i, j]) == pytest.approx(np.mean([math.log(1 - D(s)) for s in fake[j, i]]), abs=1e-12)
            assert float(g_ns[i, j]) == pytest.approx(-np.mean([math.log(D(s)) for s in fake[j, i]]), abs=1e-12)
    # the discriminator minimises -F in every log-loss game
    for loss in (minimax(), nonsaturating()):
        torch.testing.assert_close(loss.discriminator_loss(real, fake), -log_payoff(real, fake))


def test_wasserstein_hand():
    real = torch.tensor([[1.0, 3.0]], dtype=torch.float64)  # critic mean on real: 2
    fake = torch.tensor([[[0.0, 1.0], [-2.0, -4.0]]], dtype=torch.float64)  # means 0.5 and -3
    F = wasserstein().payoff(real, fake)
    torch.testing.assert_close(F, torch.tensor([[1.5], [5.0]], dtype=torch.float64))
    torch.testing.assert_close(wasserstein().generator_loss(fake), torch.tensor([[-0.5], [3.0]], dtype=torch.float64))
    torch.testing.assert_close(linear_payoff(real, fake), F)


def test_least_squares_hand():
    # LSGAN, targets a, b, c = 0, 1, 1: L_D = E(s_r - 1)^2 + E s_f^2 = -F, L_G = E(s_f - 1)^2.
    real = torch.tensor([[1.0, 3.0], [0.0, 1.0]], dtype=torch.float64)  # D_0: errors 0, 4 -> 2; D_1: 1, 0 -> 1/2
    fake = torch.tensor(
        [
            [[0.0, -2.0], [0.5, 1.5]],  # D_0 on G_0: s^2 = 0, 4 -> 2; on G_1: 0.25, 2.25 -> 1.25
            [[1.0, 1.0], [0.0, 0.0]],  # D_1 on G_0: 1, 1 -> 1; on G_1: 0
        ],
        dtype=torch.float64,
    )
    ls = least_squares()
    F = ls.payoff(real, fake)  # (T_g, T_d): -(real term of D_j + fake term of (D_j, G_i))
    torch.testing.assert_close(F, -torch.tensor([[2 + 2, 0.5 + 1], [2 + 1.25, 0.5 + 0]], dtype=torch.float64))
    torch.testing.assert_close(least_squares_payoff(real, fake), F)
    torch.testing.assert_close(ls.discriminator_loss(real, fake), -F)
    # L_G: D_0 on G_0: (-1)^2, (-3)^2 -> 5; on G_1: (-0.5)^2, (0.5)^2 -> 0.25; D_1 on G_0: 0; on G_1: 1
    torch.testing.assert_close(ls.generator_loss(fake), torch.tensor([[5.0, 0.0], [0.25, 1.0]], dtype=torch.float64))
    assert (ls.name, ls.measuring) == ("least_squares", "identity")
    assert LOSSES["least_squares"] is least_squares
    with pytest.raises(ValueError, match="fake_scores"):
        ls.payoff(real, fake[0])


def test_least_squares_optimal_discriminator_on_two_points():
    # Two atoms; real p = (3/4, 1/4) as the batch (a a a b), fake q = (1/4, 3/4) as (a b b b). A table
    # discriminator s = (s_a, s_b) minimising L_D = sum_k p_k (s_k - 1)^2 + q_k s_k^2 has s*_k = p_k / (p_k + q_k)
    # = (3/4, 1/4) (Mao et al. 2017, Prop. 1 with a, b = 0, 1), and max F = -sum p q / (p + q) = -3/8
    # = Delta/4 - 1/2 with the triangular discrimination Delta = sum (p - q)^2 / (p + q) = 1/2.
    real_atoms, fake_atoms = [0, 0, 0, 1], [0, 1, 1, 1]
    ls = least_squares()

    def loss_and_grad(s):
        t = torch.tensor(s, dtype=torch.float64, requires_grad=True)
        L = ls.discriminator_loss(t[real_atoms][None], t[fake_atoms][None, None])[0, 0]
        L.backward()
        return float(L.detach()), t.grad.numpy().copy()

    value, grad = loss_and_grad([0.75, 0.25])
    assert value == pytest.approx(3 / 8, abs=1e-15)  # L_D = -F at the optimum
    np.testing.assert_allclose(grad, 0.0, atol=1e-15)  # a stationary point of a convex quadratic: the minimum
    found = minimize(loss_and_grad, x0=[0.0, 0.0], jac=True, method="BFGS")  # independent numerical optimum
    np.testing.assert_allclose(found.x, [0.75, 0.25], atol=1e-6)
    # D = 1/2 everywhere, the optimum when p = q, does worse here: 1/4 + 1/4 = 1/2 > 3/8
    assert loss_and_grad([0.5, 0.5])[0] == pytest.approx(0.5, abs=1e-15)


def test_least_squares_gradients_push_toward_the_targets():
    # dL_D/ds_real = 2 (s - 1)/n, dL_D/ds_fake = 2 s/m, dL_G/ds_fake = 2 (s - 1)/m (n = m = 3): descent raises
    # real scores below 1, lowers fake scores above 0, and the generator raises its scores below 1.
    real = torch.tensor([[-1.0, 0.5, 2.0]], dtype=torch.float64, requires_grad=True)
    fake = torch.tensor([[[-0.5, 0.25, 1.5]]], dtype=torch.float64, requires_grad=True)
    ls = least_squares()
    ls.discriminator_loss(real, fake).sum().backward()
    torch.testing.assert_close(real.grad, 2 * (real.detach() - 1) / 3)
    torch.testing.assert_close(fake.grad, 2 * fake.detach() / 3)
    assert real.grad[0, 0] < 0 < real.grad[0, 2] and fake.grad[0, 0, 0] < 0 < fake.grad[0, 0, 1]
    fake.grad = None
    ls.generator_loss(fake).sum().backward()
    torch.testing.assert_close(fake.grad, 2 * (fake.detach() - 1) / 3)
    assert (fake.grad[0, 0, :2] < 0).all() and fake.grad[0, 0, 2] > 0
    # through a generator: critic s(x) = x (scores real above fake); a fake point at 0 moves up, toward s = 1
    x = torch.zeros(1, 1, 1, dtype=torch.float64, requires_grad=True)
    ls.generator_loss(x).sum().backward()
    assert float(x.grad) == pytest.approx(-2.0)  # d/dx (x - 1)^2 at 0


def test_least_squares_objective_has_no_delta_and_trains():
    assert make_objective("least_squares").loss.name == "least_squares"
    assert make_objective("least_squares", "gp").name == "least_squares+gp"
    with pytest.raises(ValueError, match="delta"):
        make_objective("least_squares", delta=0.1)
    with pytest.raises(ValueError, match="delta"):
        MixGANConfig(loss="least_squares", delta=0.1).objective()
    cfg = MixGANConfig(n_components=2, loss="least_squares", steps=4, batch_size=8, hidden=8, log_every=1, seed=3)
    h = train(cfg, ring8()).history
    assert len(h) == 4 and np.isfinite(h.drop(columns="time_s").to_numpy()).all()
    assert (h["value"] <= 0).all()  # F = -(squared errors) <= 0
    np.testing.assert_allclose(h["d_adv"], -h["value"], rtol=1e-6)  # the discriminator minimises -F
    assert (h[[c for c in h.columns if c.startswith("F_")]].to_numpy() <= 0).all()


def test_equilibrium_value_two_phi_half():
    # D = 1/2 everywhere: F = 2 log(1/2) = -log 4, the value where the generator wins (Theorem 4.2)
    F = log_payoff(torch.zeros(3, 5), torch.zeros(3, 2, 5))
    torch.testing.assert_close(F, torch.full((2, 3), -math.log(4.0)))


def test_bad_score_shapes_rejected():
    with pytest.raises(ValueError, match="fake_scores"):
        log_payoff(torch.zeros(2, 3), torch.zeros(2, 3))
    with pytest.raises(ValueError, match="real_scores"):
        log_payoff(torch.zeros(3, 3), torch.zeros(2, 1, 3))


# ---------------------------------------------------------------- penalties
class LinearCritic(nn.Module):
    """s(x) = <a, x> + b: gradient a everywhere."""

    def __init__(self, a):
        super().__init__()
        self.a = nn.Parameter(torch.tensor(a, dtype=torch.float64))
        self.b = nn.Parameter(torch.tensor(0.3, dtype=torch.float64))

    def forward(self, x, labels=None):
        return x @ self.a + self.b


class QuadraticCritic(nn.Module):
    """s(x) = c ||x||^2 / 2: gradient c x."""

    def __init__(self, c):
        super().__init__()
        self.c = nn.Parameter(torch.tensor(c, dtype=torch.float64))

    def forward(self, x, labels=None):
        return 0.5 * self.c * (x**2).sum(-1)


REAL = torch.tensor([[1.0, 0.0], [0.0, 2.0], [-1.0, -1.0]], dtype=torch.float64)  # n = 3, d = 2
FAKE = torch.tensor([[[0.5, 0.5], [1.0, 1.0], [2.0, 0.0]], [[0.0, 0.0], [-3.0, 1.0], [0.0, 0.5]]], dtype=torch.float64)  # T_g = 2


def test_gradient_penalty_linear_critics():
    # grad = a: P = lambda (||a|| - 1)^2, whatever the interpolates: ||(3,4)|| = 5 -> 10*16; ||(0.6,0)|| -> 10*0.16
    disc = Mixture([LinearCritic([3.0, 4.0]), LinearCritic([0.6, 0.0])])
    P = gradient_penalty(10.0)(disc, REAL, FAKE, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(P, torch.tensor([[160.0, 1.6], [160.0, 1.6]], dtype=torch.float64))


def test_gradient_penalty_quadratic_critics_replayed_draws():
    cs = [1.0, 2.5]
    disc = Mixture([QuadraticCritic(c) for c in cs])
    P = gradient_penalty(10.0)(disc, REAL, FAKE, generator=torch.Generator().manual_seed(7)).detach()
    a = torch.rand(2, 3, generator=torch.Generator().manual_seed(7), dtype=torch.float64).numpy()  # same draw
    x, xt = REAL.numpy(), FAKE.numpy()
    for i in range(2):
        x_hat = a[i][:, None] * x + (1 - a[i][:, None]) * xt[i]  # (n, d)
        for j, c in enumerate(cs):
            expected = 10.0 * np.mean((np.linalg.norm(c * x_hat, axis=1) - 1.0) ** 2)
            assert float(P[i, j]) == pytest.approx(expected, rel=1e-12)


def test_max_gradient_penalty_replayed_draws():
    cs = [1.0, 0.5]
    disc = Mixture([QuadraticCritic(c) for c in cs])
    P = max_gradient_penalty(2.0)(disc, REAL, FAKE, generator=torch.Generator().manual_seed(1)).detach()
    a = torch.rand(2, 3, generator=torch.Generator().manual_seed(1), dtype=torch.float64).numpy()
    x, xt = REAL.numpy(), FAKE.numpy()
    for i in range(2):
        x_hat = a[i][:, None] * x + (1 - a[i][:, None]) * xt[i]
        for j, c in enumerate(cs):
            expected = 2.0 * np.max(np.sum((c * x_hat) ** 2, axis=1))  # lambda max_k ||grad||^2
            assert float(P[i, j]) == pytest.approx(expected, rel=1e-12)


def test_dragan_penalty_replayed_draws():
    cs = [1.0, 3.0]
    disc = Mixture([QuadraticCritic(c) for c in cs])
    P = dragan_penalty(10.0, perturb_scale=0.5)(disc, REAL, FAKE, generator=torch.Generator().manual_seed(4)).detach()
    g = torch.Generator().manual_seed(4)
    u = torch.rand(REAL.shape, generator=g, dtype=torch.float64).numpy()  # same order: noise, then a
    a = torch.rand(3, generator=g, dtype=torch.float64).numpy()
    x = REAL.numpy()
    x_p = x + 0.5 * x.std() * u  # numpy std, ddof = 0 (DRAGAN's code)
    x_hat = x + a[:, None] * (x_p - x)
    assert P.shape == (2, 2)
    for j, c in enumerate(cs):
        expected = 10.0 * np.mean((np.linalg.norm(c * x_hat, axis=1) - 1.0) ** 2)
        assert float(P[0, j]) == pytest.approx(expected, rel=1e-12)
        assert float(P[1, j]) == pytest.approx(expected, rel=1e-12)  # does not depend on the generator


def test_penalty_gradient_reaches_discriminator_parameters():
    # d/dc of 10 (|c| ||a|| - 1)^2 for the linear critic s = c <a, x>: check against the closed form
    class Scaled(nn.Module):
        def __init__(self):
            super().__init__()
            self.c = nn.Parameter(torch.tensor(2.0, dtype=torch.float64))

        def forward(self, x, labels=None):
            return self.c * (x @ torch.tensor([0.6, 0.8], dtype=torch.float64))  # ||a|| = 1

    disc = Mixture([Scaled()])
    P = gradient_penalty(10.0)(disc, REAL, FAKE[:1], generator=torch.Generator().manual_seed(0))
    P.sum().backward()
    # P = 10 (c - 1)^2 = 10 at c = 2, dP/dc = 20 (c - 1) = 20
    assert P.item() == pytest.approx(10.0, rel=1e-12)
    assert float(disc.stacked[0].grad[0]) == pytest.approx(20.0, rel=1e-12)


def test_composition_and_names():
    obj = compose(nonsaturating(), gradient_penalty(10.0))
    assert obj.name == "nonsaturating+gp"  # Fedus et al.'s GAN-GP
    assert make_objective("wasserstein", clip=0.01).clip == 0.01
    assert make_objective("nonsaturating", "dragan").penalties[0].name == "dragan"
    # penalties add up: two identical GP terms give twice the penalty
    disc = Mixture([LinearCritic([3.0, 4.0])])
    one = compose(wasserstein(), gradient_penalty(1.0)).penalty(disc, REAL, FAKE, generator=torch.Generator().manual_seed(0))
    two = compose(wasserstein(), gradient_penalty(1.0), gradient_penalty(1.0)).penalty(
        disc, REAL, FAKE, generator=torch.Generator().manual_seed(0)
    )
    torch.testing.assert_close(two, 2 * one)
    # no penalty: zeros of shape (T_g, T_d)
    torch.testing.assert_close(compose(minimax()).penalty(disc, REAL, FAKE, generator=torch.Generator()), torch.zeros(2, 1, dtype=torch.float64))


def test_bad_names_and_values_rejected():
    with pytest.raises(ValueError, match="loss"):
        make_objective("hinge")
    with pytest.raises(ValueError, match="penalty"):
        make_objective("minimax", "r1")
    with pytest.raises(ValueError, match="weight"):
        gradient_penalty(-1.0)
    with pytest.raises(ValueError, match="clip"):
        compose(wasserstein(), clip=0.0)


def test_bounded_measuring_function_delta():
    # phi(t) = log(delta + (1 - delta) t): at D = 1/2 (s = 0), log(0.1 + 0.9 * 0.5) = log 0.55;
    # the payoff then lies in [2 log delta, 0] whatever the scores.
    real, fake = torch.zeros(1, 2), torch.zeros(1, 1, 2)
    assert float(log_payoff(real, fake, delta=0.1)) == pytest.approx(2 * math.log(0.55), rel=1e-6)
    extreme = log_payoff(torch.full((1, 2), -1e4), torch.full((1, 1, 2), 1e4), delta=0.1)  # D wrong everywhere
    assert float(extreme) == pytest.approx(2 * math.log(0.1), rel=1e-6)
    real, fake = scores()
    for i in range(3):  # delta = 0 is the plain log payoff, hand values as above
        assert float(log_payoff(real, fake, delta=0.0)[i, 0]) == pytest.approx(float(log_payoff(real, fake)[i, 0]))
    g = nonsaturating(delta=0.1).generator_loss(torch.zeros(1, 1, 3))
    assert float(g) == pytest.approx(-math.log(0.55), rel=1e-6)
    assert make_objective("minimax", delta=0.1).loss.name == "minimax(delta=0.1)"
    with pytest.raises(ValueError, match="delta"):
        make_objective("wasserstein", delta=0.1)
    with pytest.raises(ValueError, match="delta"):
        minimax(delta=1.0)
