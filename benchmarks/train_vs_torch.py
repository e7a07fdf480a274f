"""Per-epoch training time: convgrad.nn against PyTorch, same network, same data, same run.

Trains the LeNet-style network of ``convgrad train`` (convgrad.nn.models.lenet) and the identical
torch.nn network on the same training split of the 8x8 digits, in float32, with the same batch
size, Adam and label-smoothed cross-entropy. Epochs alternate between the two (convgrad, torch,
convgrad, ...) so that load from other processes hits both alike; the report gives the median
and the minimum of each and their ratio. Optionally (``--layers``) it breaks convgrad's epoch
down by layer and pass.

    python benchmarks/train_vs_torch.py [--epochs 8] [--batch-size 32] [--threads N] [--layers]

Needs ``torch==2.13.0`` and scikit-learn. Not a test: timings on a shared machine are noisy.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import statistics
import time
from collections import defaultdict


def torch_lenet(config):
    import torch.nn as tnn

    h, w = config.image_size
    c1, c2 = config.channels
    return tnn.Sequential(
        tnn.Conv2d(1, c1, 3, padding=1), tnn.BatchNorm2d(c1), tnn.ReLU(), tnn.MaxPool2d(2),
        tnn.Conv2d(c1, c2, 3, padding=1), tnn.BatchNorm2d(c2), tnn.ReLU(), tnn.MaxPool2d(2),
        tnn.Flatten(), tnn.Linear(c2 * (h // 4) * (w // 4), config.hidden), tnn.ReLU(),
        tnn.Dropout(config.dropout), tnn.Linear(config.hidden, config.num_classes),
    )


def torch_epoch(model, opt, loss_fn, images, labels, batch_size, rng):
    import torch

    model.train()
    order = rng.permutation(len(labels))
    start = time.perf_counter()
    for i in range(0, len(order), batch_size):
        idx = order[i:i + batch_size]
        x, y = torch.from_numpy(images[idx]), torch.from_numpy(labels[idx])
        opt.zero_grad()
        loss = loss_fn(model(x), y)
        loss.backward()
        opt.step()
    return time.perf_counter() - start


class LayerTimer:
    """Wraps each layer's forward and backward to add up their time."""

    def __init__(self, model):
        self.totals = defaultdict(float)
        for i, layer in enumerate(model):
            self._wrap(layer, f"{i:2d} {type(layer).__name__}")

    def _wrap(self, layer, name):
        forward, backward, totals = layer.forward, layer.backward, self.totals

        def timed_forward(x):
            t = time.perf_counter()
            y = forward(x)
            totals[(name, "forward")] += time.perf_counter() - t
            return y

        def timed_backward(dy, *, input_grad=True):
            t = time.perf_counter()
            dx = backward(dy, input_grad=input_grad)
            totals[(name, "backward")] += time.perf_counter() - t
            return dx

        layer.forward, layer.backward = timed_forward, timed_backward


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=8, help="timed epochs of each (default 8)")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--threads", type=int, default=None,
                        help="threads for both torch and NumPy's BLAS (default: each library's own)")
    parser.add_argument("--layers", action="store_true", help="also time convgrad's layers one by one")
    parser.add_argument("--channels", default=None, help="the two conv widths, e.g. 32,64 (default: convgrad train's)")
    parser.add_argument("--hidden", type=int, default=None, help="the hidden Linear width (default: convgrad train's)")
    args = parser.parse_args()
    if args.threads:  # before NumPy is imported, so that its BLAS reads them
        for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
            os.environ[var] = str(args.threads)

    import numpy as np
    import torch

    from convgrad import nn
    from convgrad.nn import data, models, training

    if args.threads:
        torch.set_num_threads(args.threads)
    digits = data.load_digits()
    train_index, _ = data.stratified_split(digits.labels, 0.2, 0)
    train = digits.subset(train_index)
    config = models.LeNetConfig(image_size=train.image_size)
    if args.channels:
        config = dataclasses.replace(config, channels=tuple(int(c) for c in args.channels.split(",")))
    if args.hidden:
        config = dataclasses.replace(config, hidden=args.hidden)

    model = models.lenet(config, rng=0)
    opt = nn.Adam(model.parameters(), lr=1e-3)
    loss_fn = nn.CrossEntropyLoss(label_smoothing=0.1)
    torch.manual_seed(0)
    tmodel = torch_lenet(config)
    topt = torch.optim.Adam(tmodel.parameters(), lr=1e-3)
    tloss = torch.nn.CrossEntropyLoss(label_smoothing=0.1)
    rng = np.random.default_rng(0)

    # one warm-up epoch each, then alternate
    training.train_epoch(model, loss_fn, opt, train, args.batch_size, rng)
    torch_epoch(tmodel, topt, tloss, train.images, train.labels, args.batch_size, rng)
    ours, theirs = [], []
    for _ in range(args.epochs):
        start = time.perf_counter()
        training.train_epoch(model, loss_fn, opt, train, args.batch_size, rng)
        ours.append(time.perf_counter() - start)
        theirs.append(torch_epoch(tmodel, topt, tloss, train.images, train.labels, args.batch_size, rng))

    steps = -(-len(train) // args.batch_size)
    print(f"LeNet {config.channels} on {len(train)} digits of {config.image_size}, batch {args.batch_size} "
          f"({steps} steps/epoch), float32, torch {torch.__version__} with {torch.get_num_threads()} threads, "
          f"BLAS threads {os.environ.get('OPENBLAS_NUM_THREADS', 'default')}")
    print(f"{'':10s} {'median s/epoch':>15s} {'min s/epoch':>12s} {'ms/step':>8s}")
    for name, times in (("convgrad", ours), ("torch", theirs)):
        med = statistics.median(times)
        print(f"{name:10s} {med:15.3f} {min(times):12.3f} {1000 * med / steps:8.2f}")
    print(f"ratio convgrad/torch: median {statistics.median(ours) / statistics.median(theirs):.2f}, "
          f"min {min(ours) / min(theirs):.2f}  (< 1: convgrad faster)")

    if args.layers:
        timer = LayerTimer(model)
        for _ in range(2):
            training.train_epoch(model, loss_fn, opt, train, args.batch_size, rng)
        total = sum(timer.totals.values())
        print(f"\nconvgrad layers, ms per epoch (2 epochs; {1000 * total / 2:.0f} ms in layers):")
        for (name, kind), t in sorted(timer.totals.items(), key=lambda kv: -kv[1]):
            print(f"  {name:18s} {kind:8s} {1000 * t / 2:7.1f}")


if __name__ == "__main__":
    main()
