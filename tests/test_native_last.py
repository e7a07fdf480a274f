"""The native channels-last algorithms (``colgemm_last``, ``depthwise_last``, ``rowgemm_last``, ``samplegemm_last``,
``tapgemm_last``, ``winograd_last``) and their dispatch.

Checked three ways, none sharing code with the algorithms: on channels-last operands against
``direct``'s plain loops (all three operations, float64 to 1e-10, results laid out channels last);
through the public API with ``data_format="channels_last"`` against PyTorch on the same numbers
permuted in the test (float64 and float32, the latter within a small multiple of PyTorch's own
float32 error) and against the channels-first call; and by the adjoint identities
``<conv(x), dy> = <x, dx> = <w, dw>``. Plus which algorithm :mod:`convgrad.native_last` picks for
the benchmark layers, and the edges (unbatched, float16, bias forms, ``needs`` subsets, NaN, inputs
left unmodified).
"""

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import convgrad
from _configs import Case, max_rel, torch_reference
from convgrad import algorithms, native_last
from convgrad.algorithms.registry import REGISTRY
from convgrad.bench.layers import LAYERS
from convgrad.spec import conv_spec

torch.set_num_threads(1)
NATIVE = ["colgemm_last", "depthwise_last", "rowgemm_last", "samplegemm_last", "tapgemm_last", "winograd_last"]
#: Whether the algorithm's data results (forward, input gradient) are laid out channels last (winograd_last's
#: stay channels first; rowgemm_last's input gradient is rowgemm's, channels first, and colgemm_last's too where
#: rowgemm applies: None, not checked).
RESULTS_LAST = {"colgemm_last": (True, None), "depthwise_last": (True, True), "rowgemm_last": (True, False), "samplegemm_last": (True, True),
                "tapgemm_last": (True, True), "winograd_last": (False, False)}


def _last(a):
    """(N, C, *S) -> contiguous (N, *S, C), by an explicit axis tuple."""
    return np.ascontiguousarray(np.transpose(a, (0, *range(2, a.ndim), 1)))


def _first(a):
    """(N, *S, C) -> (N, C, *S)."""
    return np.transpose(a, (0, a.ndim - 1, *range(1, a.ndim - 1)))


def _io(w):
    """(O, I, *K) -> contiguous (*K, I, O)."""
    return np.ascontiguousarray(np.transpose(w, (*range(2, w.ndim), 1, 0)))


def _oi(w):
    n = w.ndim
    return np.transpose(w, (n - 1, n - 2, *range(n - 2)))


