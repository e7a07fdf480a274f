"""Second-order (double backward) and forward-mode (JVP) derivatives: convgrad.higher.

Three independent checks: PyTorch's autograd (``torch.autograd.grad(..., create_graph=True)``
as ``gradgradcheck`` differentiates, and ``torch.func.jvp``); central differences of
:func:`convgrad.conv_backward` / :func:`convgrad.conv` (exact up to rounding: the quantities are
quadratic in the step, so a central difference has no truncation error); and a plain-loop
bilinear tensor built from the index formula alone, differentiated by hand.
"""

from __future__ import annotations

import itertools
import random

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import convgrad
from _configs import GRID, Case, max_rel, random_case, torch_conv

torch = pytest.importorskip("torch")

TOL = 1e-10


def _operands(case: Case, seed: int, dtype=np.float64):
    """x, w, dy and the three grad_grad operands (or tangents) of ``case``, drawn from ``seed``."""
    x, w, _ = case.arrays(seed, dtype)
    y, _ = case.run(x, w, None)
    rng = np.random.default_rng(seed + 1)
    dy, ggx, ggw = (rng.standard_normal(shape).astype(dtype) for shape in (y.shape, x.shape, w.shape))
    ggb = rng.standard_normal(case.out_channels).astype(dtype)
    return x, w, dy, ggx, ggw, ggb


def _double_backward(case: Case, *args, **kwargs):
    func = convgrad.conv_transpose_double_backward if case.transposed else convgrad.conv_double_backward
    return func(*args, **case.kwargs(), **kwargs)


def _jvp(case: Case, *args, **kwargs):
    func = convgrad.conv_transpose_jvp if case.transposed else convgrad.conv_jvp
    return func(*args, **case.kwargs(), **kwargs)


def _zeros_for_none(value, like):
    return np.zeros_like(like) if value is None else value


def torch_double_backward(case: Case, x, w, dy, ggx, ggw, ggb):
    """The gradients of <ggx, dX> + <ggw, dW> + <ggb, db> w.r.t. (dy, x, w), by differentiating torch's backward."""
    leaf = lambda a: torch.tensor(a, requires_grad=True)  # noqa: E731
    tx, tw, tb, tdy = leaf(x), leaf(w), leaf(np.zeros(case.out_channels, x.dtype)), leaf(dy)
    y = torch_conv(case, tx, tw, tb)
    dx, dw, db = torch.autograd.grad(y, (tx, tw, tb), tdy, create_graph=True)
    l2 = (dx * torch.tensor(ggx)).sum() + (dw * torch.tensor(ggw)).sum() + (db * torch.tensor(ggb)).sum()
    grads = torch.autograd.grad(l2, (tdy, tx, tw), allow_unused=True, materialize_grads=True)
    return [g.detach().numpy() for g in grads]


def torch_jvp(case: Case, x, w, b, tx, tw, tb):
    t = torch.tensor
    y, ty = torch.func.jvp(lambda x_, w_, b_: torch_conv(case, x_, w_, b_), (t(x), t(w), t(b)), (t(tx), t(tw), t(tb)))
    return y.numpy(), ty.numpy()


def _check_double_backward_against_torch(case: Case, seed: int, none=()):
    x, w, dy, ggx, ggw, ggb = _operands(case, seed)
    given_ = {"ggx": ggx, "ggw": ggw, "ggb": ggb}
    for name in none:
        given_[name] = None
    got = _double_backward(case, given_["ggx"], given_["ggw"], given_["ggb"], dy, x, w)
    want = torch_double_backward(case, x, w, dy, _zeros_for_none(given_["ggx"], x),
                                 _zeros_for_none(given_["ggw"], w), _zeros_for_none(given_["ggb"], ggb))
    for name, g, t in zip(("grad_output", "input", "weight"), got, want):
        assert g.shape == t.shape and g.dtype == np.float64, (name, g.shape, t.shape)
        assert max_rel(g, t) < TOL, (name, max_rel(g, t))


