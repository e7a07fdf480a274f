"""JAX as a second oracle: ``conv_general_dilated`` and its backward against ``jax.lax`` and ``jax.vjp``.

Covers what PyTorch cannot check: negative padding (a crop), lhs (input) dilation, batch groups,
every dimension-numbers permutation; float64 within ~1e-10. Also JAX's own convolution test
configurations (``tests/lax_autodiff_test.py``: ``testConvWithGeneralPaddingGrad``,
``testConvGeneralDilatedGrad``; ``tests/lax_test.py``: ``testConvGeneralDilated``), written out
as parameter lists, and, for the torch-style ``conv``/``conv_backward`` with ``input_dilation``
and negative padding, a plain-loop reference from the index formula and finite differences.

float64 in JAX needs ``jax_enable_x64``, a process-wide flag: it is switched on around each test
of this module only (``jax.enable_x64`` is a context manager), so it cannot leak into other tests
that share the worker.
"""

from __future__ import annotations

import itertools
import os

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import convgrad

jax = pytest.importorskip("jax")
lax = jax.lax

TOL = 1e-10

#: JAX compiles every new configuration (~0.2-0.5 s each): the sweeps draw a few per run (a new
#: sample each run); CONVGRAD_JAX_EXAMPLES=200 draws that many from each instead.
_MORE = int(os.environ.get("CONVGRAD_JAX_EXAMPLES", "0"))


def _examples(n: int) -> int:
    return _MORE or n


@pytest.fixture(autouse=True)
def _x64():
    with jax.enable_x64(True):
        yield


def _rel(a, b) -> float:
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    assert a.shape == b.shape, (a.shape, b.shape)
    if a.size == 0:
        return 0.0
    return float(np.abs(a - b).max() / max(1.0, float(np.abs(b).max())))


def _jax_pass(x, w, dy_seed, **kw):
    """JAX's output and its vjp (lhs, rhs gradients) for a random cotangent."""
    f = lambda a, b: lax.conv_general_dilated(a, b, **kw)  # noqa: E731
    y, vjp = jax.vjp(f, x, w)
    dy = np.random.default_rng(dy_seed).standard_normal(y.shape)
    gx, gw = vjp(dy)
    return np.asarray(y), dy, np.asarray(gx), np.asarray(gw)


def _check_against_jax(x, w, seed=0, **kw):
    y_j, dy, gx_j, gw_j = _jax_pass(x, w, seed, **kw)
    y = convgrad.conv_general_dilated(x, w, **kw)
    assert y.shape == y_j.shape and y.dtype == np.float64
    assert _rel(y, y_j) < TOL
    g = convgrad.conv_general_dilated_backward(dy, x, w, **kw)
    assert g.bias is None
    assert _rel(g.input, gx_j) < TOL
    assert _rel(g.weight, gw_j) < TOL


def _operands(rng, lhs_shape, rhs_shape, lhs_perm=None, rhs_perm=None):
    """Random float64 operands; ``*_perm`` move canonical shapes into a layout as JAX's tests do."""
    x = rng.standard_normal(lhs_shape)
    w = rng.standard_normal(rhs_shape)
    if lhs_perm is not None:
        x = np.ascontiguousarray(np.transpose(x, lhs_perm))
        w = np.ascontiguousarray(np.transpose(w, rhs_perm))
    return x, w


# ------------------------------------------------------------------------------------------------
# random configurations: every dimension-numbers family, crops, both dilations, both groupings
# ------------------------------------------------------------------------------------------------


def _draw_dim(draw, k, d, l, max_h, max_crop):
    """An input length and a (lo, hi) padding that may crop, leaving an element and a non-empty output."""
    h = draw(st.integers(1, max_h))
    h_dil, k_eff = (h - 1) * l + 1, d * (k - 1) + 1
    lo = draw(st.integers(-min(max_crop, h_dil - 1), 2))
    hi_min = max(-(h_dil - 1 + min(lo, 0)), k_eff - h_dil - lo)
    return h, (lo, draw(st.integers(hi_min, max(hi_min, 2))))