# configurations: (input shape, weight shape, keywords); depthwise ones have groups == C_in
DEPTHWISE = [
    ((2, 8, 9, 7), (8, 1, 3, 3), dict(padding=1, groups=8)),
    ((3, 8, 10, 9), (16, 1, 3, 3), dict(stride=2, padding=1, groups=8)),  # channel multiplier 2
    ((2, 9, 11), (9, 1, 5), dict(stride=3, padding=((3, 0),), dilation=2, groups=9)),  # crop of the unread tail
    ((2, 8, 5, 6, 7), (8, 1, 2, 3, 2), dict(stride=(1, 2, 1), padding=((1, 0), (2, 1), (0, 0)), groups=8)),
    ((1, 10, 8, 8), (10, 1, 4, 4), dict(padding="same", groups=10)),  # even kernel: the extra pad after
    ((2, 8, 6, 6), (8, 1, 3, 3), dict(padding=4, groups=8)),  # padding beyond the kernel: dx crops
    ((2, 8, 7, 5), (24, 1, 3, 1), dict(dilation=(2, 1), padding=(2, 0), groups=8)),
]
GENERAL = [
    ((2, 5, 7, 6), (8, 5, 3, 3), dict(padding=1)),
    ((3, 4, 9, 8), (6, 2, 3, 3), dict(stride=2, padding=1, groups=2)),
    ((2, 3, 12, 11), (8, 3, 5, 5), dict(stride=(2, 1), padding=2)),  # a stack of taps (3 channels)
    ((2, 8, 30), (8, 8, 9), dict(padding=4)),
    ((2, 6, 5, 4, 6), (4, 6, 3, 3, 3), dict(padding=1, dilation=(1, 2, 1), stride=(1, 1, 2))),
    ((2, 1, 9, 8), (6, 1, 5, 5), dict(padding=2)),  # one input channel
    ((1, 6, 7, 7), (4, 3, 2, 3), dict(stride=3, padding=((2, 1), (0, 2)), groups=2)),
]
WINOGRAD = [  # 3 taps along the last dim, stride 1
    ((2, 5, 7, 6), (8, 5, 3, 3), dict(padding=1)),
    ((3, 4, 9, 8), (6, 2, 3, 3), dict(padding=1, dilation=(2, 1), groups=2)),
    ((2, 3, 13), (4, 3, 3), dict(padding=((3, 0),))),  # pad beyond the kernel: pieces
    ((2, 6, 4, 5, 7), (4, 6, 2, 3, 3), dict(padding=(0, 1, 2), dilation=(1, 1, 2))),
    ((1, 4, 6, 9), (4, 4, 3, 3), dict(padding=((2, 0), (0, 1)))),
]
SAMPLE = [  # stride 1 (dx as the forward of dy by the flipped kernel) and not (dx added back tap by tap)
    ((2, 3, 20, 18), (8, 3, 7, 7), dict(stride=2, padding=3)),  # a stem, as layer d
    ((2, 5, 7, 6), (8, 5, 3, 3), dict(padding=1)),
    ((3, 4, 9, 8), (6, 2, 3, 3), dict(stride=(1, 2), dilation=(2, 1), padding=1, groups=2)),
    ((1, 6, 7, 7), (4, 3, 2, 3), dict(stride=3, padding=((2, 1), (0, 2)), groups=2)),
    ((2, 4, 9, 8), (6, 2, 3, 3), dict(dilation=(2, 1), padding=((2, 1), (0, 1)), groups=2)),  # stride 1, groups
    ((2, 3, 6, 6), (4, 3, 3, 3), dict(padding=4)),  # padding beyond the kernel: dx's forward would crop
    ((3, 2, 11), (4, 2, 2), dict(stride=3, padding=((0, 2),))),  # 1-D, unread tail
    ((2, 3, 4, 5, 6), (4, 3, 2, 3, 3), dict(padding=(0, 0, 1))),  # 3-D, as layer i
    ((1, 2, 5, 4, 6), (4, 2, 2, 3, 3), dict(padding=1, stride=(1, 1, 2))),  # 3-D strided, batch 1
]
ROW = [  # stride 1 along every dim but the last
    ((3, 6, 14, 14), (16, 6, 5, 5), {}),  # LeNet's second layer (g2), smaller batch
    ((3, 4, 9, 8), (6, 2, 3, 3), dict(stride=(1, 2), dilation=(2, 1), padding=1, groups=2)),
    ((2, 3, 9, 10), (4, 3, 3, 3), dict(stride=(1, 3), padding=((2, 1), (0, 2)))),  # unread tail along the last dim
    ((2, 5, 8, 9), (6, 5, 3, 3), dict(dilation=(1, 2), padding="same")),  # dilated last dim: col2im tap by tap
    ((1, 5, 6, 7), (3, 5, 2, 4), dict(padding=4)),  # batch 1, padding beyond the kernel: rows read no input
    ((3, 2, 11), (4, 2, 2), dict(stride=3, padding=((0, 2),))),  # 1-D: one product, no outer taps
    ((2, 3, 4, 5, 6), (4, 3, 2, 3, 3), dict(padding=(0, 0, 1))),  # 3-D: the widened grid's junk rows
    ((1, 2, 5, 4, 6), (4, 2, 2, 3, 3), dict(padding=1, stride=(1, 1, 2))),  # 3-D strided last dim
]
COL = [  # one input channel per group (the regime native_last sends it); more channels work too, slowly
    ((3, 1, 12, 11), (6, 1, 5, 5), dict(padding=2)),  # LeNet's first layer (g1), smaller
    ((2, 1, 9, 8), (6, 1, 3, 3), dict(stride=2, padding=1)),  # strided: its own col2im
    ((3, 2, 7, 9), (6, 1, 3, 2), dict(groups=2, dilation=(2, 1), padding=((1, 2), (0, 1)))),
    ((2, 1, 13), (4, 1, 3), dict(dilation=2, padding=3)),  # 1-D
    ((1, 1, 4, 5, 6), (3, 1, 2, 3, 3), dict(padding=(1, 0, 1), stride=(1, 1, 2))),  # 3-D, batch 1
    ((2, 3, 6, 7), (4, 3, 3, 3), dict(stride=(2, 1), padding=1)),  # three input channels, strided outer dim
]
CASES = [pytest.param(c, "colgemm_last", id=f"col{i}") for i, c in enumerate(COL)] + \
        [pytest.param(c, "depthwise_last", id=f"dw{i}") for i, c in enumerate(DEPTHWISE)] + \
        [pytest.param(c, "rowgemm_last", id=f"row{i}") for i, c in enumerate(ROW)] + \
        [pytest.param(c, "samplegemm_last", id=f"sample{i}") for i, c in enumerate(SAMPLE)] + \
        [pytest.param(c, "tapgemm_last", id=f"tap{i}") for i, c in enumerate(GENERAL)] + \
        [pytest.param(c, "winograd_last", id=f"wino{i}") for i, c in enumerate(WINOGRAD)]


