"""Fused passes of the nn stack: BatchNorm2d + ReLU in Sequential and BasicBlock, bn2 + residual add + ReLU.

The fused forms must give exactly what the layers give one by one (same operations, same order:
bitwise equal), match torch.nn (float64 at 1e-10, float32 within a small multiple of PyTorch's own
float32 error), and never hand out an array a later call overwrites (the layers keep internal
arrays from step to step).
"""

import numpy as np
import pytest

import convgrad
from convgrad import batch_split, nn
from convgrad.nn.activation import GateOf

from _nn_torch import compare_passes, load_from_torch

torch = pytest.importorskip("torch")


def _bn_relu(channels=4, dtype=np.float64, seed=0):
    rng = np.random.default_rng(seed)
    bn = nn.BatchNorm2d(channels, dtype=dtype)
    bn.weight.value[...] = rng.uniform(-1.5, 1.5, channels)  # negative scales too: the gate flips
    bn.bias.value[...] = rng.uniform(-1, 1, channels)
    bn.running_mean[...] = rng.uniform(-1, 1, channels)
    bn.running_var[...] = rng.uniform(0.5, 2, channels)
    return bn


def _unfused(bn, relu, x, dy):
    """The two layers' own passes, one after the other (no container: nothing fuses)."""
    y = relu.forward(bn.forward(x))
    return y, bn.backward(relu.backward(dy))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("train", [True, False])
@pytest.mark.parametrize("threads", [1, 2])
def test_sequential_bn_relu_is_bitwise_the_two_layers(monkeypatch, dtype, train, threads):
    monkeypatch.setattr(batch_split, "MIN_BYTES", 0 if threads == 2 else 1 << 40)
    rng = np.random.default_rng(1)
    x = rng.standard_normal((5, 4, 6, 7)).astype(dtype)
    x[0, 0, :2] = 0  # exact zeros at the ReLU's kink after a zero-shift channel
    dy = rng.standard_normal(x.shape).astype(dtype)
    with convgrad.settings(num_threads=threads):
        bn_a, bn_b = _bn_relu(dtype=dtype), _bn_relu(dtype=dtype)
        seq = nn.Sequential(bn_a, nn.ReLU()).train(train)
        bn_b.train(train)
        y = seq(x)
        assert isinstance(seq[1]._cache[0], GateOf)  # the fused path ran
        dx = seq.backward(dy)
        y_ref, dx_ref = _unfused(bn_b, nn.ReLU(), x, dy)
    np.testing.assert_array_equal(y, y_ref)
    np.testing.assert_array_equal(dx, dx_ref)
    np.testing.assert_array_equal(bn_a.weight.grad, bn_b.weight.grad)
    np.testing.assert_array_equal(bn_a.bias.grad, bn_b.bias.grad)
    np.testing.assert_array_equal(bn_a.running_mean, bn_b.running_mean)
    np.testing.assert_array_equal(bn_a.running_var, bn_b.running_var)
    assert y.dtype == dx.dtype == dtype


@pytest.mark.parametrize("train", [True, False])
def test_relu_backward_alone_after_a_fused_forward(train):
    """Either layer's own backward still works after the container fused their forward."""
    rng = np.random.default_rng(2)
    x, dy = rng.standard_normal((3, 4, 5, 5)), rng.standard_normal((3, 4, 5, 5))
    relu = nn.ReLU()
    seq = nn.Sequential(_bn_relu(), relu).train(train)
    y = seq(x)
    ref_bn = _bn_relu().train(train)
    y_ref, dx_ref = _unfused(ref_bn, nn.ReLU(), x, dy)
    np.testing.assert_array_equal(y, y_ref)
    dx = seq[0].backward(relu.backward(dy))
    np.testing.assert_array_equal(dx, dx_ref)


def _torch_pass(model, x, dy):
    tx = torch.tensor(x, requires_grad=True)
    ty = model(tx)
    ty.backward(torch.tensor(dy))
    return [ty.detach().numpy(), tx.grad.numpy()] + [p.grad.numpy() for p in model.parameters()]


