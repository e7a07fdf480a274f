"""The small CNNs' fusions (LeNet-5, the 1-D CNN): ReLU then max pooling, ReLU in place; max pooling on tiles.

Fused, a ``Sequential`` must give exactly what its layers give one by one (bitwise: the same
operations on the same values), match torch.nn (float64 at 1e-10), never modify its input, and
leave the layers' own passes either correct or refusing with a clear error.
"""

import copy
import pickle

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import convgrad
from convgrad import batch_split, nn, pool_tiles, pooling
from convgrad.nn import fusion

from _nn_torch import compare_passes

torch = pytest.importorskip("torch")


def _lenet(L, **kw):
    return [L.Conv2d(1, 6, 5, padding=2, **kw), L.ReLU(), L.MaxPool2d(2), L.Conv2d(6, 16, 5, **kw), L.ReLU(),
            L.MaxPool2d(2), L.Flatten(), L.Linear(400, 120, **kw), L.ReLU(), L.Linear(120, 10, **kw)]


def _cnn1d(L, **kw):
    return [L.Conv1d(1, 8, 5, stride=2, padding=2, **kw), L.ReLU(), L.Conv1d(8, 8, 3, stride=2, padding=1, **kw),
            L.ReLU(), L.Flatten(), L.Linear(8 * 10, 10, **kw)]


def _one_by_one(layers, x, dy):
    """Each layer's own forward, then each one's own backward (nothing fuses)."""
    h = x
    for layer in layers:
        h = layer.forward(h)
    d = dy
    for layer in reversed(layers):
        d = layer.backward(d)
    return h, d


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("net, shape", [(_lenet, (5, 1, 28, 28)), (_cnn1d, (6, 1, 40))])
@pytest.mark.parametrize("threads", [1, 2])
def test_fused_small_nets_are_bitwise_their_layers(monkeypatch, dtype, net, shape, threads):
    monkeypatch.setattr(batch_split, "MIN_BYTES", 0 if threads == 2 else 1 << 40)
    rng = np.random.default_rng(0)
    x = rng.standard_normal(shape).astype(dtype)
    x_before = x.copy()
    with convgrad.settings(num_threads=threads):
        seq = nn.Sequential(*net(nn, rng=1, dtype=dtype))
        ref = copy.deepcopy(list(seq))
        y = seq(x)
        kinds = [type(layer._cache[0]) for layer in seq if type(layer) is nn.ReLU]
        assert fusion.PooledFirst in kinds or net is _cnn1d
        assert all(k in (fusion.PooledFirst, np.ndarray) for k in kinds)
        assert all(layer._cache[0].dtype == dtype for layer in seq if type(layer) is nn.ReLU
                   and isinstance(layer._cache[0], np.ndarray))  # in place: the gate is the output itself
        dy = rng.standard_normal(y.shape).astype(dtype)
        dx = seq.backward(dy)
        y_ref, dx_ref = _one_by_one(ref, x, dy)
    np.testing.assert_array_equal(x, x_before)
    np.testing.assert_array_equal(y, y_ref)
    np.testing.assert_array_equal(dx, dx_ref)
    for p, q in zip(seq.parameters(), [p for layer in ref for p in layer.parameters()]):
        np.testing.assert_array_equal(p.grad, q.grad)
    assert y.dtype == dx.dtype == dtype


@pytest.mark.parametrize("net, shape", [(_lenet, (3, 1, 28, 28)), (_cnn1d, (4, 1, 40))])
def test_fused_small_nets_match_torch(net, shape):
    torch.manual_seed(0)
    tm = torch.nn.Sequential(*net(torch.nn)).double()
    x = np.random.default_rng(1).standard_normal(shape)
    assert compare_passes(nn.Sequential(*net(nn, dtype=np.float64)), tm, x) >= 6


def test_relu_pool_ties_and_non_positive_windows():
    """Windows whose maximum is tied, zero or negative: the pooled-first form still equals the layers."""
    rng = np.random.default_rng(2)
    x = rng.integers(-2, 2, (4, 3, 8, 9)).astype(np.float64)  # many ties, zeros and all-negative windows
    x[0, 0, :2, :2] = -1.0
    dy = rng.standard_normal((4, 3, 4, 4))
    for pool in (nn.MaxPool2d(2), nn.MaxPool2d(3, 2), nn.MaxPool2d(2, ceil_mode=True), nn.MaxPool2d(3, 1, dilation=2)):
        seq = nn.Sequential(nn.ReLU(), pool)
        y = seq(x)
        assert isinstance(seq[0]._cache[0], fusion.PooledFirst) == (not pool.ceil_mode)
        dy = rng.standard_normal(y.shape)
        y_ref, dx_ref = _one_by_one([nn.ReLU(), copy.deepcopy(pool)], x, dy)
        np.testing.assert_array_equal(y, y_ref)
        np.testing.assert_array_equal(seq.backward(dy), dx_ref)


def test_pools_with_padding_are_not_fused():
    """A window entirely in the padding (dilation 2, padding 1, length 1) pools to -inf after the ReLU, not 0."""
    x = np.array([[[-3.0], [2.0]]])  # (1, 2, 1)
    seq = nn.Sequential(nn.ReLU(), nn.MaxPool1d(2, padding=1, dilation=2))
    y = seq(x)
    np.testing.assert_array_equal(y, np.full((1, 2, 1), -np.inf))
    assert seq[0]._cache[0].dtype == bool
    np.testing.assert_array_equal(seq.backward(np.ones_like(y)), np.zeros_like(x))