@st.composite
def general_configs(draw):
    nd = draw(st.integers(1, 3))
    letters = "HWD"[:nd]
    grouping = draw(st.sampled_from(["none", "feature", "batch"]))
    G = draw(st.integers(2, 3)) if grouping != "none" else 1
    n_per = draw(st.integers(1, 2))
    c_per = draw(st.integers(1, 3))
    o_per = draw(st.integers(1, 2))
    if grouping == "batch":
        N, C, O, I, fgc, bgc = n_per * G, c_per, o_per * G, c_per, 1, G
    else:
        N, C, O, I, fgc, bgc = n_per, c_per * G, o_per * G, c_per, G, 1
    K = tuple(draw(st.integers(1, 3)) for _ in range(nd))
    S = tuple(draw(st.integers(1, 3)) for _ in range(nd))
    Dk = tuple(draw(st.integers(1, 2)) for _ in range(nd))
    L = tuple(draw(st.integers(1, 3)) for _ in range(nd))
    H, pads = zip(*(_draw_dim(draw, k, d, l, 5 if nd < 3 else 3, 2) for k, d, l in zip(K, Dk, L)))
    lhs = "".join(draw(st.permutations("NC" + letters)))
    rhs = "".join(draw(st.permutations("OI" + letters)))
    out = "".join(draw(st.permutations("NC" + letters)))
    spatial = [c for c in rhs if c not in "OI"]  # JAX: per-dim arguments follow the rhs string's order
    canon_lhs = dict(zip("NC" + "".join(spatial), (N, C, *H)))
    canon_rhs = dict(zip("OI" + "".join(spatial), (O, I, *K)))
    lhs_shape = tuple(canon_lhs[c] for c in lhs)
    rhs_shape = tuple(canon_rhs[c] for c in rhs)
    kw = dict(window_strides=S, padding=tuple(pads), lhs_dilation=L, rhs_dilation=Dk,
              dimension_numbers=(lhs, rhs, out), feature_group_count=fgc, batch_group_count=bgc)
    return lhs_shape, rhs_shape, kw, draw(st.integers(0, 2**16))


@settings(max_examples=_examples(10))
@given(general_configs())
def test_random_configurations_against_jax(config):
    lhs_shape, rhs_shape, kw, seed = config
    x, w = _operands(np.random.default_rng(seed), lhs_shape, rhs_shape)
    _check_against_jax(x, w, seed, **kw)


@pytest.mark.parametrize("padding,size,stride,dil",
                         [("SAME", 10, 2, 1), ("SAME", 9, 2, 2), ("SAME_LOWER", 7, 3, 2), ("same_lower", 10, 2, 1),
                          ("VALID", 4, 1, 3)])
def test_string_padding_matches_jax(padding, size, stride, dil):
    rng = np.random.default_rng(size)
    x, w = rng.standard_normal((2, 3, size, 5)), rng.standard_normal((4, 3, 2, 3))
    _check_against_jax(x, w, window_strides=(stride, 1), padding=padding, rhs_dilation=(dil, 1),
                       dimension_numbers=("NCHW", "OIHW", "NCHW"))


def test_conv_dimension_numbers_object_and_default():
    rng = np.random.default_rng(3)
    x, w = rng.standard_normal((2, 5, 6, 3)), rng.standard_normal((2, 3, 3, 4))
    dn = lax.conv_dimension_numbers(x.shape, w.shape, ("NHWC", "HWIO", "NHWC"))
    _check_against_jax(x, w, window_strides=(1, 2), padding=((1, -1), (0, 2)), dimension_numbers=dn)
    x2, w2 = rng.standard_normal((2, 3, 6)), rng.standard_normal((4, 3, 2))
    _check_against_jax(x2, w2, window_strides=(2,), padding=((-1, 1),), lhs_dilation=(2,))


