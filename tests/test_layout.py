"""Channels-last data and ``…IO`` weights (``data_format`` / ``weight_format``) against PyTorch.

The caller's arrays are built channels last (C-contiguous, as a Keras or JAX user holds them);
PyTorch computes on the same numbers permuted to its layout here, in the test, with explicit axis
tuples that share nothing with ``convgrad.layout``; results are permuted back and compared in
float64 to 1e-10. Covers every public functional op, 1-3 spatial dims, groups, transposed
convolutions, every padding mode (the shared grid of ``_configs``), the unbatched form, the native
1x1 path, inputs left unmodified, and the errors.
"""

import itertools
import random

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import convgrad
from _configs import GRID, Case, max_rel, random_case, torch_reference
from convgrad.verify import expected

torch.set_num_threads(1)
FORMATS = [("channels_last", "IO"), ("channels_last", "OI"), ("channels_first", "IO")]


def _last(a: np.ndarray) -> np.ndarray:
    """(N, C, *S) -> contiguous (N, *S, C)."""
    return np.ascontiguousarray(np.transpose(a, (0, *range(2, a.ndim), 1)))


def _first(a: np.ndarray) -> np.ndarray:
    """(N, *S, C) -> (N, C, *S)."""
    return np.transpose(a, (0, a.ndim - 1, *range(1, a.ndim - 1)))


def _io(w: np.ndarray) -> np.ndarray:
    """(A, B, *K) -> contiguous (*K, B, A)."""
    return np.ascontiguousarray(np.transpose(w, (*range(2, w.ndim), 1, 0)))


def _oi(w: np.ndarray) -> np.ndarray:
    """(*K, B, A) -> (A, B, *K)."""
    n = w.ndim
    return np.transpose(w, (n - 1, n - 2, *range(n - 2)))


def _caller(case: Case, data_format: str, weight_format: str, seed: int = 0, dtype=np.float64):
    """PyTorch-layout ``x, w, b, dy`` and the same numbers in the caller's layout."""
    x, w, b = case.arrays(seed, dtype)
    y = torch_reference(case, x, w, b, None)[0]
    dy = np.random.default_rng(seed + 1).standard_normal(y.shape).astype(dtype)
    last = data_format in ("channels_last", "NWC", "NHWC", "NDHWC")
    to_data = _last if last else np.ascontiguousarray
    to_weight = _io if weight_format.endswith("IO") else np.ascontiguousarray
    return (x, w, b, dy), (to_data(x), to_weight(w), b, to_data(dy))


def _back(a, data_format, weight=False, weight_format="OI"):
    """The caller's result in PyTorch's layout."""
    if weight:
        return _oi(a) if weight_format.endswith("IO") else a
    return _first(a) if data_format in ("channels_last", "NWC", "NHWC", "NDHWC") else a


def _check(case: Case, data_format: str, weight_format: str, seed: int = 0):
    (x, w, b, dy), (xc, wc, bc, dyc) = _caller(case, data_format, weight_format, seed)
    ref = torch_reference(case, x, w, b, dy)
    kw = dict(case.kwargs(), data_format=data_format, weight_format=weight_format)
    copies = [a.copy() for a in (xc, wc, dyc)]
    if case.transposed:
        y = convgrad.conv_transpose(xc, wc, bc, **kw)
        g = convgrad.conv_transpose_backward(dyc, xc, wc, **kw)
    else:
        y = convgrad.conv(xc, wc, bc, **kw)
        g = convgrad.conv_backward(dyc, xc, wc, **kw)
    for a, c in zip((xc, wc, dyc), copies):
        np.testing.assert_array_equal(a, c)  # inputs never modified
    ours = (_back(y, data_format), _back(g.input, data_format), _back(g.weight, data_format, True, weight_format),
            g.bias)
    for name, a, r in zip(("output", "grad_input", "grad_weight", "grad_bias"), ours, ref):
        if r is None:
            continue
        assert a.shape == r.shape, name
        assert max_rel(a, r) < 1e-10, f"{name}: {max_rel(a, r):.2e}"
    return y, g


def _named(nd: int) -> tuple[str, str]:
    """The rank-specific names of channels last and IO: ("NWC", "WIO"), ("NHWC", "HWIO"), ("NDHWC", "DHWIO")."""
    return ("NWC", "NHWC", "NDHWC")[nd - 1], ("WIO", "HWIO", "DHWIO")[nd - 1]


