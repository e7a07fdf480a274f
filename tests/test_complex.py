"""Complex inputs: forward and every gradient against PyTorch (its conjugate-Wirtinger convention),
against a plain-loop reference and the adjoint identity for ranks PyTorch lacks, through every
algorithm; mixed real/complex operands promote."""

import itertools
import random

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import convgrad
from _configs import GRID, Case, max_rel, random_case, supporting, torch_reference

torch = pytest.importorskip("torch")
F = torch.nn.functional


def _complex(rng, shape, dtype=np.complex128):
    return (rng.standard_normal(shape) + 1j * rng.standard_normal(shape)).astype(dtype)


def _ours(case: Case, x, w, b, dy, algorithm="auto"):
    if case.transposed:
        y = convgrad.conv_transpose(x, w, b, **case.kwargs(), algorithm=algorithm)
        g = convgrad.conv_transpose_backward(dy, x, w, **case.kwargs(), algorithm=algorithm)
    else:
        y = convgrad.conv(x, w, b, **case.kwargs(), algorithm=algorithm)
        g = convgrad.conv_backward(dy, x, w, **case.kwargs(), algorithm=algorithm)
    return y, g.input, g.weight, g.bias


def _draw(case: Case, seed=0, dtype=np.complex128):
    rng = np.random.default_rng(seed)
    x = _complex(rng, case.input_shape, dtype)
    w = _complex(rng, case.weight_shape, dtype)
    b = _complex(rng, case.out_channels, dtype) if case.bias else None
    y = (convgrad.conv_transpose(x, w, b, **case.kwargs()) if case.transposed
         else convgrad.conv(x, w, b, **case.kwargs()))
    return x, w, b, _complex(rng, y.shape, dtype)


# a third of the grid (every padding mode, ranks 1-3, groups, tails), its 'same' cases and every transposed one
SOME_OF_GRID = [c for i, c in enumerate(GRID) if i % 3 == 0 or isinstance(c.padding, str) or c.transposed]


@pytest.mark.parametrize("case", SOME_OF_GRID, ids=str)
def test_complex128_matches_pytorch_on_the_grid(case):
    """1-D to 3-D, groups, dilation, tails, asymmetric/'same' padding, every padding mode, transposed."""
    x, w, b, dy = _draw(case)
    ours = _ours(case, x, w, b, dy)
    ref = torch_reference(case, x, w, b, dy)
    for name, a, r in zip(("y", "dx", "dw", "db"), ours, ref):
        if r is None:
            continue
        assert a.dtype == np.complex128, name
        assert max_rel(a.real, r.real) < 1e-10 and max_rel(a.imag, r.imag) < 1e-10, name


CASE = Case(2, 4, 6, 2, (7, 6), (3, 2), stride=(2, 1), padding=(1, 0), dilation=(1, 2))


@pytest.mark.parametrize("algorithm", supporting(convgrad.available_algorithms(), CASE))
def test_every_algorithm_computes_complex_through_its_real_operations(algorithm):
    x, w, b, dy = _draw(CASE, seed=1)
    ours = _ours(CASE, x, w, b, dy, algorithm)
    ref = torch_reference(CASE, x, w, b, dy)
    for a, r in zip(ours, ref):
        assert np.abs(a - r).max() < 1e-10 * max(1.0, float(np.abs(r).max()))


def test_complex64_is_within_a_small_multiple_of_pytorchs_own_complex64_error():
    case = Case(2, 4, 6, 2, (9, 8), (3, 3), stride=2, padding=1)
    x, w, b, dy = _draw(case, seed=2)
    exact = torch_reference(case, x, w, b, dy)  # complex128
    single = [v.astype(np.complex64) for v in (x, w, b, dy)]
    theirs = torch_reference(case, *single)
    ours = _ours(case, *single)
    for name, a, t, r in zip(("y", "dx", "dw", "db"), ours, theirs, exact):
        assert a.dtype == np.complex64, name
        scale = max(1.0, float(np.abs(r).max()))
        err_ours = float(np.abs(a - r).max()) / scale
        err_torch = float(np.abs(t - r).max()) / scale
        assert err_ours <= 4 * max(err_torch, 1e-7), (name, err_ours, err_torch)


