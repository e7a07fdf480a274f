"""Losses and optimizers against PyTorch; a whole network against PyTorch and finite differences."""

from __future__ import annotations

import numpy as np
import pytest

from convgrad import nn
from _configs import max_rel
from _nn_torch import compare_passes, load_from_torch

torch = pytest.importorskip("torch")
F = torch.nn.functional


# ------------------------------------------------------------------------------------------------
# losses
# ------------------------------------------------------------------------------------------------

CE_CASES = [
    dict(),
    dict(reduction="sum"),
    dict(weight=[0.5, 1.0, 2.0, 1.5, 0.1]),
    dict(ignore_index=2),
    dict(weight=[0.5, 1.0, 2.0, 1.5, 0.1], ignore_index=1, label_smoothing=0.2),
    dict(label_smoothing=0.1, reduction="sum"),
]


@pytest.mark.parametrize("kwargs", CE_CASES, ids=str)
@pytest.mark.parametrize("shape", [(6, 5), (3, 5, 2, 3), (5,)], ids=str)
def test_cross_entropy_matches_torch(kwargs, shape):
    rng = np.random.default_rng(0)
    z = rng.standard_normal(shape) * 3
    target = rng.integers(0, 5, size=shape[:1] + shape[2:] if len(shape) > 1 else ())
    if "ignore_index" in kwargs and target.ndim:
        target.flat[0] = kwargs["ignore_index"]
    value, grad = nn.CrossEntropyLoss(**kwargs)(z, target)
    tz = torch.tensor(z, requires_grad=True)
    tkw = dict(kwargs, weight=None if "weight" not in kwargs else torch.tensor(kwargs["weight"], dtype=torch.float64))
    tl = torch.nn.CrossEntropyLoss(**tkw)(tz, torch.tensor(target))
    tl.backward()
    assert abs(value - tl.item()) < 1e-12 * max(1, abs(tl.item()))
    assert grad.shape == z.shape
    assert max_rel(grad, tz.grad.numpy()) < 1e-12


@pytest.mark.parametrize("kwargs", [dict(), dict(label_smoothing=0.3, weight=[1.0, 2.0, 0.5, 1.0])], ids=str)
def test_cross_entropy_with_probabilities_matches_torch(kwargs):
    rng = np.random.default_rng(1)
    z = rng.standard_normal((4, 4, 3))
    p = rng.random((4, 4, 3))
    p /= p.sum(axis=1, keepdims=True)
    value, grad = nn.CrossEntropyLoss(**kwargs)(z, p)
    tz = torch.tensor(z, requires_grad=True)
    tkw = dict(kwargs, weight=None if "weight" not in kwargs else torch.tensor(kwargs["weight"], dtype=torch.float64))
    tl = torch.nn.CrossEntropyLoss(**tkw)(tz, torch.tensor(p))
    tl.backward()
    assert abs(value - tl.item()) < 1e-12
    assert max_rel(grad, tz.grad.numpy()) < 1e-12


def test_cross_entropy_is_stable_for_huge_logits():
    z = np.array([[1000.0, -1000.0, 0.0]])
    value, grad = nn.CrossEntropyLoss()(z, np.array([1]))
    assert value == pytest.approx(2000.0)
    np.testing.assert_allclose(grad, [[1.0, -1.0, 0.0]], atol=1e-12)


@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_mse_matches_torch(reduction):
    rng = np.random.default_rng(2)
    x, y = rng.standard_normal((3, 4)), rng.standard_normal((3, 4))
    value, grad = nn.MSELoss(reduction)(x, y)
    tx = torch.tensor(x, requires_grad=True)
    tl = torch.nn.MSELoss(reduction=reduction)(tx, torch.tensor(y))
    tl.backward()
    assert value == pytest.approx(tl.item(), rel=1e-13)
    assert max_rel(grad, tx.grad.numpy()) < 1e-13


def test_loss_errors_name_the_problem():
    ce = nn.CrossEntropyLoss()
    with pytest.raises(ValueError, match="outside \\[0, 3\\)"):
        ce(np.zeros((2, 3)), np.array([0, 3]))
    with pytest.raises(ValueError, match="target must hold class indices of shape \\(2,\\)"):
        ce(np.zeros((2, 3)), np.array([0, 1, 2]))
    with pytest.raises(TypeError, match="integer class indices"):
        ce(np.zeros((2, 3)), np.array([0.0, 1.0]))
    with pytest.raises(ValueError, match="reduction"):
        nn.CrossEntropyLoss(reduction="none")
    with pytest.raises(ValueError, match="target must have the input's shape"):
        nn.MSELoss()(np.zeros(3), np.zeros(4))


