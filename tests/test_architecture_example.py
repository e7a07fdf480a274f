"""docs/architecture.md's worked example of a new algorithm works as the page says: one file, registered
by itself, accepted by name, refused with its reason outside its regime, exact against ``direct``."""

import re
import sys
import types
from pathlib import Path

import numpy as np
import pytest

import convgrad
from convgrad import algorithms
from convgrad.algorithms import costmodel
from convgrad.algorithms.registry import REGISTRY
from _configs import GRID, case_of, supported_pairs
from test_algorithms import check_against_direct

DOC = Path(__file__).resolve().parents[1] / "docs" / "architecture.md"


@pytest.fixture
def rowsum(monkeypatch):
    code = re.search(r"```python\n# src/convgrad/algorithms/rowsum.py\n(.*?)```", DOC.read_text(), re.S).group(1)
    module = types.ModuleType("convgrad.algorithms.rowsum")
    module.__package__ = "convgrad.algorithms"
    sys.modules[module.__name__] = module
    # and its coefficients, as the page says
    monkeypatch.setitem(costmodel.COEFFICIENTS, "rowsum", 0)
    monkeypatch.setitem(costmodel.SETUP, "rowsum", 0)
    try:
        exec(compile(code, str(DOC), "exec"), module.__dict__)  # noqa: S102 - the page's own example
        yield REGISTRY["rowsum"]
    finally:
        REGISTRY.pop("rowsum", None)
        sys.modules.pop(module.__name__, None)
        convgrad.clear_algorithm_cache()


def test_the_worked_example_registers_itself_and_is_exact(rowsum):
    assert "rowsum" in convgrad.available_algorithms()
    for spec in rowsum.examples():
        assert check_against_direct(case_of(spec), "rowsum")
    pairs = supported_pairs(GRID, ["rowsum"])
    assert pairs and all(check_against_direct(p.values[0], "rowsum") for p in pairs)
    with pytest.raises(ValueError, match="rowsum.*1x1 kernel"):
        convgrad.conv2d(np.ones((1, 1, 4, 4)), np.ones((1, 1, 3, 3)), algorithm="rowsum")
    assert algorithms.get_algorithm("rowsum").work(rowsum.examples()[0], "forward").gemm > 0
