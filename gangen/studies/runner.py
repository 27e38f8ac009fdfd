"""The study runner: one CLI, one cell cache and one output layout for every study.

A *study* is a grid of independent *cells* (one parameter combination and one seed
each). The runner expands the grid, skips cells already cached, runs the rest group by
group (cells sharing a ``group`` key go to one ``run_group`` call, e.g. one batched
ensemble), caches every finished cell atomically, and writes::

    DIR/studies/<name>/results.csv    tidy table: cell params, seed, extra row columns, metric, value
    DIR/studies/<name>/config.json    resolved config, preset, device, package versions, git commit, date
    DIR/studies/<name>/summary.json   the study's headline numbers (its ``summarize``)
    DIR/studies/<name>/cache/*.json   one file per finished cell (resume after any interruption)
    DIR/figures/<name>*.pdf|png       the study's figures (its ``plot``, via :mod:`gangen.plotting`)

Writing a study
---------------
A study module defines a frozen config dataclass (every field has a default; an
``int`` field named ``seed`` is required; ``field(metadata={"help": ...})`` gives the
CLI help), its presets, four functions and a :class:`Study` tying them together:

- ``cells(config) -> list[Cell]``: the grid. Build it with :func:`grid` (a Cartesian
  product) or :func:`make_cell`; both derive each cell's seed from
  ``(config.seed, cell params)`` with :func:`derive_seed`.
- ``run_group(cells, config, device) -> list[list[dict]]``: one list of rows per cell,
  in the order of ``cells``. A row is a dict with ``"metric"`` (str), ``"value"``
  (finite float) and any extra scalar columns (e.g. the optimisation budget:
  ``steps``, ``restarts``, ``lr``, or a label such as ``estimator``). Contract: a cell's
  rows depend only on that cell, ``config`` and ``device``, never on which other cells
  share the call (the runner passes only the uncached cells of a group after a resume).
  :func:`check_group_independent` tests this.
- ``summarize(table, config) -> dict`` (JSON-serialisable; non-finite floats become null).
- ``plot(table, config, summary, fig_dir) -> list[Path]``: build figures inside
  ``with gangen.plotting.paper_style():`` and save with ``gangen.plotting.save_figure``
  (convention: ``fig_dir / name`` or ``fig_dir / f"{name}_<panel>"``).

``Study.version`` is the code-version tag: bump it whenever a change to the study's code
changes any cell's result, so that old cache entries are not reused. A cell's cache key
hashes the study name and version, gangen's version, the cell's params and seed, the
device, and every config field except ``seed`` and those listed in
``Study.cache_ignore`` (declare there the grid-defining fields, whose values already sit
in the cell params, and runtime knobs that change no result), so extending a grid reuses
every cell already computed. The study module ends with
``if __name__ == "__main__": main(STUDY)``; see ``gangen/studies/_toy.py`` for a full
template. A minimal study, run from Python:

>>> import dataclasses, tempfile
>>> from gangen.studies.runner import Study, grid, run_study
>>> @dataclasses.dataclass(frozen=True)
... class Cfg:
...     ks: tuple[int, ...] = dataclasses.field(default=(1, 2), metadata={"help": "values of k"})
...     seed: int = 0
>>> study = Study(
...     name="square",
...     config_cls=Cfg,
...     cells=lambda cfg: grid(cfg.seed, k=cfg.ks),
...     run_group=lambda cells, cfg, device: [[{"metric": "k2", "value": c["k"] ** 2}] for c in cells],
...     cache_ignore=("ks",),
... )
>>> with tempfile.TemporaryDirectory() as out:
...     first = run_study(study, Cfg(), out, device="cpu", progress=False)
...     again = run_study(study, Cfg(ks=(1, 2, 3)), out, device="cpu", progress=False)
>>> first.table[["k", "metric", "value"]].values.tolist()
[[1, 'k2', 1.0], [2, 'k2', 4.0]]
>>> (again.n_cells, again.n_computed)  # k = 1, 2 came from the cache
(3, 1)

From the shell the same study runs as ``python -m gangen.studies.<module> [--preset
quick|paper] [--device auto|cpu|cuda] [--seed S] [--out DIR] [--plot-only] [--<field>
VALUE ...]``; ``--help`` lists every config field with its default and preset values.
Tuple fields take comma- or space-separated values (``--ks 1,2,4`` or ``--ks 1 2 4``),
bools take ``--flag``/``--no-flag``, and explicit flags override the preset.

Execution is local and sequential. Each pending group is an independent task
(:func:`_compute_group` is a pure function of its inputs), so a Ray or process-pool
executor can replace the loop in :func:`run_study` later without touching studies.
"""

from __future__ import annotations

import argparse
import collections
import dataclasses
import datetime
import hashlib
import importlib.metadata
import itertools
import json
import math
import numbers
import os
import platform
import subprocess
import sys
import time
import types
import typing
import warnings
from pathlib import Path
from typing import Any, Callable, Hashable, Iterable, Iterator, Literal, Mapping, Sequence, Union

import numpy as np
import pandas as pd

from gangen._io import atomic_write_bytes, atomic_write_text

__all__ = [
    "Cell",
    "steps_param",
    "parse_steps_param",
    "Study",
    "StudyResults",
    "atomic_write_bytes",
    "atomic_write_text",
    "build_parser",
    "check_group_independent",
    "config_from_dict",
    "derive_seed",
    "grid",
    "load_results",
    "main",
    "make_cell",
    "resolve_config",
    "resolve_device",
    "run_study",
]

