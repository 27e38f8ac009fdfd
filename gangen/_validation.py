"""Input validation shared by every public function of gangen.

Each helper raises ``ValueError`` or ``TypeError`` with a message that names the
argument, what was expected and what arrived. Public functions call these at their
boundary; internal code uses ``assert`` only for invariants.
"""

from __future__ import annotations

import numbers
from typing import Any, Iterable

import numpy as np

__all__ = [
    "as_samples",
    "as_batched_samples",
    "check_same_dim",
    "as_weights",
    "check_choice",
    "check_positive_int",
    "check_nonneg_int",
    "check_positive_float",
    "check_open_unit",
    "is_torch_tensor",
]


def is_torch_tensor(x: Any) -> bool:
    """True if ``x`` is a ``torch.Tensor`` (without importing torch when it is not loaded)."""
    import sys

    torch = sys.modules.get("torch")
    return torch is not None and isinstance(x, torch.Tensor)


def _to_numpy(x: Any, name: str) -> np.ndarray:
    if is_torch_tensor(x):
        x = x.detach().cpu().numpy()
    if isinstance(x, (str, bytes)) or x is None or isinstance(x, dict):
        raise TypeError(f"{name} must be an array of numbers (numpy array, torch tensor or nested list); got {type(x).__name__}")
    try:
        arr = np.asarray(x)
    except Exception as exc:  # ragged lists etc.
        raise TypeError(f"{name} must be convertible to a numeric array; got {type(x).__name__} ({exc})") from exc
    if arr.dtype == object or not (np.issubdtype(arr.dtype, np.number) or arr.dtype == np.bool_):
        raise TypeError(f"{name} must hold real numbers; got an array of dtype {arr.dtype}")
    if np.iscomplexobj(arr):
        raise TypeError(f"{name} must hold real numbers; got complex dtype {arr.dtype}")
    return arr


def _check_finite(arr: np.ndarray, name: str) -> None:
    if not np.all(np.isfinite(arr)):
        n_nan = int(np.isnan(arr).sum())
        n_inf = int(np.isinf(arr).sum())
        raise ValueError(f"{name} must be finite; got {n_nan} NaN and {n_inf} inf entries")


def as_samples(x: Any, name: str = "x", *, dtype: Any = np.float64) -> np.ndarray:
    """Validate a sample array of shape (n, d) and return it as a float numpy array.

    A 1-D input of shape (n,) is read as n points in dimension 1.
    """
    arr = _to_numpy(x, name)
    if arr.ndim == 1:
        arr = arr[:, None]
    if arr.ndim != 2:
        raise ValueError(f"{name} must have shape (n, d) (or (n,) for 1-D points); got ndim={arr.ndim}, shape {arr.shape}")
    if arr.shape[0] == 0:
        raise ValueError(f"{name} must contain at least one sample; got shape {arr.shape}")
    if arr.shape[1] == 0:
        raise ValueError(f"{name} must have dimension d >= 1; got shape {arr.shape}")
    arr = arr.astype(dtype, copy=False)
    _check_finite(arr, name)
    return arr


def as_batched_samples(x: Any, name: str = "x", *, dtype: Any = np.float64) -> np.ndarray:
    """Validate a batch of sample arrays of shape (K, n, d); return a float numpy array."""
    arr = _to_numpy(x, name)
    if arr.ndim != 3:
        raise ValueError(f"{name} must have shape (K, n, d); got ndim={arr.ndim}, shape {arr.shape}")
    if min(arr.shape) == 0:
        raise ValueError(f"{name} must be non-empty in every axis (K, n, d); got shape {arr.shape}")
    arr = arr.astype(dtype, copy=False)
    _check_finite(arr, name)
    return arr


def check_same_dim(x: np.ndarray, y: np.ndarray, names: tuple[str, str] = ("x", "y")) -> None:
    """Raise if two sample arrays have different dimension d (last axis)."""
    if x.shape[-1] != y.shape[-1]:
        raise ValueError(
            f"{names[0]} and {names[1]} must have the same dimension d; got d={x.shape[-1]} for {names[0]} "
            f"(shape {x.shape}) and d={y.shape[-1]} for {names[1]} (shape {y.shape})"
        )


def as_weights(w: Any, n: int, name: str = "a", *, atol: float = 1e-6) -> np.ndarray:
    """Validate probability weights of length n (non-negative, finite, summing to 1 within ``atol``).

    ``None`` gives uniform weights.
    """
    if w is None:
        return np.full(n, 1.0 / n)
    arr = _to_numpy(w, name).astype(np.float64, copy=False)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be a 1-D weight vector of length {n}; got shape {arr.shape}")
    if arr.shape[0] != n:
        raise ValueError(f"{name} must have one weight per sample ({n}); got {arr.shape[0]} weights")
    _check_finite(arr, name)
    if np.any(arr < 0):
        raise ValueError(f"{name} must be non-negative; got minimum weight {arr.min():.6g}")
    total = float(arr.sum())
    if abs(total - 1.0) > atol:
        raise ValueError(f"{name} must sum to 1 (probability weights); got sum {total:.9g}")
    return arr


def check_choice(value: Any, choices: Iterable[Any], name: str) -> Any:
    """Raise unless ``value`` is one of ``choices``."""
    choices = tuple(choices)
    if value not in choices:
        raise ValueError(f"{name} must be one of {', '.join(repr(c) for c in choices)}; got {value!r}")
    return value


def check_positive_int(value: Any, name: str) -> int:
    """Raise unless ``value`` is an integer >= 1 (bools rejected)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer >= 1; got {type(value).__name__} {value!r}")
    if value < 1:
        raise ValueError(f"{name} must be an integer >= 1; got {value}")
    return int(value)


def check_nonneg_int(value: Any, name: str) -> int:
    """Raise unless ``value`` is an integer >= 0 (bools rejected)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer >= 0; got {type(value).__name__} {value!r}")
    if value < 0:
        raise ValueError(f"{name} must be an integer >= 0; got {value}")
    return int(value)


def check_positive_float(value: Any, name: str) -> float:
    """Raise unless ``value`` is a finite real number > 0."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a positive real number; got {type(value).__name__} {value!r}")
    if not np.isfinite(value) or value <= 0:
        raise ValueError(f"{name} must be a finite number > 0; got {value}")
    return float(value)


def check_open_unit(value: Any, name: str) -> float:
    """Raise unless ``value`` lies in the open interval (0, 1)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number in (0, 1); got {type(value).__name__} {value!r}")
    if not (0.0 < float(value) < 1.0):
        raise ValueError(f"{name} must lie in the open interval (0, 1); got {value}")
    return float(value)
