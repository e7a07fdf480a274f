"""docs/verify.md is the current output of its generator, and the README's verify section tells the truth."""

from __future__ import annotations

import ast
import importlib.util
import re
from pathlib import Path

import numpy as np
import pytest

import convgrad
from convgrad.verify import BUGS

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
TUTORIAL = ROOT / "docs" / "verify.md"


def _build_module():
    spec = importlib.util.spec_from_file_location("verify_tutorial_build", ROOT / "docs" / "verify_tutorial" / "build.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def build():
    return _build_module()


def test_docs_verify_md_is_current(build):
    fresh = build.render()   # every `convgrad verify` command in it run again (the only slow test here)
    on_disk = TUTORIAL.read_text(encoding="utf-8")
    assert build.normalize(on_disk) == build.normalize(fresh), (
        "docs/verify.md is stale: run `make verify-tutorial` (python docs/verify_tutorial/build.py)")


def test_normalize_hides_only_the_timing_line(build):
    line = "checked 25 configurations in 0.6 s\nFAIL: grad_input"
    assert build.normalize(line) == build.normalize("checked 53 configurations in 12.0 s\nFAIL: grad_input")
    assert build.normalize(line) != build.normalize("checked 25 configurations in 0.6 s\nOK")


def test_the_tutorial_shows_every_step_and_its_verdict():
    fresh = TUTORIAL.read_text(encoding="utf-8")   # the test above checks it is what the commands print
    runs = re.findall(r"^\$ convgrad verify (\S+) .*\n(?:.*\n)*?\$ echo \$\?\n(\d)$", fresh, flags=re.M)
    assert len(runs) == 12
    statuses = {target: int(status) for target, status in runs}
    assert statuses["docs/verify_tutorial/step2_backward_loops.py:conv_backward"] == 1
    assert statuses["docs/verify_tutorial/step3_backward_fixed.py:conv_backward"] == 0
    named = re.findall(r"^diagnosis \(most likely first\): (\w+)", fresh, flags=re.M)
    assert named == ["stride", "overlap_accumulate", "padding_crop", "unread_tail"]
    assert "/work/" not in fresh and str(ROOT) not in fresh   # paths relative to the repository


def test_a_run_that_contradicts_its_expectation_stops_the_build(build):
    with pytest.raises(RuntimeError, match="naming 'stride'"):
        build._checked("x.py:f", "overlap_accumulate", 1, "diagnosis (most likely first): stride")
    with pytest.raises(RuntimeError, match="expected exit 0"):
        build._checked("x.py:f", "ok", 1, "FAIL")
    with pytest.raises(ValueError, match="no top-level definition nope"):
        build.source("step1_forward_loops.py", ["nope"])


def _run_and_check_claims(block: str, where: Path) -> int:
    """Run ``block``; every bare expression commented with a literal must equal it, strings included."""
    namespace: dict = {"np": np, "convgrad": convgrad}
    exec(compile(block, str(where), "exec"), namespace)  # noqa: S102 - our own documents
    claims = [line.split("  # ", 1) for line in block.splitlines() if re.search(r"  # [({]", line)]
    for code, comment in claims:
        assert eval(code.strip(), namespace) == ast.literal_eval(comment.strip()), code  # noqa: S307
    return len(claims)


def test_the_tutorials_python_example_shows_true_values(tmp_path, monkeypatch):
    pytest.importorskip("matplotlib")   # it draws the figure
    block = re.search(r"## From Python\n.*?```python\n(.*?)```", TUTORIAL.read_text(encoding="utf-8"), flags=re.S).group(1)
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(ROOT / "docs" / "verify_tutorial"))
    assert _run_and_check_claims(block, TUTORIAL) == 2
    assert (tmp_path / "wrong.png").stat().st_size > 0


def test_the_readme_python_example_shows_true_values():
    # test_readme.py runs it too, but compares only the numbers of a commented tuple
    block = re.search(r"```python\n(.*?)```", _readme_section(), flags=re.S).group(1)
    assert _run_and_check_claims(block, README) == 2


def _readme_section() -> str:
    text = README.read_text(encoding="utf-8")
    start = text.index("## Checking your own code (`convgrad verify`)")
    return text[start:text.index("\n## ", start + 1)]


def test_readme_bug_table_lists_exactly_the_ids_verify_names():
    table = re.search(r"^\| id \| the mistake \|\n\|---\|---\|\n((?:\|.*\n)+)", _readme_section(), flags=re.M).group(1)
    ids = re.findall(r"^\| `(\w+)` \|", table, flags=re.M)
    assert ids == list(BUGS)
    assert len(table.splitlines()) == len(BUGS)


def test_readme_section_follows_checking_a_configuration_and_links_the_tutorial():
    text = README.read_text(encoding="utf-8")
    assert text.index("## Checking a configuration") < text.index("## Checking your own code") < text.index(
        "## Explaining a configuration")
    assert "(docs/verify.md)" in _readme_section()
    assert re.search(r"^\| `verify\(\.\.\.\)` \|", text, flags=re.M)   # in the function table


def test_readme_output_excerpt_is_real_output_from_the_tutorial():
    section = _readme_section()
    excerpt = re.search(r"```\n\$ convgrad verify (.*?)\n(.*?)```", section, flags=re.S)
    tutorial = TUTORIAL.read_text(encoding="utf-8")
    assert f"$ convgrad verify {excerpt.group(1)}\n" in tutorial
    shown = [line for line in excerpt.group(2).splitlines() if line.strip() not in ("...", "")]
    assert len(shown) >= 5
    for line in shown:
        if line.startswith("checked "):
            line = re.sub(r"in \d+(\.\d+)? s", "in", line).rsplit(" in", 1)[0]
        assert line in tutorial, line


def test_readme_lists_every_cli_flag():
    section = _readme_section()
    for flag in ("--op", "--dims", "--channels-last", "--per-dim", "--padding", "--dtype", "--seed",
                 "--time-limit", "--json", "--figure"):
        assert f"`{flag}" in section, flag
