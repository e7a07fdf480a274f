"""Plans (convgrad.plan): the plain functions' results, checked operands, nothing stale across weight updates."""

from __future__ import annotations

import random

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import convgrad
from convgrad import nn
from _configs import GRID, random_case

NEEDS = ("input", "weight", "bias")


def _plan(case, dtype=np.float64, algorithm="auto"):
    kw = case.kwargs()
    if case.transposed:
        kw["transposed"] = True
    return convgrad.plan(case.input_shape, case.weight_shape, **kw, dtype=dtype, algorithm=algorithm)


def _same(case, dtype=np.float64, seed=0, algorithm="auto", oracle=False):
    """The plan's output and gradients equal the plain functions' (same algorithm: to rounding of a
    different thread schedule at most) and, with ``oracle``, the direct reference's."""
    x, w, b = case.arrays(seed, dtype)
    p = _plan(case, dtype, algorithm)
    y = p.forward(x, w, b)
    dy = np.random.default_rng(seed + 1).standard_normal(y.shape).astype(dtype)
    g = p.backward(dy, x, w)
    y0, g0 = case.run(x, w, b, dy, algorithm=algorithm)
    tol = dict(rtol=1e-12, atol=1e-12) if dtype == np.float64 else dict(rtol=1e-5, atol=1e-5)
    assert y.shape == y0.shape and y.dtype == y0.dtype
    np.testing.assert_allclose(y, y0, **tol)
    for got, want in zip(g, g0):
        assert got.dtype == want.dtype
        np.testing.assert_allclose(got, want, **tol)
    if oracle:
        y1, g1 = case.run(x, w, b, dy, algorithm="direct")
        np.testing.assert_allclose(y, y1, rtol=1e-10, atol=1e-10)
        for got, want in zip(g, g1):
            np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-10)
    return p


@pytest.mark.parametrize("case", GRID, ids=str)
def test_plan_equals_the_functions_and_the_reference(case):
    _same(case, oracle=True)


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), ndim=st.integers(1, 3), dtype=st.sampled_from([np.float32, np.float64]))
def test_plan_equals_the_functions_on_random_configurations(seed, ndim, dtype):
    _same(random_case(random.Random(seed), ndim=ndim, max_size=6), np.dtype(dtype), seed % 1000)


@pytest.mark.parametrize("algorithm", ["gemm", "im2row", "measure"])
def test_plan_with_a_named_or_measured_algorithm(algorithm):
    convgrad.clear_algorithm_cache()
    case = next(c for c in GRID if not c.transposed and c.padding_mode == "zeros" and c.ndim == 2)
    p = _same(case, algorithm=algorithm)
    if algorithm != "measure":
        assert set(p.algorithms.values()) == {algorithm}
    assert set(p.algorithms) == {"forward", "grad_input", "grad_weight"}


def test_float16_unbatched_and_masked_backward():
    rng = np.random.default_rng(3)
    x = rng.standard_normal((3, 9, 8)).astype(np.float16)  # unbatched (C, H, W)
    w = rng.standard_normal((4, 3, 3, 3)).astype(np.float16)
    b = rng.standard_normal(4).astype(np.float16)
    p = convgrad.plan(x.shape, w.shape, padding=1, stride=2, dtype=np.float16)
    y = p.forward(x, w, b)
    np.testing.assert_array_equal(y, convgrad.conv2d(x, w, b, padding=1, stride=2))
    assert p.output_shape == y.shape == (4, 5, 4)
    dy = rng.standard_normal(y.shape).astype(np.float16)
    g = p.backward(dy, None, w, needs=("input",))  # an operand the asked gradient does not read may be None
    assert g.weight is None and g.bias is None
    np.testing.assert_array_equal(g.input, convgrad.conv_backward(dy, x, w, padding=1, stride=2, needs="input").input)
    g = p.backward(dy, x, None, needs=("weight", "bias"))
    want = convgrad.conv_backward(dy, x, w, padding=1, stride=2)
    np.testing.assert_array_equal(g.weight, want.weight)
    np.testing.assert_array_equal(g.bias, want.bias)


def test_weights_changed_in_place_are_used():
    # a plan keeps nothing computed from the weight's values: an in-place update is seen at once
    rng = np.random.default_rng(4)
    x = rng.standard_normal((2, 3, 10, 10)).astype(np.float32)
    w = rng.standard_normal((5, 3, 3, 3)).astype(np.float32)
    p = convgrad.plan(x.shape, w.shape, padding=1)
    for step in range(3):
        y = p.forward(x, w)
        np.testing.assert_array_equal(y, convgrad.conv2d(x, w, padding=1))
        dy = np.ones_like(y)
        np.testing.assert_array_equal(p.backward(dy, x, w).input, convgrad.conv_backward(dy, x, w, padding=1).input)
        w -= 0.1 * (step + 1)  # in place, as an optimizer does
        x[0, 0, 0, 0] += 1.0