def test_degenerate_shapes_give_jaxs_zeros():
    """A zero-size spatial dim, a crop past the input (H=1, pads (2, -2)), a kernel past the padded input."""
    rng = np.random.default_rng(4)
    cases = [((2, 3, 0, 4), (2, 3, 1, 2), ((7, 13), (0, 0))), ((1, 2, 1), (3, 2, 1), ((2, -2),)),
             ((1, 2, 3), (3, 2, 5), ((0, 0),))]
    for lhs_shape, rhs_shape, pads in cases:
        x, w = rng.standard_normal(lhs_shape), rng.standard_normal(rhs_shape)
        _check_against_jax(x, w, window_strides=(1,) * (x.ndim - 2), padding=pads)


def test_preferred_element_type_and_precision():
    rng = np.random.default_rng(5)
    x, w = rng.standard_normal((2, 4, 7)).astype(np.float32), rng.standard_normal((3, 4, 3)).astype(np.float32)
    y = convgrad.conv_general_dilated(x, w, (2,), [(-1, 2)], lhs_dilation=(2,), preferred_element_type=np.float64,
                                      precision=lax.Precision.HIGHEST)
    assert y.dtype == np.float64
    ref = convgrad.conv_general_dilated(x.astype(np.float64), w.astype(np.float64), (2,), [(-1, 2)], lhs_dilation=(2,))
    assert _rel(y, ref) < TOL
    assert convgrad.conv_general_dilated(x, w, (1,), "VALID", precision=("highest", "default")).dtype == np.float32


# ------------------------------------------------------------------------------------------------
# JAX's own test configurations
# ------------------------------------------------------------------------------------------------


def _general_padding_grad_cases():
    """lax_autodiff_test.py ``testConvWithGeneralPaddingGrad`` (both shape families, every stride/pad/dilation).

    JAX runs each (strides, padding, lhs_dil, rhs_dil) for b, i, j in {2, 3}^3; two of those eight
    shape triples are kept here (the smallest and the largest), the other lists are complete.
    """
    cases = []
    for b, i, j in [(2, 2, 2), (3, 3, 3)]:
        for strides, padding, lhs_dil in itertools.product(
                [(1, 1), (1, 2), (2, 1)], [((0, 0), (0, 0)), ((-1, 0), (0, -1)), ((1, 0), (0, 1))], [(1, 1), (2, 1)]):
            cases.append(((b, i, 3, 4), (j, i, 1, 2), strides, padding, lhs_dil, (1, 1)))
    for padding, lhs_dil, rhs_dil in itertools.product([((1, 1),), ((0, 0),)], [(1,), (2,)], [(1,), (2,)]):
        cases.append(((4, 2, 1), (3, 2, 1), (1,), padding, lhs_dil, rhs_dil))
    return cases


@settings(max_examples=_examples(6))
@given(st.sampled_from(_general_padding_grad_cases()))
def test_jax_conv_with_general_padding_grad_cases(case):
    lhs_shape, rhs_shape, strides, padding, lhs_dil, rhs_dil = case
    x, w = _operands(np.random.default_rng(len(lhs_shape)), lhs_shape, rhs_shape)
    _check_against_jax(x, w, window_strides=strides, padding=padding, lhs_dilation=lhs_dil, rhs_dilation=rhs_dil)


_DIM_NUMS = [(("NCHW", "OIHW", "NCHW"), ([0, 1, 2, 3], [0, 1, 2, 3])),
             (("NHWC", "HWIO", "NHWC"), ([0, 2, 3, 1], [2, 3, 1, 0])),
             (("NHWC", "OIHW", "NCHW"), ([0, 2, 3, 1], [0, 1, 2, 3])),
             (("NCHW", "HWIO", "NHWC"), ([0, 1, 2, 3], [2, 3, 1, 0]))]


