"""Dask arrays in the functional API: lazy per-chunk results equal to the in-memory ones."""

import subprocess
import sys

import numpy as np
import pytest

import convgrad

da = pytest.importorskip("dask.array")
import dask  # noqa: E402


def _chunked(x, size):
    return da.from_array(x, chunks=(size, *x.shape[1:]))


CASES = [  # (input shape, weight shape, keyword arguments)
    ((7, 4, 9, 8), (6, 2, 3, 2), dict(stride=(2, 1), padding=((1, 0), (2, 1)), dilation=(1, 2), groups=2)),
    ((5, 3, 11), (4, 3, 4), dict(stride=3, padding="same", padding_mode="reflect")),
    ((4, 2, 5, 4, 3), (3, 2, 2, 3, 1), dict(padding=1)),
    ((5, 2, 9), (3, 2, 2), dict(stride=2, padding=((-1, 2),), input_dilation=2)),  # a crop and input dilation
]


@pytest.mark.parametrize("shape, wshape, kw", CASES)
@pytest.mark.parametrize("chunk", [1, 3])
def test_conv_and_backward_equal_in_memory(shape, wshape, kw, chunk):
    rng = np.random.default_rng(0)
    x, w = rng.standard_normal(shape), rng.standard_normal(wshape)
    b = rng.standard_normal(wshape[0])
    xd = _chunked(x, chunk)
    with dask.config.set(scheduler="synchronous"):
        yd = convgrad.conv(xd, w, b, **kw)
        assert isinstance(yd, da.Array) and yd.chunks[0] == xd.chunks[0]
        expected = convgrad.conv(x, w, b, **kw)
        assert yd.shape == expected.shape and yd.dtype == expected.dtype
        np.testing.assert_allclose(yd.compute(), expected, rtol=1e-13, atol=1e-13)

        dy = rng.standard_normal(expected.shape)
        got = convgrad.conv_backward(_chunked(dy, 2), xd, w, **kw)
        ref = convgrad.conv_backward(dy, x, w, **kw)
        assert got.input.chunks[0] == xd.chunks[0]
        assert len(got.weight.dask) > 1  # a graph, not an array computed on the spot
        for g, r in zip(dask.compute(*got), ref):
            np.testing.assert_allclose(g, r, rtol=1e-12, atol=1e-12)
        # an in-memory grad_output is split like the input
        np.testing.assert_allclose(convgrad.conv_backward(dy, xd, w, needs=("bias",), **kw).bias.compute(), ref.bias,
                                   rtol=1e-12, atol=1e-12)


def test_float32_within_summation_error():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((16, 3, 10, 10)).astype(np.float32)
    w = rng.standard_normal((5, 3, 3, 3)).astype(np.float32)
    dy = rng.standard_normal((16, 5, 8, 8)).astype(np.float32)
    with dask.config.set(scheduler="synchronous"):
        got = convgrad.conv_backward(dy, _chunked(x, 5), w)
        gw = got.weight.compute()
    exact = convgrad.conv_backward(dy.astype(np.float64), x.astype(np.float64), w.astype(np.float64)).weight
    assert gw.dtype == np.float32
    # the float32 summation-order error: ~ eps32 * sqrt(terms) * the size of the terms
    scale = np.sqrt(16 * 64) * np.abs(x).max() * np.abs(dy).max()
    np.testing.assert_allclose(gw, exact, atol=8 * np.finfo(np.float32).eps * scale)


def test_conv_transpose_equal_in_memory():
    rng = np.random.default_rng(2)
    x, w = rng.standard_normal((5, 4, 6, 5)), rng.standard_normal((4, 3, 3, 3))
    kw = dict(stride=2, padding=1, output_padding=1, groups=1, dilation=1)
    with dask.config.set(scheduler="synchronous"):
        yd = convgrad.conv_transpose(_chunked(x, 2), w, None, **kw)
        np.testing.assert_allclose(yd.compute(), convgrad.conv_transpose(x, w, None, **kw), rtol=1e-13, atol=1e-13)
    assert yd.chunks[0] == (2, 2, 1)


def test_input_is_not_modified_and_nothing_runs_before_compute():
    x = np.ones((4, 1, 5, 5))
    xd = _chunked(x, 2)
    calls = []
    xd = xd.map_blocks(lambda b: calls.append(1) or b, dtype=x.dtype, meta=np.empty((0, 0, 0, 0)))
    convgrad.conv(xd, np.ones((1, 1, 3, 3)))
    assert calls == []  # the metadata come from a zero-sample in-memory call, not from the data
    assert (x == 1).all()


@pytest.mark.parametrize("make, match", [
    (lambda: convgrad.conv(da.ones((4, 2, 6, 6), chunks=(2, 1, 6, 6)), np.ones((3, 2, 3, 3))), r"chunked along the batch .* dims \[1\]"),
    (lambda: convgrad.conv(da.ones((2, 6, 6), chunks=1), np.ones((3, 2, 3, 3))), "must be batched"),
    (lambda: convgrad.conv(da.ones((2, 2, 6, 6), chunks=(1, 2, 6, 6)), da.ones((3, 2, 3, 3))), "weight must be an in-memory"),
    (lambda: convgrad.conv(da.ones((2, 2, 6, 6), chunks=(1, 2, 6, 6)), np.ones((3, 3, 3, 3))), "conv:"),
    (lambda: convgrad.conv_backward(np.ones((3, 3, 4, 4)), da.ones((2, 2, 6, 6), chunks=(1, 2, 6, 6)), np.ones((3, 2, 3, 3))),
     "grad_output"),
])
def test_bad_input_is_named(make, match):
    with pytest.raises((ValueError, TypeError), match=match):
        make()


def test_import_convgrad_does_not_import_dask():
    code = "import sys, convgrad, convgrad.dask_array, convgrad.nn.distributed; print(any(m == 'dask' or m.startswith(('dask.', 'distributed')) for m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


def test_docstring_examples_run():
    import doctest

    import convgrad.dask_array
    import convgrad.nn.distributed

    for module in (convgrad.dask_array, convgrad.nn.distributed):
        result = doctest.testmod(module)
        assert result.attempted >= 5 and result.failed == 0, module.__name__
