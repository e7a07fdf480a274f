"""Dump auto's picks and the cost model's estimates for the benchmark layers and the training network.

A guard for refactoring the algorithm layer (issue 11): run it before and after, compare the JSON.
``auto``'s pick for every operation (forward, grad_input, grad_weight) of the ten benchmark layers
(:mod:`convgrad.bench.layers`) and of the conv layers of the training network (``lenet`` on the
8x8 digits, batch 32, float32), and the cost model's estimate for every (layer, op, algorithm)
the model knows, supported or not (``null`` when the estimate raises).

    PYTHONPATH=src python scripts/guard_choices.py > before.json
"""

from __future__ import annotations

import json
import sys

from convgrad import algorithms
from convgrad.algorithms import costmodel
from convgrad.bench.layers import LAYERS
from convgrad.nn.conv import Conv2d
from convgrad.nn.models import LeNetConfig, lenet
from convgrad.spec import conv_spec

OPS = ("forward", "grad_input", "grad_weight")


def _specs() -> dict:
    specs = {f"bench-{name}": layer.spec() for name, layer in LAYERS.items()}
    config = LeNetConfig()
    size = config.image_size
    convs = [m for m in lenet(config, rng=0).modules() if isinstance(m, Conv2d)]
    for i, conv in enumerate(convs):
        shape = (32, conv.in_channels, *size)
        specs[f"lenet-conv{i + 1}"] = conv_spec(shape, conv.weight.shape, stride=conv.stride, padding=conv.padding,
                                               dilation=conv.dilation, groups=conv.groups, func="guard")
        size = tuple(s // 2 for s in size)  # the 2x2 max-pooling after each conv
    return specs


def _modeled() -> tuple[str, ...]:
    names = getattr(costmodel, "MODELED", None)
    if names is None:  # after the redesign: every registered algorithm auto may pick
        names = costmodel.modeled()
    return tuple(names)


def main() -> None:
    out = {}
    for key, spec in _specs().items():
        row = {"spec": repr(spec), "choice": {}, "estimates": {}}
        for op in OPS:
            row["choice"][op] = algorithms.choose(spec, op, 4).name
            for name in _modeled():
                try:
                    est = costmodel.estimate(name, spec, op, 1)
                    est2 = costmodel.estimate(name, spec, op, 2)
                except Exception as exc:  # noqa: BLE001 - recorded, so a change shows
                    est = est2 = f"error: {type(exc).__name__}"
                row["estimates"][f"{op}/{name}"] = [est, est2]
        out[key] = row
    json.dump(out, sys.stdout, indent=1, sort_keys=True)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
