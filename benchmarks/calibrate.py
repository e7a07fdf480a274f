"""Fit the cost model behind algorithm="auto" and report how good its choices are.

Times every modelled algorithm that supports a configuration, for each of the three
operations, with CALIBRATED_THREADS threads (one core), over a corpus of layer shapes (the ten benchmark layers at smaller
batches, and others: 1-D/2-D/3-D, 1x1 to 31 taps, strides, dilation, groups, depthwise, tiny).
Then it fits the coefficients of convgrad.algorithms.costmodel by non-negative least squares
on relative errors, on half of the configurations, and reports on the other half how often the
model picks the measured fastest algorithm and how much slower its pick is when it does not.
Finally it refits on everything and prints the coefficients to paste into costmodel.py.

    python benchmarks/calibrate.py [--repeats 3] [--json benchmarks/results/calibration.json]

Not a test. Takes a few minutes; the machine should be otherwise idle (it rarely is: rerun).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import time

import numpy as np

import convgrad
from convgrad import algorithms, blas
from convgrad.algorithms import costmodel
from convgrad.bench.layers import LAYERS
from convgrad.spec import conv_spec

OPS = ("forward", "grad_input", "grad_weight")


def corpus():
    """(name, input shape, weight shape, kwargs)."""
    c = []

    def add2(n, ci, co, h, k, s=1, p=0, d=1, g=1, name=None):
        c.append((name or f"2d N{n} {ci}->{co} {h}x{h} k{k} s{s} p{p} d{d} g{g}", (n, ci, h, h), (co, ci // g, k, k),
                  dict(stride=s, padding=p, dilation=d, groups=g)))

    def bench_layer(name, divide=4):  # a layer of `convgrad bench` (convgrad.bench.layers), its batch divided
        layer = LAYERS[name]
        c.append((f"{name}/{divide}" if divide > 1 else name, (layer.batch // divide, *layer.input_shape[1:]),
                  layer.weight_shape, layer.kwargs()))

    for name in "abcdef":
        bench_layer(name)
    bench_layer("g1", 1)
    bench_layer("g2", 1)
    add2(8, 64, 64, 28, 3, p=1)
    add2(8, 32, 32, 56, 3, p=1)
    add2(8, 128, 128, 14, 3, p=1)
    add2(16, 16, 16, 32, 3, p=1)
    add2(4, 256, 256, 14, 3, p=1)
    add2(8, 32, 64, 56, 3, s=2, p=1)
    add2(8, 128, 32, 28, 1)
    add2(8, 32, 128, 28, 1)
    add2(8, 64, 64, 28, 1, s=2)
    add2(8, 3, 16, 64, 3, p=1)
    add2(8, 128, 128, 14, 3, s=2, p=1, g=128)
    add2(8, 32, 32, 56, 5, p=2, g=32)
    add2(8, 64, 64, 28, 3, p=1, g=4)
    add2(8, 32, 32, 28, 5, p=2)
    add2(2, 16, 16, 8, 3, p=1)
    add2(64, 8, 8, 8, 3, p=1)
    add2(8, 16, 16, 32, 3, p=3, d=3)
    add2(32, 1, 16, 8, 3, p=1, name="lenet conv1")  # convgrad train's network on the 8x8 digits
    add2(32, 16, 32, 4, 3, p=1, name="lenet conv2")
    bench_layer("h")
    c.append(("1d N8 32->32 L8000 k3", (8, 32, 8000), (32, 32, 3), dict(padding=1)))
    c.append(("1d N8 16->16 L4000 k31", (8, 16, 4000), (16, 16, 31), dict(padding=15)))
    bench_layer("i")
    c.append(("3d N2 8->8 16^3 s2", (2, 8, 16, 16, 16), (8, 8, 3, 3, 3), dict(stride=2, padding=1)))
    return c


def measure(repeats: int, threads: int):
    rows = []
    rng = np.random.default_rng(0)
    with convgrad.settings(num_threads=threads):
        previous = blas.set_num_threads(threads)
        try:
            for name, xs, ws, kw in corpus():
                spec = conv_spec(xs, ws, **kw)
                x = rng.standard_normal(xs, dtype=np.float32)
                w = rng.standard_normal(ws, dtype=np.float32)
                dy = rng.standard_normal(spec.output_shape, dtype=np.float32)
                operands = {"forward": (x, w), "grad_input": (dy, w), "grad_weight": (x, dy)}
                for op in OPS:
                    for alg in costmodel.modeled():
                        algorithm = algorithms.get_algorithm(alg)
                        if algorithm.unsupported(spec, op) is not None or algorithm.scratch_bytes(spec) > 2**30:
                            continue
                        f = lambda: algorithms.run(op, spec, *operands[op], alg)  # noqa: E731
                        f()
                        t = min(_time(f) for _ in range(repeats))
                        rows.append({"config": name, "op": op, "algorithm": alg, "seconds": t})
                print(f"{name}: " + ", ".join(f"{r['algorithm']}/{r['op'][:6]} {1e3 * r['seconds']:.1f}"
                                              for r in rows if r["config"] == name), flush=True)
        finally:
            if previous is not None:
                blas.set_num_threads(previous)
    return rows


def _time(f) -> float:
    t = time.perf_counter()
    f()
    return time.perf_counter() - t


def _elem_key(name: str) -> str:
    """The coefficient weighing algorithm ``name``'s elementwise work (its ``elem_coefficient``, or its name)."""
    return algorithms.get_algorithm(name).elem_coefficient or name