def _arrays(xs, ws, kw, dtype=np.float64, seed=0):
    spec = conv_spec(xs, ws, **kw)
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(xs).astype(dtype)
    w = rng.standard_normal(ws).astype(dtype)
    b = rng.standard_normal(ws[0]).astype(dtype)
    dy = rng.standard_normal(spec.output_shape).astype(dtype)
    return spec, x, w, b, dy


@pytest.mark.parametrize("config, name", CASES)
def test_against_direct_on_channels_last_operands(config, name):
    spec, x, w, _, dy = _arrays(*config)
    xl, dyl = _first(_last(x)), _first(_last(dy))  # (N, C, *S) views of channels-last arrays
    for op, a, b in (("forward", xl, w), ("grad_input", dyl, w), ("grad_weight", xl, dyl)):
        ref = algorithms.run(op, spec, *((x, w) if op == "forward" else (dy, w) if op == "grad_input" else (x, dy)),
                             "direct")
        got = algorithms.run(op, spec, a, b, name)
        assert got.shape == ref.shape and got.dtype == ref.dtype, op
        assert max_rel(got, ref) < 1e-10, (op, max_rel(got, ref))
        if op != "grad_weight":  # a data result: the (N, C, *S) view of a contiguous channels-last array
            expected = RESULTS_LAST[name][op == "grad_input"]
            assert expected is None or np.moveaxis(got, 1, -1).flags.c_contiguous == expected, op
        # the algorithm also takes channels-first arrays (it reads them through views)
        again = algorithms.run(op, spec, *(np.ascontiguousarray(v) for v in (a, b)), name)
        assert max_rel(again, ref) < 1e-10, op


@pytest.mark.parametrize("config, name", CASES)
def test_adjoint_identities(config, name):
    """``<conv(x), dy> = <x, dx(dy)>`` and ``= <w, dw(x, dy)>``: the three operations fit together."""
    spec, x, w, _, dy = _arrays(*config, seed=3)
    xl, dyl = _first(_last(x)), _first(_last(dy))
    y = algorithms.run("forward", spec, xl, w, name)
    dx = algorithms.run("grad_input", spec, dyl, w, name)
    dw = algorithms.run("grad_weight", spec, xl, dyl, name)
    lhs = float(np.vdot(y, dy))
    assert abs(lhs - float(np.vdot(x, dx))) < 1e-10 * max(1.0, abs(lhs))
    assert abs(lhs - float(np.vdot(w, dw))) < 1e-10 * max(1.0, abs(lhs))


@pytest.mark.parametrize("config", [SAMPLE[0], SAMPLE[2], SAMPLE[7]], ids=["stem", "groups", "3d"])
def test_samplegemm_last_in_blocks_of_output_rows(monkeypatch, config):
    """A sample's matrix beyond the cache budget is built and multiplied in blocks of output rows."""
    from convgrad.algorithms import samplegemm_last

    monkeypatch.setattr(samplegemm_last, "CHUNK_BYTES", 2000)
    samplegemm_last.geometry.cache_clear()
    try:
        spec, x, w, _, dy = _arrays(*config, seed=5)
        geo = samplegemm_last.geometry(spec, x.itemsize)
        assert len(geo.blocks()) > 1 and geo.chunk_cap == 1
        xl, dyl = _first(_last(x)), _first(_last(dy))
        alg = REGISTRY["samplegemm_last"]
        for op, a, b, ra, rb in (("forward", xl, w, x, w), ("grad_input", dyl, w, dy, w),
                                 ("grad_weight", xl, dyl, x, dy)):
            ref = algorithms.run(op, spec, ra, rb, "direct")
            assert max_rel(getattr(alg, op)(a, b, spec), ref) < 1e-10, op
    finally:
        samplegemm_last.geometry.cache_clear()


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("config", [ROW[0], ROW[1], ROW[6]], ids=["lenet2", "groups", "3d"])
def test_rowgemm_last_in_chunks_of_unequal_size(monkeypatch, config, threads):
    """Chunks of 2 and 1 samples (buffers sized for the largest, offsets per chunk) on one and two workers."""
    from convgrad import runtime
    from convgrad.algorithms import rowgemm_last

    xs, ws, kw = config
    config = ((5, *xs[1:]), ws, kw)
    spec, x, w, _, dy = _arrays(*config, seed=7)
    geo = rowgemm_last.geometry(spec)
    monkeypatch.setattr(rowgemm_last, "CHUNK_BYTES", 2 * (geo.rows + geo.grid) * x.itemsize)
    with runtime.settings(num_threads=threads):
        assert geo.plan(x.itemsize).chunk == 2
        xl, dyl = _first(_last(x)), _first(_last(dy))
        alg = REGISTRY["rowgemm_last"]
        for op, a, b, ra, rb in (("forward", xl, w, x, w), ("grad_input", dyl, w, dy, w),
                                 ("grad_weight", xl, dyl, x, dy)):
            ref = algorithms.run(op, spec, ra, rb, "direct")
            assert max_rel(getattr(alg, op)(a, b, spec), ref) < 1e-10, op


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("config", [COL[0], COL[1], COL[2]], ids=["lenet1", "strided", "groups"])
def test_colgemm_last_in_chunks_of_unequal_size(monkeypatch, config, threads):
    from convgrad import runtime
    from convgrad.algorithms import colgemm_last

    xs, ws, kw = config
    config = ((5, *xs[1:]), ws, kw)
    spec, x, w, _, dy = _arrays(*config, seed=8)
    geo = colgemm_last.geometry(spec)
    monkeypatch.setattr(colgemm_last, "CHUNK_BYTES", 2 * geo.cols * x.itemsize)
    with runtime.settings(num_threads=threads):
        assert geo.plan(x.itemsize).chunk == 2
        xl, dyl = _first(_last(x)), _first(_last(dy))
        alg = REGISTRY["colgemm_last"]
        for op, a, b, ra, rb in (("forward", xl, w, x, w), ("grad_input", dyl, w, dy, w),
                                 ("grad_weight", xl, dyl, x, dy)):
            ref = algorithms.run(op, spec, ra, rb, "direct")
            assert max_rel(getattr(alg, op)(a, b, spec), ref) < 1e-10, op


