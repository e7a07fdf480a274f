"""The ``convgrad`` command line: one sub-command per module in this package.

Each sub-command module defines ``register(subparsers)``, which adds its parser and sets the
function to run as ``func`` (it receives the parsed arguments and returns the exit status).
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

#: Sub-command modules, in the order ``convgrad --help`` lists them.
COMMANDS = ("check", "verify", "train", "predict", "explain", "bench")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="convgrad",
        description="Exact convolution forward and backward passes in NumPy, and why they are what they are.",
    )
    from .. import __version__

    parser.add_argument("--version", action="version", version=f"convgrad {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name in COMMANDS:
        importlib.import_module(f"{__name__}.{name}").register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except BrokenPipeError:
        # the reader went away (`convgrad explain ... | head`): not an error of ours
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except (ValueError, TypeError) as exc:
        # A bad configuration: say what is wrong without a traceback.
        print(f"convgrad {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
