r"""A mixture of T players of one family with softmax mixture weights (MIX+GAN, Section 5).

.. math::
    w = \mathrm{softmax}(\alpha),\qquad
    R_{ent}(w) = -\frac{1}{T}\sum_{i=1}^{T}\log w_i

The T players (generators u_1..u_T or discriminators v_1..v_T) have their own
parameters, stacked along a leading axis of length T with
:func:`torch.func.stack_module_state`, and run in one vectorised pass
(:func:`torch.func.vmap` over :func:`torch.func.functional_call`); this works for any
player module (MLP or DCGAN). The logits alpha start at 0 (uniform weights). R_ent is
minimised (value log T) at the uniform weights; MIX+GAN adds it, times a coefficient,
to each side's own minimised loss.

Shapes: T components; inputs with a leading component axis are (T, n, ...); "groups"
are S separate batches stacked as (S, n, ...), each evaluated as its own batch (this
matters for batch normalisation).
"""

from __future__ import annotations

import copy
from typing import Any, Callable, Sequence

import numpy as np
import torch
from torch import nn
from torch.func import functional_call, stack_module_state, vmap

from gangen._validation import check_nonneg_int, check_positive_int
from gangen.samplers import as_rng

__all__ = ["Mixture", "entropy_regularizer", "build_mixture", "torch_generator"]

SeedLike = int | np.random.Generator | None


def entropy_regularizer(logits: torch.Tensor) -> torch.Tensor:
    r"""R_ent = -(1/T) sum_i log w_i with w = softmax(logits), a scalar tensor.

    Computed with ``log_softmax`` (exact; the authors' Theano code uses
    ``log(w + 1e-6)``, which differs only when some w_i is below about 1e-4).
    Its minimum, log T, is reached at the uniform weights.

    >>> round(float(entropy_regularizer(torch.zeros(4))), 6)   # log 4
    1.386294
    """
    return -torch.log_softmax(logits, dim=0).mean()


def torch_generator(seed: SeedLike) -> torch.Generator:
    """A CPU ``torch.Generator`` seeded from an int, a numpy Generator (one draw) or None (fresh entropy)."""
    if isinstance(seed, np.random.Generator):
        seed = int(seed.integers(0, 2**63 - 1))
    elif seed is None:
        seed = int(np.random.default_rng().integers(0, 2**63 - 1))
    elif isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise TypeError(f"seed must be None, an int or a numpy Generator; got {type(seed).__name__}")
    return torch.Generator().manual_seed(int(seed))