def _loops(x, w, b, stride, pad, dilation, groups):
    """The index formula in plain loops, any rank, zero padding: independent of convgrad's code."""
    n, c_in = x.shape[:2]
    c_out, c_g = w.shape[:2]
    kernel = w.shape[2:]
    out = [(h + 2 * pad - dilation * (k - 1) - 1) // stride + 1 for h, k in zip(x.shape[2:], kernel)]
    y = np.zeros((n, c_out, *out), dtype=np.result_type(x, w))
    for nn, o in itertools.product(range(n), range(c_out)):
        g = o // (c_out // groups)
        for i in np.ndindex(*out):
            total = 0j if b is None else b[o]
            for c in range(c_g):
                for k in np.ndindex(*kernel):
                    h = tuple(ii * stride + kk * dilation - pad for ii, kk in zip(i, k))
                    if all(0 <= hh < size for hh, size in zip(h, x.shape[2:])):
                        total += w[(o, c, *k)] * x[(nn, g * c_g + c, *h)]
            y[(nn, o, *i)] = total
    return y


def test_rank_4_complex_against_plain_loops_and_the_adjoint_identity():
    """No PyTorch here: y from the index formula; dx and dw from Re<g, conv(v, w)> = Re<dx, v> (conv is linear)."""
    rng = np.random.default_rng(3)
    x, w, b = _complex(rng, (1, 2, 4, 3, 3, 4)), _complex(rng, (2, 1, 2, 2, 1, 2)), _complex(rng, 2)
    kw = dict(stride=2, padding=1, dilation=1, groups=2)
    y = convgrad.conv(x, w, b, **kw)
    assert max_rel(np.abs(y - _loops(x, w, b, 2, 1, 1, 2)), np.zeros(y.shape)) < 1e-12
    g = _complex(rng, y.shape)
    grads = convgrad.conv_backward(g, x, w, **kw)
    v = _complex(rng, x.shape)
    u = _complex(rng, w.shape)
    lhs_x = np.real(np.vdot(g, convgrad.conv(v, w, **kw)))  # vdot conjugates its first argument
    lhs_w = np.real(np.vdot(g, convgrad.conv(x, u, **kw)))
    assert abs(lhs_x - np.real(np.vdot(grads.input, v))) < 1e-10 * max(1.0, abs(lhs_x))
    assert abs(lhs_w - np.real(np.vdot(grads.weight, u))) < 1e-10 * max(1.0, abs(lhs_w))
    assert np.allclose(grads.bias, g.sum(axis=(0, 2, 3, 4, 5)), rtol=0, atol=1e-12)


def test_gradients_are_the_derivatives_of_a_real_loss_by_finite_differences():
    """PyTorch's convention, checked without PyTorch: grad = dL/dRe + i dL/dIm for L = Re sum(conj(g) y) + |y|^2."""
    rng = np.random.default_rng(4)
    x, w = _complex(rng, (1, 2, 6)), _complex(rng, (3, 2, 3))
    kw = dict(padding=1, padding_mode="reflect")

    def loss(xx, ww):
        return float(np.sum(np.abs(convgrad.conv(xx, ww, **kw)) ** 2))

    y = convgrad.conv(x, w, **kw)
    grads = convgrad.conv_backward(2 * y, x, w, **kw)  # d|y|^2 = 2 y in the convention
    eps = 1e-6
    for which, base, grad in ((0, x, grads.input), (1, w, grads.weight)):
        for flat in (0, base.size // 2, base.size - 1):
            for unit in (1, 1j):
                e = np.zeros(base.size, complex)
                e[flat] = eps * unit
                e = e.reshape(base.shape)
                args_p, args_m = [x, w], [x, w]
                args_p[which], args_m[which] = base + e, base - e
                fd = (loss(*args_p) - loss(*args_m)) / (2 * eps)
                exact = grad.flat[flat].real if unit == 1 else grad.flat[flat].imag
                assert abs(fd - exact) < 1e-6 * max(1.0, abs(exact))


@pytest.mark.parametrize("real", ["input", "weight", "bias"])
def test_mixed_real_and_complex_operands_promote_and_the_real_part_is_pytorchs_real_gradient(real):
    """A real operand is promoted: the output and every gradient are complex; for a real leaf
    PyTorch returns the real part of that gradient."""
    rng = np.random.default_rng(5)
    x, w, b = _complex(rng, (2, 2, 6, 5)), _complex(rng, (4, 2, 3, 3)), _complex(rng, 4)
    arrays = {"input": x, "weight": w, "bias": b}
    arrays[real] = arrays[real].real.copy()
    y = convgrad.conv2d(arrays["input"], arrays["weight"], arrays["bias"], padding=1)
    assert y.dtype == np.complex128
    dy = _complex(rng, y.shape)
    grads = convgrad.conv_backward(dy, arrays["input"], arrays["weight"], padding=1)
    leaves = {k: torch.tensor(v, requires_grad=True) for k, v in arrays.items()}
    promoted = [v.to(torch.complex128) for v in leaves.values()]  # PyTorch refuses mixed operands: promote in the graph
    F.conv2d(*promoted, padding=1).backward(torch.tensor(dy))
    ty = F.conv2d(*(torch.tensor(v.astype(complex)) for v in arrays.values()), padding=1)
    assert np.abs(y - ty.numpy()).max() < 1e-12 * max(1.0, float(np.abs(y).max()))
    for name, ours in zip(("input", "weight", "bias"), grads):
        assert ours.dtype == np.complex128
        theirs = leaves[name].grad.numpy()
        assert theirs.dtype == arrays[name].dtype
        error = np.abs(ours.real - theirs) if real == name else np.abs(ours - theirs)
        assert error.max() < 1e-12 * max(1.0, float(np.abs(theirs).max()))


def test_mixed_precisions_follow_numpy_promotion():
    x = np.ones((1, 1, 4), np.complex64)
    assert convgrad.conv(x, np.ones((1, 1, 2), np.float32)).dtype == np.complex64
    assert convgrad.conv(x, np.ones((1, 1, 2), np.float64)).dtype == np.complex128
    assert convgrad.conv(x, np.ones((1, 1, 2), np.float16)).dtype == np.complex64
    assert convgrad.conv_backward(np.ones((1, 1, 3)), x, np.ones((1, 1, 2), np.float32)).weight.dtype == np.complex128


def test_conv_input_and_conv_weight_equal_the_backward_for_complex_operands():
    rng = np.random.default_rng(6)
    x, w = _complex(rng, (2, 4, 7)), _complex(rng, (6, 2, 3))
    kw = dict(stride=2, padding=2, dilation=2, groups=2)
    dy = _complex(rng, convgrad.conv1d(x, w, **kw).shape)
    before = [a.copy() for a in (x, w, dy)]
    full = convgrad.conv_backward(dy, x, w, **kw)
    assert np.array_equal(convgrad.conv1d_input(x.shape, w, dy, **kw), full.input)
    assert np.array_equal(convgrad.conv1d_weight(x, w.shape, dy, **kw), full.weight)
    assert np.array_equal(convgrad.conv(x[0], w, **kw), convgrad.conv(x, w, **kw)[0])  # unbatched
    assert all(np.array_equal(a, b) for a, b in zip((x, w, dy), before))  # inputs never modified
    assert convgrad.conv(x.real, w.real, **kw).dtype == np.float64  # real stays real


@settings(max_examples=12, deadline=None)
@given(seed=st.integers(0, 2**32 - 1))
def test_random_configurations_equal_four_real_convolutions_of_the_parts(seed):
    """The definition, op(a, b) = op(ar, br) - op(ai, bi) + i (op(ar, bi) + op(ai, br)), with convgrad's real
    path on the parts, for random configurations (transposed, every padding mode, empty batches); the
    gradients by the same rule with the conjugated operand."""
    case = random_case(random.Random(seed))
    x, w, b, dy = _draw(case, seed=seed % 1000)
    y, dx, dw, db = _ours(case, x, w, b, dy)
    fwd, bwd = ((convgrad.conv_transpose, convgrad.conv_transpose_backward) if case.transposed
                else (convgrad.conv, convgrad.conv_backward))

    def four(f, a, c):
        return f(a.real, c.real) - f(a.imag, c.imag) + 1j * (f(a.real, c.imag) + f(a.imag, c.real))

    kw = case.kwargs()
    expect_y = four(lambda a, c: fwd(a, c, **kw), x, w) + (0 if b is None else b.reshape(-1, *(1,) * case.ndim))
    expect_dx = four(lambda g, c: bwd(g, x.real, c, **kw, needs=("input",)).input, dy, np.conj(w))
    expect_dw = four(lambda g, a: bwd(g, a, w.real, **kw, needs=("weight",)).weight, dy, np.conj(x))
    for ours, expect in ((y, expect_y), (dx, expect_dx), (dw, expect_dw), (db, dy.sum(axis=(0, *range(2, dy.ndim))))):
        assert np.abs(ours - expect).max(initial=0.0) < 1e-10 * max(1.0, float(np.abs(expect).max(initial=0.0)))
