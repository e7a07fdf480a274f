"""Where a training step's time goes, per module, in convgrad.nn and torch.nn (each in its own process).

The networks and the step are ``convgrad bench --train``'s (:mod:`convgrad.bench.train_step`). Every
module's forward and backward is wrapped with a timer inside the real step (cold data, fresh
arrays, as in training -- not a layer alone on hot caches); a module's *self* time is its time
minus its children's (a ``BasicBlock``'s own add, ReLU and mask; a ``Sequential``'s loop; and the
fused ``BatchNorm2d`` + ``ReLU`` passes a container runs itself, :mod:`convgrad.nn.fusion`; a fused
``ReLU`` + max pool is reported as ``MaxPool2d+ReLU``, PyTorch's two modules as two rows). What
no module accounts for -- the loss, ``zero_grad``, the optimizer step -- is reported as "rest".
PyTorch's side is its step under ``torch.profiler``: the time inside its operators (the profiler's
"self CPU time": wall time on the calling thread, the operator's own OpenMP threads included),
summed per module kind (:data:`TORCH_OPS`), and the step's median without the profiler.

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
                spans[f"{name} {which.lstrip('_')[0].upper()}"] += elapsed - children
                if stack:
                    stack[-1][0] += elapsed

        setattr(module, which, timed)

    for m in model.modules():
        if m is model:
            continue
        for which in ("forward", "backward"):
            name = type(m).__name__
            wrap(m, "Conv" if name in ("Conv1d", "Conv2d", "Conv3d") else name, which)  # PyTorch's kind
        if hasattr(m, "_forward_then_relu"):  # a max pool's passes with the ReLU before it fused (nn.fusion)
            for which in ("_forward_then_relu", "_backward_then_relu"):
                wrap(m, f"{type(m).__name__}+ReLU", which)
    return _run(step, x, y, spans, steps)


#: PyTorch's operators per module kind: the self CPU time of each (torch.profiler) is summed under its kind
TORCH_OPS = {"Conv F": ("aten::mkldnn_convolution", "aten::thnn_conv2d", "aten::_slow_conv2d_forward"),
             "Conv B": ("aten::convolution_backward",),
             "BatchNorm2d F": ("aten::native_batch_norm", "aten::_batch_norm_impl_index"),
             "BatchNorm2d B": ("aten::native_batch_norm_backward",),
             "ReLU F": ("aten::relu", "aten::clamp_min", "aten::relu_", "aten::clamp_min_"),
             "ReLU B": ("aten::threshold_backward",),
             "MaxPool2d F": ("aten::max_pool2d_with_indices",),
             "MaxPool2d B": ("aten::max_pool2d_with_indices_backward",),
             "add (residual) F": ("aten::add",)}


def _profile_torch(net: str, dtype: str, steps: int) -> dict:
    """PyTorch's step under torch.profiler: self CPU time per operator, summed per module kind (full
    backward hooks on modules wrap their outputs in extra autograd nodes: the operators are the
    more direct measure)."""
    import torch
    from torch.profiler import ProfilerActivity, profile

    from convgrad.bench import train_step

    model, step = train_step.build(net, "torch", dtype)
    x, y = train_step.batch(net, dtype)
    x, y = torch.from_numpy(x), torch.from_numpy(y)
    for _ in range(3):
        step(x, y)
    plain = []
    for _ in range(steps):
        start = time.perf_counter()
        step(x, y)
        plain.append(1e3 * (time.perf_counter() - start))
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(steps):
            step(x, y)
    self_ms = {e.key: e.self_cpu_time_total / 1e3 / steps for e in prof.key_averages()}
    out = {kind: sum(self_ms.get(op, 0.0) for op in ops) for kind, ops in TORCH_OPS.items()}
    out["rest"] = sum(self_ms.values()) - sum(out.values())
    out["step"] = statistics.median(plain)  # without the profiler
    return out


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
