"""The functional pooling API (convgrad.max_pool, avg_pool and their backward passes).

Checked against torch.nn.functional (values, gradients, indices), against plain loops written
from the index formula (sharing no code with convgrad.pooling), and by the adjoint identity.
"""

import importlib.util
import itertools
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import convgrad

torch = pytest.importorskip("torch")
F = torch.nn.functional


# ------------------------------------------------------------------------------------------------
# the plain-loop reference: one window at a time, straight from i*S + k*D - P
# ------------------------------------------------------------------------------------------------


def _out_size(h, k, s, p, d, ceil_mode):
    span = h + 2 * p - d * (k - 1) - 1
    o = (math.ceil(span / s) if ceil_mode else span // s) + 1
    if ceil_mode and (o - 1) * s >= h + p:
        o -= 1
    return o


def loop_max_pool(x, dy, k, s, p, d, ceil_mode):
    """(y, dx, flat indices) by loops over batch*channel planes, outputs and taps."""
    r = len(k)
    lead, size = x.shape[: x.ndim - r], x.shape[x.ndim - r:]
    out = tuple(_out_size(*a, ceil_mode) for a in zip(size, k, s, p, d))
    planes = x.reshape((-1,) + size)
    y = np.empty((planes.shape[0],) + out, x.dtype)
    idx = np.empty(y.shape, np.int64)
    dx = np.zeros(planes.shape, x.dtype)
    dyp = dy.reshape(y.shape)
    for n in range(planes.shape[0]):
        for o in itertools.product(*map(range, out)):
            best, where = -np.inf, None
            for tap in itertools.product(*map(range, k)):
                pos = tuple(oi * si + ki * di - pi for oi, si, ki, di, pi in zip(o, s, tap, d, p))
                if any(q < 0 or q >= h for q, h in zip(pos, size)):
                    continue
                v = planes[(n,) + pos]
                if where is None or v > best or np.isnan(v):
                    best, where = v, pos
            y[(n,) + o] = best
            idx[(n,) + o] = np.ravel_multi_index(where, size)
            dx[(n,) + where] += dyp[(n,) + o]
    return y.reshape(lead + out), dx.reshape(x.shape), idx.reshape(lead + out)


def loop_avg_pool(x, dy, k, s, p, ceil_mode, count_include_pad, divisor_override):
    r = len(k)
    lead, size = x.shape[: x.ndim - r], x.shape[x.ndim - r:]
    out = tuple(_out_size(h, kk, ss, pp, 1, ceil_mode) for h, kk, ss, pp in zip(size, k, s, p))
    planes = x.reshape((-1,) + size)
    y = np.zeros((planes.shape[0],) + out, x.dtype)
    dx = np.zeros(planes.shape, x.dtype)
    dyp = dy.reshape(y.shape)
    for n in range(planes.shape[0]):
        for o in itertools.product(*map(range, out)):
            start = [oi * si - pi for oi, si, pi in zip(o, s, p)]
            end = [min(a + kk, h + pp) for a, kk, h, pp in zip(start, k, size, p)]
            inside = [(max(a, 0), min(b, h)) for a, b, h in zip(start, end, size)]
            if divisor_override:
                div = divisor_override
            elif count_include_pad:
                div = math.prod(b - a for a, b in zip(start, end))
            else:
                div = math.prod(b - a for a, b in inside)
            cells = list(itertools.product(*(range(a, b) for a, b in inside)))
            y[(n,) + o] = sum(planes[(n,) + c] for c in cells) / div
            for c in cells:
                dx[(n,) + c] += dyp[(n,) + o] / div
    return y.reshape(lead + out), dx.reshape(x.shape)


# ------------------------------------------------------------------------------------------------
# against torch.nn.functional
# ------------------------------------------------------------------------------------------------


def torch_max(x, dy, rank, **kw):
    xt = torch.tensor(x, requires_grad=True)
    fn = getattr(F, f"max_pool{rank}d")
    y, idx = fn(xt, return_indices=True, **kw)
    y.backward(torch.tensor(dy))
    return y.detach().numpy(), xt.grad.numpy(), idx.numpy()


def torch_avg(x, dy, rank, **kw):
    xt = torch.tensor(x, requires_grad=True)
    y = getattr(F, f"avg_pool{rank}d")(xt, **kw)
    y.backward(torch.tensor(dy))
    return y.detach().numpy(), xt.grad.numpy()


MAX_CASES = [  # (shape, kwargs)
    ((2, 3, 8, 8), dict(kernel_size=2)),
    ((2, 3, 7, 9), dict(kernel_size=(2, 3))),                                   # unread tails
    ((2, 2, 7, 8), dict(kernel_size=3, stride=2, padding=1)),                   # overlapping
    ((2, 2, 8, 7), dict(kernel_size=3, stride=2, padding=1, ceil_mode=True)),   # last window starts in the padding
    ((1, 2, 6, 7), dict(kernel_size=(2, 3), stride=(3, 1), dilation=2)),
    ((2, 3, 10), dict(kernel_size=3, stride=2, padding=1, ceil_mode=True)),
    ((2, 3, 9), dict(kernel_size=4, stride=1, dilation=2)),
    ((1, 2, 4, 5, 4), dict(kernel_size=2)),
    ((1, 2, 5, 5, 6), dict(kernel_size=(3, 2, 3), stride=(2, 1, 2), padding=(1, 0, 1), ceil_mode=True)),
    ((3, 5, 5), dict(kernel_size=(2, 2), stride=1)),                             # unbatched
]


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("shape,kw", MAX_CASES)
def test_max_pool_matches_torch_and_loops(shape, kw, dtype):
    rank = len(kw["kernel_size"]) if isinstance(kw["kernel_size"], tuple) else len(shape) - 2
    rng = np.random.default_rng(len(shape) + sum(shape))
    x = rng.integers(-3, 4, shape).astype(dtype)  # small integers: many ties inside windows
    y, idx = convgrad.max_pool(x, return_indices=True, **kw)
    dy = rng.standard_normal(y.shape).astype(dtype)
    ty, tdx, tidx = torch_max(x, dy, rank, **kw)
    k = (kw["kernel_size"],) * rank if isinstance(kw["kernel_size"], int) else kw["kernel_size"]
    expand = lambda v, default: (default if v is None else v,) * rank if not isinstance(v, tuple) else v  # noqa: E731
    ly, ldx, lidx = loop_max_pool(x, dy, k, expand(kw.get("stride"), None) if kw.get("stride") else k,
                                  expand(kw.get("padding", 0), 0), expand(kw.get("dilation", 1), 1),
                                  kw.get("ceil_mode", False))
    assert y.dtype == np.dtype(dtype) and y.shape == ty.shape
    np.testing.assert_array_equal(y, ty)
    np.testing.assert_array_equal(y, ly)
    np.testing.assert_array_equal(idx, tidx)
    np.testing.assert_array_equal(idx, lidx)
    tol = 1e-12 if dtype == "float64" else 1e-5
    for given_indices in (None, idx):
        dx = convgrad.max_pool_backward(dy, x, indices=given_indices, **kw)
        assert dx.dtype == np.dtype(dtype) and dx.shape == x.shape
        np.testing.assert_allclose(dx, tdx, rtol=tol, atol=tol)
        np.testing.assert_allclose(dx, ldx, rtol=tol, atol=tol)


AVG_CASES = [
    ((2, 3, 8, 8), dict(kernel_size=2)),
    ((2, 3, 7, 8), dict(kernel_size=3, stride=2, padding=1)),
    ((2, 3, 8, 7), dict(kernel_size=3, stride=2, padding=1, count_include_pad=False, ceil_mode=True)),
    ((2, 2, 8, 7), dict(kernel_size=3, stride=2, padding=1, ceil_mode=True)),
    ((1, 2, 6, 6), dict(kernel_size=2, divisor_override=3)),
    ((2, 3, 10), dict(kernel_size=3, stride=2, padding=1, ceil_mode=True)),
    ((1, 2, 3, 4, 3), dict(kernel_size=2, stride=1)),
    ((1, 2, 5, 4, 6), dict(kernel_size=(3, 2, 3), stride=(2, 2, 3), padding=(1, 1, 0), ceil_mode=True,
                           count_include_pad=False)),
    ((3, 5, 6), dict(kernel_size=(2, 3), stride=(1, 2))),                       # unbatched
]


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("shape,kw", AVG_CASES)
def test_avg_pool_matches_torch_and_loops(shape, kw, dtype):
    rank = len(kw["kernel_size"]) if isinstance(kw["kernel_size"], tuple) else len(shape) - 2
    rng = np.random.default_rng(sum(shape))
    x = rng.standard_normal(shape).astype(dtype)
    y = convgrad.avg_pool(x, **kw)
    dy = rng.standard_normal(y.shape).astype(dtype)
    ty, tdx = torch_avg(x, dy, rank, **kw)
    k = (kw["kernel_size"],) * rank if isinstance(kw["kernel_size"], int) else kw["kernel_size"]
    s = kw.get("stride") or k
    s = (s,) * rank if isinstance(s, int) else s
    p = kw.get("padding", 0)
    p = (p,) * rank if isinstance(p, int) else p
    ly, ldx = loop_avg_pool(x.astype(np.float64), dy.astype(np.float64), k, s, p, kw.get("ceil_mode", False),
                            kw.get("count_include_pad", True), kw.get("divisor_override"))
    dx = convgrad.avg_pool_backward(dy, x, **kw)
    tol = 1e-12 if dtype == "float64" else 2e-6
    assert y.dtype == dx.dtype == np.dtype(dtype) and dx.shape == x.shape
    for ours, ref in ((y, ty), (y, ly), (dx, tdx), (dx, ldx)):
        np.testing.assert_allclose(ours, ref, rtol=tol, atol=tol)


def test_nan_wins_the_window_as_in_torch():
    x = np.array([[[[1.0, np.nan, 3.0, np.nan], [np.nan, 0.0, 7.0, 2.0]]]])
    y, idx = convgrad.max_pool(x, 2, return_indices=True)
    ty, tdx, tidx = torch_max(x, np.ones(y.shape), 2, kernel_size=2)
    np.testing.assert_array_equal(y, ty)
    np.testing.assert_array_equal(idx, tidx)
    np.testing.assert_array_equal(convgrad.max_pool_backward(np.ones(y.shape), x, 2), tdx)


def test_avg_pool_is_the_adjoint_of_its_backward():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 3, 9, 8))
    kw = dict(kernel_size=3, stride=2, padding=1, ceil_mode=True, count_include_pad=False)
    y = convgrad.avg_pool(x, **kw)
    dy = rng.standard_normal(y.shape)
    assert np.isclose(np.vdot(y, dy), np.vdot(x, convgrad.avg_pool_backward(dy, x, **kw)), rtol=1e-12)


