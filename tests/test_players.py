"""Players (gangen.nn.players): shapes, label handling, and agreement with the batched Mixture."""

import pytest
import torch

from gangen.mixgan import Mixture, build_mixture
from gangen.nn.players import (
    DCGANDiscriminator,
    DCGANGenerator,
    MLPDiscriminator,
    MLPGenerator,
    count_parameters,
)


# Tiny tensors: one intra-op thread (see the fixture in conftest.py).
pytestmark = pytest.mark.usefixtures("one_torch_thread")

SHAPES = [(1, 28, 28), (3, 32, 32)]


def test_mlp_shapes_and_parameter_count():
    g = MLPGenerator(latent_dim=3, out_dim=2, hidden=5, depth=2)
    d = MLPDiscriminator(in_dim=2, hidden=5, depth=1)
    assert g(torch.zeros(7, 3)).shape == (7, 2)
    assert d(torch.zeros(7, 2)).shape == (7,)
    # hand count: (3*5+5) + (5*5+5) + (5*2+2) = 62 and (2*5+5) + (5*1+1) = 21
    assert count_parameters(g) == 62
    assert count_parameters(d) == 21


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("num_classes", [0, 10])
def test_dcgan_shapes(shape, num_classes):
    g = DCGANGenerator(shape, latent_dim=6, width=4, num_classes=num_classes)
    d = DCGANDiscriminator(shape, width=4, num_classes=num_classes)
    labels = torch.arange(5) % 10 if num_classes else None
    x = g(torch.randn(5, 6), labels=labels)
    assert x.shape == (5, *shape)
    assert x.abs().max() <= 1.0  # tanh output
    assert d(x, labels=labels).shape == (5,)


@pytest.mark.parametrize("norm", ["batch", "layer", "none"])
def test_dcgan_norms(norm):
    d = DCGANDiscriminator((1, 28, 28), width=4, norm=norm)
    g = DCGANGenerator((1, 28, 28), latent_dim=4, width=4, norm=norm)
    assert d(g(torch.randn(3, 4))).shape == (3,)


def test_conditional_label_projection_changes_score():
    torch.manual_seed(0)
    d = DCGANDiscriminator((1, 28, 28), width=4, num_classes=3)
    x = torch.randn(1, 1, 28, 28).expand(3, 1, 28, 28)
    s = d(x, labels=torch.tensor([0, 1, 2]))
    assert len(set(s.tolist())) == 3  # same image, different labels -> different scores


def test_label_contract():
    g = DCGANGenerator((1, 28, 28), latent_dim=4, width=4, num_classes=10)
    with pytest.raises(ValueError, match="labels"):
        g(torch.zeros(2, 4))
    with pytest.raises(ValueError, match="unconditional"):
        MLPDiscriminator(2)(torch.zeros(2, 2), labels=torch.zeros(2, dtype=torch.long))


def test_bad_arguments():
    with pytest.raises(ValueError, match="image_shape"):
        DCGANGenerator((3, 64, 64))
    with pytest.raises(ValueError, match="norm"):
        DCGANDiscriminator((1, 28, 28), norm="spectral")
    with pytest.raises(ValueError, match="hidden"):
        MLPGenerator(2, 2, hidden=0)


def test_mixture_matches_individual_dcgan_players_with_batch_norm():
    # Each generator batch is its own batch for batch norm: groups=True must equal separate calls.
    torch.manual_seed(0)
    players = [DCGANDiscriminator((3, 32, 32), width=4, norm="batch") for _ in range(2)]
    mix = Mixture(players)
    x = torch.randn(3, 4, 3, 32, 32)  # S=3 batches of 4 images
    out = mix(x, groups=True)  # (T, S, n)
    ref = torch.stack([torch.stack([p(x[s]) for s in range(3)]) for p in players])
    torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-5)


def test_mixture_of_conditional_generators_matches_loop():
    players_factory = lambda: DCGANGenerator((1, 28, 28), latent_dim=4, width=4, num_classes=10)  # noqa: E731
    mix = build_mixture(players_factory, 2, seed=3)
    with torch.random.fork_rng():
        torch.manual_seed(3)
        players = [players_factory() for _ in range(2)]
    z = torch.randn(2, 5, 4)
    y = torch.tensor([0, 1, 2, 3, 9])
    out = mix(z, per_component=True, labels=y)
    for t in range(2):
        torch.testing.assert_close(out[t], players[t](z[t], labels=y), rtol=1e-5, atol=1e-5)