@pytest.mark.parametrize("case, formats", [(c, FORMATS[i % 3]) for i, c in enumerate(GRID)] +
                         [(c, _named(c.ndim)) for c in GRID[::6]], ids=str)
def test_every_grid_case_matches_torch_in_the_callers_layout(case, formats):
    _check(case, *formats)


@settings(max_examples=15)
@given(seed=st.integers(0, 10**6), which=st.integers(0, 2))
def test_random_configurations_match_torch(seed, which):
    case = random_case(random.Random(seed))
    _check(case, *FORMATS[which], seed=seed % 1000)


def test_results_are_in_the_callers_shapes():
    x, w = np.ones((2, 7, 6, 3)), np.ones((3, 3, 3, 8))  # NHWC, HWIO
    y = convgrad.conv2d(x, w, padding=1, stride=(2, 1), data_format="NHWC", weight_format="HWIO")
    assert y.shape == (2, 4, 6, 8)
    g = convgrad.conv_backward(np.ones(y.shape), x, w, padding=1, stride=(2, 1), data_format="channels_last",
                               weight_format="IO")
    assert g.input.shape == x.shape and g.weight.shape == w.shape and g.bias.shape == (8,)
    t = convgrad.conv_transpose2d(np.ones((2, 4, 5, 6)), np.ones((3, 3, 2, 6)), stride=2, data_format="NHWC",
                                  weight_format="HWIO")   # (*k, C_out/g, C_in): TF's conv2d_transpose filter
    assert t.shape == (2, 9, 11, 2)


@pytest.mark.parametrize("transposed", [False, True])
@pytest.mark.parametrize("nd", [1, 2, 3])
def test_unbatched_channels_last(nd, transposed):
    case = Case(1, 4, 6, 2, (5, 4, 3)[:nd], (3, 2, 2)[:nd], stride=2, padding=1, transposed=transposed)
    (x, w, b, dy), (xc, wc, _, dyc) = _caller(case, "channels_last", "IO")
    ref = torch_reference(case, x, w, b, dy)
    kw = dict(case.kwargs(), data_format="channels_last", weight_format="IO")
    fwd, bwd = ((convgrad.conv_transpose, convgrad.conv_transpose_backward) if transposed
                else (convgrad.conv, convgrad.conv_backward))
    y = fwd(xc[0], wc, b, **kw)   # (*S, C)
    g = bwd(dyc[0], xc[0], wc, **kw)
    assert max_rel(_first(y[None]), ref[0]) < 1e-10
    assert max_rel(_first(g.input[None]), ref[1]) < 1e-10
    assert max_rel(_oi(g.weight), ref[2]) < 1e-10


PER_RANK = {1: (convgrad.conv1d, convgrad.conv1d_input, convgrad.conv1d_weight, convgrad.conv_transpose1d),
            2: (convgrad.conv2d, convgrad.conv2d_input, convgrad.conv2d_weight, convgrad.conv_transpose2d),
            3: (convgrad.conv3d, convgrad.conv3d_input, convgrad.conv3d_weight, convgrad.conv_transpose3d)}


@pytest.mark.parametrize("nd, named", [(1, False), (2, False), (3, False), (1, True), (2, True), (3, True)])
def test_rank_functions_and_shape_arguments(nd, named):
    """conv{1,2,3}d, their _input/_weight (shapes in the caller's layout) and conv_transpose{1,2,3}d."""
    data, weight = _named(nd) if named else ("channels_last", "IO")
    conv, conv_in, conv_w, conv_t = PER_RANK[nd]
    case = Case(2, 4, 6, 2, (6, 5, 4)[:nd], (3, 2, 2)[:nd], stride=2, padding=1, dilation=(1, 2, 1)[:nd])
    (x, w, b, dy), (xc, wc, _, dyc) = _caller(case, "channels_last", "IO")
    ref = torch_reference(case, x, w, b, dy)
    kw = dict(stride=2, padding=1, dilation=(1, 2, 1)[:nd], groups=2, data_format=data, weight_format=weight)
    assert max_rel(_first(conv(xc, wc, b, **kw)), ref[0]) < 1e-10
    assert max_rel(_first(conv_in(xc.shape, wc, dyc, **kw)), ref[1]) < 1e-10
    assert max_rel(_oi(conv_w(xc, wc.shape, dyc, **kw)), ref[2]) < 1e-10
    assert max_rel(_first(convgrad.conv_input(xc.shape, wc, dyc, **kw)), ref[1]) < 1e-10
    assert max_rel(_oi(convgrad.conv_weight(xc, wc.shape, dyc, **kw)), ref[2]) < 1e-10
    tcase = Case(2, 6, 4, 2, dy.shape[2:], case.kernel,
                 stride=2, padding=1, dilation=case.dilation, transposed=True)
    (tx, tw, tb, _), (txc, twc, _, _) = _caller(tcase, "channels_last", "IO")
    tref = torch_reference(tcase, tx, tw, tb, None)[0]
    assert max_rel(_first(conv_t(txc, twc, tb, stride=2, padding=1, dilation=case.dilation, groups=2,
                                 data_format=data, weight_format=weight)), tref) < 1e-10


