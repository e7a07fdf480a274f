"""docs/questions.md is the tool's current output, and says what the numerical checks found."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

DOCS = Path(__file__).resolve().parents[1] / "docs"


def _tool():
    """docs/tools/questions.py, the docs tooling that writes docs/questions.md (not part of the library)."""
    spec = importlib.util.spec_from_file_location("convgrad_docs_questions", DOCS / "tools" / "questions.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_questions_md_matches_the_tool():
    text = _tool().render_questions()
    on_disk = (DOCS / "questions.md").read_text(encoding="utf-8")
    assert on_disk == text, "docs/questions.md is stale: run `make questions` (python docs/tools/questions.py)"
    for image in re.findall(r"\]\((questions/[^)]+\.png)\)", text):
        assert (DOCS / image).stat().st_size > 5000, image
    # every check the document reports came out as the text claims
    # (prose resting on a check that failed is marked "CHECK FAILED"; a comparison that failed says
    # "disagrees with convgrad", which only a formula judged **not right** may do)
    assert "check failed" not in text.lower()
    for line in text.splitlines():
        if "disagrees with convgrad" in line:
            assert "**not right**" in line, line
    # the corrected bounds of seed 002, and the verdicts on the formulas found wrong
    assert "i_lower = max(1, ⌈(p − f_r)/s⌉ + 1),    i_upper = min(h_new, ⌊(p − 1)/s⌋ + 1)" in text
    assert text.count("**not right**") >= 10
    for seed in ("000", "001", "002", "003", "004"):
        assert f"## {seed} — " in text
