"""Per-call overhead of a convolution: the plain functions against a plan (``convgrad.plan``), and before/after.

Every variant runs in its own process, the parent alternating them round by round (``--rounds``);
each round times ``--calls`` calls of one forward and of one full backward (input, weight and bias
gradients) per configuration and keeps the median of ``--repeats`` such blocks. Reported: the median
over rounds in microseconds per call, and -- noise-free -- the number of Python function calls one
forward + backward makes (cProfile), which is what a plan removes.

Variants: ``functions`` (``convgrad.conv``/``conv_backward`` of this checkout), ``plan`` (a
``ConvPlan`` made once), and with ``--before SRC`` the plain functions of another source tree
(e.g. ``git archive <commit> src | tar -x -C /tmp/before``), run with ``PYTHONPATH=SRC``.

Configurations: a tiny one (1x1x4x4 input, 3x3 kernel), layers g1 and g2 of ``convgrad bench``,
and every distinct convolution of the four training networks of ``convgrad bench --train``
(``--nets``; found by running each network's forward once). Large layers are timed with fewer
calls; there the call counts say more than the times.

    python benchmarks/plan_overhead.py --before /tmp/before/src --json benchmarks/results/plan_overhead.json
"""

from __future__ import annotations

import argparse
import cProfile
import json
import os
import pstats
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.path.join(os.path.dirname(HERE), "src")


def configurations(nets: list[str], dtype: str) -> list[dict]:
    """``[{name, input, weight, kwargs}]``: tiny, g1, g2 and the training networks' distinct convolutions."""
    import numpy as np

    from convgrad.bench import train_step
    from convgrad.bench.layers import LAYERS
    from convgrad.nn.conv import _ConvNd

    out = [dict(name="tiny", input=(1, 1, 4, 4), weight=(1, 1, 3, 3), kwargs=dict(padding=[[1, 1], [1, 1]]))]
    for name in ("g1", "g2"):
        spec = LAYERS[name].spec()
        out.append(dict(name=name, input=spec.input_shape, weight=spec.weight_shape,
                        kwargs=dict(padding=[list(p) for p in spec.padding])))
    for net in nets:
        model, _ = train_step.build(net, "convgrad", dtype)
        x, _ = train_step.batch(net, dtype)
        model(x)
        seen = set()
        for i, m in enumerate(model.modules()):
            if isinstance(m, _ConvNd):
                shape = m._cache[0].shape
                key = (shape, m.weight.shape, m.stride, m.padding)
                if key in seen:
                    continue
                seen.add(key)
                pad = [list(p) if isinstance(p, tuple) else [p, p] for p in m.padding]
                out.append(dict(name=f"{net}:{type(m).__name__}{tuple(shape[1:])}->{m.out_channels},k{m.kernel_size[0]}"
                                     f",s{m.stride[0]}", input=tuple(shape), weight=tuple(m.weight.shape),
                                kwargs=dict(stride=list(m.stride), padding=pad), bias=m.bias is not None))
    return out


def _callables(cfg: dict, variant: str, dtype: str):
    import numpy as np

    import convgrad

    rng = np.random.default_rng(0)
    x = rng.standard_normal(cfg["input"]).astype(dtype)
    w = rng.standard_normal(cfg["weight"]).astype(dtype)
    b = rng.standard_normal(cfg["weight"][0]).astype(dtype) if cfg.get("bias", True) else None
    kw = dict(cfg["kwargs"])
    kw["padding"] = tuple(tuple(p) for p in kw["padding"])
    if "stride" in kw:
        kw["stride"] = tuple(kw["stride"])
    if variant == "plan":
        p = convgrad.plan(x.shape, w.shape, **kw, dtype=dtype)
        y = p.forward(x, w, b)
        dy = np.ones_like(y)
        needs = ("input", "weight", "bias") if b is not None else ("input", "weight")
        return (lambda: p.forward(x, w, b)), (lambda: p.backward(dy, x, w, needs=needs))
    y = convgrad.conv(x, w, b, **kw)
    dy = np.ones_like(y)
    needs = ("input", "weight", "bias") if b is not None else ("input", "weight")
    return (lambda: convgrad.conv(x, w, b, **kw)), (lambda: convgrad.conv_backward(dy, x, w, **kw, needs=needs))


