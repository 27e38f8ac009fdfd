"""Inception Score exactly as torch-fidelity v0.4 computes it, and the TF-compatible Inception-v3.

Two stages, each testable on its own (torch-fidelity's ``x_to_y`` pattern):

- :func:`inception_logits`  uint8 images (N, 3, H, W) -> ``logits_unbiased`` (N, 1008),
  through :class:`TFInceptionV3` loaded by :func:`load_inception` from a local file;
- :func:`inception_score`   logits (N, C) -> :class:`InceptionScore` (mean, std over splits).

The network is the 2015-12-05 TensorFlow Inception-v3 graph that OpenAI's original
Inception Score code used, as ported to PyTorch by pytorch-fid
(``pt_inception-2015-12-05-6726825d.pth``) and re-hosted by torch-fidelity
(``weights-inception-2015-12-05-6726825d.pth``). It differs from torchvision's ImageNet
Inception-v3: 1008 classes; TF's average pooling that ignores padded zeros; max pooling
in the last block (Mixed_7c); batch-norm eps 1e-3. Nothing is downloaded: the weights
come from a path the user gives. The module and attribute names of
:class:`TFInceptionV3` (``Conv2d_1a_3x3``, ``Mixed_5b``, ``fc``...) are those of the
weight files, so their state dicts load as they are.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from gangen._validation import check_positive_int, is_torch_tensor

__all__ = [
    "InceptionScore",
    "inception_score",
    "TFInceptionV3",
    "load_inception",
    "inception_logits",
    "resize_bilinear_tf1",
    "resolve_device",
    "INCEPTION_INPUT_SIZE",
    "INCEPTION_NUM_CLASSES",
    "WEIGHT_FILE_NAMES",
]

INCEPTION_INPUT_SIZE = 299
INCEPTION_NUM_CLASSES = 1008
INCEPTION_FEATURE_DIM = 2048
WEIGHT_FILE_NAMES = (
    "pt_inception-2015-12-05-6726825d.pth",  # pytorch-fid
    "weights-inception-2015-12-05-6726825d.pth",  # torch-fidelity (same weights, same keys)
)
_BN_EPS = 1e-3  # TensorFlow's batch-norm epsilon in the 2015-12-05 graph


# --------------------------------------------------------------------------------------
# Inception Score from logits
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class InceptionScore:
    """An Inception Score: mean and population std (ddof=0) of the per-split scores.

    ``split_scores[i]`` is the score of rows [i·n//splits, (i+1)·n//splits) after the
    shuffle; ``shuffle_seed`` is None when the rows were not shuffled.
    """

    mean: float
    std: float
    split_scores: tuple[float, ...]
    n: int
    splits: int
    shuffle_seed: int | None


def _as_logits(logits: Any) -> torch.Tensor:
    """Validate logits of shape (N, C) and return them as a CPU tensor (dtype unchanged)."""
    if is_torch_tensor(logits):
        t = logits.detach().cpu()
    else:
        if isinstance(logits, (str, bytes)) or logits is None or isinstance(logits, Mapping):
            raise TypeError(f"logits must be a (N, C) array (numpy or torch); got {type(logits).__name__}")
        arr = np.asarray(logits)
        if arr.dtype == object or not (np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.integer)):
            raise TypeError(f"logits must hold real numbers; got an array of dtype {arr.dtype}")
        t = torch.from_numpy(np.ascontiguousarray(arr))
    if t.is_complex() or t.dtype == torch.bool:
        raise TypeError(f"logits must hold real numbers; got dtype {t.dtype}")
    if t.ndim != 2:
        raise ValueError(f"logits must have shape (N, C) (one row of class logits per image); got shape {tuple(t.shape)}")
    if t.shape[0] == 0 or t.shape[1] == 0:
        raise ValueError(f"logits must be non-empty; got shape {tuple(t.shape)}")
    if t.is_floating_point() and not bool(torch.isfinite(t).all()):
        n_nan = int(torch.isnan(t).sum())
        n_inf = int(torch.isinf(t).sum())
        raise ValueError(f"logits must be finite; got {n_nan} NaN and {n_inf} inf entries")
    return t


def inception_score(logits: Any, *, splits: int = 10, shuffle_seed: int | None = 2020) -> InceptionScore:
    r"""Inception Score of a set of images from their class logits, as torch-fidelity v0.4.

    .. math::
        \mathrm{IS}_s = \exp\Big( \frac{1}{|S_s|} \sum_{i \in S_s}
            \sum_k p_{ik} \big(\log p_{ik} - \log \bar p_{sk}\big) \Big),
        \qquad \bar p_{sk} = \frac{1}{|S_s|} \sum_{i \in S_s} p_{ik},

    i.e. exp of the mean KL(p(y|x_i) ‖ p̄(y)) over the images of split s, with
    ``p = softmax(logits)`` and ``log p = log_softmax(logits)`` in float64. The rows are
    first permuted by ``np.random.RandomState(shuffle_seed).permutation(N)`` (skipped when
    ``shuffle_seed`` is None), then cut into ``splits`` splits S_s = rows
    [s·N//splits, (s+1)·N//splits). The result's ``mean`` and ``std`` are the mean and
    population standard deviation (ddof=0) of IS_1..IS_splits. This is the Inception
    Score of Salimans et al. (2016) used in Table 1 of Arora et al. (2017).

    Numerical edge (0·log 0 := 0): where p_ik underflows to exactly 0 the term is 0
    (its limit). torch-fidelity would return NaN there when p̄_sk is 0 too; wherever it
    returns a number, both agree.

    Parameters
    ----------
    logits : array or tensor, shape (N, C)
        Unnormalised class scores per image (for Inception: ``logits_unbiased``).
    splits : int
        Number of splits, 1 <= splits <= N (10 in the literature).
    shuffle_seed : int or None
        Seed of the row permutation (2020 in torch-fidelity); None keeps the row order
        (beware: class-sorted rows then give too-low scores).

    Returns
    -------
    InceptionScore
        ``mean``, ``std``, ``split_scores`` (length ``splits``), ``n``, ``splits``, ``shuffle_seed``.

    Examples
    --------
    Identical predictions for every image carry no information: the score is 1.

    >>> inception_score(np.zeros((20, 5)), splits=2).mean
    1.0

    Four images, each surely in a different one of four classes: the score is 4.

    >>> round(inception_score(100.0 * np.eye(4), splits=1).mean, 9)
    4.0
    """
    t = _as_logits(logits)
    splits = check_positive_int(splits, "splits")
    n = int(t.shape[0])
    if splits > n:
        raise ValueError(f"splits must be <= the number of images N={n} (every split needs a row); got splits={splits}")
    if shuffle_seed is not None:
        if isinstance(shuffle_seed, bool) or not isinstance(shuffle_seed, (int, np.integer)):
            raise TypeError(f"shuffle_seed must be an int or None; got {type(shuffle_seed).__name__} {shuffle_seed!r}")
        rng = np.random.RandomState(shuffle_seed)
        t = t[torch.from_numpy(rng.permutation(n)), :]
    t = t.double()
    p = t.softmax(dim=1)  # (N, C)
    log_p = t.log_softmax(dim=1)  # (N, C)
    scores = []
    for s in range(splits):
        lo, hi = s * n // splits, (s + 1) * n // splits
        p_s, log_p_s = p[lo:hi], log_p[lo:hi]  # (n_s, C)
        q_s = p_s.mean(dim=0, keepdim=True)  # (1, C); q_s > 0 wherever some p_s > 0
        kl = p_s * (log_p_s - q_s.log())  # (n_s, C)
        kl = torch.where(p_s > 0, kl, torch.zeros_like(kl))  # 0·log 0 := 0
        scores.append(kl.sum(dim=1).mean().exp().item())
    return InceptionScore(
        mean=float(np.mean(scores)),
        std=float(np.std(scores)),
        split_scores=tuple(float(x) for x in scores),
        n=n,
        splits=splits,
        shuffle_seed=None if shuffle_seed is None else int(shuffle_seed),
    )


# --------------------------------------------------------------------------------------
# TF1-exact bilinear resize
# --------------------------------------------------------------------------------------


def _tf1_axis_weights(in_size: int, out_size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Source indices (lo, hi) and fractions of TF1's legacy bilinear resize along one axis.

    TF 1.x, align_corners=False, half_pixel_centers=False: scale = in/out in float32,
    source coordinate c_j = j·scale (float32), lo = floor(c_j), hi = min(lo+1, in-1),
    frac = c_j - lo.
    """
    scale = np.float32(in_size) / np.float32(out_size)
    coord = np.arange(out_size, dtype=np.float32) * scale  # (out,) float32 like TF
    lo = np.floor(coord).astype(np.int64)
    hi = np.minimum(lo + 1, in_size - 1)
    frac = (coord - lo.astype(np.float32)).astype(np.float32)
    return lo, hi, frac


def resize_bilinear_tf1(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    r"""Bilinear resize exactly as TensorFlow 1.x ``tf.image.resize_bilinear`` (align_corners=False).

    .. math::
        y_{ij} = \mathrm{top} + (\mathrm{bottom} - \mathrm{top})\,\beta_i,\quad
        \mathrm{top} = x_{a_i b_j} + (x_{a_i b'_j} - x_{a_i b_j})\,\alpha_j,\quad
        \mathrm{bottom} = x_{a'_i b_j} + (x_{a'_i b'_j} - x_{a'_i b_j})\,\alpha_j,

    with source coordinates r_i = i·(H_in/H_out), c_j = j·(W_in/W_out) (computed in
    float32, *no* half-pixel offset: TF1's legacy convention, unlike
    ``torch.nn.functional.interpolate``), a_i = ⌊r_i⌋, a'_i = min(a_i + 1, H_in − 1),
    β_i = r_i − a_i, and likewise b, b', α for columns. This is the resize of the
    TF Inception graph used for the Inception Score.

    Parameters
    ----------
    x : tensor, shape (B, C, H_in, W_in), floating point
    size : (H_out, W_out)

    Returns
    -------
    tensor, shape (B, C, H_out, W_out), same dtype and device as ``x``.

    Examples
    --------
    Upsampling [0, 1] by 2 repeats the last pixel (no half-pixel offset):

    >>> resize_bilinear_tf1(torch.tensor([[[[0.0, 1.0]]]]), (1, 4)).flatten().tolist()
    [0.0, 0.5, 1.0, 1.0]
    """
    if not (isinstance(x, torch.Tensor) and x.is_floating_point()):
        raise TypeError(f"x must be a floating-point torch tensor; got {type(x).__name__} {getattr(x, 'dtype', '')}")
    if x.ndim != 4:
        raise ValueError(f"x must have shape (B, C, H, W); got shape {tuple(x.shape)}")
    if len(size) != 2:
        raise ValueError(f"size must be (H_out, W_out); got {size!r}")
    h_out = check_positive_int(size[0], "size[0]")
    w_out = check_positive_int(size[1], "size[1]")
    h_in, w_in = int(x.shape[2]), int(x.shape[3])
    if (h_in, w_in) == (h_out, w_out):
        return x  # scale 1: every fraction is 0 and every lo is the identity
    dev = x.device
    y_lo, y_hi, y_frac = (torch.from_numpy(a).to(dev) for a in _tf1_axis_weights(h_in, h_out))
    x_lo, x_hi, x_frac = (torch.from_numpy(a).to(dev) for a in _tf1_axis_weights(w_in, w_out))
    y_frac = y_frac.to(x.dtype).view(1, 1, h_out, 1)
    x_frac = x_frac.to(x.dtype).view(1, 1, 1, w_out)
    top_rows = x.index_select(2, y_lo)  # (B, C, H_out, W_in)
    bot_rows = x.index_select(2, y_hi)  # (B, C, H_out, W_in)
    top_l, top_r = top_rows.index_select(3, x_lo), top_rows.index_select(3, x_hi)  # (B, C, H_out, W_out)
    bot_l, bot_r = bot_rows.index_select(3, x_lo), bot_rows.index_select(3, x_hi)
    top = top_l + (top_r - top_l) * x_frac
    bottom = bot_l + (bot_r - bot_l) * x_frac
    return top + (bottom - top) * y_frac


# --------------------------------------------------------------------------------------
# The TF-compatible Inception-v3
# --------------------------------------------------------------------------------------


class _ConvBN(nn.Module):
    """Conv (no bias) -> batch norm (eps 1e-3) -> ReLU; keys ``conv.weight``, ``bn.*``."""

    def __init__(self, c_in: int, c_out: int, kernel: int | tuple[int, int], stride: int = 1, padding: int | tuple[int, int] = 0):
        super().__init__()
        self.conv = nn.Conv2d(c_in, c_out, kernel, stride=stride, padding=padding, bias=False)
        self.bn = nn.BatchNorm2d(c_out, eps=_BN_EPS)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.bn(self.conv(x)))


def _tf_avg_pool(x: torch.Tensor) -> torch.Tensor:
    """3x3 stride-1 average pool whose border averages ignore the padded zeros (as TF)."""
    return F.avg_pool2d(x, kernel_size=3, stride=1, padding=1, count_include_pad=False)


class _BlockA(nn.Module):
    """35x35 block (Mixed_5b/5c/5d): 1x1 | 1x1-5x5 | 1x1-3x3-3x3 | TF avg pool-1x1."""

    def __init__(self, c_in: int, pool_features: int):
        super().__init__()
        self.branch1x1 = _ConvBN(c_in, 64, 1)
        self.branch5x5_1 = _ConvBN(c_in, 48, 1)
        self.branch5x5_2 = _ConvBN(48, 64, 5, padding=2)
        self.branch3x3dbl_1 = _ConvBN(c_in, 64, 1)
        self.branch3x3dbl_2 = _ConvBN(64, 96, 3, padding=1)
        self.branch3x3dbl_3 = _ConvBN(96, 96, 3, padding=1)
        self.branch_pool = _ConvBN(c_in, pool_features, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b1 = self.branch1x1(x)
        b5 = self.branch5x5_2(self.branch5x5_1(x))
        b3 = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
        bp = self.branch_pool(_tf_avg_pool(x))
        return torch.cat([b1, b5, b3, bp], 1)


class _BlockB(nn.Module):
    """35 -> 17 reduction (Mixed_6a): 3x3/2 | 1x1-3x3-3x3/2 | max pool/2."""

    def __init__(self, c_in: int):
        super().__init__()
        self.branch3x3 = _ConvBN(c_in, 384, 3, stride=2)
        self.branch3x3dbl_1 = _ConvBN(c_in, 64, 1)
        self.branch3x3dbl_2 = _ConvBN(64, 96, 3, padding=1)
        self.branch3x3dbl_3 = _ConvBN(96, 96, 3, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b3 = self.branch3x3(x)
        bd = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
        bp = F.max_pool2d(x, kernel_size=3, stride=2)
        return torch.cat([b3, bd, bp], 1)


class _BlockC(nn.Module):
    """17x17 block (Mixed_6b..6e) with factorised 7x7 convolutions and TF avg pool."""

    def __init__(self, c_in: int, c7: int):
        super().__init__()
        self.branch1x1 = _ConvBN(c_in, 192, 1)
        self.branch7x7_1 = _ConvBN(c_in, c7, 1)
        self.branch7x7_2 = _ConvBN(c7, c7, (1, 7), padding=(0, 3))
        self.branch7x7_3 = _ConvBN(c7, 192, (7, 1), padding=(3, 0))
        self.branch7x7dbl_1 = _ConvBN(c_in, c7, 1)
        self.branch7x7dbl_2 = _ConvBN(c7, c7, (7, 1), padding=(3, 0))
        self.branch7x7dbl_3 = _ConvBN(c7, c7, (1, 7), padding=(0, 3))
        self.branch7x7dbl_4 = _ConvBN(c7, c7, (7, 1), padding=(3, 0))
        self.branch7x7dbl_5 = _ConvBN(c7, 192, (1, 7), padding=(0, 3))
        self.branch_pool = _ConvBN(c_in, 192, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b1 = self.branch1x1(x)
        b7 = self.branch7x7_3(self.branch7x7_2(self.branch7x7_1(x)))
        bd = x
        for layer in (self.branch7x7dbl_1, self.branch7x7dbl_2, self.branch7x7dbl_3, self.branch7x7dbl_4, self.branch7x7dbl_5):
            bd = layer(bd)
        bp = self.branch_pool(_tf_avg_pool(x))
        return torch.cat([b1, b7, bd, bp], 1)


class _BlockD(nn.Module):
    """17 -> 8 reduction (Mixed_7a): 1x1-3x3/2 | 1x1-1x7-7x1-3x3/2 | max pool/2."""

    def __init__(self, c_in: int):
        super().__init__()
        self.branch3x3_1 = _ConvBN(c_in, 192, 1)
        self.branch3x3_2 = _ConvBN(192, 320, 3, stride=2)
        self.branch7x7x3_1 = _ConvBN(c_in, 192, 1)
        self.branch7x7x3_2 = _ConvBN(192, 192, (1, 7), padding=(0, 3))
        self.branch7x7x3_3 = _ConvBN(192, 192, (7, 1), padding=(3, 0))
        self.branch7x7x3_4 = _ConvBN(192, 192, 3, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b3 = self.branch3x3_2(self.branch3x3_1(x))
        b7 = self.branch7x7x3_4(self.branch7x7x3_3(self.branch7x7x3_2(self.branch7x7x3_1(x))))
        bp = F.max_pool2d(x, kernel_size=3, stride=2)
        return torch.cat([b3, b7, bp], 1)


class _BlockE(nn.Module):
    """8x8 block (Mixed_7b: TF avg pool; Mixed_7c: 3x3 max pool, as in the TF graph)."""

    def __init__(self, c_in: int, pool: str):
        super().__init__()
        assert pool in ("avg", "max")
        self.pool = pool
        self.branch1x1 = _ConvBN(c_in, 320, 1)
        self.branch3x3_1 = _ConvBN(c_in, 384, 1)
        self.branch3x3_2a = _ConvBN(384, 384, (1, 3), padding=(0, 1))
        self.branch3x3_2b = _ConvBN(384, 384, (3, 1), padding=(1, 0))
        self.branch3x3dbl_1 = _ConvBN(c_in, 448, 1)
        self.branch3x3dbl_2 = _ConvBN(448, 384, 3, padding=1)
        self.branch3x3dbl_3a = _ConvBN(384, 384, (1, 3), padding=(0, 1))
        self.branch3x3dbl_3b = _ConvBN(384, 384, (3, 1), padding=(1, 0))
        self.branch_pool = _ConvBN(c_in, 192, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b1 = self.branch1x1(x)
        b3 = self.branch3x3_1(x)
        b3 = torch.cat([self.branch3x3_2a(b3), self.branch3x3_2b(b3)], 1)
        bd = self.branch3x3dbl_2(self.branch3x3dbl_1(x))
        bd = torch.cat([self.branch3x3dbl_3a(bd), self.branch3x3dbl_3b(bd)], 1)
        if self.pool == "avg":
            pooled = _tf_avg_pool(x)
        else:
            pooled = F.max_pool2d(x, kernel_size=3, stride=1, padding=1)
        bp = self.branch_pool(pooled)
        return torch.cat([b1, b3, bd, bp], 1)


class TFInceptionV3(nn.Module):
    r"""The TF 2015-12-05 Inception-v3 graph: uint8 images -> ``logits_unbiased`` (B, 1008).

    ``forward(x)`` computes, for x uint8 of shape (B, 3, H, W):

    .. math::
        \mathrm{logits\_unbiased} = \mathrm{pool3}\big((\mathrm{resize}_{299}(x) - 128)/128\big)\; W_{fc}^\top,

    where resize is :func:`resize_bilinear_tf1`, pool3 the (B, 2048) global average of
    the last block and W_fc the (1008, 2048) fc weight; the fc bias is *not* added (as
    in OpenAI's Inception Score code and torch-fidelity's ``logits_unbiased``).
    :meth:`pool3` returns the (B, 2048) features (FID's features).

    Build it with :func:`load_inception`; a freshly constructed module holds random
    weights (useful only for tests).
    """

    def __init__(self) -> None:
        super().__init__()
        self.Conv2d_1a_3x3 = _ConvBN(3, 32, 3, stride=2)
        self.Conv2d_2a_3x3 = _ConvBN(32, 32, 3)
        self.Conv2d_2b_3x3 = _ConvBN(32, 64, 3, padding=1)
        self.Conv2d_3b_1x1 = _ConvBN(64, 80, 1)
        self.Conv2d_4a_3x3 = _ConvBN(80, 192, 3)
        self.Mixed_5b = _BlockA(192, pool_features=32)
        self.Mixed_5c = _BlockA(256, pool_features=64)
        self.Mixed_5d = _BlockA(288, pool_features=64)
        self.Mixed_6a = _BlockB(288)
        self.Mixed_6b = _BlockC(768, c7=128)
        self.Mixed_6c = _BlockC(768, c7=160)
        self.Mixed_6d = _BlockC(768, c7=160)
        self.Mixed_6e = _BlockC(768, c7=192)
        self.Mixed_7a = _BlockD(768)
        self.Mixed_7b = _BlockE(1280, pool="avg")
        self.Mixed_7c = _BlockE(2048, pool="max")
        self.fc = nn.Linear(INCEPTION_FEATURE_DIM, INCEPTION_NUM_CLASSES)

    @staticmethod
    def _check_images(x: Any) -> None:
        if not isinstance(x, torch.Tensor):
            raise TypeError(f"images must be a torch.uint8 tensor of shape (B, 3, H, W); got {type(x).__name__}")
        if x.dtype != torch.uint8:
            raise TypeError(
                f"images must have dtype torch.uint8 (pixel values 0..255); got {x.dtype}. "
                "Convert floats with gangen.data.float_to_uint8 first."
            )
        if x.ndim != 4 or x.shape[1] != 3:
            raise ValueError(
                f"images must have shape (B, 3, H, W) (RGB); got shape {tuple(x.shape)}. "
                "For grayscale, repeat the channel: x.repeat(1, 3, 1, 1)."
            )

    def pool3(self, x: torch.Tensor) -> torch.Tensor:
        """Pool3 features (B, 2048) of uint8 images (B, 3, H, W)."""
        self._check_images(x)
        dtype = self.fc.weight.dtype
        x = x.to(device=self.fc.weight.device, dtype=dtype)  # (B, 3, H, W)
        x = resize_bilinear_tf1(x, (INCEPTION_INPUT_SIZE, INCEPTION_INPUT_SIZE))  # (B, 3, 299, 299)
        x = (x - 128) / 128
        x = self.Conv2d_1a_3x3(x)  # (B, 32, 149, 149)
        x = self.Conv2d_2a_3x3(x)  # (B, 32, 147, 147)
        x = self.Conv2d_2b_3x3(x)  # (B, 64, 147, 147)
        x = F.max_pool2d(x, kernel_size=3, stride=2)  # (B, 64, 73, 73)
        x = self.Conv2d_3b_1x1(x)  # (B, 80, 73, 73)
        x = self.Conv2d_4a_3x3(x)  # (B, 192, 71, 71)
        x = F.max_pool2d(x, kernel_size=3, stride=2)  # (B, 192, 35, 35)
        x = self.Mixed_5d(self.Mixed_5c(self.Mixed_5b(x)))  # (B, 288, 35, 35)
        x = self.Mixed_6a(x)  # (B, 768, 17, 17)
        x = self.Mixed_6e(self.Mixed_6d(self.Mixed_6c(self.Mixed_6b(x))))  # (B, 768, 17, 17)
        x = self.Mixed_7a(x)  # (B, 1280, 8, 8)
        x = self.Mixed_7c(self.Mixed_7b(x))  # (B, 2048, 8, 8)
        return x.mean(dim=(2, 3))  # (B, 2048)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``logits_unbiased`` (B, 1008) of uint8 images (B, 3, H, W): pool3 @ fc.weight.T, no bias."""
        return self.pool3(x) @ self.fc.weight.T  # (B, 1008)


def _expected_shapes() -> dict[str, tuple[int, ...]]:
    """Keys and shapes of the weight files (batch-norm ``num_batches_tracked`` excluded)."""
    return {k: tuple(v.shape) for k, v in TFInceptionV3().state_dict().items() if not k.endswith("num_batches_tracked")}


def _list_keys(keys: list[str], limit: int = 8) -> str:
    shown = ", ".join(keys[:limit])
    return f"{shown}, ... ({len(keys)} in all)" if len(keys) > limit else shown


def _check_state_dict(state: Any, path: str) -> dict[str, torch.Tensor]:
    """Normalise a loaded state dict to the module's keys, or raise naming every mismatch."""
    if not isinstance(state, Mapping) or not all(isinstance(k, str) for k in state):
        raise ValueError(f"{path} does not hold a state dict (a mapping from names to tensors); got {type(state).__name__}")
    keys = list(state)
    if keys and all(k.startswith("module.") for k in keys):  # saved from nn.DataParallel
        state = {k[len("module."):]: v for k, v in state.items()}
    state = {k: v for k, v in state.items() if not k.endswith("num_batches_tracked")}
    expected = _expected_shapes()
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    wrong = [
        f"{k}: file {tuple(getattr(state[k], 'shape', ()))} vs expected {expected[k]}"
        for k in expected
        if k in state and (not isinstance(state[k], torch.Tensor) or tuple(state[k].shape) != expected[k])
    ]
    if missing or unexpected or wrong:
        parts = []
        if missing:
            parts.append(f"missing keys: {_list_keys(missing)}")
        if unexpected:
            parts.append(f"unexpected keys: {_list_keys(unexpected)}")
        if wrong:
            parts.append(f"wrong shapes: {_list_keys(wrong, 4)}")
        raise ValueError(
            f"{path} is not a TF Inception-v3 (2015-12-05, 1008 classes) state dict as in "
            f"{' / '.join(WEIGHT_FILE_NAMES)}; " + "; ".join(parts)
        )
    return state


def load_inception(weights_path: str | os.PathLike, *, device: str | torch.device = "cpu", dtype: torch.dtype = torch.float32) -> TFInceptionV3:
    """Load the TF-compatible Inception-v3 from a local weight file (never downloads).

    Accepts pytorch-fid's ``pt_inception-2015-12-05-6726825d.pth`` and torch-fidelity's
    ``weights-inception-2015-12-05-6726825d.pth`` (same key layout: ``Conv2d_1a_3x3.conv.weight``,
    ``Conv2d_1a_3x3.bn.{weight,bias,running_mean,running_var}``, ..., ``Mixed_7c.branch_pool.*``,
    ``fc.weight`` (1008, 2048), ``fc.bias`` (1008,)); batch-norm ``num_batches_tracked``
    entries may be present or absent, and a ``module.`` prefix (DataParallel) is removed.

    Parameters
    ----------
    weights_path : path to the ``.pth`` file.
    device : where the module lives ("cpu", "cuda", "auto" = CUDA when available).
    dtype : internal dtype (float32 as torch-fidelity's default; float64 for reference runs).

    Returns
    -------
    TFInceptionV3 in eval mode with ``requires_grad`` off.

    Raises
    ------
    FileNotFoundError if the file does not exist; ValueError if it is not a state dict of
    this architecture (the message lists missing, unexpected and mis-shaped keys).

    Examples
    --------
    >>> load_inception("/nonexistent/pt_inception-2015-12-05-6726825d.pth")
    Traceback (most recent call last):
    ...
    FileNotFoundError: Inception weights not found at /nonexistent/pt_inception-2015-12-05-6726825d.pth ...
    """
    path = os.fspath(weights_path)
    if not os.path.isfile(path):
        raise FileNotFoundError(
            f"Inception weights not found at {path} (gangen never downloads them). Get "
            f"{WEIGHT_FILE_NAMES[0]} (pytorch-fid release 'fid_weights') or {WEIGHT_FILE_NAMES[1]} "
            "(torch-fidelity release v0.2.0) on a machine with internet access and pass its local path."
        )
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # not a torch file, truncated, pickled code...
        raise ValueError(f"{path} could not be read as a torch state dict ({type(exc).__name__}: {exc})") from exc
    state = _check_state_dict(state, path)
    model = TFInceptionV3()
    model.load_state_dict(state, strict=False)  # keys checked above; num_batches_tracked is unused in eval
    model = model.to(device=resolve_device(device), dtype=dtype).eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return model


# --------------------------------------------------------------------------------------
# Batched evaluation
# --------------------------------------------------------------------------------------


def resolve_device(device: str | torch.device | None) -> torch.device:
    """``None`` or ``"auto"`` -> CUDA if available else CPU; see :func:`gangen.nn.ensemble.resolve_device`."""
    from gangen.nn.ensemble import resolve_device as _resolve_device

    return _resolve_device("auto" if device is None else device)


def _as_uint8_images(images: Any, name: str = "images") -> torch.Tensor:
    """Validate a uint8 image batch (N, C, H, W) (numpy or torch) and return a CPU tensor."""
    if is_torch_tensor(images):
        t = images.detach()
    elif isinstance(images, np.ndarray):
        t = torch.from_numpy(images)
    else:
        raise TypeError(f"{name} must be a uint8 numpy array or torch tensor of shape (N, C, H, W); got {type(images).__name__}")
    if t.dtype != torch.uint8:
        raise TypeError(
            f"{name} must have dtype uint8 (pixel values 0..255); got {t.dtype}. "
            "Convert floats with gangen.data.float_to_uint8 first."
        )
    if t.ndim != 4 or min(t.shape) == 0:
        raise ValueError(f"{name} must have shape (N, C, H, W) with every axis non-empty; got shape {tuple(t.shape)}")
    return t


@torch.no_grad()
def _batched_forward(images: Any, model: nn.Module, *, batch_size: int, device: str | torch.device | None) -> np.ndarray:
    """Apply ``model`` to uint8 images (N, C, H, W) in batches; float32 numpy (N, ...) on the CPU.

    ``device`` None keeps the model where it is; otherwise the model is moved there.
    """
    t = _as_uint8_images(images)
    batch_size = check_positive_int(batch_size, "batch_size")
    if device is not None:
        model.to(resolve_device(device))
    param = next(model.parameters(), None)
    dev = param.device if param is not None else torch.device("cpu")
    was_training = model.training
    model.eval()
    try:
        chunks = [model(t[i : i + batch_size].to(dev)).float().cpu() for i in range(0, int(t.shape[0]), batch_size)]
    finally:
        model.train(was_training)
    return torch.cat(chunks).numpy()


def inception_logits(images: Any, model: TFInceptionV3, *, batch_size: int = 50, device: str | torch.device | None = None) -> np.ndarray:
    """``logits_unbiased`` (N, 1008) of uint8 RGB images (N, 3, H, W), computed in batches.

    Feed the result to :func:`inception_score` (10 splits over 50,000 samples in
    Table 1 of Arora et al. 2017). ``device`` None keeps the model where it is;
    "cpu"/"cuda"/"auto" moves it there. Returns float32 numpy (N, 1008); the values do
    not depend on ``batch_size`` beyond float32 rounding.
    """
    if not isinstance(model, TFInceptionV3):
        raise TypeError(f"model must be a TFInceptionV3 from load_inception; got {type(model).__name__}")
    t = _as_uint8_images(images)
    if t.shape[1] != 3:
        raise ValueError(
            f"images must be RGB, shape (N, 3, H, W); got shape {tuple(t.shape)}. "
            "For grayscale, repeat the channel: np.repeat(images, 3, axis=1)."
        )
    return _batched_forward(t, model, batch_size=batch_size, device=device)

