"""Tests of gangen.studies.runner (CLI, cells, cache, resume, outputs) using the toy study."""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Literal, Optional

import numpy as np
import pandas as pd
import pytest

from gangen.studies import _toy
from gangen.studies._toy import STUDY, ToyConfig
from gangen.studies.runner import (
    Cell,
    Study,
    atomic_write_bytes,
    atomic_write_text,
    build_parser,
    check_group_independent,
    config_from_dict,
    derive_seed,
    grid,
    load_results,
    main,
    make_cell,
    resolve_config,
    resolve_device,
    run_study,
)

REPO_ROOT = Path(__file__).resolve().parents[1]
TINY = resolve_config(STUDY, "tiny")  # n_values (10, 100), n_seeds 3: 6 cells


def counting(study: Study) -> tuple[Study, list[dict]]:
    """The same study (same name, version, cache keys) recording every cell its run_group computes."""
    calls: list[dict] = []

    def run_group(cells, config, device):
        calls.extend(c.as_dict() for c in cells)
        return study.run_group(cells, config, device)

    return dataclasses.replace(study, run_group=run_group), calls


def run_quietly(study: Study, config, out: Path, **kw):
    return run_study(study, config, out, device="cpu", progress=False, plot=kw.pop("plot", False), **kw)


def cache_snapshot(out: Path) -> dict[str, tuple[bytes, int]]:
    cache = out / "studies" / "toy" / "cache"
    return {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in sorted(cache.glob("*.json"))}


# --------------------------------------------------------------------------- CLI


@dataclasses.dataclass(frozen=True)
class KitchenSink:
    """Config exercising every supported field type."""

    ms: tuple[int, ...] = dataclasses.field(default=(10, 100), metadata={"help": "sample sizes"})
    lrs: tuple[float, ...] = (0.1,)
    use_bias: bool = True
    loss: Literal["log", "linear"] = "log"
    cap: Optional[int] = None
    width: int = 8
    seed: int = 0


SINK = Study(
    name="sink",
    config_cls=KitchenSink,
    cells=lambda c: grid(c.seed, m=c.ms),
    run_group=lambda cells, c, d: [[{"metric": "m", "value": cell["m"]}] for cell in cells],
    presets={"quick": {"width": 16}, "paper": {"width": 64, "ms": (10, 100, 1000)}},
)


def parse(study: Study, argv: list[str]):
    args = vars(build_parser(study).parse_args(argv))
    preset = args.pop("preset", "quick")
    for option in ("device", "out", "plot_only"):
        args.pop(option)
    return resolve_config(study, preset, args)


def test_help_lists_every_field_with_default_and_help(capsys):
    with pytest.raises(SystemExit) as exc:
        main(STUDY, ["--help"])
    assert exc.value.code == 0
    text = " ".join(capsys.readouterr().out.split())  # undo argparse's line wrapping
    for f in dataclasses.fields(ToyConfig):
        assert "--" + f.name.replace("_", "-") in text
        default = ",".join(map(str, f.default)) if isinstance(f.default, tuple) else str(f.default)
        assert f"default: {default}" in text, f.name
        assert f.metadata["help"] in text
    assert "quick: 10,30,100,300,1000,3000,10000" in text  # the quick preset's n_values, see _toy.PRESETS
    for option in ("--preset", "--device", "--seed", "--out", "--plot-only"):
        assert option in text