def _check_jvp_against_torch(case: Case, seed: int, none=()):
    x, w, _, tx, tw, tb = _operands(case, seed)
    b = np.random.default_rng(seed + 2).standard_normal(case.out_channels)
    tangents = {"tx": tx, "tw": tw, "tb": tb}
    for name in none:
        tangents[name] = None
    y, ty = _jvp(case, x, w, b, tangents["tx"], tangents["tw"], tangents["tb"])
    want_y, want_ty = torch_jvp(case, x, w, b, _zeros_for_none(tangents["tx"], x), _zeros_for_none(tangents["tw"], w),
                                _zeros_for_none(tangents["tb"], b))
    assert max_rel(y, want_y) < TOL and max_rel(ty, want_ty) < TOL, (max_rel(y, want_y), max_rel(ty, want_ty))


# ------------------------------------------------------------------------------------------------
# against PyTorch
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("case", GRID, ids=str)
def test_double_backward_matches_torch_autograd(case):
    _check_double_backward_against_torch(case, seed=3)


@pytest.mark.parametrize("case", GRID, ids=str)
def test_jvp_matches_torch_func_jvp(case):
    _check_jvp_against_torch(case, seed=4)


_NONES = st.sets(st.sampled_from(("ggx", "ggw", "ggb")), max_size=3)


@settings(max_examples=15)
@given(seed=st.integers(0, 2**31), transposed=st.booleans(), none=_NONES)
def test_double_backward_matches_torch_on_random_configurations(seed, transposed, none):
    case = random_case(random.Random(seed), transposed=transposed)
    _check_double_backward_against_torch(case, seed % 1000, tuple(none))


@settings(max_examples=12)
@given(seed=st.integers(0, 2**31), transposed=st.booleans(), none=_NONES)
def test_jvp_matches_torch_on_random_configurations(seed, transposed, none):
    case = random_case(random.Random(seed), transposed=transposed)
    _check_jvp_against_torch(case, seed % 1000, tuple({"ggx": "tx", "ggw": "tw", "ggb": "tb"}[n] for n in none))


def test_float32_within_a_small_multiple_of_torchs_own_float32_error():
    case = Case(2, 4, 6, 2, (9, 8), (3, 2), stride=(2, 3), padding=(1, 2), dilation=(2, 1))
    ops64 = _operands(case, 5)
    want = torch_double_backward(case, *ops64)
    x, w, dy, ggx, ggw, ggb = (a.astype(np.float32) for a in ops64)
    ours = _double_backward(case, ggx, ggw, ggb, dy, x, w)
    theirs = torch_double_backward(case, *(a.astype(np.float32) for a in ops64))
    for g, t32, t64 in zip(ours, theirs, want):
        assert g.dtype == np.float32
        assert max_rel(g, t64) <= 10 * max(max_rel(t32, t64), 1e-7)


# ------------------------------------------------------------------------------------------------
# central differences of the first-order functions (no PyTorch; any rank)
# ------------------------------------------------------------------------------------------------

FD_CASES = [
    Case(2, 2, 4, 2, (6, 5), (3, 2), stride=(2, 1), padding=((1, 0), (2, 1)), dilation=(1, 2), padding_mode="zeros"),
    Case(1, 2, 3, 1, (7,), (3,), stride=2, padding=2, padding_mode="reflect"),
    Case(2, 3, 2, 1, (5, 4), (3, 3), padding="same", padding_mode="circular"),
    Case(1, 2, 2, 1, (4, 3, 3, 3), (2, 2, 1, 2), stride=(1, 2, 1, 1), padding=1, dilation=(1, 1, 2, 1)),  # 4-D
    Case(2, 4, 2, 2, (3, 4), (3, 2), stride=(2, 3), padding=(1, 0), output_padding=(1, 2), transposed=True),
    Case(1, 2, 2, 1, (2, 2, 2, 2), (2, 1, 2, 2), stride=2, padding=((1, 0), 0, 0, (0, 1)), transposed=True),  # 4-D
]


def _backward(case: Case, dy, x, w):
    func = convgrad.conv_transpose_backward if case.transposed else convgrad.conv_backward
    return func(dy, x, w, **case.kwargs())


def _inner(a, b) -> float:
    return float(np.sum(a * b))


