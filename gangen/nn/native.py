r"""Batched float32 matrix products of the ensemble engine: torch, or AVX-512 kernels.

The engine's forward and backward passes are three batched products per hidden layer,
for every member b of a chunk:

.. math::
    Z_b = \mathbf{1} c_b^\top + H_b W_b \quad (\text{forward}),\qquad
    \nabla W_b = H_b^\top \Delta_b,\qquad \nabla H_b = \Delta_b W_b^\top \quad (\text{backward}).

:func:`bmm_nn`, :func:`bmm_tn` and :func:`bmm_nt` compute them either with torch
(``torch.baddbmm`` / ``torch.bmm``) or with the register-blocked AVX-512 kernels of
``_kernels.c``. Why the kernels: torch's float32 CPU products (MKL) take their AVX2 path on
AMD processors, half the FMA width the cores have. Measured on the project's 2-core AMD
EPYC (Zen 5) with one thread, chunk of 4 members, (512 x 64) @ (64 x 64): torch.bmm
150 us = 111 GFLOP/s, the kernel 66 us = 253 GFLOP/s; the weight-gradient product 107 vs
252 GFLOP/s; two threads together 470 GFLOP/s (``benchmarks/ensemble.py`` measures the
whole engine both ways).

The kernels are compiled at first use with the system C compiler (``$CC``, default ``cc``)
into a per-user cache (``$GANGEN_CACHE_DIR``, else ``$XDG_CACHE_HOME/gangen`` or
``~/.cache/gangen``); nothing is downloaded. They are used only on a CPU with AVX-512F,
for float32 CPU tensors whose last dimension is contiguous; everything else (CUDA,
float64, no compiler, another processor) takes the torch path. Which path runs is chosen
by the backend: ``"auto"`` (the kernels when available, the default), ``"torch"`` or
``"native"`` (the kernels, or an error saying why they are unavailable); set it with
:func:`set_backend`, the ``backend`` context manager, or the environment variable
``GANGEN_MATMUL`` read at import.

Both paths compute each member from its own operands only; they differ by float32 rounding
(different summation orders). In the kernels every output element is one sequential sum
over the reduction index, started from the bias or the accumulated value.
"""

from __future__ import annotations

import contextlib
import ctypes
import hashlib
import os
import platform
import subprocess
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import torch

from gangen._validation import check_choice

__all__ = [
    "BACKENDS", "ACTIVATIONS", "NativeStatus", "native_status", "get_backend", "set_backend", "backend", "active", "describe",
    "bmm_nn", "bmm_tn", "bmm_nt", "bmv", "adam_step", "activate_", "activation_backward_",
]

#: Accepted backend names.
BACKENDS = ("auto", "torch", "native")

#: Compiler flags for ``_kernels.c`` (the kernels carry their own target attributes).
CFLAGS = ("-O3", "-std=gnu99", "-shared", "-fPIC")

_SOURCE = Path(__file__).with_name("_kernels.c")
_lock = threading.Lock()
_backend = check_choice(os.environ.get("GANGEN_MATMUL", "auto"), BACKENDS, "GANGEN_MATMUL")


@dataclass(frozen=True)
class NativeStatus:
    """Whether the AVX-512 kernels can run here; ``reason`` says why not, ``path`` is the compiled library."""

    available: bool
    reason: str
    path: str | None


_status: NativeStatus | None = None
_lib: ctypes.CDLL | None = None