@pytest.mark.parametrize(
    "argv",
    [["--bogus"], ["--n-seeds", "abc"], ["--preset", "nope"], ["--device", "tpu"], ["--n-seed", "3"],
     ["--n-values", "1.5"], ["--n-seeds", "0"], ["--estimators", "mode"]],
)
def test_bad_flags_exit_with_code_2(argv, tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        main(STUDY, [*argv, "--out", str(tmp_path)])
    assert exc.value.code == 2
    assert "error" in capsys.readouterr().err
    assert not (tmp_path / "studies").exists()


def test_preset_then_explicit_flags_take_precedence():
    assert parse(SINK, []).width == 16  # quick preset overrides the class default 8
    assert parse(SINK, ["--preset", "paper"]) == KitchenSink(width=64, ms=(10, 100, 1000))
    assert parse(SINK, ["--preset", "paper", "--width", "3"]) == KitchenSink(width=3, ms=(10, 100, 1000))
    assert parse(STUDY, ["--preset", "tiny", "--n-seeds", "7"]) == ToyConfig(n_values=(10, 100), n_seeds=7)
    assert parse(STUDY, ["--seed", "5"]).seed == 5
    assert resolve_config(STUDY, "paper", {"n_seeds": 2}).n_values == _toy.PRESETS["paper"]["n_values"]


def test_field_types_parse_from_the_command_line():
    cfg = parse(SINK, ["--ms", "10,20", "30", "--lrs", "1e-3,0.5", "--no-use-bias", "--loss", "linear",
                       "--cap", "5"])
    assert cfg == KitchenSink(ms=(10, 20, 30), lrs=(1e-3, 0.5), use_bias=False, loss="linear", cap=5, width=16)
    assert parse(SINK, ["--ms", "1e3", "--use-bias", "--cap", "none"]).ms == (1000,)
    assert parse(SINK, ["--cap", "none"]).cap is None
    for bad in (["--loss", "hinge"], ["--ms", "ten"], ["--use-bias", "1"], ["--lrs"]):
        with pytest.raises(SystemExit) as exc:
            parse(SINK, bad)
        assert exc.value.code == 2


def test_config_round_trips_through_json_types():
    cfg = KitchenSink(ms=(1, 2), lrs=(0.5,), cap=3)
    assert config_from_dict(KitchenSink, json.loads(json.dumps(dataclasses.asdict(cfg)))) == cfg
    with pytest.raises(ValueError, match="unknown fields"):
        config_from_dict(KitchenSink, {"nope": 1})
    with pytest.raises(TypeError, match="expects int"):
        resolve_config(SINK, "quick", {"width": 2.5})


def test_study_declaration_is_validated():
    @dataclasses.dataclass(frozen=True)
    class NoSeed:
        x: int = 1

    @dataclasses.dataclass
    class NotFrozen:
        seed: int = 0

    @dataclasses.dataclass(frozen=True)
    class NoDefault:
        seed: int

    run = SINK.run_group
    with pytest.raises(TypeError, match="seed"):
        Study("s", NoSeed, cells=SINK.cells, run_group=run)
    with pytest.raises(TypeError, match="frozen"):
        Study("s", NotFrozen, cells=SINK.cells, run_group=run)
    with pytest.raises(TypeError, match="default"):
        Study("s", NoDefault, cells=SINK.cells, run_group=run)
    with pytest.raises(ValueError, match="unknown fields"):
        Study("s", KitchenSink, cells=SINK.cells, run_group=run, presets={"paper": {"nope": 1}})
    with pytest.raises(ValueError, match="cache_ignore"):
        Study("s", KitchenSink, cells=SINK.cells, run_group=run, cache_ignore=("nope",))
    with pytest.raises(ValueError, match="study name"):
        Study("a/b", KitchenSink, cells=SINK.cells, run_group=run)


# --------------------------------------------------------------------------- cells and seeds


def test_cells_and_seeds():
    cells = grid(7, group_by=("n",), n=[10, 100], rep=range(2))
    assert [c.as_dict() for c in cells] == [{"n": 10, "rep": 0}, {"n": 10, "rep": 1},
                                            {"n": 100, "rep": 0}, {"n": 100, "rep": 1}]
    assert [c.group for c in cells] == [(10,), (10,), (100,), (100,)]
    assert all(c.seed == derive_seed(7, c.as_dict()) for c in cells)
    assert len({c.seed for c in cells}) == 4
    # A cell's seed depends on its values, not its position: growing the grid keeps it.
    bigger = grid(7, n=[1, 10, 100, 1000], rep=range(3))
    assert {c.seed for c in cells} <= {c.seed for c in bigger}
    assert make_cell(7, {"n": 10, "rep": 0}).seed == cells[0].seed
    assert grid(0, n=[1, 2])[0].group is None
    with pytest.raises(ValueError, match="reserved"):
        Cell({"seed": 1}, seed=0)
    with pytest.raises(TypeError, match="str, int, float or bool"):
        Cell({"m": [1, 2]}, seed=0)
    with pytest.raises(ValueError, match="not axes"):
        grid(0, group_by=("p",), n=[1])


def test_resolve_device():
    assert resolve_device("cpu") == "cpu"
    assert resolve_device("auto") in ("cpu", "cuda")
    with pytest.raises(ValueError, match="device"):
        resolve_device("tpu")


# --------------------------------------------------------------------------- running, outputs, cache


def test_outputs_and_table_layout(tmp_path):
    result = run_quietly(STUDY, TINY, tmp_path, preset="tiny")
    res_dir = tmp_path / "studies" / "toy"
    table = pd.read_csv(res_dir / "results.csv")
    assert list(table.columns) == ["n", "rep", "seed", "estimator", "metric", "value"]
    assert len(table) == 2 * 3 * 2  # n values x seeds x estimators
    # Values are carried unchanged: recompute one cell's |mean| from its seed.
    row = table[(table.n == 100) & (table.rep == 2) & (table.estimator == "mean")].iloc[0]
    assert row.seed == derive_seed(TINY.seed, {"n": 100, "rep": 2})
    x = np.random.default_rng(int(row.seed)).normal(0.0, 1.0, size=100)
    assert row.value == abs(x.mean())
    pd.testing.assert_frame_equal(table, result.table)
    meta = json.loads((res_dir / "config.json").read_text())
    assert meta["config"]["n_values"] == [10, 100] and meta["preset"] == "tiny" and meta["device"] == "cpu"
    assert set(meta["versions"]) >= {"python", "numpy", "scipy", "torch", "POT", "matplotlib", "pandas"}
    assert {"git_commit", "git_dirty", "date"} <= set(meta)
    assert json.loads((res_dir / "summary.json").read_text()) == result.summary
    assert set(result.summary) == {"mean", "median"}


def test_rerun_recomputes_nothing_and_grid_growth_reuses_cells(tmp_path):
    study, calls = counting(STUDY)
    first = run_quietly(study, TINY, tmp_path)
    csv = (tmp_path / "studies" / "toy" / "results.csv").read_bytes()
    snapshot = cache_snapshot(tmp_path)
    assert (first.n_computed, len(calls), len(snapshot)) == (6, 6, 6)
    calls.clear()
    again = run_quietly(study, TINY, tmp_path)
    assert (again.n_computed, calls) == (0, [])
    assert (tmp_path / "studies" / "toy" / "results.csv").read_bytes() == csv
    assert cache_snapshot(tmp_path) == snapshot
    # sleep_s is in cache_ignore; n_values/n_seeds only define the grid: only new cells run.
    bigger = dataclasses.replace(TINY, n_values=(10, 100, 1000), sleep_s=0.001)
    grown = run_quietly(study, bigger, tmp_path)
    assert grown.n_computed == 3 and sorted(c["n"] for c in calls) == [1000] * 3
    # A field in the key (sigma) or a new code-version tag invalidates every cell.
    calls.clear()
    assert run_quietly(study, dataclasses.replace(TINY, sigma=2.0), tmp_path).n_computed == 6
    assert run_quietly(dataclasses.replace(study, version="2"), TINY, tmp_path).n_computed == 6


def test_unreadable_cache_file_is_recomputed(tmp_path):
    run_quietly(STUDY, TINY, tmp_path)
    victim = sorted((tmp_path / "studies" / "toy" / "cache").glob("*.json"))[0]
    victim.write_text("{truncated")
    with pytest.warns(UserWarning, match="unreadable cache file"):
        assert run_quietly(STUDY, TINY, tmp_path).n_computed == 1
    assert json.loads(victim.read_text())["key"] == victim.stem


def test_partial_group_and_fresh_run_give_identical_results(tmp_path):
    run_quietly(STUDY, TINY, tmp_path / "a")
    cache = tmp_path / "a" / "studies" / "toy" / "cache"
    removed = sorted(cache.glob("*.json"))[::2]  # drop every other cell, splitting groups
    for p in removed:
        p.unlink()
    study, calls = counting(STUDY)
    resumed = run_quietly(study, TINY, tmp_path / "a")
    assert resumed.n_computed == len(calls) == len(removed) == 3
    fresh = run_quietly(STUDY, TINY, tmp_path / "b")
    pd.testing.assert_frame_equal(resumed.table, fresh.table)


def test_sigkill_mid_run_resumes_without_recomputing(tmp_path):
    """Kill -9 a CLI run after its first cells are cached; the rerun computes only the rest."""
    killed, reference = tmp_path / "killed", tmp_path / "reference"
    flags = ["--preset", "tiny", "--n-values", "10,20,40,80", "--n-seeds", "3", "--device", "cpu"]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO_ROOT), os.environ.get("PYTHONPATH", "")])}
    log = tmp_path / "stderr.txt"
    with open(log, "wb") as err:
        # 4 groups of 3 cells, 0.25 s per cell: about 0.75 s between cache writes.
        proc = subprocess.Popen([sys.executable, "-m", "gangen.studies._toy", *flags, "--sleep-s", "0.25",
                                 "--out", str(killed)], env=env, stdout=subprocess.DEVNULL, stderr=err)
        cache = killed / "studies" / "toy" / "cache"
        deadline = time.monotonic() + 60
        while proc.poll() is None and time.monotonic() < deadline and not list(cache.glob("*.json")):
            time.sleep(0.01)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert proc.returncode == -signal.SIGKILL, f"the run ended before it was killed:\n{log.read_text()}"
    before = cache_snapshot(killed)
    assert 1 <= len(before) < 12, f"expected a partial run, found {len(before)} of 12 cells cached"
    assert not (killed / "studies" / "toy" / "results.csv").exists()

    config = resolve_config(STUDY, "tiny", {"n_values": (10, 20, 40, 80), "n_seeds": 3})
    study, calls = counting(STUDY)
    resumed = run_quietly(study, config, killed)
    assert resumed.n_computed == len(calls) == 12 - len(before)
    after = cache_snapshot(killed)
    assert {name: after[name] for name in before} == before  # finished cells untouched (content and mtime)
    run_quietly(STUDY, config, reference)
    csv = "studies/toy/results.csv"
    assert (killed / csv).read_bytes() == (reference / csv).read_bytes()
    assert (killed / "studies/toy/summary.json").read_bytes() == (reference / "studies/toy/summary.json").read_bytes()