@pytest.mark.parametrize("case", FD_CASES, ids=str)
def test_double_backward_is_the_derivative_of_conv_backward(case):
    x, w, dy, ggx, ggw, ggb = _operands(case, 6)
    rng = np.random.default_rng(7)
    vdy, vx, vw = (rng.standard_normal(a.shape) for a in (dy, x, w))

    def l2(t):
        g = _backward(case, dy + t * vdy, x + t * vx, w + t * vw)
        return _inner(ggx, g.input) + _inner(ggw, g.weight) + _inner(ggb, g.bias)

    # l2 is a quadratic polynomial in t: the central difference is its derivative at 0, exactly
    directional = (l2(1.0) - l2(-1.0)) / 2
    g = _double_backward(case, ggx, ggw, ggb, dy, x, w)
    predicted = _inner(g.grad_output, vdy) + _inner(g.input, vx) + _inner(g.weight, vw)
    assert abs(directional - predicted) <= TOL * max(1.0, abs(directional))


@pytest.mark.parametrize("case", FD_CASES, ids=str)
def test_jvp_is_the_derivative_of_conv(case):
    x, w, _, tx, tw, tb = _operands(case, 8)
    b = np.random.default_rng(9).standard_normal(case.out_channels)
    y, ty = _jvp(case, x, w, b, tx, tw, tb)

    def out(t):
        return case.run(x + t * tx, w + t * tw, b + t * tb)[0]

    np.testing.assert_allclose(y, out(0.0), rtol=0, atol=TOL)
    np.testing.assert_allclose(ty, (out(1.0) - out(-1.0)) / 2, rtol=0, atol=1e-9)


# ------------------------------------------------------------------------------------------------
# a plain-loop oracle: the convolution as a bilinear tensor from the index formula
# ------------------------------------------------------------------------------------------------

_NP_MODE = {"reflect": "reflect", "replicate": "edge", "circular": "wrap"}


