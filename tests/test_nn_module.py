"""The Module protocol: state, modes, repr, initialisation, caches, and errors that name the problem."""

from __future__ import annotations

import numpy as np
import pytest

from convgrad import nn


def small_model(seed=0):
    rng = np.random.default_rng(seed)
    return nn.Sequential(nn.Conv2d(1, 3, 3, padding=1, rng=rng), nn.BatchNorm2d(3), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Flatten(), nn.Dropout(0.5, rng=rng), nn.Linear(12, 4, rng=rng))


def test_state_dict_round_trip_and_names():
    a, b = small_model(0), small_model(1)
    a(np.random.default_rng(0).random((4, 1, 4, 4)))  # moves BatchNorm's running statistics
    state = a.state_dict()
    assert list(state) == ["0.weight", "0.bias", "1.weight", "1.bias", "1.running_mean", "1.running_var",
                           "1.num_batches_tracked", "6.weight", "6.bias"]
    assert int(state["1.num_batches_tracked"]) == 1
    b.load_state_dict(state)
    for name, value in b.state_dict().items():
        np.testing.assert_array_equal(value, state[name])
    state["0.weight"][...] = 7  # copies both ways: neither model aliases the dict
    assert not np.any(a[0].weight.value == 7) and not np.any(b[0].weight.value == 7)


def test_load_state_dict_errors_change_nothing():
    m = small_model()
    before = m.state_dict()
    bad = dict(before)
    bad["6.weight"] = np.zeros((5, 12))
    with pytest.raises(ValueError, match="'6.weight' must have shape \\(4, 12\\), got \\(5, 12\\)"):
        m.load_state_dict(bad)
    del bad["6.weight"]
    bad["extra"] = np.zeros(1)
    with pytest.raises(ValueError, match="missing \\['6.weight'\\], unexpected \\['extra'\\]"):
        m.load_state_dict(bad)
    for name, value in m.state_dict().items():
        np.testing.assert_array_equal(value, before[name])
    partial = {"6.bias": np.ones(4)}
    m.load_state_dict(partial, strict=False)
    np.testing.assert_array_equal(m[6].bias.value, np.ones(4))
    with pytest.raises(TypeError, match="mapping"):
        m.load_state_dict([1, 2])


def test_repr_shows_only_non_default_arguments():
    assert repr(nn.Conv2d(1, 16, 3)) == "Conv2d(1, 16, kernel_size=3)"
    assert repr(nn.Conv2d(2, 4, (3, 5), stride=2, padding=1, groups=2, bias=False, padding_mode="reflect")) == (
        "Conv2d(2, 4, kernel_size=(3, 5), stride=2, padding=1, groups=2, bias=False, padding_mode='reflect')")
    assert repr(nn.ConvTranspose1d(4, 2, 3, stride=2, output_padding=1)) == (
        "ConvTranspose1d(4, 2, kernel_size=3, stride=2, output_padding=1)")
    assert repr(nn.Linear(3, 2, dtype=np.float64)) == "Linear(3, 2, dtype=float64)"
    assert repr(nn.MaxPool2d(2)) == "MaxPool2d(kernel_size=2)"
    assert repr(nn.AvgPool2d(3, stride=1, count_include_pad=False)) == "AvgPool2d(kernel_size=3, stride=1, count_include_pad=False)"
    assert repr(nn.BatchNorm2d(8, momentum=None)) == "BatchNorm2d(8, momentum=None)"
    assert repr(nn.LeakyReLU()) == "LeakyReLU()" and repr(nn.Dropout()) == "Dropout()"
    assert repr(nn.CrossEntropyLoss(label_smoothing=0.1)) == "CrossEntropyLoss(label_smoothing=0.1)"
    assert repr(small_model()).splitlines()[:3] == ["Sequential(", "  (0): Conv2d(1, 3, kernel_size=3, padding=1)",
                                                    "  (1): BatchNorm2d(3)"]


def test_default_initialisation_follows_pytorch_bounds():
    conv = nn.Conv2d(8, 16, 3, rng=0)  # fan_in = 8*3*3 = 72
    bound = 1 / np.sqrt(72)
    for arr in (conv.weight.value, conv.bias.value):
        assert np.abs(arr).max() <= bound and np.abs(arr).max() > 0.8 * bound
    assert abs(conv.weight.value.mean()) < 0.1 * bound and conv.weight.dtype == np.float32
    t = nn.ConvTranspose2d(8, 4, 3, groups=2, rng=0)  # weight (8, 2, 3, 3): fan_in = 2*9 = 18
    assert t.weight.shape == (8, 2, 3, 3) and np.abs(t.weight.value).max() <= 1 / np.sqrt(18)
    np.testing.assert_array_equal(nn.Conv2d(8, 16, 3, rng=0).weight.value, conv.weight.value)  # same seed, same weights
    bn = nn.BatchNorm2d(3)
    np.testing.assert_array_equal(bn.weight.value, 1)
    np.testing.assert_array_equal(bn.running_var, 1)


def test_train_eval_modes_and_dropout():
    m = small_model()
    assert all(layer.training for layer in m.modules())
    m.eval()
    assert not any(layer.training for layer in m.modules())
    drop = nn.Dropout(0.25, rng=0)
    x = np.ones((200, 50))
    y = drop(x)
    kept = y != 0
    assert 0.70 < kept.mean() < 0.80 and np.allclose(y[kept], 1 / 0.75)
    np.testing.assert_array_equal(drop.backward(np.full_like(x, 2.0)), np.where(kept, 2 / 0.75, 0))
    drop.eval()
    np.testing.assert_array_equal(drop(x), x)
    assert np.all(nn.Dropout(1.0, rng=0)(x) == 0)