# ------------------------------------------------------------------------------------------------
# the native 1x1 path (one matrix product on the caller's arrays)
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("weight_format", ["IO", "OI"])
@pytest.mark.parametrize("bias", [True, False])
def test_pointwise_native_path_matches_torch(dtype, weight_format, bias):
    case = Case(3, 5, 7, 1, (4, 6), (1, 1), bias=bias)
    (x, w, b, dy), (xc, wc, bc, dyc) = _caller(case, "channels_last", weight_format, dtype=dtype)
    exact = torch_reference(case, *(None if a is None else a.astype(np.float64) for a in (x, w, b, dy)))
    theirs = torch_reference(case, x, w, b, dy)
    kw = dict(data_format="channels_last", weight_format=weight_format)
    y = convgrad.conv2d(xc, wc, bc, **kw)
    g = convgrad.conv_backward(dyc, xc, wc, **kw)
    ours = (_first(y), _first(g.input), _back(g.weight, "", True, weight_format), g.bias)
    for name, a, t, e in zip(("output", "grad_input", "grad_weight", "grad_bias"), ours, theirs, exact):
        if e is None:
            continue
        assert a.dtype == dtype and a.shape == e.shape, name
        budget = 1e-12 if dtype == np.float64 else 8 * max(max_rel(t, e), 4 * np.finfo(np.float32).eps)
        assert max_rel(a, e) <= budget, name
    # the shared path (an explicit algorithm) gives the same numbers
    y2 = convgrad.conv2d(xc, wc, bc, **kw, algorithm="gemm")
    assert max_rel(y, y2) < (1e-12 if dtype == np.float64 else 1e-5)


def test_pointwise_native_path_needs_strides_and_float16():
    case = Case(2, 4, 3, 1, (5,), (1,))
    (x, w, b, dy), (xc, wc, _, dyc) = _caller(case, "channels_last", "IO")
    ref = torch_reference(case, x, w, b, dy)
    g = convgrad.conv_backward(dyc, xc, wc, needs=("weight",), data_format="channels_last", weight_format="IO")
    assert g.input is None and g.bias is None and max_rel(_oi(g.weight), ref[2]) < 1e-12
    strided = np.zeros((2, 10, 4))
    strided[:, ::2] = xc  # a non-contiguous caller array
    assert max_rel(convgrad.conv1d(strided[:, ::2], wc, b, data_format="NWC", weight_format="WIO"), _last(ref[0])) < 1e-12
    y16 = convgrad.conv1d(xc.astype(np.float16), wc.astype(np.float16), data_format="NWC", weight_format="WIO")
    assert y16.dtype == np.float16


