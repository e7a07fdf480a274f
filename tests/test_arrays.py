"""dtypes, memory layouts, unbatched input, empty batches, aliasing, NaN and inf."""

import numpy as np
import pytest

import convgrad
from _configs import max_rel, supporting

ALGORITHMS = convgrad.available_algorithms()
rng = np.random.default_rng(0)
X = rng.standard_normal((2, 4, 7, 6))
W = rng.standard_normal((6, 2, 3, 2))
B = rng.standard_normal(6)
KW = dict(stride=(2, 1), padding=(1, 0), dilation=(1, 2), groups=2)


# the algorithms that compute each fixed configuration below (the narrow fast ones refuse some,
# saying why; their regimes are tested in test_fast_algorithms.py): only those are parametrized
ON_XW = supporting(ALGORITHMS, (X.shape, W.shape), **KW)
KWS = [dict(), dict(padding=2, padding_mode="reflect"), dict(stride=2, padding=1)]
ON_KWS = [pytest.param(name, kw, id=f"{name}-{i}") for i, kw in enumerate(KWS)
          for name in supporting(ALGORITHMS, ((2, 2, 7, 6), (3, 2, 1, 1)), **(kw or dict(stride=1)))]
ON_STRIDE_2 = supporting(ALGORITHMS, ((1, 1, 9), (1, 1, 3)), stride=2)
ON_STRIDE_4 = supporting(ALGORITHMS, ((1, 1, 10), (1, 1, 2)), stride=4)
ON_PADDED = supporting(ALGORITHMS, ((2, 2, 6, 6), (3, 2, 3, 3)), padding=1)


def _all(x, w, b, algorithm="auto"):
    y = convgrad.conv2d(x, w, b, **KW, algorithm=algorithm)
    g = convgrad.conv_backward(np.ones(y.shape, dtype=y.dtype), x, w, **KW, algorithm=algorithm)
    return y, g


@pytest.mark.parametrize("algorithm", ON_XW)
@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
def test_float_dtype_in_same_dtype_out(dtype, algorithm):
    y, g = _all(X.astype(dtype), W.astype(dtype), B.astype(dtype), algorithm)
    assert y.dtype == g.input.dtype == g.weight.dtype == g.bias.dtype == dtype
    ref, gref = _all(X, W, B)
    tol = {np.float16: 2e-2, np.float32: 1e-5, np.float64: 1e-12}[dtype]
    assert max_rel(y, ref) < tol and max_rel(g.input, gref.input) < tol and max_rel(g.weight, gref.weight) < tol


def test_float16_accumulates_in_float32():
    # 4096 products of 1 * 1 summed: float16 accumulation would stall at 2048
    x = np.ones((1, 4096, 1), dtype=np.float16)
    w = np.ones((1, 4096, 1), dtype=np.float16)
    assert convgrad.conv1d(x, w)[0, 0, 0] == 4096
    # and the sum that exceeds float16's range becomes inf only on the final cast
    g = convgrad.conv_backward(np.ones((1, 1, 1), dtype=np.float16), x, w)
    assert g.weight.dtype == np.float16 and np.all(g.weight == 1)


def test_mixed_float_inputs_follow_numpy_promotion():
    y = convgrad.conv2d(X.astype(np.float32), W.astype(np.float64), groups=2)
    assert y.dtype == np.float64
    y = convgrad.conv2d(X.astype(np.float16), W.astype(np.float32), groups=2)
    assert y.dtype == np.float32
    y = convgrad.conv2d(X.astype(np.float32), W.astype(np.float32), B.astype(np.float64), groups=2)
    assert y.dtype == np.float64


@pytest.mark.parametrize("dtype", [np.int8, np.int32, np.int64, np.uint8, bool])
def test_integer_and_bool_inputs_become_float64(dtype):
    xi = (X > 0).astype(dtype) if dtype is bool else np.round(X * 3).astype(dtype)
    y = convgrad.conv2d(xi, W, groups=2)
    assert y.dtype == np.float64
    assert max_rel(y, convgrad.conv2d(xi.astype(np.float64), W, groups=2)) == 0
    y = convgrad.conv2d(xi, np.ones((6, 2, 3, 2), dtype=dtype), groups=2)
    assert y.dtype == np.float64
    g = convgrad.conv_backward(np.ones(y.shape, dtype=np.int64), xi, np.ones((6, 2, 3, 2), dtype=np.int32), groups=2)
    assert g.input.dtype == g.weight.dtype == g.bias.dtype == np.float64


def test_lists_are_accepted():
    y = convgrad.conv1d([[[1, 2, 3, 4]]], [[[1, -1]]])
    assert y.dtype == np.float64 and np.array_equal(y, [[[-1, -1, -1]]])