def test_bn_relu_in_sequential_matches_torch_float32():
    """float32: within a small multiple of PyTorch's own float32 error (both against PyTorch in float64)."""
    import copy

    torch.manual_seed(0)
    tm = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.BatchNorm2d(8), torch.nn.ReLU(),
                             torch.nn.Conv2d(8, 8, 3, padding=1), torch.nn.BatchNorm2d(8), torch.nn.ReLU())
    m = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
                      nn.Conv2d(8, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU())
    load_from_torch(m, tm)
    x = np.random.default_rng(3).standard_normal((8, 3, 12, 12)).astype(np.float32)
    dy = np.random.default_rng(4).standard_normal((8, 8, 12, 12)).astype(np.float32)
    exact = _torch_pass(copy.deepcopy(tm).double(), x.astype(np.float64), dy.astype(np.float64))
    theirs = _torch_pass(tm, x, dy)
    y = m(x)
    ours = [y, m.backward(dy)] + [p.grad for p in m.parameters()]
    assert all(a.dtype == np.float32 for a in ours)

    def err(a, b):
        return np.abs(a.astype(np.float64) - b).max() / np.abs(b).max()

    for a, t, e in zip(ours, theirs, exact):
        assert err(a, e) <= 4 * err(t, e) + 1e-6


def test_kept_arrays_never_reach_the_caller():
    """Outputs and input gradients of one step survive the next step (the layers reuse only internal arrays)."""
    rng = np.random.default_rng(5)
    model = nn.Sequential(nn.Conv2d(2, 4, 3, padding=1, rng=0), nn.BatchNorm2d(4), nn.ReLU(),
                          nn.BasicBlock(4, 4, 1, rng=1), nn.BasicBlock(4, 8, 2, rng=2))
    x1, x2 = rng.standard_normal((3, 2, 8, 8)), rng.standard_normal((3, 2, 8, 8))
    y1 = model(x1)
    dx1 = model.backward(np.ones_like(y1))
    saved = y1.copy(), dx1.copy()
    y2 = model(x2)
    model.backward(np.full_like(y2, 2.0))
    np.testing.assert_array_equal(y1, saved[0])
    np.testing.assert_array_equal(dx1, saved[1])
    # a new batch size: the kept arrays are rebuilt, the results still those of the layers one by one
    x3 = rng.standard_normal((5, 2, 8, 8))
    y3 = model(x3)
    assert y3.shape == (5, 8, 4, 4) and model.backward(np.ones_like(y3)).shape == x3.shape


def test_subclasses_are_not_fused():
    calls = []

    class LoggedReLU(nn.ReLU):
        def forward(self, x):
            calls.append("relu")
            return super().forward(x)

    seq = nn.Sequential(nn.BatchNorm2d(2), LoggedReLU())
    y = seq(np.random.default_rng(6).standard_normal((2, 2, 3, 3)))
    assert calls == ["relu"] and seq.backward(np.ones_like(y)).shape == y.shape


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("train", [True, False])
@pytest.mark.parametrize("stride", [1, 2])
def test_basic_block_fused_tail_is_bitwise_the_layers(dtype, train, stride):
    """relu(bn2(.) + shortcut) in bn2's pass, and its backward, against the block's unfused code path."""
    rng = np.random.default_rng(7)
    cout = 4 if stride == 1 else 6
    fused, plain = (nn.BasicBlock(4, cout, stride, rng=3, dtype=dtype).train(train) for _ in range(2))
    for block in (fused, plain):
        for bn in (m for m in block.modules() if isinstance(m, nn.BatchNorm2d)):
            bn.weight.value[...] = np.linspace(-1.2, 1.5, bn.num_features)
            bn.bias.value[...] = np.linspace(0.5, -0.5, bn.num_features)
    # the plain block's bn2 is a subclass: the block then adds and rectifies itself
    plain.bn2.__class__ = type("PlainBatchNorm2d", (nn.BatchNorm2d,), {})
    plain.relu1 = type("PlainReLU", (nn.ReLU,), {})()
    x = rng.standard_normal((3, 4, 8, 8)).astype(dtype)
    y_f, y_p = fused(x), plain(x)
    assert fused._cache[1] and not plain._cache[1]
    np.testing.assert_array_equal(y_f, y_p)
    dy = rng.standard_normal(y_f.shape).astype(dtype)
    np.testing.assert_array_equal(fused.backward(dy), plain.backward(dy))
    for (name, a), (_, b) in zip(fused.named_parameters(), plain.named_parameters()):
        np.testing.assert_array_equal(a.grad, b.grad, err_msg=name)


