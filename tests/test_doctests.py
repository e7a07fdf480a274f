"""The Examples sections of the public functions (and of the modules that show how they work) run as tests."""

import doctest
import importlib

import pytest

import convgrad.algorithms.samplegemm
import convgrad.algorithms.winograd2d
import convgrad.algorithms.work
import convgrad.api
import convgrad.general
import convgrad.higher
import convgrad.lax
import convgrad.layout
import convgrad.nn.bn_passes
import convgrad.parallel
import convgrad.planning
import convgrad.pool_tiles
import convgrad.pooling
import convgrad.reparam

MODULES = [convgrad.api, convgrad.higher, convgrad.layout, convgrad.reparam, convgrad.parallel, convgrad.algorithms.work,
           convgrad.pooling, convgrad.general, convgrad.lax, convgrad.planning, convgrad.algorithms.samplegemm,
           convgrad.nn.bn_passes, convgrad.memory, convgrad.nn.module, convgrad.pool_tiles,
           convgrad.algorithms.winograd2d,
           importlib.import_module("convgrad.explain.general")]  # (convgrad.explain is also the function)


@pytest.mark.parametrize("module", MODULES, ids=lambda m: m.__name__)
def test_examples_in_docstrings(module):
    result = doctest.testmod(module, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0, f"{module.__name__} has no examples"
    assert result.failed == 0


def test_every_public_function_has_its_own_examples():
    for name in convgrad.api.__all__:
        obj = getattr(convgrad.api, name)
        if callable(obj) and name != "Gradients":
            assert obj.__name__ == name and "Examples\n    --------\n    >>>" in obj.__doc__, name
    for name in convgrad.pooling.__all__:
        assert "Examples\n    --------\n    >>>" in getattr(convgrad.pooling, name).__doc__, name


def test_an_unknown_keyword_names_the_public_function():
    with pytest.raises(TypeError, match=r"^conv2d\(\) got an unexpected keyword argument 'strides'"):
        convgrad.conv2d([[[[1.0]]]], [[[[1.0]]]], strides=2)
