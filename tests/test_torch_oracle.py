"""PyTorch (2.13, CPU) as an independent oracle for the output and all three gradients.

float64: every algorithm agrees with PyTorch to 1e-10 (relative to the largest magnitude).
float32: convgrad's error against a float64 result is within a small multiple of PyTorch's own
float32 error on the same data.
"""

import random

import numpy as np
import pytest
import torch

import convgrad
from _configs import GRID, Case, max_rel, random_case, supported_pairs, torch_reference

torch.set_num_threads(1)
ALGORITHMS = convgrad.available_algorithms()
RANDOM_CASES = [random_case(random.Random(seed)) for seed in range(120)]


def _compare(case: Case, algorithm: str, dtype, seed=0):
    x, w, b = case.arrays(seed, dtype)
    y_ref = torch_reference(case, x, w, b, None)[0]
    dy = np.random.default_rng(seed + 7).standard_normal(y_ref.shape).astype(dtype)
    ref = torch_reference(case, x, w, b, dy)
    y, g = case.run(x, w, b, dy, algorithm=algorithm)
    return (y, g.input, g.weight, g.bias), ref


@pytest.mark.parametrize("case, algorithm", supported_pairs(GRID + RANDOM_CASES, ALGORITHMS))
def test_float64_matches_torch(case, algorithm):
    ours, ref = _compare(case, algorithm, np.float64)
    names = ("output", "grad_input", "grad_weight", "grad_bias")
    for name, a, r in zip(names, ours, ref):
        if r is None:
            assert a is None or not case.bias
            continue
        assert a.shape == r.shape, name
        assert a.dtype == np.float64, name
        assert max_rel(a, r) < 1e-10, f"{name}: {max_rel(a, r):.2e}"


FLOAT32_CASES = GRID[::3] + RANDOM_CASES[:40]


@pytest.mark.parametrize("case, algorithm", supported_pairs(FLOAT32_CASES, ALGORITHMS))
def test_float32_error_is_a_small_multiple_of_torch_float32_error(case, algorithm):
    x, w, b = case.arrays(3, np.float32)
    y32 = torch_reference(case, x, w, b, None)[0]
    dy = np.random.default_rng(5).standard_normal(y32.shape).astype(np.float32)
    exact = torch_reference(case, *(None if a is None else a.astype(np.float64) for a in (x, w, b)), dy.astype(np.float64))
    theirs = torch_reference(case, x, w, b, dy)
    y, g = case.run(x, w, b, dy, algorithm=algorithm)
    for name, a, t, e in zip(("output", "grad_input", "grad_weight", "grad_bias"), (y, g.input, g.weight, g.bias), theirs, exact):
        if e is None:
            continue
        assert a.dtype == np.float32, name
        # PyTorch's own float32 error, floored at a few float32 ulps of the magnitude
        budget = 8 * max(max_rel(t, e), 4 * np.finfo(np.float32).eps)
        assert max_rel(a, e) <= budget, f"{name}: ours {max_rel(a, e):.2e}, torch {max_rel(t, e):.2e}"


# -- beyond PyTorch, checked against PyTorch applied after explicit padding ---------------------------

BEYOND = [
    Case(2, 3, 4, 1, (10,), (3,), stride=2, padding="same"),
    Case(2, 3, 4, 1, (9,), (3,), stride=2, padding="same"),
    Case(2, 2, 2, 1, (11, 10), (4, 3), stride=(3, 2), padding="same", dilation=(1, 2)),
    Case(1, 2, 2, 1, (7, 7, 6), (3, 2, 3), stride=2, padding="same"),
    Case(2, 2, 3, 1, (9,), (3,), padding=((0, 2),)),
    Case(2, 2, 2, 2, (6, 7), (3, 3), stride=2, padding=((2, 0), (1, 3))),
    Case(1, 2, 2, 1, (5, 5), (3, 3), padding=((2, 1), (0, 2)), padding_mode="reflect"),
    Case(1, 2, 2, 1, (5, 5), (3, 3), stride=2, padding="same", padding_mode="circular"),
    Case(2, 2, 2, 1, (5, 5), (2, 2), stride=3, padding="same", padding_mode="replicate"),
    Case(1, 2, 2, 1, (4, 3), (3, 2), stride=2, padding=((1, 0), (0, 1)), output_padding=1, transposed=True),
]


@pytest.mark.parametrize("case, algorithm", supported_pairs(BEYOND, ALGORITHMS))
def test_beyond_pytorch_matches_torch_after_explicit_padding(case, algorithm):
    ours, ref = _compare(case, algorithm, np.float64)
    for a, r in zip(ours, ref):
        if r is not None:
            assert max_rel(a, r) < 1e-10


def test_torch_refuses_what_convgrad_accepts():
    """The beyond-PyTorch cases really are beyond it (so the test above is not vacuous)."""
    import torch.nn.functional as F

    x = torch.zeros(1, 1, 10)
    w = torch.zeros(1, 1, 3)
    with pytest.raises(RuntimeError):
        F.conv1d(x, w, stride=2, padding="same")
    with pytest.raises((RuntimeError, TypeError)):
        F.conv1d(x, w, padding=((0, 2),))
    assert convgrad.conv1d(x.numpy(), w.numpy(), stride=2, padding="same").shape == (1, 1, 5)
    assert convgrad.conv1d(x.numpy(), w.numpy(), padding=((0, 2),)).shape == (1, 1, 10)


def test_same_padding_split_matches_tensorflow_rule():
    """Pads from the REFERENCE (checked there against JAX's padtype_to_pads)."""
    from convgrad.spec import conv_spec

    assert conv_spec((1, 1, 10), (1, 1, 3), stride=2, padding="same").padding == ((0, 1),)
    assert conv_spec((1, 1, 9), (1, 1, 3), stride=2, padding="same").padding == ((1, 1),)
    assert conv_spec((1, 1, 5), (1, 1, 4), padding="same").padding == ((1, 2),)  # PyTorch: extra at the end
    assert conv_spec((1, 1, 5), (1, 1, 1), stride=3, padding="same").output_size == (2,)
    # stride > kernel: no padding needed, total clamps at 0
    assert conv_spec((1, 1, 8), (1, 1, 2), stride=4, padding="same").padding == ((0, 0),)
    assert conv_spec((1, 1, 9), (1, 1, 2), stride=4, padding="same").padding == ((0, 1),)