def plain_bilinear_tensor(x_shape, w_shape, stride, pads, dilation, groups, mode):
    """``T`` with ``y = einsum(T, x, w)``, by loops over every output, channel and tap (no convgrad code).

    ``y[n, o, i] = sum_c sum_k w[o, c, k] * xp[n, g*C_g + c, i*S + k*D]`` with ``xp`` the padded input,
    whose position ``p`` holds ``x[src[p]]`` (or zero), ``src`` NumPy's own padding of ``arange(H)``.
    """
    n_batch, _, *size = x_shape
    c_out, c_g, *kernel = w_shape
    out_size = [(h + lo + hi - d * (k - 1) - 1) // s + 1 for h, k, s, d, (lo, hi) in zip(size, kernel, stride, dilation, pads)]
    if mode == "zeros":
        src = [np.pad(np.arange(h), p, constant_values=-1) for h, p in zip(size, pads)]
    else:
        src = [np.pad(np.arange(h), p, mode=_NP_MODE[mode]) for h, p in zip(size, pads)]
    t = np.zeros((n_batch, c_out, *out_size, *x_shape, *w_shape))
    for n, o, c in itertools.product(range(n_batch), range(c_out), range(c_g)):
        g = o // (c_out // groups)
        for i in itertools.product(*map(range, out_size)):
            for k in itertools.product(*map(range, kernel)):
                pos = [src[d][i[d] * stride[d] + k[d] * dilation[d]] for d in range(len(size))]
                if min(pos) >= 0:
                    t[(n, o, *i, n, g * c_g + c, *pos, o, c, *k)] += 1
    return t


PLAIN_CASES = [  # padding as (lo, hi) pairs
    Case(2, 2, 2, 1, (6,), (3,), stride=2, padding=((2, 1),)),
    Case(1, 4, 2, 2, (5, 4), (2, 2), stride=(1, 2), padding=((1, 1), (0, 1)), dilation=(2, 1)),
    Case(1, 2, 2, 1, (5,), (3,), stride=2, padding=((2, 2),), padding_mode="reflect"),
    Case(2, 1, 2, 1, (4,), (2,), padding=((3, 1),), dilation=2, padding_mode="circular"),
]


def _tuple(v, nd):
    return (v,) * nd if isinstance(v, int) else tuple(v)


@pytest.mark.parametrize("case, transposed", [(c, False) for c in PLAIN_CASES] + [
    (c, True) for c in PLAIN_CASES if c.padding_mode == "zeros"  # a transposed convolution pads with zeros only
], ids=lambda v: {False: "conv", True: "transposed"}[v] if isinstance(v, bool) else str(v))
def test_against_plain_loops(case, transposed):
    nd, w_shape = case.ndim, case.weight_shape
    stride, dilation = _tuple(case.stride, nd), _tuple(case.dilation, nd)
    t = plain_bilinear_tensor(case.input_shape, w_shape, stride, case.padding, dilation, case.groups, case.padding_mode)
    y_shape, x_shape = t.shape[:len(case.input_shape)], case.input_shape
    t = t.reshape(int(np.prod(y_shape)), int(np.prod(x_shape)), int(np.prod(w_shape)))  # (Y, X, W)
    if transposed:
        # the transposed convolution with the same weight and parameters is the adjoint in x: T(y, x, w) read as T'(x, y, w)
        t, x_shape, y_shape = t.swapaxes(0, 1), y_shape, x_shape
        tail = tuple((h + lo + hi - d * (k - 1) - 1) % s
                     for h, k, s, d, (lo, hi) in zip(case.size, case.kernel, stride, dilation, case.padding))
        case = Case(case.batch, case.out_channels, case.in_channels, case.groups, x_shape[2:], case.kernel,
                    stride=case.stride, padding=case.padding, dilation=case.dilation, transposed=True,
                    output_padding=tail)
        assert case.weight_shape == w_shape
    rng = np.random.default_rng(11)
    x, w, dy, ggx, ggw = (rng.standard_normal(s) for s in (x_shape, w_shape, y_shape, x_shape, w_shape))
    ggb = rng.standard_normal(y_shape[1])
    f = np.ravel
    ggb_full = np.broadcast_to(ggb.reshape(1, -1, *(1,) * nd), y_shape)

    # L2 = <ggx, T(dy, ., w)> + <ggw, T(dy, x, .)> + <ggb, sum dy>, differentiated by hand
    want_gdy = (np.einsum("yxw,x,w->y", t, f(ggx), f(w)) + np.einsum("yxw,x,w->y", t, f(x), f(ggw))).reshape(y_shape)
    want_gx = np.einsum("yxw,y,w->x", t, f(dy), f(ggw)).reshape(x_shape)
    want_gw = np.einsum("yxw,y,x->w", t, f(dy), f(ggx)).reshape(w_shape)
    g = _double_backward(case, ggx, ggw, ggb, dy, x, w)
    for got, want in zip(g, (want_gdy + ggb_full, want_gx, want_gw)):
        np.testing.assert_allclose(got, want, rtol=0, atol=TOL)
    y, ty = _jvp(case, x, w, None, ggx, ggw, None)
    np.testing.assert_allclose(y, np.einsum("yxw,x,w->y", t, f(x), f(w)).reshape(y_shape), rtol=0, atol=TOL)
    np.testing.assert_allclose(ty, want_gdy, rtol=0, atol=TOL)


# ------------------------------------------------------------------------------------------------
# behaviour: None operands, needs, unbatched, dtypes, inputs untouched
# ------------------------------------------------------------------------------------------------

CASE = Case(2, 4, 6, 2, (7, 6), (3, 2), stride=(2, 1), padding=1, dilation=(1, 2), padding_mode="replicate")


def test_none_operands_are_zeros():
    x, w, dy, ggx, ggw, ggb = _operands(CASE, 12)
    full = _double_backward(CASE, ggx, ggw, ggb, dy, x, w)
    parts = [_double_backward(CASE, ggx, None, None, dy, x, w), _double_backward(CASE, None, ggw, None, dy, x, w),
             _double_backward(CASE, None, None, ggb, dy, x, w)]
    for name in ("grad_output", "input", "weight"):
        total = sum(getattr(p, name) for p in parts)
        np.testing.assert_allclose(total, getattr(full, name), rtol=0, atol=TOL)
    nothing = _double_backward(CASE, None, None, None, dy, x, w)
    assert [a.shape for a in nothing] == [dy.shape, x.shape, w.shape] and not any(a.any() for a in nothing)
    y, ty = _jvp(CASE, x, w, None)
    assert ty.shape == y.shape and not ty.any()


def test_needs_computes_only_what_is_asked():
    x, w, dy, ggx, ggw, ggb = _operands(CASE, 13)
    full = _double_backward(CASE, ggx, ggw, ggb, dy, x, w)
    only = _double_backward(CASE, ggx, ggw, ggb, dy, x, w, needs=("weight",))
    assert only.grad_output is None and only.input is None
    np.testing.assert_array_equal(only.weight, full.weight)
    assert _double_backward(CASE, ggx, ggw, ggb, dy, x, w, needs="input").weight is None


def test_unbatched_operands_give_unbatched_results():
    x, w, dy, ggx, ggw, ggb = _operands(CASE, 14)
    batched = _double_backward(CASE, ggx, ggw, ggb, dy, x, w)
    one = _double_backward(CASE, ggx[1], ggw, ggb, dy[1], x[1], w)
    single = _double_backward(CASE, ggx[1:2], ggw, ggb, dy[1:2], x[1:2], w)
    np.testing.assert_allclose(one.grad_output, single.grad_output[0], rtol=0, atol=TOL)
    np.testing.assert_allclose(one.input, single.input[0], rtol=0, atol=TOL)
    np.testing.assert_allclose(one.weight, single.weight, rtol=0, atol=TOL)
    assert batched.grad_output.shape == dy.shape
    y, ty = _jvp(CASE, x[0], w, None, ggx[0], ggw, ggb)
    y1, ty1 = _jvp(CASE, x[:1], w, None, ggx[:1], ggw, ggb)
    np.testing.assert_allclose(ty, ty1[0], rtol=0, atol=TOL)
    assert y.shape == y1.shape[1:]


def test_inputs_are_not_modified_and_read_only_inputs_work():
    ops = _operands(CASE, 15)
    copies = [a.copy() for a in ops]
    for a in ops:
        a.setflags(write=False)
    x, w, dy, ggx, ggw, ggb = ops
    _double_backward(CASE, ggx, ggw, ggb, dy, x, w)
    _jvp(CASE, x, w, ggb, ggx, ggw, ggb)
    for a, c in zip(ops, copies):
        np.testing.assert_array_equal(a, c)


def test_float16_and_integer_operands_follow_the_dtype_rules():
    x, w, dy, ggx, ggw, ggb = _operands(CASE, 16)
    g = _double_backward(CASE, ggx.astype(np.float16), None, None, dy.astype(np.float16), x.astype(np.float16),
                         w.astype(np.float16))
    assert all(a.dtype == np.float16 for a in g)
    y, ty = _jvp(CASE, np.ones(x.shape, int), np.ones(w.shape, int), None, np.ones(x.shape, int))
    assert y.dtype == ty.dtype == np.float64


# ------------------------------------------------------------------------------------------------
# errors
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name, index, message", [
    ("grad_grad_input", 0, r"conv_double_backward: grad_grad_input must have shape \(2, 4, 7, 6\) \(the shape of input\), got shape \(2, 4, 7, 5\)"),
    ("grad_grad_weight", 1, r"grad_grad_weight must have shape \(6, 2, 3, 2\) \(the shape of weight\), got shape \(6, 2, 3, 1\)"),
    ("grad_grad_bias", 2, r"grad_grad_bias must have shape \(6,\), \(6, 1, 1\), \(1, 6, 1, 1\) \(one value per output "
                          r"channel\), got \(5,\)"),
    ("grad_output", 3, r"grad_output must have shape \(2, 6, 4, 6\) \(the shape of the output\), got shape \(2, 6, 4, 5\)"),
])
def test_a_wrong_shape_names_the_parameter(name, index, message):
    x, w, dy, ggx, ggw, ggb = _operands(CASE, 17)
    args = [ggx, ggw, ggb, dy, x, w]
    args[index] = args[index][..., :-1]
    with pytest.raises(ValueError, match=message):
        convgrad.conv_double_backward(*args, **CASE.kwargs())


