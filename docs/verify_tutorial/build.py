"""Write docs/verify.md: the `convgrad verify` tutorial, with the real output of every command in it.

The prose lives in ``verify.md.in`` next to this script. Two directives, each alone on a line:

``@source FILE [NAME ...]``
    the file of this folder (or only its top-level functions/classes NAME), as a Python block;
``@run FILE:FUNCTION FLAGS... => EXPECT``
    runs ``convgrad verify docs/verify_tutorial/FILE:FUNCTION FLAGS`` from the repository root and
    shows the command, its output and its exit status. ``EXPECT`` is ``ok`` (exit 0) or the bug id
    the diagnosis must name first (exit 1); the build stops if the run says otherwise, so the
    tutorial can never show a step that does not do what its prose says.

The commands run in this process through ``convgrad.cli.main`` -- the function the ``convgrad``
console script calls -- so rebuilding takes seconds rather than a Python start-up per command.
Only the "in X.X s" of each "checked N configurations" line changes between runs (and N for the
passing runs, whose random configurations stop at half the time limit);
``tests/test_verify_tutorial.py`` compares everything else.

Usage: ``python docs/verify_tutorial/build.py [--check] [--out PATH]`` (``make verify-tutorial``).
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import io
import re
import shlex
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
TEMPLATE = HERE / "verify.md.in"
OUTPUT = ROOT / "docs" / "verify.md"
REL = HERE.relative_to(ROOT).as_posix()   # docs/verify_tutorial


def source(file: str, names: list[str]) -> str:
    """The whole file, or only its top-level definitions ``names`` (in the order asked)."""
    text = (HERE / file).read_text(encoding="utf-8")
    if not names:
        return text.rstrip("\n")
    lines = text.splitlines()
    found = {node.name: node for node in ast.parse(text).body
             if isinstance(node, (ast.FunctionDef, ast.ClassDef))}
    missing = [n for n in names if n not in found]
    if missing:
        raise ValueError(f"@source {file}: no top-level definition {', '.join(missing)}")
    return "\n\n\n".join("\n".join(lines[found[n].lineno - 1:found[n].end_lineno]) for n in names)


def run(command: str) -> tuple[int, str]:
    """``convgrad verify`` on a file of this folder, from the repository root: (exit status, stdout)."""
    from convgrad.cli import main

    target, *flags = shlex.split(command)
    out, err = io.StringIO(), io.StringIO()
    with contextlib.chdir(ROOT), contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        status = main(["verify", f"{REL}/{target}", *flags])
    if err.getvalue().strip():
        raise RuntimeError(f"convgrad verify {command}: unexpected messages on stderr: {err.getvalue().strip()}")
    return status, out.getvalue().rstrip("\n")


def _checked(command: str, expect: str, status: int, output: str) -> None:
    if expect == "ok":
        if status != 0:
            raise RuntimeError(f"@run {command}: expected exit 0 (correct code), got {status}:\n{output}")
        return
    named = [line for line in output.splitlines() if line.startswith("diagnosis (most likely first): ")]
    first = named[0].split(": ", 1)[1].split(", ")[0] if named else None
    if status != 1 or first != expect:
        raise RuntimeError(f"@run {command}: expected exit 1 naming {expect!r}, got exit {status} naming "
                           f"{first!r}:\n{output}")


def render() -> str:
    """The tutorial: the template with every directive replaced by its file or its command's output."""
    parts = []
    for line in TEMPLATE.read_text(encoding="utf-8").splitlines():
        if line.startswith("@source "):
            file, *names = line.split()[1:]
            parts.append(f"```python\n# {REL}/{file}\n{source(file, names)}\n```")
        elif line.startswith("@run "):
            command, arrow, expect = line[len("@run "):].partition(" => ")
            if not arrow or not expect.strip():
                raise ValueError(f"verify.md.in: '@run' needs '=> ok' or '=> BUG_ID': {line!r}")
            status, output = run(command)
            _checked(command, expect.strip(), status, output)
            parts.append(f"```\n$ convgrad verify {REL}/{command}\n{output}\n$ echo $?\n{status}\n```")
        else:
            parts.append(line)
    return "\n".join(parts) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=OUTPUT, help="where to write the tutorial")
    parser.add_argument("--check", action="store_true",
                        help="write nothing; exit 1 if the file differs (beyond timings) from a fresh build")
    args = parser.parse_args(argv)
    text = render()
    if args.check:
        current = args.out.read_text(encoding="utf-8") if args.out.exists() else ""
        if normalize(current) != normalize(text):
            print(f"{args.out} is stale: run `make verify-tutorial`", file=sys.stderr)
            return 1
        return 0
    args.out.write_text(text, encoding="utf-8")
    print(f"wrote {args.out}")
    return 0


def normalize(text: str) -> str:
    """The tutorial without what changes between runs: timings, and the count of passing runs' configurations."""
    return re.sub(r"checked \d+ configurations in \d+(\.\d+)? s", "checked N configurations in T s", text)


if __name__ == "__main__":
    sys.exit(main())
