"""One full training step of real small CNNs: convgrad.nn against torch.nn, same network, same weights.

A step is forward, loss (cross-entropy), backward and one SGD update (momentum 0.9) on one batch.
Each library runs in its own process (PyTorch's OpenMP threads keep spinning after a call and
would steal a core from convgrad in the same process); the parent alternates them round by
round -- two convgrad steps, two PyTorch steps, ... -- so load from other jobs hits both alike, and
reports the median of each round's second step after warm-up steps (the first step after a switch
finds the library's worker threads asleep, and this virtual machine's idle cores are slow to wake:
the layer benchmark's :mod:`convgrad.bench.timing` measured up to 12 ms after a 100 ms pause), the ratio convgrad/PyTorch, and the peak
resident memory of each process above its state before building the network and the batch
(parameters, optimizer state, the batch, activations, gradients and scratch: all of a step).
Every network runs in fresh processes, after a tiny run of the same network that pays the
library's one-time set-up (thread pools, BLAS buffers), which is therefore not counted. Both timed
processes run with the same ``malloc`` thresholds: the ones ``convgrad.nn`` sets in its process
(:mod:`convgrad.memory`: freed memory kept mapped, no page faults from step to step), given to
PyTorch's process too -- unless the caller's environment tunes ``malloc`` itself, for both.

    python -m convgrad.bench.train_step [--nets lenet5,vgg,resnet8,cnn1d] [--dtypes float32,float64]
                                        [--repeats 9] [--warmup 3] [--threads N] [--json PATH]

Networks (the shapes people who train from scratch use):

=========  ==================================================================================
lenet5     1x28x28, batch 64: conv 5x5 (pad 2) 6 -> pool -> conv 5x5 16 -> pool -> 120 -> 84 -> 10
vgg        3x32x32, batch 64: 3 stages (32, 64, 128) of 2 x [conv 3x3, BN, ReLU] + max-pool, linear
resnet8    3x32x32, batch 64: conv 3x3 16 + BN + ReLU, basic blocks 16, 32/2, 64/2 (1x1 projection
           shortcuts), global average pooling, linear
cnn1d      1x40 (MNIST-1D's shape), batch 128: 3 x [conv1d, ReLU] with stride 2, linear
=========  ==================================================================================
"""

from __future__ import annotations

import argparse
import gc
import json
import multiprocessing as mp
import os
import platform
import statistics
import time

import numpy as np

NETS = ("lenet5", "vgg", "resnet8", "cnn1d")
INPUTS = {"lenet5": ((1, 28, 28), 64), "vgg": ((3, 32, 32), 64), "resnet8": ((3, 32, 32), 64), "cnn1d": ((1, 40), 128)}


# ------------------------------------------------------------------------------------------------
# the networks, written once against a small vocabulary both libraries provide
# ------------------------------------------------------------------------------------------------


def _layers(net: str, L) -> list:
    """The layers of ``net`` built from ``L`` (a namespace of constructors: convgrad.nn or torch.nn)."""
    if net == "lenet5":
        return [L.Conv2d(1, 6, 5, padding=2), L.ReLU(), L.MaxPool2d(2), L.Conv2d(6, 16, 5), L.ReLU(), L.MaxPool2d(2),
                L.Flatten(), L.Linear(400, 120), L.ReLU(), L.Linear(120, 84), L.ReLU(), L.Linear(84, 10)]
    if net == "vgg":
        layers, cin = [], 3
        for c in (32, 64, 128):
            for _ in range(2):
                layers += [L.Conv2d(cin, c, 3, padding=1), L.BatchNorm2d(c), L.ReLU()]
                cin = c
            layers.append(L.MaxPool2d(2))
        return layers + [L.Flatten(), L.Linear(128 * 4 * 4, 10)]
    if net == "resnet8":
        return [L.Conv2d(3, 16, 3, padding=1, bias=False), L.BatchNorm2d(16), L.ReLU(),
                L.BasicBlock(16, 16, 1), L.BasicBlock(16, 32, 2), L.BasicBlock(32, 64, 2),
                L.AdaptiveAvgPool2d(1), L.Flatten(), L.Linear(64, 10)]
    if net == "cnn1d":
        return [L.Conv1d(1, 32, 5, stride=2, padding=2), L.ReLU(), L.Conv1d(32, 32, 3, stride=2, padding=1), L.ReLU(),
                L.Conv1d(32, 32, 3, stride=2, padding=1), L.ReLU(), L.Flatten(), L.Linear(32 * 5, 10)]
    raise ValueError(f"unknown network {net!r}; choose from {', '.join(NETS)}")