def test_jvp_errors_name_the_parameter():
    x, w, _, tx, tw, tb = _operands(CASE, 18)
    for kwargs, pattern in [
        (dict(tangent_input=tx[0]), r"conv_jvp: tangent_input must have shape \(2, 4, 7, 6\)"),
        (dict(tangent_weight=tw[:1]), r"conv_jvp: tangent_weight must have shape \(6, 2, 3, 2\)"),
        (dict(tangent_bias=tb[:2]), r"conv_jvp: tangent_bias must have shape \(6,\)"),
        (dict(bias=tb[:2]), r"conv_jvp: bias must have shape \(6,\)"),
    ]:
        with pytest.raises(ValueError, match=pattern):
            convgrad.conv_jvp(x, w, **kwargs, **CASE.kwargs())
    with pytest.raises(TypeError, match="conv_jvp: tangent_input must be a numeric array"):
        convgrad.conv_jvp(x, w, tangent_input=tx.astype(str), **CASE.kwargs())


def test_other_errors():
    x, w, dy, ggx, ggw, ggb = _operands(CASE, 19)
    with pytest.raises(ValueError, match=r"needs entries must be from \('grad_output', 'input', 'weight'\), got 'bias'"):
        convgrad.conv_double_backward(ggx, ggw, ggb, dy, x, w, **CASE.kwargs(), needs=("bias",))
    with pytest.raises(TypeError, match=r"conv_double_backward: grad_output must be an array of shape \(2, 6, 4, 6\)"):
        convgrad.conv_double_backward(ggx, ggw, ggb, None, x, w, **CASE.kwargs())
    with pytest.raises(ValueError, match="conv_transpose_double_backward: output_padding"):
        convgrad.conv_transpose_double_backward(None, None, None, np.ones((1, 1, 5)), np.ones((1, 1, 2)),
                                                np.ones((1, 1, 3)), stride=2, output_padding=2)
    with pytest.raises(ValueError, match="conv_transpose_jvp: unknown algorithm|conv_transpose_jvp: algorithm"):
        convgrad.conv_transpose_jvp(np.ones((1, 1, 2)), np.ones((1, 1, 3)), algorithm="nope")