def test_inputs_are_not_modified():
    rng = np.random.default_rng(5)
    x, w, b = (rng.standard_normal(s) for s in ((2, 2, 7), (3, 2, 3), (3,)))
    copies = [a.copy() for a in (x, w, b)]
    p = convgrad.plan(x.shape, w.shape, padding="same", padding_mode="reflect", dtype=np.float64)
    y = p.forward(x, w, b)
    dy = np.ones_like(y)
    dy_copy = dy.copy()
    p.backward(dy, x, w)
    for a, c in zip((x, w, b, dy), (*copies, dy_copy)):
        np.testing.assert_array_equal(a, c)


def test_operands_that_do_not_match_the_plan_are_refused():
    p = convgrad.plan((2, 3, 8, 8), (4, 3, 3, 3), padding=1)
    x, w = np.ones((2, 3, 8, 8), np.float32), np.ones((4, 3, 3, 3), np.float32)
    with pytest.raises(ValueError, match=r"ConvPlan.forward: input must have shape \(2, 3, 8, 8\).*got \(2, 3, 8, 9\)"):
        p.forward(np.ones((2, 3, 8, 9), np.float32), w)
    with pytest.raises(TypeError, match=r"ConvPlan.forward: weight must have dtype float32 .*got float64"):
        p.forward(x, w.astype(np.float64))
    with pytest.raises(TypeError, match=r"ConvPlan.forward: input must be a NumPy array .*got list"):
        p.forward(x.tolist(), w)
    with pytest.raises(ValueError, match=r"ConvPlan.forward: bias must have shape \(4,\)"):
        p.forward(x, w, np.ones(3, np.float32))
    with pytest.raises(ValueError, match=r"ConvPlan.backward: grad_output must have shape \(2, 4, 8, 8\)"):
        p.backward(np.ones((2, 4, 8, 7), np.float32), x, w)
    with pytest.raises(ValueError, match=r"ConvPlan.backward: needs entries must be from"):
        p.backward(np.ones((2, 4, 8, 8), np.float32), x, w, needs=("inputs",))


@pytest.mark.parametrize("kwargs, error, match", [
    (dict(dtype=np.int32), TypeError, "plan: dtype must be float16, float32 or float64, got int32"),
    (dict(dtype="nonsense"), TypeError, "plan: dtype must be"),
    (dict(transposed=1), TypeError, "plan: transposed must be True or False"),
    (dict(output_padding=1), ValueError, "plan: output_padding is for a transposed convolution"),
    (dict(transposed=True, padding_mode="reflect"), ValueError, "only has padding_mode='zeros'"),
    (dict(algorithm="fastest"), ValueError, "plan: algorithm must be 'auto', 'measure' or one of"),
    (dict(groups=2), ValueError, "groups=2 must divide"),
    (dict(stride=0), ValueError, "stride"),
])
def test_bad_plan_arguments(kwargs, error, match):
    with pytest.raises(error, match=match):
        convgrad.plan((2, 3, 8, 8), (4, 3, 3, 3), **kwargs)


def test_bad_plan_shapes():
    with pytest.raises(ValueError, match=r"plan: input_shape must have 4 entries .* got \(8, 8\)"):
        convgrad.plan((8, 8), (4, 3, 3, 3))
    with pytest.raises(TypeError, match="plan: input_shape must be a tuple of integers"):
        convgrad.plan("2,3,8,8", (4, 3, 3, 3))
    with pytest.raises(ValueError, match="plan: weight_shape must have at least 3 entries"):
        convgrad.plan((2, 3), (4, 3))