def test_colgemm_last_takes_only_the_backward_of_one_input_channel():
    alg = REGISTRY["colgemm_last"]
    lenet1 = conv_spec((64, 1, 28, 28), (6, 1, 5, 5), padding=2)
    assert alg.prefers_channels_last(lenet1, "grad_input") and alg.prefers_channels_last(lenet1, "grad_weight")
    assert not alg.prefers_channels_last(lenet1, "forward")  # the views: the channels-first input's own bytes
    assert not alg.prefers_channels_last(conv_spec((64, 2, 28, 28), (6, 2, 5, 5), padding=2), "grad_weight")
    assert not alg.prefers_channels_last(conv_spec((64, 1, 28, 28), (32, 1, 5, 5), padding=2), "grad_weight")
    assert not alg.prefers_channels_last(conv_spec((64, 1, 28, 28), (6, 1, 5, 5), stride=2), "grad_weight")


def test_rowgemm_last_takes_only_few_channels():
    """From 2 to 16 channels on both sides, one group, stride 1 along the outer dims; the rest stays where it was."""
    alg = REGISTRY["rowgemm_last"]
    lenet2 = conv_spec((64, 6, 14, 14), (16, 6, 5, 5))
    assert alg.prefers_channels_last(lenet2, "grad_input")
    assert not alg.prefers_channels_last(lenet2, "forward")  # samplegemm_last's: 16 outputs, runs of 30
    assert not alg.prefers_channels_last(conv_spec((64, 1, 28, 28), (6, 1, 5, 5), padding=2), "grad_input")
    assert not alg.prefers_channels_last(conv_spec((8, 32, 14, 14), (32, 32, 3, 3), padding=1), "grad_input")
    assert not alg.prefers_channels_last(conv_spec((8, 8, 14, 14), (8, 4, 3, 3), padding=1, groups=2), "grad_input")
    strided = conv_spec((8, 6, 14, 14), (16, 6, 3, 3), stride=2)
    assert alg.unsupported(strided, "grad_input") is not None and native_last.choose(strided, "grad_input") is None \
        or native_last.choose(strided, "grad_input").name != "rowgemm_last"


def _force(monkeypatch, name):
    """Make ``name`` the native pick wherever it supports the configuration (and no other native algorithm)."""
    for other in NATIVE:
        monkeypatch.setattr(type(REGISTRY[other]), "prefers_channels_last",
                            lambda self, spec, op, itemsize=4, pick=(other == name): pick)


def _torch_case(xs, ws, kw):
    return Case(xs[0], xs[1], ws[0], kw.get("groups", 1), tuple(xs[2:]), tuple(ws[2:]), kw.get("stride", 1),
                kw.get("padding", 0), kw.get("dilation", 1))


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("config, name", [p for p in CASES if "same" not in str(p.values[0][2])
                                          and not any(isinstance(v, tuple) and any(isinstance(e, tuple) for e in v)
                                                      for v in p.values[0][2].values())])
