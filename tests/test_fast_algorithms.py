"""What the fast algorithms promise beyond agreeing with ``direct`` (tests/test_algorithms.py does that):
results independent of the thread count and the workspace limit, and scratch memory bounded by it."""

import tracemalloc

import numpy as np
import pytest

import convgrad
from convgrad import algorithms, workspace
from convgrad.spec import conv_spec
from _configs import max_rel

# every registered algorithm auto may pick, each tested on the example configurations it declares
AUTO = [name for name in convgrad.available_algorithms() if algorithms.get_algorithm(name).auto_candidate]
# those that cut the batch into chunks under the workspace limit (no unchunked scratch)
CHUNKED = [name for name in AUTO if algorithms.get_algorithm(name).scratch_bytes(conv_spec((64, 8, 32, 32), (8, 8, 3, 3))) == 0]


def _examples(name):
    return algorithms.get_algorithm(name).examples()


def _operands(spec, seed=0, dtype=np.float64):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(spec.input_shape).astype(dtype)
    w = rng.standard_normal(spec.weight_shape).astype(dtype)
    dy = rng.standard_normal(spec.output_shape).astype(dtype)
    return x, w, dy


def _all_ops(spec, x, w, dy, name):
    return (algorithms.run("forward", spec, x, w, name), algorithms.run("grad_input", spec, dy, w, name),
            algorithms.run("grad_weight", spec, x, dy, name))


@pytest.mark.parametrize("algorithm", AUTO)
def test_results_do_not_depend_on_threads_or_workspace(algorithm):
    spec = _examples(algorithm)[1]  # in each algorithm's regime, with a batch of several elements
    x, w, dy = _operands(spec)
    results = []
    for threads, limit in ((1, 2**30), (2, 0), (3, 5000)):
        with convgrad.settings(num_threads=threads, workspace_limit=limit):
            results.append(_all_ops(spec, x, w, dy, algorithm))
    for other in results[1:]:
        for a, b in zip(results[0], other):
            np.testing.assert_allclose(a, b, rtol=1e-13, atol=1e-13)


