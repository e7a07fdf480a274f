"""Time per epoch of ``convgrad train``'s network on 1 process and on Dask LocalClusters of 1 and 2 workers.

    PYTHONPATH=src python benchmarks/dask_scaling.py [--epochs 1] [--json out.json]

Prints, for the digits and the default run (batch 32, LeNet, float32): the seconds of one training
epoch (evaluation excluded) for the one-process step, for the sharded step on Dask's synchronous
scheduler in this process (the extra arithmetic of the distributed path: copies, stages, the
combination of statistics -- no communication), and on LocalClusters of 1 and 2 worker processes;
the per-step overhead of each against the one-process step; and the bytes that travel per step.
The same seed everywhere: every variant takes the same steps.
"""

from __future__ import annotations

import argparse
import json
import pickle
import platform
import time

import numpy as np

from convgrad.nn import Adam, CrossEntropyLoss
from convgrad.nn.data import load_digits, stratified_split
from convgrad.nn.distributed import DataParallelStep, _clean_copy, close, connect
from convgrad.nn.models import LeNetConfig, lenet
from convgrad.nn.training import train_epoch
from convgrad.runtime import settings


def epoch_seconds(train, step_for, epochs: int) -> tuple[float, int]:
    """Median seconds of a training epoch with ``step_for(model, loss, optimizer)`` (None: one process)."""
    rng = np.random.default_rng(0)
    model = lenet(LeNetConfig(), rng=rng)
    loss = CrossEntropyLoss(label_smoothing=0.1)
    optimizer = Adam(model.parameters(), lr=0.01)
    step = None if step_for is None else step_for(model, loss, optimizer)
    times = []
    for _ in range(epochs):
        start = time.perf_counter()
        train_epoch(model, loss, optimizer, train, 32, rng, step=step)
        times.append(time.perf_counter() - start)
    return float(np.median(times)), -(-len(train) // 32)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    full = load_digits()
    train = full.subset(stratified_split(full.labels, 0.2, 0)[0])
    rows = {}
    from threadpoolctl import threadpool_limits  # one BLAS thread, as `convgrad train` and the Dask workers

    with settings(num_threads=1), threadpool_limits(limits=1, user_api="blas"):
        rows["one process"], steps = epoch_seconds(train, None, args.epochs)
        for shards in (1, 2):
            rows[f"synchronous, {shards} shard(s)"], _ = epoch_seconds(
                train, lambda m, l, o: DataParallelStep(m, l, o, shards=shards), args.epochs)
        for workers in (1, 2):
            client = connect(workers=workers)
            try:
                client.wait_for_workers(workers)
                rows[f"LocalCluster, {workers} worker(s)"], _ = epoch_seconds(
                    train, lambda m, l, o: DataParallelStep(m, l, o, shards=workers, client=client), args.epochs)
            finally:
                close(client)
    model_bytes = len(pickle.dumps(_clean_copy(lenet(LeNetConfig(), rng=0)), protocol=pickle.HIGHEST_PROTOCOL))
    base = rows["one process"]
    print(f"{platform.node()}: {steps} steps of 32 per epoch; model snapshot {model_bytes / 1e3:.0f} kB per step")
    print(f"{'':32} {'s/epoch':>8} {'ms/step':>8} {'overhead ms/step':>17} {'x one process':>14}")
    for name, seconds in rows.items():
        print(f"{name:32} {seconds:8.2f} {1e3 * seconds / steps:8.1f} {1e3 * (seconds - base) / steps:17.1f} "
              f"{seconds / base:14.1f}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"steps": steps, "model_bytes": model_bytes, "seconds_per_epoch": rows,
                       "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "machine": platform.node()}, f, indent=1)


if __name__ == "__main__":
    main()
