"""Prototype: the ensemble engine with its matmuls as oneDNN grouped 1x1 convolutions.

Why. On this CPU (AMD EPYC Zen 5, AVX-512) torch's float32 ``mm/bmm/baddbmm`` go to MKL,
which on AMD runs its AVX2 kernels (n = 4096 sgemm: 104-108 GFLOP/s on one core, 209-211
on two), while oneDNN (mkldnn) runs AVX-512 kernels (a 4096-channel 1x1 conv: 213 / 404-407;
``mkldnn_linear``: 223 / 454). A grouped 1x1 convolution over kc groups is kc independent
matmuls, and it runs on oneDNN.

Layout. Activations of a chunk of kc members on a block of r rows are one (r, kc, c)
float32 tensor (rows, then members, then features). Viewed as ``(nb, kc * c, h, w)`` with
nb * h * w = r it is a channels-last image batch with kc groups of c channels, so layer l
of all members is one grouped convolution with weight ``(kc * out, in, 1, 1)`` (member
k's block is its ``nn.Linear`` weight, W^T). Parameters live in one flat buffer,
layer-major (W_1 of all members, b_1, W_2, ...), in this conv layout; Adam is
elementwise, so each parameter sees the engine's arithmetic.

Passes (hand-written, no autograd):

- forward: per hidden layer one ``mkldnn::_convolution_pointwise`` (conv + bias + ReLU in
  one oneDNN primitive; ``fuse=False``: ``aten.mkldnn_convolution`` then ``relu_``); the
  single-output layer as multiply-and-sum (as the engine);
- dL/do from the head and phi (the engine's formula);
- weight gradients: ``aten.convolution_backward`` with output_mask (False, True, False)
  (oneDNN backward-weights), or ``gw="bmm"`` (MKL ``bmm`` on strided views); first layer
  optionally by MKL (``l1="bmm"``); input gradients: a forward grouped conv with the
  transposed weights; bias gradients: sums over rows; Adam: ``torch._fused_adam_`` on the
  flat buffer (the kernel of ``torch.optim.Adam(fused=True)``), or the engine's 5 ops.
- ``train_conv_autograd``: the same grouped convs through ``F.conv2d`` + autograd, for comparison.

Pitfalls found:

- torch sends a 1x1 convolution to its slow im2col path ("Slow2d", 20-40 GFLOP/s) when the
  batch has fewer than 16 images and the calling thread has one OpenMP thread
  (``ConvParams::use_mkldnn``), i.e. always in a one-thread worker. The forward passes call
  ``aten.mkldnn_convolution`` / ``mkldnn::_convolution_pointwise`` directly (no heuristic);
  ``convolution_backward`` gets a view with >= 16 images of ``bwd_w`` (16) pixels each.
- every oneDNN call costs ~26 us (conv) / ~40 us (backward-weights) of primitive-descriptor
  work even on a primitive-cache hit (bmm: ~1 us), which sinks small problems (width 32, m = 64).
- oneDNN backward-weights runs at only 70-120 GFLOP/s on these shapes (forward and
  backward-data: 170-220); MKL bmm gives 75-100 for the same product. It is the bottleneck;
  a forward-conv formulation needs transposed activations, and every transpose we found
  (torch copy, 2-D transpose, oneDNN reorder) costs as much as the product it would save.
- NCHW (plain) layout: oneDNN reorders to nChw16c around each call (~0.4 ms per 2 MB): 20-50 GFLOP/s.
- one worker with 2 OpenMP threads is 0.97x (idle) and ~0.01x (two other busy processes:
  spinning barriers) of two one-thread workers; two workers is the setting to use.

Measured (see the report of this prototype for the full tables): wall clock, 2 workers,
200 steps, K = 64, conv / engine = 1.04-1.25x for width 64, m >= 256 (168 vs 145 GFLOP/s at
m = 256 on the idle machine; 203 vs 162 at m = 4096), 0.8x at width 64, m = 64, and
0.42-0.68x for width 32. One core, CPU time: 1.15x / 1.14x / 1.52x for width 64, m = 256 / 1024 / 4096.
Results: gradients match float64 autograd to float32 rounding (1e-6 relative), except where
a ReLU pre-activation is within rounding of 0 (the engine and nn.Module show the same
1e-4..3e-3 there); after 200 steps max|dJ| vs the engine is 3e-5..4e-3 with ReLU (as
engine vs loop in benchmarks/ensemble.py) and 5e-8 with tanh. Bit-identical when run
twice, with 1 or 2 workers and with other batch mates; not bit-identical across chunk
sizes or row blocks (different oneDNN blockings).

Usage::

    python benchmarks/conv_engine_proto.py check --K 64 --ms 64 256 --threads 1   # agreement, determinism
    python benchmarks/conv_engine_proto.py tune --steps 20 --repeats 3             # chunks x variants x threads
    python benchmarks/conv_engine_proto.py bench --steps 200 --repeats 2           # loop, engine, conv, sgemm baselines
    python benchmarks/conv_engine_proto.py bench --threads 1 --clock cpu           # the same on one core, CPU time
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gangen.distances.measuring import LogMeasuring, get_measuring  # noqa: E402
from gangen.nn.families import MLPFamily  # noqa: E402

aten = torch.ops.aten
CLOCK = time.perf_counter


# --------------------------------------------------------------------------- options
@dataclass(frozen=True)
class ConvOptions:
    """Which kernels the prototype uses, and how work is split.

    ``members``/``rows``/``workers``: members per chunk, rows per forward/backward block,
    worker threads (each with one intra-op thread; 1 = run in the caller). The r rows of a
    block are viewed as ``nb`` images of ``r / (nb * w)`` x ``w`` pixels (channels-last);
    oneDNN picks different kernels/blockings for different geometries, so forward convs
    (``fwd_nb``, ``fwd_w``) and convolution_backward (``bwd_nb``, ``bwd_w``) get their own.
    convolution_backward needs nb >= 16 to stay on oneDNN in a one-thread worker.
    """

    members: int = 16
    rows: int = 1 << 30
    workers: int = 1
    gw: str = "cbw"            # weight gradients of hidden layers 2..L: "cbw" (oneDNN convolution_backward) | "bmm" (MKL)
    l1: str = "conv"           # first layer (d inputs), forward and weight gradient: "conv" (oneDNN) | "bmm" (MKL)
    fwd_nb: int = 1
    fwd_w: int = 1
    bwd_nb: int = 0            # (unused with bwd_w: nb = rows / bwd_w)
    bwd_w: int = 16
    fuse: bool = True          # conv + bias + ReLU in one oneDNN primitive (mkldnn._convolution_pointwise)
    adam: str = "fused"        # "fused" (torch._fused_adam_, one kernel) | "engine" (the engine's lerp/addcmul/addcdiv)


def _geometry(rows: int, nb: int, w: int, need16: bool) -> tuple[int, int]:
    """(nb, w) with nb * h * w = rows. ``need16`` (convolution_backward): images of w pixels,
    w shrunk until there are at least 16 images; nb is then rows / w (h = 1)."""
    if need16:
        while w > 1 and (rows % w or rows // w < 16):
            w //= 2
        return (rows // w, w) if rows // w >= 16 else (rows, 1)
    if rows % (nb * w) == 0:
        return nb, w
    return 1, 1


def _cv(a: torch.Tensor, geo: tuple[int, int]) -> torch.Tensor:
    """(r, kc, c) contiguous -> channels-last (nb, kc*c, r/(nb*w), w) view of the same memory."""
    r, kc, c = a.shape
    nb, w = geo
    return a.view(nb, r // (nb * w), w, kc * c).permute(0, 3, 1, 2)


def _rows(a4: torch.Tensor, kc: int) -> torch.Tensor:
    """Inverse of :func:`_cv` for a channels-last conv output: the (r, kc, c) view."""
    n, C, h, w = a4.shape
    return a4.permute(0, 2, 3, 1).reshape(n * h * w, kc, C // kc)  # a view: the memory is (n, h, w, C)


# --------------------------------------------------------------------------- the batched network
class ConvNet:
    """Parameters, gradients and passes of kc members (conv layout)."""

    def __init__(self, family: MLPFamily, phi, params: np.ndarray, opts: ConvOptions) -> None:
        kc, p = params.shape
        assert p == family.n_params and family.bias and not family.spectral_norm and family.weight_clip is None
        self.family, self.phi, self.kc, self.opts = family, phi, kc, opts
        self.shapes = family.layer_shapes
        self.flat = torch.empty(kc * p)
        self.grad = torch.zeros(kc * p)
        self.W, self.b, self.gW, self.gb = [], [], [], []
        pos = 0
        P = torch.from_numpy(np.ascontiguousarray(params, dtype=np.float32))
        for (i, o), (w_at, b_at) in zip(self.shapes, family.offsets):
            W = self.flat[pos : pos + kc * o * i].view(kc, o, i)  # member k: its nn.Linear weight (out, in)
            W.copy_(P[:, w_at : w_at + i * o].view(kc, i, o).transpose(1, 2))
            self.W.append(W)
            self.gW.append(self.grad[pos : pos + kc * o * i].view(kc, o, i))
            pos += kc * o * i
            b = self.flat[pos : pos + kc * o].view(kc, o)
            b.copy_(P[:, b_at : b_at + o])
            self.b.append(b)
            self.gb.append(self.grad[pos : pos + kc * o].view(kc, o))
            pos += kc * o
        assert pos == kc * p
        # transposed weights (kc, in, out) of hidden layers 2..L, for the input gradients
        self.WT = [torch.empty(kc, i, o) for i, o in self.shapes[1:-1]]
        self.fused = opts.fuse and family.activation == "relu"
        self._bufs: dict[int, dict] = {}
        self.acts: list[torch.Tensor] = []
        self._xm: dict[int, torch.Tensor] = {}

    def member_major(self, X: torch.Tensor) -> torch.Tensor:
        """The (kc, r, d) copy of an input block (kept: inputs do not change during training)."""
        key = X.data_ptr()
        if key not in self._xm:
            self._xm[key] = X.transpose(0, 1).contiguous()
        return self._xm[key]

    def export(self) -> np.ndarray:
        """(kc, p) member rows in the family layout (W (in, out) row-major, b)."""
        out = np.empty((self.kc, self.family.n_params), dtype=np.float32)
        for (i, o), (w_at, b_at), W, b in zip(self.shapes, self.family.offsets, self.W, self.b):
            out[:, w_at : w_at + i * o] = W.transpose(1, 2).reshape(self.kc, i * o).numpy()
            out[:, b_at : b_at + o] = b.numpy()
        return out

    def bufs(self, r: int) -> dict:
        if r not in self._bufs:
            o = self.opts
            self._bufs[r] = {
                "prod": torch.empty(r, self.kc, self.shapes[-1][0]),
                "o": torch.empty(r, self.kc),
                "g": torch.empty(r, self.kc),
                "fwd": _geometry(r, o.fwd_nb, o.fwd_w, False),
                "bwd": _geometry(r, o.bwd_nb, o.bwd_w, True),
            }
        return self._bufs[r]

    # -- activation
    def _act_(self, z: torch.Tensor) -> None:
        a = self.family.activation
        if a == "relu":
            z.relu_()
        elif a == "leaky_relu":
            F.leaky_relu_(z, self.family.negative_slope)
        else:
            z.tanh_()

    def _act_backward_(self, grad: torch.Tensor, a: torch.Tensor) -> None:
        act = self.family.activation
        if act == "relu":
            aten.threshold_backward.grad_input(grad, a, 0.0, grad_input=grad)
        elif act == "leaky_relu":
            aten.leaky_relu_backward.grad_input(grad, a, self.family.negative_slope, True, grad_input=grad)
        else:
            aten.tanh_backward.grad_input(grad, a, grad_input=grad)

    # -- passes
    def forward(self, X: torch.Tensor) -> torch.Tensor:
        """X (r, kc, d) -> pre-head output o (r, kc); hidden activations kept in ``self.acts``."""
        r = X.shape[0]
        B = self.bufs(r)
        kc, geo = self.kc, B["fwd"]
        h = X
        self.acts = []
        for l, (W, b) in enumerate(zip(self.W[:-1], self.b[:-1])):
            if l == 0 and self.opts.l1 == "bmm":  # (kc, r, d) @ (kc, d, h) written into the (r, kc, h) layout
                a = torch.empty(r, kc, W.shape[1])
                torch.baddbmm(b.view(kc, 1, -1), self.member_major(X), W.transpose(1, 2), out=a.transpose(0, 1))
                self._act_(a)
                self.acts.append(a)
                h = a
                continue
            args = (_cv(h, geo), W.view(kc * W.shape[1], -1, 1, 1), b.view(-1), [0, 0], [1, 1], [1, 1], kc)
            if self.fused:
                a = _rows(torch.ops.mkldnn._convolution_pointwise(*args, "relu", [], ""), kc)
            else:
                a = _rows(aten.mkldnn_convolution(*args), kc)
                self._act_(a)
            self.acts.append(a)
            h = a
        w3, b3 = self.W[-1], self.b[-1]  # (kc, 1, in), (kc, 1)
        o = B["o"]
        torch.sum(torch.mul(h, w3.view(1, kc, -1), out=B["prod"]), dim=2, out=o)
        o.add_(b3.view(1, kc))
        return o

    def output_grad(self, o: torch.Tensor, sign: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        """dL/do for L = -J (sign, weight: (r, 1)); the engine's formula."""
        g = self.bufs(o.shape[0])["g"]
        if self.family.head == "sigmoid":
            t = torch.mul(o, sign, out=g).sigmoid_()
            dt = self.phi.derivative(t) * t * (1.0 - t)
            torch.mul(dt, weight, out=g).neg_().mul_(sign)
        elif self.family.head == "tanh":
            t = torch.tanh(o)
            torch.mul(t, t, out=g).sub_(1.0).mul_(weight).mul_(sign)
        else:
            g.copy_((-weight * sign).expand_as(g))
        return g

    def backward(self, X: torch.Tensor, g: torch.Tensor, accumulate: bool) -> None:
        """Gradients of L (dL/do = g) into the flat gradient buffer, added when ``accumulate``."""
        r = X.shape[0]
        B = self.bufs(r)
        kc, gb_, gf = self.kc, B["bwd"], B["fwd"]
        acts = self.acts
        L = len(self.shapes) - 1  # index of the output layer
        a_last = acts[-1] if L > 0 else X
        # output layer: gw[k, j] = sum_r g[r, k] a[r, k, j]; gb[k] = sum_r g[r, k]
        self._store(self.gW[L], torch.mul(a_last, g.unsqueeze(2), out=B["prod"]).sum(0).view(kc, 1, -1), accumulate)
        self._store(self.gb[L], g.sum(0).view(kc, 1), accumulate)
        if L == 0:
            return
        delta = torch.mul(g.unsqueeze(2), self.W[L].view(1, kc, -1))
        self._act_backward_(delta, acts[L - 1])
        for l in range(L - 1, -1, -1):
            inp = X if l == 0 else acts[l - 1]
            i, o_ = self.shapes[l]
            W = self.W[l]
            if (self.opts.l1 if l == 0 else self.opts.gw) == "bmm":
                xm = self.member_major(X) if l == 0 else inp.permute(1, 0, 2)
                if accumulate:
                    self.gW[l].baddbmm_(delta.permute(1, 2, 0), xm)
                else:
                    torch.bmm(delta.permute(1, 2, 0), xm, out=self.gW[l])
            else:
                gw = aten.convolution_backward(
                    _cv(delta, gb_), _cv(inp, gb_), W.view(kc * o_, i, 1, 1), None,
                    [1, 1], [0, 0], [1, 1], False, [0, 0], kc, [False, True, False])[1]
                self._store(self.gW[l], gw.view(kc, o_, i), accumulate)
            self._store(self.gb[l], delta.sum(0), accumulate)
            if l == 0:
                break
            WT = self.WT[l - 1]
            WT.copy_(W.transpose(1, 2))  # (kc, in, out)
            d_prev = _rows(aten.mkldnn_convolution(_cv(delta, gf), WT.view(kc * i, o_, 1, 1), None, [0, 0], [1, 1], [1, 1], kc), kc)
            self._act_backward_(d_prev, acts[l - 1])
            delta = d_prev

    @staticmethod
    def _store(dst: torch.Tensor, src: torch.Tensor, accumulate: bool) -> None:
        if accumulate:
            dst.add_(src)
        else:
            dst.copy_(src)

    def row_terms(self, o: torch.Tensor, sign: torch.Tensor) -> torch.Tensor:
        if self.family.head == "sigmoid":
            return self.phi(torch.sigmoid(o * sign)) - self.phi.phi_half
        return sign * (self.family.apply_head(o) - 0.5)