Scalar = Union[str, int, float, bool]
Row = Mapping[str, Any]
RUNNER_OPTIONS = ("preset", "device", "out", "plot_only")
RESERVED_COLUMNS = ("seed", "metric", "value")
CACHE_FORMAT = 1
# Distributions whose versions go into config.json (importlib.metadata names).
VERSIONED_PACKAGES = ("numpy", "scipy", "torch", "POT", "matplotlib", "pandas", "tqdm")


# --------------------------------------------------------------------------- atomic I/O
# atomic_write_bytes / atomic_write_text live in gangen._io (shared with plotting and the
# classifier cache) and are re-exported here for study authors.


# --------------------------------------------------------------------------- JSON helpers


def _jsonable(obj: Any) -> Any:
    """Plain-JSON version of ``obj``: numpy scalars/arrays, tuples, paths; non-finite floats -> None."""
    if isinstance(obj, Mapping):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple, np.ndarray)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, (bool, np.bool_)):
        return bool(obj)
    if isinstance(obj, numbers.Integral):
        return int(obj)
    if isinstance(obj, numbers.Real):
        return float(obj) if math.isfinite(obj) else None
    if obj is None or isinstance(obj, str):
        return obj
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    raise TypeError(f"cannot store a {type(obj).__name__} in JSON: {obj!r}")


def _canonical_json(obj: Any) -> str:
    return json.dumps(_jsonable(obj), sort_keys=True, separators=(",", ":"), allow_nan=False)


def _dump_json(obj: Any) -> str:
    return json.dumps(_jsonable(obj), indent=2, allow_nan=False) + "\n"


# --------------------------------------------------------------------------- cells


def derive_seed(study_seed: int, params: Mapping[str, Scalar]) -> int:
    """Seed of one cell: the first 63 bits of SHA-256 of the canonical JSON of ``(study_seed, params)``.

    Depends on the parameter *values*, not on the cell's position in the grid, so
    extending a grid changes no existing cell's seed (nor its cache entry). The result
    fits numpy (``default_rng``) and torch (``manual_seed``).

    >>> derive_seed(0, {"n": 10}) == derive_seed(0, {"n": 10}) != derive_seed(1, {"n": 10})
    True
    >>> 0 <= derive_seed(0, {"n": 10}) < 2**63
    True
    """
    digest = hashlib.sha256(_canonical_json([int(study_seed), dict(params)]).encode()).digest()
    return int.from_bytes(digest[:8], "big") >> 1


def _check_scalar(value: Any, what: str) -> Scalar:
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        value = float(value)
        if not math.isfinite(value):
            raise ValueError(f"{what} must be finite; got {value}")
        return value
    if isinstance(value, str):
        return value
    raise TypeError(f"{what} must be a str, int, float or bool; got {type(value).__name__} {value!r}")