class Mixture(nn.Module):
    """T players of one family, parameters stacked along axis 0, weights softmax(logits).

    Parameters
    ----------
    players : sequence of nn.Module
        T >= 1 modules of identical structure (same parameter names and shapes). Their
        current parameters are copied; the modules themselves are not kept.

    Attributes
    ----------
    logits : nn.Parameter, shape (T,)
        The mixture logits alpha, initialised to 0 (uniform weights).
    stacked : nn.ParameterList
        Player parameters, each of shape (T, *shape of the player's parameter).

    >>> mix = Mixture([nn.Linear(2, 1) for _ in range(3)])
    >>> mix.weights().tolist()
    [0.333..., 0.333..., 0.333...]
    >>> tuple(mix(torch.zeros(4, 2)).shape)   # every component on the same batch: (T, n, 1)
    (3, 4, 1)
    """

    def __init__(self, players: Sequence[nn.Module]) -> None:
        super().__init__()
        players = list(players)
        if not players:
            raise ValueError("a Mixture needs at least one player; got an empty sequence")
        names = [tuple(n for n, _ in p.named_parameters()) for p in players]
        if any(n != names[0] for n in names):
            raise ValueError("all players of a Mixture must have the same parameter names (one family)")
        params, buffers = stack_module_state(players)
        self._names = list(params)
        self.stacked = nn.ParameterList([nn.Parameter(params[k].detach().clone()) for k in self._names])
        self._buffer_names = list(buffers)
        for i, k in enumerate(self._buffer_names):
            self.register_buffer(f"_buffer_{i}", buffers[k].detach().clone())
        self.logits = nn.Parameter(torch.zeros(len(players), dtype=self.stacked[0].dtype if len(self.stacked) else torch.float32))
        # A structure-only copy for functional_call; kept out of the module tree so that
        # .parameters() and .to() see only the stacked tensors.
        base = copy.deepcopy(players[0]).to("meta")
        object.__setattr__(self, "_base", base)
        self.latent_dim: int | None = getattr(players[0], "latent_dim", None)
        self.num_classes: int = int(getattr(players[0], "num_classes", 0))

    # ------------------------------------------------------------------ weights
    @property
    def n_components(self) -> int:
        """T, the number of players."""
        return int(self.logits.shape[0])

    def weights(self) -> torch.Tensor:
        """w = softmax(logits), shape (T,)."""
        return torch.softmax(self.logits, dim=0)

    def entropy_regularizer(self) -> torch.Tensor:
        """R_ent(w) = -(1/T) sum_i log w_i (see :func:`entropy_regularizer`)."""
        return entropy_regularizer(self.logits)

    def player_parameters(self) -> list[nn.Parameter]:
        """The stacked player parameters (everything but the logits)."""
        return list(self.stacked)

    # ------------------------------------------------------------------ forward
    def _state(self) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
        params = dict(zip(self._names, self.stacked))
        buffers = {k: getattr(self, f"_buffer_{i}") for i, k in enumerate(self._buffer_names)}
        return params, buffers

    def forward(
        self,
        x: torch.Tensor,
        *,
        per_component: bool = False,
        groups: bool = False,
        labels: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Run all T players in one pass.

        Parameters
        ----------
        x : Tensor
            Shape (n, ...) when ``per_component`` is False (every player sees the same
            input) or (T, n, ...) when True (player t sees ``x[t]``). With ``groups``,
            one more axis S follows: (S, n, ...) or (T, S, n, ...), S separate batches.
        labels : Tensor of int, shape (n,), optional
            Class labels for label-conditional players, shared by all players and groups.

        Returns
        -------
        Tensor of shape (T, [S,] n, ...): player t's output on its input.
        """
        kwargs: dict[str, Any] = {} if labels is None else {"labels": labels}
        base = self._base

        def one(p: dict, b: dict, _t: torch.Tensor, xx: torch.Tensor) -> torch.Tensor:
            return functional_call(base, (p, b), (xx,), kwargs)

        f: Callable = one
        if groups:
            f = vmap(f, in_dims=(None, None, None, 0))
        # the (detached) logits ride along as a mapped argument so that players without any
        # parameter or buffer still have an axis of length T to map over
        f = vmap(f, in_dims=(0, 0, 0, 0 if per_component else None))
        params, buffers = self._state()
        if per_component and x.shape[0] != self.n_components:
            raise ValueError(f"per_component input must have a leading axis of length T={self.n_components}; got shape {tuple(x.shape)}")
        return f(params, buffers, self.logits.detach(), x)

    def component(self, t: int) -> nn.Module:
        """A standalone copy of player t (detached parameters), for inspection or export."""
        t = check_nonneg_int(t, "t")
        if t >= self.n_components:
            raise ValueError(f"component index must be < T={self.n_components}; got {t}")
        module = copy.deepcopy(self._base).to_empty(device=self.logits.device)
        params, buffers = self._state()
        state = {k: v[t].detach().clone() for k, v in {**params, **buffers}.items()}
        module.load_state_dict(state, strict=True)
        return module

    @torch.no_grad()
    def clip_(self, c: float) -> None:
        """Clip every player parameter to [-c, c] in place (WGAN weight clipping; logits untouched)."""
        for p in self.stacked:
            p.clamp_(-c, c)

    # ------------------------------------------------------------------ sampling
    def latent(self, n: int, *, generator: torch.Generator, components: int | None = None) -> torch.Tensor:
        """Latent noise z ~ N(0, I), shape (components or T, n, latent_dim), from ``generator``."""
        if self.latent_dim is None:
            raise TypeError("latent noise needs generator players (with a latent_dim attribute)")
        k = self.n_components if components is None else components
        z = torch.randn(k, n, self.latent_dim, generator=generator, dtype=self.logits.dtype)
        return z.to(self.logits.device)

    def draw_components(self, n: int, *, seed: SeedLike = None, group_size: int = 1) -> np.ndarray:
        """Component index of each of n samples: i.i.d. with probabilities w, one draw per group.

        ``group_size=1`` picks a component per sample (the paper's mixture); the authors'
        evaluation code picks one generator per batch of 10 images (``group_size=10``).
        Returns an int array of shape (n,).
        """
        n = check_positive_int(n, "n")
        group_size = check_positive_int(group_size, "group_size")
        rng = as_rng(seed)
        w = self.weights().detach().cpu().double().numpy()
        w = w / w.sum()
        n_groups = -(-n // group_size)
        picks = rng.choice(self.n_components, size=n_groups, p=w)
        return np.repeat(picks, group_size)[:n]

    @torch.no_grad()
    def sample(
        self,
        n: int,
        *,
        seed: SeedLike = None,
        group_size: int = 1,
        labels: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """n samples of the generator mixture: component by weight, then G_t(z), z ~ N(0, I).

        Components are drawn by :meth:`draw_components` (numpy, from ``seed``), then the
        latent noise from a torch generator seeded by the same numpy generator. Each
        component runs once on all samples assigned to it (as one batch). Returns a
        tensor of shape (n, ...) in the order of the draws.
        """
        rng = as_rng(seed)
        comp = self.draw_components(n, seed=rng, group_size=group_size)
        gen = torch_generator(rng)
        z = self.latent(n, generator=gen, components=1)[0]  # (n, k)
        if self.num_classes and labels is None:
            raise ValueError(f"label-conditional generators (num_classes={self.num_classes}) need labels of shape ({n},)")
        out: torch.Tensor | None = None
        params, buffers = self._state()
        for t in np.unique(comp):
            idx = torch.as_tensor(np.flatnonzero(comp == t), device=z.device)
            kwargs = {} if labels is None else {"labels": labels[idx]}
            p_t = {k: v[int(t)] for k, v in params.items()}
            b_t = {k: v[int(t)] for k, v in buffers.items()}
            x_t = functional_call(self._base, (p_t, b_t), (z[idx],), kwargs)
            if out is None:
                out = x_t.new_empty((n, *x_t.shape[1:]))
            out[idx] = x_t
        assert out is not None
        return out


def build_mixture(factory: Callable[[], nn.Module], n_components: int, *, seed: int, dtype: torch.dtype = torch.float32) -> Mixture:
    """A :class:`Mixture` of ``n_components`` players ``factory()``, initialised under ``torch.manual_seed(seed)``.

    The global torch RNG is restored afterwards (``torch.random.fork_rng``), so the
    call has no side effect. Players are built in order 0..T-1 from that one seed: the
    first player equals ``factory()`` built right after ``torch.manual_seed(seed)``.

    >>> a = build_mixture(lambda: nn.Linear(2, 1), 2, seed=0)
    >>> b = build_mixture(lambda: nn.Linear(2, 1), 2, seed=0)
    >>> bool(torch.equal(a.stacked[0], b.stacked[0]))
    True
    """
    n_components = check_positive_int(n_components, "n_components")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(seed))
        players = [factory().to(dtype) for _ in range(n_components)]
    return Mixture(players)