# ------------------------------------------------------------------------------------------------
# explain: the printed calls, executed
# ------------------------------------------------------------------------------------------------

from _explain import explanation_of, grid_and_random  # noqa: E402

from convgrad.explain.higher import higher_order  # noqa: E402

# every transposed and padding-mode configuration of the grid, a quarter of the others, four random ones
# (the JAX snippets, seconds of compilation each, are run by scripts/check_framework_snippets.py jax, as the
# first-order ones; on these 27 configurations they agreed with conv_double_backward/conv_jvp to 1e-10, JAX 0.10.2)
EXPLAIN_CASES = [c for c in GRID if c.batch > 0 and (c.transposed or c.padding_mode != "zeros")] + [
    c for c in GRID if c.batch > 0 and not c.transposed and c.padding_mode == "zeros"][::4] + grid_and_random(
    4, seed=21, max_size=5)[-4:]


def _run_snippets(case: Case, frameworks):
    ex = explanation_of(case)
    x, w, dy, ggx, ggw, ggb = _operands(case, 22)
    b, (tx, tw, tb) = np.random.default_rng(23).standard_normal(case.out_channels), (ggx, ggw, ggb)
    want_db = _double_backward(case, ggx, ggw, ggb, dy, x, w)  # checked against torch above
    y, ty = _jvp(case, x, w, b, tx, tw, tb)
    want = {"gdy": want_db.grad_output, "gx": want_db.input, "gw": want_db.weight, "y": y, "ty": ty}
    ran = set()
    for quantity, entry in higher_order(ex).items():
        for framework, code in entry["calls"].items():
            if framework.split()[0] not in frameworks or code.startswith("#"):
                continue
            env = {"x": x, "w": w, "dy": dy, "ggx": ggx, "ggw": ggw, "ggb": ggb, "b": b, "tx": tx, "tw": tw, "tb": tb}
            exec(code, env)  # noqa: S102 - our own generated code
            checked = [name for name in want if name in env]
            assert checked, (quantity, framework, code)
            for name in checked:
                got = np.asarray(env[name].detach() if hasattr(env[name], "detach") else env[name])
                assert got.shape == want[name].shape, (framework, name, code)
                np.testing.assert_allclose(got, want[name], rtol=1e-10, atol=1e-10, err_msg=f"{framework}\n{code}")
            ran.add((quantity, framework.split()[0]))
    return ran


