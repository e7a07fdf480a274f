"""Channels first, channels last, and channels last with native algorithms switched off, on small layers.

``channels_last_cpu.py`` takes the median of 5 calls, which on a shared machine cannot resolve
10 % on the 1-6 ms layers g1 and g2. This times more calls of fewer variants in one process,
round-robin (the order reversed every other round), CPU time (``time.process_time``) on one
worker thread with BLAS on one thread, and prints the minimum and the median of forward + full
backward per variant, and their ratio to channels first::

    python benchmarks/channels_last_variants.py [--layers g1,g2] [--calls 80] [--without rowgemm_last]

``--without NAME`` adds a variant: channels last with ``NAME``'s ``prefers_channels_last`` answering
no (what the calls did before that algorithm; repeat the flag for several). Not a test: timings.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

from convgrad import api, runtime
from convgrad.algorithms.registry import REGISTRY
from convgrad.bench.layers import layer
from convgrad.bench.timing import blas_threads, operands
from convgrad.layout import data_to_last, weight_to_last


def _switched_off(names: tuple[str, ...]) -> None:
    """Every channels-last algorithm's own rule, except ``names``' (which answer no)."""
    for alg in REGISTRY.values():
        if getattr(alg, "channels_last", False):
            alg.__dict__.pop("prefers_channels_last", None)  # back to the class's rule
            if alg.name in names:
                alg.prefers_channels_last = lambda spec, op, itemsize=4: False


def measure(name: str, calls: int, without: list[str]) -> dict[str, tuple[float, float]]:
    """``{variant: (min, median)}`` seconds of forward + backward."""
    lay = layer(name)
    x, w, b, dy = operands(lay)
    kw = lay.kwargs()
    xl, dyl = (np.ascontiguousarray(data_to_last(a, lay.ndim)) for a in (x, dy))
    wl = np.ascontiguousarray(weight_to_last(w))
    kl = dict(kw, data_format="channels_last", weight_format="IO")
    variants = {"channels first": ((), lambda: api.conv(x, w, b, **kw), lambda: api.conv_backward(dy, x, w, **kw)),
                "channels last": ((), lambda: api.conv(xl, wl, b, **kl), lambda: api.conv_backward(dyl, xl, wl, **kl))}
    for off in without:
        variants[f"without {off}"] = ((off,), variants["channels last"][1], variants["channels last"][2])
    times = {v: [] for v in variants}
    try:
        with runtime.settings(num_threads=1), blas_threads(1):
            for off, fwd, bwd in variants.values():  # warm-up: workspace, cached picks
                _switched_off(off)
                fwd(), bwd()
            order = list(variants)
            for r in range(calls):
                for v in (order if r % 2 == 0 else order[::-1]):
                    off, fwd, bwd = variants[v]
                    _switched_off(off)
                    start = time.process_time()
                    fwd()
                    bwd()
                    times[v].append(time.process_time() - start)
    finally:
        _switched_off(())
    return {v: (min(t), statistics.median(t)) for v, t in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--layers", default="g1,g2")
    parser.add_argument("--calls", type=int, default=80)
    parser.add_argument("--without", action="append", default=[])
    args = parser.parse_args()
    print("| layer | variant | min · median ms (fwd + bwd) | ratio to channels first |")
    print("|---|---|---|---|")
    for name in args.layers.split(","):
        t = measure(name, args.calls, args.without)
        base = t["channels first"]
        for v, (lo, med) in t.items():
            print(f"| {name} | {v} | {1e3 * lo:.2f} · {1e3 * med:.2f} | {lo / base[0]:.2f} · {med / base[1]:.2f} |",
                  flush=True)


if __name__ == "__main__":
    main()