# ------------------------------------------------------------------------------------------------
# optimizers: several steps against torch.optim
# ------------------------------------------------------------------------------------------------

OPTIMIZERS = [
    ("SGD", dict(lr=0.1)),
    ("SGD", dict(lr=0.1, momentum=0.9)),
    ("SGD", dict(lr=0.1, momentum=0.9, dampening=0.3, weight_decay=0.01)),
    ("SGD", dict(lr=0.05, momentum=0.8, nesterov=True, weight_decay=1e-3)),
    ("SGD", dict(lr=0.05, momentum=0.5, maximize=True)),
    ("Adam", dict()),
    ("Adam", dict(lr=0.01, betas=(0.8, 0.99), eps=1e-6, weight_decay=0.1)),
    ("Adam", dict(lr=0.01, amsgrad=True)),
    ("Adam", dict(lr=0.01, maximize=True, amsgrad=True, weight_decay=0.01)),
]


@pytest.mark.parametrize("name,kwargs", OPTIMIZERS, ids=lambda v: str(v))
def test_optimizer_steps_match_torch(name, kwargs):
    rng = np.random.default_rng(3)
    values = [rng.standard_normal((3, 4)), rng.standard_normal(5)]
    params = [nn.Parameter(v) for v in values]
    tparams = [torch.tensor(v, requires_grad=True) for v in values]
    opt = getattr(nn, name)(params, **kwargs)
    topt = getattr(torch.optim, name)(tparams, **kwargs)
    for _ in range(6):
        for p, tp in zip(params, tparams):
            g = rng.standard_normal(p.shape)
            p.grad[...] = g
            tp.grad = torch.tensor(g)
        opt.step()
        topt.step()
        for p, tp in zip(params, tparams):
            assert max_rel(p.value, tp.detach().numpy()) < 1e-13


def test_optimizer_skips_frozen_parameters_and_validates():
    p, q = nn.Parameter(np.ones(2)), nn.Parameter(np.ones(2), requires_grad=False)
    p.grad[...] = q.grad[...] = 1.0
    nn.SGD([p, q], lr=0.5).step()
    np.testing.assert_array_equal(p.value, [0.5, 0.5])
    np.testing.assert_array_equal(q.value, [1.0, 1.0])
    with pytest.raises(ValueError, match="nesterov"):
        nn.SGD([p], lr=0.1, nesterov=True)
    with pytest.raises(ValueError, match="lr must be >= 0"):
        nn.Adam([p], lr=-1)
    with pytest.raises(ValueError, match="betas\\[1\\]"):
        nn.Adam([p], betas=(0.9, 1.0))
    with pytest.raises(TypeError, match="Parameter"):
        nn.SGD([np.ones(2)])
    with pytest.raises(ValueError, match="empty"):
        nn.SGD([])


# ------------------------------------------------------------------------------------------------
# whole networks
# ------------------------------------------------------------------------------------------------


def _lenet(lib, dtype):
    """The same LeNet-style network in torch.nn or convgrad.nn."""
    layers = [
        lib.Conv2d(1, 4, 3, padding=1), lib.BatchNorm2d(4), lib.ReLU(), lib.MaxPool2d(2),
        lib.Conv2d(4, 6, 3, padding=1), lib.ReLU(), lib.AvgPool2d(2),
        lib.Flatten(), lib.Linear(24, 16), lib.Tanh(), lib.Linear(16, 10),
    ]
    model = lib.Sequential(*layers)
    return model.double() if lib is torch.nn else model.to(dtype)


