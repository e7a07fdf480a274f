"""Fit ``winograd2d``'s cost-model coefficients with every other coefficient held fixed, and check auto's picks.

As ``benchmarks/fit_samplegemm.py`` (whose measuring and evaluation this reuses): ``winograd2d`` is
timed on one core beside the two algorithms the model ranks best without it, on calibrate.py's
corpus configurations it supports (2-D 3x3 stride 1) plus the 3x3 stride-1 layers of the VGG-style
net and ResNet-8 of ``convgrad bench --train`` (batch 16). Two unknowns -- ``COEFFICIENTS["winograd2d"]``
(its elementwise passes) and ``SETUP["winograd2d"]`` -- are fitted by non-negative least squares on
relative errors, to its time scaled by the model's own error on the other candidates of the same
configuration. Times are the process's CPU time (``--clock cpu``, the default: one worker, BLAS on
one thread, so it is the operation's time with what other processes take from the core left out --
on a shared machine far steadier than wall time) or wall time (``--clock wall``).

    python benchmarks/fit_winograd2d.py [--repeats 5] [--json FILE] [--load FILE] [--clock cpu|wall]

Not a test. About a minute on the quiet 2-core machine.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(__file__))
import calibrate  # noqa: E402  (the corpus and the timer)
import fit_samplegemm  # noqa: E402  (measure and evaluate, for the algorithm named in fit_samplegemm.NAME)

from convgrad.algorithms import costmodel  # noqa: E402
from convgrad.algorithms.registry import REGISTRY  # noqa: E402
from convgrad.spec import conv_spec  # noqa: E402

NAME = "winograd2d"
#: the 3x3 stride-1 layers of the training networks (convgrad bench --train), batch 16
EXTRA = [(f"{net} {ci}->{co} {h}x{h}", (16, ci, h, h), (co, ci, 3, 3), dict(padding=1))
         for net, ci, co, h in [("vgg", 3, 32, 32), ("vgg", 32, 32, 32), ("vgg", 32, 64, 16), ("vgg", 64, 64, 16),
                                ("vgg", 64, 128, 8), ("vgg", 128, 128, 8), ("resnet", 3, 16, 32), ("resnet", 16, 16, 32),
                                ("resnet", 32, 32, 16), ("resnet", 64, 64, 8)]]


def _supported(entry) -> bool:
    _, xs, ws, kw = entry
    spec = conv_spec(xs, ws, **kw)
    return all(REGISTRY[NAME].unsupported(spec, op) is None for op in calibrate.OPS)


def _cpu_time(f) -> float:
    t = time.process_time()
    f()
    return time.process_time() - t


def fit(rows) -> tuple[float, float]:
    """``(elementwise coefficient, setup)`` fitted to the rows."""
    from scipy.optimize import nnls

    c = costmodel.COEFFICIENTS
    a, b = [], []
    for spec, target, wk in fit_samplegemm.targets(rows, NAME):
        known = c["gemm"] * wk.gemm + c["run"] * wk.runs + c["call"] * wk.calls
        a.append(np.array([wk.elem, 1.0]) / target)
        b.append((target - known) / target)
    coef, _ = nnls(np.array(a), np.array(b))
    return float(coef[0]), float(coef[1])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--json", default=None, help="write the measurements here")
    ap.add_argument("--load", default=None, help="reuse measurements from a previous --json file")
    ap.add_argument("--clock", choices=("cpu", "wall"), default="cpu")
    args = ap.parse_args()
    start = time.time()
    load = os.getloadavg()
    fit_samplegemm.NAME = NAME
    fit_samplegemm.EXTRA = EXTRA
    corpus = [entry for entry in calibrate.corpus() if _supported(entry)]
    fit_samplegemm.calibrate.corpus = lambda: corpus
    if args.clock == "cpu":
        fit_samplegemm.calibrate._time = _cpu_time
    REGISTRY[NAME].auto_candidate = True  # so that measure() times it
    rows = json.load(open(args.load)) if args.load else fit_samplegemm.measure(args.repeats)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f)
    print("with the shipped coefficients:", fit_samplegemm.evaluate(rows))
    elem, setup = fit(rows)
    costmodel.COEFFICIENTS[NAME], costmodel.SETUP[NAME] = elem, setup
    print(f'fitted: COEFFICIENTS["{NAME}"] = {elem:.4g}, SETUP["{NAME}"] = {setup:.3g}')
    print("with the fitted coefficients:", fit_samplegemm.evaluate(rows))
    print(f"({time.time() - start:.0f} s; load average before {load[0]:.2f}, after {os.getloadavg()[0]:.2f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
