"""``convgrad bench``: time forward and backward against PyTorch on the ten benchmark layers."""

from __future__ import annotations

import json
import sys

from .config import add_conv_arguments, conv_kwargs


def register(sub) -> None:
    p = sub.add_parser(
        "bench",
        help="time forward and backward against PyTorch on the benchmark layers (or one configuration)",
        description=(
            "Time convgrad's forward pass, backward pass (input, weight and bias gradients) and both against "
            "PyTorch's CPU kernels in the same process, alternating, after warm-up; report the median times, the "
            "ratio convgrad/PyTorch, GFLOP/s and the fraction of the float32 GEMM peak measured in the same run, "
            "and the peak memory of each (in a fresh process). The last line is the geometric mean of the ratios. "
            "By default the ten layers a..i of issue 3; --input/--weight/... benchmark one configuration instead."
        ),
    )
    p.add_argument("--layers", default=None, metavar="NAMES",
                   help="comma-separated subset of the layers a,b,c,d,e,f,g1,g2,h,i (default: all)")
    p.add_argument("--repeats", type=int, default=5, metavar="R", help="timed rounds per layer (median; default 5)")
    p.add_argument("--warmup", type=int, default=1, metavar="W", help="untimed calls of each function first (default 1)")
    p.add_argument("--threads", type=int, default=2, metavar="T",
                   help="threads for convgrad, NumPy's BLAS and PyTorch (default 2)")
    p.add_argument("--algorithm", default="auto", help="convgrad algorithm (default auto)")
    p.add_argument("--workspace-limit", type=float, default=None, metavar="MIB",
                   help="convgrad's scratch-memory limit in MiB (default: the library default)")
    p.add_argument("--no-memory", action="store_true", help="skip the peak-memory measurement (faster)")
    p.add_argument("--no-torch", action="store_true", help="time convgrad alone")
    p.add_argument("--json", metavar="PATH", default=None, help="also write the full record as JSON to PATH ('-' = stdout)")
    add_conv_arguments(p, input_default="", weight_default="")
    p.set_defaults(func=run)


def _layers(args):
    from ..bench.layers import LAYERS, Layer, layer

    if args.input or args.weight:
        if not (args.input and args.weight):
            raise ValueError("--input and --weight go together (one configuration to benchmark)")
        if args.transposed:
            raise ValueError("--transposed: the benchmark times ordinary convolutions only")
        kwargs = conv_kwargs(args)
        if kwargs.pop("padding_mode") != "zeros":
            raise ValueError("--padding-mode: the benchmark compares zero padding only (PyTorch's functional form)")
        if len(args.input) != len(args.weight):
            raise ValueError(f"--input needs the batch dim: {len(args.weight)} numbers for a {len(args.weight)}-D weight")
        n, c_in, *size = args.input
        c_out, _, *kernel = args.weight
        desc = f"input {args.input}, weight {args.weight}, " + ", ".join(f"{k}={v}" for k, v in kwargs.items())
        return [Layer("custom", desc, n, c_in, c_out, tuple(size), tuple(kernel), **kwargs)]
    if args.layers is None:
        return list(LAYERS.values())
    return [layer(name.strip()) for name in args.layers.split(",") if name.strip()]


def run(args) -> int:
    from ..bench import format_table, run_benchmark
    from ..bench.report import HEADER, RULE, format_row

    if args.repeats < 1 or args.warmup < 0 or args.threads < 1:
        raise ValueError("--repeats and --threads must be at least 1 and --warmup at least 0")
    with_torch = not args.no_torch
    if with_torch:
        try:
            import torch  # noqa: F401
        except ImportError:
            raise ValueError("PyTorch is not installed: pip install torch==2.13.0, or run with --no-torch") from None
    layers = _layers(args)
    limit = None if args.workspace_limit is None else int(args.workspace_limit * 2**20)
    to_stdout = args.json == "-"
    out = sys.stderr if to_stdout else sys.stdout
    print(HEADER, file=out)
    print(RULE, file=out, flush=True)
    record = run_benchmark(
        layers,
        repeats=args.repeats,
        warmup=args.warmup,
        threads=args.threads,
        algorithm=args.algorithm,
        with_torch=with_torch,
        memory=not args.no_memory,
        workspace_limit=limit,
        progress=lambda entry: print(format_row(_partial(entry)), file=out, flush=True),
    )
    print(file=out)
    print(format_table(record), file=out)
    if args.json:
        text = json.dumps(record, indent=1)
        if to_stdout:
            print(text)
        else:
            with open(args.json, "w") as f:
                f.write(text + "\n")
    return 0


def _partial(entry: dict) -> dict:
    """A layer's row before the run's GEMM peak is known (no fraction of peak yet)."""
    e = dict(entry)
    med = e["median"]
    e["gflops"] = {lib: {op: e["flops"][op] / t / 1e9 for op, t in ops.items()} for lib, ops in med.items()}
    e["fraction_of_peak"] = {lib: {op: float("nan") for op in ops} for lib, ops in med.items()}
    if "torch" in med:
        e["ratio"] = {op: med["convgrad"][op] / med["torch"][op] for op in med["convgrad"]}
    return e