def _calls(cfg: dict, variant: str, dtype: str) -> int:
    fwd, bwd = _callables(cfg, variant, dtype)
    fwd(), bwd()
    prof = cProfile.Profile()
    prof.enable()
    fwd(), bwd()
    prof.disable()
    return sum(s[1] for s in pstats.Stats(prof).stats.values())  # primitive + recursive calls


def worker(variant: str, configs: list[dict], dtype: str, calls: int, repeats: int) -> dict:
    out = {}
    for cfg in configs:
        fwd, bwd = _callables(cfg, variant, dtype)
        n = max(1, calls // (1 + cfg.get("scale", 0)))
        times = {"forward": None, "backward": None}
        for what, fn in (("forward", fwd), ("backward", bwd)) if cfg.get("timed", True) else ():
            fn()
            blocks = []
            for _ in range(repeats):
                start = time.perf_counter()
                for _ in range(n):
                    fn()
                blocks.append((time.perf_counter() - start) / n * 1e6)
            times[what] = statistics.median(blocks)
        times["calls"] = _calls(cfg, variant, dtype)
        out[cfg["name"]] = times
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--before", default=None, metavar="SRC", help="source tree of the code before (plain functions)")
    parser.add_argument("--nets", default="lenet5,vgg,resnet8,cnn1d")
    parser.add_argument("--dtype", default="float32")
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--calls", type=int, default=200, help="calls per timed block on the tiny configuration")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--time-up-to", type=float, default=1e8, metavar="MACS",
                        help="time only configurations of at most this many multiply-adds per forward (default 1e8; "
                             "larger ones: Python call counts only)")
    parser.add_argument("--json", default=None)
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        job = json.loads(sys.stdin.read())
        print(json.dumps(worker(args.worker, job["configs"], args.dtype, args.calls, args.repeats)))
        return 0
    sys.path.insert(0, SRC)
    configs = configurations([n for n in args.nets.split(",") if n], args.dtype)
    for cfg in configs:  # fewer calls on the big layers: a block of about the same length
        import math
        work = math.prod(cfg["input"]) * math.prod(cfg["weight"][:1]) * math.prod(cfg["weight"][2:])
        cfg["scale"] = int(work // 2e5)
        cfg["timed"] = work <= args.time_up_to  # above: Python calls only (a fraction of a ms is noise there)
    variants = {"functions": SRC, "plan": SRC}
    if args.before:
        variants = {"before": args.before, **variants}
    rounds = {v: [] for v in variants}
    env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1")
    for r in range(args.rounds):
        for variant, src in variants.items():
            mode = "functions" if variant == "before" else variant
            proc = subprocess.run(
                [sys.executable, os.path.abspath(__file__), "--worker", mode, "--dtype", args.dtype,
                 "--calls", str(args.calls), "--repeats", str(args.repeats)],
                input=json.dumps({"configs": configs}), stdout=subprocess.PIPE, text=True,
                env=dict(env, PYTHONPATH=src), check=True)
            rounds[variant].append(json.loads(proc.stdout))
            print(f"round {r + 1}/{args.rounds}: {variant} done", file=sys.stderr, flush=True)
    result = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "load_average": os.getloadavg(),
              "dtype": args.dtype, "rounds": args.rounds, "configs": {}}
    head = f"{'configuration':44s} " + " ".join(f"{v + ' fwd/bwd us':>22s}" for v in variants) + "  calls " + "/".join(variants)
    print(head)
    for cfg in configs:
        name = cfg["name"]
        row = {v: {what: (statistics.median(run[name][what] for run in rounds[v]) if cfg["timed"] else None)
                   for what in ("forward", "backward")} for v in variants}
        for v in variants:
            row[v]["calls"] = rounds[v][0][name]["calls"]
        result["configs"][name] = row
        cell = (lambda t: f"{t:10.0f}" if t is not None else f"{'-':>10s}")
        print(f"{name:44s} " + " ".join(f"{cell(row[v]['forward'])} /{cell(row[v]['backward'])}" for v in variants)
              + "  " + "/".join(str(row[v]["calls"]) for v in variants))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
