"""docs/questions.md is the tool's current output, and says what the numerical checks found."""

from __future__ import annotations

import re
from pathlib import Path

from convgrad.explain.questions import render_questions

DOCS = Path(__file__).resolve().parents[1] / "docs"


def test_questions_md_matches_the_tool():
    text = render_questions()
    on_disk = (DOCS / "questions.md").read_text(encoding="utf-8")
    assert on_disk == text, "docs/questions.md is stale: run `make questions` (python -m convgrad.explain.questions)"
    for image in re.findall(r"\]\((questions/[^)]+\.png)\)", text):
        assert (DOCS / image).stat().st_size > 5000, image
    # every check the document reports came out as the text claims
    assert "CHECK FAILED" not in text and "DISAGREES" not in text and "check failed" not in text
    # the corrected bounds of seed 002, and the verdicts on the formulas found wrong
    assert "i_lower = max(1, ⌈(p − f_r)/s⌉ + 1),    i_upper = min(h_new, ⌊(p − 1)/s⌋ + 1)" in text
    assert text.count("**not right**") >= 10
    for seed in ("000", "001", "002", "003", "004"):
        assert f"## {seed} — " in text