def test_network_loaded_from_torch_trains_identically():
    """A torch model's state_dict loads; outputs, every gradient and 3 SGD steps agree in float64."""
    torch.manual_seed(0)
    tm = _lenet(torch.nn, None)
    m = _lenet(nn, np.float64)
    rng = np.random.default_rng(0)
    x = rng.random((8, 1, 8, 8))
    compare_passes(m, tm, x)

    load_from_torch(m, tm)
    opt = nn.SGD(m.parameters(), lr=0.1, momentum=0.9, nesterov=True, weight_decay=1e-4)
    topt = torch.optim.SGD(tm.parameters(), lr=0.1, momentum=0.9, nesterov=True, weight_decay=1e-4)
    loss_fn = nn.CrossEntropyLoss(label_smoothing=0.1)
    for step in range(3):
        xb = rng.random((8, 1, 8, 8))
        yb = rng.integers(0, 10, 8)
        opt.zero_grad()
        value, grad = loss_fn(m(xb), yb)
        m.backward(grad, input_grad=False)
        opt.step()
        topt.zero_grad()
        tl = torch.nn.CrossEntropyLoss(label_smoothing=0.1)(tm(torch.tensor(xb)), torch.tensor(yb))
        tl.backward()
        topt.step()
        assert abs(value - tl.item()) < 1e-10
    tstate = tm.state_dict()
    for name, value in m.state_dict().items():
        assert max_rel(value, tstate[name].numpy()) < 1e-10, name


def test_whole_network_gradients_match_finite_differences():
    """Every parameter entry and every input entry of a small float64 network, by central differences."""
    rng = np.random.default_rng(4)
    model = nn.Sequential(
        nn.Conv2d(2, 3, 3, stride=1, padding=1, padding_mode="reflect", rng=rng),
        nn.BatchNorm2d(3),
        nn.LeakyReLU(0.1),
        nn.MaxPool2d(2),
        nn.ConvTranspose2d(3, 2, 2, stride=2, rng=rng),
        nn.Sigmoid(),
        nn.Conv2d(2, 2, 3, stride=2, groups=2, dilation=1, rng=rng),
        nn.AvgPool2d(2, stride=1, padding=1, count_include_pad=False),
        nn.Flatten(),
        nn.Linear(18, 5, rng=rng),
        nn.Tanh(),
    ).to(np.float64)
    for p in model.parameters():  # BatchNorm's affine parameters away from their (1, 0) start
        p.value[...] += 0.3 * rng.standard_normal(p.shape)
    x = rng.standard_normal((3, 2, 6, 6))
    target = rng.integers(0, 5, 3)
    loss_fn = nn.CrossEntropyLoss()

    def loss_at(inp):
        return loss_fn(model(inp), target)[0]

    model.zero_grad()
    _, grad = loss_fn(model(x), target)
    dx = model.backward(grad)
    h = 1e-6
    checked = 0
    for name, p in model.named_parameters():
        fd = np.empty(p.shape)
        for idx in np.ndindex(*p.shape):
            old = p.value[idx]
            p.value[idx] = old + h
            up = loss_at(x)
            p.value[idx] = old - h
            down = loss_at(x)
            p.value[idx] = old
            fd[idx] = (up - down) / (2 * h)
        err = np.max(np.abs(fd - p.grad)) / max(1e-3, np.max(np.abs(p.grad)))
        assert err < 1e-6, (name, err)
        checked += p.value.size
    fd = np.empty(x.shape)
    for idx in np.ndindex(*x.shape):
        xp, xm = x.copy(), x.copy()
        xp[idx] += h
        xm[idx] -= h
        fd[idx] = (loss_at(xp) - loss_at(xm)) / (2 * h)
    assert np.max(np.abs(fd - dx)) / np.max(np.abs(dx)) < 1e-6
    assert checked > 150


def test_adam_with_a_parameter_frozen_midway_matches_torch():
    """The flat-array path (all parameters together) and the per-parameter path give torch's steps."""
    rng = np.random.default_rng(5)
    values = [rng.standard_normal((2, 3)), rng.standard_normal(4)]
    params = [nn.Parameter(v) for v in values]
    tparams = [torch.tensor(v, requires_grad=True) for v in values]
    opt = nn.Adam(params, lr=0.05, weight_decay=0.01, amsgrad=True)
    topt = torch.optim.Adam(tparams, lr=0.05, weight_decay=0.01, amsgrad=True)
    for step in range(6):
        frozen = step in (2, 3)  # the second parameter skips two steps, then catches up out of phase
        params[1].requires_grad = not frozen
        for j, (p, tp) in enumerate(zip(params, tparams)):
            g = rng.standard_normal(p.shape)
            p.grad[...] = g
            tp.grad = None if (frozen and j == 1) else torch.tensor(g)
        opt.step()
        topt.step()
        for p, tp in zip(params, tparams):
            assert max_rel(p.value, tp.detach().numpy()) < 1e-13
