"""What convgrad's second core buys: one operation on two threads of one process against two processes.

convgrad runs a convolution on worker threads of the calling process (:mod:`convgrad.parallel`):
NumPy and BLAS release the GIL inside their calls, so the workers overlap. This script measures
how much of the second core that recovers, against the same work split between two processes
(which share nothing, so they show what the two cores can do)::

    one thread      the whole batch, convgrad on one thread
    two threads     the whole batch, convgrad on two threads (the library's default here)
    two processes   two processes at once, each half the batch on one thread (the slower one's time)

for the training networks' heaviest convolution operations (``convgrad bench --train``; the
algorithm ``auto`` picks with two threads, the same one in every column, run through
``algorithms.execute``) and for two plain NumPy kernels: a
1 MiB copy (what im2col, col2im and layout changes are made of) and a BLAS product of the size
one samplegemm chunk multiplies, each cut in chunks run on convgrad's executor
(:func:`convgrad.parallel.run`). Speed-ups are against one thread; the gap between the last two
columns is what running the same work in one process costs. Last, how long the pool's worker
thread takes to start a task after it sat idle (its core falls asleep on this virtual machine):
what an operation of a few hundred microseconds pays for its second core.

    python benchmarks/thread_scaling.py [--repeats 20] [--json benchmarks/results/thread_scaling.json]

Not a test. Under a minute on the 2-core machine; run it with nothing else running.
"""

from __future__ import annotations

import argparse
import datetime
import json
import multiprocessing as mp
import os
import platform
import statistics
import sys
import threading
import time
from pathlib import Path

import numpy as np

#: (label, input shape, weight shape, stride, padding, operation): the heaviest operations of the
#: training networks' convolutions, and LeNet-5's second layer (layer g2 of the layer benchmark)
CASES = (
    ("ResNet-8 16->16 32x32 forward", (64, 16, 32, 32), (16, 16, 3, 3), 1, 1, "forward"),
    ("ResNet-8 16->16 32x32 input gradient", (64, 16, 32, 32), (16, 16, 3, 3), 1, 1, "grad_input"),
    ("ResNet-8 16->16 32x32 weight gradient", (64, 16, 32, 32), (16, 16, 3, 3), 1, 1, "grad_weight"),
    ("VGG 32->32 32x32 forward", (64, 32, 32, 32), (32, 32, 3, 3), 1, 1, "forward"),
    ("VGG 64->64 16x16 forward", (64, 64, 16, 16), (64, 64, 3, 3), 1, 1, "forward"),
    ("VGG 128->128 8x8 forward", (64, 128, 8, 8), (128, 128, 3, 3), 1, 1, "forward"),
    ("LeNet-5 6->16 14x14 forward", (64, 6, 14, 14), (16, 6, 5, 5), 1, 0, "forward"),
)
KERNELS = ("numpy copy 1 MiB x 64", "BLAS product (32, 288) @ (288, 910) x 16")


def _convolution(case, batch: int, name: str):
    """A callable running ``case``'s operation on ``batch`` elements with algorithm ``name``."""
    from convgrad import algorithms
    from convgrad.spec import conv_spec

    _, xs, ws, stride, padding, op = case
    rng = np.random.default_rng(0)
    x = rng.standard_normal((batch, *xs[1:])).astype(np.float32)
    w = rng.standard_normal(ws).astype(np.float32)
    spec = conv_spec(x.shape, w.shape, stride=stride, padding=padding)
    dy = rng.standard_normal(spec.output_shape).astype(np.float32)
    a, b = {"forward": (x, w), "grad_input": (dy, w), "grad_weight": (x, dy)}[op]
    alg = algorithms.get_algorithm(name)  # one algorithm in every column (auto's pick depends on the threads)
    return lambda: algorithms.execute(alg, op, spec, a, b)


def _kernel(name: str, share: int):
    """A callable doing ``1 / share`` of a plain NumPy kernel's work per call, as chunks on convgrad's workers
    (:func:`convgrad.parallel.run`, the executor of the algorithms), each worker with its own arrays."""
    import convgrad
    from convgrad import parallel

    copy = name.startswith("numpy copy")
    chunks = (64 if copy else 16) // share
    the_plan = parallel.Plan(batch=chunks, chunk=1, workers=min(chunks, convgrad.get_num_threads()))
    rng = np.random.default_rng(0)

    def scratch():
        if copy:
            return {"a": rng.standard_normal(2**18).astype(np.float32), "b": np.empty(2**18, np.float32)}
        return {"w": rng.standard_normal((32, 288)).astype(np.float32), "cols": rng.standard_normal((288, 910)).astype(np.float32),
                "out": np.empty((32, 910), np.float32)}

    states = {}

    def make():  # one set of arrays per worker thread, kept from call to call
        key = threading.get_ident()
        if key not in states:
            states[key] = scratch()
        return states[key]

    def process(s, start, stop):
        if copy:
            np.copyto(s["b"], s["a"])
        else:
            np.matmul(s["w"], s["cols"], out=s["out"])

    return lambda: parallel.run(the_plan, make, process)


