"""One paper style for every gangen figure; figures saved as PDF and PNG.

Used by the studies only: no core module of gangen imports this one, and importing it
does not import matplotlib. Every function that draws selects the non-interactive
``Agg`` backend first, unless pyplot is already loaded (a notebook keeps its backend).

Figures are sized for a two-column paper: :data:`SINGLE_COLUMN_IN` (3.3 in) or
:data:`DOUBLE_COLUMN_IN` (6.9 in) wide, 8-pt serif text (STIX, Times-like), the
colour-blind-safe Okabe-Ito palette in a fixed order (:func:`series_colors` keeps a
series' colour the same across figures), error bands over seeds (:func:`plot_band`),
and log axes plus reference slopes for rates (:func:`slope_guide`). A study's ``plot``::

    with paper_style():
        fig, ax = new_figure(width="single")
        colors = series_colors(sorted(table["p"].unique()))
        for p, rows in table.groupby("p"):
            plot_band(ax, rows["m"], rows["value"], color=colors[p], label=f"p = {p}")
        slope_guide(ax, [1e2, 1e4], slope=-0.5, through=(1e2, 0.3), label=r"$m^{-1/2}$")
        ax.set(xscale="log", yscale="log", xlabel="$m$", ylabel="gap")
        ax.legend()
        return list(save_figure(fig, fig_dir / "nn_distance_sweep"))
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import os
import sys
from pathlib import Path
from typing import Any, Hashable, Iterable, Iterator, Literal, Sequence

import numpy as np

__all__ = [
    "BandStats",
    "DOUBLE_COLUMN_IN",
    "MARKERS",
    "PALETTE",
    "PAPER_RC",
    "SINGLE_COLUMN_IN",
    "band_stats",
    "new_figure",
    "new_panels",
    "paper_style",
    "plot_band",
    "save_figure",
    "series_colors",
    "slope_guide",
]

SINGLE_COLUMN_IN = 3.3  # width of one column of a two-column paper (inches)
DOUBLE_COLUMN_IN = 6.9  # full text width of a two-column paper (inches)
GOLDEN = (5**0.5 - 1) / 2  # default height / width of a single panel

# Okabe & Ito (2008), colour-blind safe; yellow left out (unreadable on white).
PALETTE = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000")
MARKERS = ("o", "s", "^", "D", "v", "P", "X")

PAPER_RC: dict[str, Any] = {
    "font.family": "serif",
    "font.serif": ["STIXGeneral", "DejaVu Serif"],
    "mathtext.fontset": "stix",
    "font.size": 8,
    "axes.labelsize": 8,
    "axes.titlesize": 8,
    "legend.fontsize": 7,
    "xtick.labelsize": 7,
    "ytick.labelsize": 7,
    "axes.linewidth": 0.6,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "axes.grid.which": "major",
    "grid.color": "0.88",
    "grid.linewidth": 0.5,
    "lines.linewidth": 1.2,
    "lines.markersize": 3.5,
    "xtick.major.width": 0.6,
    "ytick.major.width": 0.6,
    "xtick.minor.width": 0.4,
    "ytick.minor.width": 0.4,
    "xtick.major.size": 3.0,
    "ytick.major.size": 3.0,
    "xtick.minor.size": 1.5,
    "ytick.minor.size": 1.5,
    "legend.frameon": False,
    "legend.handlelength": 1.8,
    "figure.dpi": 100,
    "figure.constrained_layout.use": True,
    "pdf.fonttype": 42,  # embed TrueType, so text stays text in the PDF
    "ps.fonttype": 42,
}


def _pyplot() -> Any:
    """``matplotlib.pyplot`` with the Agg backend, unless pyplot was already loaded by the caller."""
    import matplotlib

    if "matplotlib.pyplot" not in sys.modules:
        matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


@contextlib.contextmanager
def paper_style() -> Iterator[None]:
    """Context in which figures are built and saved in the paper style (:data:`PAPER_RC`).

    Fonts and colours are fixed when an artist is created, so create *and* save the
    figure inside the context.
    """
    import matplotlib
    from cycler import cycler

    _pyplot()
    with matplotlib.rc_context({**PAPER_RC, "axes.prop_cycle": cycler(color=PALETTE)}):
        yield


def _width_in(width: float | Literal["single", "double"]) -> float:
    if width == "single":
        return SINGLE_COLUMN_IN
    if width == "double":
        return DOUBLE_COLUMN_IN
    if isinstance(width, bool) or not isinstance(width, (int, float)) or not 0 < width < 50:
        raise ValueError(f"width must be 'single', 'double' or inches in (0, 50); got {width!r}")
    return float(width)


def new_figure(*, width: float | Literal["single", "double"] = "single", height: float | None = None) -> tuple[Any, Any]:
    """One-panel figure ``(fig, ax)``; ``height`` defaults to ``width * GOLDEN`` (inches)."""
    plt = _pyplot()
    w = _width_in(width)
    with paper_style():
        fig, ax = plt.subplots(figsize=(w, height if height is not None else w * GOLDEN))
    return fig, ax


def new_panels(
    nrows: int,
    ncols: int,
    *,
    width: float | Literal["single", "double"] = "double",
    panel_aspect: float = 0.8,
    sharex: bool = False,
    sharey: bool = False,
) -> tuple[Any, np.ndarray]:
    """Grid figure ``(fig, axes)`` with ``axes`` always a 1-D array of ``nrows * ncols`` panels (row-major).

    Panel height = panel width × ``panel_aspect``.
    """
    from gangen._validation import check_positive_float, check_positive_int

    nrows, ncols = check_positive_int(nrows, "nrows"), check_positive_int(ncols, "ncols")
    panel_aspect = check_positive_float(panel_aspect, "panel_aspect")
    plt = _pyplot()
    w = _width_in(width)
    with paper_style():
        fig, axes = plt.subplots(nrows, ncols, figsize=(w, w / ncols * panel_aspect * nrows),
                                 sharex=sharex, sharey=sharey, squeeze=False)
    return fig, axes.ravel()


def series_colors(keys: Iterable[Hashable]) -> dict[Hashable, str]:
    """Colour of each key, taken from :data:`PALETTE` in the order given (cycling).

    Pass the same (e.g. sorted) keys in every figure of a study and a series keeps its colour.

    >>> series_colors([8, 32])
    {8: '#0072B2', 32: '#D55E00'}
    """
    return {key: PALETTE[i % len(PALETTE)] for i, key in enumerate(dict.fromkeys(keys))}


@dataclasses.dataclass(frozen=True)
class BandStats:
    """Per-x summary over repetitions: arrays of shape (k,) for the k distinct x values (sorted)."""

    x: np.ndarray
    center: np.ndarray
    lower: np.ndarray
    upper: np.ndarray
    n: np.ndarray


def band_stats(
    x: Sequence[float],
    y: Sequence[float],
    *,
    band: Literal["ci", "std"] = "ci",
    level: float = 0.95,
    log: bool = False,
) -> BandStats:
    """Mean and error band of ``y`` over the repetitions (seeds) at each distinct ``x``.

    ``band="ci"``: mean ± t_{(1+level)/2, n-1} · s / √n (Student-t confidence interval of
    the mean); ``band="std"``: mean ± s, with s the sample standard deviation (ddof = 1).
    With ``log=True`` the statistics are taken of log y and exponentiated (geometric
    mean, multiplicative band; needs y > 0), the natural choice on log axes. With a
    single repetition at some x the band there has zero width.

    x, y: shape (N,), one entry per measurement.

    >>> s = band_stats([1, 1, 2, 2], [1.0, 3.0, 5.0, 5.0], band="std")
    >>> (s.x.tolist(), s.center.tolist(), s.lower.tolist(), s.upper.tolist())
    ([1.0, 2.0], [2.0, 5.0], [0.5857864376269049, 5.0], [3.414213562373095, 5.0])
    """
    from scipy import stats

    from gangen._validation import check_choice, check_open_unit

    check_choice(band, ("ci", "std"), "band")
    level = check_open_unit(level, "level")
    x = np.asarray(x, dtype=np.float64).ravel()
    y = np.asarray(y, dtype=np.float64).ravel()
    if x.shape != y.shape or x.size == 0:
        raise ValueError(f"x and y must be non-empty and of equal length; got {x.size} and {y.size}")
    if not (np.all(np.isfinite(x)) and np.all(np.isfinite(y))):
        raise ValueError("x and y must be finite")
    if log:
        if np.any(y <= 0):
            raise ValueError(f"log=True needs y > 0; got minimum {y.min():.6g}")
        y = np.log(y)
    xs = np.unique(x)
    center, half, n = np.empty(xs.size), np.zeros(xs.size), np.empty(xs.size, dtype=np.int64)
    for j, xv in enumerate(xs):
        ys = y[x == xv]
        n[j], center[j] = ys.size, ys.mean()
        if ys.size > 1:
            s = ys.std(ddof=1)
            half[j] = s if band == "std" else stats.t.ppf((1 + level) / 2, ys.size - 1) * s / np.sqrt(ys.size)
    lower, upper = center - half, center + half
    if log:
        center, lower, upper = np.exp(center), np.exp(lower), np.exp(upper)
    return BandStats(xs, center, lower, upper, n)


def plot_band(
    ax: Any,
    x: Sequence[float],
    y: Sequence[float],
    *,
    band: Literal["ci", "std"] = "ci",
    level: float = 0.95,
    log: bool = False,
    color: str | None = None,
    marker: str | None = "o",
    label: str | None = None,
    alpha: float = 0.2,
    linestyle: str = "-",
) -> BandStats:
    """Draw the mean of ``y`` at each ``x`` as a line with markers and its band shaded; see :func:`band_stats`."""
    s = band_stats(x, y, band=band, level=level, log=log)
    (line,) = ax.plot(s.x, s.center, marker=marker, color=color, label=label, linestyle=linestyle)
    ax.fill_between(s.x, s.lower, s.upper, color=line.get_color(), alpha=alpha, linewidth=0)
    return s


def slope_guide(
    ax: Any,
    x: Sequence[float],
    *,
    slope: float,
    through: tuple[float, float],
    label: str | None = None,
    color: str = "0.35",
    linestyle: str = "--",
    linewidth: float = 0.9,
) -> Any:
    """Reference power law y = y0 · (x / x0)^slope through ``through = (x0, y0)``, drawn at ``x``."""
    x = np.asarray(x, dtype=np.float64)
    x0, y0 = through
    (line,) = ax.plot(x, y0 * (x / x0) ** slope, color=color, linestyle=linestyle, linewidth=linewidth,
                      label=label, zorder=1.5)
    return line


def save_figure(fig: Any, path_stem: str | os.PathLike, *, dpi: int = 300, close: bool = True) -> tuple[Path, Path]:
    """Save ``fig`` as ``<path_stem>.pdf`` and ``<path_stem>.png`` (``dpi``), each written atomically.

    The PDF carries no creation date, so re-running a study rewrites identical bytes.
    ``close`` releases the figure afterwards. Returns ``(pdf_path, png_path)``.
    """
    from gangen._io import atomic_write_bytes

    stem = Path(path_stem)
    if stem.suffix in (".pdf", ".png"):
        stem = stem.with_suffix("")
    paths = []
    with paper_style():
        for fmt, extra in (("pdf", {"metadata": {"CreationDate": None}}), ("png", {"dpi": dpi})):
            buf = io.BytesIO()
            fig.savefig(buf, format=fmt, bbox_inches="tight", pad_inches=0.02, **extra)
            paths.append(atomic_write_bytes(stem.with_name(f"{stem.name}.{fmt}"), buf.getvalue()))
    if close:
        _pyplot().close(fig)
    return paths[0], paths[1]
