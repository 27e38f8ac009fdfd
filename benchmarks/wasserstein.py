"""Benchmark: gangen's exact W1 (assignment path) against raw POT emd2 on the same inputs.

For each n, draws x, y ~ N(0, I_d) (n points each, seeded) and times

- ``gangen.distances.wasserstein(x, y, method="exact")``: equal sizes and uniform weights, so it
  solves the assignment problem (scipy ``linear_sum_assignment``) on the Euclidean cost;
- raw POT: ``ot.emd2(a, b, ot.dist(x, y, metric="euclidean"), numItermax=...)`` (network simplex).

Both times include building the n x n cost matrix. The two values must agree (an exact
optimum either way); the script exits with status 1 if they do not.

Usage::

    python benchmarks/wasserstein.py                      # n = 1000 and 4000, d = 64
    python benchmarks/wasserstein.py --n 500 2000 --json out.json
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from gangen.distances.wasserstein import EXACT_NUM_ITER_MAX, wasserstein  # noqa: E402


def time_call(fn, repeats: int) -> tuple[float, float]:
    """Return (value, best wall time in seconds over ``repeats`` calls)."""
    best, value = float("inf"), float("nan")
    for _ in range(repeats):
        start = time.perf_counter()
        value = fn()
        best = min(best, time.perf_counter() - start)
    return float(value), best


def run(ns: list[int], d: int, seed: int, repeats: int, num_iter_max: int) -> list[dict]:
    import ot

    rows = []
    for n in ns:
        rng = np.random.default_rng([seed, n])
        x = rng.standard_normal((n, d))
        y = rng.standard_normal((n, d))
        a = np.full(n, 1.0 / n)
        ours, t_ours = time_call(lambda: wasserstein(x, y, method="exact", num_iter_max=num_iter_max), repeats)
        pot, t_pot = time_call(
            lambda: ot.emd2(a, a, ot.dist(x, y, metric="euclidean"), numItermax=num_iter_max), repeats
        )
        rows.append(
            {
                "n": n,
                "d": d,
                "gangen_w1": ours,
                "pot_emd2_w1": float(pot),
                "rel_diff": abs(ours - pot) / abs(pot),
                "gangen_s": t_ours,
                "pot_s": t_pot,
                "speedup": t_pot / t_ours,
            }
        )
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, nargs="+", default=[1000, 4000], help="sample sizes (n = m)")
    parser.add_argument("--d", type=int, default=64, help="dimension")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeats", type=int, default=1, help="timed calls per method; the best is reported")
    parser.add_argument("--num-iter-max", type=int, default=EXACT_NUM_ITER_MAX, help="network simplex iteration cap")
    parser.add_argument("--rtol", type=float, default=1e-9, help="required relative agreement of the two values")
    parser.add_argument("--json", type=Path, default=None, help="also write the rows and machine info here")
    args = parser.parse_args(argv)

    import ot
    import scipy

    rows = run(args.n, args.d, args.seed, args.repeats, args.num_iter_max)
    header = f"{'n':>6} {'d':>4} {'gangen W1':>14} {'POT emd2 W1':>14} {'rel diff':>9} {'gangen s':>9} {'POT s':>8} {'POT/gangen':>10}"
    print(header)
    for r in rows:
        print(
            f"{r['n']:>6} {r['d']:>4} {r['gangen_w1']:>14.10f} {r['pot_emd2_w1']:>14.10f} {r['rel_diff']:>9.1e} "
            f"{r['gangen_s']:>9.2f} {r['pot_s']:>8.2f} {r['speedup']:>10.2f}"
        )
    info = {
        "python": platform.python_version(),
        "numpy": np.__version__,
        "scipy": scipy.__version__,
        "pot": ot.__version__,
        "machine": platform.machine(),
        "processor": platform.processor(),
        "repeats": args.repeats,
        "seed": args.seed,
    }
    print("# " + ", ".join(f"{k}={v}" for k, v in info.items()))
    if args.json is not None:
        tmp = args.json.with_suffix(args.json.suffix + ".tmp")
        tmp.write_text(json.dumps({"rows": rows, "info": info}, indent=2))
        tmp.replace(args.json)
    bad = [r["n"] for r in rows if not r["rel_diff"] <= args.rtol]
    if bad:
        print(f"values disagree beyond rtol={args.rtol} at n={bad}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