def test_group_independence_check():
    check_group_independent(STUDY, TINY, n_groups=2)

    def entangled(cells, config, device):  # a cell's value depends on its group-mates
        return [[{"metric": "x", "value": float(len(cells))}] for _ in cells]

    bad = dataclasses.replace(STUDY, run_group=entangled)
    with pytest.raises(AssertionError, match="different rows"):
        check_group_independent(bad, TINY)


@pytest.mark.parametrize(
    "rows, match",
    [
        ([[{"metric": "x", "value": float("nan")}]], "finite"),
        ([[{"metric": "x"}]], "'metric' and 'value'"),
        ([[{"metric": "x", "value": 1.0, "n": 3}]], "clashes"),
        ([[{"metric": "x", "value": 1.0, "lr": [1]}]], "str, int, float or bool"),
        ([], "one row list per cell"),
    ],
)
def test_bad_rows_are_rejected(tmp_path, rows, match):
    bad = dataclasses.replace(STUDY, run_group=lambda cells, config, device: rows,
                              cells=lambda config: grid(config.seed, n=[3]))
    with pytest.raises((ValueError, TypeError), match=match):
        run_quietly(bad, TINY, tmp_path)
    assert not list((tmp_path / "studies" / "toy" / "cache").glob("*.json"))


def test_plot_only_redraws_without_computing(tmp_path, capsys):
    table = main(STUDY, ["--preset", "tiny", "--device", "cpu", "--out", str(tmp_path)])
    figs = [tmp_path / "figures" / "toy.pdf", tmp_path / "figures" / "toy.png"]
    assert all(p.stat().st_size > 1000 for p in figs)
    assert "computed 6 of 6 cells" in capsys.readouterr().err
    for p in figs:
        p.unlink()

    def must_not_run(cells, config, device):
        raise AssertionError("--plot-only ran cells")

    frozen = dataclasses.replace(STUDY, run_group=must_not_run)
    summary_path = tmp_path / "studies" / "toy" / "summary.json"
    first_summary = json.loads(summary_path.read_text())
    summary_path.write_text("{}")  # a stale summary: --plot-only recomputes it from results.csv
    replotted = main(frozen, ["--plot-only", "--out", str(tmp_path)])
    assert all(p.stat().st_size > 1000 for p in figs)
    pd.testing.assert_frame_equal(replotted, table)
    assert first_summary and json.loads(summary_path.read_text()) == first_summary
    assert load_results(STUDY, tmp_path).config == TINY
    with pytest.raises(SystemExit) as exc:
        main(frozen, ["--plot-only", "--out", str(tmp_path / "empty")])
    assert exc.value.code == 2
    with pytest.raises(SystemExit) as exc:
        main(frozen, ["--plot-only", "--n-seeds", "3", "--out", str(tmp_path)])
    assert exc.value.code == 2


