"""How well ``algorithm="auto"`` chooses on the training networks' convolutions: its pick against the measured fastest.

For every distinct convolution of the four networks of ``convgrad bench --train`` (LeNet-5,
the VGG-style net, ResNet-8, the 1-D CNN; shapes found by running each network's forward on its
batch) and each of its three operations (forward, grad_input, grad_weight) in float32 and
float64, it times every algorithm ``auto`` may choose from (``convgrad.algorithms.candidates``:
the registered, auto-eligible ones that support the configuration and fit the workspace limit;
the ``direct`` reference is not one) through the same dispatch the library uses
(``algorithms.run(op, spec, a, b, algorithm=name)``). Per operation: one untimed call of each
candidate, then ``--repeats`` rounds, each timing every candidate once in a rotated order (so a
slow spell on the shared machine does not always hit the same one); the time is the median. A
candidate whose best of the first two rounds is over ``--prune`` times the best candidate's is
not timed again (its median is of those two rounds: it is not the fastest either way); ``auto``'s
own pick always is.

It records ``auto``'s pick, the fastest, the ratio ``t(auto) / t(fastest)`` and the cost
model's estimates (at the run's thread count; for an operation whose best estimate is under
``algorithms.SMALL_WORK``, doubled in float64, ``auto`` compares one-thread estimates, as it runs there), writes JSON, and prints how often ``auto`` misses and by how much (geometric
mean and worst ratio, over all operations and over the misses). The load average is recorded
before and after: on a busy machine the ratios are noisy (a "miss" within ~10 % is noise).

    python benchmarks/auto_vs_fastest.py [--nets lenet5,vgg,resnet8,cnn1d] [--dtypes float32,float64]
                                         [--repeats 7] [--threads N] [--json benchmarks/results/auto_vs_fastest.json]

Not a test. About two minutes on the quiet 2-core machine; run it with nothing else running.
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import os
import platform
import statistics
import time
from pathlib import Path

import numpy as np

from convgrad import algorithms, nn, runtime
from convgrad.algorithms import costmodel
from convgrad.bench import train_step
from convgrad.spec import conv_spec

OPS = ("forward", "grad_input", "grad_weight")
#: a ratio t(auto)/t(fastest) up to this counts as a tie in the summary (timing noise on a shared machine)
NOISE = 1.10


def network_convolutions(net: str) -> list[dict]:
    """The convolutions of ``net`` in forward order: input and weight shape, stride, padding, dilation, groups.

    Found by running the convgrad network's forward on its benchmark batch with every
    convolution layer's ``forward`` wrapped to note its input's shape.
    """
    model = nn.Sequential(*train_step._layers(net, nn))
    seen = []
    for layer in model.modules():
        if type(layer).__name__ in ("Conv1d", "Conv2d", "Conv3d"):
            def noting(x, layer=layer, forward=layer.forward):
                seen.append(dict(input_shape=tuple(x.shape), weight_shape=tuple(layer.weight.value.shape),
                                 stride=layer.stride, padding=layer.padding, dilation=layer.dilation,
                                 groups=layer.groups))
                return forward(x)

            layer.forward = noting
    x, _ = train_step.batch(net, "float32")
    model(x)
    return seen


def describe(c: dict) -> str:
    """``N1x28x28 1->6 k5x5 s1 p2`` style."""
    n, cin, *size = c["input_shape"]
    cout, _, *k = c["weight_shape"]
    pad = c["padding"] if isinstance(c["padding"], str) else ",".join(str(p) for p in np.ravel(c["padding"]))
    text = (f"N{n} {cin}->{cout} {'x'.join(map(str, size))} k{'x'.join(map(str, k))} "
            f"s{','.join(map(str, c['stride']))} p{pad}")
    if any(d != 1 for d in c["dilation"]):
        text += f" d{','.join(map(str, c['dilation']))}"
    return text + (f" g{c['groups']}" if c["groups"] != 1 else "")


def distinct_convolutions(nets) -> list[dict]:
    """One entry per distinct convolution, with the networks (and layer positions) that use it."""
    found: dict[str, dict] = {}
    for net in nets:
        for i, c in enumerate(network_convolutions(net)):
            key = describe(c)
            entry = found.setdefault(key, dict(c, name=key, used_by=[]))
            entry["used_by"].append(f"{net}#{i + 1}")
    return list(found.values())


def operands(spec, op: str, dtype, rng) -> tuple[np.ndarray, np.ndarray]:
    """``forward(x, w)``, ``grad_input(dy, w)``, ``grad_weight(x, dy)``: standard normal, of ``dtype``."""
    x = rng.standard_normal(spec.input_shape).astype(dtype)
    w = rng.standard_normal(spec.weight_shape).astype(dtype)
    dy = rng.standard_normal(spec.output_shape).astype(dtype)
    return {"forward": (x, w), "grad_input": (dy, w), "grad_weight": (x, dy)}[op]


def time_candidates(op, spec, a, b, names, auto, repeats: int, prune: float) -> dict[str, list[float]]:
    """``{name: [seconds per round]}``: one untimed call each, then rounds in rotated order."""
    def once(name):
        start = time.perf_counter()
        algorithms.run(op, spec, a, b, algorithm=name)
        return time.perf_counter() - start

    for name in names:
        once(name)
    times = {name: [] for name in names}
    timed = list(names)
    for r in range(repeats):
        shift = r % len(timed)
        for name in timed[shift:] + timed[:shift]:
            times[name].append(once(name))
        if r == 1 and prune:  # two rounds each, so that one time slice lost to another process prunes nothing
            best = min(min(t) for t in times.values())
            timed = [n for n in timed if n == auto or min(times[n]) <= prune * best]
    return times


def measure(convs, dtypes, repeats: int, prune: float, progress=print) -> list[dict]:
    rows = []
    threads = runtime.get_num_threads()
    rng = np.random.default_rng(0)
    for c in convs:
        spec = conv_spec(c["input_shape"], c["weight_shape"], c["stride"], c["padding"], c["dilation"], c["groups"])
        for dtype in dtypes:
            itemsize = np.dtype(dtype).itemsize
            for op in OPS:
                names = algorithms.candidates(spec, op, itemsize)
                auto = algorithms.choose(spec, op, itemsize).name
                a, b = operands(spec, op, dtype, rng)
                times = time_candidates(op, spec, a, b, names, auto, repeats, prune)
                median = {n: statistics.median(t) for n, t in times.items()}
                fastest = min(median, key=median.get)
                best = {n: min(t) for n, t in times.items()}  # the least disturbed round: a check on the medians
                row = dict(conv=c["name"], used_by=c["used_by"], op=op, dtype=dtype, auto=auto, fastest=fastest,
                           ratio=median[auto] / median[fastest], seconds=median,
                           fastest_by_min=min(best, key=best.get), ratio_by_min=best[auto] / min(best.values()),
                           min_seconds=best, rounds={n: len(t) for n, t in times.items()},
                           estimates={n: costmodel.estimate(n, spec, op, threads) for n in names})
                rows.append(row)
                flag = "" if auto == fastest else f"  MISS: fastest {fastest} ({row['ratio']:.2f}x)"
                progress(f"{c['name']:<32} {dtype:<8} {op:<12} auto {auto:<10} {1e3 * median[auto]:8.3f} ms{flag}")
    return rows


def geomean(values) -> float:
    values = list(values)
    return math.exp(sum(math.log(v) for v in values) / len(values)) if values else float("nan")


def summarise(rows) -> dict:
    misses = [r for r in rows if r["auto"] != r["fastest"]]
    beyond = [r for r in misses if r["ratio"] > NOISE]
    worst = max(rows, key=lambda r: r["ratio"])
    summary = dict(operations=len(rows), misses=len(misses), misses_beyond_noise=len(beyond), noise=NOISE,
                   geomean_ratio=geomean(r["ratio"] for r in rows),
                   geomean_ratio_of_misses=geomean(r["ratio"] for r in misses),
                   by_min=dict(misses=sum(r["auto"] != r["fastest_by_min"] for r in rows),
                               geomean_ratio=geomean(r["ratio_by_min"] for r in rows),
                               worst_ratio=max(r["ratio_by_min"] for r in rows)),
                   worst=dict(ratio=worst["ratio"], conv=worst["conv"], op=worst["op"], dtype=worst["dtype"],
                              auto=worst["auto"], fastest=worst["fastest"]))
    by_dtype = {}
    for dtype in sorted({r["dtype"] for r in rows}):
        sub = [r for r in rows if r["dtype"] == dtype]
        by_dtype[dtype] = dict(operations=len(sub), misses=sum(r["auto"] != r["fastest"] for r in sub),
                               misses_beyond_noise=sum(r["auto"] != r["fastest"] and r["ratio"] > NOISE for r in sub),
                               geomean_ratio=geomean(r["ratio"] for r in sub), worst_ratio=max(r["ratio"] for r in sub))
    summary["by_dtype"] = by_dtype
    # the same wrong choice may recur: (auto, fastest) pairs among the misses beyond noise
    pairs = {}
    for r in beyond:
        key = f"{r['auto']} -> {r['fastest']}"
        pairs.setdefault(key, []).append(round(r["ratio"], 2))
    summary["miss_pairs"] = pairs
    return summary


def report(summary, out=print) -> None:
    s = summary
    out(f"\n{s['operations']} operations: auto picked the measured fastest in {s['operations'] - s['misses']}, "
        f"missed in {s['misses']} ({s['misses_beyond_noise']} by more than {100 * (s['noise'] - 1):.0f} %)")
    out(f"t(auto)/t(fastest): geometric mean {s['geomean_ratio']:.3f} over all operations, "
        f"{s['geomean_ratio_of_misses']:.3f} over the misses; worst {s['worst']['ratio']:.2f}x "
        f"({s['worst']['conv']} {s['worst']['op']} {s['worst']['dtype']}: auto {s['worst']['auto']}, "
        f"fastest {s['worst']['fastest']})")
    m = s["by_min"]
    out(f"the same from each candidate's fastest round instead of its median: {m['misses']} misses, "
        f"geometric mean {m['geomean_ratio']:.3f}, worst {m['worst_ratio']:.2f}x")
    for dtype, d in s["by_dtype"].items():
        out(f"  {dtype}: {d['misses']}/{d['operations']} missed ({d['misses_beyond_noise']} beyond noise), "
            f"geomean {d['geomean_ratio']:.3f}, worst {d['worst_ratio']:.2f}x")
    for pair, ratios in sorted(s["miss_pairs"].items(), key=lambda kv: -len(kv[1])):
        out(f"  auto {pair}: {len(ratios)} times, ratios {ratios}")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--nets", default=",".join(train_step.NETS), help="networks (default: all four)")
    p.add_argument("--dtypes", default="float32,float64", help="dtypes (default float32,float64)")
    p.add_argument("--repeats", type=int, default=7, help="timed rounds per operation, median (default 7)")
    p.add_argument("--prune", type=float, default=3.0,
                   help="after round 1, stop timing candidates slower than this times the best (0: never; default 3)")
    p.add_argument("--threads", type=int, default=None, help="convgrad's threads (default: all cores, as bench --train)")
    p.add_argument("--json", type=Path, default=Path(__file__).parent / "results" / "auto_vs_fastest.json")
    args = p.parse_args(argv)
    nets = [n for n in args.nets.split(",") if n]
    unknown = sorted(set(nets) - set(train_step.NETS))
    if unknown:
        p.error(f"--nets: unknown {unknown}; choose from {', '.join(train_step.NETS)}")
    dtypes = [d for d in args.dtypes.split(",") if d]
    if args.repeats < 1:
        p.error(f"--repeats must be at least 1, got {args.repeats}")
    threads = args.threads or os.cpu_count() or 1
    runtime.set_num_threads(threads)
    load_before = os.getloadavg()
    start, cpu_start = time.perf_counter(), time.process_time()
    convs = distinct_convolutions(nets)
    print(f"{len(convs)} distinct convolutions in {', '.join(nets)}; {threads} threads; load average "
          f"{load_before[0]:.2f} {load_before[1]:.2f} {load_before[2]:.2f}")
    rows = measure(convs, dtypes, args.repeats, args.prune)
    summary = summarise(rows)
    load_after = os.getloadavg()
    report(summary)
    elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu_start
    print(f"({elapsed:.0f} s, {cpu:.0f} s of CPU; load average after {load_after[0]:.2f} {load_after[1]:.2f} {load_after[2]:.2f})")
    result = dict(date=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
                  machine=dict(platform=platform.platform(), processor=platform.processor(), cpus=os.cpu_count()),
                  threads=threads, repeats=args.repeats, prune=args.prune, numpy=np.__version__,
                  load_average_before=load_before, load_average_after=load_after, seconds=round(elapsed, 1),
                  cpu_seconds=round(cpu, 1),
                  summary=summary, rows=rows)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
