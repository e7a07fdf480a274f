"""Where a training step's time goes, per module, in convgrad.nn and torch.nn (each in its own process).

The networks and the step are ``convgrad bench --train``'s (:mod:`convgrad.bench.train_step`). Every
module's forward and backward is wrapped with a timer inside the real step (cold data, fresh
arrays, as in training -- not a layer alone on hot caches); a module's *self* time is its time
minus its children's (a ``BasicBlock``'s own add, ReLU and mask; a ``Sequential``'s loop). What
no module accounts for -- the loss, ``zero_grad``, the optimizer step -- is reported as "rest".
PyTorch's backward per module is timed with full backward pre-hooks and hooks (autograd runs a
chain in order, so the span between them is that module's work).

    python benchmarks/profile_train_step.py [--nets vgg,resnet8] [--dtype float32] [--steps 7]
                                            [--rounds 2] [--threads 2] [--library both|convgrad|torch]

Prints, per network, the median over steps of each module type's forward and backward time
(ms per step, summed over the modules of that type), convgrad beside PyTorch. Rounds alternate
the two processes; each round's figure is a median over ``--steps`` steps after 3 warm-up steps.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from collections import defaultdict


def _profile_convgrad(net: str, dtype: str, steps: int) -> dict:
    from convgrad import nn
    from convgrad.bench import train_step

    model, step = train_step.build(net, "convgrad", dtype)
    x, y = train_step.batch(net, dtype)
    spans: dict[str, list[float]] = defaultdict(float)
    stack: list[list[float]] = []  # per open call: [children's time]

    def wrap(module, name, which):
        inner = getattr(module, which)

        def timed(*args, **kwargs):
            stack.append([0.0])
            start = time.perf_counter()
            try:
                return inner(*args, **kwargs)
            finally:
                elapsed = time.perf_counter() - start
                children = stack.pop()[0]
                spans[f"{name} {which[0].upper()}"] += elapsed - children
                if stack:
                    stack[-1][0] += elapsed

        setattr(module, which, timed)

    for m in model.modules():
        if m is model:
            continue
        for which in ("forward", "backward"):
            wrap(m, type(m).__name__, which)
    return _run(step, x, y, spans, steps)


def _profile_torch(net: str, dtype: str, steps: int) -> dict:
    import torch

    from convgrad.bench import train_step

    model, step = train_step.build(net, "torch", dtype)
    x, y = train_step.batch(net, dtype)
    x, y = torch.from_numpy(x), torch.from_numpy(y)
    spans: dict[str, float] = defaultdict(float)
    starts: dict[int, float] = {}

    for m in model.modules():
        if m is model or list(m.children()):  # leaf modules only (BasicBlock's own work: below)
            continue
        name = type(m).__name__
        m.register_forward_pre_hook(lambda mod, inp: starts.__setitem__(id(mod), time.perf_counter()))
        m.register_forward_hook(lambda mod, inp, out, n=name: spans.__setitem__(
            f"{n} F", spans[f"{n} F"] + time.perf_counter() - starts[id(mod)]))
        m.register_full_backward_pre_hook(lambda mod, g: starts.__setitem__(-id(mod), time.perf_counter()))
        m.register_full_backward_hook(lambda mod, gi, go, n=name: spans.__setitem__(
            f"{n} B", spans[f"{n} B"] + time.perf_counter() - starts[-id(mod)]))
    return _run(step, x, y, spans, steps)


def _run(step, x, y, spans, steps: int) -> dict:
    for _ in range(3):
        step(x, y)
    per_step: dict[str, list[float]] = defaultdict(list)
    for _ in range(steps):
        spans.clear()
        start = time.perf_counter()
        step(x, y)
        total = time.perf_counter() - start
        for k, v in spans.items():
            per_step[k].append(1e3 * v)
        per_step["rest"].append(1e3 * (total - sum(spans.values())))
        per_step["step"].append(1e3 * total)
    return {k: statistics.median(v) for k, v in per_step.items()}


def _child(library: str, net: str, dtype: str, steps: int, threads: int) -> None:
    if library == "torch":
        import torch

        torch.set_num_threads(threads)
        print(json.dumps(_profile_torch(net, dtype, steps)))
    else:
        import convgrad

        convgrad.set_num_threads(threads)
        print(json.dumps(_profile_convgrad(net, dtype, steps)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nets", default="lenet5,vgg,resnet8,cnn1d")
    parser.add_argument("--dtype", default="float32")
    parser.add_argument("--steps", type=int, default=7)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--library", default="both", choices=("both", "convgrad", "torch"))
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        _child(args.child[0], args.child[1], args.dtype, args.steps, args.threads)
        return
    libraries = ("convgrad", "torch") if args.library == "both" else (args.library,)
    print(f"load average {os.getloadavg()[0]:.2f} at the start")
    for net in args.nets.split(","):
        results = {lib: [] for lib in libraries}
        for _ in range(args.rounds):
            for lib in libraries:
                out = subprocess.run([sys.executable, __file__, "--child", lib, net, "--dtype", args.dtype,
                                      "--steps", str(args.steps), "--threads", str(args.threads)],
                                     capture_output=True, text=True, check=True).stdout
                results[lib].append(json.loads(out.strip().splitlines()[-1]))
        keys = sorted({k for runs in results.values() for r in runs for k in r}, key=lambda k: (k in ("rest", "step"), k))
        print(f"\n{net} {args.dtype} (ms per step, median over steps; rounds side by side)")
        print(f"{'module pass':24s} " + "  ".join(f"{lib:>16s}" for lib in libraries))
        for k in keys:
            cells = ["/".join(f"{r.get(k, 0):.1f}" for r in results[lib]) for lib in libraries]
            print(f"{k:24s} " + "  ".join(f"{c:>16s}" for c in cells))
    print(f"\nload average {os.getloadavg()[0]:.2f} at the end")


if __name__ == "__main__":
    main()