def test_public_channels_last_matches_torch(monkeypatch, config, name, dtype):
    _force(monkeypatch, name)
    xs, ws, kw = config
    spec, x, w, b, dy = _arrays(*config, dtype=dtype)
    case = _torch_case(xs, ws, kw)
    exact = torch_reference(case, *(a.astype(np.float64) for a in (x, w, b, dy)))
    theirs = torch_reference(case, x, w, b, dy)
    fmt = dict(data_format="channels_last", weight_format="IO")
    assert native_last.choose_all(spec, ("forward", "grad_input", "grad_weight")) is not None
    y = convgrad.conv(_last(x), _io(w), b, **kw, **fmt)
    g = convgrad.conv_backward(_last(dy), _last(x), _io(w), **kw, **fmt)
    assert all(e is None or a == e for a, e in zip((y.flags.c_contiguous, g.input.flags.c_contiguous),
                                                   RESULTS_LAST[name]))  # the native path
    ours = (_first(y), _first(g.input), _oi(g.weight), g.bias)
    for what, a, t, e in zip(("output", "grad_input", "grad_weight", "grad_bias"), ours, theirs, exact):
        assert a.dtype == dtype and a.shape == e.shape, what
        budget = 1e-10 if dtype == np.float64 else 8 * max(max_rel(t, e), 4 * np.finfo(np.float32).eps)
        assert max_rel(a, e) <= budget, (what, max_rel(a, e), budget)


@pytest.mark.parametrize("config, name", CASES)
def test_public_channels_last_equals_channels_first(monkeypatch, config, name):
    """Every padding form (pairs, 'same'), against the channels-first call of the same numbers."""
    _force(monkeypatch, name)
    xs, ws, kw = config
    _, x, w, b, dy = _arrays(*config)
    y_cf = convgrad.conv(x, w, b, **kw)
    g_cf = convgrad.conv_backward(dy, x, w, **kw)
    xl, wl, dyl = _last(x), _io(w), _last(dy)
    before = (xl.copy(), wl.copy(), dyl.copy())
    y = convgrad.conv(xl, wl, b, **kw, data_format="channels_last", weight_format="IO")
    g = convgrad.conv_backward(dyl, xl, wl, **kw, data_format="channels_last", weight_format="IO")
    assert all(np.array_equal(p, q) for p, q in zip(before, (xl, wl, dyl)))  # inputs never modified
    assert max_rel(_first(y), y_cf) < 1e-10 and max_rel(_first(g.input), g_cf.input) < 1e-10
    assert max_rel(_oi(g.weight), g_cf.weight) < 1e-10 and max_rel(g.bias, g_cf.bias) < 1e-10
    # OI weights, the unbatched form and a subset of the gradients take the same path
    y_oi = convgrad.conv(xl[0], w, b, **kw, data_format="channels_last")
    assert max_rel(_first(y_oi[None]), y_cf[:1]) < 1e-10
    gi = convgrad.conv_backward(dyl, xl, wl, **kw, needs=("weight",), data_format="channels_last", weight_format="IO")
    assert gi.input is None and gi.bias is None and max_rel(_oi(gi.weight), g_cf.weight) < 1e-10


def test_float16_and_bias_forms_through_the_native_path():
    xs, ws, kw = DEPTHWISE[0]
    _, x, w, b, _ = _arrays(xs, ws, kw)
    ref = convgrad.conv(x, w, b, **kw)
    y = convgrad.conv(_last(x), _io(w), b.reshape(1, 1, -1), **kw, data_format="NHWC", weight_format="HWIO")
    assert y.flags.c_contiguous and max_rel(_first(y), ref) < 1e-10
    y16 = convgrad.conv(_last(x).astype(np.float16), _io(w).astype(np.float16), b.astype(np.float16), **kw,
                        data_format="NHWC", weight_format="HWIO")
    assert y16.dtype == np.float16 and max_rel(_first(y16), ref) < 1e-2


@pytest.mark.parametrize("name, config", [("depthwise_last", DEPTHWISE[0]), ("samplegemm_last", SAMPLE[1]),
                                          ("samplegemm_last", SAMPLE[0])], ids=["dw", "sample", "sample-strided"])
def test_nan_lands_where_the_channels_first_call_puts_it(monkeypatch, name, config):
    _force(monkeypatch, name)
    xs, ws, kw = config
    _, x, w, b, dy = _arrays(xs, ws, kw)
    x[1, -1, 4, 2] = np.nan
    dy[0, -1, 0, 2] = np.inf
    w[1, 0, 0, 1] = -np.inf
    ref_y, ref_g = convgrad.conv(x, w, b, **kw), convgrad.conv_backward(dy, x, w, **kw)
    y = convgrad.conv(_last(x), _io(w), b, **kw, data_format="channels_last", weight_format="IO")
    g = convgrad.conv_backward(_last(dy), _last(x), _io(w), **kw, data_format="channels_last", weight_format="IO")
    for a, r in ((_first(y), ref_y), (_first(g.input), ref_g.input), (_oi(g.weight), ref_g.weight)):
        np.testing.assert_array_equal(np.isnan(a), np.isnan(r))
        np.testing.assert_array_equal(np.isinf(a), np.isinf(r))


