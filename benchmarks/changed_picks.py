"""Where ``auto``'s pick differs between this checkout and another source tree, time the old pick against the new.

For every distinct convolution of the training networks (``convgrad bench --train``; shapes found
as in ``auto_vs_fastest.py``) and each operation, it asks this checkout's ``auto`` and, in a
subprocess, the other tree's (``--before SRC``, e.g. ``git archive <commit> src | tar -x -C
/tmp/before``) which algorithm they pick. Where they differ, it times both algorithms with *this*
checkout's code (the old pick's module unchanged, normally), alternating over ``--rounds`` rounds in
one process, and reports the medians, each ratio new/old and the sums.

    python benchmarks/changed_picks.py --before /tmp/before/src [--threads 2] [--rounds 15] [--dtype float32]

Not a test. Seconds; the load average is printed (on a busy machine ratios within ~10 % are noise).
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

sys.path.insert(0, os.path.dirname(__file__))
import auto_vs_fastest as avf  # noqa: E402  (the networks' convolutions, operands)

from convgrad import algorithms, runtime  # noqa: E402
from convgrad.spec import conv_spec  # noqa: E402

OPS = ("forward", "grad_input", "grad_weight")
NETS = "lenet5,vgg,resnet8,cnn1d"


def _spec(c: dict):
    return conv_spec(c["input_shape"], c["weight_shape"], stride=c["stride"], padding=c["padding"],
                     dilation=c["dilation"], groups=c["groups"])


def picks(nets: list[str], itemsize: int) -> dict[str, list[str]]:
    """``{convolution: [pick per operation]}`` of the convgrad imported here."""
    return {c["name"]: [algorithms.choose(_spec(c), op, itemsize).name for op in OPS]
            for c in avf.distinct_convolutions(nets)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--before", required=False, metavar="SRC", help="source tree of the code before")
    ap.add_argument("--nets", default=NETS)
    ap.add_argument("--dtype", default="float32")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=15)
    ap.add_argument("--picks-only", action="store_true", help=argparse.SUPPRESS)  # the subprocess's job
    args = ap.parse_args()
    nets = args.nets.split(",")
    itemsize = np.dtype(args.dtype).itemsize
    if args.picks_only:
        with runtime.settings(num_threads=args.threads):
            print(json.dumps(picks(nets, itemsize)))
        return 0
    if not args.before:
        ap.error("--before SRC is required")
    env = dict(os.environ, PYTHONPATH=args.before)
    out = subprocess.run([sys.executable, __file__, "--picks-only", "--nets", args.nets, "--dtype", args.dtype,
                          "--threads", str(args.threads)], env=env, capture_output=True, text=True, check=True)
    old = json.loads(out.stdout)
    with runtime.settings(num_threads=args.threads):
        new = picks(nets, itemsize)
    convs = {c["name"]: c for c in avf.distinct_convolutions(nets)}
    rng = np.random.default_rng(0)
    load = os.getloadavg()
    print(f"{args.dtype}, {args.threads} threads, medians of {args.rounds} alternating rounds; "
          f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    total_old = total_new = 0.0
    for name, ops in new.items():
        for i, op in enumerate(OPS):
            a_old, a_new = old[name][i], ops[i]
            if a_old == a_new:
                continue
            spec = _spec(convs[name])
            a, b = avf.operands(spec, op, np.dtype(args.dtype), rng)
            times = {a_old: [], a_new: []}
            with runtime.settings(num_threads=args.threads):
                for alg in times:
                    algorithms.run(op, spec, a, b, alg)
                for r in range(args.rounds):
                    for alg in (list(times) if r % 2 else list(times)[::-1]):
                        t0 = time.perf_counter()
                        algorithms.run(op, spec, a, b, alg)
                        times[alg].append(time.perf_counter() - t0)
            t_old, t_new = statistics.median(times[a_old]), statistics.median(times[a_new])
            total_old += t_old
            total_new += t_new
            print(f"{name:34s} {op:12s} {a_old:>10s} {1e3 * t_old:8.3f} ms -> {a_new:>10s} {1e3 * t_new:8.3f} ms"
                  f"  {t_new / t_old:.2f}x", flush=True)
    print(f"sum: {1e3 * total_old:.2f} ms -> {1e3 * total_new:.2f} ms; load average after {os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