def torch_vocabulary():
    """torch.nn's constructors for the networks above, with torchvision's BasicBlock written out."""
    import torch

    class BasicBlock(torch.nn.Module):
        def __init__(self, cin, cout, stride):
            super().__init__()
            self.conv1 = torch.nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
            self.bn1 = torch.nn.BatchNorm2d(cout)
            self.conv2 = torch.nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
            self.bn2 = torch.nn.BatchNorm2d(cout)
            self.downsample = None
            if stride != 1 or cin != cout:
                self.downsample = torch.nn.Sequential(torch.nn.Conv2d(cin, cout, 1, stride, bias=False),
                                                      torch.nn.BatchNorm2d(cout))

        def forward(self, x):
            out = self.bn2(self.conv2(torch.relu(self.bn1(self.conv1(x)))))
            return torch.relu(out + (x if self.downsample is None else self.downsample(x)))

    class L:
        pass

    for name in ("Conv1d", "Conv2d", "ReLU", "MaxPool2d", "Flatten", "Linear", "BatchNorm2d", "AdaptiveAvgPool2d"):
        setattr(L, name, getattr(torch.nn, name))
    L.BasicBlock = BasicBlock
    return L


def build(net: str, library: str, dtype: str, seed: int = 0):
    """``(model, optimizer, step)`` for one library; both libraries get PyTorch's initial weights of ``seed``."""
    import torch

    torch.manual_seed(seed)
    tmodel = torch.nn.Sequential(*_layers(net, torch_vocabulary())).to(getattr(torch, dtype))
    if library == "torch":
        opt = torch.optim.SGD(tmodel.parameters(), lr=0.01, momentum=0.9)
        loss_fn = torch.nn.CrossEntropyLoss()

        def step(x, y):
            opt.zero_grad()
            loss = loss_fn(tmodel(x), y)
            loss.backward()
            opt.step()
            return loss.item()

        return tmodel, step
    from .. import nn

    model = nn.Sequential(*_layers(net, nn)).to(np.dtype(dtype))
    model.load_state_dict({k: v.detach().numpy() for k, v in tmodel.state_dict().items()})
    opt = nn.SGD(model.parameters(), lr=0.01, momentum=0.9)
    loss_fn = nn.CrossEntropyLoss()

    def step(x, y):
        opt.zero_grad()
        loss, grad = loss_fn(model(x), y)
        model.backward(grad, input_grad=False)
        opt.step()
        return float(loss)

    return model, step


def batch(net: str, dtype: str, seed: int = 1, n: int | None = None):
    shape, default = INPUTS[net]
    n = n or default
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, *shape)).astype(dtype), rng.integers(0, 10, n)


# ------------------------------------------------------------------------------------------------
# one process per library, driven round by round
# ------------------------------------------------------------------------------------------------


def _rss() -> tuple[int, int]:
    with open("/proc/self/status") as f:
        values = dict(line.split(":", 1) for line in f if line.startswith(("VmRSS", "VmHWM")))
    return tuple(int(values[k].split()[0]) * 1024 for k in ("VmRSS", "VmHWM"))


def _reset_peak() -> None:
    """Reset the resident-set high-water mark (Linux), so each network's peak is its own."""
    if os.path.exists("/proc/self/clear_refs"):
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")