@dataclasses.dataclass(frozen=True)
class Cell:
    """One point of a study's grid: frozen parameters, a seed, and a group key.

    ``params`` are scalar values (str, int, float, bool), given as a mapping and stored
    as a tuple of ``(name, value)`` pairs; read them with ``cell["m"]`` or
    :meth:`as_dict`. Cells with equal ``group`` go to one ``run_group`` call;
    ``group=None`` runs the cell alone.

    >>> c = Cell({"m": 100, "width": 8}, seed=3, group=8)
    >>> (c["m"], c.as_dict(), c.seed)
    (100, {'m': 100, 'width': 8}, 3)
    """

    params: Any
    seed: int
    group: Hashable = None

    def __post_init__(self) -> None:
        items = tuple(self.params.items()) if isinstance(self.params, Mapping) else tuple(self.params)
        clean = []
        for name, value in items:
            if not isinstance(name, str) or not name.isidentifier():
                raise ValueError(f"cell parameter names must be identifiers; got {name!r}")
            if name in RESERVED_COLUMNS:
                raise ValueError(f"cell parameter name {name!r} is reserved (reserved: {', '.join(RESERVED_COLUMNS)})")
            clean.append((name, _check_scalar(value, f"cell parameter {name!r}")))
        if len({name for name, _ in clean}) != len(clean):
            raise ValueError(f"cell parameter names must be unique; got {[n for n, _ in clean]}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, numbers.Integral) or self.seed < 0:
            raise ValueError(f"cell seed must be an integer >= 0; got {self.seed!r}")
        hash(self.group)  # raises TypeError for an unhashable group key
        object.__setattr__(self, "params", tuple(clean))
        object.__setattr__(self, "seed", int(self.seed))

    def __getitem__(self, name: str) -> Scalar:
        for key, value in self.params:
            if key == name:
                return value
        raise KeyError(f"cell has no parameter {name!r}; it has {[k for k, _ in self.params]}")

    def as_dict(self) -> dict[str, Scalar]:
        """The parameters as a new ``dict`` (insertion order kept)."""
        return dict(self.params)


def make_cell(study_seed: int, params: Mapping[str, Scalar], *, group: Hashable = None) -> Cell:
    """A :class:`Cell` with its seed derived from ``(study_seed, params)`` (see :func:`derive_seed`).

    >>> make_cell(0, {"n": 5}).seed == derive_seed(0, {"n": 5})
    True
    """
    return Cell(params, seed=derive_seed(study_seed, params), group=group)


def steps_param(steps: Iterable[int]) -> str:
    """A list of step counts as one scalar cell parameter ("0,25,50"); :func:`parse_steps_param` inverts it.

    >>> steps_param([0, 25, 50]), parse_steps_param("0,25,50")
    ('0,25,50', (0, 25, 50))
    >>> parse_steps_param("")
    ()
    """
    return ",".join(str(int(t)) for t in steps)


def parse_steps_param(text: object) -> tuple[int, ...]:
    """The step counts of a :func:`steps_param` string (empty string: none)."""
    return tuple(int(t) for t in str(text).split(",") if t.strip())


def grid(study_seed: int, *, group_by: Sequence[str] = (), **axes: Iterable[Scalar]) -> list[Cell]:
    """Cartesian product of ``axes`` (first axis slowest) as cells; ``group_by`` names the shared-group axes.

    Cells whose values agree on every axis in ``group_by`` share a group; with
    ``group_by=()`` each cell runs alone.

    >>> cells = grid(0, group_by=("n",), n=[10, 100], rep=range(2))
    >>> [(c.as_dict(), c.group) for c in cells][:3]
    [({'n': 10, 'rep': 0}, (10,)), ({'n': 10, 'rep': 1}, (10,)), ({'n': 100, 'rep': 0}, (100,))]
    """
    names = list(axes)
    unknown = [g for g in group_by if g not in names]
    if unknown:
        raise ValueError(f"group_by names {unknown} are not axes of the grid; axes are {names}")
    values = [list(axes[name]) for name in names]
    cells = []
    for combo in itertools.product(*values):
        params = dict(zip(names, combo))
        group = tuple(params[g] for g in group_by) if group_by else None
        cells.append(make_cell(study_seed, params, group=group))
    return cells


# --------------------------------------------------------------------------- config fields


@dataclasses.dataclass(frozen=True)
class _FieldSpec:
    """How one config field is parsed, coerced and shown."""

    name: str
    kind: str  # "bool", "scalar" or "tuple"
    elem: type  # int, float, str or bool
    choices: tuple | None
    optional: bool
    default: Any
    help: str


def _field_spec(field: dataclasses.Field, hint: Any) -> _FieldSpec:
    optional = False
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (Union, types.UnionType) and type(None) in args:
        rest = [a for a in args if a is not type(None)]
        if len(rest) != 1:
            raise TypeError(f"config field {field.name!r}: unsupported type {hint!r}")
        optional, hint = True, rest[0]
        origin, args = typing.get_origin(hint), typing.get_args(hint)
    kind, elem, choices = "scalar", hint, None
    if origin is tuple:
        if len(args) != 2 or args[1] is not Ellipsis:
            raise TypeError(f"config field {field.name!r}: tuples must be typed tuple[T, ...]; got {hint!r}")
        kind, elem = "tuple", args[0]
    if typing.get_origin(elem) is Literal:
        choices = typing.get_args(elem)
        elem = type(choices[0])
    if elem is bool and kind == "scalar":
        kind = "bool"
    if elem not in (int, float, str, bool):
        raise TypeError(f"config field {field.name!r}: supported types are int, float, str, bool, Literal, "
                        f"tuple[T, ...] and Optional of these; got {hint!r}")
    if field.default is not dataclasses.MISSING:
        default = field.default
    elif field.default_factory is not dataclasses.MISSING:
        default = field.default_factory()
    else:
        raise TypeError(f"config field {field.name!r} needs a default (the CLI and presets start from defaults)")
    return _FieldSpec(field.name, kind, elem, choices, optional, default, str(field.metadata.get("help", "")))


def _config_specs(config_cls: type) -> dict[str, _FieldSpec]:
    if not (dataclasses.is_dataclass(config_cls) and isinstance(config_cls, type)):
        raise TypeError(f"config_cls must be a dataclass type; got {config_cls!r}")
    if not config_cls.__dataclass_params__.frozen:
        raise TypeError(f"config_cls {config_cls.__name__} must be a frozen dataclass (@dataclass(frozen=True))")
    hints = typing.get_type_hints(config_cls)
    return {f.name: _field_spec(f, hints[f.name]) for f in dataclasses.fields(config_cls) if f.init}


def _coerce_elem(value: Any, spec: _FieldSpec) -> Any:
    what = f"config field {spec.name!r}"
    if spec.elem is bool:
        if not isinstance(value, (bool, np.bool_)):
            raise TypeError(f"{what} expects bool values; got {type(value).__name__} {value!r}")
        value = bool(value)
    elif spec.elem is int:
        if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
            raise TypeError(f"{what} expects int values; got {type(value).__name__} {value!r}")
        value = int(value)
    elif spec.elem is float:
        if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
            raise TypeError(f"{what} expects float values; got {type(value).__name__} {value!r}")
        value = float(value)
    elif not isinstance(value, str):
        raise TypeError(f"{what} expects str values; got {type(value).__name__} {value!r}")
    if spec.choices is not None and value not in spec.choices:
        raise ValueError(f"{what} must be one of {', '.join(map(repr, spec.choices))}; got {value!r}")
    return value


def _coerce(value: Any, spec: _FieldSpec) -> Any:
    """``value`` in the field's canonical Python type (lists -> tuples, ints -> floats for float fields)."""
    if value is None and spec.optional:
        return None
    if spec.kind == "tuple":
        if isinstance(value, (str, bytes)) or not isinstance(value, (Sequence, np.ndarray)):
            raise TypeError(f"config field {spec.name!r} expects a sequence; got {type(value).__name__} {value!r}")
        return tuple(_coerce_elem(v, spec) for v in value)
    return _coerce_elem(value, spec)


def config_from_dict(config_cls: type, values: Mapping[str, Any]) -> Any:
    """Build ``config_cls`` from a mapping (e.g. a loaded ``config.json``), coercing lists to tuples.

    >>> @dataclasses.dataclass(frozen=True)
    ... class C:
    ...     ms: tuple[int, ...] = (1,)
    ...     lr: float = 0.1
    >>> config_from_dict(C, {"ms": [10, 100], "lr": 1})
    C(ms=(10, 100), lr=1.0)
    """
    specs = _config_specs(config_cls)
    unknown = sorted(set(values) - set(specs))
    if unknown:
        raise ValueError(f"unknown fields for {config_cls.__name__}: {unknown}; fields are {sorted(specs)}")
    return config_cls(**{name: _coerce(v, specs[name]) for name, v in values.items()})


# --------------------------------------------------------------------------- the study


@dataclasses.dataclass(frozen=True)
class Study:
    """A study: its config class, presets and the four functions the runner calls.

    Attributes:
        name: folder and figure name (``DIR/studies/<name>/``); letters, digits, ``_``, ``-``.
        config_cls: frozen dataclass; every field has a default; an ``int`` field ``seed``.
        cells: ``cells(config) -> list[Cell]``, the grid (see :func:`grid`).
        run_group: ``run_group(cells, config, device) -> list[list[row dict]]``, one row
            list per cell (rows: ``metric``, ``value`` and extra scalar columns).
        summarize: ``summarize(table, config) -> dict``; ``None`` writes ``{}``.
        plot: ``plot(table, config, summary, fig_dir) -> list[Path]``; ``None`` draws nothing.
        presets: name -> overrides (a mapping of field values, or a config instance).
            ``quick`` (the CLI default) falls back to the class defaults when absent;
            ``paper`` and ``tiny`` (smoke tests) are the other conventional names.
        version: code-version tag in every cache key; bump it when results change.
        cache_ignore: config fields that change no single cell's result (grid axes,
            runtime knobs); excluded from the cache key. ``seed`` is always excluded
            (each cell's own seed is in the key).
        description: one paragraph for ``--help``.
        engine: the study trains on the ensemble engine, whose CPU products run on the
            AVX-512 kernels or on torch (:mod:`gangen.nn.native`; the two differ by float32
            rounding): on a CPU the cache key and ``config.json`` record which.
    """

    name: str
    config_cls: type
    cells: Callable[[Any], Sequence[Cell]]
    run_group: Callable[[Sequence[Cell], Any, str], Sequence[Sequence[Row]]]
    summarize: Callable[[pd.DataFrame, Any], Mapping[str, Any]] | None = None
    plot: Callable[[pd.DataFrame, Any, Mapping[str, Any], Path], Sequence[Path]] | None = None
    presets: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    version: str = "1"
    cache_ignore: tuple[str, ...] = ()
    description: str = ""
    engine: bool = False

    def __post_init__(self) -> None:
        if not self.name or not all(ch.isalnum() or ch in "_-" for ch in self.name):
            raise ValueError(f"study name must be non-empty letters, digits, '_' or '-'; got {self.name!r}")
        specs = _config_specs(self.config_cls)
        if "seed" not in specs or specs["seed"].kind != "scalar" or specs["seed"].elem is not int:
            raise TypeError(f"{self.config_cls.__name__} needs an int field 'seed' (cells derive their seeds from it)")
        clash = sorted(set(specs) & set(RUNNER_OPTIONS))
        if clash:
            raise ValueError(f"config fields {clash} clash with runner options {RUNNER_OPTIONS}")
        for preset, value in self.presets.items():
            if isinstance(value, self.config_cls):
                continue
            if not isinstance(value, Mapping):
                raise TypeError(f"preset {preset!r} must be a mapping of overrides or a {self.config_cls.__name__}")
            unknown = sorted(set(value) - set(specs))
            if unknown:
                raise ValueError(f"preset {preset!r} sets unknown fields {unknown}; fields are {sorted(specs)}")
        unknown = sorted(set(self.cache_ignore) - set(specs))
        if unknown:
            raise ValueError(f"cache_ignore names unknown fields {unknown}; fields are {sorted(specs)}")
        object.__setattr__(self, "cache_ignore", tuple(self.cache_ignore))


def resolve_config(study: Study, preset: str = "quick", overrides: Mapping[str, Any] | None = None) -> Any:
    """The config of ``preset`` with ``overrides`` on top (overrides win; both coerced to field types).

    ``quick`` means the class defaults when the study defines no ``quick`` preset.
    """
    specs = _config_specs(study.config_cls)
    overrides = dict(overrides or {})
    unknown = sorted(set(overrides) - set(specs))
    if unknown:
        raise ValueError(f"unknown config fields {unknown}; fields are {sorted(specs)}")
    if preset not in study.presets and preset != "quick":
        raise ValueError(f"unknown preset {preset!r}; presets of {study.name}: {sorted(set(study.presets) | {'quick'})}")
    base = study.presets.get(preset, {})
    if isinstance(base, study.config_cls):
        values = {name: getattr(base, name) for name in specs}
    else:
        values = {name: spec.default for name, spec in specs.items()}
        values.update(base)
    values.update(overrides)
    return study.config_cls(**{name: _coerce(v, specs[name]) for name, v in values.items()})


def resolve_device(device: str = "auto") -> str:
    """``"auto"`` -> ``"cuda"`` if torch sees a GPU, else ``"cpu"``; ``"cuda[:i]"`` must be available.

    torch is imported only for ``auto`` and ``cuda``.

    >>> resolve_device("cpu")
    'cpu'
    """
    if not isinstance(device, str) or not (device in ("auto", "cpu") or device.split(":")[0] == "cuda"):
        raise ValueError(f"device must be 'auto', 'cpu', 'cuda' or 'cuda:<index>'; got {device!r}")
    if device == "cpu":
        return "cpu"
    try:
        import torch
    except ImportError:
        if device == "auto":
            return "cpu"
        raise ValueError(f"device {device!r} needs torch, which is not installed") from None
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if not torch.cuda.is_available():
        raise ValueError(f"device {device!r} requested but torch.cuda.is_available() is False; use --device cpu or auto")
    return device


# --------------------------------------------------------------------------- cache


def _matmul_backend() -> tuple[str, str]:
    """The engine's effective CPU product backend: ("native" or "torch", a description)."""
    from gangen.nn import native

    return ("native" if native.active() else "torch"), native.describe()


def _cache_key(study: Study, config: Any, cell: Cell, device: str) -> str:
    specs = _config_specs(study.config_cls)
    shared = {
        name: _coerce(getattr(config, name), spec)
        for name, spec in specs.items()
        if name != "seed" and name not in study.cache_ignore
    }
    payload = {
        "study": study.name,
        "study_version": study.version,
        "gangen_version": _gangen_version(),
        "params": cell.as_dict(),
        "seed": cell.seed,
        "device": device,
        "config": shared,
    }
    if study.engine and device == "cpu":
        payload["matmul"] = _matmul_backend()[0]
    return hashlib.sha256(_canonical_json(payload).encode()).hexdigest()[:32]


def _read_cache(path: Path, key: str) -> list[dict] | None:
    """The cached rows of one cell, or ``None`` if absent or unreadable (then the cell is recomputed)."""
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        warnings.warn(f"ignoring unreadable cache file {path} ({exc}); the cell will be recomputed", stacklevel=3)
        return None
    if not isinstance(record, dict) or record.get("key") != key or not isinstance(record.get("rows"), list):
        warnings.warn(f"ignoring cache file {path}: it does not hold cell {key}", stacklevel=3)
        return None
    return record["rows"]


def _clean_rows(rows: Any, cell: Cell, study: Study) -> list[dict]:
    """Validate one cell's rows and return them as plain-JSON dicts (the form they are cached in)."""
    if isinstance(rows, Mapping) or not isinstance(rows, Sequence):
        raise TypeError(f"{study.name}.run_group must return a list of row dicts per cell; got {type(rows).__name__} "
                        f"for cell {cell.as_dict()}")
    params = set(cell.as_dict())
    clean = []
    for row in rows:
        where = f"row {dict(row) if isinstance(row, Mapping) else row!r} of cell {cell.as_dict()}"
        if not isinstance(row, Mapping) or "metric" not in row or "value" not in row:
            raise ValueError(f"{study.name}: {where} must be a dict with keys 'metric' and 'value'")
        if not isinstance(row["metric"], str):
            raise TypeError(f"{study.name}: {where}: 'metric' must be a str")
        value = row["value"]
        if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real) or not math.isfinite(value):
            raise ValueError(f"{study.name}: {where}: 'value' must be a finite real number; got {value!r} "
                             "(leave out a measurement that does not exist rather than storing NaN)")
        extra = {}
        for key, v in row.items():
            if key in ("metric", "value"):
                continue
            if key in params or key == "seed":
                raise ValueError(f"{study.name}: {where}: column {key!r} clashes with a cell parameter or 'seed'")
            extra[key] = _check_scalar(v, f"{study.name}: column {key!r} in {where}")
        clean.append({**extra, "metric": row["metric"], "value": float(value)})
    return clean