def test_the_benchmark_layers_go_where_they_measured_faster():
    picks = {name: {op: getattr(native_last.choose(lay.spec(), op), "name", None)
                    for op in ("forward", "grad_input", "grad_weight")} for name, lay in LAYERS.items()}
    assert set(picks["e"].values()) == {"depthwise_last"}
    for name in ("a", "b", "f", "h", "i"):  # wide products: im2row per sample for all three
        assert set(picks[name].values()) == {"samplegemm_last"}, name
    # d: 3 input channels, too few for samplegemm_last's input gradient (tapgemm_last's, as auto runs tapgemm)
    assert picks["d"] == {"forward": "samplegemm_last", "grad_input": "tapgemm_last",
                          "grad_weight": "samplegemm_last"}
    # g2: its forward and weight gradient (16 outputs) on samplegemm_last, the input gradient (6 channels) on
    # rowgemm_last, so the whole backward is native (native_last.choose_all)
    assert picks["g2"] == {"forward": "samplegemm_last", "grad_input": "rowgemm_last",
                           "grad_weight": "samplegemm_last"}
    assert native_last.choose_all(LAYERS["g2"].spec(), ("grad_input", "grad_weight")) is not None
    # 1 -> 6 channels: the forward on the transposed views (the input's bytes are the channels-first input's),
    # the backward on colgemm_last (its input gradient rowgemm's on the view of dy: no channels-first copy)
    assert picks["g1"] == {"forward": None, "grad_input": "colgemm_last", "grad_weight": "colgemm_last"}
    assert set(picks["c"].values()) == {None}  # 1x1: layout's own matrix product
    # never for padding modes other than zeros, nor for a channels-first call (auto never sees them)
    reflect = conv_spec((2, 8, 9, 9), (8, 1, 3, 3), padding=1, groups=8, padding_mode="reflect")
    assert native_last.choose(reflect, "forward") is None
    assert all(algorithms.choose(lay.spec(), op).name not in NATIVE for lay in LAYERS.values()
               for op in ("forward", "grad_input", "grad_weight"))


