"""``convgrad check``: output and gradients of one configuration against independent references."""

from __future__ import annotations

import json

from ..checking import check_configuration, format_report
from .config import add_conv_arguments, conv_kwargs


def register(sub) -> None:
    p = sub.add_parser(
        "check",
        help="compute a convolution's output and gradients and check them against references",
        description=(
            "Compute the output and the gradients with respect to input, weight and bias for one configuration "
            "(by default the 5x100x100 input with ten 5x5x5 filters), then print the shapes and the error of each "
            "against the direct reference loops, against finite differences and, if installed, against PyTorch."
        ),
    )
    add_conv_arguments(p, input_default="5,100,100", weight_default="10,5,5,5")
    p.add_argument("--no-bias", action="store_true", help="no bias term")
    p.add_argument("--dtype", choices=("float64", "float32", "float16"), default="float64")
    p.add_argument("--algorithm", default="auto", help="algorithm to check (default auto)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--fd-entries", type=int, default=8, metavar="M", help="entries checked one by one by finite differences")
    p.add_argument("--no-torch", action="store_true", help="skip the PyTorch comparison")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.set_defaults(func=run)


def run(args) -> int:
    kwargs = conv_kwargs(args)
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
        **kwargs,
    )
    print(json.dumps(report.to_dict(), indent=2) if args.json else format_report(report))
    return 0 if report.ok else 1
