r"""The ensemble engine: train K independent discriminators of one family at once.

Each member k maximises the objective of the neural-net distance (Arora et al. 2017,
Definition 2) on its own samples x_k (m points) and y_k (n points):

.. math::
    J_k(v) = \frac1m\sum_{i} \phi(D_v(x_{k,i})) + \frac1n\sum_{j} \phi(1 - D_v(y_{k,j})) - 2\phi(1/2)

with Adam (the same arithmetic as ``torch.optim.Adam``), full batch or minibatches.
With phi(t) = t, J_k = mean D(x_k) - mean D(y_k), the IPM form; with a sigmoid head,
1 - D(y) is computed as sigmoid(-o), with no cancellation.

How it is fast (measurements in ``benchmarks/ensemble.py``):

- parameters of a chunk of members live in one flat buffer, layer-major, so that layer l
  of all members is one contiguous (K, in, out) tensor; every hidden layer of the forward
  pass and of the hand-written backward pass is one batched matmul (``torch.baddbmm``)
  over the members (the single-output layer is a multiply-and-sum), and Adam is a
  handful of elementwise ops over the whole buffer;
- no autograd graph and no allocation in the loop: activations, gradients and Adam
  moments are preallocated and written with ``out=``;
- K is split into chunks of members, and the 2m rows of a member into blocks, so that
  the activations in flight fit the CPU cache (:func:`plan_chunks`); on a GPU a chunk
  is as many members as fit comfortably in free memory. A chunk trains all its steps
  before the next chunk starts: members are independent, so this changes nothing but
  speed;
- on a CPU, one worker thread per core trains its own chunks with single-threaded ops
  (torch releases the GIL inside ops): no fork-join barrier per op, which matters for
  the many small ops of small members and when other processes share the cores. A plan
  with one worker, or with a single chunk, runs in the calling thread with torch's
  intra-op threads set to 1 for the call (restored after): the same arithmetic as on a
  worker, and no collapse under load (measured on the shared 2-core machine, K = 32,
  d = 16, hidden (32, 32), m = 256, 200 steps, one member per chunk and one worker:
  17-79 s with 2 OpenMP threads per op, 1.2-2.1 s with one, at load average 3-5.5).

Members are independent and their arithmetic does not depend on their neighbours, so a
member trained inside a batch gives the same values as trained alone up to float32
rounding of differently blocked matmuls (tested). Every chunk is computed the same way
whichever thread runs it, so for a given plan the results do not depend on the number of
workers, bit for bit. With one member per chunk (``plan="per_member"``,
:func:`per_member_plan`) a member's arithmetic does not depend on its batch mates at all:
it gives bit for bit what it gives trained alone.
"""

from __future__ import annotations

import contextlib
import math
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Sequence

import numpy as np
import torch

from gangen._validation import (
    as_batched_samples,
    as_samples,
    as_weights,
    check_choice,
    check_positive_float,
    check_positive_int,
    check_same_dim,
)
from gangen.distances.measuring import Measuring, get_measuring
from gangen.nn import native
from gangen.nn.families import MLPFamily, _as_seeds

__all__ = [
    "EnsembleResult",
    "ChunkPlan",
    "train_ensemble",
    "train_ensemble_stream",
    "evaluate_ensemble",
    "value_and_grad",
    "plan_chunks",
    "per_member_plan",
    "check_plan",
    "resolve_device",
    "PLAN_NAMES",
    "DEFAULT_CPU_CACHE_BYTES",
    "NATIVE_CPU_CACHE_BYTES",
]

#: On a CPU with torch's products, the bytes of activations (and their gradients) one
#: forward/backward pass may touch. Measured on a 2-core AMD EPYC (2 MiB L2 per core, 32 MiB
#: L3), one core per worker, d = 16, m = 4096: width 64 peaked at 2048 rows (2.2 MB), width 32
#: at 4096 rows (2.4 MB), 10-15% slower at twice or half that; K = 64, m = 256: flat from 2 to 8 MB.
DEFAULT_CPU_CACHE_BYTES = 5 * 2**19  # 2.5 MiB

#: The same budget with the AVX-512 kernels (:mod:`gangen.nn.native`), whose products are
#: 2.3x faster, so that the fixed cost per call weighs more and larger chunks pay. Measured on
#: the same machine (K = 64, d = 16, 50 steps, hidden (32, 32), (64, 64), (32, 64), m = 64 to
#: 4096, budgets 1.25 to 20 MiB): 10 MiB was the fastest or within 4% of it in 10 of 12
#: configurations (32x64 at m = 256 and 4096: 15% and 10% under their best, at 20 MiB; in an
#: earlier run of the same sweep 10 MiB was within 6% in 11 of 12); 2.5 MiB was 4-63% slower.
NATIVE_CPU_CACHE_BYTES = 10 * 2**20

#: Power iterations that initialise sigma(W) of spectrally normalised layers before training
#: (as torch.nn.utils.parametrizations.spectral_norm does); then one per step.
SPECTRAL_INIT_ITERATIONS = 15

#: On a GPU, the fraction of free memory one chunk may use.
DEFAULT_GPU_MEMORY_FRACTION = 0.5

#: Named plans accepted wherever a ``plan`` is: ``"auto"`` (the same as None: :func:`plan_chunks`)
#: and ``"per_member"`` (:func:`per_member_plan`).
PLAN_NAMES = ("auto", "per_member")


# --------------------------------------------------------------------------- results
@dataclass(frozen=True, eq=False)
class EnsembleResult:
    """What :func:`train_ensemble` returns.

    Attributes
    ----------
    values : ndarray, shape (K,), float64
        J_k of each trained member on its own training samples (the final iterate).
    params : ndarray, shape (K, p), float32
        Trained parameters, rows laid out as in :class:`~gangen.nn.families.MLPFamily`.
    family, phi : the discriminator family and measuring function.
    seeds : member initialisation (and minibatch-order) seeds.
    steps, lr, betas, adam_eps, batch_size : the optimisation budget (batch_size None = full batch).
    """

    values: np.ndarray
    params: np.ndarray
    family: MLPFamily
    phi: Measuring
    seeds: tuple[int, ...]
    steps: int
    lr: float
    betas: tuple[float, float]
    adam_eps: float
    batch_size: int | None