class Adam:
    """Adam over the flat buffer: the engine's ops (torch.optim.Adam's arithmetic) or torch._fused_adam_."""

    def __init__(self, like: torch.Tensor, lr: float, betas: tuple[float, float], eps: float, kind: str) -> None:
        self.lr, self.betas, self.eps, self.kind = lr, betas, eps, kind
        self.exp_avg = torch.zeros_like(like)
        self.exp_avg_sq = torch.zeros_like(like)
        self.denom = torch.empty_like(like)
        self.step_t = torch.zeros(())

    def step(self, param: torch.Tensor, grad: torch.Tensor, step: int) -> None:
        beta1, beta2 = self.betas
        if self.kind == "fused":
            self.step_t.fill_(float(step))  # (torch.optim.Adam increments its step before the kernel)
            torch._fused_adam_([param], [grad], [self.exp_avg], [self.exp_avg_sq], [], [self.step_t],
                               lr=self.lr, beta1=beta1, beta2=beta2, weight_decay=0.0, eps=self.eps,
                               amsgrad=False, maximize=False)
            return
        self.exp_avg.lerp_(grad, 1 - beta1)
        self.exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
        t = float(step)
        step_size = self.lr / (1 - beta1**t)
        torch.sqrt(self.exp_avg_sq, out=self.denom).div_((1 - beta2**t) ** 0.5).add_(self.eps)
        param.addcdiv_(self.exp_avg, self.denom, value=-step_size)


