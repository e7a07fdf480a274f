"""The README's Python examples run as written, and the values their comments show are the real ones.

The blocks run in order in one namespace (as a reader pasting them into one session would), in a
temporary directory (they write figures). A line that is a bare expression with a comment showing
a shape, tuple or string is checked against the value it evaluates to.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import numpy as np
import pytest

import convgrad

README = Path(__file__).resolve().parent.parent / "README.md"


def _blocks() -> list[str]:
    return re.findall(r"^```python\n(.*?)^```", README.read_text(), flags=re.S | re.M)


def _claims(block: str):
    """(expression source, comment) for each bare-expression line whose comment shows a value."""
    for line in block.splitlines():
        code, sep, comment = line.partition("  # ")
        comment = comment.strip()
        if not sep or not code.strip() or comment[:1] not in "(['":
            continue
        try:
            node = ast.parse(code.strip())
        except SyntaxError:
            continue
        if len(node.body) == 1 and isinstance(node.body[0], ast.Expr):
            yield code.strip(), comment


def test_the_readme_has_the_examples_this_test_runs():
    blocks = _blocks()
    assert len(blocks) >= 5
    assert sum(1 for b in blocks for _ in _claims(b)) >= 6


def test_readme_examples_run_and_show_true_values(tmp_path, monkeypatch):
    pytest.importorskip("matplotlib")  # the explain example writes a figure
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    checked = 0
    with convgrad.settings(num_threads=1):
        for block in _blocks():
            exec(compile(block, str(README), "exec"), namespace)  # noqa: S102 - our own README
            for code, comment in _claims(block):
                value = eval(code, namespace)  # noqa: S307
                if comment.startswith("'"):
                    shown = ast.literal_eval(comment.split("'")[0] + "'" + comment.split("'")[1] + "'")
                    assert value == shown, (code, value, comment)
                else:
                    # a shape or tuple, possibly followed by words: compare the numbers and Nones
                    head = re.match(r"[\[(][^:]*?[\])](?=\s|:|$)|\([^)]*\)(\s*\([^)]*\))*", comment).group(0)
                    expect = re.findall(r"\d+|None", head)
                    got = re.findall(r"\d+|None", repr(value))[: len(expect)]
                    assert got == expect, (code, value, comment)
                checked += 1
    assert checked >= 6
    assert (tmp_path / "dw.png").stat().st_size > 0 and (tmp_path / "page.html").stat().st_size > 0
    assert np.all(np.isfinite(namespace["g"].weight))