def _general_dilated_grad_cases():
    """lax_autodiff_test.py ``testConvGeneralDilatedGrad``: its full product, 4320 configurations."""
    cases = []
    for bgc, fgc in [(1, 1), (2, 1), (1, 2)]:
        for b, i, j in itertools.product([1, 2], repeat=3):
            for width in (6, 0):
                lhs = (b * bgc, i * fgc, width, 7) if width else (b * bgc, i * fgc, 0, 4)
                rhs = (j * bgc * fgc, i, 1, 2)
                pads = [((0, 0), (0, 0)), ((1, 0), (0, 1))] + ([((0, -1), (0, 0))] if width else [])
                for strides, rhs_dil, lhs_dil, padding, dn in itertools.product(
                        [(1, 1), (1, 2), (2, 1)], [(1, 1), (2, 2)], [(1, 1), (2, 1)], pads, _DIM_NUMS[:3]):
                    cases.append((lhs, rhs, strides, padding, lhs_dil, rhs_dil, dn, fgc, bgc))
    return cases


def _general_dilated_forward_cases():
    """lax_test.py ``testConvGeneralDilated``: its full product, 5184 configurations (w in {0, 10}; pads up to (10, 8), (7, 13))."""
    cases = []
    for bgc, fgc in [(1, 1), (2, 1), (1, 2)]:
        for width in (0, 10):
            for b, i, j in itertools.product([2, 3], repeat=3):
                lhs = (b * bgc, i * fgc, 9, width)
                rhs = (j * fgc * bgc, i, 4, 5)
                for dn, strides, padding, lhs_dil, rhs_dil in itertools.product(
                        [_DIM_NUMS[0], _DIM_NUMS[1], _DIM_NUMS[3]], [(1, 1), (2, 1)],
                        [((1, 2), (2, 0)), ((10, 8), (7, 13))], [(1, 1), (1, 2), (1, 4)], [(1, 1), (1, 2), (1, 4)]):
                    cases.append((lhs, rhs, strides, padding, lhs_dil, rhs_dil, dn, fgc, bgc))
    return cases


GRAD_CASES = _general_dilated_grad_cases()
FORWARD_CASES = _general_dilated_forward_cases()


def _run_jax_case(case, seed):
    lhs, rhs, strides, padding, lhs_dil, rhs_dil, (dn, (lhs_perm, rhs_perm)), fgc, bgc = case
    x, w = _operands(np.random.default_rng(seed), lhs, rhs, lhs_perm, rhs_perm)
    _check_against_jax(x, w, seed, window_strides=strides, padding=padding, lhs_dilation=lhs_dil,
                       rhs_dilation=rhs_dil, dimension_numbers=dn, feature_group_count=fgc, batch_group_count=bgc)


def test_the_jax_case_lists_have_jaxs_sizes():
    """Guards the transcription: JAX's products have these sizes."""
    assert len(_general_padding_grad_cases()) == 2 * 18 + 8
    assert len(GRAD_CASES) == 3 * 8 * (3 * 2 * 2 * 3 * 3 + 3 * 2 * 2 * 2 * 3)
    assert len(FORWARD_CASES) == 3 * 2 * 8 * 3 * 2 * 2 * 3 * 3


@settings(max_examples=_examples(6))
@given(st.sampled_from(GRAD_CASES), st.integers(0, 2**16))
def test_jax_conv_general_dilated_grad_cases(case, seed):
    _run_jax_case(case, seed)


@settings(max_examples=_examples(4))
@given(st.sampled_from(FORWARD_CASES), st.integers(0, 2**16))
def test_jax_conv_general_dilated_forward_cases(case, seed):
    _run_jax_case(case, seed)


# ------------------------------------------------------------------------------------------------
# the torch-style functions: input_dilation and negative padding against plain loops
# ------------------------------------------------------------------------------------------------