# --------------------------------------------------------------------------- training
def _blocks_of(xc: np.ndarray, yc: np.ndarray, rows: int):
    """(X (r, kc, d) contiguous, sign (r, 1), weight (r, 1)) over the m + n rows."""
    m, n = xc.shape[1], yc.shape[1]
    data = torch.from_numpy(np.concatenate([xc, yc], axis=1)).permute(1, 0, 2)  # (m + n, kc, d)
    sign = torch.cat([torch.ones(m), -torch.ones(n)]).view(-1, 1)
    weight = torch.cat([torch.full((m,), 1.0 / m), torch.full((n,), 1.0 / n)]).view(-1, 1)
    R = m + n
    nblk = -(-R // min(rows, R))
    size = -(-R // nblk)
    return [
        (data[r0 : r0 + size].contiguous(), sign[r0 : r0 + size].contiguous(), weight[r0 : r0 + size].contiguous())
        for r0 in range(0, R, size)
    ]


def _evaluate(net: ConvNet, blocks) -> np.ndarray:
    total = torch.zeros(net.kc, dtype=torch.float64)
    for X, sign, weight in blocks:
        o = net.forward(X)
        total += (net.row_terms(o, sign).double() * weight.double()).sum(dim=0)
    return total.numpy()


def _for_each_chunk(K: int, members: int, workers: int, work) -> None:
    chunks = [(k, min(k + members, K)) for k in range(0, K, members)]
    if workers == 1 or len(chunks) == 1:
        for c in chunks:
            work(*c)
        return
    n_threads = torch.get_num_threads()
    queue, lock = iter(chunks), threading.Lock()

    def worker() -> None:
        torch.set_num_threads(1)
        while True:
            with lock:
                c = next(queue, None)
            if c is None:
                return
            work(*c)

    with ThreadPoolExecutor(max_workers=workers) as pool:
        futs = [pool.submit(worker) for _ in range(workers)]
        try:
            for f in futs:
                f.result()
        finally:
            torch.set_num_threads(n_threads)


def _train_chunks(init: np.ndarray, opts: ConvOptions, train_chunk) -> tuple[np.ndarray, np.ndarray]:
    """Run ``train_chunk(k0, k1) -> (values, params)`` over the chunks of ``opts``; gather (K,) values and (K, p) params."""
    values, out = np.empty(init.shape[0]), np.empty_like(init)

    def work(k0: int, k1: int) -> None:
        values[k0:k1], out[k0:k1] = train_chunk(k0, k1)

    _for_each_chunk(init.shape[0], opts.members, opts.workers, work)
    return values, out


def train_conv(x, y, *, family: MLPFamily, init: np.ndarray, phi, steps: int, lr: float = 1e-3,
               betas=(0.9, 0.999), eps: float = 1e-8, opts: ConvOptions = ConvOptions()):
    """Full-batch training of K members (x (K, m, d), y (K, n, d), init (K, p)); returns (values (K,), params (K, p))."""
    phi = get_measuring(phi)

    def work(k0: int, k1: int) -> tuple[np.ndarray, np.ndarray]:
        net = ConvNet(family, phi, init[k0:k1], opts)
        blocks = _blocks_of(x[k0:k1], y[k0:k1], opts.rows)
        opt = Adam(net.flat, lr, betas, eps, opts.adam)
        for step in range(1, steps + 1):
            for b, (X, sign, weight) in enumerate(blocks):
                o = net.forward(X)
                g = net.output_grad(o, sign, weight)
                net.backward(X, g, accumulate=b > 0)
            opt.step(net.flat, net.grad, step)
        return _evaluate(net, blocks), net.export()

    return _train_chunks(init, opts, work)


def train_conv_autograd(x, y, *, family: MLPFamily, init: np.ndarray, phi, steps: int, lr: float = 1e-3,
                        betas=(0.9, 0.999), eps: float = 1e-8, opts: ConvOptions = ConvOptions()):
    """The same network as grouped F.conv2d layers, gradients by autograd (one flat leaf tensor)."""
    phi = get_measuring(phi)

    def work(k0: int, k1: int) -> tuple[np.ndarray, np.ndarray]:
        net = ConvNet(family, phi, init[k0:k1], opts)  # for layout and export
        kc = net.kc
        flat = net.flat.clone().requires_grad_(True)
        blocks = _blocks_of(x[k0:k1], y[k0:k1], opts.rows)
        opt = Adam(flat.detach(), lr, betas, eps, opts.adam)
        offsets = []
        pos = 0
        for i, o_ in net.shapes:
            offsets.append((pos, pos + kc * o_ * i, i, o_))
            pos += kc * o_ * i + kc * o_

        def logits(X):
            r = X.shape[0]
            h = _cv(X, _geometry(r, 16, 1, True))
            for l, (a, bpos, i, o_) in enumerate(offsets):
                W = flat[a:bpos].view(kc * o_, i, 1, 1)
                b = flat[bpos : bpos + kc * o_]
                h = F.conv2d(h, W, b, groups=kc)
                if l < len(offsets) - 1:
                    h = net.family.activate(h)
            return h.permute(0, 2, 3, 1).reshape(r, kc)

        for step in range(1, steps + 1):
            flat.grad = None
            loss = 0.0
            for X, sign, weight in blocks:
                o = logits(X)
                t = torch.sigmoid(o * sign)
                loss = loss - (phi(t) * weight).sum()
            loss.backward()
            with torch.no_grad():
                opt.step(flat, flat.grad, step)
        with torch.no_grad():
            net.flat.copy_(flat)
        return _evaluate(net, blocks), net.export()

    return _train_chunks(init, opts, work)


def grad_conv(x, y, *, family: MLPFamily, params: np.ndarray, phi, opts: ConvOptions = ConvOptions()) -> np.ndarray:
    """dJ/dv of K members by the hand-written conv backward, (K, p) in the family layout."""
    net = ConvNet(family, get_measuring(phi), params, opts)
    for b, (X, sign, weight) in enumerate(_blocks_of(x, y, opts.rows)):
        g = net.output_grad(net.forward(X), sign, weight)
        net.backward(X, g, accumulate=b > 0)
    net.flat.copy_(net.grad).neg_()  # export the gradient through the parameter layout
    return net.export()


def grad_float64(x, y, *, family: MLPFamily, params: np.ndarray, phi) -> np.ndarray:
    """dJ/dv by autograd in float64 through family.logits (an independent reference)."""
    v = torch.from_numpy(params).double().requires_grad_(True)
    X, Y = torch.from_numpy(x).double(), torch.from_numpy(y).double()
    J = (phi(torch.sigmoid(family.logits(v, X))).mean(1) + phi(torch.sigmoid(-family.logits(v, Y))).mean(1)).sum()
    J.backward()
    return v.grad.numpy()


def train_modules(family: MLPFamily, phi, init: np.ndarray, x, y, steps: int, lr: float, betas=(0.9, 0.999)) -> np.ndarray:
    """Reference: one nn.Module + torch.optim.Adam per member (as benchmarks/ensemble.py's loop); trained params (K, p)."""
    out = np.empty_like(init)
    for k in range(len(init)):
        net = family.to_module(init[k])
        opt = torch.optim.Adam(net.parameters(), lr=lr, betas=betas)
        X, Y = torch.from_numpy(x[k]), torch.from_numpy(y[k])
        for _ in range(steps):
            opt.zero_grad()
            loss = -(phi(net(X)).mean() + phi(1 - net(Y)).mean())
            loss.backward()
            opt.step()
        row = []
        for mod in net:
            if isinstance(mod, torch.nn.Linear):
                row += [mod.weight.detach().T.reshape(-1), mod.bias.detach().reshape(-1)]
        out[k] = torch.cat(row).numpy()
    return out


# --------------------------------------------------------------------------- helpers for the benchmark
def load() -> str:
    return "%.1f/%.1f" % os.getloadavg()[:2]


def data_for(K: int, m: int, d: int):
    rng = np.random.default_rng(m)  # as benchmarks/ensemble.py
    x = rng.normal(size=(K, m, d)).astype(np.float32)
    y = (rng.normal(size=(K, m, d)) + 0.25).astype(np.float32)
    return x, y


def _best_gflops(f, flops: float, repeats: int) -> float:
    """GFLOP/s of the fastest of ``repeats`` calls of ``f`` (after one warm-up call)."""
    f()
    best = float("inf")
    for _ in range(repeats):
        t0 = CLOCK()
        f()
        best = min(best, CLOCK() - t0)
    return flops / best / 1e9


def benchmark_grid(widths, ms, K: int, d: int):
    """(width, m, family, x, y, seeds, init) for every width (hidden (w, w)) and m, data as benchmarks/ensemble.py."""
    for width in widths:
        family = MLPFamily(d=d, hidden=(width, width))
        for m in ms:
            x, y = data_for(K, m, d)
            seeds = list(range(K))
            yield width, m, family, x, y, seeds, family.init(seeds)


def sgemm_mkl(n: int = 4096, repeats: int = 3) -> float:
    """An n x n x n float32 product through torch.mm (MKL)."""
    a, b, c = torch.randn(n, n), torch.randn(n, n), torch.empty(n, n)
    return _best_gflops(lambda: torch.mm(a, b, out=c), 2 * n**3, repeats)


def sgemm_onednn(n: int = 4096, repeats: int = 3) -> float:
    """An n x n x n float32 product through oneDNN: a 1x1 conv, n input and n output channels, n pixels."""
    x = torch.randn(1, n, n, 1).contiguous(memory_format=torch.channels_last)
    w = torch.randn(n, n, 1, 1)
    return _best_gflops(lambda: aten.mkldnn_convolution(x, w, None, [0, 0], [1, 1], [1, 1], 1), 2 * n**3, repeats)


def sgemm_onednn_linear(n: int = 4096, repeats: int = 3) -> float:
    """The same product as ``mkldnn_linear`` on mkldnn tensors."""
    a = torch.randn(n, n).to_mkldnn()
    w = torch.randn(n, n).to_mkldnn()
    return _best_gflops(lambda: torch._C._nn.mkldnn_linear(a, w), 2 * n**3, repeats)


def time_it(f) -> float:
    t0 = CLOCK()  # (looked up at call time: --clock)
    f()
    return CLOCK() - t0


# --------------------------------------------------------------------------- commands
def train_modules64(family: MLPFamily, phi, init: np.ndarray, x, y, steps: int, lr: float) -> np.ndarray:
    """The per-member nn.Module + torch.optim.Adam reference in float64 (params (K, p), float64)."""
    out = np.empty(init.shape)
    for k in range(len(init)):
        net = family.to_module(init[k]).double()
        opt = torch.optim.Adam(net.parameters(), lr=lr)
        X, Y = torch.from_numpy(x[k]).double(), torch.from_numpy(y[k]).double()
        for _ in range(steps):
            opt.zero_grad()
            (-(phi(net(X)).mean() + phi(1 - net(Y)).mean())).backward()
            opt.step()
        out[k] = torch.cat([t.detach().T.reshape(-1) if t.dim() == 2 else t.detach() for t in net.parameters()]).numpy()
    return out


def cmd_check(args) -> None:
    """Agreement (gradient, a few steps, ``--steps`` steps) with float64 autograd, nn.Module loops and
    the engine; determinism (twice, workers, chunkings, batch mates, row blocks)."""
    from gangen.nn.ensemble import train_ensemble, value_and_grad  # noqa: E402

    phi = LogMeasuring(1e-3)
    K, d, lr, steps = args.K, 16, args.lr, args.steps
    for width in args.widths:
        family = MLPFamily(d=d, hidden=(width, width), activation=args.activation)
        for m in args.ms:
            x, y = data_for(K, m, d)
            seeds = list(range(K))
            init = family.init(seeds)
            best = best_options(family, m, K, workers=1)
            R = 2 * m
            print(f"== width {width} m {m} K {K} {family.activation}: options {best}", flush=True)
            # 1. one gradient against float64 autograd, relative to the largest entry of each member's gradient
            g64 = grad_float64(x, y, family=family, params=init, phi=phi)
            scale = np.abs(g64).max(axis=1, keepdims=True)
            gerr = {}
            for name, o in [("conv", best), ("conv rows/4", replace(best, rows=max(16, R // 4))),
                            ("conv gw=bmm", replace(best, gw="bmm")), ("conv l1=bmm", replace(best, l1="bmm"))]:
                gerr[name] = float((np.abs(grad_conv(x, y, family=family, params=init, phi=phi, opts=o) - g64) / scale).max())
            gerr["engine"] = float((np.abs(value_and_grad(init, x, y, family=family, phi=phi, device="cpu")[1] - g64) / scale).max())
            print("   gradient, max |g - g_float64| / max|g_float64| per member: " + ", ".join(f"{k} {v:.1e}" for k, v in gerr.items()), flush=True)
            # 2. a few Adam steps against nn.Module + torch.optim.Adam, float32 and float64
            few, n8 = 5, min(8, K)
            ref64 = train_modules64(family, phi, init[:n8], x[:n8], y[:n8], few, lr)
            ref32 = train_modules(family, phi, init[:n8], x[:n8], y[:n8], few, lr)
            conv5 = train_conv(x[:n8], y[:n8], family=family, init=init[:n8], phi=phi, steps=few, lr=lr, opts=best)[1]
            eng5 = train_ensemble(x[:n8], y[:n8], family=family, seeds=seeds[:n8], phi=phi, steps=few, lr=lr, device="cpu").params
            moved = float(np.abs(ref64 - init[:n8]).max())
            print(f"   after {few} steps (params moved up to {moved:.1e}), max |params - float64 nn.Module|: "
                  f"conv {np.abs(conv5 - ref64).max():.1e}, engine {np.abs(eng5 - ref64).max():.1e}, "
                  f"float32 nn.Module {np.abs(ref32 - ref64).max():.1e}; conv vs float32 nn.Module {np.abs(conv5 - ref32).max():.1e}", flush=True)
            # 3. ``steps`` steps against the engine
            res = train_ensemble(x, y, family=family, seeds=seeds, phi=phi, steps=steps, lr=lr, device="cpu")
            agree = {}
            for name, o in [("conv", best), ("gw=bmm", replace(best, gw="bmm")), ("l1=bmm", replace(best, l1="bmm")),
                            ("adam=engine", replace(best, adam="engine")), ("fuse=False", replace(best, fuse=False)), ("autograd", None)]:
                if o is None:
                    v, p = train_conv_autograd(x, y, family=family, init=init, phi=phi, steps=steps, lr=lr, opts=best)
                else:
                    v, p = train_conv(x, y, family=family, init=init, phi=phi, steps=steps, lr=lr, opts=o)
                agree[name] = (float(np.abs(v - res.values).max()), float(np.abs(p - res.params).max()))
            print(f"   after {steps} steps vs engine (max|dJ| / max|dparams|; J in {res.values.min():.3f}..{res.values.max():.3f}): "
                  + ", ".join(f"{k} {a:.1e}/{b:.1e}" for k, (a, b) in agree.items()), flush=True)
            # 4. determinism
            v1, p1 = train_conv(x, y, family=family, init=init, phi=phi, steps=steps, lr=lr, opts=best)
            v2, p2 = train_conv(x, y, family=family, init=init, phi=phi, steps=steps, lr=lr, opts=best)
            det = {"twice": bool(np.array_equal(p1, p2) and np.array_equal(v1, v2))}
            pw = train_conv(x, y, family=family, init=init, phi=phi, steps=steps, lr=lr, opts=replace(best, workers=2))[1]
            det["2 workers"] = bool(np.array_equal(pw, p1))
            # batch mates: reverse the member order (same chunk sizes, other neighbours)
            perm = np.arange(K)[::-1].copy()
            pr = train_conv(x[perm], y[perm], family=family, init=init[perm], phi=phi, steps=steps, lr=lr, opts=best)[1][np.argsort(perm)]
            det["other mates"] = (bool(np.array_equal(pr, p1)), float(np.abs(pr - p1).max()))
            for mem in sorted({1, 2, 4, 8, 16} - {best.members}):
                if mem <= K:
                    pc = train_conv(x, y, family=family, init=init, phi=phi, steps=steps, lr=lr, opts=replace(best, members=mem))[1]
                    det[f"members={mem}"] = (bool(np.array_equal(pc, p1)), float(np.abs(pc - p1).max()))
            if R >= 128:
                pb = train_conv(x, y, family=family, init=init, phi=phi, steps=steps, lr=lr, opts=replace(best, rows=R // 2))[1]
                det[f"rows={R // 2}"] = (bool(np.array_equal(pb, p1)), float(np.abs(pb - p1).max()))
            print(f"   determinism (bit-equal params, max|dparams|): {det}", flush=True)


def _spec(text: str) -> ConvOptions:
    """'members=8:gw=bmm' -> ConvOptions(members=8, gw='bmm')."""
    kw = {}
    for item in filter(None, text.split(":")):
        k, v = item.split("=")
        kw[k] = int(v) if v.isdigit() else (v == "True" if v in ("True", "False") else v)
    return ConvOptions(**kw)


def _candidates(family: MLPFamily, m: int, K: int) -> list[str]:
    """Chunkings to try for one shape: members per chunk (rows = all 2m rows), or for large m
    one or two members with row blocks; then kernel variants on top of each."""
    R = 2 * m
    if R <= 512:
        chunks = [f"members={kc}" for kc in (4, 8, 16, 32) if kc <= K // 2]
    elif R <= 2048:
        chunks = [f"members={kc}" for kc in (1, 2, 4, 8) if kc <= K // 2] + ["members=1:rows=1024"]
    else:
        chunks = ["members=1:rows=1024", "members=1:rows=2048", "members=1:rows=4096", "members=2:rows=1024", "members=2:rows=2048"]
    return chunks


def cmd_tune(args) -> None:
    """Wall-clock GF/s, best of ``repeats`` interleaved runs, of chunkings x variants x thread settings."""
    from gangen.nn.ensemble import train_ensemble  # noqa: E402

    phi = LogMeasuring(1e-3)
    K, d = args.K, 16
    print(f"torch {torch.__version__}, steps {args.steps}, repeats {args.repeats} (best of, interleaved), {args.clock} clock, load {load()}", flush=True)
    variants = args.variants or ["", "l1=bmm", "gw=bmm", "l1=bmm:gw=bmm"]
    for width, m, family, x, y, seeds, init in benchmark_grid(args.widths, args.ms, K, d):
        p = family.n_params
        flops = 6 * m * 2 * p * args.steps * K
        runs: list[tuple[str, callable]] = [
            ("engine (its plan)", lambda: train_ensemble(x, y, family=family, seeds=seeds, phi=phi, steps=args.steps, device="cpu"))]
        for chunk in (args.chunks or _candidates(family, m, K)):
            for var in variants:
                spec = ":".join(filter(None, [chunk, var]))
                for threads in args.thread_modes:
                    if threads == "2w":
                        o, nthr = replace(_spec(spec), workers=2), 1
                    elif threads == "1w2t":
                        o, nthr = replace(_spec(spec), workers=1), 2
                    else:
                        o, nthr = replace(_spec(spec), workers=1), 1

                    def f(o=o, nthr=nthr):
                        torch.set_num_threads(nthr)
                        try:
                            train_conv(x, y, family=family, init=init, phi=phi, steps=args.steps, opts=o)
                        finally:
                            torch.set_num_threads(args.threads)
                    runs.append((f"{spec or 'default'} [{threads}]", f))
        if args.autograd:
            o = replace(_spec(args.chunks[0] if args.chunks else _candidates(family, m, K)[1]), workers=2)
            runs.append((f"autograd {o.members}x{min(o.rows, 2 * m)} [2w]",
                         lambda o=o: train_conv_autograd(x, y, family=family, init=init, phi=phi, steps=args.steps, opts=o)))
        times = {name: [] for name, _ in runs}
        for _ in range(args.repeats):
            for name, f in runs:
                times[name].append(time_it(f))
        eng = min(times["engine (its plan)"])
        print(f"width {width} m {m} K {K} [load {load()}]: GF/s (x engine)", flush=True)
        for name, t in times.items():
            print(f"   {name:42s} {flops / min(t) / 1e9:6.1f}  ({eng / min(t):4.2f}x)", flush=True)


def cmd_bench(args) -> None:
    from gangen.nn.ensemble import plan_chunks, train_ensemble  # noqa: E402
    import importlib.util

    spec = importlib.util.spec_from_file_location("bench_ensemble", Path(__file__).with_name("ensemble.py"))
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)  # its train_loop: the per-model loop exactly as benchmarks/ensemble.py runs it
    phi = LogMeasuring(1e-3)
    K, d, steps, lr = args.K, 16, args.steps, args.lr
    dev = torch.device("cpu")
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {args.clock} clock, K={K} d={d} steps={steps}, load {load()}", flush=True)
    mkl0, dnn0, dnnl0 = sgemm_mkl(), sgemm_onednn(), sgemm_onednn_linear()
    print(f"sgemm n=4096 at start: torch.mm (MKL) {mkl0:.0f} GFLOP/s, oneDNN 1x1 conv {dnn0:.0f}, mkldnn_linear {dnnl0:.0f}  [{load()}]", flush=True)
    warm = MLPFamily(d=d, hidden=(8, 8))
    wx = np.zeros((2, 8, d), dtype=np.float32)
    bench.train_loop(warm, phi, warm.init([0]), wx, wx, 2, lr, dev)
    train_ensemble(wx, wx, family=warm, seeds=[0, 1], phi=phi, steps=2, lr=lr, device=dev)
    train_conv(wx, wx, family=warm, init=warm.init([0, 1]), phi=phi, steps=2)
    rows = []
    hdr = ("    m width     p   loop_s engine_s   conv_s eng/loop conv/loop conv/eng loopGF  engGF convGF  max|dJ| conv plan        load")
    print(hdr, flush=True)
    for width, m, family, x, y, seeds, init in benchmark_grid(args.widths, args.ms, K, d):
        p = family.n_params
        opts = best_options(family, m, K, workers=torch.get_num_threads())  # as the engine: one worker per thread
        flops = 6 * m * 2 * p * steps * K
        res = None
        t_eng, t_conv = [], []
        for _ in range(args.repeats):  # interleaved
            t0 = CLOCK()
            res = train_ensemble(x, y, family=family, seeds=seeds, phi=phi, steps=steps, lr=lr, device=dev)
            t_eng.append(CLOCK() - t0)
            t0 = CLOCK()
            vals, _ = train_conv(x, y, family=family, init=init, phi=phi, steps=steps, lr=lr, opts=opts)
            t_conv.append(CLOCK() - t0)
        n_loop = min(K, args.loop_members)
        t0 = CLOCK()
        bench.train_loop(family, phi, init[:n_loop], x, y, steps, lr, dev)
        loop_s = (CLOCK() - t0) * K / n_loop
        eng_s, conv_s = min(t_eng), min(t_conv)
        row = {
            "m": m, "width": width, "p": p, "loop_s": loop_s, "engine_s": eng_s, "conv_s": conv_s,
            "engine_speedup": loop_s / eng_s, "conv_speedup": loop_s / conv_s, "conv_over_engine": eng_s / conv_s,
            "loop_gflops": flops / loop_s / 1e9, "engine_gflops": flops / eng_s / 1e9, "conv_gflops": flops / conv_s / 1e9,
            "max_abs_dJ": float(np.abs(vals - res.values).max()),
            "conv_plan": f"{opts.members}x{min(opts.rows, 2 * m)}/{opts.workers}",
            "engine_plan": str(plan_chunks(family, K, 2 * m, dev)), "load": load(),
            "engine_all_s": t_eng, "conv_all_s": t_conv,
        }
        rows.append(row)
        print(f"{m:5d} {width:5d} {p:5d} {loop_s:8.3f} {eng_s:8.3f} {conv_s:8.3f} {row['engine_speedup']:8.2f} "
              f"{row['conv_speedup']:9.2f} {row['conv_over_engine']:8.2f} {row['loop_gflops']:6.1f} {row['engine_gflops']:6.1f} "
              f"{row['conv_gflops']:6.1f} {row['max_abs_dJ']:8.1e} {row['conv_plan']:>12} {row['load']:>9}", flush=True)
    mkl1, dnn1, dnnl1 = sgemm_mkl(), sgemm_onednn(), sgemm_onednn_linear()
    print(f"sgemm n=4096 at end: torch.mm (MKL) {mkl1:.0f} GFLOP/s, oneDNN 1x1 conv {dnn1:.0f}, mkldnn_linear {dnnl1:.0f}  [{load()}]", flush=True)
    if args.json:
        meta = {"torch": torch.__version__, "threads": torch.get_num_threads(), "K": K, "d": d, "steps": steps, "lr": lr,
                "sgemm_mkl": [mkl0, mkl1], "sgemm_onednn_conv": [dnn0, dnn1], "sgemm_onednn_linear": [dnnl0, dnnl1],
                "flops": "6 * m * 2 * p * steps * K", "phi": "log, delta 1e-3", "repeats": args.repeats}
        Path(args.json).write_text(json.dumps({"rows": rows, "meta": meta}, indent=1))


def best_options(family: MLPFamily, m: int, K: int, workers: int = 2) -> ConvOptions:
    """Chunking for a shape, from the ``tune``/single-core runs (w64: kc = 16 at m = 64, 8 at
    m = 256, 1-2 at m = 1024, 1 member in 4096-row blocks at m = 4096): about ROWS_IN_FLIGHT
    (member, row) pairs per pass, at most 16 members (32 groups ran slower), 2 workers."""
    R = 2 * m
    members = max(1, min(16, ROWS_IN_FLIGHT // R, -(-K // workers)))
    return ConvOptions(members=members, rows=min(R, ROWS_IN_FLIGHT), workers=workers)


ROWS_IN_FLIGHT = 4096


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("command", choices=["check", "tune", "bench"])
    ap.add_argument("--K", type=int, default=64)
    ap.add_argument("--widths", type=int, nargs="+", default=[32, 64])
    ap.add_argument("--ms", type=int, nargs="+", default=[64, 256, 1024, 4096])
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--loop-members", type=int, default=64)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--thread-modes", nargs="+", default=["2w"], choices=["2w", "1w2t", "1w1t"],
                    help="2w: 2 worker threads x 1 intra-op thread; 1w2t: one worker, 2 intra-op threads; 1w1t: one core")
    ap.add_argument("--variants", nargs="+", default=None, help="kernel variants, e.g. '' l1=bmm gw=bmm")
    ap.add_argument("--chunks", nargs="+", default=None, help="chunkings, e.g. members=8 members=1:rows=2048")
    ap.add_argument("--autograd", action="store_true")
    ap.add_argument("--activation", default="relu", help="check only: hidden activation (relu, tanh, leaky_relu)")
    ap.add_argument("--json", default=None)
    ap.add_argument("--clock", choices=["wall", "cpu"], default="wall",
                    help="wall clock, or this process's CPU time summed over its threads (robust when other processes share the cores)")
    args = ap.parse_args(argv)
    global CLOCK
    CLOCK = time.process_time if args.clock == "cpu" else time.perf_counter
    torch.set_num_threads(args.threads)
    {"check": cmd_check, "tune": cmd_tune, "bench": cmd_bench}[args.command](args)


if __name__ == "__main__":
    main()