#: The fitted coefficients: the shared terms, then each algorithm's elementwise coefficient.
KEYS = ("gemm", "call", "small", "run", *(_elem_key(name) for name in costmodel.modeled()))


def _features(row, specs):
    """The work terms, each scaled to the model's reference thread count as estimate() does."""
    spec = specs[row["config"]]
    wk = costmodel.work(row["algorithm"], spec, row["op"])
    f = dict.fromkeys(KEYS, 0.0)
    f["gemm"] = wk.gemm
    f["call"] = wk.calls
    f["small"] = wk.small
    f["run"] = wk.runs
    f[_elem_key(row["algorithm"])] = wk.elem
    return np.array([f[k] for k in KEYS])


#: Seconds per Python-level call, measured (a NumPy call on a small array plus the views around it),
#: not fitted: the calls are too few against the other terms for a fit to pin them down.
CALL = 2e-6


@contextlib.contextmanager
def _model(coef, setup):
    """The cost model with these coefficients and setup costs, for the duration of the block."""
    saved, saved_setup = dict(costmodel.COEFFICIENTS), dict(costmodel.SETUP)
    costmodel.COEFFICIENTS.update(coef)
    costmodel.SETUP.clear()
    costmodel.SETUP.update(setup)
    try:
        yield
    finally:
        costmodel.COEFFICIENTS.clear()
        costmodel.COEFFICIENTS.update(saved)
        costmodel.SETUP.clear()
        costmodel.SETUP.update(saved_setup)


def _setup_columns(rows) -> np.ndarray:
    """One indicator column per modelled algorithm: row ``i`` has a 1 in its algorithm's column."""
    return np.array([[r["algorithm"] == a for a in costmodel.modeled()] for r in rows], dtype=float)


def fit(rows, specs):
    """Non-negative least squares on relative errors: the coefficients of the work terms and,
    per algorithm, its fixed seconds per operation (``SETUP``: an indicator column each)."""
    from scipy.optimize import nnls

    feats = np.array([_features(r, specs) for r in rows])
    t = np.array([r["seconds"] for r in rows])
    call = KEYS.index("call")
    rest = [i for i in range(len(KEYS)) if i != call]
    target = np.maximum(t - CALL * feats[:, call], 0.05 * t)
    A = np.hstack([feats[:, rest], _setup_columns(rows)]) / t[:, None]
    b = target / t
    scale = A.max(axis=0)
    scale[scale == 0] = 1
    sol, _ = nnls(A / scale, b)
    sol = sol / scale
    out = dict(zip([KEYS[i] for i in rest], sol[: len(rest)]))
    out["call"] = CALL
    setup = {a: float(v) for a, v in zip(costmodel.modeled(), sol[len(rest):])}
    return {k: out[k] for k in KEYS}, setup