def _compute_group(study: Study, cells: Sequence[Cell], config: Any, device: str) -> list[tuple[list[dict], float]]:
    """Run one group: ``(clean rows, seconds per cell)`` for each cell. No I/O; an independent task."""
    start = time.perf_counter()
    out = study.run_group(list(cells), config, device)
    elapsed = (time.perf_counter() - start) / len(cells)
    if isinstance(out, Mapping) or not isinstance(out, Sequence) or len(out) != len(cells):
        got = len(out) if isinstance(out, Sequence) else type(out).__name__
        raise ValueError(f"{study.name}.run_group must return one row list per cell ({len(cells)}); got {got}")
    return [(_clean_rows(rows, cell, study), elapsed) for rows, cell in zip(out, cells)]


def _local_executor(study: Study, groups: Sequence[Sequence[Cell]], config: Any, device: str) -> Iterator[list]:
    """Run groups one after another in this process (a Ray executor would submit them as tasks)."""
    for cells in groups:
        yield _compute_group(study, cells, config, device)


def check_group_independent(study: Study, config: Any, *, device: str = "cpu", n_groups: int = 1) -> None:
    """Raise ``AssertionError`` unless each cell's rows are the same run in its group and run alone.

    Runs the first ``n_groups`` groups of ``study.cells(config)`` twice: whole, and one
    cell per call. Exact equality is required, since a resumed run must reproduce an
    uninterrupted one. Use it in a study's tests with a tiny config.
    """
    all_cells = list(study.cells(config))
    for group in _group_indices(all_cells, range(len(all_cells)))[:n_groups]:
        cells = [all_cells[i] for i in group]
        together = _compute_group(study, cells, config, device)
        for cell, (rows, _) in zip(cells, together):
            alone = _compute_group(study, [cell], config, device)[0][0]
            if alone != rows:
                raise AssertionError(f"{study.name}: cell {cell.as_dict()} gives different rows in its group "
                                     f"({len(cells)} cells) and alone:\n{rows}\nvs\n{alone}")