def test_backward_accumulates_and_zero_grad_resets():
    layer = nn.Linear(3, 2, rng=0).to(np.float64)
    x = np.random.default_rng(0).standard_normal((4, 3))
    layer(x)
    layer.backward(np.ones((4, 2)))
    once = layer.weight.grad.copy()
    layer.backward(np.ones((4, 2)))
    np.testing.assert_allclose(layer.weight.grad, 2 * once)
    layer.zero_grad()
    assert not layer.weight.grad.any()


def test_frozen_parameters_get_no_gradient():
    conv = nn.Conv2d(1, 2, 3, rng=0)
    conv.weight.requires_grad = False
    y = conv(np.ones((1, 1, 5, 5), dtype=np.float32))
    conv.backward(np.ones_like(y))
    assert not conv.weight.grad.any() and conv.bias.grad.all()


def test_layers_keep_one_forward_and_never_modify_inputs():
    m = small_model()
    x = np.random.default_rng(0).random((2, 1, 4, 4)).astype(np.float32)
    x_copy = x.copy()
    for _ in range(3):
        y = m(x)
        for layer in m:  # one forward's worth of saved arrays, whatever the number of steps
            saved = layer._cache
            assert isinstance(saved, tuple) and len(saved) <= 5
        m.backward(np.ones_like(y))
        assert all(layer._cache is None for layer in m)  # released by the backward pass
    np.testing.assert_array_equal(x, x_copy)
    with pytest.raises(RuntimeError, match="backward was called before forward .or a second time"):
        m.backward(np.ones_like(y))


def test_backward_before_forward_and_wrong_shapes_are_clear_errors():
    with pytest.raises(RuntimeError, match="Conv2d.backward was called before forward"):
        nn.Conv2d(1, 1, 3).backward(np.ones((1, 1, 3, 3)))
    lin = nn.Linear(3, 2)
    with pytest.raises(ValueError, match="Linear: input must have shape \\(\\*, 3\\), got shape \\(4, 5\\)"):
        lin(np.ones((4, 5)))
    lin(np.ones((4, 3)))
    with pytest.raises(ValueError, match="grad_output must have shape \\(4, 2\\)"):
        lin.backward(np.ones((4, 3)))
    conv = nn.Conv2d(3, 4, 3)
    with pytest.raises(ValueError, match="Conv2d: .*channels"):
        conv(np.ones((1, 2, 5, 5)))
    conv(np.ones((1, 3, 5, 5)))
    with pytest.raises(ValueError, match="Conv2d.backward: grad_output must have shape \\(1, 4, 3, 3\\)"):
        conv.backward(np.ones((1, 4, 5, 5)))
    with pytest.raises(ValueError, match="BatchNorm2d: input must have shape \\(N, 3, H, W\\)"):
        nn.BatchNorm2d(3)(np.ones((2, 4, 2, 2)))
    with pytest.raises(ValueError, match="MaxPool2d: input must be 4-d"):
        nn.MaxPool2d(2)(np.ones((2, 2)))


@pytest.mark.parametrize(
    "build,error,message",
    [
        (lambda: nn.Conv2d(3, 4, 3, groups=2), ValueError, "groups=2 must divide in_channels=3"),
        (lambda: nn.Conv2d(0, 4, 3), ValueError, "in_channels must be a positive integer"),
        (lambda: nn.Conv2d(1, 4, 3, padding="full"), ValueError, "padding must be"),
        (lambda: nn.Conv2d(1, 4, 3, padding_mode="mirror"), ValueError, "padding_mode must be one of"),
        (lambda: nn.Conv2d(1, 4, (3, 3, 3)), ValueError, "kernel_size"),
        (lambda: nn.Conv2d(1, 4, 3, stride=0), ValueError, "stride must be positive"),
        (lambda: nn.ConvTranspose2d(1, 4, 3, stride=2, output_padding=2), ValueError, "output_padding"),
        (lambda: nn.ConvTranspose2d(1, 4, 3, padding_mode="reflect"), ValueError, "only padding_mode='zeros'"),
        (lambda: nn.Linear(3, 2, bias=1), TypeError, "bias must be True or False"),
        (lambda: nn.Linear(3, 2, dtype=np.int32), TypeError, "dtype must be float16, float32 or float64"),
        (lambda: nn.Linear(3, 2, rng="seed"), TypeError, "rng must be"),
        (lambda: nn.MaxPool2d(2, padding=2), ValueError, "at most half the kernel size"),
        (lambda: nn.Dropout(1.5), ValueError, "between 0 and 1"),
        (lambda: nn.BatchNorm2d(3, eps=-1), ValueError, "eps must be a non-negative number"),
        (lambda: nn.Sequential(nn.ReLU(), "relu"), TypeError, "every layer must be a convgrad.nn.Module"),
    ],
)
def test_constructor_errors_name_the_argument(build, error, message):
    with pytest.raises(error, match=message):
        build()


def test_to_dtype_converts_parameters_and_buffers():
    m = small_model().to(np.float64)
    assert all(p.dtype == np.float64 for p in m.parameters())
    assert m[1].running_mean.dtype == np.float64 and m[1].num_batches_tracked.dtype == np.int64
    assert m(np.ones((2, 1, 4, 4))).dtype == np.float64