def fit_setup(rows, specs):
    """Only the per-algorithm fixed seconds (``SETUP``), with the shipped coefficients held fixed:
    non-negative least squares of the relative residuals on one indicator column per algorithm."""
    from scipy.optimize import nnls

    with _model(costmodel.COEFFICIENTS, {}):
        est = np.array([costmodel.estimate(r["algorithm"], specs[r["config"]], r["op"]) for r in rows])
    t = np.array([r["seconds"] for r in rows])
    sol, _ = nnls(_setup_columns(rows) / t[:, None], (t - est) / t)
    return dict(costmodel.COEFFICIENTS), {a: float(v) for a, v in zip(costmodel.modeled(), sol)}


def evaluate(rows, specs, coef, setup):
    """How often the model's pick is the fastest, and the slowdown of its pick."""
    with _model(coef, setup):
        groups = {}
        for r in rows:
            groups.setdefault((r["config"], r["op"]), []).append(r)
        hits, slowdowns, misses = 0, [], []
        for (cfg, op), rs in groups.items():
            best = min(rs, key=lambda r: r["seconds"])
            pick = min(rs, key=lambda r: costmodel.estimate(r["algorithm"], specs[cfg], op))
            hits += pick is best
            slowdowns.append(pick["seconds"] / best["seconds"])
            if slowdowns[-1] > 1.3:
                misses.append(f"{cfg} {op}: {pick['algorithm']} {1e3 * pick['seconds']:.1f} ms, "
                              f"{best['algorithm']} {1e3 * best['seconds']:.1f} ms")
        errors = [abs(math.log(costmodel.estimate(r["algorithm"], specs[r["config"]], r["op"]) / r["seconds"]))
                  for r in rows]
        return {
            "cases": len(groups),
            "picked_fastest": hits / len(groups),
            "geomean_slowdown": math.exp(sum(map(math.log, slowdowns)) / len(slowdowns)),
            "worst_slowdown": max(slowdowns),
            "median_estimate_error": math.exp(float(np.median(errors))),
            "misses_over_1.3x": misses,
        }


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=costmodel.CALIBRATED_THREADS,
                    help="threads for convgrad and BLAS while measuring (the model's reference)")
    ap.add_argument("--json", default=None)
    ap.add_argument("--load", default=None, help="reuse measurements from a previous --json file")
    ap.add_argument("--setup-only", action="store_true",
                    help="keep the shipped coefficients and fit only the per-algorithm setup (how the shipped SETUP was made)")
    args = ap.parse_args()
    specs = {name: conv_spec(xs, ws, **kw) for name, xs, ws, kw in corpus()}
    rows = json.load(open(args.load))["measurements"] if args.load else measure(args.repeats, args.threads)
    # rows the model rules out (3-D Winograd) are no data for the fit, nor candidates
    rows = [r for r in rows if np.isfinite(_features(r, specs)).all()]
    configs = sorted(specs)
    train = {c for i, c in enumerate(configs) if i % 2 == 0}
    fitter = fit_setup if args.setup_only else fit
    coef_half, setup_half = fitter([r for r in rows if r["config"] in train], specs)
    held_out = evaluate([r for r in rows if r["config"] not in train], specs, coef_half, setup_half)
    coef, setup = fitter(rows, specs)
    report = {
        "held_out": held_out,
        "in_sample": evaluate(rows, specs, coef, setup),
        "current_coefficients": evaluate(rows, specs, dict(costmodel.COEFFICIENTS), dict(costmodel.SETUP)),
        "coefficients": coef,
        "setup": setup,
        "measurements": rows,
    }
    for key in ("held_out", "in_sample", "current_coefficients"):
        print(key, json.dumps(report[key]))
    print("COEFFICIENTS = {")
    for k, v in coef.items():
        print(f'    "{k}": {v:.4g},')
    print("}")
    print("SETUP = {")
    for k, v in setup.items():
        print(f'    "{k}": {v:.3g},')
    print("}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(report, f, indent=1)


if __name__ == "__main__":
    main()