@settings(max_examples=30, deadline=None)
@given(st.data())
def test_property_sweep_against_direct(data):
    name = data.draw(st.sampled_from(NATIVE))
    nd = data.draw(st.integers(1, 3))
    size = tuple(data.draw(st.integers(3, 7)) for _ in range(nd))
    kernel = tuple(data.draw(st.integers(1, min(3, s))) for s in size)
    stride = tuple(data.draw(st.integers(1, 3)) for _ in range(nd))
    if name == "winograd_last":
        kernel, stride = kernel[:-1] + (3,), (1,) * nd
        size = size[:-1] + (max(size[-1], 5),)
    if name == "rowgemm_last":  # stride 1 along the outer dims
        stride = (1,) * (nd - 1) + stride[-1:]
    dilation = tuple(data.draw(st.integers(1, 2)) if (k - 1) * 2 + 1 <= s else 1 for k, s in zip(kernel, size))
    padding = tuple((data.draw(st.integers(0, 3)), data.draw(st.integers(0, 3))) for _ in range(nd))
    if name == "depthwise_last":
        c = data.draw(st.integers(1, 4))
        groups, cin, cout = c, c, c * data.draw(st.integers(1, 2))
    else:
        groups = data.draw(st.integers(1, 2))
        cin, cout = groups * data.draw(st.integers(1, 3)), groups * data.draw(st.integers(1, 3))
    batch = data.draw(st.integers(1, 3))
    spec = conv_spec((batch, cin, *size), (cout, cin // groups, *kernel), stride, padding, dilation, groups)
    _, x, w, _, dy = _arrays((batch, cin, *size), (cout, cin // groups, *kernel),
                             dict(stride=stride, padding=padding, dilation=dilation, groups=groups), seed=batch)
    xl, dyl = _first(_last(x)), _first(_last(dy))
    for op, a, b, ra, rb in (("forward", xl, w, x, w), ("grad_input", dyl, w, dy, w), ("grad_weight", xl, dyl, x, dy)):
        assert max_rel(algorithms.run(op, spec, a, b, name), algorithms.run(op, spec, ra, rb, "direct")) < 1e-10, op


TRANSPOSED = [  # (input shape, transposed weight (C_in, C_out/G, *K), keywords); wide enough for samplegemm_last
    ((2, 16, 5, 6), (16, 16, 3, 3), dict(stride=2, padding=1, output_padding=1)),
    ((2, 32, 7, 5), (32, 16, 3, 2), dict(padding=(1, 0), dilation=(1, 2), groups=2)),  # stride 1: dx of a forward
    ((1, 16, 6), (16, 16, 4), dict(stride=3, padding=2, output_padding=2)),
    ((2, 16, 3, 4, 3), (16, 16, 2, 3, 2), dict(stride=(1, 2, 1), padding=(0, 1, 1))),
]


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("config", TRANSPOSED, ids=[f"t{i}" for i in range(len(TRANSPOSED))])
def test_conv_transpose_channels_last_runs_natively(monkeypatch, config, dtype):
    """``conv_transpose``/``conv_transpose_backward`` channels last through the native algorithms (their
    input gradient / forward), against PyTorch on the permuted numbers and against the channels-first call."""
    xs, ws, kw = config
    rng = np.random.default_rng(7)
    x, w, b = (rng.standard_normal(s).astype(dtype) for s in (xs, ws, ws[1] * kw.get("groups", 1)))
    y_cf = convgrad.conv_transpose(x, w, b, **kw)
    dy = rng.standard_normal(y_cf.shape).astype(dtype)
    g_cf = convgrad.conv_transpose_backward(dy, x, w, **kw)
    ran = []
    real_run = native_last.run
    monkeypatch.setattr(native_last, "run", lambda alg, op, *a, **k: ran.append((alg.name, op)) or real_run(alg, op, *a, **k))
    fmt = dict(data_format="channels_last", weight_format="IO")
    xl, wl, dyl = _last(x), _io(w), _last(dy)
    before = (xl.copy(), wl.copy(), dyl.copy())
    y = convgrad.conv_transpose(xl, wl, b, **kw, **fmt)
    g = convgrad.conv_transpose_backward(dyl, xl, wl, **kw, **fmt)
    assert all(np.array_equal(p, q) for p, q in zip(before, (xl, wl, dyl)))
    assert {op for _, op in ran} == {"grad_input", "forward", "grad_weight"}, ran  # the native path, every op
    assert y.dtype == g.input.dtype == g.weight.dtype == dtype
    tol = 1e-10 if dtype == np.float64 else 1e-4
    assert max_rel(_first(y), y_cf) < tol and max_rel(_first(g.input), g_cf.input) < tol
    assert max_rel(_oi(g.weight), g_cf.weight) < tol and max_rel(g.bias, g_cf.bias) < tol
    # PyTorch, float64, on the same numbers permuted here
    nd = len(xs) - 2
    f = (torch.nn.functional.conv_transpose1d, torch.nn.functional.conv_transpose2d,
         torch.nn.functional.conv_transpose3d)[nd - 1]
    tx, tw, tb = (torch.tensor(a.astype(np.float64), requires_grad=True) for a in (x, w, b))
    ty = f(tx, tw, tb, kw.get("stride", 1), kw.get("padding", 0), kw.get("output_padding", 0), kw.get("groups", 1),
           kw.get("dilation", 1))
    ty.backward(torch.tensor(dy.astype(np.float64)))
    for ours, theirs in ((_first(y), ty), (_first(g.input), tx.grad), (_oi(g.weight), tw.grad), (g.bias, tb.grad)):
        assert max_rel(ours, theirs.detach().numpy()) < (1e-10 if dtype == np.float64 else 1e-4)
    # unbatched and a subset of the gradients take the same path
    y0 = convgrad.conv_transpose(xl[0], wl, b, **kw, **fmt)
    assert max_rel(_first(y0[None]), y_cf[:1]) < tol
    gw = convgrad.conv_transpose_backward(dyl, xl, wl, **kw, needs=("weight",), **fmt)
    assert gw.input is None and gw.bias is None and max_rel(_oi(gw.weight), g_cf.weight) < tol


@pytest.mark.parametrize("config", [SAMPLE[1], SAMPLE[7], ((2, 16, 6, 5), (8, 16, 1, 1), {})],
                         ids=["2d", "3d", "1x1"])
def test_conv_input_and_conv_weight_channels_last_run_natively(monkeypatch, config):
    """``conv_input``/``conv_weight`` channels last take the native paths (the operand not read is a placeholder)."""
    xs, ws, kw = config
    _force(monkeypatch, "samplegemm_last")
    spec, x, w, _, dy = _arrays(xs, ws, kw, seed=11)
    ran = []
    real_run = native_last.run
    monkeypatch.setattr(native_last, "run", lambda alg, op, *a, **k: ran.append(op) or real_run(alg, op, *a, **k))
    fmt = dict(data_format="channels_last", weight_format="IO")
    xl, wl, dyl = _last(x), _io(w), _last(dy)
    dx = convgrad.conv_input(xl.shape, wl, dyl, **kw, **fmt)
    dw = convgrad.conv_weight(xl, wl.shape, dyl, **kw, **fmt)
    if ws[2:] != (1, 1):  # the 1x1 has layout's own product, not an algorithm
        assert ran == ["grad_input", "grad_weight"]
    assert max_rel(_first(dx), algorithms.run("grad_input", spec, dy, w, "direct")) < 1e-10
    assert max_rel(_oi(dw), algorithms.run("grad_weight", spec, x, dy, "direct")) < 1e-10
    # a bad shape is still the shared path's clear error
    with pytest.raises(ValueError, match="conv_input"):
        convgrad.conv_input((2, -1, 5, 6), wl, dyl, **kw, **fmt)


@pytest.mark.parametrize("transposed", [False, True], ids=["Conv2d", "ConvTranspose2d"])
def test_nn_layers_channels_last_take_the_native_paths(monkeypatch, transposed):
    """The layers call the plain functions channels last (their plans are channels first): the native paths."""
    from convgrad import nn

    ran = []
    real_run = native_last.run
    monkeypatch.setattr(native_last, "run", lambda alg, op, *a, **k: ran.append((alg.name, op)) or real_run(alg, op, *a, **k))
    cls = nn.ConvTranspose2d if transposed else nn.Conv2d
    layers = [cls(16, 16, 3, stride=2, padding=1, dtype=np.float64, rng=np.random.default_rng(1), data_format=f)
              for f in ("channels_first", "channels_last")]
    layers[1].weight.value[...] = layers[0].weight.value
    layers[1].bias.value[...] = layers[0].bias.value
    rng = np.random.default_rng(2)
    x = rng.standard_normal((2, 16, 7, 6))
    y_cf = layers[0](x)
    y = layers[1](_last(x))
    assert ran and all(name == "samplegemm_last" for name, _ in ran)
    dy = rng.standard_normal(y_cf.shape)
    dx_cf, dx = layers[0].backward(dy), layers[1].backward(_last(dy))
    assert {op for _, op in ran} == {"forward", "grad_input", "grad_weight"}
    assert max_rel(_first(y), y_cf) < 1e-10 and max_rel(_first(dx), dx_cf) < 1e-10
    assert max_rel(layers[1].weight.grad, layers[0].weight.grad) < 1e-10
    assert max_rel(layers[1].bias.grad, layers[0].bias.grad) < 1e-10


def test_the_rules_ask_autos_pick_for_the_calls_dtype(monkeypatch):
    """The rules that follow ``auto``'s channels-first pick (tapgemm_last: "where auto runs tapgemm") ask it
    for the call's dtype: the pick depends on it, a float64 estimate counting twice in the one-thread rule.
    On this 6 -> 6 layer's weight gradient, on two threads, float32's pick is tapgemm (one thread) and
    float64's another (two threads): only the float32 call goes to tapgemm_last. Both against direct."""
    from convgrad import runtime

    spec = conv_spec((16, 6, 28, 28), (6, 6, 5, 5), padding=2)
    tap = REGISTRY["tapgemm_last"]
    rng = np.random.default_rng(3)
    x, w = rng.standard_normal(spec.input_shape), rng.standard_normal(spec.weight_shape)
    dy = rng.standard_normal(spec.output_shape)
    ref = algorithms.run("grad_weight", spec, x, dy, "direct")
    seen = []
    real = native_last.run
    monkeypatch.setattr(native_last, "run", lambda alg, *a, **k: (seen.append(alg.name), real(alg, *a, **k))[1])
    with runtime.settings(num_threads=2):
        picks = {size: algorithms.choose(spec, "grad_weight", size).name for size in (4, 8)}
        assert picks[4] == "tapgemm" != picks[8], f"the cost model moved ({picks}): choose another layer"
        assert tap.prefers_channels_last(spec, "grad_weight", 4) and not tap.prefers_channels_last(spec, "grad_weight", 8)
        for dtype, tol in ((np.float32, 1e-5), (np.float64, 1e-10)):
            seen.clear()
            g = convgrad.conv_backward(_last(dy.astype(dtype)), _last(x.astype(dtype)), w.astype(dtype), padding=2,
                                       needs=("weight",), data_format="channels_last")
            assert g.weight.dtype == dtype and max_rel(g.weight, ref) < tol, dtype
            assert (seen == ["tapgemm_last"]) is (dtype == np.float32), (dtype, seen)
