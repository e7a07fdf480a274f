"""Pooling, forward + backward, on the training networks' shapes: convgrad's functions against torch.nn.functional.

Each library runs in its own process (PyTorch's OpenMP threads keep spinning after a call and
would steal a core from convgrad), both on the same number of threads; the rounds alternate the
libraries, and each entry is the median over the rounds of the median of ``--repeats`` calls.

    python benchmarks/pool_vs_torch.py [--rounds 3] [--repeats 9] [--threads 2] [--dtype float32]

A call is ``y = pool(x, 2)`` then ``dx = pool_backward(dy, ...)`` -- for max pooling convgrad is
handed the indices its forward returned, as PyTorch's autograd reuses its own.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

import numpy as np

# (N, C, H, W): the inputs of the 2x2 pools of LeNet-5 and of the VGG-style net of `convgrad bench --train`
SHAPES = [(64, 6, 28, 28), (64, 16, 10, 10), (64, 32, 32, 32), (64, 64, 16, 16), (64, 128, 8, 8)]


def _median_ms(f, repeats: int) -> float:
    for _ in range(2):
        f()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        f()
        times.append(time.perf_counter() - start)
    return 1e3 * statistics.median(times)


def measure(library: str, threads: int, repeats: int, dtype: str) -> dict:
    rng = np.random.default_rng(0)
    out = {}
    if library == "torch":
        import torch

        torch.set_num_threads(threads)
        F = torch.nn.functional
        for shape in SHAPES:
            x = torch.tensor(rng.standard_normal(shape).astype(dtype), requires_grad=True)
            dy = torch.tensor(rng.standard_normal((*shape[:2], shape[2] // 2, shape[3] // 2)).astype(dtype))
            out[f"max {shape}"] = _median_ms(lambda: F.max_pool2d(x, 2).backward(dy), repeats)
            out[f"avg {shape}"] = _median_ms(lambda: F.avg_pool2d(x, 2).backward(dy), repeats)
        return out
    import convgrad

    convgrad.set_num_threads(threads)
    for shape in SHAPES:
        x = rng.standard_normal(shape).astype(dtype)
        dy = rng.standard_normal((*shape[:2], shape[2] // 2, shape[3] // 2)).astype(dtype)

        def max_step():
            _, idx = convgrad.max_pool(x, 2, return_indices=True)
            convgrad.max_pool_backward(dy, x, 2, indices=idx)

        def avg_step():
            convgrad.avg_pool(x, 2)
            convgrad.avg_pool_backward(dy, x, 2)

        out[f"max {shape}"] = _median_ms(max_step, repeats)
        out[f"avg {shape}"] = _median_ms(avg_step, repeats)
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=9)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    parser.add_argument("--library", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.library:
        print(json.dumps(measure(args.library, args.threads, args.repeats, args.dtype)))
        return 0
    runs = {"convgrad": [], "torch": []}
    for _ in range(args.rounds):
        for library in runs:
            cmd = [sys.executable, __file__, "--library", library, "--threads", str(args.threads),
                   "--repeats", str(args.repeats), "--dtype", args.dtype]
            runs[library].append(json.loads(subprocess.run(cmd, capture_output=True, text=True, check=True).stdout))
    print(f"{args.dtype}, {args.threads} threads, load average {os.getloadavg()[0]:.1f}")
    print(f"{'pool, input':28s} {'convgrad ms':>11s} {'PyTorch ms':>10s} {'ratio':>6s}")
    for key in runs["convgrad"][0]:
        cg = statistics.median(r[key] for r in runs["convgrad"])
        pt = statistics.median(r[key] for r in runs["torch"])
        print(f"{key:28s} {cg:11.2f} {pt:10.2f} {cg / pt:6.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
