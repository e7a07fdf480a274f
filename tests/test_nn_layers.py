"""Every convgrad.nn layer against the torch.nn layer with the same weights (float64, 1e-10)."""

from __future__ import annotations

import numpy as np
import pytest

from convgrad import nn
from _nn_torch import compare_passes

torch = pytest.importorskip("torch")

# (layer name, positional args, keyword args, input shape)
LAYERS = [
    ("Conv1d", (3, 4, 3), {}, (2, 3, 9)),
    ("Conv1d", (4, 6, 3), dict(stride=2, padding=2, dilation=2, groups=2, padding_mode="circular"), (2, 4, 11)),
    ("Conv2d", (1, 4, 3), dict(padding=1), (3, 1, 8, 8)),
    ("Conv2d", (4, 6, (3, 2)), dict(stride=(2, 1), padding=(1, 0), dilation=(1, 2), groups=2, bias=False), (2, 4, 7, 8)),
    ("Conv2d", (2, 3, 3), dict(padding="same", padding_mode="reflect"), (2, 2, 6, 5)),
    ("Conv2d", (2, 3, 3), dict(stride=2, padding=2, padding_mode="replicate"), (2, 2, 7, 6)),
    ("Conv2d", (4, 4, 3), dict(groups=4, padding="valid"), (2, 4, 5, 5)),
    ("Conv3d", (2, 3, (2, 3, 2)), dict(stride=(1, 2, 1), padding=1), (2, 2, 4, 5, 3)),
    ("ConvTranspose1d", (3, 4, 3), dict(stride=2, padding=1, output_padding=1), (2, 3, 5)),
    ("ConvTranspose2d", (4, 6, (3, 2)), dict(stride=(2, 3), padding=(1, 0), output_padding=(1, 2), groups=2), (2, 4, 3, 4)),
    ("ConvTranspose2d", (2, 2, 3), dict(dilation=2, padding=1, bias=False), (1, 2, 4, 4)),
    ("ConvTranspose3d", (2, 3, 2), dict(stride=2, padding=1, output_padding=1), (1, 2, 2, 3, 2)),
    ("Linear", (5, 3), {}, (4, 5)),
    ("Linear", (5, 3), dict(bias=False), (2, 3, 5)),
    ("ReLU", (), {}, (3, 4, 5)),
    ("LeakyReLU", (0.2,), {}, (3, 4, 5)),
    ("Tanh", (), {}, (3, 4, 5)),
    ("Sigmoid", (), {}, (3, 4, 5)),
    ("MaxPool2d", (2,), {}, (2, 3, 8, 8)),
    ("MaxPool2d", ((2, 3),), {}, (2, 3, 7, 8)),  # tiling windows with an unread tail in both dims
    ("MaxPool2d", (3,), dict(stride=2, padding=1), (2, 3, 7, 8)),
    ("MaxPool2d", (3,), dict(stride=2, ceil_mode=True), (2, 2, 8, 7)),
    ("MaxPool2d", ((2, 3),), dict(stride=1, dilation=2), (1, 2, 7, 8)),
    ("MaxPool1d", (3,), dict(stride=2, padding=1, ceil_mode=True), (2, 3, 10)),
    ("MaxPool3d", (2,), {}, (1, 2, 4, 5, 4)),
    ("MaxPool1d", (4,), {}, (2, 3, 9)),
    ("AvgPool2d", (2,), {}, (2, 3, 8, 8)),
    ("AvgPool2d", (3,), dict(stride=2, padding=1), (2, 3, 7, 8)),
    ("AvgPool2d", (3,), dict(stride=2, padding=1, count_include_pad=False, ceil_mode=True), (2, 3, 8, 7)),
    ("AvgPool2d", (2,), dict(divisor_override=3), (1, 2, 6, 6)),
    ("AvgPool1d", (3,), dict(stride=2, padding=1, ceil_mode=True), (2, 3, 10)),
    ("AvgPool3d", (2,), dict(stride=1), (1, 2, 3, 4, 3)),
    ("Flatten", (), {}, (2, 3, 4, 5)),
    ("Flatten", (0, 2), {}, (2, 3, 4, 5)),
    ("BatchNorm2d", (3,), {}, (4, 3, 5, 5)),
    ("BatchNorm2d", (3,), dict(momentum=None, affine=False), (4, 3, 2, 3)),
    ("BatchNorm2d", (3,), dict(track_running_stats=False, eps=1e-3), (4, 3, 2, 3)),
]