def _read(x, n, c, q, L):
    """x at position q of the input dilated by L (padding and crop already folded into q), or 0."""
    idx = []
    for qd, ld, hd in zip(q, L, x.shape[2:]):
        if qd < 0 or qd % ld or qd // ld >= hd:
            return None
        idx.append(qd // ld)
    return (n, c, *idx)


def _loops(x, w, dy, S, P, D, L, G):
    """y, dx, dw from the index relation q = i*S + k*D - P_lo over the L-dilated input (no shared code)."""
    N, C = x.shape[:2]
    O, Cg = w.shape[:2]
    Og = O // G
    K = w.shape[2:]
    H_out = tuple(((h - 1) * l + 1 + lo + hi - (d * (k - 1) + 1)) // s + 1
                  for h, l, (lo, hi), k, d, s in zip(x.shape[2:], L, P, K, D, S))
    y = np.zeros((N, O, *H_out))
    dx, dw = np.zeros_like(x), np.zeros_like(w)
    for n, o in itertools.product(range(N), range(O)):
        g = o // Og
        for i in itertools.product(*map(range, H_out)):
            for c in range(Cg):
                for k in itertools.product(*map(range, K)):
                    q = [ii * s + kk * d - lo for ii, kk, s, d, (lo, _) in zip(i, k, S, D, P)]
                    at = _read(x, n, g * Cg + c, q, L)
                    if at is None:
                        continue
                    y[(n, o, *i)] += w[(o, c, *k)] * x[at]
                    dx[at] += dy[(n, o, *i)] * w[(o, c, *k)] if dy is not None else 0.0
                    dw[(o, c, *k)] += dy[(n, o, *i)] * x[at] if dy is not None else 0.0
    return y, dx, dw


@st.composite
def torch_style_configs(draw):
    nd = draw(st.integers(1, 2))
    G = draw(st.integers(1, 2))
    N, Cg, Og = draw(st.integers(1, 2)), draw(st.integers(1, 2)), draw(st.integers(1, 2))
    K = tuple(draw(st.integers(1, 3)) for _ in range(nd))
    S = tuple(draw(st.integers(1, 3)) for _ in range(nd))
    D = tuple(draw(st.integers(1, 2)) for _ in range(nd))
    L = tuple(draw(st.integers(1, 3)) for _ in range(nd))
    H, P = zip(*(_draw_dim(draw, k, d, l, 5, 3) for k, d, l in zip(K, D, L)))
    return (N, Cg * G, *H), (Og * G, Cg, *K), S, tuple(P), D, L, G, draw(st.integers(0, 2**16))


@settings(max_examples=20)
@given(torch_style_configs())
def test_conv_input_dilation_and_crop_against_loops(config):
    x_shape, w_shape, S, P, D, L, G, seed = config
    rng = np.random.default_rng(seed)
    x, w = rng.standard_normal(x_shape), rng.standard_normal(w_shape)
    kw = dict(stride=S, padding=P, dilation=D, groups=G, input_dilation=L)
    y = convgrad.conv(x, w, **kw)
    dy = rng.standard_normal(y.shape)
    y_ref, dx_ref, dw_ref = _loops(x, w, dy, S, P, D, L, G)
    assert _rel(y, y_ref) < TOL
    g = convgrad.conv_backward(dy, x, w, **kw)
    assert _rel(g.input, dx_ref) < TOL and _rel(g.weight, dw_ref) < TOL
    assert _rel(g.bias, dy.sum(axis=(0, *range(2, dy.ndim)))) < TOL
    assert _rel(convgrad.conv_input(x.shape, w, dy, **kw), dx_ref) < TOL
    assert _rel(convgrad.conv_weight(x, w.shape, dy, **kw), dw_ref) < TOL
    # finite differences: conv is linear in x and in w, so the central difference is exact up to rounding
    v, u, eps = rng.standard_normal(x.shape), rng.standard_normal(w.shape), 1e-3
    fd_x = np.vdot(dy, convgrad.conv(x + eps * v, w, **kw) - convgrad.conv(x - eps * v, w, **kw)) / (2 * eps)
    fd_w = np.vdot(dy, convgrad.conv(x, w + eps * u, **kw) - convgrad.conv(x, w - eps * u, **kw)) / (2 * eps)
    assert abs(fd_x - np.vdot(g.input, v)) < 1e-8 * max(1.0, abs(fd_x))
    assert abs(fd_w - np.vdot(g.weight, u)) < 1e-8 * max(1.0, abs(fd_w))


def test_cropped_elements_get_exactly_zero_gradient():
    rng = np.random.default_rng(7)
    x, w = rng.standard_normal((2, 3, 9, 8)), rng.standard_normal((4, 3, 2, 2))
    pads = ((-3, 1), (2, -4))
    g = convgrad.conv_backward(rng.standard_normal(convgrad.conv(x, w, padding=pads).shape), x, w, padding=pads)
    assert np.all(g.input[:, :, :3, :] == 0.0) and np.all(g.input[:, :, :, -4:] == 0.0)
    assert np.all(g.input[:, :, 3:, :-4] != 0.0)
    # input dilation 3 and a crop of 2: x[0] sits at a cropped position, x[1] at dilated position 3 survives
    g = convgrad.conv_backward(np.ones((1, 1, 8)), np.ones((1, 1, 4)), np.ones((1, 1, 1)), padding=((-2, 0),),
                               input_dilation=3)
    np.testing.assert_array_equal(g.input, [[[0.0, 1.0, 1.0, 1.0]]])


def test_unbatched_and_float32():
    rng = np.random.default_rng(8)
    x, w = rng.standard_normal((3, 6)).astype(np.float32), rng.standard_normal((2, 3, 2)).astype(np.float32)
    y = convgrad.conv1d(x, w, padding=((-1, 2),), input_dilation=2)
    y64 = convgrad.conv1d(x.astype(np.float64), w.astype(np.float64), padding=((-1, 2),), input_dilation=2)
    assert y.dtype == np.float32 and y.shape == y64.shape == (2, 11)
    assert _rel(y, y64) < 1e-5
    dx = convgrad.conv1d_input(x.shape, w, np.ones_like(y), padding=((-1, 2),), input_dilation=2)
    assert dx.shape == x.shape and dx.dtype == np.float32 and np.all(dx[:, 0] == 0.0)


def test_inputs_not_modified():
    rng = np.random.default_rng(9)
    x, w = rng.standard_normal((1, 2, 5, 5)), rng.standard_normal((2, 2, 2, 2))
    x0, w0 = x.copy(), w.copy()
    y = convgrad.conv2d(x, w, padding=((-1, 1), (1, -2)), input_dilation=(2, 1))
    dy = np.ones_like(y)
    convgrad.conv_backward(dy, x, w, padding=((-1, 1), (1, -2)), input_dilation=(2, 1))
    convgrad.conv_general_dilated_backward(np.ones((1, 2, 4, 4)), x, w, (1, 1), "VALID", batch_group_count=1)
    np.testing.assert_array_equal(x, x0)
    np.testing.assert_array_equal(w, w0)


def test_explain_prints_calls_that_run():
    """The NumPy line that builds x~ and the JAX call of explain's general section, executed."""
    rng = np.random.default_rng(10)
    x, w = rng.standard_normal((2, 4, 5, 6)), rng.standard_normal((6, 2, 2, 3))
    kw = dict(stride=(2, 1), padding=((-2, 1), (1, -3)), dilation=(1, 2), groups=2, input_dilation=(3, 2))
    ex = convgrad.explain(x.shape, w.shape, **kw)
    calls = ex.to_dict()["general_calls"]
    space = {"np": np, "jax": jax, "x": x, "w": w}
    exec(calls["numpy"], space)  # noqa: S102 - convgrad's own printed code
    np.testing.assert_array_equal(space["xt"], convgrad.general.reduce_input(x, ex.general))
    exec(calls["jax"], space)  # noqa: S102
    assert _rel(convgrad.conv(x, w, **kw), space["y"]) < TOL
    assert calls["numpy"] in ex.text() and calls["jax"] in ex.text()