def test_layers_own_backward_after_a_fused_forward():
    """After ReLU+pool ran as one, each layer's own backward refuses (its intermediate never existed); the
    in-place ReLU's own backward works (its gate is the output the next layer keeps)."""
    x = np.random.default_rng(3).standard_normal((2, 1, 28, 28)).astype(np.float32)
    seq = nn.Sequential(*_lenet(nn, rng=0))
    y = seq(x)
    with pytest.raises(RuntimeError, match="ReLU.backward: the last forward ran fused with the MaxPool2d"):
        seq[1].backward(np.ones((2, 6, 28, 28), np.float32))
    with pytest.raises(RuntimeError, match="MaxPool2d.backward: the last forward ran fused with the ReLU"):
        seq[2].backward(np.ones((2, 6, 14, 14), np.float32))
    relu_out = seq[8]._cache[0]  # Linear(400, 120) -> ReLU in place
    d = seq[8].backward(np.ones_like(relu_out))
    np.testing.assert_array_equal(d, (relu_out > 0).astype(np.float32))
    assert y.shape == (2, 10)


def test_not_fused_where_it_would_be_unsafe():
    x = np.random.default_rng(4).standard_normal((2, 3, 6, 6))
    x_before = x.copy()
    # first layer: the input is the caller's array; last layer: the output goes to the caller
    seq = nn.Sequential(nn.ReLU(), nn.Conv2d(3, 3, 3, dtype=np.float64, rng=0), nn.ReLU())
    y = seq(x)
    np.testing.assert_array_equal(x, x_before)
    assert all(layer._cache[0].dtype == bool for layer in (seq[0], seq[2]))
    # a subclass may have changed its pass: not fused
    class MyReLU(nn.ReLU):
        pass
    seq = nn.Sequential(nn.Conv2d(3, 3, 3, dtype=np.float64, rng=0), MyReLU(), nn.MaxPool2d(2))
    seq(x)
    assert seq[1]._cache[0].dtype == bool
    # channels-last pools are left alone
    seq = nn.Sequential(nn.ReLU(), nn.MaxPool2d(2, data_format="channels_last"))
    seq(np.moveaxis(x, 1, -1))
    assert seq[0]._cache[0].dtype == bool
    assert y.shape == (2, 3, 4, 4)


def test_copies_after_a_fused_forward():
    model = nn.Sequential(*_lenet(nn, rng=0))
    x = np.random.default_rng(5).standard_normal((2, 1, 28, 28)).astype(np.float32)
    y = model(x)
    for clone in (copy.deepcopy(model), pickle.loads(pickle.dumps(model))):
        np.testing.assert_array_equal(clone(x), y)
        clone.backward(np.ones_like(y))
    model.backward(np.ones_like(y))


# -- max pooling on tiles ---------------------------------------------------------------------------


@settings(max_examples=30, deadline=None)
@given(rank=st.integers(1, 3), k=st.integers(2, 3), extra=st.integers(0, 2), data=st.data())
def test_tiled_max_pool_is_the_general_passes(rank, k, extra, data):
    """pool_tiles against pooling's separable passes and flat scatter, with ties, NaN/inf/-0.0 gradients."""
    size = tuple(data.draw(st.integers(1, 3)) * k + extra % k for _ in range(rank))
    kernel = (k,) * rank
    geom = pooling.PoolArgs(rank, kernel, None, 0, 1, False, "test").geometry(size)
    assert pool_tiles.applies(geom)
    rng = np.random.default_rng(data.draw(st.integers(0, 99)))
    x = rng.integers(-2, 3, (2, 3, *size)).astype(data.draw(st.sampled_from([np.float32, np.float64])))
    y, tap = pool_tiles.forward(x, geom)
    y_ref, tap_ref = pooling._split_max(x, geom, nan_aware=False)
    np.testing.assert_array_equal(y, y_ref)
    np.testing.assert_array_equal(tap, tap_ref)
    dy = rng.standard_normal(y.shape).astype(x.dtype)
    dy.flat[:3] = [np.nan, np.inf, -0.0][: dy.size]
    dx, dx_ref = pool_tiles.backward(dy, tap, geom), pooling.max_backward(dy, tap, geom)
    np.testing.assert_array_equal(dx, dx_ref)
    np.testing.assert_array_equal(np.signbit(dx), np.signbit(dx_ref))


def test_tiled_max_pool_matches_torch_with_nan():
    """The NaN rule (PyTorch's) still holds on the tiled path: a NaN window gives NaN and its index."""
    x = np.random.default_rng(6).standard_normal((2, 3, 8, 8))
    x[0, 1, 2, 3] = np.nan
    y, idx = convgrad.max_pool(x, 2, return_indices=True)
    ty, tidx = torch.nn.functional.max_pool2d(torch.tensor(x), 2, return_indices=True)
    np.testing.assert_array_equal(y, ty.numpy())
    np.testing.assert_array_equal(idx, tidx.numpy())
