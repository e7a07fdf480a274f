"""What a training step's backward holds: the same numbers as before, fewer arrays alive at once.

``Sequential`` lets a ``BasicBlock`` write its gated gradient over the gradient it is given when that
is the container's own scratch (``fusion.fresh_gradient``), the block drops its output once the gate
is read, and a convolution layer computes its weight gradient before its input gradient. The values
are compared bitwise with the layers' own, unshared passes; the memory with tracemalloc (NumPy
reports its arrays to it), on one thread so that the count does not depend on the thread schedule.
"""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest

import convgrad
from convgrad import algorithms, nn
from convgrad.nn import fusion


def _resnet(dtype, rng=0):
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1, bias=False, rng=rng), nn.BatchNorm2d(8), nn.ReLU(),
                         nn.BasicBlock(8, 8, 1, rng=rng), nn.BasicBlock(8, 16, 2, rng=rng),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 5, rng=rng)).to(dtype)


class _OwnBatchNorm(nn.BatchNorm2d):
    """A subclass: the block then runs bn2, the add and the ReLU unfused."""


def _layer_by_layer(model, x, g):
    """The step through each layer's own public passes, every gradient a copy (nothing written over)."""
    model.zero_grad()
    for layer in model:
        x = layer(x)
    grads = []
    for layer in reversed(list(model)):
        g = layer.backward(np.array(g, copy=True))
        grads.append(g)
    return x, g, [p.grad.copy() for p in model.parameters()]


def _through_sequential(model, x, g):
    model.zero_grad()
    y = model(x)
    dx = model.backward(g)
    return y, dx, [p.grad.copy() for p in model.parameters()]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("fused", [True, False])
def test_sequential_step_equals_the_layers_own_passes_bitwise(dtype, fused):
    rng = np.random.default_rng(1)
    x = rng.standard_normal((6, 3, 8, 8)).astype(dtype)
    g = rng.standard_normal((6, 5)).astype(dtype)
    models = []
    for _ in range(2):
        model = _resnet(dtype)
        if not fused:
            for block in (model[3], model[4]):
                block.bn2 = _OwnBatchNorm(block.out_channels, dtype=dtype)
        models.append(model)
    a = _through_sequential(models[0], x, g)
    b = _layer_by_layer(models[1], x, g)
    for u, v in zip(a[:2], b[:2]):
        np.testing.assert_array_equal(u, v)
    for u, v in zip(a[2], b[2]):
        np.testing.assert_array_equal(u, v)


@pytest.mark.parametrize("tail", [(), (nn.Flatten(),)])
def test_the_callers_gradient_is_never_written_over(tail):
    """A block last in the Sequential (or before a Flatten, whose gradient is a view) gets the caller's array."""
    model = nn.Sequential(nn.BasicBlock(4, 4, 1, rng=0), *tail)
    x = np.random.default_rng(2).standard_normal((3, 4, 5, 5)).astype(np.float32)
    y = model(x)
    g = np.random.default_rng(3).standard_normal(y.shape).astype(np.float32)
    kept = g.copy()
    model.backward(g)
    np.testing.assert_array_equal(g, kept)


def test_only_fresh_gradients_are_scratch():
    block, flatten, relu = nn.BasicBlock(2, 2, 1), nn.Flatten(), nn.ReLU()
    assert fusion.fresh_gradient(block, False) and fusion.fresh_gradient(nn.AdaptiveAvgPool2d(1), False)
    assert fusion.fresh_gradient(nn.Linear(2, 2), False)
    assert fusion.fresh_gradient(flatten, True) and not fusion.fresh_gradient(flatten, False)
    assert not fusion.fresh_gradient(relu, True)  # not on the list: counted as possibly kept
    assert fusion.overwrites_gradient(block) and not fusion.overwrites_gradient(relu)


def test_a_block_drops_its_output_once_its_gate_is_read():
    block = nn.BasicBlock(4, 4, 1, rng=0)
    x = np.random.default_rng(4).standard_normal((2, 4, 6, 6))
    y = block(x)
    seen = []
    real = block.conv2.backward
    block.conv2.backward = lambda *a, **k: (seen.append(block._cache), real(*a, **k))[1]
    block.backward(np.ones_like(y))
    assert seen == [None]  # released before the convolutions' backward
    with pytest.raises(RuntimeError, match="BasicBlock.backward was called before forward"):
        block.backward(np.ones_like(y))


def test_a_convolution_layer_computes_its_weight_gradient_first(monkeypatch):
    """Same gradients as convgrad.conv_backward, bitwise; the weight gradient's scratch before dx exists."""
    order = []
    real = algorithms.execute
    monkeypatch.setattr(algorithms, "execute", lambda alg, op, *a, **k: (order.append(op), real(alg, op, *a, **k))[1])
    layer = nn.Conv2d(3, 4, 3, padding=1, rng=0)
    rng = np.random.default_rng(5)
    x = rng.standard_normal((2, 3, 6, 6)).astype(np.float32)
    dy = rng.standard_normal((2, 4, 6, 6)).astype(np.float32)
    layer(x)
    dx = layer.backward(dy)
    assert order == ["forward", "grad_weight", "grad_input"]
    want = convgrad.conv_backward(dy, x, layer.weight.value, padding=1)
    np.testing.assert_array_equal(dx, want.input)
    np.testing.assert_array_equal(layer.weight.grad, want.weight)
    np.testing.assert_array_equal(layer.bias.grad, want.bias)
    layer(x)
    assert layer.backward(dy, input_grad=False) is None


def _backward_peak(model, x, g) -> int:
    model(x)
    tracemalloc.start()
    try:
        start = tracemalloc.get_traced_memory()[0]
        model.backward(g, input_grad=False)
        return tracemalloc.get_traced_memory()[1] - start
    finally:
        tracemalloc.stop()


def test_a_block_writes_its_gated_gradient_over_the_containers_own(monkeypatch):
    """dz takes the place of the gradient the Sequential hands the block: one array of the block's output fewer."""
    x = np.random.default_rng(6).standard_normal((16, 3, 16, 16)).astype(np.float32)
    g = np.ones((16, 5), np.float32)
    with convgrad.settings(num_threads=1):
        model = _resnet(np.float32)
        now = _backward_peak(model, x, g)
        monkeypatch.setattr(fusion, "overwrites_gradient", lambda layer: False)
        before = _backward_peak(model, x, g)
    out = 16 * 16 * 8 * 8 * 4  # the last block's output, (16, 16, 8, 8) float32
    assert before - now >= out, (before, now)
