"""The ``convgrad`` command line: one sub-command per module in this package.

Each sub-command module defines ``register(subparsers)``, which adds its parser and sets the
function to run as ``func`` (it receives the parsed arguments and returns the exit status).
Adding a sub-command is one entry in :data:`COMMANDS`.

A user's mistake never ends in a traceback: a bad flag value or configuration (``ValueError``,
``TypeError``), a file that cannot be read or written (``OSError``) and a missing optional
dependency each give one line ``convgrad COMMAND: error: ...`` and exit status 2; Ctrl-C gives one
line and exit status 130 (128 + SIGINT, as a shell reports it). :func:`main` returns the exit
status in every case (argparse's own exits included) instead of raising ``SystemExit``.
"""

from __future__ import annotations

import argparse
import difflib
import importlib
import os
import sys

#: Sub-command modules, in the order ``convgrad --help`` lists them.
COMMANDS = [
    "check",
    "verify",
    "train",
    "predict",
    "explain",
    "bench",
]

#: The extra that installs each optional dependency (top-level module name -> extra).
EXTRAS = {"sklearn": "train", "tqdm": "train", "threadpoolctl": "train", "matplotlib": "train", "PIL": "train",
          "torch": "bench", "scipy": "fft"}
#: Sub-commands whose pictures come with another extra than ``train``'s.
PICTURE_EXTRA = {"explain": "explain"}

QUIET_HELP = "no progress bars and no report lines: only results, warnings and errors"
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows each flag's default (``(default: ...)``) unless its help already says it."""

    def _get_help_string(self, action):
        text = action.help or ""
        if "default" in text or action.default in (None, False, argparse.SUPPRESS) or not action.option_strings:
            return text
        return super()._get_help_string(action)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="convgrad",
        description="Exact convolution forward and backward passes in NumPy, and why they are what they are.",
    )
    from .. import __version__

    parser.add_argument("--version", action="version", version=f"convgrad {__version__}")
    parser.add_argument("-q", "--quiet", action="store_true", help=QUIET_HELP)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_SubParser)
    sub.required = True
    for name in COMMANDS:
        importlib.import_module(f"{__name__}.{name}").register(sub)
    for p in sub.choices.values():  # -q also after the sub-command (SUPPRESS: never overrides the global one)
        p.add_argument("-q", "--quiet", action="store_true", default=argparse.SUPPRESS, help=QUIET_HELP)
    parser.subcommands = sub.choices  # name -> its parser, for errors found after parsing
    return parser


class _SubParser(argparse.ArgumentParser):
    """A sub-command's parser: its flags' help shows their defaults."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("formatter_class", HelpFormatter)
        super().__init__(*args, **kwargs)


def _unrecognized(parser: argparse.ArgumentParser, extra: list[str]) -> None:
    """Exit with the sub-command's usage and the unknown flags (with the nearest known flag)."""
    known = [s for action in parser._actions for s in action.option_strings]
    message = f"unrecognized arguments: {' '.join(extra)}"
    flag = next((e.split("=", 1)[0] for e in extra if e.startswith("-")), None)
    close = difflib.get_close_matches(flag, known, n=1) if flag else []
    if close:
        message += f" (did you mean {close[0]}?)"
    parser.error(message)


def _missing_dependency(exc: ModuleNotFoundError, command: str) -> str | None:
    top = (exc.name or "").split(".")[0]
    if top not in EXTRAS:
        return None
    extra = PICTURE_EXTRA.get(command, EXTRAS[top]) if top in ("matplotlib", "PIL") else EXTRAS[top]
    return f"this needs {top}, which is not installed: pip install 'convgrad[{extra}]'"


def _named_command(argv: list[str] | None) -> str:
    """The sub-command ``argv`` names, read before parsing (a Ctrl-C during start-up still names it), or ``?``."""
    return next((a for a in (sys.argv[1:] if argv is None else argv) if a in COMMANDS), "?")


def main(argv: list[str] | None = None) -> int:
    command = _named_command(argv)
    try:
        parser = build_parser()
        args, extra = parser.parse_known_args(argv)
        command = args.command
        if extra:
            _unrecognized(parser.subcommands[command], extra)
        return int(args.func(args) or 0)
    except SystemExit as exc:
        # argparse's own exits (--help: 0; a bad flag: 2, after the sub-command's usage): a status, as every path
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else EXIT_USAGE)
    except KeyboardInterrupt:
        print(f"\nconvgrad {command}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # the reader went away (`convgrad explain ... | head`): not an error of ours
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except ImportError as exc:
        # a missing optional dependency: named with the extra that installs it
        message = _missing_dependency(exc, command) if isinstance(exc, ModuleNotFoundError) else None
        if message is None and "pip install" in str(exc):
            message = str(exc)  # convgrad's own message for it
        if message is None:
            raise
        print(f"convgrad {command}: error: {message}", file=sys.stderr)
        return EXIT_USAGE
    except (ValueError, TypeError) as exc:
        # A bad configuration: say what is wrong without a traceback.
        print(f"convgrad {command}: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except OSError as exc:
        # A file the user named cannot be read or written.
        where = f"{exc.filename}: " if exc.filename else ""
        print(f"convgrad {command}: error: {where}{exc.strerror or exc}", file=sys.stderr)
        return EXIT_USAGE


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
