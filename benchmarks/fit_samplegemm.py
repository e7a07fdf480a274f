"""Fit ``samplegemm``'s cost-model coefficients with every other coefficient held fixed, and check auto's picks.

``benchmarks/calibrate.py`` refits every coefficient at once from every algorithm's times (minutes
on a quiet machine). An algorithm added later can be fitted alone: this script times ``samplegemm``
on one core over calibrate.py's corpus plus the few-channel layers of the training networks, and
beside it the algorithm ``auto`` picked without it and the two best estimates of the others. The
three unknowns -- ``COEFFICIENTS["samplegemm"]`` (its elementwise passes), ``SETUP["samplegemm"]``
(its fixed cost) and ``samplegemm.SAMPLE_CALLS`` (one sample's BLAS call inside NumPy's stacked
``matmul``, in Python-level calls) -- are fitted by non-negative least squares on relative errors,
to its time *scaled by the model's own error on the other candidates of that configuration*
(geometric mean of estimate / measured): so that the comparison ``auto`` makes is calibrated even
where the shared coefficients are off. Then it reports, with the fitted values, how often ``auto``
picks the fastest of the timed algorithms and how much slower its pick is, against the pick
without ``samplegemm``.

    python benchmarks/fit_samplegemm.py [--repeats 5] [--json /tmp/fit_samplegemm.json] [--load FILE]

Not a test. About a minute on the quiet 2-core machine.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(__file__))
import calibrate  # noqa: E402  (the corpus)

import convgrad  # noqa: E402
from convgrad import algorithms, blas  # noqa: E402
from convgrad.algorithms import costmodel, samplegemm  # noqa: E402
from convgrad.algorithms.registry import REGISTRY  # noqa: E402
from convgrad.spec import conv_spec  # noqa: E402

NAME = "samplegemm"
#: the few-channel layers of the training networks (convgrad bench --train) and two more small ones
EXTRA = [("lenet c1", (64, 1, 28, 28), (6, 1, 5, 5), dict(padding=2)), ("lenet c2", (64, 6, 14, 14), (16, 6, 5, 5), {}),
         ("cnn1d c1", (128, 1, 40), (32, 1, 5), dict(stride=2, padding=2)),
         ("cnn1d c2", (128, 32, 20), (32, 32, 3), dict(stride=2, padding=1)),
         ("cnn1d c3", (128, 32, 10), (32, 32, 3), dict(stride=2, padding=1)),
         ("vgg c1", (64, 3, 32, 32), (32, 3, 3, 3), dict(padding=1)),
         ("resnet c1", (64, 3, 32, 32), (16, 3, 3, 3), dict(padding=1)),
         ("small 3->8 16", (32, 3, 16, 16), (8, 3, 3, 3), dict(padding=1)),
         ("small 1->8 1d", (64, 1, 200), (8, 1, 7), dict(padding=3))]
#: configurations with more input values than this are left out (a minute in all, not ten)
MAX_INPUT = 4e6


def measure(repeats: int) -> list[dict]:
    rows = []
    rng = np.random.default_rng(0)
    with convgrad.settings(num_threads=costmodel.CALIBRATED_THREADS), blas.single_threaded():
        for name, xs, ws, kw in calibrate.corpus() + EXTRA:
            spec = conv_spec(xs, ws, **kw)
            if math.prod(spec.input_shape) > MAX_INPUT:
                continue
            x = rng.standard_normal(xs, dtype=np.float32)
            w = rng.standard_normal(ws, dtype=np.float32)
            dy = rng.standard_normal(spec.output_shape, dtype=np.float32)
            operands = {"forward": (x, w), "grad_input": (dy, w), "grad_weight": (x, dy)}
            for op in calibrate.OPS:
                cands = algorithms.candidates(spec, op)
                others = sorted((a for a in cands if a != NAME), key=lambda a: costmodel.estimate(a, spec, op, 1))
                if not others:
                    continue
                times = {}
                for alg in [NAME, *others[:2]]:
                    if alg not in cands:
                        continue
                    f = lambda: algorithms.run(op, spec, *operands[op], alg)  # noqa: E731
                    f()
                    times[alg] = min(calibrate._time(f) for _ in range(repeats))
                rows.append(dict(config=name, xs=xs, ws=ws, kw=kw, op=op, times=times, old_pick=others[0]))
                print(f"{name} {op}: " + ", ".join(f"{a} {1e3 * t:.3f}" for a, t in times.items()), flush=True)
    return rows


def _spec(row):
    return conv_spec(tuple(row["xs"]), tuple(row["ws"]), **row["kw"])


def targets(rows, name: str):
    """``(spec, target, work)`` for every row that timed ``name`` and others: ``name``'s time scaled by the
    model's own error on the other candidates of that row (geometric mean), and its declared work."""
    for row in rows:
        t = row["times"]
        others = {k: v for k, v in t.items() if k != name}
        if name not in t or not others:
            continue
        spec = _spec(row)
        scale = math.exp(statistics.fmean(math.log(costmodel.estimate(k, spec, row["op"], 1) / v) for k, v in others.items()))
        yield spec, t[name] * scale, REGISTRY[name].work(spec, row["op"])