def _group_indices(cells: Sequence[Cell], indices: Sequence[int]) -> list[list[int]]:
    """``indices`` grouped by their cells' ``group`` key, in order of first appearance; ``None`` = alone."""
    groups: dict[Any, list[int]] = {}
    for i in indices:
        key = ("alone", i) if cells[i].group is None else ("group", cells[i].group)
        groups.setdefault(key, []).append(i)
    return list(groups.values())


# --------------------------------------------------------------------------- provenance


def _gangen_version() -> str:
    import gangen

    return gangen.__version__


def _package_versions() -> dict[str, str | None]:
    versions: dict[str, str | None] = {"python": platform.python_version(), "gangen": _gangen_version()}
    for dist in VERSIONED_PACKAGES:
        try:
            versions[dist] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            versions[dist] = None
    return versions


def _git_state() -> dict[str, Any]:
    """Commit and dirty flag of the git checkout holding gangen's source, or nulls (no git, no repo)."""
    root = Path(__file__).resolve().parents[2]

    def git(*args: str) -> str | None:
        try:
            proc = subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, timeout=10)
        except (OSError, subprocess.SubprocessError):
            return None
        return proc.stdout.strip() if proc.returncode == 0 else None

    commit = git("rev-parse", "HEAD")
    status = git("status", "--porcelain", "--untracked-files=no") if commit else None
    return {"git_commit": commit, "git_dirty": None if status is None else bool(status)}


