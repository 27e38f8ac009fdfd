"""Tests of gangen.plotting: saved files, band statistics against scipy, style helpers, import hygiene."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from gangen.plotting import (
    DOUBLE_COLUMN_IN,
    PALETTE,
    SINGLE_COLUMN_IN,
    band_stats,
    new_figure,
    new_panels,
    paper_style,
    plot_band,
    save_figure,
    series_colors,
    slope_guide,
)

GANGEN = Path(__file__).resolve().parents[1] / "gangen"


def test_save_figure_writes_pdf_and_png(tmp_path):
    from PIL import Image

    with paper_style():
        fig, ax = new_figure(width="single")
        plot_band(ax, [1, 1, 10, 10], [1.0, 2.0, 0.3, 0.4], label="a")
        ax.set(xscale="log", yscale="log", xlabel="$m$")
        ax.legend()
        pdf, png = save_figure(fig, tmp_path / "out" / "fig", dpi=100)
    assert (pdf.name, png.name) == ("fig.pdf", "fig.png")
    assert pdf.read_bytes()[:5] == b"%PDF-" and pdf.stat().st_size > 1000
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with Image.open(png) as im:
        width_px, height_px = im.size
    # bbox_inches="tight" trims the margin, so the width is close to (not above) 3.3 in x 100 dpi.
    assert 0.7 * SINGLE_COLUMN_IN * 100 < width_px <= SINGLE_COLUMN_IN * 100 + 5 and height_px > 100
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["fig.pdf", "fig.png"]  # no temp files


def test_pdf_bytes_are_reproducible(tmp_path):
    def draw(stem):
        with paper_style():
            fig, ax = new_figure()
            ax.plot([1, 2, 3], [3, 1, 2])
            return save_figure(fig, stem)[0].read_bytes()

    assert draw(tmp_path / "a") == draw(tmp_path / "b")


def test_band_stats_match_scipy():
    rng = np.random.default_rng(0)
    x = np.repeat([10.0, 100.0, 1000.0], 5)
    y = rng.lognormal(size=x.size)
    ci = band_stats(x, y, band="ci", level=0.9)
    sd = band_stats(x, y, band="std")
    geo = band_stats(x, y, band="ci", log=True)
    for j, xv in enumerate([10.0, 100.0, 1000.0]):
        ys = y[x == xv]
        lo, hi = stats.t.interval(0.9, len(ys) - 1, loc=ys.mean(), scale=stats.sem(ys))
        np.testing.assert_allclose([ci.lower[j], ci.upper[j]], [lo, hi], rtol=1e-12)
        np.testing.assert_allclose([sd.lower[j], sd.upper[j]], ys.mean() + np.array([-1, 1]) * ys.std(ddof=1))
        np.testing.assert_allclose(geo.center[j], stats.gmean(ys), rtol=1e-12)
    assert ci.x.tolist() == [10.0, 100.0, 1000.0] and ci.n.tolist() == [5, 5, 5]
    single = band_stats([1.0], [2.0])  # one repetition: a zero-width band, not NaN
    assert (single.lower[0], single.center[0], single.upper[0]) == (2.0, 2.0, 2.0)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"x": [1, 2], "y": [1.0]}, "equal length"),
        ({"x": [1], "y": [np.nan]}, "finite"),
        ({"x": [1], "y": [-1.0], "log": True}, "y > 0"),
        ({"x": [1], "y": [1.0], "band": "iqr"}, "band"),
        ({"x": [1], "y": [1.0], "level": 95}, "level"),
    ],
)
def test_band_stats_rejects_bad_input(kwargs, match):
    with pytest.raises(ValueError, match=match):
        band_stats(**kwargs)


def test_style_helpers():
    assert series_colors(["b", "a", "b"]) == {"b": PALETTE[0], "a": PALETTE[1]}
    assert list(series_colors(range(len(PALETTE) + 1)).values())[-1] == PALETTE[0]  # cycles
    fig, axes = new_panels(1, 1)
    assert axes.shape == (1,)  # always a 1-D array, even for one panel
    fig2, axes2 = new_panels(2, 3, width="double", panel_aspect=0.5)
    assert axes2.shape == (6,)
    np.testing.assert_allclose(fig2.get_size_inches(), [DOUBLE_COLUMN_IN, DOUBLE_COLUMN_IN / 3 * 0.5 * 2])
    line = slope_guide(axes[0], [10.0, 1000.0], slope=-0.5, through=(10.0, 2.0))
    xs, ys = line.get_data()
    assert ys[0] == 2.0 and np.isclose(np.log(ys[1] / ys[0]) / np.log(xs[1] / xs[0]), -0.5)
    with pytest.raises(ValueError, match="width"):
        new_figure(width="triple")
    import matplotlib.pyplot as plt

    plt.close(fig)
    plt.close(fig2)


def test_import_hygiene():
    """Importing gangen.plotting loads no matplotlib; no core module imports plotting."""
    code = "import sys, gangen.plotting; print('matplotlib' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=GANGEN.parent, env={"PYTHONPATH": str(GANGEN.parent), "PATH": ""})
    assert out.stdout.strip() == "False"
    core = [p for p in GANGEN.rglob("*.py") if "studies" not in p.parts and p.name != "plotting.py"]
    assert core, "no core modules found"
    pattern = re.compile(r"^\s*(from|import)\s+(gangen\.plotting|matplotlib|gangen import .*plotting|\.+ import .*plotting)",
                         re.MULTILINE)
    offenders = [str(p) for p in core if pattern.search(p.read_text(encoding="utf-8"))]
    assert offenders == []
    assert pattern.search("    import matplotlib.pyplot as plt") and pattern.search("from gangen import plotting")
