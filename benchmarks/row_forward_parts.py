"""A row-oriented forward for a narrow channels-first layer, timed part by part against ``samplegemm``.

``benchmarks/product_orientation.py`` shows OpenBLAS multiplying a 16-channel layer's products
faster with the output positions as rows. A channels-first sample can be turned round for that:
per chunk of ``nb`` samples::

    transpose in    x[n] (C, H, W) -> a zero-padded channels-last buffer (H + 2P, W + 2P, C)
    im2row          rows[(n, h, w), (kh, kw, c)] = buffer[n, h + kh, w + kw, c]   (runs of K_w * C values)
    products        rows @ W.T                     (nb*H*W, K*C) @ (K*C, O)
    transpose out   (nb*H*W, O) -> y[n] (O, H, W)

This script times those four parts on one thread for ResNet-8's 16 -> 16 3x3 'same' layer (batch
64; ``--channels`` for others), checks the result against ``convgrad.conv2d``, and times
``samplegemm``'s forward of the same layer in the same process on one thread, the two
alternating. Nothing here is part of the library: it is the measurement behind the README's note
that such an algorithm would take about 0.86x ``samplegemm``'s time there.

    python benchmarks/row_forward_parts.py [--channels 16] [--rounds 9] [--json PATH]

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
from numpy.lib.stride_tricks import as_strided

PARTS = ("transpose in", "im2row", "products", "transpose out")


def row_forward(x: np.ndarray, w: np.ndarray, nb: int = 2):
    """``conv2d(x, w, padding=1)`` for a 3x3 kernel the row-oriented way; returns ``(y, ms per part)``."""
    n, c, h, wd = x.shape
    o = w.shape[0]
    wt = np.ascontiguousarray(w.transpose(2, 3, 1, 0).reshape(9 * c, o))  # (kh, kw, c) x O
    buf = np.zeros((nb, h + 2, wd + 2, c), x.dtype)  # the border stays zero
    rows = np.empty((nb, h, wd, 3, 3, c), x.dtype)
    out = np.empty((nb * h * wd, o), x.dtype)
    y = np.empty((n, o, h * wd), x.dtype)
    s = buf.strides
    windows = as_strided(buf, (nb, h, wd, 3, 3, c), (s[0], s[1], s[2], s[1], s[2], s[3]), writeable=False)
    spent = dict.fromkeys(PARTS, 0.0)
    for n0 in range(0, n, nb):
        k = min(nb, n - n0)
        t0 = time.perf_counter()
        buf[:k, 1:h + 1, 1:wd + 1, :] = x[n0:n0 + k].transpose(0, 2, 3, 1)
        t1 = time.perf_counter()
        np.copyto(rows[:k], windows[:k])
        t2 = time.perf_counter()
        np.matmul(rows[:k].reshape(k * h * wd, 9 * c), wt, out=out[:k * h * wd])
        t3 = time.perf_counter()
        np.copyto(y[n0:n0 + k], out[:k * h * wd].reshape(k, h * wd, o).transpose(0, 2, 1))
        t4 = time.perf_counter()
        for part, dt in zip(PARTS, (t1 - t0, t2 - t1, t3 - t2, t4 - t3)):
            spent[part] += 1e3 * dt
    return y.reshape(n, o, h, wd), spent


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--channels", type=int, default=16, help="input and output channels (default 16)")
    p.add_argument("--rounds", type=int, default=9, help="alternating rounds, median (default 9)")
    p.add_argument("--json", type=Path, default=Path(__file__).parent / "results" / "row_forward_parts.json")
    args = p.parse_args(argv)
    if args.channels < 1 or args.rounds < 1:
        p.error("--channels and --rounds must be at least 1")
    from threadpoolctl import threadpool_limits

    import convgrad
    from convgrad import algorithms
    from convgrad.spec import conv_spec

    convgrad.set_num_threads(1)
    rng = np.random.default_rng(0)
    c = args.channels
    x = rng.standard_normal((64, c, 32, 32)).astype(np.float32)
    w = rng.standard_normal((c, c, 3, 3)).astype(np.float32)
    spec = conv_spec(x.shape, w.shape, padding=1)
    samplegemm = algorithms.get_algorithm("samplegemm")
    with threadpool_limits(1):
        y, _ = row_forward(x, w)
        error = float(np.abs(y - convgrad.conv2d(x, w, padding=1)).max())
        if error > 1e-3:
            sys.exit(f"row_forward_parts: the row-oriented forward is wrong (max error {error:g})")
        parts, theirs = [], []
        for _ in range(2):
            row_forward(x, w)
            algorithms.execute(samplegemm, "forward", spec, x, w)
        for _ in range(args.rounds):
            parts.append(row_forward(x, w)[1])
            start = time.perf_counter()
            algorithms.execute(samplegemm, "forward", spec, x, w)
            theirs.append(1e3 * (time.perf_counter() - start))
    median = {part: statistics.median(r[part] for r in parts) for part in PARTS}
    total = statistics.median(sum(r.values()) for r in parts)
    record = {"date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
              "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs",
              "load_average": os.getloadavg()[0], "layer": f"N64 {c}->{c} 32x32 k3x3 pad 1, float32, one thread",
              "max_error": error, "parts_ms": median, "row_total_ms": total, "samplegemm_ms": statistics.median(theirs)}
    print(record["layer"] + ": " + ", ".join(f"{part} {ms:.2f}" for part, ms in median.items())
          + f" -> {total:.2f} ms (median of totals); samplegemm {record['samplegemm_ms']:.2f} ms "
          f"({total / record['samplegemm_ms']:.2f}x); max error {error:.1e}")
    args.json.write_text(json.dumps(record, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
