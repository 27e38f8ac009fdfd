"""Benchmark: K discriminators trained one by one in a Python loop versus the ensemble engine.

Setting (issue "Ensemble engine", item 4): K = 64 members, d = 16, MLPs with two hidden
layers, m in {64, 256, 1024, 4096} samples per side, 200 Adam steps, full batch,
phi(t) = log(delta + (1 - delta) t) with a sigmoid output. The issue's "hidden widths 32 and
64 (two hidden layers)" has two readings, and the default run covers both: the networks
(32, 32) and (64, 64) (``--widths`` entry "32": both hidden layers of width 32), and the one
network (32, 64) (entry "32x64": hidden widths per layer, first to last; p = (16*32 + 32) +
(32*64 + 64) + (64 + 1) = 2721). In one run:

(a) the obvious per-model loop: for each member one ``torch.nn.Module`` (the same initial
    weights as the engine's member) and one ``torch.optim.Adam``, autograd, two forward
    passes (x and y) per step;
(b) ``gangen.nn.ensemble.train_ensemble`` on the same data and initial weights.

Both end with each member's objective J on its training data; the table's ``max|dJ|``
column shows they trained the same networks (float32 rounding only). The run also
times a large float32 matrix product (sgemm, n = 4096, best of 3) for reference.

FLOPs. Counted as 6 x m x 2 sides x p per member per step (p = parameters per member:
2 x rows x p for the forward pass, twice that for the backward pass), so
engine_gflops = 6 * m * 2 * p * steps * K / engine_s / 1e9.

Usage::

    python benchmarks/ensemble.py                  # the full table (three networks x four m; about 5-8 minutes on 2 idle cores)
    python benchmarks/ensemble.py --quick          # m in {64, 256, 1024}, 50 steps
    python benchmarks/ensemble.py --json out.json  # also write {"rows": [...], "meta": {...}}
    python benchmarks/ensemble.py --widths 32 32x64x32  # (32, 32) and (32, 64, 32)

JSON rows have the issue's keys; "width" is the int w for a network (w, w) and a string such
as "32x64" otherwise, and "hidden" lists the hidden widths.

Design choices, measured on this 2-core AMD EPYC (Zen 5, AVX-512; 2 MiB L2 per core,
32 MiB L3), torch 2.13 CPU:

- the products: torch's float32 CPU matmul (MKL) takes its AVX2 path on this AMD CPU
  (torch.mm n = 4096: 205-238 GFLOP/s on 2 cores; oneDNN's AVX-512 product 428-479), and
  batched ``torch.bmm`` on the engine's shapes ran at 100-111 GFLOP/s per core. The engine's
  products are AVX-512 kernels (``gangen/nn/_kernels.c``, compiled at first use; see
  ``gangen.nn.native``): (4, 512, 64) @ (4, 64, 64) on one core 66 us = 253 GFLOP/s against
  torch.bmm's 150 us = 111 GFLOP/s, and 470 GFLOP/s on two threads. The kernels also fuse
  the bias, the activation, its derivative, the bias gradient and Adam (fewer calls: each
  torch op costs a few microseconds of Python and dispatch, and holds the GIL that the two
  workers share). ``--matmul torch`` runs the engine on torch's products for comparison
  (the previous engine; its table is in benchmarks/results/ensemble_cpu_2threads_torch.txt);
- the width-1 output layer: ``bmm`` with a width-1 operand took 145 us (forward) and
  207 us (weight gradient) for 8 members x 512 rows x 64 on torch, against 44 us for
  mul + sum and 16 us for g^T A; the kernels use a dot-product loop per row;
- cache budget per pass (``plan_chunks``): with torch's products 2.5 MiB (one core, m = 4096:
  width 64 best at 2048 rows, width 32 at 4096, 10-15% slower at twice or half); with the
  kernels 10 MiB (fastest or within 4% of the fastest budget in 10 of 12 configurations,
  budgets 1.25-20 MiB, the other two 10-15% under 20 MiB; larger chunks amortise the per-call cost);
- parallelism: one worker thread per core, each training whole chunks with one-thread
  ops, against every op split over 2 OpenMP threads: 23-43 against 8-13 GFLOP/s with
  other processes on the machine (load ~3, 20 steps), where OpenMP's per-op barriers
  stall.

The table of the issue (the default run, 2 threads, wall clock, idle machine) is in
benchmarks/results/ensemble_cpu_2threads.{txt,json} and in the README's performance section.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gangen.distances.measuring import LogMeasuring  # noqa: E402
from gangen.nn.ensemble import plan_chunks, resolve_device, train_ensemble  # noqa: E402
from gangen.nn.families import MLPFamily  # noqa: E402
from gangen.nn import native  # noqa: E402


CLOCK = time.perf_counter  # --clock cpu: time.process_time (robust when other processes share the cores)


def sgemm_gflops(device: torch.device, n: int = 4096, repeats: int = 3) -> float:
    """Best-of-``repeats`` GFLOP/s of one n x n float32 matrix product (2 n^3 FLOPs)."""
    a = torch.randn(n, n, device=device)
    b = torch.randn(n, n, device=device)
    c = torch.empty(n, n, device=device)
    torch.mm(a, b, out=c)  # warm-up
    best = float("inf")
    for _ in range(repeats):
        _sync(device)
        t0 = CLOCK()
        torch.mm(a, b, out=c)
        _sync(device)
        best = min(best, CLOCK() - t0)
    return 2 * n**3 / best / 1e9


def onednn_gflops(device: torch.device, n: int = 4096, repeats: int = 3) -> float | None:
    """Best-of-``repeats`` GFLOP/s of one n x n float32 product through oneDNN (``mkldnn_linear``), CPU only.

    torch's float32 ``mm``/``bmm`` on the CPU call MKL, which on AMD processors takes an AVX2
    path; oneDNN uses AVX-512 where the CPU has it, so on such machines this is the higher
    arithmetic ceiling. Reported for context: the sgemm column (torch.mm) stays the reference.
    None on CUDA or when torch has no oneDNN.
    """
    if device.type != "cpu" or not torch.backends.mkldnn.is_available():
        return None
    a = torch.randn(n, n).to_mkldnn()
    w = torch.randn(n, n).to_mkldnn()
    torch._C._nn.mkldnn_linear(a, w)  # warm-up
    best = float("inf")
    for _ in range(repeats):
        t0 = CLOCK()
        torch._C._nn.mkldnn_linear(a, w)
        best = min(best, CLOCK() - t0)
    return 2 * n**3 / best / 1e9


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def train_loop(
    family: MLPFamily, phi: LogMeasuring, init: np.ndarray, x: np.ndarray, y: np.ndarray, steps: int, lr: float, device: torch.device
) -> np.ndarray:
    """(a) One nn.Module and one torch.optim.Adam per member; returns J of each trained member."""
    values = np.empty(len(init))
    for k in range(len(init)):
        net = family.to_module(init[k]).to(device)
        opt = torch.optim.Adam(net.parameters(), lr=lr)
        X = torch.from_numpy(x[k]).to(device)
        Y = torch.from_numpy(y[k]).to(device)
        for _ in range(steps):
            opt.zero_grad()
            loss = -(phi(net(X)).mean() + phi(1 - net(Y)).mean())
            loss.backward()
            opt.step()
        with torch.no_grad():
            values[k] = (phi(net(X)).double().mean() + phi(1 - net(Y)).double().mean()).item() - 2 * phi.phi_half
    return values


def parse_width(spec: str) -> tuple[int | str, tuple[int, ...]]:
    """A ``--widths`` entry -> (the row's "width", the hidden widths): "32" -> (32, (32, 32)),
    "32x64" -> ("32x64", (32, 64)).

    >>> parse_width("64"), parse_width("32x64")
    ((64, (64, 64)), ('32x64', (32, 64)))
    """
    parts = spec.lower().split("x")
    if not all(p.isdigit() and int(p) > 0 for p in parts):
        raise argparse.ArgumentTypeError(f"a width is a positive int W (hidden (W, W)) or W1xW2[x...]; got {spec!r}")
    hidden = tuple(int(p) for p in parts)
    if len(hidden) == 1:
        return hidden[0], hidden * 2
    return "x".join(str(h) for h in hidden), hidden


def run(K: int, d: int, widths: list[str], ms: list[int], steps: int, lr: float, device: torch.device, loop_members: int) -> list[dict]:
    phi = LogMeasuring(1e-3)
    rows = []
    sgemm = sgemm_gflops(device)
    # warm-up of both paths (library initialisation, thread pools, the optimizer's first step)
    warm = MLPFamily(d=d, hidden=(8, 8))
    wx = np.zeros((2, 8, d), dtype=np.float32)
    train_loop(warm, phi, warm.init([0]), wx, wx, 2, lr, device)
    train_ensemble(wx, wx, family=warm, seeds=[0, 1], phi=phi, steps=2, lr=lr, device=device)
    for spec in widths:
        width, hidden = parse_width(spec)
        family = MLPFamily(d=d, hidden=hidden)
        p = family.n_params
        for m in ms:
            rng = np.random.default_rng(m)
            x = rng.normal(size=(K, m, d)).astype(np.float32)
            y = (rng.normal(size=(K, m, d)) + 0.25).astype(np.float32)
            seeds = list(range(K))
            init = family.init(seeds)
            _sync(device)
            t0 = CLOCK()
            res = train_ensemble(x, y, family=family, seeds=seeds, phi=phi, steps=steps, lr=lr, device=device)
            _sync(device)
            engine_s = CLOCK() - t0
            n_loop = min(K, loop_members)
            t0 = CLOCK()
            loop_values = train_loop(family, phi, init[:n_loop], x, y, steps, lr, device)
            _sync(device)
            loop_s = (CLOCK() - t0) * K / n_loop  # = measured time when n_loop == K
            flops = 6 * m * 2 * p * steps * K
            plan = plan_chunks(family, K, 2 * m, device)
            rows.append(
                {
                    "m": m,
                    "width": width,
                    "hidden": list(hidden),
                    "loop_s": round(loop_s, 3),
                    "engine_s": round(engine_s, 3),
                    "speedup": round(loop_s / engine_s, 2),
                    "engine_gflops": round(flops / engine_s / 1e9, 1),
                    "sgemm_gflops": round(sgemm, 1),
                    "_p": p,
                    "_loop_gflops": round(flops / loop_s / 1e9, 1),
                    "_max_abs_dJ": float(np.abs(res.values[:n_loop] - loop_values).max()),
                    "_plan": f"{plan.members}x{plan.rows}/{plan.workers}",
                }
            )
            print_row(rows[-1], header=len(rows) == 1)
    sgemm_end = sgemm_gflops(device)
    for row in rows:  # the machine's best sgemm rate in this run (the stricter reference)
        row["sgemm_gflops"] = round(max(sgemm, sgemm_end), 1)
    return rows


COLUMNS = [  # (key, header, width)
    ("m", "m", 5), ("width", "width", 6), ("_p", "p", 5), ("loop_s", "loop_s", 8), ("engine_s", "engine_s", 8),
    ("speedup", "speedup", 7), ("_loop_gflops", "loop GF/s", 9), ("engine_gflops", "eng GF/s", 9),
    ("sgemm_gflops", "sgemm", 7), ("_eff", "eng/sg", 6), ("_max_abs_dJ", "max|dJ|", 8), ("_plan", "plan", 11),
]


def print_row(row: dict, header: bool = False) -> None:
    if header:
        print(" ".join(h.rjust(w) for _, h, w in COLUMNS), flush=True)
    cells = []
    for key, _, w in COLUMNS:
        if key == "_eff":
            cell = f"{row['engine_gflops'] / row['sgemm_gflops']:.0%}"
        elif key == "_max_abs_dJ":
            cell = f"{row[key]:.0e}"
        else:
            cell = str(row[key])
        cells.append(cell.rjust(w))
    print(" ".join(cells), flush=True)


def _width_arg(spec: str) -> str:
    parse_width(spec)  # validates
    return spec


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--K", type=int, default=64, help="members (default 64)")
    ap.add_argument("--d", type=int, default=16, help="input dimension (default 16)")
    ap.add_argument("--widths", nargs="+", default=["32", "64", "32x64"], type=_width_arg,
                    help='hidden widths: W for two layers of width W, W1xW2 for per-layer widths (default 32 64 32x64)')
    ap.add_argument("--ms", type=int, nargs="+", default=[64, 256, 1024, 4096], help="samples per side")
    ap.add_argument("--steps", type=int, default=200, help="Adam steps (default 200)")
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--loop-members", type=int, default=None, help="time the loop on this many members and scale to K (default: all K)")
    ap.add_argument("--quick", action="store_true", help="m in {64, 256, 1024} and 50 steps")
    ap.add_argument("--device", default="auto", help="auto (CUDA if available), cpu, cuda")
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's, one per core)")
    ap.add_argument("--clock", choices=["wall", "cpu"], default="wall",
                    help="wall time, or this process's CPU time (meaningful with --threads 1 on a busy machine)")
    ap.add_argument("--json", type=Path, default=None, help="write the rows as JSON to this path")
    ap.add_argument("--matmul", choices=native.BACKENDS, default=None,
                    help="the engine's CPU products: auto (AVX-512 kernels when available), torch, native "
                         "(default: $GANGEN_MATMUL, else auto); the loop always uses torch")
    args = ap.parse_args(argv)
    if args.matmul is not None:
        native.set_backend(args.matmul)
    global CLOCK
    CLOCK = time.process_time if args.clock == "cpu" else time.perf_counter
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    if args.quick:
        args.ms, args.steps = [m for m in args.ms if m <= 1024], 50
    device = resolve_device(args.device)
    print(f"device {device}, torch {torch.__version__}, {torch.get_num_threads()} threads, {args.clock} clock, "
          f"{platform.processor() or platform.machine()}, K={args.K} d={args.d} steps={args.steps}, "
          f"load average {os.getloadavg()[0]:.1f}", flush=True)
    print(f"engine products: {native.describe()}", flush=True)
    rows = run(args.K, args.d, args.widths, args.ms, args.steps, args.lr, device, args.loop_members or args.K)
    onednn = onednn_gflops(device)
    print(f"\nsgemm (torch.mm, n = 4096, best of the run): {rows[0]['sgemm_gflops']} GFLOP/s; FLOPs = 6 m 2 p steps K")
    if onednn is not None:
        print(f"oneDNN float32 product (mkldnn_linear, n = 4096, for context): {onednn:.1f} GFLOP/s")
    for row in rows:
        print_row(row, header=row is rows[0])
    if args.json is not None:
        keys = ("m", "width", "hidden", "loop_s", "engine_s", "speedup", "engine_gflops", "sgemm_gflops")
        out = {
            "rows": [{k: r[k] for k in keys} for r in rows],
            "meta": {
                "device": str(device), "torch": torch.__version__, "threads": torch.get_num_threads(),
                "cpu_count": os.cpu_count(), "clock": args.clock, "load_avg": os.getloadavg(), "K": args.K, "d": args.d, "steps": args.steps, "lr": args.lr,
                "loop_members_timed": min(args.K, args.loop_members or args.K),
                "flops": "6 * m * 2 * p * steps * K",
                "onednn_gflops": None if onednn is None else round(onednn, 1),
                "matmul": native.describe() if device.type == "cpu" else "torch (CUDA)",
                "extra": [{k: r[k] for k in ("m", "width", "_p", "_loop_gflops", "_max_abs_dJ", "_plan")} for r in rows],
            },
        }
        args.json.parent.mkdir(parents=True, exist_ok=True)
        tmp = args.json.with_suffix(args.json.suffix + ".tmp")
        tmp.write_text(json.dumps(out, indent=1))
        tmp.replace(args.json)


if __name__ == "__main__":
    main()