@pytest.mark.parametrize("algorithm", ON_XW)
def test_any_memory_layout(algorithm):
    ref, gref = _all(X, W, B, algorithm)
    layouts = {
        "fortran": (np.asfortranarray(X), np.asfortranarray(W), B),
        "negative strides": (X[:, :, ::-1, ::-1].copy()[:, :, ::-1, ::-1], W[::-1].copy()[::-1], B[::-1].copy()[::-1]),
        "views with steps": (np.repeat(X, 2, axis=3)[..., ::2], np.repeat(W, 3, axis=0)[::3], np.repeat(B, 2)[::2]),
        "transposed view": (np.ascontiguousarray(X.transpose(3, 2, 1, 0)).transpose(3, 2, 1, 0), W, B),
        "read-only": tuple(_readonly(a) for a in (X, W, B)),
        "broadcast weight": (X, np.broadcast_to(W[:1], W.shape), B),
    }
    for name, (x, w, b) in layouts.items():
        if name == "broadcast weight":
            ref_b, gref_b = _all(X, np.ascontiguousarray(np.broadcast_to(W[:1], W.shape)), B, algorithm)
        else:
            ref_b, gref_b = ref, gref
        y, g = _all(x, w, b, algorithm)
        assert np.array_equal(y, ref_b), name
        assert np.array_equal(g.input, gref_b.input) and np.array_equal(g.weight, gref_b.weight), name


def _readonly(a):
    a = a.copy()
    a.flags.writeable = False
    return a


@pytest.mark.parametrize("algorithm, kw", ON_KWS)
def test_inputs_never_modified_and_results_never_alias_them(algorithm, kw):
    x, w, b = X[:, :2].copy(), rng.standard_normal((3, 2, 1, 1)), rng.standard_normal(3)
    copies = [a.copy() for a in (x, w, b)]
    y = convgrad.conv2d(x, w, b, **kw, algorithm=algorithm)
    dy = np.ones_like(y)
    g = convgrad.conv_backward(dy, x, w, **kw, algorithm=algorithm)
    t = convgrad.conv_transpose2d(y, np.ascontiguousarray(w.transpose(0, 1, 2, 3)), algorithm=algorithm) if not kw else None
    for original, a in zip(copies, (x, w, b)):
        assert np.array_equal(original, a)
    assert np.all(dy == 1)
    for result in (y, g.input, g.weight, g.bias) + ((t,) if t is not None else ()):
        for operand in (x, w, b, dy):
            assert not np.shares_memory(result, operand)


def test_unbatched_input_as_pytorch():
    y1 = convgrad.conv2d(X[0], W, B, **KW)
    assert y1.shape == convgrad.conv2d(X, W, B, **KW).shape[1:]
    assert np.array_equal(y1, convgrad.conv2d(X[:1], W, B, **KW)[0])
    g1 = convgrad.conv_backward(np.ones(y1.shape), X[0], W, **KW)
    g = convgrad.conv_backward(np.ones((1, *y1.shape)), X[:1], W, **KW)
    assert g1.input.shape == X[0].shape and np.array_equal(g1.input, g.input[0])
    assert np.array_equal(g1.weight, g.weight) and np.array_equal(g1.bias, g.bias)
    assert convgrad.conv2d_input(X[0].shape, W, np.ones(y1.shape), **KW).shape == X[0].shape
    assert convgrad.conv2d_weight(X[0], W.shape, np.ones(y1.shape), **KW).shape == W.shape
    wt = rng.standard_normal((4, 3, 2, 2))
    t1 = convgrad.conv_transpose2d(X[0], wt, stride=2)
    assert np.array_equal(t1, convgrad.conv_transpose2d(X[:1], wt, stride=2)[0])
    gt = convgrad.conv_transpose_backward(np.ones(t1.shape), X[0], wt, stride=2)
    assert gt.input.shape == X[0].shape


@pytest.mark.parametrize("algorithm", ON_XW)
def test_batch_of_size_zero(algorithm):
    x = np.zeros((0, 4, 7, 6))
    y = convgrad.conv2d(x, W, B, **KW, algorithm=algorithm)
    assert y.shape == (0, 6, 4, 4)
    g = convgrad.conv_backward(y, x, W, **KW, algorithm=algorithm)
    assert g.input.shape == x.shape and np.all(g.weight == 0) and np.all(g.bias == 0)
    t = convgrad.conv_transpose2d(np.zeros((0, 6, 3, 3)), rng.standard_normal((6, 1, 2, 2)), groups=2, stride=2,
                                  algorithm=algorithm)
    assert t.shape == (0, 2, 6, 6)