def _scratch_spec(algorithm):
    """A 3x3 layer of 48 elements the algorithm computes: 8 -> 8 channels, else depthwise."""
    for groups in (1, 8):
        spec = conv_spec((48, 8, 40, 40), (8, 8 // groups, 3, 3), padding=1, groups=groups)
        if all(algorithms.get_algorithm(algorithm).unsupported(spec, op) is None for op in algorithms.OPERATIONS):
            return spec
    return None


@pytest.mark.parametrize("algorithm", [name for name in CHUNKED if _scratch_spec(name) is not None])
@pytest.mark.parametrize("op", ["forward", "grad_input", "grad_weight"])
def test_scratch_memory_stays_under_the_workspace_limit(algorithm, op):
    """NumPy reports its allocations to tracemalloc: the peak beyond the result is the scratch.

    The limit holds for chunks of the batch; one batch element's scratch (Winograd's is about
    ten times the element) is the smallest unit, so the limit here is above that.
    """
    spec = _scratch_spec(algorithm)
    x, w, dy = _operands(spec, dtype=np.float32)
    operands = {"forward": (x, w), "grad_input": (dy, w), "grad_weight": (x, dy)}[op]
    limit = 2 * 2**20  # a few batch elements' worth: many chunks
    with convgrad.settings(workspace_limit=limit, num_threads=2):
        algorithms.run(op, spec, *operands, algorithm)  # warm up (thread pool, imports)
        workspace.clear()  # scratch comes fresh from NumPy again, where tracemalloc sees it
        tracemalloc.start()
        try:
            result = algorithms.run(op, spec, *operands, algorithm)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    scratch = peak - result.nbytes
    slack = 16 * w.nbytes + 2 * 64 * 2**10  # transformed weights; small bookkeeping per worker (2)
    assert scratch <= limit + slack, f"{op}: {scratch} bytes of scratch for a limit of {limit}"
    # and the limit really was binding: the whole batch's scratch would be far larger
    assert x.nbytes > limit


# -- NaN and inf land exactly where a direct sum puts them ------------------------------------------

# each algorithm's first example configuration: chosen so that a poisoned position is one its
# layout reaches without reading it (e.g. position len//3 of x is x[1, 0, 0, 0]: column 0, which
# the padded margin of the row above reaches through the last tap of a row in the flat layout;
# rowgemm's 3-D example: the output grid's widened rows reach inputs their tap does not read)


def _poisoned(spec, where, value, seed=0):
    x, w, dy = _operands(spec, seed)
    target = {"x": x, "w": w, "dy": dy}[where]
    flat = target.reshape(-1)
    flat[len(flat) // 3] = value
    flat[-1] = -value if value == np.inf else value  # the last input position: unread with a tail
    return x, w, dy


@pytest.mark.parametrize("value", [np.nan, np.inf], ids=["nan", "inf"])
@pytest.mark.parametrize("where", ["x", "w", "dy"])
@pytest.mark.parametrize("algorithm", AUTO)
def test_nonfinite_values_propagate_only_into_the_results_that_read_them(algorithm, where, value):
    spec = _examples(algorithm)[0]
    x, w, dy = _poisoned(spec, where, value)
    ops = {"x": ("forward", "grad_weight"), "w": ("forward", "grad_input"), "dy": ("grad_input", "grad_weight")}[where]
    for op in ops:
        operands = {"forward": (x, w), "grad_input": (dy, w), "grad_weight": (x, dy)}[op]
        # the reference loops: independent of every fast algorithm (and of the NaN fallback, gemm)
        expect = algorithms.run(op, spec, *operands, "direct")
        for name in (algorithm, "auto"):
            got = algorithms.run(op, spec, *operands, name)
            np.testing.assert_array_equal(np.isnan(got), np.isnan(expect), err_msg=f"{name} {op}: NaN positions")
            np.testing.assert_array_equal(np.isposinf(got), np.isposinf(expect), err_msg=f"{name} {op}: +inf")
            np.testing.assert_array_equal(np.isneginf(got), np.isneginf(expect), err_msg=f"{name} {op}: -inf")
            finite = np.isfinite(expect)
            np.testing.assert_allclose(got[finite], expect[finite], rtol=1e-10, atol=1e-10)
        assert np.isfinite(expect).any()  # the test is not vacuous: something stayed finite


def test_unread_inputs_get_exactly_zero_gradient_even_next_to_nan():
    spec = conv_spec((2, 3, 11, 9), (4, 3, 3, 2), stride=(2, 3), padding=(1, 0))  # 1 unread column
    x, w, dy = _poisoned(spec, "dy", np.nan)
    for name in ("tapgemm", "gemm", "auto"):
        dx = algorithms.run("grad_input", spec, dy, w, name)
        assert (dx[..., -1] == 0).all(), name
    assert spec.unread_inputs == (0, 1)


@pytest.mark.slow  # over 10 s on the shared 2-core machine
@pytest.mark.parametrize("min_inner, target", [(1, 1), (10**6, 10**6)], ids=["one-tap-per-product", "all-taps-stacked"])
def test_tapgemm_agrees_with_direct_whatever_the_stacking(monkeypatch, min_inner, target):
    """The grid mostly has few channels (stacked taps); force each way of grouping taps over all of it."""
    from convgrad.algorithms import tapgemm
    from test_algorithms import check_against_direct

    from _configs import GRID

    monkeypatch.setattr(tapgemm, "MIN_INNER", min_inner)
    monkeypatch.setattr(tapgemm, "TARGET_INNER", target)
    assert sum(check_against_direct(case, "tapgemm") for case in GRID) == len(GRID)


@pytest.mark.slow  # over 10 s on the shared 2-core machine
@pytest.mark.parametrize("min_inner", [1, 10**6], ids=["one-tap-per-product", "all-taps-stacked"])
def test_tapgemm_interleaved_chunks_agree_with_direct(monkeypatch, request, min_inner):
    """The grid's batches of 1-2 make one-element chunks; with 5 elements on two threads the chunks
    are (2, 2, 1), here interleaved (batch innermost), so a worker's last chunk is smaller and its
    real positions move in memory (the buffers must be re-zeroed)."""
    import dataclasses

    from convgrad.algorithms import tapgemm
    from test_algorithms import check_against_direct

    from _configs import GRID

    monkeypatch.setattr(tapgemm, "INTERLEAVE_GAIN", 1.0)
    monkeypatch.setattr(tapgemm, "MIN_INNER", min_inner)
    monkeypatch.setattr(tapgemm, "TARGET_INNER", min_inner)
    monkeypatch.setattr(algorithms, "SMALL_WORK", 0.0)
    # the one-thread decisions are cached: made with the real SMALL_WORK they would hold here, made
    # here they would outlive the test (the finalizer runs before monkeypatch restores SMALL_WORK)
    for cache in (algorithms._small_work, algorithms._choice):
        cache.cache_clear()
        request.addfinalizer(cache.cache_clear)
    cases = [dataclasses.replace(case, batch=5) for case in GRID if case.batch > 0]
    with convgrad.settings(num_threads=2, workspace_limit=2**30):
        spec = tapgemm._Plan(conv_spec((5, 2, 9), (3, 2, 3)), "forward", 8)
        assert spec.interleaved and spec.chunking.chunk == 2
        assert sum(check_against_direct(case, "tapgemm") for case in cases) == len(cases)


# -- float32 accuracy on layer-like sizes (long sums, where transforms lose the most) -----------------

def _layer_sized(spec):
    """An algorithm's example widened to layer-like sums: 16x the channels per group (16x the groups
    when there is one input channel per group), twice the spatial size, batch 2."""
    import dataclasses

    if spec.in_per_group == 1 and spec.groups > 1:
        groups, cg, og = 16 * spec.groups, 1, spec.out_per_group
    else:
        groups, cg, og = spec.groups, 16 * spec.in_per_group, 8 * spec.out_per_group
    wide = dataclasses.replace(spec, batch=2, groups=groups, in_channels=groups * cg, out_channels=groups * og,
                               input_size=tuple(2 * h for h in spec.input_size))
    return conv_spec(wide.input_shape, wide.weight_shape, stride=spec.stride, padding=spec.padding,
                     dilation=spec.dilation, groups=groups)


@pytest.mark.parametrize("algorithm", AUTO)
def test_float32_error_is_a_small_multiple_of_torch_on_layer_sizes(algorithm):
    torch = pytest.importorskip("torch")
    import torch.nn.functional as F

    from _configs import max_rel

    spec = _layer_sized(_examples(algorithm)[1])
    assert all(lo == hi for lo, hi in spec.padding), "torch takes symmetric padding"
    conv = getattr(F, f"conv{spec.ndim}d")
    cfg = dict(stride=spec.stride, padding=spec.pad_lo, dilation=spec.dilation, groups=spec.groups)
    rng = np.random.default_rng(7)
    x = rng.standard_normal(spec.input_shape).astype(np.float32)
    w = rng.standard_normal(spec.weight_shape).astype(np.float32)
    dy = rng.standard_normal(spec.output_shape).astype(np.float32)

    def torch_all(dtype):
        tx = torch.tensor(x, dtype=dtype, requires_grad=True)
        tw = torch.tensor(w, dtype=dtype, requires_grad=True)
        y = conv(tx, tw, **cfg)
        y.backward(torch.tensor(dy, dtype=dtype))
        return y.detach().numpy(), tx.grad.numpy(), tw.grad.numpy()

    exact, theirs = torch_all(torch.float64), torch_all(torch.float32)
    y = convgrad.conv(x, w, **cfg, algorithm=algorithm)
    g = convgrad.conv_backward(dy, x, w, **cfg, needs=("input", "weight"), algorithm=algorithm)
    for name, ours, t, e in zip(("output", "grad_input", "grad_weight"), (y, g.input, g.weight), theirs, exact):
        budget = 8 * max(max_rel(t, e), 4 * np.finfo(np.float32).eps)
        assert max_rel(ours, e) <= budget, f"{name}: ours {max_rel(ours, e):.2e}, torch {max_rel(t, e):.2e}"


# -- auto and measure -------------------------------------------------------------------------------


@pytest.mark.slow  # over 10 s on the shared 2-core machine
def test_auto_and_measure_agree_with_direct_over_the_grid():
    from test_algorithms import _spec

    from _configs import GRID

    convgrad.clear_algorithm_cache()
    for case in GRID:
        x, w, b = case.arrays(0)
        y_ref, _ = case.run(x, w, b, algorithm="direct")
        dy = np.random.default_rng(1).standard_normal(y_ref.shape)
        _, ref = case.run(x, w, b, dy, algorithm="direct")
        for name in ("auto", "measure", "measure"):  # the second "measure" reuses the choice
            y, g = case.run(x, w, b, dy, algorithm=name)
            for a, r in ((y, y_ref), (g.input, ref.input), (g.weight, ref.weight)):
                np.testing.assert_allclose(a, r, rtol=1e-10, atol=1e-10, err_msg=f"{name} on {case}")
        spec = _spec(case)
        for op in ("forward", "grad_input", "grad_weight"):
            assert algorithms.choose(spec, op, 8).unsupported(spec, op) is None
    assert algorithms.measured_choices()


def test_choose_algorithm_reports_the_model_and_the_measurement():
    convgrad.clear_algorithm_cache()
    shape = dict(input_shape=(8, 64, 32, 32), weight_shape=(64, 1, 3, 3), padding=1, groups=64)
    guess = convgrad.choose_algorithm(**shape)
    assert set(guess) == {"forward", "grad_input", "grad_weight"}
    assert guess["forward"] == "depthwise"
    assert not algorithms.measured_choices()
    measured = convgrad.choose_algorithm(**shape, measure=True)
    assert set(measured.values()) <= set(convgrad.available_algorithms()) - {"direct"}
    assert len(algorithms.measured_choices()) == 3
    assert convgrad.choose_algorithm(**shape, measure=True) == measured  # remembered, not re-measured
    convgrad.clear_algorithm_cache()
    assert not algorithms.measured_choices()
    with pytest.raises(TypeError, match="dtype"):
        convgrad.choose_algorithm(**shape, dtype=np.int32)
    with pytest.raises(ValueError, match="groups"):
        convgrad.choose_algorithm((4, 8, 20, 20), (8, 1, 3, 3), groups=3)


def test_unknown_algorithm_names_the_choices():
    with pytest.raises(ValueError, match="'auto', 'measure' or one of"):
        convgrad.conv2d(np.ones((1, 1, 3, 3)), np.ones((1, 1, 2, 2)), algorithm="fastest")


def test_auto_never_picks_gemm_beyond_the_workspace():
    spec = conv_spec((8, 16, 32, 32), (16, 16, 3, 3), padding=1)
    with convgrad.settings(workspace_limit=2**20):
        for op in ("forward", "grad_input", "grad_weight"):
            assert "gemm" not in algorithms.candidates(spec, op)
    with convgrad.settings(workspace_limit=2**30):
        assert "gemm" in algorithms.candidates(spec, "forward")


# -- the array contract of tests/test_arrays.py, inside each narrow algorithm's regime ---------------

CONTRACT = {
    "winograd": ((2, 4, 7, 6), (6, 2, 3, 3), dict(padding=(1, 0), dilation=(1, 2), groups=2)),
    "winograd2d": ((2, 4, 7, 6), (6, 2, 3, 3), dict(padding=(1, 2), groups=2)),
    "pointwise": ((2, 4, 7, 6), (6, 2, 1, 1), dict(groups=2)),
    "depthwise": ((2, 4, 7, 6), (8, 1, 3, 2), dict(stride=(2, 1), padding=(1, 0), groups=4)),
    "fft": ((2, 4, 9, 6), (6, 2, 5, 3), dict(padding=(2, 0), dilation=(1, 2), groups=2)),
}


@pytest.mark.parametrize("algorithm", sorted(CONTRACT))
def test_narrow_algorithms_keep_the_array_contract(algorithm):
    xs, ws, kw = CONTRACT[algorithm]
    rng = np.random.default_rng(3)
    X, W, B = rng.standard_normal(xs), rng.standard_normal(ws), rng.standard_normal(ws[0])

    def run(x, w, b):
        y = convgrad.conv2d(x, w, b, **kw, algorithm=algorithm)
        dy = np.ones(y.shape, dtype=y.dtype)
        return y, dy, convgrad.conv_backward(dy, x, w, **kw, algorithm=algorithm)

    ref, _, gref = run(X, W, B)
    for dtype, tol in ((np.float16, 2e-2), (np.float32, 1e-5), (np.float64, 1e-12)):
        y, _, g = run(X.astype(dtype), W.astype(dtype), B.astype(dtype))
        assert y.dtype == g.input.dtype == g.weight.dtype == g.bias.dtype == dtype
        assert max(max_rel(y, ref), max_rel(g.input, gref.input), max_rel(g.weight, gref.weight)) < tol
    readonly = [a.copy() for a in (X, W, B)]
    for a in readonly:
        a.flags.writeable = False
    layouts = {
        "fortran": (np.asfortranarray(X), np.asfortranarray(W), B),
        "views with steps": (np.repeat(X, 2, axis=3)[..., ::2], np.repeat(W, 3, axis=0)[::3], B),
        "transposed view": (np.ascontiguousarray(X.transpose(3, 2, 1, 0)).transpose(3, 2, 1, 0), W, B),
        "read-only": tuple(readonly),
    }
    for name, (x, w, b) in layouts.items():
        copies = [a.copy() for a in (x, w, b)]
        y, dy, g = run(x, w, b)
        assert np.array_equal(y, ref) and np.array_equal(g.input, gref.input), name
        assert np.allclose(g.weight, gref.weight, rtol=1e-13, atol=1e-13), name
        for original, a in zip(copies, (x, w, b)):
            assert np.array_equal(original, a), name  # inputs never written
        for result in (y, g.input, g.weight, g.bias):
            for operand in (x, w, b, dy):
                assert not np.shares_memory(result, operand), name
    empty = np.zeros((0,) + X.shape[1:])
    y = convgrad.conv2d(empty, W, B, **kw, algorithm=algorithm)
    assert y.shape == (0,) + ref.shape[1:]
    g = convgrad.conv_backward(y, empty, W, **kw, algorithm=algorithm)
    assert g.input.shape == empty.shape and np.all(g.weight == 0) and np.all(g.bias == 0)


def test_auto_keeps_an_im2col_for_many_channels_on_a_small_map():
    """convgrad train's second convolution (16 -> 32 channels on 4x4, N=32): im2row measured 2x
    faster than the first gemm there (the training epoch is level with PyTorch only with one of
    them); since gemm builds its columns batch-innermost the two are level (0.13/0.20/0.16 ms
    against 0.13/0.23/0.13 fwd/dx/dw), both about 2x faster than winograd. For the input gradient
    the refitted model prefers tapgemm (measured 0.28 ms against gemm's 0.22: a near tie the
    model's few coefficients do not resolve), so only the forward and weight gradient are pinned."""
    chosen = convgrad.choose_algorithm((32, 16, 4, 4), (32, 16, 3, 3), padding=1)
    assert {chosen["forward"], chosen["grad_weight"]} <= {"im2row", "gemm"}, chosen
    assert chosen["grad_input"] != "winograd", chosen


def test_transposed_1x1_with_output_padding_is_pointwise_with_zeros_for_the_unread_tail():
    """output_padding adds outputs no input feeds: the 1x1 spec then reads fewer positions than it has,
    and pointwise leaves the rest of the input gradient (the transposed forward's output) zero."""
    from _configs import Case

    case = Case(1, 1, 2, 1, (4,), (1,), dilation=2, output_padding=1, transposed=True)
    from test_algorithms import check_against_direct

    assert check_against_direct(case, "pointwise")
    x, w, b = case.arrays(0)
    y, _ = case.run(x, w, b, algorithm="auto")
    ref, _ = case.run(x, w, b, algorithm="direct")
    np.testing.assert_allclose(y, ref, rtol=1e-12)


def test_auto_keeps_depthwise_layers_off_blas_products():
    """Layer e (depthwise 3x3, 128 channels): winograd's and tapgemm's products there are 1x1
    matrices, measured 12x slower than depthwise's elementwise passes; the model once ranked them level."""
    chosen = convgrad.choose_algorithm((32, 128, 56, 56), (128, 1, 3, 3), padding=1, groups=128)
    assert set(chosen.values()) == {"depthwise"}, chosen
    from convgrad.algorithms import candidates
    from convgrad.spec import conv_spec

    # the rule is only for one channel in and out per group of several: a channel multiplier of 2
    # (2x1 products) or a single-channel convolution (groups=1) leave every algorithm to the model
    for spec in (conv_spec((8, 16, 28, 28), (32, 1, 3, 3), padding=1, groups=16), conv_spec((8, 1, 28, 28), (1, 1, 3, 3), padding=1)):
        assert {"gemm", "tapgemm", "depthwise"} <= set(candidates(spec, "forward")), spec
    assert set(candidates(conv_spec((8, 16, 28, 28), (16, 1, 3, 3), padding=1, groups=16), "forward")) <= {"depthwise", "fft"}