@pytest.mark.parametrize("case", EXPLAIN_CASES, ids=str)
def test_printed_higher_order_calls_compute_them(case):
    ran = _run_snippets(case, ("convgrad", "pytorch"))
    quantities = {q for q, _ in ran}
    assert quantities == {"double_backward_grad_output", "double_backward_input", "double_backward_weight",
                          "double_backward", "jvp"}
    if case.ndim <= 3 and (not case.transposed or all(isinstance(p, int) for p in _tuple(case.padding, case.ndim))):
        assert ("double_backward", "pytorch") in ran and ("jvp", "pytorch") in ran


def test_cli_explain_higher_order(capsys):
    from convgrad.cli import main

    args = ["explain", "--input", "1,2,6", "--weight", "3,2,3", "--stride", "2", "--higher-order"]
    assert main(args) == 0
    text = capsys.readouterr().out
    assert "SECOND-ORDER AND FORWARD-MODE DERIVATIVES AS OPERATIONS" in text
    assert "gx = convgrad.conv_input(x.shape, ggw, dy, stride=2, padding=0, dilation=1, groups=1)" in text
    assert main([*args, "--format", "json"]) == 0
    import json

    data = json.loads(capsys.readouterr().out)
    assert set(data["higher_order"]) == {"double_backward_grad_output", "double_backward_input",
                                         "double_backward_weight", "double_backward", "jvp"}
    assert main([*args, "--format", "svg"]) == 2
    assert capsys.readouterr().err.strip() == "convgrad explain: error: --higher-order needs --format text or json, got --format svg"


# ------------------------------------------------------------------------------------------------
# the array boundary (torch/JAX in, the same type out), complex operands, bias shapes
# ------------------------------------------------------------------------------------------------

def _crel(a, b) -> float:
    """``max|a - b| / max(1, max|b|)`` for complex arrays too (``max_rel`` reads float64: the real parts)."""
    a, b = np.asarray(a), np.asarray(b)
    assert a.shape == b.shape, (a.shape, b.shape)
    return float(np.max(np.abs(a - b)) / max(1.0, float(np.max(np.abs(b)))))


SMALL = Case(2, 4, 6, 2, (6, 5), (3, 2), stride=(2, 1), padding=1)
SMALL_T = Case(2, 4, 6, 2, (3, 4), (3, 2), stride=2, padding=1, output_padding=1, transposed=True)


def test_torch_tensors_in_torch_tensors_out_even_with_requires_grad():
    x = torch.randn(2, 3, 6, 6, dtype=torch.float64, requires_grad=True)
    w = torch.randn(4, 3, 3, 3, dtype=torch.float64, requires_grad=True)
    tx, dy = torch.randn(2, 3, 6, 6, dtype=torch.float64), torch.randn(2, 4, 4, 4, dtype=torch.float64)
    y, ty = convgrad.conv_jvp(x, w, None, tx)
    want_y, want_ty = torch.func.jvp(lambda a: torch.nn.functional.conv2d(a, w.detach()), (x.detach(),), (tx,))
    assert isinstance(ty, torch.Tensor) and ty.dtype == torch.float64 and not ty.requires_grad
    assert max_rel(y.numpy(), want_y.numpy()) < TOL and max_rel(ty.numpy(), want_ty.numpy()) < TOL
    g = convgrad.conv_double_backward(tx, None, None, dy, x, w)
    assert type(g).__name__ == "DoubleGradients" and all(isinstance(a, torch.Tensor) for a in g)
    assert x.grad is None and w.grad is None  # detached, nothing accumulated
    gt = convgrad.conv_transpose_double_backward(None, w, None, tx, dy, w)  # convT: (2,4,4,4) -> (2,3,6,6)
    yt = convgrad.conv_transpose_jvp(dy, w, torch.zeros(3, 1, 1, dtype=torch.float64), dy)
    assert all(isinstance(a, torch.Tensor) for a in (*gt, *yt)) and tuple(yt.output.shape) == (2, 3, 6, 6)