def _cache_dir() -> Path:
    if os.environ.get("GANGEN_CACHE_DIR"):
        return Path(os.environ["GANGEN_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "gangen"


def _compile(cc: str, out: Path) -> str | None:
    """Compile the kernels to ``out`` (atomically: a temporary file renamed); an error message or None."""
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(suffix=".so", dir=out.parent)
        os.close(fd)
    except OSError as exc:
        return f"cannot write the compiled kernels to {out.parent} ({exc}); set GANGEN_CACHE_DIR to a writable folder"
    try:
        proc = subprocess.run([cc, *CFLAGS, str(_SOURCE), "-o", tmp], capture_output=True, text=True, timeout=120)
        if proc.returncode != 0:
            return f"{cc} failed: {proc.stderr.strip()[:400]}"
        os.replace(tmp, out)
        return None
    except (OSError, subprocess.SubprocessError) as exc:
        return f"could not run the C compiler {cc!r}: {exc}"
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _bind(lib: ctypes.CDLL) -> None:
    L, P, I, F = ctypes.c_long, ctypes.c_void_p, ctypes.c_int, ctypes.c_float
    lib.gangen_bmm_nn.argtypes = [L, L, L, L, P, L, L, P, L, L, P, L, P, L, L, I, I, F]
    lib.gangen_bmm_nn.restype = None
    lib.gangen_bmm_tn.argtypes = [L, L, L, L, P, L, L, P, L, L, P, L, L, P, L, I]
    lib.gangen_bmm_tn.restype = None
    lib.gangen_bmm_nt.argtypes = [L, L, L, L, P, L, L, P, L, L, P, L, L, P, L, L, I, F]
    lib.gangen_bmm_nt.restype = ctypes.c_int
    lib.gangen_bmv.argtypes = [L, L, L, P, L, L, P, L, P, L, P, L, L]
    lib.gangen_bmv.restype = None
    lib.gangen_adam.argtypes = [L, P, P, P, P, F, F, F, F, F]
    lib.gangen_adam.restype = None


def native_status() -> NativeStatus:
    """Compile (once per source version and compiler, cached on disk) and load the kernels.

    >>> native_status().available in (True, False)
    True
    """
    global _status, _lib
    with _lock:
        if _status is not None:
            return _status
        if platform.machine().lower() not in ("x86_64", "amd64"):
            _status = NativeStatus(False, f"the kernels need an x86-64 processor; this is {platform.machine()}", None)
            return _status
        cc = os.environ.get("CC", "cc")
        key = hashlib.sha256(_SOURCE.read_bytes() + repr((cc, CFLAGS)).encode()).hexdigest()[:16]
        path = _cache_dir() / f"kernels-{key}.so"
        try:
            error = None if path.exists() else _compile(cc, path)
        except OSError as exc:  # e.g. an unreadable or over-long cache path
            error = f"cannot use the kernel cache {path.parent} ({exc}); set GANGEN_CACHE_DIR to a writable folder"
        if error is not None:
            _status = NativeStatus(False, error, None)
            return _status
        try:
            lib = ctypes.CDLL(str(path))  # ctypes releases the GIL during the calls
        except OSError as exc:
            _status = NativeStatus(False, f"could not load {path}: {exc}", None)
            return _status
        if not lib.gangen_cpu_has_avx512():
            _status = NativeStatus(False, "this processor has no AVX-512F", str(path))
            return _status
        _bind(lib)
        _lib, _status = lib, NativeStatus(True, "AVX-512 kernels loaded", str(path))
        return _status


def get_backend() -> str:
    """The current backend name (one of :data:`BACKENDS`)."""
    return _backend


def active() -> bool:
    """True when CPU float32 products take the AVX-512 kernels (backend not ``"torch"`` and the kernels available)."""
    return _backend != "torch" and native_status().available


def describe() -> str:
    """The backend in words, for provenance records: ``"native (AVX-512 kernels)"`` or ``"torch (...)"``."""
    if active():
        return "native (AVX-512 kernels)"
    return "torch" if _backend == "torch" else f"torch (kernels unavailable: {native_status().reason})"


def set_backend(name: str) -> None:
    """Select ``"auto"``, ``"torch"`` or ``"native"`` for all threads (``"native"`` raises
    RuntimeError with the reason when the kernels cannot run here)."""
    global _backend
    name = check_choice(name, BACKENDS, "backend")
    if name == "native":
        status = native_status()
        if not status.available:
            raise RuntimeError(f"the native matmul backend is unavailable: {status.reason}")
    _backend = name


@contextlib.contextmanager
def backend(name: str) -> Iterator[None]:
    """``with backend("torch"): ...`` runs the block with that backend, restoring the previous one."""
    previous = _backend
    set_backend(name)
    try:
        yield
    finally:
        set_backend(previous)


def _native(*tensors: torch.Tensor | None) -> ctypes.CDLL | None:
    """The loaded library when the backend and these operands (None: absent) allow the kernels, else None."""
    if _backend == "torch":
        return None
    for t in tensors:
        if t is not None and (t.device.type != "cpu" or t.dtype != torch.float32 or t.stride(-1) != 1):
            return None
    if _lib is None and not native_status().available:
        return None
    return _lib


def _ptr(t: torch.Tensor | None) -> int | None:
    return None if t is None else t.data_ptr()


def _batch_stride(t: torch.Tensor | None) -> int:
    return 0 if t is None else t.stride(0)


def _check_3d(**tensors: torch.Tensor | None) -> None:
    for name, t in tensors.items():
        if t is not None and (not isinstance(t, torch.Tensor) or t.dim() != 3):
            raise ValueError(f"{name} must be a 3-d tensor (batch, rows, cols); got {getattr(t, 'shape', type(t).__name__)}")


def _check_slope(activation: str | None, negative_slope: float) -> None:
    if activation == "leaky_relu" and not negative_slope >= 0:
        raise ValueError(f"negative_slope must be >= 0 (torch's leaky_relu backward needs it); got {negative_slope!r}")


def _check_shapes(what: str, got: tuple[int, ...], want: tuple[int, ...]) -> None:
    if tuple(got) != tuple(want):
        raise ValueError(f"{what} must have shape {tuple(want)}; got {tuple(got)}")


#: Activations the kernels apply in their epilogues (others: the product, then the torch op).
ACTIVATIONS = {None: 0, "relu": 1, "leaky_relu": 2}


def activate_(z: torch.Tensor, activation: str | None, negative_slope: float) -> torch.Tensor:
    """z <- a(z) in place with torch: relu, leaky_relu (``negative_slope``), tanh, or None."""
    if activation == "relu":
        z.relu_()
    elif activation == "leaky_relu":
        torch.nn.functional.leaky_relu_(z, negative_slope)
    elif activation == "tanh":
        z.tanh_()
    elif activation is not None:
        raise ValueError(f"activation must be None, 'relu', 'leaky_relu' or 'tanh'; got {activation!r}")
    return z


def activation_backward_(grad: torch.Tensor, a: torch.Tensor, activation: str | None, negative_slope: float) -> torch.Tensor:
    """grad <- grad * a'(z) in place with torch, written from the stored output a = a(z)."""
    if activation == "relu":
        torch.ops.aten.threshold_backward.grad_input(grad, a, 0.0, grad_input=grad)
    elif activation == "leaky_relu":
        torch.ops.aten.leaky_relu_backward.grad_input(grad, a, negative_slope, True, grad_input=grad)
    elif activation == "tanh":
        torch.ops.aten.tanh_backward.grad_input(grad, a, grad_input=grad)
    elif activation is not None:
        raise ValueError(f"activation must be None, 'relu', 'leaky_relu' or 'tanh'; got {activation!r}")
    return grad


def bmm_nn(
    A: torch.Tensor,
    B: torch.Tensor,
    out: torch.Tensor,
    *,
    bias: torch.Tensor | None = None,
    accumulate: bool = False,
    activation: str | None = None,
    negative_slope: float = 0.01,
) -> torch.Tensor:
    """out = a(bias + A @ B) (bias (b, 1, N) broadcast over rows; 0 when None), or
    out = a(out + A @ B) with ``accumulate``; a = ``activation`` (None: identity).
    A (b, M, K), B (b, K, N), out (b, M, N). Returns out.

    >>> A, B = torch.ones(2, 3, 4), torch.ones(2, 4, 5)
    >>> bmm_nn(A, B, torch.empty(2, 3, 5), bias=torch.ones(2, 1, 5))[0, 0, 0].item()
    5.0
    >>> bmm_nn(-A, B, torch.empty(2, 3, 5), activation="relu")[1, 2, 4].item()
    0.0
    """
    _check_3d(A=A, B=B, out=out, bias=bias)
    _check_slope(activation, negative_slope)
    b, M, K = A.shape
    N = B.shape[2]
    _check_shapes("B", B.shape, (b, K, N))
    _check_shapes("out", out.shape, (b, M, N))
    if bias is not None:
        _check_shapes("bias", bias.shape, (b, 1, N))
        if accumulate:
            raise ValueError("bias and accumulate exclude each other")
    lib = _native(A, B, out, bias)
    if lib is None:
        if accumulate:
            out.baddbmm_(A, B)
        elif bias is None:
            torch.bmm(A, B, out=out)
        else:
            torch.baddbmm(bias, A, B, out=out)
        return activate_(out, activation, negative_slope)
    fused = activation in ACTIVATIONS
    lib.gangen_bmm_nn(
        b, M, K, N, _ptr(A), A.stride(0), A.stride(1), _ptr(B), B.stride(0), B.stride(1),
        _ptr(bias), _batch_stride(bias), _ptr(out), out.stride(0), out.stride(1), int(accumulate),
        ACTIVATIONS[activation] if fused else 0, float(negative_slope),
    )
    return out if fused else activate_(out, activation, negative_slope)


def bmm_tn(
    A: torch.Tensor, G: torch.Tensor, out: torch.Tensor, *, accumulate: bool = False, bias_grad: torch.Tensor | None = None
) -> torch.Tensor:
    """out = A^T @ G, or out += A^T @ G with ``accumulate``: A (b, M, K), G (b, M, N), out (b, K, N).
    With ``bias_grad`` (b, 1, N), also its column sums of G are written (or added). Returns out.

    >>> g = torch.empty(1, 1, 4)
    >>> bmm_tn(torch.ones(1, 3, 2), torch.ones(1, 3, 4), torch.empty(1, 2, 4), bias_grad=g)[0, 1, 3].item(), g[0, 0, 3].item()
    (3.0, 3.0)
    """
    _check_3d(A=A, G=G, out=out, bias_grad=bias_grad)
    b, M, K = A.shape
    N = G.shape[2]
    _check_shapes("G", G.shape, (b, M, N))
    _check_shapes("out", out.shape, (b, K, N))
    if bias_grad is not None:
        _check_shapes("bias_grad", bias_grad.shape, (b, 1, N))
    lib = _native(A, G, out, bias_grad)
    if lib is None:
        if accumulate:
            out.baddbmm_(A.transpose(1, 2), G)
            if bias_grad is not None:
                bias_grad.add_(G.sum(dim=1, keepdim=True))
        else:
            torch.bmm(A.transpose(1, 2), G, out=out)
            if bias_grad is not None:
                torch.sum(G, dim=1, keepdim=True, out=bias_grad)
        return out
    lib.gangen_bmm_tn(
        b, M, K, N, _ptr(A), A.stride(0), A.stride(1), _ptr(G), G.stride(0), G.stride(1),
        _ptr(out), out.stride(0), out.stride(1), _ptr(bias_grad), _batch_stride(bias_grad), int(accumulate),
    )
    return out


def bmm_nt(
    G: torch.Tensor,
    W: torch.Tensor,
    out: torch.Tensor,
    *,
    activation: str | None = None,
    activation_output: torch.Tensor | None = None,
    negative_slope: float = 0.01,
) -> torch.Tensor:
    """out = (G @ W^T) * a'(z): G (b, M, N), W (b, K, N), out (b, M, K); with ``activation``,
    the derivative is written from ``activation_output`` = a(z), shape (b, M, K). Returns out.

    >>> bmm_nt(torch.ones(1, 2, 3), torch.ones(1, 4, 3), torch.empty(1, 2, 4))[0, 1, 2].item()
    3.0
    """
    _check_3d(G=G, W=W, out=out, activation_output=activation_output)
    _check_slope(activation, negative_slope)
    b, M, N = G.shape
    K = W.shape[1]
    _check_shapes("W", W.shape, (b, K, N))
    _check_shapes("out", out.shape, (b, M, K))
    if activation is not None:
        if activation_output is None:
            raise ValueError(f"activation={activation!r} needs activation_output")
        _check_shapes("activation_output", activation_output.shape, (b, M, K))
    lib = _native(G, W, out, activation_output)
    if lib is None:
        if N == 1:  # an outer product: one multiplication per entry, as bmm computes it
            torch.mul(G, W.transpose(1, 2), out=out)
        else:
            torch.bmm(G, W.transpose(1, 2), out=out)
        return out if activation is None else activation_backward_(out, activation_output, activation, negative_slope)
    fused = activation in ACTIVATIONS
    H = activation_output if fused and activation is not None else None
    status = lib.gangen_bmm_nt(
        b, M, N, K, _ptr(G), G.stride(0), G.stride(1), _ptr(W), W.stride(0), W.stride(1),
        _ptr(out), out.stride(0), out.stride(1), _ptr(H), _batch_stride(H), 0 if H is None else H.stride(1),
        ACTIVATIONS[activation] if fused else 0, float(negative_slope),
    )
    if status != 0:
        raise MemoryError(f"bmm_nt: could not allocate {K * N} floats of scratch")
    return out if fused else activation_backward_(out, activation_output, activation, negative_slope)


def bmv(H: torch.Tensor, w: torch.Tensor, out: torch.Tensor, *, bias: torch.Tensor | None = None, scratch: torch.Tensor | None = None) -> torch.Tensor:
    """out = H @ w [+ bias]: H (b, M, K), w (b, K, 1), bias (b, 1, 1), out (b, M, 1); the
    single-output layer. The torch path multiplies into ``scratch`` (b, M, K) and sums.

    >>> bmv(torch.ones(1, 2, 3), torch.ones(1, 3, 1), torch.empty(1, 2, 1), bias=torch.ones(1, 1, 1))[0, 1, 0].item()
    4.0
    """
    _check_3d(H=H, w=w, out=out, bias=bias)
    b, M, K = H.shape
    _check_shapes("w", w.shape, (b, K, 1))
    _check_shapes("out", out.shape, (b, M, 1))
    if bias is not None:
        _check_shapes("bias", bias.shape, (b, 1, 1))
    lib = _native(H, w, out, bias) if w.is_contiguous() else None
    if lib is None:
        prod = torch.empty(b, M, K, dtype=H.dtype, device=H.device) if scratch is None else scratch
        torch.sum(torch.mul(H, w.transpose(1, 2), out=prod), dim=2, keepdim=True, out=out)
        return out if bias is None else out.add_(bias)
    lib.gangen_bmv(b, M, K, _ptr(H), H.stride(0), H.stride(1), _ptr(w), w.stride(0), _ptr(bias), _batch_stride(bias), _ptr(out), out.stride(0), out.stride(1))
    return out


def adam_step(
    param: torch.Tensor,
    grad: torch.Tensor,
    exp_avg: torch.Tensor,
    exp_avg_sq: torch.Tensor,
    denom: torch.Tensor,
    *,
    step: int,
    lr: float,
    betas: tuple[float, float],
    eps: float,
) -> None:
    r"""One Adam step (``torch.optim.Adam``'s arithmetic) on flat contiguous buffers, minimising:
    :math:`m \leftarrow \beta_1 m + (1-\beta_1) g`, :math:`v \leftarrow \beta_2 v + (1-\beta_2) g^2`,
    :math:`p \leftarrow p - \frac{lr}{1-\beta_1^t} \frac{m}{\sqrt{v}/\sqrt{1-\beta_2^t} + \epsilon}`
    (``step`` = t counts from 1; ``denom`` is scratch of the same size).

    >>> p, g = torch.zeros(3), torch.ones(3)
    >>> m, v, d = torch.zeros(3), torch.zeros(3), torch.empty(3)
    >>> adam_step(p, g, m, v, d, step=1, lr=0.1, betas=(0.9, 0.999), eps=1e-8)
    >>> round(p[0].item(), 6)   # the first step moves every coordinate by -lr
    -0.1
    """
    n = param.numel()
    for name, t_ in (("grad", grad), ("exp_avg", exp_avg), ("exp_avg_sq", exp_avg_sq), ("denom", denom)):
        if t_.numel() != n:
            raise ValueError(f"adam_step: {name} has {t_.numel()} entries but param has {n}")
    beta1, beta2 = betas
    t = float(step)
    step_size = lr / (1 - beta1**t)
    bias_correction2_sqrt = (1 - beta2**t) ** 0.5
    lib = _native(param, grad, exp_avg, exp_avg_sq) if all(x.is_contiguous() for x in (param, grad, exp_avg, exp_avg_sq)) else None
    if lib is None:
        exp_avg.lerp_(grad, 1 - beta1)
        exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
        torch.sqrt(exp_avg_sq, out=denom).div_(bias_correction2_sqrt).add_(eps)
        param.addcdiv_(exp_avg, denom, value=-step_size)
        return
    lib.gangen_adam(param.numel(), _ptr(param), _ptr(grad), _ptr(exp_avg), _ptr(exp_avg_sq), step_size, beta1, beta2, bias_correction2_sqrt, eps)
