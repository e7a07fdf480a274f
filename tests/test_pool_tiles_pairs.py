"""pool_tiles' float32 row-pair backward (2x2 windows, even width), with and without the fused ReLU gate.

Checked bit for bit against a plain loop over windows (sharing no code with convgrad), against
pooling's flat scatter and pool_tiles' per-tap path, and against PyTorch's max_pool2d (+ relu)
backward; the gradient's bits are copied exactly (NaN payloads, -0.0, inf).
"""

from unittest import mock

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import convgrad
from convgrad import nn, pool_tiles, pooling

torch = pytest.importorskip("torch")


def _geom(size, ceil_mode=False):
    return pooling.PoolArgs(2, 2, None, 0, 1, ceil_mode, "test").geometry(size)


def loop_backward(dy, tap, size):
    """dx by a loop over windows: dy[..., i, j] at row 2i + tap // 2, column 2j + tap % 2 (bits copied)."""
    dx = np.zeros(dy.shape[:-2] + tuple(size), np.uint32)
    bits = dy.view(np.uint32)
    for lead in np.ndindex(dy.shape[:-2]):
        for i in range(dy.shape[-2]):
            for j in range(dy.shape[-1]):
                t = int(tap[lead + (i, j)])
                dx[lead + (2 * i + t // 2, 2 * j + t % 2)] = bits[lead + (i, j)]
    return dx.view(np.float32)


def _special(rng, shape):
    """float32 values with NaNs (a payload too), infinities, -0.0 and +0.0."""
    a = rng.standard_normal(shape).astype(np.float32)
    flat = a.reshape(-1)
    picks = rng.choice(flat.size, size=min(flat.size, 6), replace=False)
    specials = np.array([0x7FC00000, 0x7F800001 | 0x1234, 0xFF800000, 0x7F800000, 0x80000000, 0], np.uint32)
    flat[picks] = specials[: picks.size].view(np.float32)
    return a


def _bits(a):
    return np.ascontiguousarray(a).view(np.uint32)


@settings(max_examples=25, deadline=None)
@given(lead=st.sampled_from([(1,), (3,), (2, 3), (2, 1, 2)]), h=st.integers(2, 9), w_out=st.integers(1, 6),
       gated=st.booleans(), seed=st.integers(0, 2**16))
def test_pairs_are_the_loop_bit_for_bit(lead, h, w_out, gated, seed):
    """Any lead dims, odd heights (last row 0), ties; gate: dy where gate > 0 (NaN, -0.0, 0 gate: closed)."""
    size = (h, 2 * w_out)
    geom = _geom(size)
    assert pool_tiles.applies(geom)
    rng = np.random.default_rng(seed)
    x = rng.integers(-2, 3, lead + size).astype(np.float32)  # ties everywhere
    y, tap = pool_tiles.forward(x, geom)
    dy = _special(rng, y.shape)
    assert pool_tiles._pairs_apply(dy, geom)
    gate = _special(rng, y.shape) if gated else None
    dx = pool_tiles.backward(dy, tap, geom, gate)
    dy_open = dy if gate is None else np.where(gate > 0, dy, np.float32(0))
    ref = loop_backward(dy_open, tap, size)
    np.testing.assert_array_equal(_bits(dx), _bits(ref))
    # the other passes agree: pooling's flat scatter (small sizes) and pool_tiles' per-tap path
    np.testing.assert_array_equal(_bits(pooling.max_backward(dy, tap, geom, gate)), _bits(ref))
    with mock.patch.object(pool_tiles, "_pairs_apply", lambda *args: False):
        per_tap = pool_tiles.backward(dy, tap, geom, gate)
    np.testing.assert_array_equal(_bits(per_tap), _bits(ref))


def test_pairs_read_views_and_leave_inputs_alone():
    """A non-contiguous dy and gate (channels-last views) give the same bits; dy, tap, gate unchanged."""
    rng = np.random.default_rng(1)
    geom = _geom((6, 8))
    x = rng.standard_normal((2, 3, 6, 8)).astype(np.float32)
    y, tap = pool_tiles.forward(x, geom)
    dy = np.ascontiguousarray(_special(rng, y.shape).transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2)
    gate = np.ascontiguousarray(_special(rng, y.shape).transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2)
    saved = [a.copy() for a in (dy, tap, gate)]
    dx = pool_tiles.backward(dy, tap, geom, gate)
    for a, b in zip((dy, tap, gate), saved):
        np.testing.assert_array_equal(_bits(a) if a.dtype == np.float32 else a, _bits(b) if b.dtype == np.float32 else b)
    ref = loop_backward(np.where(gate > 0, dy, np.float32(0)), tap, (6, 8))
    np.testing.assert_array_equal(_bits(dx), _bits(ref))


def test_float64_and_odd_widths_keep_the_per_tap_path():
    rng = np.random.default_rng(2)
    assert not pool_tiles._pairs_apply(np.zeros((1, 1, 2, 2)), _geom((4, 4)))  # float64
    assert not pool_tiles._pairs_apply(np.zeros((1, 1, 2, 2), np.float32), _geom((4, 5)))  # odd width
    assert not pool_tiles._pairs_apply(np.zeros((1, 1, 1, 1), np.float32),
                                       pooling.PoolArgs(2, 3, None, 0, 1, False, "t").geometry((3, 6)))
    geom = _geom((5, 5))
    x = rng.standard_normal((2, 2, 5, 5)).astype(np.float32)
    y, tap = pool_tiles.forward(x, geom)
    dy, gate = _special(rng, y.shape), _special(rng, y.shape)
    ref = loop_backward(np.where(gate > 0, dy, np.float32(0)), tap, (5, 5))
    np.testing.assert_array_equal(_bits(pool_tiles.backward(dy, tap, geom, gate)), _bits(ref))


@pytest.mark.parametrize("size", [(28, 28), (29, 28), (29, 29), (28, 29)])
@pytest.mark.parametrize("ceil_mode", [False, True])
def test_max_pool_backward_matches_torch(size, ceil_mode):
    """Through the public API, big enough for pool_tiles (>= BACKWARD_MIN outputs); odd sizes: floor/ceil."""
    rng = np.random.default_rng(3)
    x = rng.standard_normal((24, 16) + size).astype(np.float32)
    x[0, 0, :4, :4] = 0.0
    x[0, 0, 1, 1] = -0.0  # ties of 0.0 and -0.0: the first wins in both libraries
    tx = torch.tensor(x, requires_grad=True)
    ty = torch.nn.functional.max_pool2d(tx, 2, ceil_mode=ceil_mode)
    dy = _special(rng, tuple(ty.shape))
    ty.backward(torch.tensor(dy))
    dx = convgrad.max_pool_backward(dy, x, 2, ceil_mode=ceil_mode)
    assert dy.size >= pool_tiles.BACKWARD_MIN
    # values (NaN equal to NaN): torch adds the gradient into zeros, so its -0.0 is +0.0 and its NaNs are quiet
    np.testing.assert_array_equal(dx, tx.grad.numpy())


@pytest.mark.parametrize("threads", [1, 2])
def test_fused_relu_pool_backward_matches_torch(threads):
    """MaxPool2d's fused relu(pool(x)) backward (the gate inside the pair path) against torch's pool(relu(x))."""
    rng = np.random.default_rng(4)
    x = rng.integers(-3, 3, (64, 6, 28, 28)).astype(np.float32)  # ties and zero windows
    pool = nn.MaxPool2d(2)
    with convgrad.settings(num_threads=threads):
        y = pool._forward_then_relu(x)
        dy = _special(rng, y.shape)
        assert dy.size >= pool_tiles.BACKWARD_MIN
        dx = pool._backward_then_relu(dy)
    tx = torch.tensor(x, requires_grad=True)
    ty = torch.nn.functional.max_pool2d(torch.relu(tx), 2)
    ty.backward(torch.tensor(dy))
    np.testing.assert_array_equal(y, ty.detach().numpy())
    # where relu(x) = 0 torch's relu passes no gradient, as the gate does (values: torch quiets NaNs, drops -0.0)
    np.testing.assert_array_equal(dx, tx.grad.numpy())