def _pair(name, args, kwargs):
    tm = getattr(torch.nn, name)(*args, **kwargs).double()
    m = getattr(nn, name)(*args, **kwargs)
    return m.to(np.float64), tm


def _id(case):
    name, args, kwargs, _ = case
    return f"{name}{args}{kwargs}".replace(" ", "")


@pytest.mark.parametrize("case", LAYERS, ids=_id)
@pytest.mark.parametrize("train", [True, False])
def test_layer_matches_torch(case, train):
    name, args, kwargs, shape = case
    m, tm = _pair(name, args, kwargs)
    rng = np.random.default_rng(1)
    with torch.no_grad():  # non-trivial BatchNorm affine parameters and running statistics
        for p in tm.parameters():
            p.copy_(torch.tensor(rng.standard_normal(tuple(p.shape))))
        if name == "BatchNorm2d" and tm.track_running_stats:
            tm.running_mean.copy_(torch.tensor(rng.standard_normal(args[0])))
            tm.running_var.copy_(torch.tensor(rng.uniform(0.5, 2, args[0])))
    x = rng.standard_normal(shape)
    compare_passes(m, tm, x, train=train)


@pytest.mark.parametrize("name", ["MaxPool2d", "ReLU", "LeakyReLU"])
def test_ties_and_kinks_route_the_gradient_as_torch(name):
    # small integers: many equal values inside the pooling windows and exact zeros at the kinks
    x = np.random.default_rng(2).integers(-2, 3, size=(2, 3, 6, 6)).astype(np.float64)
    args = (3,) if name == "MaxPool2d" else ()
    kwargs = dict(stride=1, padding=1) if name == "MaxPool2d" else {}
    m, tm = _pair(name, args, kwargs)
    compare_passes(m, tm, x)
    if name == "MaxPool2d":  # tiling windows take another path
        m, tm = _pair(name, (2,), {})
        compare_passes(m, tm, x)


def test_conv_transpose_output_size_matches_torch():
    tm = torch.nn.ConvTranspose2d(2, 3, 3, stride=2, padding=1).double()
    m = nn.ConvTranspose2d(2, 3, 3, stride=2, padding=1).to(np.float64)
    m.load_state_dict({k: v.detach().numpy() for k, v in tm.state_dict().items()})
    x = np.random.default_rng(0).standard_normal((1, 2, 4, 4))
    for size in ([7, 7], [8, 8], [7, 8], (1, 3, 8, 7)):
        y = m(x, output_size=size)
        ty = tm(torch.tensor(x), output_size=list(size))
        np.testing.assert_allclose(y, ty.detach().numpy(), rtol=0, atol=1e-12)
        dy = np.ones_like(y)
        assert m.backward(dy).shape == x.shape
    with pytest.raises(ValueError, match="output_size"):
        m(x, output_size=(10, 10))


def test_unbatched_inputs_match_batched():
    m = nn.Conv2d(2, 3, 3, padding=1, rng=0).to(np.float64)
    x = np.random.default_rng(0).standard_normal((2, 5, 5))
    batched = m(x[None])[0]
    y = m(x)
    np.testing.assert_allclose(y, batched, rtol=0, atol=1e-14)
    assert m.backward(np.ones_like(y)).shape == x.shape


def test_torch_state_dict_tensors_load_directly():
    tm = torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3), torch.nn.BatchNorm2d(2), torch.nn.Flatten(), torch.nn.Linear(18, 3))
    tm(torch.randn(4, 1, 5, 5))  # running statistics and num_batches_tracked move
    m = nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2), nn.Flatten(), nn.Linear(18, 3))
    m.load_state_dict(tm.state_dict())  # CPU tensors, no conversion by the caller
    for name, value in tm.state_dict().items():
        np.testing.assert_array_equal(m.state_dict()[name], value.numpy())
    assert int(m[1].num_batches_tracked) == 1