def _time(f, repeats: int) -> float:
    """Mean ms per call over ``repeats`` calls after three untimed ones: a block of calls, timed as a
    whole (the two processes of a measurement run theirs at the same time; the slower block counts)."""
    for _ in range(3):
        f()
    start = time.perf_counter()
    for _ in range(repeats):
        f()
    return 1e3 * (time.perf_counter() - start) / repeats


def _child(what, name: str, share: int, threads: int, repeats: int, ready, go, out) -> None:
    from threadpoolctl import threadpool_limits

    import convgrad

    convgrad.set_num_threads(threads)
    with threadpool_limits(1):  # BLAS on one thread: the workers are convgrad's (or the kernel's) own threads
        if isinstance(what, str):
            f = _kernel(what, share)
        else:
            f = _convolution(what, what[1][0] // share, name)
        f()
        ready.put(True)
        go.wait()
        out.put(_time(f, repeats))


def _run(what, name: str, share: int, threads: int, processes: int, repeats: int) -> float:
    """ms per call: ``processes`` processes at once, each doing ``1 / share`` of the work on ``threads`` threads."""
    ctx = mp.get_context("spawn")
    ready, out, go = ctx.Queue(), ctx.Queue(), ctx.Event()
    procs = [ctx.Process(target=_child, args=(what, name, share, threads, repeats, ready, go, out)) for _ in range(processes)]
    for p in procs:
        p.start()
    for _ in procs:
        ready.get()
    go.set()
    times = [out.get() for _ in procs]
    for p in procs:
        p.join()
    return max(times)


def _start_latency(idles_ms=(0.0, 1.0, 5.0, 20.0, 100.0), trials: int = 15) -> dict:
    """Median and worst microseconds from handing convgrad's pool worker a task to its start, after the
    worker sat idle for each of ``idles_ms`` while this thread ran Python (as between two operations)."""
    from convgrad import parallel

    pool = parallel._executor(1)
    pool.submit(lambda: None).result()
    out = {}
    for idle in idles_ms:
        waits = []
        for _ in range(trials):
            end = time.perf_counter() + idle / 1e3
            while time.perf_counter() < end:
                pass
            start = time.perf_counter()
            waits.append(1e6 * (pool.submit(time.perf_counter).result() - start))
        out[idle] = (statistics.median(waits), max(waits))
    return out


def _algorithm_name(case, threads: int = 2) -> str:
    """``auto``'s pick for ``case`` with ``threads`` threads (the library's default here): every column uses it."""
    from convgrad import algorithms, runtime
    from convgrad.spec import conv_spec

    _, xs, ws, stride, padding, op = case
    with runtime.settings(num_threads=threads):
        return algorithms.choose(conv_spec(xs, ws, stride=stride, padding=padding), op, 4).name


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--repeats", type=int, default=20, help="timed calls per measurement (default 20)")
    p.add_argument("--json", type=Path, default=Path(__file__).parent / "results" / "thread_scaling.json")
    args = p.parse_args(argv)
    if args.repeats < 1:
        p.error("--repeats must be at least 1")
    if (os.cpu_count() or 1) < 2:
        p.error("this measurement needs two cores")
    record = {"date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
              "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs",
              "load_average_before": os.getloadavg()[0], "rows": []}
    print(f"{'work':40s} {'algorithm':10s} {'1 thread':>9s} {'2 threads':>15s} {'2 processes':>15s}")
    for what in (*CASES, *KERNELS):
        label = what if isinstance(what, str) else what[0]
        name = "" if isinstance(what, str) else _algorithm_name(what)
        one = _run(what, name, 1, 1, 1, args.repeats)
        threads = _run(what, name, 1, 2, 1, args.repeats)
        procs = _run(what, name, 2, 1, 2, args.repeats)
        record["rows"].append({"work": label, "algorithm": name, "one_thread_ms": one, "two_threads_ms": threads,
                               "two_processes_ms": procs, "threads_speedup": one / threads, "processes_speedup": one / procs})
        print(f"{label:40s} {name:10s} {one:7.2f}ms {threads:7.2f}ms ({one / threads:4.2f}x) "
              f"{procs:7.2f}ms ({one / procs:4.2f}x)")
    print("\nhow long a worker of convgrad's pool takes to start a chunk handed to it, after it sat idle")
    record["worker_start_us"] = {}
    for idle_ms, (median, worst) in _start_latency().items():
        record["worker_start_us"][idle_ms] = {"median": median, "max": worst}
        print(f"  idle {idle_ms:5.1f} ms: median {median:6.1f} us, max {worst:6.1f} us")
    record["load_average_after"] = os.getloadavg()[0]
    args.json.write_text(json.dumps(record, indent=1) + "\n")
    print(f"load average {record['load_average_before']:.2f} -> {record['load_average_after']:.2f}; written {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