@dataclass(frozen=True)
class ChunkPlan:
    """How the engine splits work: ``members`` trained together, ``rows`` per forward/backward
    block, and ``workers`` threads each training its own chunks (CPU; every op of a worker then
    runs on one core)."""

    members: int
    rows: int
    workers: int = 1

    def __post_init__(self) -> None:
        check_positive_int(self.members, "ChunkPlan.members")
        check_positive_int(self.rows, "ChunkPlan.rows")
        check_positive_int(self.workers, "ChunkPlan.workers")


# --------------------------------------------------------------------------- devices and plans
def resolve_device(device: Any = "auto") -> torch.device:
    """``"auto"`` -> CUDA when available, else CPU; otherwise ``torch.device(device)``.

    >>> resolve_device("cpu")
    device(type='cpu')
    """
    if isinstance(device, torch.device):
        return device
    if not isinstance(device, str):
        raise TypeError(f"device must be 'auto', 'cpu', 'cuda[:i]' or a torch.device; got {device!r}")
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except RuntimeError as exc:
        raise ValueError(f"device must be 'auto', 'cpu', 'cuda[:i]' or a torch.device; got {device!r}") from exc
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {device!r} requested but CUDA is not available; use 'auto' or 'cpu'")
    return dev


def _cpu_workers(cpu_workers: int | None) -> int:
    """Worker threads of a CPU plan: ``cpu_workers``, default ``torch.get_num_threads()``."""
    return check_positive_int(torch.get_num_threads() if cpu_workers is None else cpu_workers, "cpu_workers")


def _bytes_per_row(family: MLPFamily) -> int:
    # the input row, every activation and its gradient, the output and its gradient (float32)
    return 4 * (family.d + 2 * sum(family.hidden) + 4)