@pytest.mark.parametrize("case", [SMALL, SMALL_T], ids=str)
@pytest.mark.parametrize("real_xw", [False, True], ids=["complex_x_w", "real_x_w"])
def test_complex_grad_output_grad_grads_and_tangents_match_torch(case, real_xw):
    """torch.autograd.grad of (dX, dW, db) along complex (ggx, ggw, ggb), create_graph=True; torch.func.jvp."""
    rng = np.random.default_rng(31)

    def c(shape, real=False):
        a = rng.standard_normal(shape)
        return a if real else a + 1j * rng.standard_normal(shape)

    x, w = c(case.input_shape, real_xw), c(case.weight_shape, real_xw)
    y_shape = case.run(x.real, w.real, None)[0].shape
    dy, ggx, ggw, ggb = c(y_shape), c(x.shape), c(w.shape), c(case.out_channels)
    t = torch.tensor
    leaves = [t(a.astype(complex), requires_grad=True) for a in (x, w, np.zeros(case.out_channels, complex), dy)]
    y = torch_conv(case, *leaves[:3])
    first = torch.autograd.grad(y, leaves[:3], leaves[3], create_graph=True)
    want = torch.autograd.grad(first, (leaves[3], leaves[0], leaves[1]), (t(ggx), t(ggw), t(ggb)))
    got = _double_backward(case, ggx, ggw, ggb, dy, x, w)
    for name, g, tw in zip(("grad_output", "input", "weight"), got, want):
        assert g.dtype == np.complex128 and _crel(g, tw.numpy()) < TOL, (name, _crel(g, tw.numpy()))
    b = c(case.out_channels)
    want_y, want_ty = torch.func.jvp(lambda *a: torch_conv(case, *a), (t(x.astype(complex)), t(w.astype(complex)), t(b)),
                                     (t(ggx), t(ggw), t(ggb)))
    y, ty = _jvp(case, x, w, b, ggx, ggw, ggb)
    assert _crel(y, want_y.numpy()) < TOL and _crel(ty, want_ty.numpy()) < TOL


def test_complex_torch_tensors_come_back_as_complex_tensors():
    x = torch.randn(1, 2, 5, dtype=torch.complex128)
    w = torch.randn(3, 2, 2, dtype=torch.complex128)
    y, ty = convgrad.conv_jvp(x, w, None, x.conj())  # a lazily conjugated tangent is resolved at the boundary
    _, want = torch.func.jvp(lambda a: torch.nn.functional.conv1d(a, w), (x,), (x.conj().resolve_conj(),))
    assert ty.dtype == torch.complex128 and _crel(ty.numpy(), want.numpy()) < TOL


@pytest.mark.parametrize("form", [(1,), (1, 1), (1, 1, 1)], ids=["C", "C11", "1C11"])
def test_bias_tangent_bias_and_grad_grad_bias_take_every_bias_shape(form):
    x, w, dy, ggx, ggw, ggb = _operands(SMALL, 32)
    shape = {1: (6,), 2: (6, 1, 1), 3: (1, 6, 1, 1)}[len(form)]
    b = np.arange(6.0)
    want = _jvp(SMALL, x, w, b, ggx, ggw, ggb)
    got = _jvp(SMALL, x, w, b.reshape(shape), ggx, ggw, ggb.reshape(shape))
    for g, t_ in zip(got, want):
        np.testing.assert_array_equal(g, t_)
    want_db = _double_backward(SMALL, ggx, ggw, ggb, dy, x, w)
    got_db = _double_backward(SMALL, ggx, ggw, ggb.reshape(shape), dy, x, w)
    for g, t_ in zip(got_db, want_db):
        np.testing.assert_array_equal(g, t_)
    with pytest.raises(ValueError, match=r"conv_jvp: tangent_bias must have shape \(6,\), \(6, 1, 1\), \(1, 6, 1, 1\)"):
        convgrad.conv_jvp(x, w, b, tangent_bias=ggb.reshape(6, 1), **SMALL.kwargs())


def test_torch_errors_never_escape():
    x = torch.randn(2, 3, 6, 6, requires_grad=True)
    with pytest.raises(ValueError, match=r"conv_jvp: tangent_input must have shape \(2, 3, 6, 6\)"):
        convgrad.conv_jvp(x, torch.randn(4, 3, 3, 3), None, torch.randn(2, 3, 6, 5))
    with pytest.raises(TypeError, match="conv_double_backward: grad_output is a torch.Tensor on device 'meta'"):
        convgrad.conv_double_backward(None, None, None, torch.empty(2, 4, 4, 4, device="meta"), x,
                                      torch.randn(4, 3, 3, 3))
