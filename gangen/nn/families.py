"""Discriminator families: MLPs with an exact parameter count p and batched parameters.

A family is a frozen description of a class of networks F = {D_v : v in R^p}
(Arora et al. 2017, Theorem 3.1: "F has p parameters"). Parameters of K members are
one float32 array of shape (K, p); member k's row is laid out layer by layer as
``W_1 (in, out) row-major, b_1 (out,), W_2, b_2, ...`` so that a layer is
``h @ W + b``. The batched trainer lives in :mod:`gangen.nn.ensemble`; this module
only knows shapes, initialisation, the forward map and the Lipschitz options.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np

from gangen._validation import check_choice, check_positive_float, check_positive_int

if TYPE_CHECKING:  # torch is imported lazily so that importing gangen stays light
    import torch

__all__ = ["MLPFamily", "linear_family", "ACTIVATIONS", "HEADS"]

ACTIVATIONS = ("relu", "leaky_relu", "tanh")
HEADS = ("sigmoid", "tanh", "linear")


@dataclass(frozen=True)
class MLPFamily:
    r"""Multi-layer perceptrons D_v : R^d -> R with hidden widths ``hidden`` and an output head.

    .. math::
        h_0 = x,\quad h_l = a(h_{l-1} W_l + b_l)\ (l = 1..L),\quad
        o = h_L w_{out} + b_{out},\quad D_v(x) = \mathrm{head}(o)

    Parameters
    ----------
    d : int
        Input dimension.
    hidden : tuple of int
        Hidden widths (h_1, ..., h_L); ``()`` gives a linear map x -> x.w + b.
    activation : {"relu", "leaky_relu", "tanh"}
        The nonlinearity a (all three are 1-Lipschitz).
    head : {"sigmoid", "tanh", "linear"}
        ``"sigmoid"``: D in [0, 1], the paper's discriminators (needed by phi = log);
        ``"tanh"``: a critic bounded in [-1, 1]; ``"linear"``: an unbounded critic.
    bias : bool
        Whether layers have biases.
    negative_slope : float
        Slope of ``leaky_relu`` for negative inputs.
    weight_clip : float or None
        If set, every parameter is clipped to [-c, c] after each optimiser step (WGAN).
    spectral_norm : bool
        If True, every weight matrix is used as W / max(1, sigma(W)), sigma its largest
        singular value: each layer has spectral norm <= 1 and, with 1-Lipschitz
        activations, the network is 1-Lipschitz in x. Training differentiates through this
        map with sigma from one power iteration per step (after 15 at the start), as
        ``torch.nn.utils.parametrizations.spectral_norm`` does; Miyato et al. (2018) divide
        by sigma always (norm exactly 1), we bound it (Gouk et al. 2021), so the class
        contains the smaller-norm nets too. Trained parameters are returned as the
        effective weights with the exact sigma. For a single-output linear family
        (``hidden=()``) sigma = ||w||: the class {x -> w.x + b : ||w|| <= 1}.

    Initialisation follows ``torch.nn.Linear``'s distribution: W and b uniform in
    [-1/sqrt(fan_in), 1/sqrt(fan_in)], drawn from ``numpy.random.default_rng(seed)``
    per member, so member k's parameters depend only on its own seed.

    >>> MLPFamily(d=2, hidden=(3,)).n_params   # (2*3 + 3) + (3*1 + 1)
    13
    """

    d: int
    hidden: tuple[int, ...] = (32, 32)
    activation: str = "relu"
    head: str = "sigmoid"
    bias: bool = True
    negative_slope: float = 0.2
    weight_clip: float | None = None
    spectral_norm: bool = False

    def __post_init__(self) -> None:
        check_positive_int(self.d, "d")
        if isinstance(self.hidden, (int, np.integer)) or not isinstance(self.hidden, Sequence):
            raise TypeError(f"hidden must be a tuple of positive ints (widths); got {self.hidden!r}")
        widths = tuple(check_positive_int(h, "hidden width") for h in self.hidden)
        object.__setattr__(self, "hidden", widths)
        check_choice(self.activation, ACTIVATIONS, "activation")
        check_choice(self.head, HEADS, "head")
        if not isinstance(self.bias, bool):
            raise TypeError(f"bias must be a bool; got {type(self.bias).__name__} {self.bias!r}")
        check_positive_float(self.negative_slope, "negative_slope")
        if self.weight_clip is not None:
            check_positive_float(self.weight_clip, "weight_clip")
        if not isinstance(self.spectral_norm, bool):
            raise TypeError(f"spectral_norm must be a bool; got {self.spectral_norm!r}")

    # ------------------------------------------------------------------ shapes
    @property
    def layer_shapes(self) -> tuple[tuple[int, int], ...]:
        """(fan_in, fan_out) of each affine layer, output layer last."""
        sizes = (self.d, *self.hidden, 1)
        return tuple(zip(sizes[:-1], sizes[1:]))

    @property
    def n_params(self) -> int:
        """Exact number p of trainable parameters of one member."""
        return sum(i * o + (o if self.bias else 0) for i, o in self.layer_shapes)

    @property
    def offsets(self) -> tuple[tuple[int, int | None], ...]:
        """Per layer, the offset of W and of b (None without bias) in a member's row."""
        out, pos = [], 0
        for i, o in self.layer_shapes:
            w_at = pos
            pos += i * o
            b_at = pos if self.bias else None
            pos += o if self.bias else 0
            out.append((w_at, b_at))
        return tuple(out)

    @property
    def bounded_in_unit_interval(self) -> bool:
        """True when D takes values in [0, 1] (needed by phi = log(delta + (1-delta)t))."""
        return self.head == "sigmoid"

    # ------------------------------------------------------------ parameters
    def init(self, seeds: Sequence[int]) -> np.ndarray:
        """Initial parameters of len(seeds) members, float32 array of shape (K, p).

        >>> fam = MLPFamily(d=3, hidden=(4,))
        >>> bool(np.array_equal(fam.init([7, 8])[1], fam.init([8])[0]))
        True
        """
        seeds = _as_seeds(seeds)
        out = np.empty((len(seeds), self.n_params), dtype=np.float32)
        for k, seed in enumerate(seeds):
            rng = np.random.default_rng(seed)
            row = out[k]
            for (i, o), (w_at, b_at) in zip(self.layer_shapes, self.offsets):
                bound = 1.0 / math.sqrt(i)
                row[w_at : w_at + i * o] = rng.uniform(-bound, bound, size=i * o)
                if b_at is not None:
                    row[b_at : b_at + o] = rng.uniform(-bound, bound, size=o)
        return out

    def unflatten(self, params: "torch.Tensor") -> list[tuple["torch.Tensor", "torch.Tensor | None"]]:
        """Views (W of shape (K, in, out), b of shape (K, 1, out) or None) of a (K, p) tensor."""
        K = params.shape[0]
        layers = []
        for (i, o), (w_at, b_at) in zip(self.layer_shapes, self.offsets):
            W = params[:, w_at : w_at + i * o].reshape(K, i, o)
            b = None if b_at is None else params[:, b_at : b_at + o].reshape(K, 1, o)
            layers.append((W, b))
        return layers

    # ---------------------------------------------------------------- forward
    def logits(self, params: "torch.Tensor", x: "torch.Tensor") -> "torch.Tensor":
        """Pre-head outputs o of K members on their own inputs: params (K, p), x (K, n, d) -> (K, n).

        Plain differentiable torch (autograd works through it); the trainer uses its own
        hand-written backward and is checked against this.
        """
        import torch

        h = x
        layers = self.unflatten(params)
        for l, (W, b) in enumerate(layers):
            h = torch.bmm(h, W) if b is None else torch.baddbmm(b, h, W)
            if l < len(layers) - 1:
                h = self.activate(h)
        return h[..., 0]

    def apply(self, params: "torch.Tensor", x: "torch.Tensor") -> "torch.Tensor":
        """D_v(x) for K members: params (K, p), x (K, n, d) -> (K, n)."""
        return self.apply_head(self.logits(params, x))

    def activate(self, z: "torch.Tensor") -> "torch.Tensor":
        """The hidden nonlinearity a(z)."""
        import torch

        if self.activation == "relu":
            return torch.relu(z)
        if self.activation == "leaky_relu":
            return torch.nn.functional.leaky_relu(z, self.negative_slope)
        return torch.tanh(z)

    def apply_head(self, o: "torch.Tensor") -> "torch.Tensor":
        """The output head applied to pre-head outputs o."""
        import torch

        if self.head == "sigmoid":
            return torch.sigmoid(o)
        if self.head == "tanh":
            return torch.tanh(o)
        return o

    def to_module(self, params_row: Any) -> "torch.nn.Module":
        """One member as an ordinary ``torch.nn.Sequential`` (for the reference loop and reuse).

        >>> import torch
        >>> fam = MLPFamily(d=2, hidden=(3,))
        >>> v = fam.init([0])
        >>> x = torch.ones(1, 5, 2)
        >>> bool(torch.allclose(fam.to_module(v[0])(x[0])[:, 0], fam.apply(torch.from_numpy(v), x)[0]))
        True
        """
        import torch
        from torch import nn

        row = torch.as_tensor(np.asarray(params_row, dtype=np.float32)).reshape(1, -1)
        if row.shape[1] != self.n_params:
            raise ValueError(f"params_row must have p = {self.n_params} entries; got {row.shape[1]}")
        mods: list[nn.Module] = []
        layers = self.unflatten(row)
        for l, ((i, o), (W, b)) in enumerate(zip(self.layer_shapes, layers)):
            lin = nn.Linear(i, o, bias=self.bias)
            with torch.no_grad():
                lin.weight.copy_(W[0].T)
                if b is not None:
                    lin.bias.copy_(b[0, 0])
            mods.append(lin)
            if l < len(layers) - 1:
                mods.append(
                    {"relu": nn.ReLU(), "leaky_relu": nn.LeakyReLU(self.negative_slope), "tanh": nn.Tanh()}[self.activation]
                )
        if self.head != "linear":
            mods.append(nn.Sigmoid() if self.head == "sigmoid" else nn.Tanh())
        return nn.Sequential(*mods)


def linear_family(d: int, *, bias: bool = True) -> MLPFamily:
    r"""The linear critics {x -> w.x + b : ||w||_2 <= 1} (an IPM class; with phi(t) = t its
    distance is sup_{||w||<=1} w.(E x - E y) = ||E x - E y||).

    >>> linear_family(3).n_params
    4
    """
    return MLPFamily(d=d, hidden=(), head="linear", bias=bias, spectral_norm=True)


def _as_seeds(seeds: Any) -> list[int]:
    if isinstance(seeds, (int, np.integer)) or not isinstance(seeds, (Sequence, np.ndarray)):
        raise TypeError(f"seeds must be a sequence of non-negative ints (one per member); got {seeds!r}")
    out = []
    for s in seeds:
        if isinstance(s, bool) or not isinstance(s, (int, np.integer)) or s < 0:
            raise ValueError(f"every seed must be a non-negative int; got {s!r}")
        out.append(int(s))
    if not out:
        raise ValueError("seeds must contain at least one seed (K >= 1); got an empty sequence")
    return out
