"""``convgrad verify FILE.py:FUNCTION``: check the user's own convolution code and name its bug."""

from __future__ import annotations

import contextlib
import importlib.util
import inspect
import json
import os
import sys
import traceback

from ..verify import verify
from ..verify.cases import OPS

EXIT_OK, EXIT_BUG, EXIT_USAGE = 0, 1, 2


class UsageError(Exception):
    """A mistake in the command line: one line, exit 2."""


def register(sub) -> None:
    p = sub.add_parser(
        "verify",
        help="check your own convolution forward/backward code against exact results and name its bug",
        description=(
            "Run FUNCTION from FILE.py over small configurations chosen to hit every place where hand-written "
            "convolution code commonly goes wrong, compare every element with convgrad's exact result, shrink the "
            "first failure to a minimal configuration, show where the wrong numbers are and name the likely "
            "mistake with its fix. Exit 0 when correct, 1 when a bug was found, 2 for a usage error."
        ),
    )
    p.add_argument("target", metavar="FILE.py:FUNCTION", help="the file and the function in it to check")
    p.add_argument("--op", choices=OPS, required=True,
                   help="what FUNCTION computes: forward fn(x, w[, b], ...) -> y; backward fn(dy, x, w, ...) -> "
                        "(dx, dw[, db]); the transposed ops likewise with PyTorch's (C_in, C_out/groups, *k) weight")
    p.add_argument("--dims", type=int, choices=(1, 2, 3), default=2, help="number of spatial dims")
    p.add_argument("--channels-last", action="store_true",
                   help="arrays (N, *spatial, C) and weights (*k, C_in/groups, C_out) (TensorFlow/Keras HWIO)")
    p.add_argument("--per-dim", action="store_true",
                   help="pass stride/padding/dilation as per-dim tuples (values that differ between dims too)")
    p.add_argument("--padding", default="int", metavar="FORMS",
                   help="what padding values to pass, comma-separated from int, same, valid")
    p.add_argument("--dtype", choices=("float64", "float32"), default="float64", help="operands' dtype")
    p.add_argument("--seed", type=int, default=0, help="seed of the random operands")
    p.add_argument("--time-limit", type=float, default=30.0, metavar="SECONDS",
                   help="seconds for the whole check (a call that does not return in time is a failure)")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.add_argument("--figure", metavar="PATH.png", help="also draw the wrong elements (needs matplotlib)")
    p.set_defaults(func=run)


def load_function(target: str):
    """``FILE.py:FUNCTION`` -> the function (``a.b`` for a method of a class instance is not supported)."""
    path, sep, name = target.rpartition(":")
    if not sep or not path or not name:
        raise UsageError(f"expected FILE.py:FUNCTION, got {target!r}")
    if not os.path.isfile(path):
        raise UsageError(f"no such file: {path}")
    module_name = os.path.splitext(os.path.basename(path))[0] or "user_code"
    directory = os.path.dirname(os.path.abspath(path))
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise UsageError(f"{path} is not a Python file")
    module = importlib.util.module_from_spec(spec)
    sys.path.insert(0, directory)  # the user's own imports of neighbouring files
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except (Exception, SystemExit) as exc:  # the user's file failed to import: say where, no traceback
        frames = [f for f in traceback.extract_tb(exc.__traceback__) if os.path.abspath(f.filename) == os.path.abspath(path)]
        where = f" at line {frames[-1].lineno}" if frames else ""
        if isinstance(exc, SyntaxError):
            where = f" at line {exc.lineno}"
        raise UsageError(f"{path} failed to import{where}: {type(exc).__name__}: {exc}") from None
    fn = module
    for part in name.split("."):
        if not hasattr(fn, part):
            defined = sorted(k for k, v in vars(module).items() if callable(v) and not k.startswith("_")
                             and getattr(v, "__module__", None) == module_name)
            raise UsageError(f"{path} has no function {name!r}" + (f" (it defines: {', '.join(defined)})" if defined else ""))
        fn = getattr(fn, part)
    if inspect.isclass(fn):
        raise UsageError(f"{name!r} in {path} is a class; pass a function (for a layer class, a few-line adapter "
                         "that builds the layer and calls forward/backward: see docs/verify.md)")
    if not callable(fn):
        raise UsageError(f"{name!r} in {path} is a {type(fn).__name__}, not a function")
    return fn


def run(args) -> int:
    forms = tuple(f.strip() for f in args.padding.split(",") if f.strip())
    bad = [f for f in forms if f not in ("int", "same", "valid")] or ([] if forms else ["(nothing)"])
    if bad:
        return _usage(f"--padding: expected a comma-separated list of int, same, valid, got {args.padding!r}")
    if not args.time_limit > 0:
        return _usage(f"--time-limit: expected a positive number of seconds, got {args.time_limit}")
    if args.seed < 0:
        return _usage(f"--seed: expected a non-negative integer, got {args.seed}")
    if args.figure:
        folder = os.path.dirname(os.path.abspath(args.figure))
        if not args.figure.lower().endswith(".png"):
            return _usage(f"--figure: expected a .png path, got {args.figure!r}")
        if not os.path.isdir(folder) or not os.access(folder, os.W_OK):
            return _usage(f"--figure: folder {folder} does not exist or is not writable")
    try:
        with contextlib.redirect_stdout(sys.stderr):   # what the user's file prints must not mix with the report
            fn = load_function(args.target)
    except UsageError as exc:
        return _usage(str(exc))
    show = sys.stderr.isatty() and not getattr(args, "quiet", False)

    def progress(checked: int, phase: str) -> None:
        if show:
            word = "checking configurations" if phase == "sweep" else "shrinking the failure"
            print(f"\rconvgrad verify: {word}: {checked} run", end="", file=sys.stderr, flush=True)

    try:
        with contextlib.redirect_stdout(sys.stderr):   # prints of the user's code go to stderr (--json stays JSON)
            report = verify(fn, args.op, dims=args.dims, channels_last=args.channels_last, per_dim=args.per_dim,
                            dtype=args.dtype, seed=args.seed, time_limit=args.time_limit, padding_forms=forms,
                            progress=progress)
    except (TypeError, ValueError) as exc:
        if show:
            print("\r\033[K", end="", file=sys.stderr)
        return _usage(str(exc))
    if show:
        print("\r\033[K", end="", file=sys.stderr, flush=True)
    print(json.dumps(report.to_dict(), indent=2) if args.json else report.text())
    if args.figure and not report.ok:
        try:
            report.figure(args.figure)
            print(f"wrote {args.figure}", file=sys.stderr)
        except (ImportError, ValueError) as exc:
            print(f"convgrad verify: no figure: {exc}", file=sys.stderr)
    return EXIT_OK if report.ok else EXIT_BUG


def _usage(message: str) -> int:
    print(f"convgrad verify: error: {message}", file=sys.stderr)
    return EXIT_USAGE
