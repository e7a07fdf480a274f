"""Every convgrad.nn layer against the torch.nn layer with the same weights (float64, 1e-10)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

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


@st.composite
def pool_cases(draw):
    rank = draw(st.integers(1, 3))
    kernel = tuple(draw(st.integers(1, 3)) for _ in range(rank))
    stride = tuple(draw(st.integers(1, 3)) for _ in range(rank))
    padding = tuple(draw(st.integers(0, k // 2)) for k in kernel)
    maximum = draw(st.booleans())
    dilation = tuple(draw(st.integers(1, 2)) for _ in range(rank)) if maximum else (1,) * rank
    # torch's avg_pool3d (alone) also refuses an unpadded input smaller than the kernel
    strict = not maximum and rank == 3
    size = tuple(
        draw(st.integers(max(1, k if strict else d * (k - 1) + 1 - 2 * p), 7)) for k, p, d in zip(kernel, padding, dilation)
    )
    ceil_mode = draw(st.booleans())
    # a window lying entirely in the padding is degenerate: PyTorch routes its gradient to an element
    # outside the window (here it gets none); leave those configurations out
    for h, k, s, p, d in zip(size, kernel, stride, padding, dilation):
        span = h + 2 * p - d * (k - 1) - 1
        out = (-(-span // s) if ceil_mode else span // s) + 1
        out -= ceil_mode and (out - 1) * s >= h + p
        assume(all(any(0 <= i * s + j * d - p < h for j in range(k)) for i in range(out)))
    shape = (draw(st.integers(1, 2)), draw(st.integers(1, 2)), *size)
    if maximum:
        return f"MaxPool{rank}d", dict(kernel_size=kernel, stride=stride, padding=padding, dilation=dilation,
                                       ceil_mode=ceil_mode), shape
    extra = dict(count_include_pad=draw(st.booleans()))
    if rank > 1 and draw(st.booleans()):
        extra["divisor_override"] = draw(st.integers(1, 5))
    return f"AvgPool{rank}d", dict(kernel_size=kernel, stride=stride, padding=padding, ceil_mode=ceil_mode, **extra), shape


@given(pool_cases(), st.integers(0, 2**16))
def test_pooling_property_sweep_against_torch(case, seed):
    """Random pooling geometry -- ceil_mode, padding, dilation, divisors -- against torch.nn."""
    name, kwargs, shape = case
    m, tm = _pair(name, (), kwargs)
    compare_passes(m, tm, np.random.default_rng(seed).standard_normal(shape), seed=seed)


def _torch_expressible(case) -> bool:
    """Whether torch.nn's Conv/ConvTranspose layers take this case's arguments as they are."""
    per_dim = case.padding if isinstance(case.padding, tuple) else (case.padding,)
    if any(not isinstance(p, int) for p in per_dim):  # (low, high) pairs
        return False
    if case.padding == "same" and any(s != 1 for s in (case.stride if isinstance(case.stride, tuple) else (case.stride,))):
        return False
    return case.batch > 0


@given(st.integers(0, 2**32 - 1))
def test_conv_layer_property_sweep_against_torch(seed):
    """Random Conv/ConvTranspose layer arguments (rank, groups, stride, padding, padding_mode, ...) against torch.nn."""
    import random

    from _configs import random_case

    case = random_case(random.Random(seed), max_size=6)
    assume(_torch_expressible(case))
    rank = case.ndim
    if case.transposed:
        name = f"ConvTranspose{rank}d"
        kwargs = dict(stride=case.stride, padding=case.padding, output_padding=case.output_padding, groups=case.groups,
                      bias=case.bias, dilation=case.dilation)
    else:
        name = f"Conv{rank}d"
        kwargs = dict(stride=case.stride, padding=case.padding, dilation=case.dilation, groups=case.groups,
                      bias=case.bias, padding_mode=case.padding_mode)
    m, tm = _pair(name, (case.in_channels, case.out_channels, case.kernel), kwargs)
    compare_passes(m, tm, np.random.default_rng(seed).standard_normal(case.input_shape), seed=seed % 1000)
