"""``convgrad bench``: time forward and backward against PyTorch on the ten benchmark layers."""

from __future__ import annotations

import itertools
import json
import os
import sys
from pathlib import Path

from .config import add_conv_arguments, check_ranks, conv_kwargs
from .progress import progress_bar
from .types import nonnegative_int, positive_float, positive_int


def register(sub) -> None:
    p = sub.add_parser(
        "bench",
        help="time forward and backward against PyTorch on the benchmark layers (or one configuration)",
        description=(
            "Time convgrad's forward pass, backward pass (input, weight and bias gradients) and both against "
            "PyTorch's CPU kernels in the same process, alternating, after warm-up; report the median times, the "
            "ratio convgrad/PyTorch, GFLOP/s and the fraction of the float32 GEMM peak measured in the same run, "
            "and the peak memory of each (in a fresh process), as one table when all layers are done (a progress bar "
            "meanwhile, on a terminal). The last line is the geometric mean of the ratios. By default the ten layers "
            "a..i of issue 3; --input/--weight/... benchmark one configuration instead (the batch dim is optional: "
            "1 when left out)."
        ),
    )
    p.add_argument("--layers", default=None, metavar="NAMES",
                   help="comma-separated subset of the layers a,b,c,d,e,f,g1,g2,h,i (default: all)")
    p.add_argument("--repeats", type=positive_int, default=None, metavar="R",
                   help="timed rounds per layer, or steps per network with --train (median; default 5, with --train 9)")
    p.add_argument("--warmup", type=nonnegative_int, default=1, metavar="W", help="untimed calls of each function first (default 1)")
    p.add_argument("--threads", type=positive_int, default=2, metavar="T",
                   help="threads for convgrad, NumPy's BLAS and PyTorch (default 2)")
    p.add_argument("--algorithm", default="auto", help="convgrad algorithm (default auto)")
    p.add_argument("--workspace-limit", type=positive_float, default=None, metavar="MIB",
                   help="convgrad's scratch-memory limit in MiB (default: the library default)")
    p.add_argument("--data-format", choices=("channels_first", "channels_last"), default="channels_first",
                   help="convgrad's layout: channels_last times it on contiguous (N, *spatial, C) inputs and "
                        "(*kernel, C_in, C_out) weights (PyTorch keeps channels first; default channels_first)")
    p.add_argument("--no-memory", action="store_true", help="skip the peak-memory measurement (faster)")
    p.add_argument("--no-torch", action="store_true", help="time convgrad alone")
    p.add_argument("--json", metavar="PATH", default=None, help="also write the full record as JSON to PATH ('-' = stdout)")
    p.add_argument("--train", action="store_true",
                   help="time whole training steps (forward, loss, backward, SGD) of small CNNs instead of layers: "
                        "convgrad.nn against torch.nn, each library in its own process, alternating")
    p.add_argument("--nets", default=None, metavar="NAMES",
                   help="with --train: comma-separated subset of lenet5,vgg,resnet8,cnn1d (default: all)")
    p.add_argument("--dtypes", "--dtype", default=None, metavar="DTYPES",
                   help="comma-separated dtypes from float32,float64 (default: float32 for the layers, one table "
                        "each; float32,float64 with --train)")
    add_conv_arguments(p, input_default="", weight_default="")
    for action in p._actions:  # no default configuration here: the ten layers are the default
        if action.dest in ("input", "weight"):
            action.help = action.help.replace("(default )", "(default: the ten layers)")
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
        check_ranks(args.input, args.weight)
        shape = args.input if len(args.input) == len(args.weight) else (1, *args.input)  # (N, C, *spatial)
        n, c_in, *size = shape
        c_out, _, *kernel = args.weight
        desc = f"input {shape}, weight {args.weight}, " + ", ".join(f"{k}={v}" for k, v in kwargs.items())
        return [Layer("custom", desc, n, c_in, c_out, tuple(size), tuple(kernel), **kwargs)]
    if args.layers is None:
        return list(LAYERS.values())
    return [layer(name.strip()) for name in args.layers.split(",") if name.strip()]


def _check_json_path(path: str | None) -> None:
    """Prove the --json file writable before the benchmark runs (minutes), leaving nothing behind."""
    if path in (None, "-"):
        return
    target = Path(path)
    if target.is_dir():
        raise ValueError(f"--json: {target} is a folder, expected a file name")
    existed = target.exists()
    try:
        with open(target, "a"):
            pass
    except OSError as exc:
        raise ValueError(f"--json: cannot write {target}: {exc.strerror or exc}") from None
    if not existed:
        os.unlink(target)