def _worker(conn, library: str, threads: int, for_memory: bool = False) -> None:
    """Serve ``("setup", net, dtype)``, ``("step", n)``, ``("memory",)`` and ``("stop",)`` requests."""
    from .. import memory

    if library == "torch":
        import torch

        torch.set_num_threads(threads)
        if not for_memory and not memory._environment_chose():
            # the malloc settings convgrad.nn makes in its own process: the two libraries' steps are timed
            # with the same C library behaviour (PyTorch's tensors fault fresh pages just the same without)
            memory.set_thresholds(memory.MMAP_THRESHOLD, memory.TRIM_THRESHOLD)
    else:
        from .. import runtime

        runtime.set_num_threads(threads)
        if for_memory:  # convgrad as in the timed process, then malloc made to return freed memory at once
            memory.set_memory_reuse(True)
            memory.set_thresholds(**MEMORY_MALLOC)
    state = {}
    while True:
        request = conn.recv()
        kind = request[0]
        try:
            if kind == "setup":
                _, net, dtype = request
                state.clear()
                # the library's one-time set-up (thread pools, BLAS buffers, lazy imports) is not the step's:
                # a tiny run of the same network first, then the baseline
                tx, ty = batch(net, dtype, n=2)
                if library == "torch":
                    import torch

                    tx, ty = torch.from_numpy(tx), torch.from_numpy(ty)
                build(net, library, dtype)[1](tx, ty)
                gc.collect()
                _reset_peak()
                base = _rss()[0]                  # before the network, its optimizer and the batch
                x, y = batch(net, dtype)
                if library == "torch":
                    import torch

                    x, y = torch.from_numpy(x), torch.from_numpy(y)
                _, step = build(net, library, dtype)
                state.update(step=step, x=x, y=y)
                state["loss"] = step(x, y)
                state["rss0"] = base
                conn.send(("ok", state["loss"]))
            elif kind == "step":
                times = []
                for _ in range(request[1]):
                    start = time.perf_counter()
                    state["step"](state["x"], state["y"])
                    times.append(time.perf_counter() - start)
                conn.send(("ok", times))
            elif kind == "memory":
                rss, hwm = _rss()
                conn.send(("ok", hwm - state["rss0"]))
            elif kind == "stop":
                conn.send(("ok", None))
                return
        except Exception as exc:  # reported to the parent, which names the network and library
            conn.send(("error", f"{type(exc).__name__}: {exc}"))


#: glibc settings of the processes that measure memory: large freed blocks go back to the system at
#: once, so the resident-set high-water mark sees each step's live peak. They also make every large
#: allocation fresh pages (page faults at every step, for both libraries), so the processes that
#: time the steps run with the caller's environment instead -- where convgrad.nn keeps freed memory
#: mapped for the next step (:mod:`convgrad.memory`), and PyTorch's process is given the same thresholds.
MEMORY_MALLOC_ENV = {"MALLOC_MMAP_THRESHOLD_": "65536", "MALLOC_TRIM_THRESHOLD_": "0"}
#: The same for convgrad's memory process, set after convgrad.memory's reuse (which it keeps on, so that its
#: scratch is freed after each operation as in the timed process; convgrad.workspace).
MEMORY_MALLOC = {"mmap_threshold": 65536, "trim_threshold": 0}


class _Library:
    def __init__(self, library: str, threads: int, *, for_memory: bool = False):
        ctx = mp.get_context("spawn")
        self.conn, child = ctx.Pipe()
        self.proc = ctx.Process(target=_worker, args=(child, library, threads, for_memory), daemon=True)
        saved = {k: os.environ.get(k) for k in MEMORY_MALLOC_ENV}
        if for_memory:  # the child inherits the environment at its start; the parent's is put back after
            os.environ.update({k: os.environ.get(k, v) for k, v in MEMORY_MALLOC_ENV.items()})
        try:
            self.proc.start()
        finally:
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v
        self.library = library

    def ask(self, *request):
        self.conn.send(request)
        status, value = self.conn.recv()
        if status != "ok":
            raise RuntimeError(f"{self.library}: {value}")
        return value

    def close(self):
        try:
            self.ask("stop")
        finally:
            self.proc.join(5)