def test_the_nn_layers_are_the_functions():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((2, 3, 9, 9))
    layer = convgrad.nn.MaxPool2d(3, stride=2, padding=1)
    y = layer(x)
    dy = rng.standard_normal(y.shape)
    np.testing.assert_array_equal(y, convgrad.max_pool(x, 3, 2, 1))
    np.testing.assert_array_equal(layer.backward(dy), convgrad.max_pool_backward(dy, x, 3, 2, 1))
    avg = convgrad.nn.AvgPool1d(3, stride=2, ceil_mode=True)
    x1 = x[:, :, 0]
    np.testing.assert_array_equal(avg(x1), convgrad.avg_pool(x1, 3, 2, ceil_mode=True))


def test_inputs_are_not_modified():
    x = np.random.default_rng(2).standard_normal((1, 2, 6, 6))
    before = x.copy()
    y = convgrad.max_pool(x, 3, 2, 1)
    dy = np.ones_like(y)
    convgrad.max_pool_backward(dy, x, 3, 2, 1)
    convgrad.avg_pool_backward(np.ones_like(convgrad.avg_pool(x, 2)), x, 2)
    np.testing.assert_array_equal(x, before)
    np.testing.assert_array_equal(dy, 1.0)


@st.composite
def pool_configs(draw):
    rank = draw(st.integers(1, 3))
    k = tuple(draw(st.integers(1, 3)) for _ in range(rank))
    s = tuple(draw(st.integers(1, 3)) for _ in range(rank))
    p = tuple(draw(st.integers(0, kk // 2)) for kk in k)
    d = tuple(draw(st.integers(1, 2)) for _ in range(rank))
    size = tuple(draw(st.integers(dd * (kk - 1) + 1, 7)) for kk, dd in zip(k, d))
    return rank, k, s, p, d, draw(st.booleans()), size


@settings(max_examples=25, deadline=None)
@given(pool_configs(), st.integers(0, 2**16))
def test_max_pool_property_sweep_against_torch(config, seed):
    rank, k, s, p, d, ceil_mode, size = config
    rng = np.random.default_rng(seed)
    x = rng.integers(-2, 3, (2, 2) + size).astype(np.float64)
    kw = dict(kernel_size=k, stride=s, padding=p, dilation=d, ceil_mode=ceil_mode)
    y, idx = convgrad.max_pool(x, return_indices=True, **kw)
    dy = rng.standard_normal(y.shape)
    ty, tdx, tidx = torch_max(x, dy, rank, **kw)
    np.testing.assert_array_equal(y, ty)
    np.testing.assert_array_equal(idx, tidx)
    np.testing.assert_allclose(convgrad.max_pool_backward(dy, x, **kw), tdx, rtol=1e-12, atol=1e-12)


@settings(max_examples=25, deadline=None)
@given(pool_configs(), st.booleans(), st.integers(0, 2**16))
def test_avg_pool_property_sweep_against_torch(config, count_include_pad, seed):
    rank, k, s, p, _, ceil_mode, size = config
    size = tuple(max(h, kk) for h, kk in zip(size, k))  # torch's avg_pool3d refuses an input smaller than the kernel
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((2, 2) + size)
    kw = dict(kernel_size=k, stride=s, padding=p, ceil_mode=ceil_mode, count_include_pad=count_include_pad)
    y = convgrad.avg_pool(x, **kw)
    dy = rng.standard_normal(y.shape)
    ty, tdx = torch_avg(x, dy, rank, **kw)
    np.testing.assert_allclose(y, ty, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(convgrad.avg_pool_backward(dy, x, **kw), tdx, rtol=1e-12, atol=1e-12)


# ------------------------------------------------------------------------------------------------
# errors name the parameter
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("call,error,match", [
    (lambda x: convgrad.max_pool(x, 0), ValueError, "max_pool: kernel_size must be positive"),
    (lambda x: convgrad.max_pool(x, 2, stride=(1, 2, 3)), ValueError, "stride"),
    (lambda x: convgrad.max_pool(x, 3, padding=2), ValueError, "padding must be at most half"),
    (lambda x: convgrad.max_pool(x, 2, padding=-1), ValueError, "padding must be non-negative"),
    (lambda x: convgrad.max_pool(x, 2, ceil_mode=1), TypeError, "ceil_mode must be True or False"),
    (lambda x: convgrad.max_pool(x, 9), ValueError, "window .* larger than the padded input"),
    (lambda x: convgrad.max_pool(x, (2, 2, 2, 2)), ValueError, "kernel_size must have 1-3 entries"),
    (lambda x: convgrad.max_pool(x[0, 0], 2), ValueError, "input must be .* 1-3 spatial dims"),
    (lambda x: convgrad.max_pool(x, "2"), TypeError, "kernel_size"),
    (lambda x: convgrad.max_pool(x.astype(complex), 2), TypeError, "input must be real"),
    (lambda x: convgrad.max_pool_backward(np.ones((1, 1, 3, 3)), x, 2), ValueError, r"grad_output must have shape \(1, 1, 2, 2\)"),
    (lambda x: convgrad.max_pool_backward(np.ones((1, 1, 2, 2)), x, 2, indices=np.full((1, 1, 2, 2), 3)),
     ValueError, "indices hold positions outside their pooling windows"),
    (lambda x: convgrad.max_pool_backward(np.ones((1, 1, 2, 2)), x, 2, indices=np.zeros((1, 1, 2, 2))),
     ValueError, "indices must be integers"),
    (lambda x: convgrad.avg_pool(x, 2, divisor_override=0), ValueError, "divisor_override must be positive"),
    (lambda x: convgrad.avg_pool(x, 2, count_include_pad=None), TypeError, "count_include_pad"),
    (lambda x: convgrad.avg_pool_backward(np.ones((1, 1, 1, 2)), x, 2), ValueError, "avg_pool_backward: grad_output"),
])
def test_bad_arguments_are_named(call, error, match):
    x = np.zeros((1, 1, 4, 4))
    with pytest.raises(error, match=match):
        call(x)


# ------------------------------------------------------------------------------------------------
# the array boundary: torch/JAX arrays in, the same type out
# ------------------------------------------------------------------------------------------------


def test_torch_tensors_in_torch_tensors_out_even_with_requires_grad():
    x = torch.randn(2, 3, 6, 6, dtype=torch.float64, requires_grad=True)
    y, idx = convgrad.max_pool(x, 2, return_indices=True)
    want_y, want_idx = F.max_pool2d(x, 2, return_indices=True)
    assert isinstance(y, torch.Tensor) and not y.requires_grad and y.dtype == torch.float64
    assert idx.dtype == torch.int64 and torch.equal(idx, want_idx) and torch.equal(y, want_y.detach())
    assert isinstance(convgrad.max_pool(x, 2), torch.Tensor)
    dy = torch.randn(2, 3, 3, 3, dtype=torch.float64)
    (want_dx,) = torch.autograd.grad(want_y, x, dy)
    for dx in (convgrad.max_pool_backward(dy, x, 2), convgrad.max_pool_backward(dy, x, 2, indices=idx)):
        assert isinstance(dx, torch.Tensor) and torch.equal(dx, want_dx)
    a = convgrad.avg_pool(x, 3, stride=2, padding=1, count_include_pad=False)
    want_a = F.avg_pool2d(x, 3, stride=2, padding=1, count_include_pad=False)
    (want_da,) = torch.autograd.grad(want_a, x, torch.ones_like(want_a))
    da = convgrad.avg_pool_backward(torch.ones_like(a), x, 3, stride=2, padding=1, count_include_pad=False)
    assert isinstance(a, torch.Tensor) and isinstance(da, torch.Tensor)
    torch.testing.assert_close(a, want_a.detach(), rtol=0, atol=1e-12)
    torch.testing.assert_close(da, want_da, rtol=0, atol=1e-12)
    assert x.grad is None


def test_torch_errors_never_escape_the_boundary():
    x = torch.randn(2, 3, 6, 6, requires_grad=True)
    with pytest.raises(ValueError, match=r"max_pool_backward: grad_output must have shape \(2, 3, 3, 3\)"):
        convgrad.max_pool_backward(torch.ones(2, 3, 3, 2), x, 2)
    with pytest.raises(TypeError, match="avg_pool: input is a torch.Tensor on device 'meta'"):
        convgrad.avg_pool(torch.empty(1, 1, 4, 4, device="meta"), 2)


def test_a_plain_tuple_result_keeps_its_type_through_the_boundary():
    from convgrad import arrays

    out = arrays.from_numpy((np.zeros(2), np.arange(2)), torch.ones(1))
    assert type(out) is tuple and all(isinstance(a, torch.Tensor) for a in out) and out[1].dtype == torch.int64


@pytest.mark.skipif(importlib.util.find_spec("jax") is None, reason="JAX is not installed")
def test_jax_arrays_in_jax_arrays_out():
    import jax
    import jax.numpy as jnp

    x = jnp.asarray(np.arange(32.0, dtype=np.float32).reshape(1, 2, 4, 4))
    y, idx = convgrad.max_pool(x, 2, return_indices=True)
    assert isinstance(y, jax.Array) and isinstance(idx, jax.Array) and y.dtype == jnp.float32
    np.testing.assert_array_equal(np.asarray(y), convgrad.max_pool(np.asarray(x), 2))
    dx = convgrad.max_pool_backward(jnp.ones_like(y), x, 2, indices=idx)
    assert isinstance(dx, jax.Array) and float(dx.sum()) == 8.0