@pytest.mark.parametrize("train", [True, False])
def test_resnet_and_vgg_stacks_match_torch(train):
    """The benchmark's networks' building blocks, fused where they fuse, against torch.nn in float64."""
    from convgrad.bench.train_step import torch_vocabulary

    T = torch_vocabulary()
    torch.manual_seed(1)
    tm = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3, padding=1, bias=False), torch.nn.BatchNorm2d(4), torch.nn.ReLU(),
                             T.BasicBlock(4, 4, 1), T.BasicBlock(4, 8, 2), torch.nn.BatchNorm2d(8), torch.nn.ReLU(),
                             torch.nn.MaxPool2d(2)).double()
    with torch.no_grad():
        for mod in tm.modules():
            if isinstance(mod, torch.nn.BatchNorm2d):
                mod.weight.uniform_(-1.5, 1.5), mod.bias.uniform_(-1, 1), mod.running_mean.uniform_(-1, 1)
                mod.running_var.uniform_(0.5, 2)
    m = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1, bias=False), nn.BatchNorm2d(4), nn.ReLU(), nn.BasicBlock(4, 4, 1),
                      nn.BasicBlock(4, 8, 2), nn.BatchNorm2d(8), nn.ReLU(), nn.MaxPool2d(2)).to(np.float64)
    x = np.random.default_rng(8).standard_normal((4, 3, 8, 8))
    assert compare_passes(m, tm, x, train=train) > 10


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("train", [True, False])
def test_gate_read_from_the_output_the_next_layer_keeps(dtype, train):
    """Before a convolution (which keeps its input) the fused pair keeps no gate: it reads [y > 0] from y."""
    rng = np.random.default_rng(9)
    x = rng.standard_normal((3, 4, 6, 6)).astype(dtype)
    conv_a, conv_b = nn.Conv2d(4, 3, 3, rng=4, dtype=dtype), nn.Conv2d(4, 3, 3, rng=4, dtype=dtype)
    seq = nn.Sequential(_bn_relu(dtype=dtype), nn.ReLU(), conv_a).train(train)
    ref = [_bn_relu(dtype=dtype).train(train), nn.ReLU(), conv_b]
    y = seq(x)
    assert seq[0]._cache[4].dtype == dtype and "gate" not in seq[0].__dict__.get("_kept", {})
    h = x
    for layer in ref:
        h = layer.forward(h)
    np.testing.assert_array_equal(y, h)
    dy = rng.standard_normal(y.shape).astype(dtype)
    d = dy
    for layer in reversed(ref):
        d = layer.backward(d)
    np.testing.assert_array_equal(seq.backward(dy), d)
    np.testing.assert_array_equal(seq[0].weight.grad, ref[0].weight.grad)
    # the ReLU's own backward reads the same gate
    y = seq(x)
    np.testing.assert_array_equal(seq[1].backward(np.ones_like(x)), ref[1].forward(ref[0].forward(x)) > 0)


def test_fused_basic_block_keeps_a_float64_gradient_float64():
    """A float64 grad_output through a float32 block: the fused tail computes dz in float64, as the unfused code."""
    from convgrad import nn as cnn
    block = cnn.BasicBlock(4, 4, rng=0)
    x = np.random.default_rng(0).standard_normal((2, 4, 6, 6)).astype(np.float32)
    y = block(x)
    dx = block.backward(np.random.default_rng(1).standard_normal(y.shape))
    assert dx.dtype == np.float64


def test_kept_scratch_does_not_travel_with_copies():
    import copy
    import pickle
    from convgrad import nn as cnn
    model = cnn.Sequential(cnn.Conv2d(2, 4, 3, padding=1, rng=0), cnn.BatchNorm2d(4), cnn.ReLU())
    x = np.random.default_rng(0).standard_normal((2, 2, 5, 5)).astype(np.float32)
    y = model(x)
    model.backward(np.ones_like(y))
    assert any("_kept" in m.__dict__ for m in model.modules())
    for clone in (copy.deepcopy(model), pickle.loads(pickle.dumps(model))):
        assert not any("_kept" in m.__dict__ for m in clone.modules())
        np.testing.assert_array_equal(clone(x), model(x))
