"""One thread or two on the small layers: each operation of g1 and g2 with an algorithm on one thread and on two.

``algorithms.SMALL_WORK`` (1 ms) keeps every operation estimated under it on one thread; LeNet-5's
two layers (g1: 1 -> 6 channels, 28x28, 5x5, pad 2; g2: 6 -> 16, 14x14, 5x5; batch 64) are just under
it in float32 (0.65-0.96 ms estimated, but for g1's input gradient at 1.1 ms), so they run on one core
while PyTorch uses two; in float64 an estimate counts twice (``algorithms.is_small``), and they run on
two. This script answers, for a given machine state, which is faster:
it runs ``algorithms.execute`` with the given algorithm on one thread (``small=True``, as the dispatcher
runs a small operation) and on ``--threads`` (``small=False``: the chunks on the workers), alternating
the configurations round by round (reversed every other round), and prints the best and the median
wall-clock time per operation, with the load average before and after.

    python benchmarks/small_threads.py [--layers g1,g2] [--dtypes float32,float64]
                                       [--algorithms rowgemm,samplegemm] [--rounds 40] [--threads 2]

Not a test. Measured on 2026-12-02 (2-core EPYC, NumPy 2.4 / OpenBLAS 0.3.31 Haswell kernels) only
with other jobs on the machine (load average 1-3, one core never free): two threads lost in every
operation, e.g. g2 rowgemm float32 forward 1.30 ms against 1.08 (best of 40), float64 2.36 against
2.08, g1 samplegemm float32 forward 1.39 against 1.16. A prototype with the batch split into two halves,
one per thread, took 0.63-0.72 ms against 1.03-1.10 for g2's forward at load 1.6 -- so on a machine with
its second core free the answer may differ: run this there before changing ``SMALL_WORK``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import numpy as np

from convgrad import algorithms, runtime
from convgrad.spec import conv_spec

LAYERS = {"g1": ((64, 1, 28, 28), (6, 1, 5, 5), 2), "g2": ((64, 6, 14, 14), (16, 6, 5, 5), 0)}
OPS = ("forward", "grad_input", "grad_weight")


def measure(layer: str, dtype: str, names: list[str], rounds: int, threads: int) -> dict:
    """``{(algorithm, threads): {op: [seconds per round]}}`` for one layer and dtype."""
    xs, ws, pad = LAYERS[layer]
    rng = np.random.default_rng(0)
    x, w = rng.standard_normal(xs).astype(dtype), rng.standard_normal(ws).astype(dtype)
    spec = conv_spec(xs, ws, padding=pad)
    dy = rng.standard_normal(spec.output_shape).astype(dtype)
    operands = {"forward": (x, w), "grad_input": (dy, w), "grad_weight": (x, dy)}
    combos = [(n, t) for n in names for t in sorted({1, threads})
              if algorithms.get_algorithm(n).unsupported(spec, "forward") is None]
    times = {c: {op: [] for op in OPS} for c in combos}
    for r in range(rounds + 2):  # two untimed rounds first
        for name, t in (combos if r % 2 else combos[::-1]):
            alg = algorithms.get_algorithm(name)
            with runtime.settings(num_threads=t):
                for op in OPS:
                    start = time.perf_counter()
                    algorithms.execute(alg, op, spec, *operands[op], None, t == 1)
                    if r >= 2:
                        times[(name, t)][op].append(time.perf_counter() - start)
    return times


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--layers", default="g1,g2")
    p.add_argument("--dtypes", default="float32,float64")
    p.add_argument("--algorithms", default="rowgemm,samplegemm")
    p.add_argument("--rounds", type=int, default=40)
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args()
    print(f"load average before: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    for layer in args.layers.split(","):
        for dtype in args.dtypes.split(","):
            res = measure(layer, dtype, args.algorithms.split(","), args.rounds, args.threads)
            for (name, t), per_op in res.items():
                cells = " | ".join(f"{op} {1e3 * min(v):.2f} / {1e3 * statistics.median(v):.2f}" for op, v in per_op.items())
                print(f"{layer} {dtype:7s} {name:10s} {t} thread{'s' if t > 1 else ' '}  best / median ms: {cells}")
    print(f"load average after: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")


if __name__ == "__main__":
    main()