# ------------------------------------------------------------------------------------------------
# the nn layers: one plan per input shape, fresh weights every step
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("layer_cls, kwargs", [
    (nn.Conv2d, dict(in_channels=3, out_channels=4, kernel_size=3, padding=1, stride=2)),
    (nn.Conv1d, dict(in_channels=2, out_channels=4, kernel_size=3, groups=2, padding="same", padding_mode="circular")),
    (nn.ConvTranspose2d, dict(in_channels=3, out_channels=2, kernel_size=3, stride=2, output_padding=1)),
])
def test_layers_train_with_plans_as_with_the_functions(layer_cls, kwargs):
    rng = np.random.default_rng(6)
    layer = layer_cls(**kwargs, dtype=np.float64, rng=0)
    rank = layer._rank
    fwd = convgrad.conv_transpose if layer._transposed else convgrad.conv
    bwd = convgrad.conv_transpose_backward if layer._transposed else convgrad.conv_backward
    args = {k: v for k, v in kwargs.items() if k not in ("in_channels", "out_channels", "kernel_size")}
    for step, size in enumerate((7, 7, 9, 7)):  # a second input shape gets its own plan
        x = rng.standard_normal((2, layer.in_channels, *(size,) * rank))
        w = layer.weight.value.copy()
        b = layer.bias.value.copy()
        y = layer(x)
        np.testing.assert_allclose(y, fwd(x, w, b, **args), rtol=1e-12, atol=1e-12)
        dy = rng.standard_normal(y.shape)
        layer.zero_grad()
        dx = layer.backward(dy)
        want = bwd(dy, x, w, **args)
        np.testing.assert_allclose(dx, want.input, rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(layer.weight.grad, want.weight, rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(layer.bias.grad, want.bias, rtol=1e-12, atol=1e-12)
        layer.weight.value[...] -= 0.5 * layer.weight.grad  # in place, as SGD does: the next step must see it
        layer.bias.value[...] -= 0.5 * layer.bias.grad
    assert len(layer._plans) == 2


def test_layer_without_a_plan_promotes_and_reports_as_before():
    layer = nn.Conv2d(2, 3, 3, rng=0)  # float32 parameters
    x64 = np.random.default_rng(7).standard_normal((1, 2, 5, 5))
    y = layer(x64)  # float64 input: the plain function promotes, no plan is made
    assert y.dtype == np.float64 and not getattr(layer, "_plans", None)
    np.testing.assert_allclose(y, convgrad.conv2d(x64, layer.weight.value, layer.bias.value), rtol=1e-12)
    with pytest.raises(ValueError, match=r"^Conv2d: input must have 4 dims"):
        layer(np.ones((1, 1, 2, 5, 5), np.float32))
    with pytest.raises(ValueError, match=r"^Conv2d: .*channels"):
        layer(np.ones((1, 3, 5, 5), np.float32))


def test_a_layer_converted_to_another_dtype_gets_a_new_plan():
    layer = nn.Conv2d(2, 3, 3, rng=0)
    x = np.ones((1, 2, 5, 5), np.float32)
    assert layer(x).dtype == np.float32
    layer.to(np.float64)
    y = layer(x.astype(np.float64))
    assert y.dtype == np.float64
    np.testing.assert_allclose(y, convgrad.conv2d(x.astype(np.float64), layer.weight.value, layer.bias.value))
    assert layer.backward(np.ones_like(y)).dtype == np.float64


def test_a_plan_follows_the_settings_in_force_at_each_call():
    # auto's pick depends on the thread count and workspace limit: a plan chooses again when they change
    p = convgrad.plan((8, 16, 12, 12), (16, 16, 3, 3), padding=1)
    x = np.random.default_rng(8).standard_normal((8, 16, 12, 12)).astype(np.float32)
    w = np.random.default_rng(9).standard_normal((16, 16, 3, 3)).astype(np.float32)
    for settings_ in (dict(num_threads=1), dict(workspace_limit=2**16), dict(num_threads=2, workspace_limit=2**30)):
        with convgrad.settings(**settings_):
            y = p.forward(x, w)
            assert p.algorithms == convgrad.choose_algorithm(x.shape, w.shape, padding=1)
            np.testing.assert_allclose(y, convgrad.conv2d(x, w, padding=1), rtol=1e-5, atol=1e-5)


def test_plan_forward_takes_the_broadcasting_bias_forms():
    p = convgrad.plan((2, 3, 6, 6), (4, 3, 3, 3), padding=1, dtype=np.float64)
    rng = np.random.default_rng(3)
    x, w, b = rng.standard_normal((2, 3, 6, 6)), rng.standard_normal((4, 3, 3, 3)), rng.standard_normal(4)
    y = p.forward(x, w, b)
    for form in [(4, 1, 1), (1, 4, 1, 1)]:
        np.testing.assert_array_equal(p.forward(x, w, b.reshape(form)), y)
    with pytest.raises(ValueError, match="ConvPlan.forward: bias must have shape"):
        p.forward(x, w, b.reshape(2, 2))