def test_toy_mean_error_matches_closed_form(tmp_path):
    # E|mean of n N(0,1)| = sqrt(2/(pi n)); the ratio's sd over 300 seeds is
    # sqrt(pi/2 - 1) / sqrt(300) = 0.044 (half-normal), so 4 sd = 0.17.
    config = ToyConfig(n_values=(50,), n_seeds=300, estimators=("mean",))
    summary = run_quietly(STUDY, config, tmp_path).summary
    assert abs(summary["mean"]["mean_abs_error_over_theory"]["50"] - 1.0) < 0.17


# --------------------------------------------------------------------------- atomic writes


def test_atomic_write_replaces_whole_file_or_nothing(tmp_path, monkeypatch):
    target = tmp_path / "sub" / "f.json"
    atomic_write_text(target, "old")
    assert target.read_text() == "old"

    def failing_replace(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", failing_replace)
    with pytest.raises(OSError, match="disk full"):
        atomic_write_text(target, "new" * 1000)
    monkeypatch.undo()
    assert target.read_text() == "old"
    assert [p.name for p in target.parent.iterdir()] == ["f.json"]  # no temp file left behind
    atomic_write_bytes(target, b"new")
    assert target.read_bytes() == b"new" and [p.name for p in target.parent.iterdir()] == ["f.json"]
    with pytest.raises(TypeError):
        atomic_write_bytes(target, "text")
