"""Where a convgrad training step's peak memory comes from: the live arrays at each convolution, and at the peak.

The networks and the step are ``convgrad bench --train``'s (:mod:`convgrad.bench.train_step`).
NumPy reports every array it allocates to :mod:`tracemalloc`, so the traced bytes are the live
arrays (plus Python's own objects): with glibc returning freed blocks at once (the benchmark's
memory settings) the resident-set peak of ``bench --train`` is this traced peak plus the network's
parameters, gradients and momentum, the batch, and under 1 MiB of malloc's own (ResNet-8 float32,
2026-12-02: 47.9 MiB resident against 45.6 traced above the state between steps).

    python benchmarks/step_memory.py [--net resnet8] [--dtype float32] [--threads 2] [--top 12]

Prints, for one step after two warm-up steps: every convolution operation (algorithm, input
shape, live MiB when it starts, the peak inside it, and its scratch: that peak minus the live
memory and its result), then the arrays alive at the step's peak, grouped by the line of convgrad
that allocated them.
"""

from __future__ import annotations

import argparse
import collections
import gc
import sys
import tracemalloc

MiB = 2**20


def _origin(trace) -> str:
    """The innermost convgrad line of an allocation's traceback (threads' plumbing skipped)."""
    for frame in reversed(list(trace.traceback)):
        name = frame.filename.replace("\\", "/")
        if "/convgrad/" in name and not name.endswith(("batch_split.py", "parallel.py")):
            return f"{name.split('/convgrad/', 1)[1]}:{frame.lineno}"
    return "(outside convgrad)"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--net", default="resnet8")
    parser.add_argument("--dtype", default="float32")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--top", type=int, default=12, help="allocating lines shown at the peak")
    args = parser.parse_args(argv)

    from convgrad import algorithms, memory, runtime
    from convgrad.bench.train_step import batch, build

    runtime.set_num_threads(args.threads)
    memory.set_memory_reuse(True)
    x, y = batch(args.net, args.dtype)
    _, step = build(args.net, "convgrad", args.dtype)
    step(x, y)
    step(x, y)
    gc.collect()

    ops, state = [], {"peak": 0, "snapshot": None, "max": 0}
    execute = algorithms.execute

    def traced_execute(alg, op, spec, a, b, bias=None, small=False):
        live, before = tracemalloc.get_traced_memory()
        state["max"] = max(state["max"], before)  # the peak so far, before this operation's own is measured
        tracemalloc.reset_peak()
        result = execute(alg, op, spec, a, b, bias, small)
        peak = tracemalloc.get_traced_memory()[1]
        ops.append((op, alg.name, spec.input_shape, live, peak, peak - live - result.nbytes))
        return result

    def profile(frame, event, arg):  # a snapshot whenever the live bytes reach a new high (by 128 KiB)
        current = tracemalloc.get_traced_memory()[0]
        if current > state["peak"] + 2**17:
            sys.setprofile(None)
            state["peak"], state["snapshot"] = current, tracemalloc.take_snapshot()
            sys.setprofile(profile)

    algorithms.execute = traced_execute  # planning.py calls it through the module
    tracemalloc.start(30)
    sys.setprofile(profile)
    try:
        step(x, y)
    finally:
        sys.setprofile(None)
        algorithms.execute = execute
        peak = max(state["max"], tracemalloc.get_traced_memory()[1])
        tracemalloc.stop()

    print(f"{args.net} {args.dtype}, {args.threads} threads: peak live {peak / MiB:.2f} MiB above the state between steps")
    print(f"{'operation':11s} {'algorithm':11s} {'input':20s} {'live':>7s} {'peak':>7s} {'scratch':>7s}")
    for op, name, shape, live, top, scratch in ops:
        print(f"{op:11s} {name:11s} {str(shape):20s} {live / MiB:7.2f} {top / MiB:7.2f} {scratch / MiB:7.2f}")
    if state["snapshot"] is not None:
        groups = collections.Counter()
        for trace in state["snapshot"].traces:
            groups[_origin(trace)] += trace.size
        print(f"\narrays alive at {state['peak'] / MiB:.2f} MiB (the highest snapshot), by allocating line:")
        for origin, size in groups.most_common(args.top):
            print(f"{size / MiB:8.2f} MiB  {origin}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
