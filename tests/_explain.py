"""Helpers shared by the explain tests (and scripts/check_framework_snippets.py)."""

from __future__ import annotations

import random

from convgrad.explain import explain
from _configs import GRID, Case, random_case


def explanation_of(case: Case):
    """``convgrad.explain`` of a test configuration."""
    if case.transposed:
        return explain(case.input_shape, case.weight_shape, case.stride, case.padding, case.dilation, case.groups,
                       transposed=True, output_padding=case.output_padding)
    return explain(case.input_shape, case.weight_shape, case.stride, case.padding, case.dilation, case.groups,
                   case.padding_mode)


def grid_and_random(extra: int, seed: int, max_size: int = 6) -> list[Case]:
    """The grid's non-empty-batch cases and ``extra`` random ones (fixed seed)."""
    cases = [c for c in GRID if c.batch > 0]
    rng = random.Random(seed)
    while len(cases) < len([c for c in GRID if c.batch > 0]) + extra:
        c = random_case(rng, max_size=max_size)
        if c.batch > 0:
            cases.append(c)
    return cases