def fit(rows) -> tuple[float, float, float]:
    """``(elementwise coefficient, setup, sample calls)`` fitted to the rows."""
    from scipy.optimize import nnls

    c = costmodel.COEFFICIENTS
    a, b = [], []
    for spec, target, wk in targets(rows, NAME):
        samples = spec.batch * spec.groups
        known = c["gemm"] * wk.gemm + c["run"] * wk.runs + c["call"] * (wk.calls - samples * samplegemm.SAMPLE_CALLS)
        a.append(np.array([wk.elem, 1.0, c["call"] * samples]) / target)
        b.append((target - known) / target)
    coef, _ = nnls(np.array(a), np.array(b))
    return float(coef[0]), float(coef[1]), float(coef[2])


def evaluate(rows) -> dict:
    """How auto's picks (with the coefficients in force) compare with the fastest timed, and without samplegemm."""
    ratios, before, fastest, fastest_before = [], [], 0, 0
    for row in rows:
        t = row["times"]
        spec = _spec(row)
        pick = min(t, key=lambda a: costmodel.estimate(a, spec, row["op"], 1))
        best = min(t.values())
        ratios.append(t[pick] / best)
        before.append(t[row["old_pick"]] / best)
        fastest += t[pick] == best
        fastest_before += t[row["old_pick"]] == best
    gm = lambda v: math.exp(sum(map(math.log, v)) / len(v))  # noqa: E731
    return {"operations": len(rows), "fastest": fastest, "geomean": gm(ratios), "worst": max(ratios),
            "fastest_before": fastest_before, "geomean_before": gm(before), "worst_before": max(before)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--json", default=None, help="write the measurements here")
    ap.add_argument("--load", default=None, help="reuse measurements from a previous --json file")
    args = ap.parse_args()
    start = time.time()
    load = os.getloadavg()
    rows = json.load(open(args.load)) if args.load else measure(args.repeats)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f)
    print("with the shipped coefficients:", evaluate(rows))
    elem, setup, sample_calls = fit(rows)
    costmodel.COEFFICIENTS[NAME], costmodel.SETUP[NAME], samplegemm.SAMPLE_CALLS = elem, setup, sample_calls
    print(f'fitted: COEFFICIENTS["{NAME}"] = {elem:.3g}, SETUP["{NAME}"] = {setup:.3g}, SAMPLE_CALLS = {sample_calls:.3g}')
    print("with the fitted coefficients:", evaluate(rows))
    print(f"({time.time() - start:.0f} s; load average before {load[0]:.2f}, after {os.getloadavg()[0]:.2f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