def test_needs_computes_only_what_is_asked():
    g = convgrad.conv_backward(np.ones((2, 6, 4, 4)), X, W, **KW, needs=("weight",))
    assert g.input is None and g.bias is None and g.weight.shape == W.shape
    g = convgrad.conv_backward(np.ones((2, 6, 4, 4)), X, W, **KW, needs="bias")
    assert g.input is None and g.weight is None and np.all(g.bias == 32)
    g = convgrad.conv_backward(np.ones((2, 6, 4, 4)), X, W, **KW, needs=())
    assert g == (None, None, None)


@pytest.mark.parametrize("algorithm", ON_STRIDE_2)
def test_nan_and_inf_reach_only_the_outputs_that_read_them(algorithm):
    x = np.ones((1, 1, 9))
    x[0, 0, 4] = np.nan
    w = np.ones((1, 1, 3))
    y = convgrad.conv1d(x, w, stride=2, algorithm=algorithm)  # outputs read [0..2], [2..4], [4..6], [6..8]
    assert np.array_equal(np.isnan(y[0, 0]), [False, True, True, False])
    # dW[k] = sum_i dy[i] x[2i + k]: x[4] is met by tap 0 (i=2) and tap 2 (i=1), never by tap 1
    dy = np.ones_like(y)
    g = convgrad.conv_backward(dy, x, w, stride=2, algorithm=algorithm)
    assert np.array_equal(np.isnan(g.weight[0, 0]), [True, False, True])
    assert not np.isnan(g.input).any()  # dX does not read x
    # inf in dy: dX positions read by that output only; x[7] reads it via tap 1, x[8] via tap 2, x[6] via tap 0
    dy = np.ones_like(y)
    dy[0, 0, 3] = np.inf
    g = convgrad.conv_backward(dy, np.ones((1, 1, 9)), w, stride=2, algorithm=algorithm)
    assert np.array_equal(np.isinf(g.input[0, 0]), [False] * 6 + [True] * 3)
    assert np.isinf(g.bias[0]) and np.all(np.isinf(g.weight))


@pytest.mark.parametrize("algorithm", ON_STRIDE_4)
def test_nan_weight_does_not_reach_holes_or_unread_tail(algorithm):
    # S=4, K=2 on H=10: windows [0,1], [4,5], [8,9]; inputs 2, 3, 6, 7 are never read (holes)
    w = np.array([[[1.0, np.nan]]])
    g = convgrad.conv_backward(np.ones((1, 1, 3)), np.ones((1, 1, 10)), w, stride=4, algorithm=algorithm)
    assert np.array_equal(np.isnan(g.input[0, 0]), [False, True, False, False, False, True, False, False, False, True])
    assert g.input[0, 0, 2] == g.input[0, 0, 3] == g.input[0, 0, 6] == g.input[0, 0, 7] == 0


@pytest.mark.parametrize("algorithm", ON_PADDED)
def test_nan_weight_and_inf_grad_output_meet_zero_padding_as_ieee_says(algorithm):
    """A term that reads zero padding is 0 * w: nan when w is nan or inf, in every algorithm and in PyTorch."""
    import torch
    import torch.nn.functional as F

    x = np.ones((2, 2, 6, 6))
    w = np.ones((3, 2, 3, 3))
    w[1, 0, 0, 0] = np.nan  # the top-left tap of output channel 1: reads padding on the first row/column
    kw = dict(padding=1)
    y = convgrad.conv2d(x, w, **kw, algorithm=algorithm)
    ty = F.conv2d(torch.tensor(x), torch.tensor(w), padding=1).numpy()
    assert np.array_equal(np.isnan(y), np.isnan(ty))
    assert np.isnan(y[:, 1]).all()  # every output of channel 1 reads w[1,0,0,0] (x there or padding)
    assert not np.isnan(y[:, [0, 2]]).any()
    dy = np.ones(y.shape)
    dy[0, 0, 0, 0] = np.inf  # output (0, 0) reads padding at taps of row 0 and column 0
    g = convgrad.conv_backward(dy, x, np.ones((3, 2, 3, 3)), **kw, needs=("weight",), algorithm=algorithm)
    tx = torch.tensor(x)
    tw = torch.tensor(np.ones((3, 2, 3, 3)), requires_grad=True)
    F.conv2d(tx, tw, padding=1).backward(torch.tensor(dy))
    assert np.array_equal(np.isnan(g.weight), np.isnan(tw.grad.numpy()))
    assert np.array_equal(np.isinf(g.weight), np.isinf(tw.grad.numpy()))
    assert np.isnan(g.weight[0, :, 0, :]).all() and np.isinf(g.weight[0, :, 1:, 1:]).all()
