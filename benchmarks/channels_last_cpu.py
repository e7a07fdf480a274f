"""Channels last against channels first on the benchmark layers, alternating in one process.

For each layer, convgrad's forward and full backward (``convgrad.bench.timing``'s operands and
functions: contiguous ``(N, *spatial, C)`` arrays and ``(*k, C_in, C_out)`` weights for channels
last) are timed on ``--threads`` worker threads (BLAS on as many), the two layouts alternating call
by call, first-called layout alternating by round. Prints per layer the medians and the ratio
channels last / channels first of forward + backward.

``--clock cpu`` (the default) times with ``time.process_time`` -- the CPU time of this process,
which other processes on a shared machine disturb less than the wall clock; ``--clock wall`` with
``time.perf_counter``, what a user waits, meaningful on a quiet machine and with ``--threads 2``.
Both layouts run in the same process and the same rounds, so a slow spell hits both -- unlike two
separate ``convgrad bench --data-format channels_last`` runs, whose ratio of 1-7 ms layers moves by 30 % from run
to run. ``--seconds S`` adds rounds until each layer's timed rounds (after its warm-up) have run for at
least ``S`` seconds (the small layers then get many more than ``--repeats``); the round count is
even, so that each layout is called first in half of them.

    python benchmarks/channels_last_cpu.py [--layers a,b,...] [--threads 1] [--repeats 5]
                                           [--clock cpu|wall] [--seconds 0]

Not a test: timings on a shared machine are noisy (cache and memory bandwidth are shared too).
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import time

from convgrad import runtime
from convgrad.bench.layers import LAYERS, layer
from convgrad.bench.timing import blas_threads, convgrad_functions, operands
from convgrad.cli.types import positive_int

FORMATS = ("channels_first", "channels_last")
OPS = ("forward", "backward")


def nonnegative_float(text: str) -> float:
    """A finite number >= 0 (``--seconds``)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of seconds >= 0, got {text!r}") from None
    if not (math.isfinite(value) and value >= 0):
        raise argparse.ArgumentTypeError(f"expected a number of seconds >= 0, got {text}")
    return value


def measure(name: str, threads: int, repeats: int, clock=time.process_time, seconds: float = 0.0) -> dict:
    """``{(format, op): median seconds of clock}`` for one layer."""
    lay = layer(name)
    x, w, b, dy = operands(lay)
    fns = {f: convgrad_functions(lay, x, w, b, dy, "auto", f) for f in FORMATS}
    times = {(f, op): [] for f in FORMATS for op in OPS}
    with runtime.settings(num_threads=threads), blas_threads(threads):
        for f in FORMATS:  # warm-up: workspace, auto's choices
            for op in OPS:
                fns[f][op]()
        # rounds until both --repeats and --seconds are reached, counted after the warm-up (whose
        # first calls, several times a later call's time, would make a round count estimated from it
        # fall short of --seconds), and an even number of them: each layout called first equally often
        begin, r = time.perf_counter(), 0
        while r < repeats or r % 2 or time.perf_counter() - begin < seconds:
            for f in (FORMATS if r % 2 == 0 else FORMATS[::-1]):
                for op in OPS:
                    start = clock()
                    fns[f][op]()
                    times[(f, op)].append(clock() - start)
            r += 1
    return {key: statistics.median(v) for key, v in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--layers", default=",".join(LAYERS))
    parser.add_argument("--threads", type=positive_int, default=1)
    parser.add_argument("--repeats", type=positive_int, default=5)
    parser.add_argument("--clock", choices=("cpu", "wall"), default="cpu")
    parser.add_argument("--seconds", type=nonnegative_float, default=0.0)
    args = parser.parse_args()
    unknown = [name for name in args.layers.split(",") if name not in LAYERS]
    if unknown:
        parser.error(f"--layers: unknown layer(s) {', '.join(unknown)}; the layers are {','.join(LAYERS)}")
    clock = time.process_time if args.clock == "cpu" else time.perf_counter
    print(f"load average before: {' '.join(f'{v:.2f}' for v in os.getloadavg())}; clock {args.clock}, "
          f"{args.threads} thread(s), at least {args.repeats} rounds and {args.seconds:g} s a layer")
    print("| layer | fwd cf / cl ms | bwd cf / cl ms | fwd+bwd ratio cl / cf |")
    print("|---|---|---|---|")
    ratios = []
    for name in args.layers.split(","):
        t = measure(name, args.threads, args.repeats, clock, args.seconds)
        both = {f: t[(f, "forward")] + t[(f, "backward")] for f in FORMATS}
        ratio = both["channels_last"] / both["channels_first"]
        ratios.append(ratio)
        print(f"| {name} | {1e3 * t[('channels_first', 'forward')]:.1f} / {1e3 * t[('channels_last', 'forward')]:.1f} "
              f"| {1e3 * t[('channels_first', 'backward')]:.1f} / {1e3 * t[('channels_last', 'backward')]:.1f} "
              f"| {ratio:.2f} |", flush=True)
    print(f"| **geometric mean** | | | **{math.exp(sum(map(math.log, ratios)) / len(ratios)):.2f}** |")
    print(f"load average after: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")


if __name__ == "__main__":
    main()