def _module_name(module: str) -> str:
    """Importable name of ``module`` (``__main__`` under ``python -m x.y`` is reported as ``x.y``)."""
    spec = getattr(sys.modules.get(module), "__spec__", None)
    return spec.name if spec is not None and spec.name else module


def _command_line() -> list[str]:
    """The command that started this process, as ``python -m <module> args`` when run with ``-m``."""
    spec = getattr(sys.modules.get("__main__"), "__spec__", None)
    if spec is not None and spec.name:
        return ["python", "-m", spec.name, *sys.argv[1:]]
    return list(sys.argv)


# --------------------------------------------------------------------------- running


@dataclasses.dataclass(frozen=True)
class StudyResults:
    """What a run (or ``--plot-only``) produced.

    ``table`` is the tidy results table (also ``results.csv``); ``n_computed`` counts the
    cells computed by this call (the rest came from the cache).
    """

    table: pd.DataFrame
    summary: dict
    config: Any
    device: str
    n_cells: int
    n_computed: int
    results_dir: Path
    figure_paths: tuple[Path, ...]


def _build_table(cells: Sequence[Cell], rows_per_cell: Sequence[list[dict]]) -> pd.DataFrame:
    records = []
    for cell, rows in zip(cells, rows_per_cell):
        for row in rows:
            records.append({**cell.as_dict(), "seed": cell.seed, **row})
    param_cols = list(dict.fromkeys(k for c in cells for k in c.as_dict()))
    extra_cols = list(dict.fromkeys(k for rows in rows_per_cell for r in rows for k in r if k not in ("metric", "value")))
    columns = param_cols + ["seed"] + extra_cols + ["metric", "value"]
    return pd.DataFrame.from_records(records, columns=columns)