def run_train(args) -> int:
    """``convgrad bench --train``: whole training steps of small CNNs against torch.nn."""
    from ..bench import train_step

    if args.no_torch:
        raise ValueError("--train compares against torch.nn: it cannot run with --no-torch")
    if args.layers or args.input or args.weight:
        raise ValueError("--train times whole networks (--nets); --layers, --input and --weight are for layers")
    nets = [n.strip() for n in (args.nets or ",".join(train_step.NETS)).split(",") if n.strip()]
    unknown = [n for n in nets if n not in train_step.NETS]
    if unknown or not nets:
        raise ValueError(f"--nets: expected names from {','.join(train_step.NETS)}, got {args.nets!r}")
    dtypes = _dtypes(args.dtypes, "float32,float64")
    repeats = 9 if args.repeats is None else args.repeats
    if repeats < 7:
        raise ValueError(f"--repeats: --train reports the median of at least 7 steps, got {repeats}")
    try:
        import torch  # noqa: F401
    except ImportError:
        raise ValueError("PyTorch is not installed: pip install 'convgrad[bench]' (torch==2.13.0)") from None
    _check_json_path(args.json)
    quiet = getattr(args, "quiet", False)
    say = (lambda line: None) if quiet else (lambda line: print(line, flush=True))
    say(train_step.HEADER)
    record = train_step.run(nets, tuple(dtypes), repeats, max(1, args.warmup), args.threads, progress=say)
    for dtype, ratio in record["geomean_ratio"].items():
        say(f"geometric mean of the ratio convgrad/PyTorch, {dtype}: {ratio:.2f}")
    if args.json:
        text = json.dumps(record, indent=1)
        if args.json == "-":
            print(text)
        else:
            with open(args.json, "w") as f:
                f.write(text + "\n")
    return 0


def _dtypes(value: str | None, default: str) -> list[str]:
    dtypes = [d.strip() for d in (default if value is None else value).split(",") if d.strip()]
    if not dtypes or any(d not in ("float32", "float64") for d in dtypes) or len(set(dtypes)) != len(dtypes):
        raise ValueError(f"--dtypes: expected float32 and/or float64, got {value!r}")
    return dtypes


def run(args) -> int:
    from ..bench import format_table, run_benchmark

    if args.train:
        return run_train(args)
    if args.nets is not None:
        raise ValueError("--nets goes with --train")
    if args.repeats is None:
        args.repeats = 5
    with_torch = not args.no_torch
    if with_torch:
        try:
            import torch  # noqa: F401
        except ImportError:
            raise ValueError("PyTorch is not installed: pip install 'convgrad[bench]' (torch==2.13.0), "
                             "or run with --no-torch") from None
    layers = _layers(args)
    dtypes = _dtypes(args.dtypes, "float32")
    _check_json_path(args.json)
    limit = None if args.workspace_limit is None else int(args.workspace_limit * 2**20)
    quiet = getattr(args, "quiet", False)
    done = itertools.count(1)
    records = []
    with progress_bar("bench", unit="layer", enabled=not quiet, delay=0.0) as update:
        update(0, len(layers) * len(dtypes))
        for dtype in dtypes:
            records.append(run_benchmark(
                layers,
                repeats=args.repeats,
                warmup=args.warmup,
                threads=args.threads,
                algorithm=args.algorithm,
                with_torch=with_torch,
                memory=not args.no_memory,
                workspace_limit=limit,
                data_format=args.data_format,
                progress=lambda entry: update(next(done), len(layers) * len(dtypes)),  # tables at the end
                dtype=dtype,
            ))
    to_stdout = args.json == "-"
    if not (to_stdout and quiet):
        out = sys.stderr if to_stdout else sys.stdout
        print("\n\n".join(format_table(r) for r in records), file=out)
        if len(records) > 1 and all("geomean_ratio" in r for r in records):
            print("\nforward+backward geometric mean of the ratio convgrad/PyTorch: " + ", ".join(
                f"{r['settings']['dtype']} {r['geomean_ratio']['both']:.2f}" for r in records), file=out)
    record = records[0] if len(records) == 1 else records  # several dtypes: a list of records, one per dtype
    if args.json:
        text = json.dumps(record, indent=1)
        if to_stdout:
            print(text)
        else:
            with open(args.json, "w") as f:
                f.write(text + "\n")
    return 0