def test_a_chain_of_channels_last_calls_stays_consistent():
    """The output view feeds the next call; results equal those of contiguous copies."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 6, 6, 3))
    w1, w2 = rng.standard_normal((3, 3, 3, 4)), rng.standard_normal((1, 1, 4, 5))
    kw = dict(data_format="channels_last", weight_format="IO")
    h = convgrad.conv2d(x, w1, padding=1, **kw)
    assert max_rel(convgrad.conv2d(h, w2, **kw), convgrad.conv2d(np.ascontiguousarray(h), w2, **kw)) == 0


# ------------------------------------------------------------------------------------------------
# errors
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kwargs, match", [
    (dict(data_format="channel_last"), r"conv2d: data_format must be one of 'channels_first', .*'NHWC'.*got 'channel_last'"),
    (dict(weight_format="HWOI"), r"conv2d: weight_format must be one of 'OI', .*'HWIO'.*got 'HWOI'"),
    (dict(data_format="NDHWC"), r"conv2d: data_format='NDHWC' names 3 spatial dim\(s\), but the weight has 2"),
    (dict(weight_format="WIO"), r"conv2d: weight_format='WIO' names 1 spatial dim\(s\), but the weight has 2"),
])
def test_bad_format_strings(kwargs, match):
    with pytest.raises(ValueError, match=match):
        convgrad.conv2d(np.ones((1, 4, 4, 3)), np.ones((2, 2, 3, 5)), **kwargs)


def test_a_format_that_is_not_a_string():
    with pytest.raises(TypeError, match=r"conv: data_format must be a string"):
        convgrad.conv(np.ones((1, 3, 4)), np.ones((2, 3, 1)), data_format=True)


def test_a_weight_in_the_other_layout_is_named():
    x = np.ones((1, 5, 5, 3))
    with pytest.raises(ValueError, match=r"weight of shape \(8, 3, 2, 2\) does not fit weight_format='IO' .*"
                                         r"it fits weight_format='OI'"):
        convgrad.conv2d(x, np.ones((8, 3, 2, 2)), data_format="channels_last", weight_format="IO")
    with pytest.raises(ValueError, match=r"weight of shape \(2, 2, 3, 8\) does not fit weight_format='OI' .*"
                                         r"it fits weight_format='IO'"):
        convgrad.conv2d(x, np.ones((2, 2, 3, 8)), data_format="channels_last")
    with pytest.raises(ValueError, match=r"fits neither layout; check data_format"):
        convgrad.conv2d(x, np.ones((2, 2, 4, 8)), data_format="channels_last", weight_format="IO")
    with pytest.raises(ValueError, match=r"conv_transpose2d: weight of shape \(3, 2, 2, 2\) does not fit "
                                         r"weight_format='HWIO' \(\*kernel, C_out/groups, C_in\)"):
        convgrad.conv_transpose2d(x, np.ones((3, 2, 2, 2)), data_format="NHWC", weight_format="HWIO")


def test_a_channels_last_input_of_the_wrong_rank():
    with pytest.raises(ValueError, match=r"conv2d: input must have 4 dims \(batch, 2 spatial, channels\) or 3 .*"
                                         r"data_format='channels_last'.*got shape \(5, 3\)"):
        convgrad.conv2d(np.ones((5, 3)), np.ones((2, 2, 3, 4)), data_format="channels_last", weight_format="IO")


@pytest.mark.parametrize("data_format, weight_format", list(itertools.product(["channels_first", "NCHW"], ["OI", "OIHW"])))
def test_the_default_layout_by_any_name_is_the_default(data_format, weight_format):
    x, w = np.arange(48.0).reshape(1, 3, 4, 4), np.arange(54.0).reshape(2, 3, 3, 3)
    np.testing.assert_array_equal(convgrad.conv2d(x, w, data_format=data_format, weight_format=weight_format),
                                  convgrad.conv2d(x, w))


# ------------------------------------------------------------------------------------------------
# explain and verify speak the same words
# ------------------------------------------------------------------------------------------------


def test_explain_takes_shapes_in_the_callers_layout():
    ex = convgrad.explain((2, 8, 6, 3), (3, 3, 3, 4), stride=2, padding=1, data_format="NHWC", weight_format="HWIO")
    same = convgrad.explain((2, 3, 8, 6), (4, 3, 3, 3), stride=2, padding=1)
    assert ex.spec == same.spec and ex.output_shape == (2, 4, 4, 3)
    assert "you gave data_format='NHWC', weight_format='HWIO'" in ex.text()
    t = convgrad.explain((5, 4), (3, 2, 4), transposed=True, stride=2, data_format="channels_last", weight_format="IO")
    assert t.spec == convgrad.explain((4, 5), (4, 2, 3), transposed=True, stride=2).spec
    with pytest.raises(ValueError, match=r"explain: data_format='NWC' names 1 spatial dim"):
        convgrad.explain((2, 8, 6, 3), (3, 3, 3, 4), data_format="NWC")


def test_verify_accepts_the_layout_keywords():
    def user_conv(x, w, stride=1, padding=0):   # a channels-last user function (NHWC, HWIO)
        return convgrad.conv2d(x, w, stride=stride, padding=padding, data_format="NHWC", weight_format="HWIO")

    report = convgrad.verify(user_conv, "forward", data_format="NHWC", time_limit=20)
    assert report.ok and report.channels_last
    x, w = np.ones((1, 4, 4, 2)), np.ones((2, 2, 2, 3))
    np.testing.assert_array_equal(expected("forward", x, w, weight_format="IO"), user_conv(x, w))
    with pytest.raises(ValueError, match=r"verify checks channels-first data with 'OI' weights or channels-last"):
        convgrad.verify(user_conv, "forward", data_format="channels_last", weight_format="OI")


def test_errors_about_shapes_speak_the_callers_layout():
    kw = dict(data_format="channels_last", weight_format="IO")
    x = np.ones((2, 4, 4, 3))
    for w in (np.ones((3, 3, 3, 5)), np.ones((1, 1, 3, 5))):   # the shared path and the native 1x1 one
        with pytest.raises(ValueError, match=r"conv_backward: grad_output must have shape \(2, 4, 4, 5\) .*"
                                             r"got \(2, 4, 5, 4\) \(data_format='channels_last'\)"):
            convgrad.conv_backward(np.zeros((2, 4, 5, 4)), x, w, padding=w.shape[0] // 2, **kw)
    with pytest.raises(ValueError, match=r"conv2d: weight must be 4-D \(2 kernel dims, in, out\) with weight_format='IO'"):
        convgrad.conv2d(x, np.ones((3, 3, 2)), **kw)
    with pytest.raises(ValueError, match=r"conv2d_weight: weight_shape must have 4 entries, got \(3, 3, 3\)"):
        convgrad.conv2d_weight(x, (3, 3, 3), np.ones((2, 2, 2, 5)), **kw)
    with pytest.raises(ValueError, match=r"conv2d_input: weight of shape \(3, 3, 3, 5\) does not fit weight_format='IO'"):
        convgrad.conv2d_input((2, 4, 4), np.ones((3, 3, 3, 5)), np.ones((2, 2, 2, 5)), **kw)
    with pytest.raises(ValueError, match=r"conv2d: bias must have shape \(5,\)"):
        convgrad.conv2d(x, np.ones((1, 1, 3, 5)), np.ones(4), **kw)


@pytest.mark.parametrize("needs", [("input", "weight", "bias"), ("input",), ("weight",)])
def test_many_tap_backward_copies_match_torch(needs):
    """From 25 taps on, the backward works on contiguous copies of the channels-last operands."""
    case = Case(2, 3, 4, 1, (9, 8), (5, 5), stride=2, padding=2)
    (x, w, b, dy), (xc, wc, _, dyc) = _caller(case, "channels_last", "IO")
    ref = torch_reference(case, x, w, b, dy)
    g = convgrad.conv_backward(dyc, xc, wc, stride=2, padding=2, needs=needs, data_format="channels_last",
                               weight_format="IO")
    assert (g.input is None) != ("input" in needs) and (g.weight is None) != ("weight" in needs)
    if g.input is not None:
        assert max_rel(_first(g.input), ref[1]) < 1e-10
    if g.weight is not None:
        assert max_rel(_oi(g.weight), ref[2]) < 1e-10


def test_the_layer_bench_times_the_same_numbers_channels_last():
    from convgrad.bench.layers import Layer
    from convgrad.bench.timing import convgrad_functions, operands
    from convgrad.cli import build_parser

    lay = Layer("custom", "small", 2, 3, 4, (6, 5), (3, 3), stride=2, padding=1)
    x, w, b, dy = operands(lay)
    first = convgrad_functions(lay, x, w, b, dy)
    last = convgrad_functions(lay, x, w, b, dy, data_format="channels_last")
    assert max_rel(_first(last["forward"]()), first["forward"]()) < 1e-6
    g_first, g_last = first["backward"](), last["backward"]()
    assert max_rel(_first(g_last.input), g_first.input) < 1e-6 and max_rel(_oi(g_last.weight), g_first.weight) < 1e-6
    assert build_parser().parse_args(["bench", "--data-format", "channels_last"]).data_format == "channels_last"