def plan_chunks(
    family: MLPFamily,
    n_members: int,
    rows_per_member: int,
    device: Any = "cpu",
    *,
    cpu_cache_bytes: int | None = None,
    cpu_workers: int | None = None,
    gpu_memory_fraction: float = DEFAULT_GPU_MEMORY_FRACTION,
) -> ChunkPlan:
    """Split K members with ``rows_per_member`` rows each (m + n, or 2 * batch_size) into chunks.

    CPU: as many (member, row) pairs per pass as keep the activations of a pass within
    ``cpu_cache_bytes`` (default :data:`NATIVE_CPU_CACHE_BYTES` when the AVX-512 kernels
    run, else :data:`DEFAULT_CPU_CACHE_BYTES`; 4 bytes per float, the input row, every hidden activation and
    its gradient): several small members per chunk, or one large member split into equal
    row blocks. ``cpu_workers`` threads (default ``torch.get_num_threads()``) train chunks
    side by side, one core each; K is split into at least that many chunks. GPU: one
    block per member and as many members per chunk as fit in ``gpu_memory_fraction`` of
    the free memory, one worker.

    >>> plan_chunks(MLPFamily(d=16, hidden=(32, 32)), 64, 128, "cpu", cpu_workers=2, cpu_cache_bytes=2**21)
    ChunkPlan(members=27, rows=128, workers=2)
    >>> plan_chunks(MLPFamily(d=16, hidden=(64, 64)), 64, 8192, "cpu", cpu_workers=2, cpu_cache_bytes=2**21)
    ChunkPlan(members=1, rows=1639, workers=2)
    """
    check_positive_int(n_members, "n_members")
    check_positive_int(rows_per_member, "rows_per_member")
    dev = resolve_device(device)
    if dev.type == "cuda":
        free, _ = torch.cuda.mem_get_info(dev)
        per_member = rows_per_member * _bytes_per_row(family) + 4 * 5 * family.n_params
        members = int(max(1, min(n_members, gpu_memory_fraction * free // per_member)))
        return ChunkPlan(members=members, rows=rows_per_member)
    if cpu_cache_bytes is None:
        cpu_cache_bytes = NATIVE_CPU_CACHE_BYTES if native.active() else DEFAULT_CPU_CACHE_BYTES
    rows_in_flight = max(1, check_positive_int(cpu_cache_bytes, "cpu_cache_bytes") // _bytes_per_row(family))
    workers = _cpu_workers(cpu_workers)
    members = max(1, min(-(-n_members // workers), rows_in_flight // rows_per_member))
    rows = rows_per_member if members > 1 else min(rows_per_member, rows_in_flight)
    if members == 1 and rows < rows_per_member:  # equal blocks: ceil(R / blocks)
        n_blocks = -(-rows_per_member // rows)
        rows = -(-rows_per_member // n_blocks)
    return ChunkPlan(members=members, rows=rows, workers=min(workers, -(-n_members // members)))


def per_member_plan(
    family: MLPFamily,
    n_members: int,
    rows_per_member: int,
    device: Any = "cpu",
    *,
    cpu_workers: int | None = None,
    cpu_cache_bytes: int | None = None,
) -> ChunkPlan:
    """One member per chunk, its rows in the blocks :func:`plan_chunks` picks for a member alone.

    A member's arithmetic then depends only on its own data, seed and ``rows_per_member``:
    trained in a batch of K it gives, bit for bit, what it gives trained alone (on the same
    device, with the same torch build; tested on CPU). Slower than the automatic plan for small members
    (more, smaller ops). CPU: ``min(cpu_workers, K)`` worker threads (default
    ``torch.get_num_threads()``); GPU: one worker. ``cpu_cache_bytes``: as in :func:`plan_chunks`.

    >>> per_member_plan(MLPFamily(d=16, hidden=(32, 32)), 64, 512, "cpu", cpu_workers=2)
    ChunkPlan(members=1, rows=512, workers=2)
    >>> per_member_plan(MLPFamily(d=16, hidden=(64, 64)), 3, 8192, "cpu", cpu_workers=4, cpu_cache_bytes=2**21)
    ChunkPlan(members=1, rows=1639, workers=3)
    """
    check_positive_int(n_members, "n_members")
    dev = resolve_device(device)
    rows = plan_chunks(family, 1, rows_per_member, dev, cpu_cache_bytes=cpu_cache_bytes).rows
    if dev.type == "cuda":
        return ChunkPlan(members=1, rows=rows)
    return ChunkPlan(members=1, rows=rows, workers=min(_cpu_workers(cpu_workers), n_members))


def check_plan(plan: Any) -> Any:
    """A ``plan`` argument as given: None, a name of :data:`PLAN_NAMES`, or a ChunkPlan (TypeError / ValueError otherwise).

    >>> check_plan("per_member")
    'per_member'
    """
    if plan is None or isinstance(plan, ChunkPlan):
        return plan
    if not isinstance(plan, str):
        raise TypeError(f"plan must be None, one of {PLAN_NAMES} or a ChunkPlan; got {type(plan).__name__} {plan!r}")
    return check_choice(plan, PLAN_NAMES, "plan")


def _resolve_plan(plan: Any, family: MLPFamily, n_members: int, rows_per_member: int, dev: torch.device) -> ChunkPlan:
    """A ``plan`` argument (see :func:`check_plan`) as a ChunkPlan."""
    plan = check_plan(plan)
    if plan is None or plan == "auto":
        return plan_chunks(family, n_members, rows_per_member, dev)
    if plan == "per_member":
        return per_member_plan(family, n_members, rows_per_member, dev)
    return plan


# --------------------------------------------------------------------------- the batched network
def _layer_views(flat: torch.Tensor, family: MLPFamily, kc: int) -> list[tuple[torch.Tensor, torch.Tensor | None]]:
    """Layer-major views (W (kc, in, out), b (kc, 1, out)) into a flat buffer of kc * p floats."""
    views, pos = [], 0
    for i, o in family.layer_shapes:
        W = flat[pos : pos + kc * i * o].view(kc, i, o)
        pos += kc * i * o
        b = None
        if family.bias:
            b = flat[pos : pos + kc * o].view(kc, 1, o)
            pos += kc * o
        views.append((W, b))
    assert pos == flat.numel()
    return views


def _member_major(views: list[tuple[torch.Tensor, torch.Tensor | None]], family: MLPFamily, kc: int) -> torch.Tensor:
    """Inverse of the layer-major layout: a (kc, p) tensor of member rows."""
    out = torch.empty(kc, family.n_params, device=views[0][0].device)
    for (W, b), (w_at, b_at), (i, o) in zip(views, family.offsets, family.layer_shapes):
        out[:, w_at : w_at + i * o] = W.reshape(kc, i * o)
        if b is not None:
            out[:, b_at : b_at + o] = b.reshape(kc, o)
    return out


def _power_iteration(W: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """One power iteration for sigma(W), W (kc, in, out), updating v (kc, in, 1) in place:
    u = W^T v / |W^T v|, v = W u / |W u|, sigma = |W u| = v^T W u. Returns (u, sigma (kc, 1, 1)).
    (torch.nn.utils.parametrizations.spectral_norm's iteration, with our W = its weight^T.)"""
    u = torch.bmm(W.transpose(1, 2), v)  # (kc, out, 1)
    u.div_(u.norm(dim=1, keepdim=True).clamp_min_(1e-12))
    wu = torch.bmm(W, u)  # (kc, in, 1)
    sigma = wu.norm(dim=1, keepdim=True).clamp_min_(1e-12)
    torch.div(wu, sigma, out=v)
    return u, sigma


class _Net:
    """Parameters and gradients of one chunk of kc members, with the forward and backward passes.

    ``flat`` holds the effective parameters the forward pass uses. With ``train`` and a
    spectrally bounded family, ``raw`` holds the optimised parameters and each step sets the
    effective weights to W / max(1, sigma(W)) (:meth:`_normalise`); otherwise raw is flat.
    """

    def __init__(self, family: MLPFamily, phi: Measuring, params: torch.Tensor, *, train: bool = False) -> None:
        kc, p = params.shape
        assert p == family.n_params
        self.family, self.phi, self.kc = family, phi, kc
        dev = params.device
        self.flat = torch.empty(kc * p, device=dev)
        self.layers = _layer_views(self.flat, family, kc)
        for (W, b), (w_at, b_at), (i, o) in zip(self.layers, family.offsets, family.layer_shapes):
            W.copy_(params[:, w_at : w_at + i * o].view(kc, i, o))
            if b is not None:
                b.copy_(params[:, b_at : b_at + o].view(kc, 1, o))
        self.grad_flat = torch.zeros(kc * p, device=dev)
        self.grads = _layer_views(self.grad_flat, family, kc)
        self.normalised = train and family.spectral_norm
        self.raw = self.flat.clone() if self.normalised else self.flat
        self.raw_layers = _layer_views(self.raw, family, kc)
        if self.normalised:  # power-iteration vectors: a deterministic start, then warm-up iterations
            self.power_v = [torch.full((kc, i, 1), 1.0 / math.sqrt(i), device=dev) for i, _ in family.layer_shapes]
            for (W, _), v in zip(self.raw_layers, self.power_v):
                for _ in range(SPECTRAL_INIT_ITERATIONS):
                    _power_iteration(W, v)
            self.power_u: list[torch.Tensor] = []
            self.sigma: list[torch.Tensor] = []
        self._buffers: dict[int, tuple[list[torch.Tensor], list[torch.Tensor], torch.Tensor, torch.Tensor]] = {}

    # -- buffers: activations (post-nonlinearity) and their gradients, per block size
    def _bufs(self, rows: int) -> tuple[list[torch.Tensor], list[torch.Tensor], torch.Tensor, torch.Tensor]:
        """Per block size: activations, their gradients, dL/do, and a product buffer for the output layer."""
        if rows not in self._buffers:
            dev, kc = self.flat.device, self.kc
            acts = [torch.empty(kc, rows, o, device=dev) for _, o in self.family.layer_shapes]
            dacts = [torch.empty(kc, rows, o, device=dev) for _, o in self.family.layer_shapes[:-1]]
            g = torch.empty(kc, rows, 1, device=dev)
            prod = torch.empty(kc, rows, self.family.layer_shapes[-1][0], device=dev)
            self._buffers[rows] = (acts, dacts, g, prod)
        return self._buffers[rows]

    # -- passes (the products: gangen.nn.native, AVX-512 kernels or torch)
    def forward(self, X: torch.Tensor) -> list[torch.Tensor]:
        """Activations of every layer for X (kc, r, d); the last is the pre-head output o (kc, r, 1)."""
        acts, _, _, prod = self._bufs(X.shape[1])
        h, last = X, len(self.layers) - 1
        fam = self.family
        for l, (W, b) in enumerate(self.layers):
            if l == last:
                native.bmv(h, W, acts[l], bias=b, scratch=prod)
                break
            native.bmm_nn(h, W, acts[l], bias=b, activation=fam.activation, negative_slope=fam.negative_slope)
            h = acts[l]
        return acts

    def output_grad(self, o: torch.Tensor, sign: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        """dL/do for L = -J, rows weighted by ``weight`` (1/m or 1/n) with ``sign`` +1 (x) or -1 (y)."""
        g = self._bufs(o.shape[1])[2]
        head = self.family.head
        if head == "sigmoid":
            t = torch.mul(o, sign, out=g).sigmoid_()  # t = D(x) on x rows, 1 - D(y) = sigmoid(-o) on y rows
            dt = self.phi.derivative(t) * t * (1.0 - t)  # d phi(t) / d(sign * o)
            torch.mul(dt, weight, out=g).neg_().mul_(sign)
        elif head == "tanh":
            t = torch.tanh(o)
            torch.mul(t, t, out=g).sub_(1.0).mul_(weight).mul_(sign)  # -(1 - t^2) * w * sign
        else:
            g.copy_((-weight * sign).expand_as(g))
        return g

    def backward(self, X: torch.Tensor, acts: list[torch.Tensor], g: torch.Tensor, accumulate: bool) -> None:
        """Gradients of L (given dL/do = g) into the flat gradient buffer, added when ``accumulate``."""
        dacts = self._bufs(X.shape[1])[1]
        delta, last = g, len(self.layers) - 1
        fam = self.family
        for l in range(last, -1, -1):
            inp = X if l == 0 else acts[l - 1]
            gW, gb = self.grads[l]
            if l == last:  # (kc, 1, r) @ (kc, r, in): the same floats as gW (kc, in, 1)
                native.bmm_tn(delta, inp, gW.view(self.kc, 1, -1), accumulate=accumulate)
                if gb is not None and accumulate:
                    gb.add_(delta.sum(dim=1, keepdim=True))
                elif gb is not None:
                    torch.sum(delta, dim=1, keepdim=True, out=gb)
            else:
                native.bmm_tn(inp, delta, gW, accumulate=accumulate, bias_grad=gb)
            if l == 0:
                break
            d_prev = dacts[l - 1]  # dL/d(activation l-1) times its derivative: dL/dz of layer l-1
            native.bmm_nt(delta, self.layers[l][0], d_prev, activation=fam.activation, activation_output=acts[l - 1], negative_slope=fam.negative_slope)
            delta = d_prev

    def gradient(self, blocks: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]) -> None:
        """dL/d(effective parameters), L = -J, summed over row blocks into ``grad_flat``."""
        for b, (X, sign, weight) in enumerate(blocks):
            acts = self.forward(X)
            g = self.output_grad(acts[-1], sign, weight)
            self.backward(X, acts, g, accumulate=b > 0)

    def row_terms(self, o: torch.Tensor, sign: torch.Tensor) -> torch.Tensor:
        """phi(D(x)) - phi(1/2) on x rows and phi(1 - D(y)) - phi(1/2) on y rows, shape (kc, r, 1)."""
        if self.family.head == "sigmoid":
            return self.phi(torch.sigmoid(o * sign)) - self.phi.phi_half
        # phi(t) = t (checked at the boundary): x rows D - 1/2, y rows 1/2 - D
        return sign * (self.family.apply_head(o) - 0.5)

    # -- one optimisation step: constraints, gradient, Adam
    def train_step(self, step: int, blocks: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]], opt: "_Adam") -> None:
        if self.normalised:
            self._normalise()
        self.gradient(blocks)
        if self.normalised:
            self._normalised_grad()
        opt.step(self.raw, self.grad_flat, step)
        if self.family.weight_clip is not None:
            self.raw.clamp_(-self.family.weight_clip, self.family.weight_clip)

    def _normalise(self) -> None:
        """Spectral bound: W_eff = W / max(1, sigma(W)), sigma by one power iteration per step."""
        self.power_u, self.sigma = [], []
        for (W, b), (W_eff, b_eff), v in zip(self.raw_layers, self.layers, self.power_v):
            u, sigma = _power_iteration(W, v)
            torch.div(W, sigma.clamp_min(1.0), out=W_eff)
            if b is not None:
                b_eff.copy_(b)
            self.power_u.append(u)
            self.sigma.append(sigma)

    def _normalised_grad(self) -> None:
        """Chain rule through W_eff = W / max(1, sigma) with sigma = v^T W u (u, v held fixed, as
        torch's spectral_norm does): G = dL/dW_eff passes unchanged where sigma <= 1; where
        sigma > 1, dL/dW = (G - <G, W_eff> v u^T) / sigma."""
        for (G, _), (W_eff, _), u, v, sigma in zip(self.grads, self.layers, self.power_u, self.power_v, self.sigma):
            inner = (G * W_eff).sum(dim=(1, 2), keepdim=True) * (sigma > 1.0)  # (kc, 1, 1)
            G.sub_(inner * torch.bmm(v, u.transpose(1, 2))).div_(sigma.clamp_min(1.0))

    def export(self) -> torch.Tensor:
        """Effective parameters as a (kc, p) tensor of member rows; spectrally bounded
        families get W / max(1, sigma(W)) with the exact sigma (largest singular value)."""
        layers = self.layers
        if self.normalised:
            layers = []
            for W, b in self.raw_layers:
                sigma = torch.linalg.matrix_norm(W, ord=2).clamp_min_(1.0)
                layers.append((W / sigma[:, None, None], b))
        return _member_major(layers, self.family, self.kc)


class _Adam:
    """Adam over one flat buffer: ``torch.optim.Adam``'s arithmetic (lerp, addcmul, addcdiv)."""

    def __init__(self, like: torch.Tensor, lr: float, betas: tuple[float, float], eps: float) -> None:
        self.lr, self.betas, self.eps = lr, betas, eps
        self.exp_avg = torch.zeros_like(like)
        self.exp_avg_sq = torch.zeros_like(like)
        self.denom = torch.empty_like(like)

    def step(self, param: torch.Tensor, grad: torch.Tensor, step: int) -> None:
        """One step minimising (``step`` counts from 1)."""
        native.adam_step(param, grad, self.exp_avg, self.exp_avg_sq, self.denom, step=step, lr=self.lr, betas=self.betas, eps=self.eps)


# --------------------------------------------------------------------------- boundary checks
def _check_phi(phi: Any, family: MLPFamily) -> Measuring:
    """The measuring function, checked against the family's output range."""
    phi = get_measuring(phi)
    if phi.needs_unit_interval and not family.bounded_in_unit_interval:
        raise ValueError(
            f"phi = {phi!r} needs D(x) in [0, 1]: use head='sigmoid' (got head={family.head!r}), "
            "or phi='identity' for a tanh/linear critic"
        )
    return phi


def _check_inputs(
    x: Any, y: Any, family: MLPFamily, phi: Any, names: tuple[str, str] = ("x", "y")
) -> tuple[np.ndarray, np.ndarray, Measuring]:
    if not isinstance(family, MLPFamily):
        raise TypeError(f"family must be an MLPFamily; got {type(family).__name__}")
    phi = _check_phi(phi, family)
    xa = as_batched_samples(x, names[0], dtype=np.float32)
    ya = as_batched_samples(y, names[1], dtype=np.float32)
    check_same_dim(xa, ya, names)
    if xa.shape[2] != family.d:
        raise ValueError(f"samples have dimension d={xa.shape[2]} but the family expects d={family.d}")
    if xa.shape[0] != ya.shape[0]:
        raise ValueError(f"{names[0]} and {names[1]} must hold the same number K of sample sets; got {xa.shape[0]} and {ya.shape[0]}")
    return xa, ya, phi


def _check_params(params: Any, family: MLPFamily, K: int | None = None, name: str = "params") -> np.ndarray:
    arr = np.asarray(params.detach().cpu() if isinstance(params, torch.Tensor) else params, dtype=np.float32)
    if arr.ndim != 2 or arr.shape[1] != family.n_params or (K is not None and arr.shape[0] != K) or arr.shape[0] == 0:
        want = f"({K}, {family.n_params})" if K is not None else f"(K, {family.n_params})"
        raise ValueError(f"{name} must have shape (K, p) = {want}; got {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} must be finite; got NaN or inf entries")
    return arr


def _row_signs(m: int, n: int, dev: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """sign (+1 on the m x rows, -1 on the n y rows) and weight (1/m, 1/n), each (1, m + n, 1)."""
    sign = torch.cat([torch.ones(m, device=dev), -torch.ones(n, device=dev)]).view(1, -1, 1)
    weight = torch.cat([torch.full((m,), 1.0 / m, device=dev), torch.full((n,), 1.0 / n, device=dev)]).view(1, -1, 1)
    return sign, weight


def _blocks(total: int, rows: int) -> list[tuple[int, int]]:
    return [(r, min(r + rows, total)) for r in range(0, total, rows)]


@contextlib.contextmanager
def _one_intra_op_thread(enabled: bool = True) -> Iterator[None]:
    """Within the block, this thread's torch ops run on one core (torch.set_num_threads(1));
    the previous thread count is restored after."""
    n_threads = torch.get_num_threads()
    if not enabled or n_threads == 1:
        yield
        return
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(n_threads)


def _for_each_chunk(K: int, plan: ChunkPlan, work: Callable[[int, int], None], dev: torch.device) -> None:
    """Call work(k0, k1) for the chunks [k0, k1) of ``plan.members`` members; with several
    workers, chunks are shared out among threads that each run torch ops on one core.
    With one worker or one chunk, the calling thread runs them, also with one-core ops on a
    CPU: chunks are independent and each is computed the same way whichever thread takes it."""
    chunks = [(k, min(k + plan.members, K)) for k in range(0, K, plan.members)]
    if plan.workers == 1 or len(chunks) == 1:
        with _one_intra_op_thread(dev.type == "cpu"):
            for k0, k1 in chunks:
                work(k0, k1)
        return
    n_threads = torch.get_num_threads()
    queue = iter(chunks)
    lock = threading.Lock()

    def worker() -> None:
        torch.set_num_threads(1)  # this thread's ops run on one core (OpenMP and MKL settings of this thread)
        while True:
            with lock:
                chunk = next(queue, None)
            if chunk is None:
                return
            work(*chunk)

    with ThreadPoolExecutor(max_workers=plan.workers) as pool:
        futures = [pool.submit(worker) for _ in range(plan.workers)]
        try:
            for f in futures:
                f.result()
        finally:
            torch.set_num_threads(n_threads)  # restores the default that new threads inherit


# --------------------------------------------------------------------------- public API
def train_ensemble(
    x: Any,
    y: Any,
    *,
    family: MLPFamily,
    seeds: Sequence[int],
    phi: Any = "log",
    steps: int = 200,
    lr: float = 1e-3,
    betas: tuple[float, float] = (0.9, 0.999),
    adam_eps: float = 1e-8,
    batch_size: int | None = None,
    data_index: Sequence[int] | None = None,
    init: Any = None,
    device: Any = "auto",
    plan: ChunkPlan | str | None = None,
) -> EnsembleResult:
    r"""Train K = len(seeds) members of ``family`` to maximise J_k (Definition 2), K at once.

    .. math::
        v_k^* \approx \arg\max_v\ \frac1m\sum_i \phi(D_v(x_{k,i})) + \frac1n\sum_j \phi(1 - D_v(y_{k,j})) - 2\phi(1/2)

    Parameters
    ----------
    x, y : array, shape (B, m, d) and (B, n, d)
        B sample sets per side (numpy or torch); member k trains on x[data_index[k]], y[data_index[k]].
    family : MLPFamily
        The discriminator class F (p = ``family.n_params``).
    seeds : sequence of K non-negative ints
        Member k's initialisation (``family.init``) and minibatch order depend on seeds[k] only.
    phi : ``"log"`` | ``"identity"`` | measuring object
        phi(t) = log(delta + (1 - delta) t) needs ``head="sigmoid"``.
    steps, lr, betas, adam_eps : Adam budget (``torch.optim.Adam`` arithmetic).
    batch_size : int or None
        None: full batch. Otherwise each step uses ``batch_size`` rows of each side, drawn
        without replacement, reshuffled per epoch (each side separately; a last partial
        batch of an epoch is dropped so every step sees exactly ``batch_size`` rows).
    data_index : sequence of K ints in [0, B), optional
        Which sample set each member trains on; default ``range(K)`` (then B must be K).
        Restarts are members sharing a sample set.
    init : array (K, p), optional
        Initial parameters instead of ``family.init(seeds)`` (e.g. to continue training).
    device : ``"auto"`` (CUDA if available), ``"cpu"``, ``"cuda"``...
    plan : None, ``"auto"``, ``"per_member"`` or ChunkPlan
        How members are grouped into chunks and rows into blocks. None or ``"auto"``: the
        fastest grouping (:func:`plan_chunks`); a member's result then depends on its batch
        mates at float32 level. ``"per_member"``: one member per chunk (:func:`per_member_plan`),
        so a member gives bit for bit the same result alone or in any batch. A ChunkPlan:
        used as given. Plans agree up to float32 rounding; for a given plan the result does
        not depend on ``plan.workers``.

    Returns
    -------
    EnsembleResult with ``values`` (K,) and ``params`` (K, p). With ``spectral_norm``,
    ``params`` are the effective weights W / max(1, sigma(W)) (exact sigma), so the returned
    members are plain MLPs of the constrained class, and ``values`` are theirs.

    >>> fam = MLPFamily(d=1, hidden=(4,))
    >>> x, y = np.full((1, 8, 1), 1.0), np.full((1, 8, 1), -1.0)
    >>> res = train_ensemble(x, y, family=fam, seeds=[0], steps=300, lr=0.05, device="cpu")
    >>> bool(res.values[0] > 1.0)   # separable: approaches 2 log 2 - 2 log((1+delta)/2) ~ 1.38
    True
    """
    xa, ya, phi = _check_inputs(x, y, family, phi)
    seeds = tuple(_as_seeds(seeds))
    K = len(seeds)
    steps = check_positive_int(steps, "steps")
    lr = check_positive_float(lr, "lr")
    adam_eps = check_positive_float(adam_eps, "adam_eps")
    betas = _check_betas(betas)
    index = _check_data_index(data_index, K, xa.shape[0])
    m, n = xa.shape[1], ya.shape[1]
    if batch_size is not None:
        batch_size = check_positive_int(batch_size, "batch_size")
        if batch_size > min(m, n):
            raise ValueError(f"batch_size must be <= min(m, n) = {min(m, n)}; got {batch_size} (use None for full batch)")
    dev = resolve_device(device)
    rows_per_member = m + n if batch_size is None else 2 * batch_size
    plan = _resolve_plan(plan, family, K, rows_per_member, dev)

    init = family.init(seeds) if init is None else _check_params(init, family, K, "init")
    out_params = np.empty_like(init)
    values = np.empty(K)

    def train_chunk(k0: int, k1: int) -> None:
        members = index[k0:k1]
        xc = torch.from_numpy(xa[members]).to(dev)  # (kc, m, d)
        yc = torch.from_numpy(ya[members]).to(dev)  # (kc, n, d)
        net = _Net(family, phi, torch.from_numpy(init[k0:k1]).to(dev), train=True)
        opt = _Adam(net.raw, lr, betas, adam_eps)
        if batch_size is None:
            _train_full_batch(net, opt, xc, yc, plan.rows, steps)
        else:
            _train_minibatch(net, opt, xc, yc, seeds[k0:k1], batch_size, plan.rows, steps)
        trained = net.export()
        out_params[k0:k1] = trained.cpu().numpy()
        values[k0:k1] = _evaluate_net(_Net(family, phi, trained), xc, yc, plan.rows)

    _for_each_chunk(K, plan, train_chunk, dev)
    return EnsembleResult(
        values=values, params=out_params, family=family, phi=phi, seeds=seeds, steps=steps, lr=lr,
        betas=betas, adam_eps=adam_eps, batch_size=batch_size,
    )


def train_ensemble_stream(
    batches: Callable[[int], tuple[Any, Any, Any]],
    *,
    family: MLPFamily,
    seeds: Sequence[int],
    phi: Any = "log",
    steps: int = 200,
    lr: float = 1e-3,
    betas: tuple[float, float] = (0.9, 0.999),
    adam_eps: float = 1e-8,
    init: Any = None,
    device: Any = "auto",
    rows: int | None = None,
) -> EnsembleResult:
    r"""Train K = len(seeds) members of ``family`` at once on a stream of fresh batches that all
    members share (restarts of one problem, e.g. a best response to a generator mixture).

    At step t, ``batches(t)`` returns ``(x, y, y_weights)``: x (m, d) and y (n, d) (numpy or
    torch), y_weights (n,) non-negative summing to 1, or None for 1/n; every member takes
    one Adam step ascending

    .. math::
        J_t(v) = \frac1m\sum_i \phi(D_v(x_i)) + \sum_j w_j\,\phi(1 - D_v(y_j)) - 2\phi(1/2),

    Definition 2's objective with weighted y rows (a mixture of generators: w_j = w_{u_i}/n_i
    on the rows drawn from component i). The members form one chunk and the steps run in the
    calling thread with one intra-op thread on a CPU (``batches`` is called once per step,
    in order); ``rows`` (default: :func:`plan_chunks`' block for a member alone) splits the
    m + n rows into blocks. Constraints of the family (weight clip, spectral bound) hold
    after every step, as in :func:`train_ensemble`.

    Returns an EnsembleResult whose ``values`` are J of the trained members on the last
    batch, and ``batch_size`` None.

    >>> fam = MLPFamily(d=1, hidden=(4,))
    >>> batch = lambda t: (np.full((8, 1), 1.0), np.full((8, 1), -1.0), None)
    >>> res = train_ensemble_stream(batch, family=fam, seeds=[0, 1], steps=300, lr=0.05, device="cpu")
    >>> bool(np.all(res.values > 1.0))   # the separable problem of train_ensemble's example
    True
    """
    if not callable(batches):
        raise TypeError(f"batches must be a callable step -> (x, y, y_weights); got {type(batches).__name__}")
    if not isinstance(family, MLPFamily):
        raise TypeError(f"family must be an MLPFamily; got {type(family).__name__}")
    phi = _check_phi(phi, family)
    seeds = tuple(_as_seeds(seeds))
    K = len(seeds)
    steps = check_positive_int(steps, "steps")
    lr = check_positive_float(lr, "lr")
    adam_eps = check_positive_float(adam_eps, "adam_eps")
    betas = _check_betas(betas)
    dev = resolve_device(device)
    init = family.init(seeds) if init is None else _check_params(init, family, K, "init")
    net = _Net(family, phi, torch.from_numpy(init).to(dev), train=True)
    opt = _Adam(net.raw, lr, betas, adam_eps)
    if rows is not None:
        check_positive_int(rows, "rows")
    block_rows: dict[int, int] = {}  # rows per block for each batch size m + n met

    def block_for(total: int) -> int:
        if rows is not None:
            return rows
        if total not in block_rows:
            block_rows[total] = plan_chunks(family, 1, total, dev).rows
        return block_rows[total]

    blocks: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = []
    with _one_intra_op_thread(dev.type == "cpu"):
        for step in range(1, steps + 1):
            blocks = _stream_blocks(batches(step), family, K, dev, block_for, step)
            net.train_step(step, blocks, opt)
        trained = net.export()
        values = _blocks_value(_Net(family, phi, trained), blocks)
    return EnsembleResult(
        values=values, params=trained.cpu().numpy(), family=family, phi=phi, seeds=seeds, steps=steps,
        lr=lr, betas=betas, adam_eps=adam_eps, batch_size=None,
    )


def _stream_blocks(
    batch: Any, family: MLPFamily, K: int, dev: torch.device, block_for: Callable[[int], int], step: int
) -> list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    """One step's (X (K, r, d) shared by the members, sign, weight) blocks from batches(step)'s output."""
    if not isinstance(batch, tuple) or len(batch) != 3:
        raise TypeError(f"batches({step}) must return a tuple (x, y, y_weights); got {type(batch).__name__}")
    x, y, w = (t.detach().cpu().numpy() if isinstance(t, torch.Tensor) else t for t in batch)
    xa = as_samples(x, f"batches({step})[0] (x)", dtype=np.float32)
    ya = as_samples(y, f"batches({step})[1] (y)", dtype=np.float32)
    check_same_dim(xa, ya, ("x", "y"))
    if xa.shape[1] != family.d:
        raise ValueError(f"batches({step}) gave samples of dimension d={xa.shape[1]} but the family expects d={family.d}")
    m, n = xa.shape[0], ya.shape[0]
    wy = as_weights(w, n, f"batches({step})[2] (y_weights)")  # None: 1/n
    data = torch.from_numpy(np.concatenate([xa, ya])).to(dev)
    sign, weight = _row_signs(m, n, dev)
    weight[0, m:, 0] = torch.from_numpy(wy.astype(np.float32)).to(dev)
    block = block_for(m + n)
    return [
        (data[r0:r1].unsqueeze(0).expand(K, -1, -1), sign[:, r0:r1].contiguous(), weight[:, r0:r1].contiguous())
        for r0, r1 in _blocks(m + n, block)
    ]


def evaluate_ensemble(
    params: Any,
    x: Any,
    y: Any,
    *,
    family: MLPFamily,
    phi: Any = "log",
    data_index: Sequence[int] | None = None,
    device: Any = "auto",
    plan: ChunkPlan | str | None = None,
) -> np.ndarray:
    r"""J_k of K given members on other data (e.g. held-out samples), without training.

    .. math::
        J_k = \frac1m\sum_i \phi(D_{v_k}(x_{k,i})) + \frac1n\sum_j \phi(1 - D_{v_k}(y_{k,j})) - 2\phi(1/2)

    params : (K, p); x, y : (B, m, d), (B, n, d) with member k on set data_index[k]
    (default: B = K, member k on set k); ``plan`` as in :func:`train_ensemble`.
    Returns float64 array (K,). Sums in float64.

    >>> fam = MLPFamily(d=1, hidden=())
    >>> evaluate_ensemble(np.zeros((1, 2)), np.ones((1, 3, 1)), np.ones((1, 3, 1)), family=fam, device="cpu")
    array([0.])
    """
    xa, ya, phi = _check_inputs(x, y, family, phi)
    arr = _check_params(params, family)
    K = arr.shape[0]
    index = _check_data_index(data_index, K, xa.shape[0])
    dev = resolve_device(device)
    plan = _resolve_plan(plan, family, K, xa.shape[1] + ya.shape[1], dev)
    values = np.empty(K)

    def evaluate_chunk(k0: int, k1: int) -> None:
        members = index[k0:k1]
        net = _Net(family, phi, torch.from_numpy(arr[k0:k1]).to(dev))
        values[k0:k1] = _evaluate_net(net, torch.from_numpy(xa[members]).to(dev), torch.from_numpy(ya[members]).to(dev), plan.rows)

    _for_each_chunk(K, plan, evaluate_chunk, dev)
    return values


def value_and_grad(
    params: Any,
    x: Any,
    y: Any,
    *,
    family: MLPFamily,
    phi: Any = "log",
    device: Any = "auto",
    plan: ChunkPlan | str | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    r"""J_k and its gradient dJ_k/dv_k by the engine's hand-written backward pass.

    params (K, p), x (K, m, d), y (K, n, d) -> (values (K,) float64, grads (K, p) float32).
    The trainer ascends exactly this gradient; tests check it against autograd. All K
    members form one chunk; of ``plan`` only the row block size is used.

    >>> fam = MLPFamily(d=1, hidden=(), head="linear")
    >>> x, y = np.full((1, 2, 1), 2.0), np.zeros((1, 2, 1))
    >>> val, grad = value_and_grad(np.array([[1.0, 0.0]]), x, y, family=fam, phi="identity", device="cpu")
    >>> val.tolist(), grad.tolist()   # J = w * (2 - 0); dJ/dw = 2, dJ/db = 0
    ([2.0], [[2.0, 0.0]])
    """
    xa, ya, phi = _check_inputs(x, y, family, phi)
    K = xa.shape[0]
    arr = _check_params(params, family, K)
    dev = resolve_device(device)
    rows = _resolve_plan(plan, family, 1, xa.shape[1] + ya.shape[1], dev).rows
    with _one_intra_op_thread(dev.type == "cpu"):
        net = _Net(family, phi, torch.from_numpy(arr).to(dev))
        xc, yc = torch.from_numpy(xa).to(dev), torch.from_numpy(ya).to(dev)
        net.gradient(_full_blocks(xc, yc, rows))
        values = _evaluate_net(net, xc, yc, rows)
        grads = (-_member_major(net.grads, family, K)).cpu().numpy()
    return values, grads


# --------------------------------------------------------------------------- training loops
def _full_blocks(xc: torch.Tensor, yc: torch.Tensor, rows: int) -> list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    """(X block (kc, r, d) contiguous, sign (1, r, 1), weight (1, r, 1)) over the m + n rows of both sides."""
    m, n = xc.shape[1], yc.shape[1]
    data = torch.cat([xc, yc], dim=1)  # (kc, m + n, d)
    sign, weight = _row_signs(m, n, xc.device)
    return [
        (data[:, r0:r1].contiguous(), sign[:, r0:r1].contiguous(), weight[:, r0:r1].contiguous())
        for r0, r1 in _blocks(m + n, rows)
    ]


def _train_full_batch(net: _Net, opt: _Adam, xc: torch.Tensor, yc: torch.Tensor, rows: int, steps: int) -> None:
    blocks = _full_blocks(xc, yc, rows)
    for step in range(1, steps + 1):
        net.train_step(step, blocks, opt)


class _Shuffler:
    """Per-member minibatch indices: a fresh permutation of each side per epoch, from the member's seed."""

    def __init__(self, seeds: Sequence[int], size: int, batch: int) -> None:
        self.rngs = [np.random.default_rng([s, 1]) for s in seeds]  # stream 1; stream 0 (seed alone) is the init
        self.size, self.batch = size, batch
        self.per_epoch = size // batch
        self.cursor = self.per_epoch  # forces a shuffle on the first call
        self.perms = np.empty((len(seeds), size), dtype=np.int64)

    def next(self) -> np.ndarray:
        if self.cursor == self.per_epoch:
            for k, rng in enumerate(self.rngs):
                self.perms[k] = rng.permutation(self.size)
            self.cursor = 0
        c = self.cursor * self.batch
        self.cursor += 1
        return self.perms[:, c : c + self.batch]


def _train_minibatch(
    net: _Net, opt: _Adam, xc: torch.Tensor, yc: torch.Tensor, seeds: Sequence[int], batch: int, rows: int, steps: int
) -> None:
    m = xc.shape[1]
    data = torch.cat([xc, yc], dim=1)  # (kc, m + n, d)
    kc, d, dev = data.shape[0], data.shape[2], data.device
    sign, weight = _row_signs(batch, batch, dev)
    sx, sy = _Shuffler(seeds, m, batch), _Shuffler(seeds, yc.shape[1], batch)
    spans = _blocks(2 * batch, rows)
    X = [torch.empty(kc, r1 - r0, d, device=dev) for r0, r1 in spans]
    signs = [sign[:, r0:r1].contiguous() for r0, r1 in spans]
    weights = [weight[:, r0:r1].contiguous() for r0, r1 in spans]
    for step in range(1, steps + 1):
        idx = np.concatenate([sx.next(), sy.next() + m], axis=1)  # (kc, 2 batch) rows of data
        idx_t = torch.from_numpy(idx).to(dev)
        for b, (r0, r1) in enumerate(spans):
            torch.gather(data, 1, idx_t[:, r0:r1, None].expand(kc, r1 - r0, d), out=X[b])
        net.train_step(step, list(zip(X, signs, weights)), opt)


def _evaluate_net(net: _Net, xc: torch.Tensor, yc: torch.Tensor, rows: int) -> np.ndarray:
    return _blocks_value(net, _full_blocks(xc, yc, rows))


def _blocks_value(net: _Net, blocks: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]) -> np.ndarray:
    """J of every member of ``net`` (float64, (kc,)): the weighted row terms summed over the blocks."""
    total = torch.zeros(net.kc, dtype=torch.float64, device=net.flat.device)
    for X, sign, weight in blocks:
        total += (net.row_terms(net.forward(X)[-1], sign).double() * weight.double()).sum(dim=(1, 2))
    return total.cpu().numpy()


def _check_betas(betas: Any) -> tuple[float, float]:
    if not isinstance(betas, (tuple, list)) or len(betas) != 2:
        raise TypeError(f"betas must be a pair (beta1, beta2); got {betas!r}")
    out = []
    for name, b in zip(("beta1", "beta2"), betas):
        if isinstance(b, bool) or not isinstance(b, (int, float)) or not (0.0 <= b < 1.0):
            raise ValueError(f"{name} must lie in [0, 1); got {b!r}")
        out.append(float(b))
    return out[0], out[1]


def _check_data_index(data_index: Any, K: int, B: int) -> np.ndarray:
    if data_index is None:
        if B != K:
            raise ValueError(f"without data_index, x and y must hold one sample set per member: K = {K} seeds but {B} sets")
        return np.arange(K)
    idx = np.asarray(data_index)
    if idx.shape != (K,) or not np.issubdtype(idx.dtype, np.integer):
        raise ValueError(f"data_index must be K = {K} integers; got {data_index!r}")
    if idx.min() < 0 or idx.max() >= B:
        raise ValueError(f"data_index entries must lie in [0, {B}); got range [{idx.min()}, {idx.max()}]")
    return idx.astype(np.int64)
