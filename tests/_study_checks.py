"""Shared assertions of the study smoke tests (imported by tests/test_study_*.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence


def assert_study_outputs(out: Path, study: str, figure_stems: Sequence[str], *, min_bytes: int = 1000) -> Path:
    """A run into ``out`` wrote results.csv, config.json and summary.json of ``study`` and, for
    every stem, a PDF and a PNG figure of more than ``min_bytes`` bytes; returns the results folder."""
    res_dir = out / "studies" / study
    for name in ("results.csv", "config.json", "summary.json"):
        assert (res_dir / name).is_file(), name
    for stem in figure_stems:
        for ext in ("pdf", "png"):
            assert (out / "figures" / f"{stem}.{ext}").stat().st_size > min_bytes, (stem, ext)
    return res_dir