def _peak(library: str, net: str, dtype: str, threads: int) -> int:
    """Peak resident bytes of a step above the state before the network and the batch were built, in a
    fresh process with :data:`MEMORY_MALLOC_ENV` (the set-up's step and two more)."""
    lib = _Library(library, threads, for_memory=True)
    try:
        lib.ask("setup", net, dtype)
        lib.ask("step", 2)
        return lib.ask("memory")
    finally:
        lib.close()


def run(nets=NETS, dtypes=("float32", "float64"), repeats: int = 9, warmup: int = 3, threads: int | None = None,
        progress=print) -> dict:
    threads = threads or os.cpu_count() or 1
    rows = []
    for net in nets:
        for dtype in dtypes:
            # fresh processes for every network; the times in the caller's environment ...
            libs = {name: _Library(name, threads) for name in ("convgrad", "torch")}
            try:
                loss = {name: lib.ask("setup", net, dtype) for name, lib in libs.items()}
                for lib in libs.values():
                    lib.ask("step", warmup)
                times = {name: [] for name in libs}
                for _ in range(repeats):
                    for name, lib in libs.items():      # alternate, round by round: an untimed step, a timed one
                        times[name] += lib.ask("step", 2)[1:]
            finally:
                for lib in libs.values():
                    lib.close()
            memory = {name: _peak(name, net, dtype, threads) for name in libs}  # ... the memory in its own
            med = {name: statistics.median(t) for name, t in times.items()}
            row = {"net": net, "dtype": dtype, "ms": {k: 1e3 * v for k, v in med.items()},
                   "ratio": med["convgrad"] / med["torch"], "peak_mib": {k: v / 2**20 for k, v in memory.items()},
                   "first_loss": loss, "repeats": repeats}
            rows.append(row)
            progress(_format_row(row))
    import torch

    return {"date": time.strftime("%Y-%m-%d"), "machine": f"{platform.processor() or platform.machine()}, "
            f"{os.cpu_count()} cores", "threads": threads, "torch": torch.__version__, "numpy": np.__version__,
            "rows": rows, "geomean_ratio": {dt: float(np.exp(np.mean([np.log(r["ratio"]) for r in rows if r["dtype"] == dt])))
                                            for dt in dtypes}}


HEADER = f"{'network':8s} {'dtype':7s} {'convgrad ms':>11s} {'PyTorch ms':>10s} {'ratio':>6s} {'peak MiB cg / pt':>17s}"


def _format_row(r: dict) -> str:
    return (f"{r['net']:8s} {r['dtype']:7s} {r['ms']['convgrad']:11.1f} {r['ms']['torch']:10.1f} {r['ratio']:6.2f} "
            f"{r['peak_mib']['convgrad']:8.1f} / {r['peak_mib']['torch']:.1f}")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nets", default=",".join(NETS), help="comma-separated from " + ", ".join(NETS))
    parser.add_argument("--dtypes", default="float32,float64")
    parser.add_argument("--repeats", type=int, default=9, help="timed steps per library (median reported; >= 7)")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None, help="threads of both libraries (default: all cores)")
    parser.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    args = parser.parse_args(argv)
    nets = [n.strip() for n in args.nets.split(",") if n.strip()]
    bad = [n for n in nets if n not in NETS]
    if bad:
        parser.error(f"--nets: unknown network(s) {', '.join(bad)}; choose from {', '.join(NETS)}")
    print(HEADER)
    result = run(nets, tuple(args.dtypes.split(",")), args.repeats, args.warmup, args.threads)
    for dt, g in result["geomean_ratio"].items():
        print(f"geometric mean of the ratio, {dt}: {g:.2f}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
