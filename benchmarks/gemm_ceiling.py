"""How fast could a training step be if convgrad's convolutions cost only their BLAS products?

Every fast algorithm of convgrad turns a convolution into matrix products that NumPy's BLAS
computes (im2col and its variants; Winograd and FFT change the products, not the principle).
This script estimates the floor that puts under ``convgrad bench --train``: for every
convolution operation a training step runs (recorded in the real step: forward, input gradient,
weight gradient, with their specs), the time of the im2col products *alone* -- the im2col
matrices already built and hot in cache, nothing copied, nothing transposed -- in the best of
three arrangements::

    per sample    (O, C*K) @ (C*K, L) per sample (forward), (C*K, O) @ (O, L) (input gradient),
                  dw += (O, L) @ (L, C*K) (weight gradient, BLAS beta = 1; small ones stacked per
                  chunk and summed), chunks of samples whose im2col matrices fill ~1 MiB
    side by side  a chunk's samples next to each other (batch-last im2col), one product per
                  ~2 MiB chunk: (O, C*K) @ (C*K, nb*L), (C*K, O) @ (O, nb*L), and the weight
                  gradient's transpose (C*K, nb*L) @ (nb*L, O) (BLAS beta = 1)
    whole batch   one product over all samples, (O, C*K) @ (C*K, N*L) etc., on BLAS's own threads

(the first two on convgrad's workers, one BLAS thread each, each worker reusing its own operands
so that they stay in its core's cache); ``K`` is the kernel's taps, ``L`` a sample's output
positions (one group: the training networks have no grouped convolutions). Then::

    bound = the step's time outside its convolutions + the products alone

(each operation's products timed on one thread where the step runs it on one, as it does the
operations estimated under ``algorithms.SMALL_WORK``)

is an estimate of the step convgrad would take with free im2col and perfect chunking, everything
else as it is now, and ``bound / PyTorch's step`` of the best ratio an im2col design on this BLAS
can reach -- an estimate, not a strict floor: convgrad's own arrangement of a product can beat the
three timed here (ResNet-8's 32 -> 32 forward took as long in the step as its products alone).
Steps are medians over the rounds (each round's step the median of ``--steps``); the bound is the
lower median of the rounds' bounds, and the operation table is that round's (:func:`summarise`). Each library runs in its own process
(PyTorch's OpenMP threads spin after each call and would slow NumPy's), the processes
alternating, ``--rounds`` times.

    python benchmarks/gemm_ceiling.py [--nets lenet5,vgg,resnet8,cnn1d] [--dtype float32]
                                      [--rounds 3] [--steps 9] [--threads 2] [--json PATH]

Not a test. About two minutes on the 2-core machine (three rounds); run it with nothing else running.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

#: Bytes of one chunk's im2col matrix in the side-by-side arrangement
SIDE_BYTES = 2**21


def _median_ms(f, repeats: int) -> float:
    """Median ms of ``repeats`` calls of ``f`` after two untimed ones."""
    f()
    f()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        f()
        times.append(time.perf_counter() - start)
    return 1e3 * statistics.median(times)


def _on_workers(the_plan, scratch, process, repeats: int) -> float:
    """ms per run of ``the_plan`` on convgrad's workers, one BLAS thread each, each worker's operands made
    once by ``scratch()`` and kept from run to run (hot in its core's cache): what is timed is the products alone."""
    import threading

    from convgrad import blas, parallel

    states = {}

    def make():
        key = threading.get_ident()
        if key not in states:
            states[key] = scratch()
        return states[key]

    with blas.single_threaded():  # (parallel.run sets it only for more than one worker)
        return _median_ms(lambda: parallel.run(the_plan, make, process), repeats)


def _plan(n: int, nb: int, threads: int):
    """The chunks of ``nb`` of ``n`` samples on at most ``threads`` workers (no more workers than chunks)."""
    from convgrad import parallel

    return parallel.Plan(batch=n, chunk=nb, workers=max(1, min(threads, -(-n // nb))))


def _dims(spec) -> tuple[int, int, int, int]:
    """``(N, O, C*K, L)`` of a one-group spec's im2col products."""
    if spec.groups != 1:
        raise ValueError(f"gemm_ceiling: grouped convolutions are not modelled (groups={spec.groups})")
    return spec.batch, spec.out_channels, spec.in_channels * math.prod(spec.kernel_size), math.prod(spec.output_size)


def per_sample_ms(op: str, spec, dtype, threads: int, repeats: int) -> float:
    """The products of ``op`` sample by sample, in chunks whose im2col matrices fill samplegemm's ``CHUNK_BYTES``
    (the core's L2), on convgrad's workers, operands hot; the weight gradient as samplegemm makes it (a sample's
    product added straight into the sum from ``ACCUMULATE_FLOPS``, else one stacked product per chunk, summed)."""
    from convgrad import blas
    from convgrad.algorithms.samplegemm import ACCUMULATE_FLOPS, CHUNK_BYTES

    n, o, ck, length = _dims(spec)
    itemsize = np.dtype(dtype).itemsize
    nb = max(1, min(n, CHUNK_BYTES // (ck * length * itemsize)))
    the_plan = _plan(n, nb, threads)
    rng = np.random.default_rng(0)

    def scratch():
        s = {"w": rng.standard_normal((o, ck)).astype(dtype), "cols": rng.standard_normal((nb, ck, length)).astype(dtype),
             "dy": rng.standard_normal((nb, o, length)).astype(dtype), "dw": np.zeros((o, ck), dtype)}
        s["y"], s["dcols"], s["dws"] = np.empty_like(s["dy"]), np.empty_like(s["cols"]), np.empty((nb, o, ck), dtype)
        return s

    def process(s, a, b):
        k = b - a
        if op == "forward":
            np.matmul(s["w"], s["cols"][:k], out=s["y"][:k])  # (O, CK) @ (k, CK, L)
        elif op == "grad_input":
            np.matmul(s["w"].T, s["dy"][:k], out=s["dcols"][:k])  # (CK, O) @ (k, O, L)
        elif 2 * o * ck * length >= ACCUMULATE_FLOPS:
            for i in range(k):
                blas.gemm(s["dy"][i], s["cols"][i].T, s["dw"], beta=1.0)  # dw += (O, L) @ (L, CK)
        else:  # small products: one stacked call, then the sum over the chunk's samples
            np.matmul(s["dy"][:k], s["cols"][:k].transpose(0, 2, 1), out=s["dws"][:k])  # (k, O, CK)
            s["dw"] += s["dws"][:k].sum(axis=0)

    return _on_workers(the_plan, scratch, process, repeats)


def side_by_side_ms(op: str, spec, dtype, threads: int, repeats: int) -> float:
    """The products of ``op`` over chunks of samples laid side by side (batch-last im2col), ~SIDE_BYTES each,
    on convgrad's workers, operands hot: one product per chunk, ``(O, C*K) @ (C*K, nb*L)`` and so on."""
    from convgrad import blas

    n, o, ck, length = _dims(spec)
    nb = max(1, min(n, SIDE_BYTES // (ck * length * np.dtype(dtype).itemsize)))
    the_plan = _plan(n, nb, threads)
    rng = np.random.default_rng(0)

    def scratch():
        s = {"w": rng.standard_normal((o, ck)).astype(dtype), "cols": rng.standard_normal((ck, nb * length)).astype(dtype),
             "dy": rng.standard_normal((o, nb * length)).astype(dtype), "dw": np.zeros((ck, o), dtype)}
        s["dy_rows"] = np.ascontiguousarray(s["dy"].T)  # (nb*L, O): as rowgemm hands the weight gradient to BLAS
        s["y"], s["dcols"] = np.empty_like(s["dy"]), np.empty_like(s["cols"])
        return s

    def process(s, a, b):
        k = (b - a) * length
        if op == "forward":
            np.matmul(s["w"], s["cols"][:, :k], out=s["y"][:, :k])
        elif op == "grad_input":
            np.matmul(s["w"].T, s["dy"][:, :k], out=s["dcols"][:, :k])
        else:
            blas.gemm(s["cols"][:, :k], s["dy_rows"][:k], s["dw"], beta=1.0)  # dw.T += (CK, k) @ (k, O)

    return _on_workers(the_plan, scratch, process, repeats)


def whole_batch_ms(op: str, spec, dtype, repeats: int) -> float:
    """The products of ``op`` as one BLAS call over the whole batch (BLAS's own threads)."""
    n, o, ck, length = _dims(spec)
    rng = np.random.default_rng(0)
    w = rng.standard_normal((o, ck)).astype(dtype)
    if op == "forward":
        cols = rng.standard_normal((ck, n * length)).astype(dtype)
        out = np.empty((o, n * length), dtype)
        return _median_ms(lambda: np.matmul(w, cols, out=out), repeats)
    dy = rng.standard_normal((o, n * length)).astype(dtype)
    if op == "grad_input":
        out = np.empty((ck, n * length), dtype)
        return _median_ms(lambda: np.matmul(w.T, dy, out=out), repeats)
    rows = rng.standard_normal((n * length, ck)).astype(dtype)  # the im2col matrix as rows
    out = np.empty((o, ck), dtype)
    return _median_ms(lambda: np.matmul(dy, rows, out=out), repeats)


def products_ms(op: str, spec, dtype, threads: int, repeats: int, small: bool) -> float:
    """The best of the three arrangements' times for ``op`` on ``spec``; with ``small`` (the operation runs on
    one thread in the step, :func:`convgrad.algorithms.is_small`) every arrangement runs on one thread too."""
    from convgrad import blas

    threads = 1 if small else threads
    with blas.single_threaded() if small else contextlib.nullcontext():
        return min(per_sample_ms(op, spec, dtype, threads, repeats), side_by_side_ms(op, spec, dtype, threads, repeats),
                   whole_batch_ms(op, spec, dtype, repeats))


def _convgrad_child(net: str, dtype: str, steps: int, threads: int, repeats: int) -> dict:
    """One convgrad process: its step, the convolution operations inside it (timed where they run) and
    their products alone. ``rest_ms`` is the median over steps of the step's time outside its convolutions."""
    import convgrad
    from convgrad import algorithms
    from convgrad.bench import train_step

    convgrad.set_num_threads(threads)
    _, step = train_step.build(net, "convgrad", dtype)
    x, y = train_step.batch(net, dtype)
    spent: dict[tuple, float] = defaultdict(float)
    calls: dict[tuple, int] = defaultdict(int)  # per step: layers of the same shape share a key (ResNet-8's 16 -> 16)
    compute = algorithms._compute

    def timed(alg, op, spec, a, b, bias=None):
        start = time.perf_counter()
        try:
            return compute(alg, op, spec, a, b, bias)
        finally:
            spent[(op, spec, alg.name)] += time.perf_counter() - start
            calls[(op, spec, alg.name)] += 1

    per_op: dict[tuple, list[float]] = defaultdict(list)
    totals, conv = [], []
    algorithms._compute = timed
    try:
        for _ in range(3):
            step(x, y)
        for _ in range(steps):
            spent.clear()
            calls.clear()
            start = time.perf_counter()
            step(x, y)
            totals.append(time.perf_counter() - start)
            conv.append(sum(spent.values()))
            for key, t in spent.items():
                per_op[key].append(t)
    finally:
        algorithms._compute = compute
    count = dict(calls)
    dt = np.dtype(dtype)
    ops = []
    for (op, spec, name), times in per_op.items():
        small = algorithms.is_small(algorithms.get_algorithm(name), spec, op, dt.itemsize)
        ops.append({"op": op, "conv": f"N{spec.batch} {spec.in_channels}->{spec.out_channels} "
                                      f"{'x'.join(map(str, spec.input_size))} k{'x'.join(map(str, spec.kernel_size))} "
                                      f"s{','.join(map(str, spec.stride))}",
                    "algorithm": name, "calls": count[(op, spec, name)], "one_thread": small,
                    "in_step_ms": 1e3 * statistics.median(times),
                    "products_ms": count[(op, spec, name)] * products_ms(op, spec, dt, threads, repeats, small)})
    return {"step_ms": 1e3 * statistics.median(totals), "conv_ms": 1e3 * statistics.median(conv),
            "rest_ms": 1e3 * statistics.median(t - c for t, c in zip(totals, conv)), "ops": ops}


def _torch_child(net: str, dtype: str, steps: int, threads: int) -> dict:
    import torch

    from convgrad.bench import train_step

    torch.set_num_threads(threads)
    _, step = train_step.build(net, "torch", dtype)
    x, y = train_step.batch(net, dtype)
    x, y = torch.from_numpy(x), torch.from_numpy(y)
    for _ in range(3):
        step(x, y)
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        step(x, y)
        times.append(time.perf_counter() - start)
    return {"step_ms": 1e3 * statistics.median(times)}


def main(argv=None) -> int:
    from convgrad.bench.train_step import NETS

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--nets", default=",".join(NETS), help=f"comma-separated subset of {','.join(NETS)} (default: all)")
    p.add_argument("--dtype", default="float32", choices=("float32", "float64"))
    p.add_argument("--rounds", type=int, default=3, help="rounds of the two processes, alternating (default 3)")
    p.add_argument("--steps", type=int, default=9, help="timed steps per process, median (default 9)")
    p.add_argument("--repeats", type=int, default=9, help="timed calls of each product, median (default 9)")
    p.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    p.add_argument("--json", type=Path, default=Path(__file__).parent / "results" / "gemm_ceiling.json")
    p.add_argument("--child", nargs=2, metavar=("LIBRARY", "NET"), help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.rounds < 1 or args.steps < 1 or args.repeats < 1 or args.threads < 1:
        p.error("--rounds, --steps, --repeats and --threads must be at least 1")
    nets = args.nets.split(",")
    unknown = [n for n in nets if n not in NETS]
    if unknown:
        p.error(f"--nets: unknown network(s) {', '.join(map(repr, unknown))}; choose from {', '.join(NETS)}")
    if args.child:
        library, net = args.child
        if library not in ("convgrad", "torch") or net not in NETS:
            p.error(f"--child: expected convgrad|torch and a network, got {library!r} {net!r}")
        out = (_torch_child(net, args.dtype, args.steps, args.threads) if library == "torch"
               else _convgrad_child(net, args.dtype, args.steps, args.threads, args.repeats))
        print(json.dumps(out))
        return 0
    record = {"date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
              "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs",
              "dtype": args.dtype, "threads": args.threads, "load_average_before": os.getloadavg()[0], "nets": {}}
    for net in nets:
        runs = {"convgrad": [], "torch": []}
        for _ in range(args.rounds):
            for library in runs:
                out = subprocess.run([sys.executable, __file__, "--child", library, net, "--dtype", args.dtype,
                                      "--steps", str(args.steps), "--repeats", str(args.repeats),
                                      "--threads", str(args.threads)], capture_output=True, text=True)
                if out.returncode != 0:
                    sys.exit(f"gemm_ceiling: the {library} process for {net} failed:\n{out.stderr.strip()}")
                runs[library].append(json.loads(out.stdout.strip().splitlines()[-1]))
        record["nets"][net] = row = summarise(runs)
        print(f"\n{net} {args.dtype}: PyTorch step {row['torch_step_ms']:.1f} ms; convgrad step "
              f"{row['convgrad_step_ms']:.1f} ms ({row['ratio_now']:.2f}x); in the round of the median bound, "
              f"convolutions {row['convgrad_conv_ms']:.1f} ms, their products alone {row['products_ms']:.1f} ms, "
              f"the rest of the step {row['rest_ms']:.1f} ms -> bound {row['bound_ms']:.1f} ms "
              f"({row['ratio_bound']:.2f}x PyTorch)")
        for o in sorted(row["ops"], key=lambda o: -o["in_step_ms"]):
            print(f"  {o['conv']:28s} {o['op']:11s} {o['algorithm']:10s} x{o['calls']}{' 1 thread' if o['one_thread'] else ''}"
                  f" in step {o['in_step_ms']:6.2f} ms, products {o['products_ms']:6.2f} ms "
                  f"({o['in_step_ms'] / o['products_ms']:.2f}x)")
    record["load_average_after"] = os.getloadavg()[0]
    args.json.write_text(json.dumps(record, indent=1) + "\n")
    print(f"\nload average {record['load_average_before']:.2f} -> {record['load_average_after']:.2f}; written {args.json}")
    return 0


def summarise(runs: dict) -> dict:
    """One network's record from its rounds ``{"convgrad": [child output, ...], "torch": [...]}``.

    Steps are medians over the rounds; a round's bound is its step's time outside the convolutions
    (``rest_ms``) plus the products alone; the record's bound is the lower median of the rounds' bounds,
    and its operation table, convolution and products times are that round's (so ``bound_ms`` is
    exactly ``rest_ms + products_ms``).
    """
    torch_step = statistics.median(r["step_ms"] for r in runs["torch"])
    cg_step = statistics.median(r["step_ms"] for r in runs["convgrad"])
    bounds = [r["rest_ms"] + sum(o["products_ms"] for o in r["ops"]) for r in runs["convgrad"]]
    cg = runs["convgrad"][bounds.index(statistics.median_low(bounds))]
    products = sum(o["products_ms"] for o in cg["ops"])
    return {"torch_step_ms": torch_step, "torch_steps_ms": [r["step_ms"] for r in runs["torch"]],
            "convgrad_step_ms": cg_step, "convgrad_steps_ms": [r["step_ms"] for r in runs["convgrad"]],
            "convgrad_conv_ms": cg["conv_ms"], "rest_ms": cg["rest_ms"], "products_ms": products,
            "bound_ms": cg["rest_ms"] + products, "bounds_ms": bounds, "ratio_now": cg_step / torch_step,
            "ratio_bound": (cg["rest_ms"] + products) / torch_step, "ops": cg["ops"]}


if __name__ == "__main__":
    sys.exit(main())