def run_study(
    study: Study,
    config: Any,
    out_dir: str | os.PathLike,
    *,
    device: str = "auto",
    progress: bool = True,
    plot: bool = True,
    preset: str | None = None,
) -> StudyResults:
    """Run ``study`` at ``config``: compute uncached cells, then write results, config, summary and figures.

    Results go to ``out_dir/studies/<name>/``, figures to ``out_dir/figures/``.
    ``preset`` is only recorded in ``config.json``. ``progress`` shows a tqdm bar on
    stderr counting cells (with an ETA); ``plot=False`` skips the figures.
    """
    if not isinstance(config, study.config_cls):
        raise TypeError(f"config must be a {study.config_cls.__name__}; got {type(config).__name__}")
    device = resolve_device(device)
    out_dir = Path(out_dir)
    results_dir = out_dir / "studies" / study.name
    cache_dir = results_dir / "cache"
    cache_dir.mkdir(parents=True, exist_ok=True)

    cells = list(study.cells(config))
    if not cells or not all(isinstance(c, Cell) for c in cells):
        raise ValueError(f"{study.name}.cells(config) must return a non-empty list of Cell; got {len(cells)} items")
    counts = collections.Counter(_canonical_json(c.as_dict()) for c in cells)
    dup = [k for k, n in counts.items() if n > 1]
    if dup:
        raise ValueError(f"{study.name}.cells(config) returned duplicate cells: {dup[:3]}")
    keys = [_cache_key(study, config, c, device) for c in cells]
    rows: dict[int, list[dict]] = {}
    for i, key in enumerate(keys):
        cached = _read_cache(cache_dir / f"{key}.json", key)
        if cached is not None:
            rows[i] = cached
    pending = _group_indices(cells, [i for i in range(len(cells)) if i not in rows])
    n_computed = 0

    from tqdm.auto import tqdm

    with tqdm(total=len(cells), initial=len(rows), unit="cell", desc=study.name, disable=not progress,
              file=sys.stderr, dynamic_ncols=True) as bar:
        tasks = [[cells[i] for i in group] for group in pending]
        for group, results in zip(pending, _local_executor(study, tasks, config, device)):
            for i, (cell_rows, elapsed) in zip(group, results):
                record = {"format": CACHE_FORMAT, "key": keys[i], "study": study.name, "study_version": study.version,
                          "params": cells[i].as_dict(), "seed": cells[i].seed, "device": device,
                          "elapsed_s": round(elapsed, 6), "rows": cell_rows}
                atomic_write_text(cache_dir / f"{keys[i]}.json", _dump_json(record))
                # Use the rows as they read back from JSON, so a fresh and a resumed run build equal tables.
                rows[i] = json.loads(_dump_json(cell_rows))
            n_computed += len(group)
            bar.update(len(group))

    table = _build_table(cells, [rows[i] for i in range(len(cells))])
    atomic_write_text(results_dir / "results.csv", table.to_csv(index=False))
    summary = _write_summary(study, table, config, results_dir)
    meta = {
        "study": study.name,
        "study_version": study.version,
        "preset": preset,
        "config": dataclasses.asdict(config),
        "device": device,
        "n_cells": len(cells),
        "n_computed": n_computed,
        "cache_ignore": list(study.cache_ignore),
        **({"matmul": _matmul_backend()[1]} if study.engine and device == "cpu" else {}),
        "versions": _package_versions(),
        **_git_state(),
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "command": _command_line(),
        "platform": platform.platform(),
    }
    atomic_write_text(results_dir / "config.json", _dump_json(meta))
    figures = _plot(study, table, config, summary, out_dir) if plot else ()
    return StudyResults(table, summary, config, device, len(cells), n_computed, results_dir, figures)


def _plot(study: Study, table: pd.DataFrame, config: Any, summary: dict, out_dir: Path) -> tuple[Path, ...]:
    if study.plot is None:
        return ()
    fig_dir = out_dir / "figures"
    fig_dir.mkdir(parents=True, exist_ok=True)
    return tuple(Path(p) for p in (study.plot(table, config, summary, fig_dir) or ()))


def _write_summary(study: Study, table: pd.DataFrame, config: Any, results_dir: Path) -> dict:
    """Compute ``study.summarize(table, config)`` and write it to ``results_dir/summary.json``."""
    summary = study.summarize(table, config) if study.summarize is not None else {}
    if not isinstance(summary, Mapping):
        raise TypeError(f"{study.name}.summarize must return a dict; got {type(summary).__name__}")
    summary = _jsonable(summary)
    atomic_write_text(results_dir / "summary.json", _dump_json(summary))
    return summary


def load_results(study: Study, out_dir: str | os.PathLike) -> StudyResults:
    """Read ``results.csv``, ``config.json`` and ``summary.json`` of a finished run (no figures drawn)."""
    results_dir = Path(out_dir) / "studies" / study.name
    paths = {name: results_dir / name for name in ("results.csv", "config.json", "summary.json")}
    missing = [str(p) for p in paths.values() if not p.is_file()]
    if missing:
        raise FileNotFoundError(f"no saved results of {study.name} in {results_dir} (missing {', '.join(missing)}); "
                                "run the study without --plot-only first")
    meta = json.loads(paths["config.json"].read_text(encoding="utf-8"))
    config = config_from_dict(study.config_cls, meta["config"])
    summary = json.loads(paths["summary.json"].read_text(encoding="utf-8"))
    table = pd.read_csv(paths["results.csv"])
    return StudyResults(table, summary, config, meta["device"], int(meta["n_cells"]), 0, results_dir, ())


# --------------------------------------------------------------------------- CLI


def _parse_elem(spec: _FieldSpec) -> Callable[[str], Any]:
    def parse(token: str) -> Any:
        if spec.optional and token.lower() == "none":
            return None
        if spec.elem is int:
            try:
                return int(token)
            except ValueError:
                value = float(token)  # accepts 1e4; ValueError -> argparse error
                if not value.is_integer():
                    raise ValueError(f"not an integer: {token}") from None
                return int(value)
        if spec.elem is float:
            return float(token)
        if spec.elem is bool:
            if token.lower() in ("true", "1", "yes", "on"):
                return True
            if token.lower() in ("false", "0", "no", "off"):
                return False
            raise ValueError(f"not a bool: {token}")
        return token

    parse.__name__ = spec.elem.__name__  # argparse names the type in its error message
    return parse


