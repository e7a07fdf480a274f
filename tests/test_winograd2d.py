"""``winograd2d`` (F(2x2, 3x3)) beyond the shared algorithm tests: paddings, odd and 1-wide sizes, groups,
bias, chunks and column blocks of every size, PyTorch in float64 and float32, the adjoint identity,
non-finite inputs, and a property sweep against the reference loops."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import convgrad
from convgrad import algorithms
from convgrad.algorithms import winograd2d
from convgrad.spec import conv_spec

OPS = ("forward", "grad_input", "grad_weight")


def _operands(spec, seed=0, dtype=np.float64):
    rng = np.random.default_rng(seed)
    return tuple(rng.standard_normal(s).astype(dtype) for s in (spec.input_shape, spec.weight_shape, spec.output_shape))


def _run(op, spec, x, w, dy, name):
    a, b = {"forward": (x, w), "grad_input": (dy, w), "grad_weight": (x, dy)}[op]
    return algorithms.run(op, spec, a, b, name)


def _check_against_direct(spec, seed=0):
    x, w, dy = _operands(spec, seed)
    for op in OPS:
        got = _run(op, spec, x, w, dy, "winograd2d")
        want = _run(op, spec, x, w, dy, "direct")
        assert got.shape == want.shape and got.dtype == want.dtype
        np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-10, err_msg=op)


@pytest.mark.parametrize("xs, ws, kw", [
    ((2, 3, 8, 8), (4, 3, 3, 3), dict(padding=1)),  # even: whole tiles
    ((2, 3, 7, 9), (4, 3, 3, 3), dict(padding=1)),  # odd: the last tile row and column cut
    ((1, 2, 6, 5), (3, 2, 3, 3), dict(padding=0)),
    ((2, 2, 5, 6), (3, 2, 3, 3), dict(padding=2)),  # pad K-1: the input gradient's form has low padding 0
    ((2, 2, 5, 6), (3, 2, 3, 3), dict(padding=((3, 0), (0, 4)))),  # beyond K-1: inputs no output reads
    ((1, 1, 1, 1), (1, 1, 3, 3), dict(padding=1)),  # a single pixel
    ((3, 2, 3, 1), (2, 2, 3, 3), dict(padding=((0, 0), (1, 1)))),  # 1 wide
    ((2, 1, 1, 7), (2, 1, 3, 3), dict(padding=1)),  # 1 high
    ((2, 6, 6, 7), (4, 3, 3, 3), dict(padding=1, groups=2)),
    ((2, 4, 5, 5), (8, 1, 3, 3), dict(padding=1, groups=4)),  # depthwise with a multiplier
], ids=["even", "odd", "pad0", "pad2", "pad-beyond", "pixel", "1-wide", "1-high", "groups", "depthwise"])
def test_agrees_with_direct_in_float64(xs, ws, kw):
    _check_against_direct(conv_spec(xs, ws, **kw))


def test_bias_is_added_by_the_forward():
    rng = np.random.default_rng(1)
    x, w, b = rng.standard_normal((2, 3, 7, 6)), rng.standard_normal((5, 3, 3, 3)), rng.standard_normal(5)
    got = convgrad.conv2d(x, w, b, padding=1, algorithm="winograd2d")
    want = convgrad.conv2d(x, w, b, padding=1, algorithm="direct")
    np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("spec", [conv_spec((7, 3, 9, 8), (4, 3, 3, 3), padding=1),
                                  conv_spec((5, 4, 6, 7), (6, 2, 3, 3), padding=((2, 0), (1, 2)), groups=2)],
                         ids=["padded", "groups"])
def test_chunks_and_blocks_of_every_size_agree_with_direct(monkeypatch, spec):
    """Chunks of 1 to 3 samples (the last one shorter) on two workers, cut into column blocks that end
    inside a sample: each worker reuses its buffers, whose padding and margins must stay zero."""
    x, w, dy = _operands(spec)
    monkeypatch.setattr(winograd2d, "MIN_WIDTH", 7)
    monkeypatch.setattr(winograd2d, "BLOCK_BYTES", 1)
    for items in (1, 2, 3):
        geo = winograd2d._geometry(spec.pad_lo, spec.input_size, spec.output_size)
        per_item = (4 * spec.in_channels * (geo.tiles[0] + 1) * geo.width
                    + 8 * (spec.in_channels + spec.out_channels) * geo.T) * 8
        monkeypatch.setattr(winograd2d, "CHUNK_BYTES", items * per_item)
        with convgrad.settings(num_threads=2):
            for op in OPS:
                got = _run(op, spec, x, w, dy, "winograd2d")
                want = _run(op, spec, x, w, dy, "direct")
                np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-10, err_msg=f"{op}, {items} per chunk")


def _torch_all(torch, x, w, dy, pad, groups=1):
    tx = torch.tensor(x, requires_grad=True)
    tw = torch.tensor(w, requires_grad=True)
    ty = torch.nn.functional.conv2d(tx, tw, padding=pad, groups=groups)
    ty.backward(torch.tensor(dy))
    return {"forward": ty.detach().numpy(), "grad_input": tx.grad.numpy(), "grad_weight": tw.grad.numpy()}


@pytest.mark.parametrize("xs, ws, pad, groups", [((3, 5, 9, 8), (6, 5, 3, 3), 1, 1), ((2, 4, 6, 7), (4, 2, 3, 3), 2, 2)],
                         ids=["pad1", "pad2-groups"])
def test_matches_torch_in_float64(xs, ws, pad, groups):
    torch = pytest.importorskip("torch")
    spec = conv_spec(xs, ws, padding=pad, groups=groups)
    x, w, dy = _operands(spec, seed=3)
    want = _torch_all(torch, x, w, dy, pad, groups)
    for op in OPS:
        np.testing.assert_allclose(_run(op, spec, x, w, dy, "winograd2d"), want[op], rtol=1e-10, atol=1e-10, err_msg=op)


@pytest.mark.parametrize("xs, ws", [((4, 32, 16, 16), (32, 32, 3, 3)), ((4, 64, 8, 8), (64, 64, 3, 3)),
                                    ((2, 16, 15, 15), (16, 16, 3, 3))], ids=["32@16", "64@8", "16@15"])
def test_float32_error_within_a_small_multiple_of_torchs(xs, ws):
    """Against the float64 result, the largest float32 error relative to the result's scale: at most 4x
    PyTorch's own float32 error (measured on the VGG/ResNet layers, batch 8: 0.2-1.1x PyTorch's)."""
    torch = pytest.importorskip("torch")
    spec = conv_spec(xs, ws, padding=1)
    x, w, dy = _operands(spec, seed=5)
    exact = _torch_all(torch, x, w, dy, 1)
    x32, w32, dy32 = (a.astype(np.float32) for a in (x, w, dy))
    theirs = _torch_all(torch, x32, w32, dy32, 1)
    for op in OPS:
        ours = _run(op, spec, x32, w32, dy32, "winograd2d")
        assert ours.dtype == np.float32
        scale = np.abs(exact[op]).max()
        err, err_torch = (np.abs(r.astype(np.float64) - exact[op]).max() / scale for r in (ours, theirs[op]))
        assert err <= 4 * err_torch + 1e-7, (op, err, err_torch)


def test_adjoint_identities():
    """<conv(x, w), dy> = <x, grad_input(dy, w)> = <w, grad_weight(x, dy)>: the three operations are one bilinear form."""
    spec = conv_spec((3, 4, 7, 6), (6, 2, 3, 3), padding=((2, 1), (0, 2)), groups=2)
    x, w, dy = _operands(spec, seed=7)
    y = _run("forward", spec, x, w, dy, "winograd2d")
    dx = _run("grad_input", spec, x, w, dy, "winograd2d")
    dw = _run("grad_weight", spec, x, w, dy, "winograd2d")
    a, b, c = np.vdot(y, dy), np.vdot(x, dx), np.vdot(w, dw)
    assert abs(a - b) <= 1e-10 * abs(a) and abs(a - c) <= 1e-10 * abs(a)


def test_weight_gradient_matches_finite_differences():
    """The loss <conv(x, w), dy> is linear in w: a central difference along a random direction is exact
    up to rounding, and must equal <grad_weight, direction>."""
    spec = conv_spec((2, 3, 5, 7), (4, 3, 3, 3), padding=1)
    x, w, dy = _operands(spec, seed=9)
    v = np.random.default_rng(10).standard_normal(w.shape)
    eps = 1e-3
    loss = lambda ww: np.vdot(_run("forward", spec, x, ww, dy, "winograd2d"), dy)  # noqa: E731
    fd = (loss(w + eps * v) - loss(w - eps * v)) / (2 * eps)
    assert fd == pytest.approx(np.vdot(_run("grad_weight", spec, x, w, dy, "winograd2d"), v), rel=1e-8)


@pytest.mark.parametrize("op", OPS)
def test_non_finite_values_stay_where_a_direct_sum_puts_them(op):
    """A tile mixes its inputs, so the algorithm says it spreads NaN/inf; the dispatcher then recomputes:
    the results are those of the reference loops, NaN for NaN."""
    spec = conv_spec((2, 3, 8, 8), (4, 3, 3, 3), padding=1)
    x, w, dy = _operands(spec, seed=11)
    x[1, 2, 3, 4] = np.nan
    dy[0, 1, 5, 2] = np.inf
    w[2, 1, 0, 0] = -np.inf
    assert algorithms.get_algorithm("winograd2d").spreads_nonfinite(op)
    got = _run(op, spec, x, w, dy, "winograd2d")
    want = _run(op, spec, x, w, dy, "direct")
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
    finite = np.isfinite(want)
    np.testing.assert_allclose(got[finite], want[finite], rtol=1e-10, atol=1e-10)
    np.testing.assert_array_equal(got[~finite], want[~finite])


def test_refuses_other_kernels_saying_why():
    alg = algorithms.get_algorithm("winograd2d")
    assert "3x3" in alg.unsupported(conv_spec((1, 1, 5, 5), (1, 1, 3, 2)), "forward")
    assert "stride" in alg.unsupported(conv_spec((1, 1, 5, 5), (1, 1, 3, 3), stride=2), "forward")
    assert "dilation" in alg.unsupported(conv_spec((1, 1, 5, 5), (1, 1, 3, 3), dilation=2), "forward")
    assert "2-D" in alg.unsupported(conv_spec((1, 1, 5), (1, 1, 3)), "forward")
    with pytest.raises(ValueError, match="winograd2d"):
        convgrad.conv2d(np.ones((1, 1, 5, 5)), np.ones((1, 1, 3, 3)), stride=2, algorithm="winograd2d")


@settings(max_examples=25, deadline=None)
@given(n=st.integers(1, 3), cg=st.integers(1, 3), og=st.integers(1, 3), groups=st.integers(1, 2),
       h=st.integers(1, 9), w=st.integers(1, 9), pads=st.tuples(*[st.integers(0, 3)] * 4), seed=st.integers(0, 2**16))
def test_property_sweep(n, cg, og, groups, h, w, pads, seed):
    ph0, ph1, pw0, pw1 = pads
    if h + ph0 + ph1 < 3 or w + pw0 + pw1 < 3:
        return  # no output
    _check_against_direct(conv_spec((n, cg * groups, h, w), (og * groups, cg, 3, 3), padding=((ph0, ph1), (pw0, pw1)),
                                    groups=groups), seed)
