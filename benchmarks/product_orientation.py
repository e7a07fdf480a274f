"""Which way round OpenBLAS multiplies a narrow convolution's im2col products faster.

A channels-first im2col algorithm (``samplegemm``, ``tapgemm``, ``rowgemm``) multiplies with the
output positions as *columns*::

    forward      (O, C*K) @ (C*K, L)       input gradient   (C*K, O) @ (O, L)

and a channels-last one (``samplegemm_last``, ``im2row``) with them as *rows*::

    forward      (L, C*K) @ (C*K, O)       input gradient   (L, O) @ (O, C*K)

The same flops, but OpenBLAS (NumPy's wheels; SkylakeX kernels here) runs them at different
speeds when ``O`` is small. This script times both ways for the shapes of the training networks'
narrow layers, one BLAS thread, the operands contiguous in the layout each way needs, all variants
interleaved call by call (``--rounds`` rounds, the median), and prints GFLOP/s.

    python benchmarks/product_orientation.py [--rounds 60] [--json benchmarks/results/product_orientation.json]

Not a test. A few seconds; run it with nothing else running.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np

#: (O, C*K, L): output channels, inner dimension, output positions of one sample (or chunk)
SHAPES = ((16, 144, 1024), (16, 144, 2048), (32, 144, 1024), (32, 288, 1024), (16, 150, 100), (64, 576, 256))


def _products(o: int, k: int, length: int, rng) -> dict:
    w = rng.standard_normal((o, k)).astype(np.float32)
    cols = rng.standard_normal((k, length)).astype(np.float32)
    rows = np.ascontiguousarray(cols.T)  # (L, C*K)
    wt = np.ascontiguousarray(w.T)  # (C*K, O)
    dy = rng.standard_normal((o, length)).astype(np.float32)
    dyt = np.ascontiguousarray(dy.T)  # (L, O)
    y, yt = np.empty((o, length), np.float32), np.empty((length, o), np.float32)
    dcols, dcolst = np.empty((k, length), np.float32), np.empty((length, k), np.float32)
    dw, dwt = np.empty((o, k), np.float32), np.empty((k, o), np.float32)
    return {"forward, positions as columns": lambda: np.matmul(w, cols, out=y),
            "forward, positions as rows": lambda: np.matmul(rows, wt, out=yt),
            "input gradient, positions as columns": lambda: np.matmul(wt, dy, out=dcols),
            "input gradient, positions as rows": lambda: np.matmul(dyt, w, out=dcolst),
            "weight gradient, (O, L) @ (L, C*K)": lambda: np.matmul(dy, rows, out=dw),
            "weight gradient, (C*K, L) @ (L, O)": lambda: np.matmul(cols, dyt, out=dwt)}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rounds", type=int, default=60, help="interleaved rounds, median (default 60)")
    p.add_argument("--json", type=Path, default=Path(__file__).parent / "results" / "product_orientation.json")
    args = p.parse_args(argv)
    if args.rounds < 1:
        p.error("--rounds must be at least 1")
    from threadpoolctl import threadpool_limits

    rng = np.random.default_rng(0)
    record = {"date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
              "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs",
              "load_average_before": os.getloadavg()[0], "gflops_one_thread": []}
    with threadpool_limits(1):
        for o, k, length in SHAPES:
            fs = _products(o, k, length, rng)
            times = {name: [] for name in fs}
            for f in fs.values():
                f()
                f()
            for _ in range(args.rounds):
                for name, f in fs.items():
                    start = time.perf_counter()
                    f()
                    times[name].append(time.perf_counter() - start)
            flops = 2 * o * k * length
            rates = {name: flops / statistics.median(t) / 1e9 for name, t in times.items()}
            record["gflops_one_thread"].append({"O": o, "CK": k, "L": length, **rates})
            print(f"O={o}, C*K={k}, L={length}: GFLOP/s, one thread")
            for name, rate in rates.items():
                print(f"  {name:38s} {rate:5.0f}")
    record["load_average_after"] = os.getloadavg()[0]
    args.json.write_text(json.dumps(record, indent=1) + "\n")
    print(f"written {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