class _ListAction(argparse.Action):
    """Collect comma- and/or space-separated values into one tuple."""

    def __init__(self, *args: Any, elem_parser: Callable[[str], Any], **kwargs: Any) -> None:
        self.elem_parser = elem_parser
        super().__init__(*args, **kwargs)

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: Any,
                 option_string: str | None = None) -> None:
        tokens = [t for v in values for t in v.split(",") if t.strip()]
        if not tokens:
            parser.error(f"{option_string} needs at least one value")
        try:
            parsed = tuple(self.elem_parser(t.strip()) for t in tokens)
        except ValueError as exc:
            parser.error(f"{option_string}: {exc}")
        setattr(namespace, self.dest, None if parsed == (None,) else parsed)


def _fmt(value: Any) -> str:
    if isinstance(value, tuple):
        return ",".join(_fmt(v) for v in value)
    return "none" if value is None else str(value)


def build_parser(study: Study) -> argparse.ArgumentParser:
    """The study's CLI: runner options plus one flag per config field (``--m-values`` for ``m_values``)."""
    specs = _config_specs(study.config_cls)
    parser = argparse.ArgumentParser(
        prog=f"python -m {_module_name(getattr(study.run_group, '__module__', study.name))}",
        description=study.description or None,
        allow_abbrev=False,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="Explicit field flags override the preset. Lists: --ms 10,100 or --ms 10 100. "
               "Results go to DIR/studies/<study>/, figures to DIR/figures/.",
    )
    presets = list(dict.fromkeys(["quick", *study.presets]))
    public = [p for p in presets if p != "tiny"]
    run = parser.add_argument_group("run options")
    run.add_argument("--preset", choices=presets, default=argparse.SUPPRESS, metavar="{" + ",".join(public) + "}",
                     help="named set of config values (default: quick)"
                     + ("; 'tiny' is a smoke-test preset" if "tiny" in presets else ""))
    run.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto",
                     help="where to compute; auto = cuda if available, else cpu (default: auto)")
    run.add_argument("--out", type=Path, default=Path("."), metavar="DIR",
                     help="output folder (default: the current directory)")
    run.add_argument("--plot-only", action="store_true",
                     help="recompute summary.json and rebuild the figures from the saved DIR/studies/<study>/results.csv, training nothing")

    fields = parser.add_argument_group(f"study config ({study.config_cls.__name__})")
    for name, spec in specs.items():
        shown = [f"default: {_fmt(spec.default)}"]
        for preset in presets:
            base = study.presets.get(preset, {})
            value = getattr(base, name) if isinstance(base, study.config_cls) else base.get(name, spec.default)
            if _fmt(value) != _fmt(spec.default):
                shown.append(f"{preset}: {_fmt(value)}")
        text = f"{spec.help} ({'; '.join(shown)})" if spec.help else f"({'; '.join(shown)})"
        text = text.replace("%", "%%")
        flag = "--" + name.replace("_", "-")
        if spec.kind == "bool":
            fields.add_argument(flag, dest=name, action=argparse.BooleanOptionalAction, default=argparse.SUPPRESS,
                                help=text)
        elif spec.kind == "tuple":
            fields.add_argument(flag, dest=name, nargs="+", action=_ListAction, elem_parser=_parse_elem(spec),
                                default=argparse.SUPPRESS, metavar=spec.elem.__name__.upper(), help=text)
        else:
            fields.add_argument(flag, dest=name, type=_parse_elem(spec), default=argparse.SUPPRESS,
                                choices=spec.choices, metavar=spec.elem.__name__.upper() if not spec.choices else None,
                                help=text)
    return parser


def main(study: Study, argv: Sequence[str] | None = None) -> pd.DataFrame:
    """Command-line entry point: ``if __name__ == "__main__": main(STUDY)``. Returns the results table."""
    parser = build_parser(study)
    args = vars(parser.parse_args(argv))
    preset = args.pop("preset", "quick")
    device, out, plot_only = args.pop("device"), args.pop("out"), args.pop("plot_only")
    if plot_only:
        if args:
            parser.error(f"--plot-only redraws saved results and takes no config flags; got {sorted(args)}")
        try:
            saved = load_results(study, out)
        except FileNotFoundError as exc:
            parser.error(str(exc))
        # summarize is a pure function of the saved table and config: refresh summary.json with the code as it stands
        summary = _write_summary(study, saved.table, saved.config, saved.results_dir)
        figures = _plot(study, saved.table, saved.config, summary, out)
        print(f"{study.name}: recomputed summary.json and redrew {len(figures)} figure files from {saved.results_dir}",
              file=sys.stderr)
        for path in figures:
            print(f"  {path}", file=sys.stderr)
        return saved.table
    try:
        config = resolve_config(study, preset, args)
        device = resolve_device(device)
    except (TypeError, ValueError) as exc:
        parser.error(str(exc))
    start = time.perf_counter()
    result = run_study(study, config, out, device=device, progress=True, preset=preset)
    print(f"{study.name}: computed {result.n_computed} of {result.n_cells} cells "
          f"({result.n_cells - result.n_computed} from cache) on {result.device} in "
          f"{time.perf_counter() - start:.1f} s", file=sys.stderr)
    print(f"  results: {result.results_dir}", file=sys.stderr)
    for path in result.figure_paths:
        print(f"  figure:  {path}", file=sys.stderr)
    return result.table
