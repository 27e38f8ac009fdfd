"""GAN players as ordinary ``torch.nn.Module``s: MLPs for toy data, DCGANs for images.

A *player* is one generator G_u or one discriminator D_v of Section 4 (Arora et al.
2017). :class:`gangen.mixgan.Mixture` stacks T players of one family and runs them in
one vectorised pass, so the players here follow a small contract:

- generators: ``forward(z, labels=None) -> x`` with ``z`` of shape (n, latent_dim) and
  ``x`` of shape (n, d) (MLP) or (n, C, H, W) (DCGAN); attributes ``latent_dim`` and
  ``num_classes`` (0 when unconditional);
- discriminators: ``forward(x, labels=None) -> s`` with ``s`` of shape (n,): a raw
  score (a logit for the log-loss games, where D(x) = sigmoid(s); the critic value for
  the Wasserstein game); attribute ``num_classes``.

No player keeps running statistics: batch normalisation always uses the statistics of
the batch it is given (``track_running_stats=False``), which is what vectorised
evaluation with :func:`torch.func.vmap` needs and what GAN training does anyway. Under a
gradient penalty use ``norm="layer"`` or ``"none"`` in the discriminator (WGAN-GP's
advice): batch statistics couple the samples whose gradients the penalty measures.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from gangen._validation import check_choice, check_nonneg_int, check_positive_int

__all__ = [
    "MLPGenerator",
    "MLPDiscriminator",
    "DCGANGenerator",
    "DCGANDiscriminator",
    "IMAGE_SHAPES",
    "count_parameters",
]

#: Image shapes (C, H, W) the DCGAN players support.
IMAGE_SHAPES = ((1, 28, 28), (3, 32, 32))
#: Negative slope of every leaky ReLU of the players (DCGAN's 0.2).
LEAKY_SLOPE = 0.2
_ACTIVATIONS = {"relu": nn.ReLU, "leaky_relu": lambda: nn.LeakyReLU(LEAKY_SLOPE), "tanh": nn.Tanh}
NORMS = ("batch", "layer", "none")


def count_parameters(module: nn.Module) -> int:
    """Number of trainable scalars p of a module.

    >>> count_parameters(nn.Linear(2, 3))   # 2*3 weights + 3 biases
    9
    """
    return sum(p.numel() for p in module.parameters() if p.requires_grad)


def _mlp(in_dim: int, out_dim: int, hidden: int, depth: int, activation: str) -> nn.Sequential:
    check_positive_int(hidden, "hidden")
    check_nonneg_int(depth, "depth")
    check_choice(activation, _ACTIVATIONS, "activation")
    layers: list[nn.Module] = []
    width = in_dim
    for _ in range(depth):
        layers += [nn.Linear(width, hidden), _ACTIVATIONS[activation]()]
        width = hidden
    layers.append(nn.Linear(width, out_dim))
    return nn.Sequential(*layers)


def _check_labels(labels: torch.Tensor | None, num_classes: int, n: int) -> None:
    if num_classes == 0:
        if labels is not None:
            raise ValueError("this player is unconditional (num_classes=0) but labels were given")
        return
    if labels is None:
        raise ValueError(f"this player is label-conditional (num_classes={num_classes}); pass labels of shape ({n},)")


class MLPGenerator(nn.Module):
    """G_u(z) = MLP(z): R^latent_dim -> R^d with ``depth`` hidden layers of width ``hidden``.

    >>> g = MLPGenerator(latent_dim=2, out_dim=3, hidden=8, depth=2)
    >>> tuple(g(torch.zeros(5, 2)).shape)
    (5, 3)
    """

    def __init__(self, latent_dim: int, out_dim: int, *, hidden: int = 128, depth: int = 2, activation: str = "relu") -> None:
        super().__init__()
        self.latent_dim = check_positive_int(latent_dim, "latent_dim")
        self.out_dim = check_positive_int(out_dim, "out_dim")
        self.num_classes = 0
        self.net = _mlp(self.latent_dim, self.out_dim, hidden, depth, activation)

    def forward(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        _check_labels(labels, 0, z.shape[0])
        return self.net(z)  # (n, d)


class MLPDiscriminator(nn.Module):
    """D_v(x) = MLP(x): R^d -> R, a raw score (logit or critic value) of shape (n,).

    >>> d = MLPDiscriminator(in_dim=3, hidden=8, depth=1)
    >>> tuple(d(torch.zeros(5, 3)).shape)
    (5,)
    """

    def __init__(self, in_dim: int, *, hidden: int = 128, depth: int = 2, activation: str = "leaky_relu") -> None:
        super().__init__()
        self.in_dim = check_positive_int(in_dim, "in_dim")
        self.num_classes = 0
        self.net = _mlp(self.in_dim, 1, hidden, depth, activation)

    def forward(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        _check_labels(labels, 0, x.shape[0])
        return self.net(x).squeeze(-1)  # (n,)

    @classmethod
    def from_family(cls, family: Any, params_row: Any) -> "MLPDiscriminator":
        """The member ``params_row`` (p,) of an ensemble-engine family as a discriminator whose
        raw score is the family's pre-head output (sigmoid head: the logit; linear head: the
        critic value). The family must be one this class can express: equal hidden widths,
        biases, activation relu / tanh / leaky_relu with slope 0.2, head sigmoid or linear.

        >>> from gangen.nn.families import MLPFamily
        >>> fam = MLPFamily(d=2, hidden=(3, 3), activation="leaky_relu", negative_slope=0.2)
        >>> v = fam.init([0])
        >>> x = torch.randn(4, 2)
        >>> bool(torch.allclose(MLPDiscriminator.from_family(fam, v[0])(x), fam.logits(torch.from_numpy(v), x[None])[0]))
        True
        """
        from gangen.nn.families import MLPFamily

        if not isinstance(family, MLPFamily):
            raise TypeError(f"family must be an MLPFamily; got {type(family).__name__}")
        widths = set(family.hidden)
        if (
            len(widths) > 1
            or not family.bias
            or family.head not in ("sigmoid", "linear")
            or (family.activation == "leaky_relu" and family.negative_slope != LEAKY_SLOPE)
        ):
            raise ValueError(
                f"MLPDiscriminator expresses equal hidden widths with biases, relu / tanh / leaky_relu({LEAKY_SLOPE}) and a "
                f"sigmoid or linear head; got {family!r}"
            )
        hidden = family.hidden[0] if family.hidden else 1
        module = cls(family.d, hidden=hidden, depth=len(family.hidden), activation=family.activation)
        source = family.to_module(params_row)
        with torch.no_grad():
            for dst, src in zip((m for m in module.net if isinstance(m, nn.Linear)), (m for m in source if isinstance(m, nn.Linear))):
                dst.weight.copy_(src.weight)
                dst.bias.copy_(src.bias)
        return module


def _norm2d(kind: str, channels: int) -> nn.Module:
    if kind == "batch":
        return nn.BatchNorm2d(channels, track_running_stats=False)
    if kind == "layer":  # normalises over (C, H, W) per sample
        return nn.GroupNorm(1, channels)
    return nn.Identity()


def _check_image_shape(image_shape: tuple[int, int, int]) -> tuple[int, int, int]:
    shape = tuple(int(s) for s in image_shape)
    if shape not in IMAGE_SHAPES:
        raise ValueError(f"image_shape must be one of {IMAGE_SHAPES} (C, H, W); got {image_shape!r}")
    return shape  # type: ignore[return-value]


def _dcgan_init(module: nn.Module) -> None:
    # DCGAN (Radford et al. 2016): weights N(0, 0.02), norm scales N(1, 0.02), biases 0.
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear, nn.Embedding)):
            nn.init.normal_(m.weight, 0.0, 0.02)
            if getattr(m, "bias", None) is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, (nn.BatchNorm2d, nn.GroupNorm)):
            nn.init.normal_(m.weight, 1.0, 0.02)
            nn.init.zeros_(m.bias)


class DCGANGenerator(nn.Module):
    """DCGAN generator (Radford et al. 2016) for 28x28x1 or 32x32x3 images, optionally conditional.

    z (n, latent_dim) [concatenated with a one-hot label (n, num_classes) when
    conditional] -> linear -> (c0, s0, s0) -> stride-2 transposed convolutions, each
    halving the channels and doubling the side -> tanh -> (n, C, H, W) in [-1, 1].
    28x28: (2w, 7, 7) -> (w, 14, 14) -> (C, 28, 28); 32x32: (4w, 4, 4) -> (2w, 8, 8) ->
    (w, 16, 16) -> (C, 32, 32), with w = ``width``.

    >>> g = DCGANGenerator((1, 28, 28), latent_dim=8, width=4)
    >>> tuple(g(torch.zeros(2, 8)).shape)
    (2, 1, 28, 28)
    """

    def __init__(
        self,
        image_shape: tuple[int, int, int] = (3, 32, 32),
        *,
        latent_dim: int = 100,
        width: int = 64,
        num_classes: int = 0,
        norm: str = "batch",
    ) -> None:
        super().__init__()
        self.image_shape = _check_image_shape(image_shape)
        self.latent_dim = check_positive_int(latent_dim, "latent_dim")
        self.num_classes = check_nonneg_int(num_classes, "num_classes")
        check_positive_int(width, "width")
        check_choice(norm, NORMS, "norm")
        channels, side, _ = self.image_shape
        n_up = 2 if side == 28 else 3
        self._s0 = side // 2**n_up  # 7 or 4
        self._c0 = width * 2 ** (n_up - 1)
        self.fc = nn.Linear(self.latent_dim + self.num_classes, self._c0 * self._s0 * self._s0)
        self.fc_norm = _norm2d(norm, self._c0)
        ups: list[nn.Module] = []
        c = self._c0
        for k in range(n_up):
            last = k == n_up - 1
            c_out = channels if last else c // 2
            ups.append(nn.ConvTranspose2d(c, c_out, kernel_size=4, stride=2, padding=1))
            ups += [nn.Tanh()] if last else [_norm2d(norm, c_out), nn.ReLU()]
            c = c_out
        self.ups = nn.Sequential(*ups)
        _dcgan_init(self)

    def forward(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        _check_labels(labels, self.num_classes, z.shape[0])
        if self.num_classes:
            z = torch.cat([z, nn.functional.one_hot(labels, self.num_classes).to(z.dtype)], dim=1)  # (n, k + classes)
        h = self.fc(z).view(z.shape[0], self._c0, self._s0, self._s0)  # (n, c0, s0, s0)
        h = torch.relu(self.fc_norm(h))
        return self.ups(h)  # (n, C, H, W)


class DCGANDiscriminator(nn.Module):
    """DCGAN discriminator for 28x28x1 or 32x32x3 images; conditional by projection.

    Stride-2 convolutions with leaky ReLU (slope 0.2), doubling the channels:
    28x28: (w, 14, 14) -> (2w, 7, 7); 32x32: (w, 16, 16) -> (2w, 8, 8) -> (4w, 4, 4);
    flatten to h, then s(x) = <w_out, h> + b, plus <E y, h> when conditional (the
    projection discriminator of Miyato & Koyama 2018, E a learned class embedding).
    No normalisation after the first convolution, as in DCGAN.

    >>> d = DCGANDiscriminator((3, 32, 32), width=4, num_classes=10)
    >>> tuple(d(torch.zeros(2, 3, 32, 32), labels=torch.tensor([0, 9])).shape)
    (2,)
    """

    def __init__(
        self,
        image_shape: tuple[int, int, int] = (3, 32, 32),
        *,
        width: int = 64,
        num_classes: int = 0,
        norm: str = "batch",
    ) -> None:
        super().__init__()
        self.image_shape = _check_image_shape(image_shape)
        self.num_classes = check_nonneg_int(num_classes, "num_classes")
        check_positive_int(width, "width")
        check_choice(norm, NORMS, "norm")
        channels, side, _ = self.image_shape
        n_down = 2 if side == 28 else 3
        layers: list[nn.Module] = []
        c_in, c = channels, width
        for k in range(n_down):
            layers.append(nn.Conv2d(c_in, c, kernel_size=4, stride=2, padding=1))
            if k > 0:
                layers.append(_norm2d(norm, c))
            layers.append(nn.LeakyReLU(LEAKY_SLOPE))
            c_in, c = c, 2 * c
        self.features = nn.Sequential(*layers)
        n_features = c_in * (side // 2**n_down) ** 2
        self.out = nn.Linear(n_features, 1)
        self.embed = nn.Embedding(self.num_classes, n_features) if self.num_classes else None
        _dcgan_init(self)

    def forward(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        _check_labels(labels, self.num_classes, x.shape[0])
        h = self.features(x).flatten(1)  # (n, n_features)
        s = self.out(h).squeeze(-1)  # (n,)
        if self.embed is not None:
            s = s + (self.embed(labels) * h).sum(dim=1)
        return s
