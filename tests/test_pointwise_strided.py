"""``pointwise`` at a stride: the 1x1 projections of ResNet's shortcuts (a gather, a product, a scatter).

Checked against plain loops from the index formula (``y[n, o, j] = sum_c w[o, c] x[n, c, s*j]``,
written here, sharing nothing with the algorithm), against PyTorch, by the adjoint identities,
on awkward layouts, and that ``auto`` takes it for ResNet-8's projections.
"""

import itertools

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import convgrad
from convgrad import algorithms


def loops_forward(x, w, stride, groups):
    """``y[n, o, *j] = sum over c of the group  w[o, c] * x[n, c, *(s*j)]``: the index formula, as loops."""
    n, c = x.shape[:2]
    o, cg = w.shape[:2]
    og = o // groups
    out = tuple((i - 1) // s + 1 for i, s in zip(x.shape[2:], stride))
    y = np.zeros((n, o, *out), dtype=np.float64)
    for b, oc, pos in itertools.product(range(n), range(o), itertools.product(*map(range, out))):
        g = oc // og
        src = tuple(s * p for s, p in zip(stride, pos))
        y[(b, oc, *pos)] = sum(w[(oc, k) + (0,) * len(out)] * x[(b, g * cg + k, *src)] for k in range(cg))
    return y


SHAPES = [  # (input shape, weight shape, stride, groups)
    ((3, 4, 9, 8), (6, 4, 1, 1), (2, 2), 1),  # odd height: the last row unread
    ((2, 6, 5, 7), (4, 3, 1, 1), (3, 2), 2),
    ((2, 3, 11), (5, 3, 1), (4,), 1),
    ((1, 4, 5, 4, 6), (2, 4, 1, 1, 1), (2, 1, 3), 1),
    ((2, 4, 6, 6), (8, 4, 1, 1), (1, 2), 1),  # stride in one dim only
]


@pytest.mark.parametrize("xs, ws, stride, groups", SHAPES)
@pytest.mark.parametrize("dtype, tol", [(np.float64, 1e-12), (np.float32, 2e-6)])
def test_against_loops_and_adjoints(xs, ws, stride, groups, dtype, tol):
    rng = np.random.default_rng(0)
    x, w = rng.standard_normal(xs), rng.standard_normal(ws)
    kw = dict(stride=stride, groups=groups, algorithm="pointwise")
    y = convgrad.conv(x.astype(dtype), w.astype(dtype), **kw)
    ref = loops_forward(x, w, stride, groups)
    assert y.dtype == dtype and y.shape == ref.shape
    np.testing.assert_allclose(y, ref, rtol=tol, atol=tol * np.abs(ref).max())
    dy = rng.standard_normal(ref.shape)
    dx = convgrad.conv_input(xs, w.astype(dtype), dy.astype(dtype), stride=stride, groups=groups, algorithm="pointwise")
    dw = convgrad.conv_weight(x.astype(dtype), ws, dy.astype(dtype), stride=stride, groups=groups, algorithm="pointwise")
    assert dx.shape == xs and dw.shape == ws and dx.dtype == dw.dtype == dtype
    # <conv(x, w), dy> = <x, dx> = <w, dw>, and dx is exactly zero where no output reads
    inner = float(np.vdot(ref, dy))
    assert abs(float(np.vdot(x, dx)) - inner) < 50 * tol * (1 + abs(inner))
    assert abs(float(np.vdot(w, dw)) - inner) < 50 * tol * (1 + abs(inner))
    read = (slice(None), slice(None)) + tuple(slice(0, s * (o - 1) + 1, s) for s, o in zip(stride, ref.shape[2:]))
    mask = np.ones(xs, bool)
    mask[read] = False
    assert np.all(dx[mask] == 0)


@pytest.mark.parametrize("xs, ws, stride, groups", SHAPES[:3])
def test_against_torch_with_bias(xs, ws, stride, groups):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(1)
    x, w, b = rng.standard_normal(xs), rng.standard_normal(ws), rng.standard_normal(ws[0])
    y = convgrad.conv(x, w, b, stride=stride, groups=groups, algorithm="pointwise")
    dy = rng.standard_normal(y.shape)
    g = convgrad.conv_backward(dy, x, w, stride=stride, groups=groups, algorithm="pointwise")
    tx, tw, tb = (torch.tensor(a, requires_grad=True) for a in (x, w, b))
    conv = {3: torch.nn.functional.conv1d, 4: torch.nn.functional.conv2d, 5: torch.nn.functional.conv3d}[x.ndim]
    ty = conv(tx, tw, tb, stride=stride, groups=groups)
    ty.backward(torch.tensor(dy))
    np.testing.assert_allclose(y, ty.detach().numpy(), rtol=1e-12, atol=1e-12)
    for mine, theirs in ((g.input, tx.grad), (g.weight, tw.grad), (g.bias, tb.grad)):
        np.testing.assert_allclose(mine, theirs.numpy(), rtol=1e-11, atol=1e-11)


def test_strided_views_read_only_inputs_and_empty_batch():
    rng = np.random.default_rng(2)
    base = rng.standard_normal((4, 6, 10, 9))
    x = base[::2, ::2]  # (2, 3, 10, 9), strided in batch and channels
    w = np.asfortranarray(rng.standard_normal((5, 3, 1, 1)))
    x.flags.writeable = w.flags.writeable = False
    y = convgrad.conv(x, w, stride=2, algorithm="pointwise")
    np.testing.assert_allclose(y, loops_forward(x, w, (2, 2), 1), rtol=1e-12)
    g = convgrad.conv_backward(np.ones_like(y), x, w, stride=2, algorithm="pointwise")
    ref = convgrad.conv_backward(np.ones_like(y), np.ascontiguousarray(x), np.ascontiguousarray(w), stride=2,
                                 algorithm="direct")
    np.testing.assert_allclose(g.input, ref.input, rtol=1e-12)
    np.testing.assert_allclose(g.weight, ref.weight, rtol=1e-12)
    assert not np.shares_memory(g.input, x)
    empty = np.zeros((0, 3, 10, 9))
    assert convgrad.conv(empty, w, stride=2, algorithm="pointwise").shape == (0, 5, 5, 5)
    assert np.all(convgrad.conv_weight(empty, w.shape, np.zeros((0, 5, 5, 5)), stride=2, algorithm="pointwise") == 0)


@settings(max_examples=25, deadline=None)
@given(n=st.integers(1, 3), c=st.integers(1, 4), o=st.integers(1, 4), size=st.tuples(st.integers(1, 9), st.integers(1, 9)),
       stride=st.tuples(st.integers(1, 4), st.integers(1, 4)), seed=st.integers(0, 99))
def test_sweep_against_direct(n, c, o, size, stride, seed):
    rng = np.random.default_rng(seed)
    x, w = rng.standard_normal((n, c, *size)), rng.standard_normal((o, c, 1, 1))
    y = convgrad.conv(x, w, stride=stride, algorithm="pointwise")
    dy = rng.standard_normal(y.shape)
    g = convgrad.conv_backward(dy, x, w, stride=stride, algorithm="pointwise")
    ref = convgrad.conv_backward(dy, x, w, stride=stride, algorithm="direct")
    np.testing.assert_allclose(y, convgrad.conv(x, w, stride=stride, algorithm="direct"), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(g.input, ref.input, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(g.weight, ref.weight, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("xs, ws", [((64, 16, 32, 32), (32, 16, 1, 1)), ((64, 32, 16, 16), (64, 32, 1, 1))])
def test_auto_takes_it_for_resnet8s_projections(xs, ws):
    """Measured 2026-12-02 (float32, 2 threads): 1.4/2.0/2.0 ms fwd/dx/dw against tapgemm's 2.3/3.2/2.9 on the
    first projection, 0.7/1.0/0.9 against 1.0/1.4/1.3 on the second; in the training step tapgemm's forward
    had taken 4.2 ms there."""
    assert set(convgrad.choose_algorithm(xs, ws, stride=2).values()) == {"pointwise"}


@pytest.mark.parametrize("op", ["forward", "grad_input", "grad_weight"])
def test_scratch_stays_under_the_workspace_limit(op):
    """The gathered operand and the weight gradient's per-element products count in the chunk size
    (a 512 -> 1024 projection on 8x8: one element's products are 2 MiB)."""
    import tracemalloc

    from convgrad import workspace
    from convgrad.spec import conv_spec

    spec = conv_spec((32, 512, 8, 8), (1024, 512, 1, 1), stride=2)
    rng = np.random.default_rng(0)
    x = rng.standard_normal(spec.input_shape, dtype=np.float32)
    w = rng.standard_normal(spec.weight_shape, dtype=np.float32)
    dy = rng.standard_normal(spec.output_shape, dtype=np.float32)
    operands = {"forward": (x, w), "grad_input": (dy, w), "grad_weight": (x, dy)}[op]
    limit = 16 * 2**20  # a few elements per worker: each element's products (O, C_g) are 2 MiB
    with convgrad.settings(workspace_limit=limit, num_threads=2):
        algorithms.run(op, spec, *operands, "pointwise")
        workspace.clear()
        tracemalloc.start()
        try:
            result = algorithms.run(op, spec, *operands, "pointwise")
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    extra = w.nbytes if op == "grad_input" else 0  # the transposed weight
    assert peak - result.nbytes - extra <= limit + 2 * 64 * 2**10, (peak - result.nbytes) / 2**20


@pytest.mark.parametrize("threads, limit", [(1, 2**30), (2, 2**30), (2, 3 * 2**10)])
def test_many_elements_per_chunk_and_the_buffers_reused(threads, limit):
    """A batch of 11 in chunks of several elements (the stacked product, a worker's buffers reused across
    chunks of different sizes), and one element at a time under a tiny workspace: all exact."""
    rng = np.random.default_rng(3)
    x, w = rng.standard_normal((11, 6, 9, 7)), rng.standard_normal((4, 3, 1, 1))
    kw = dict(stride=(2, 3), groups=2)
    with convgrad.settings(num_threads=threads, workspace_limit=limit):
        y = convgrad.conv(x, w, **kw, algorithm="pointwise")
        dy = rng.standard_normal(y.shape)
        g = convgrad.conv_backward(dy, x, w, **kw, algorithm="pointwise")
    np.testing.assert_allclose(y, loops_forward(x, w, (2, 3), 2), rtol=1e-12, atol=1e-12)
    ref = convgrad.conv_backward(dy, x, w, **kw, algorithm="direct")
    np.testing.assert_allclose(g.input, ref.input, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(g.weight, ref.weight, rtol=1e-12, atol=1e-12)
