"""``convgrad check``: output and gradients of one configuration against independent references."""

from __future__ import annotations

import json
import sys

from ..checking import check_configuration, format_report
from .config import add_conv_arguments, check_ranks, conv_kwargs
from .progress import progress_bar
from .types import nonnegative_int


def register(sub) -> None:
    p = sub.add_parser(
        "check",
        help="compute a convolution's output and gradients and check them against references",
        description=(
            "Compute the output and the gradients with respect to input, weight and bias for one configuration "
            "(by default the 5x100x100 input with ten 5x5x5 filters), then print the shapes and the error of each "
            "against the direct reference loops, against finite differences and, if installed, against PyTorch. "
            "Exit status 0 when every error is within the tolerance, 1 otherwise, 2 for a bad configuration."
        ),
    )
    add_conv_arguments(p, input_default="5,100,100", weight_default="10,5,5,5")
    p.add_argument("--no-bias", action="store_true", help="no bias term")
    p.add_argument("--dtype", choices=("float64", "float32", "float16"), default="float64",
                   help="dtype of the operands (float16 is computed in float32 and not compared with PyTorch)")
    p.add_argument("--algorithm", default="auto", help="algorithm to check (default auto)")
    p.add_argument("--seed", type=int, default=0, help="seed of the random operands")
    p.add_argument("--fd-entries", type=nonnegative_int, default=8, metavar="M",
                   help="entries checked one by one by finite differences")
    p.add_argument("--no-torch", action="store_true", help="skip the PyTorch comparison")
    p.add_argument("--no-progress", action="store_true", help="no progress bar (shown only on a terminal, after 1 s)")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.set_defaults(func=run)


def run(args) -> int:
    kwargs = conv_kwargs(args)
    check_ranks(args.input, args.weight)
    quiet = getattr(args, "quiet", False) or args.no_progress
    with progress_bar("checking", unit="step", enabled=not quiet) as update:
        report = check_configuration(
            args.input,
            args.weight,
            transposed=args.transposed,
            bias=not args.no_bias,
            dtype=args.dtype,
            algorithm=args.algorithm,
            seed=args.seed,
            fd_entries=args.fd_entries,
            torch_check=not args.no_torch,
            progress=update,
            **kwargs,
        )
    print(json.dumps(report.to_dict(), indent=2) if args.json else format_report(report))
    sys.stdout.flush()
    return 0 if report.ok else 1
