"""padding='causal' (Keras' rule, any rank and stride) and the bias shapes (C,), (C, 1, ..., 1), (1, C, 1, ..., 1)."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import convgrad
from convgrad import nn

torch = pytest.importorskip("torch")
F = torch.nn.functional

rng = np.random.default_rng(0)


def _torch_causal(x, w, b, dy, stride, dilation, groups, mode="constant"):
    """Keras' causal convolution written out: pad D*(K-1) zeros before each spatial dim, then a valid conv."""
    tx, tw = torch.tensor(x, requires_grad=True), torch.tensor(w, requires_grad=True)
    tb = torch.tensor(b, requires_grad=True)
    pads = []
    for k in reversed(w.shape[2:]):  # F.pad lists the last dim first
        pads += [dilation * (k - 1), 0]
    fn = (F.conv1d, F.conv2d, F.conv3d)[w.ndim - 3]
    y = fn(F.pad(tx, pads, mode=mode), tw, tb, stride, 0, dilation, groups)
    y.backward(torch.tensor(dy))
    return y.detach().numpy(), tx.grad.numpy(), tw.grad.numpy(), tb.grad.numpy()


@pytest.mark.parametrize("input_shape, weight_shape, stride, dilation, groups, mode", [
    ((2, 3, 11), (4, 3, 3), 1, 1, 1, "zeros"),
    ((2, 4, 11), (4, 2, 3), 2, 2, 2, "zeros"),
    ((1, 2, 10), (3, 2, 4), 3, 1, 1, "zeros"),
    ((2, 2, 7, 6), (3, 2, 3, 2), (2, 1), 1, 1, "zeros"),
    ((1, 2, 5, 4, 4), (2, 1, 2, 3, 2), (1, 2, 1), 2, 2, "zeros"),
    ((2, 2, 9), (3, 2, 3), 2, 1, 1, "replicate"),
])
def test_causal_equals_padding_by_hand_in_pytorch(input_shape, weight_shape, stride, dilation, groups, mode):
    x, w = rng.standard_normal(input_shape), rng.standard_normal(weight_shape)
    b = rng.standard_normal(weight_shape[0])
    kw = dict(stride=stride, padding="causal", dilation=dilation, groups=groups, padding_mode=mode)
    y = convgrad.conv(x, w, b, **kw)
    strides = (stride,) * (w.ndim - 2) if isinstance(stride, int) else stride
    assert y.shape[2:] == tuple(-(-h // s) for h, s in zip(input_shape[2:], strides))  # ceil(H / S)
    dy = rng.standard_normal(y.shape)
    grads = convgrad.conv_backward(dy, x, w, **kw)
    ref = _torch_causal(x, w, b, dy, stride, dilation, groups, "constant" if mode == "zeros" else mode)
    for ours, theirs in zip((y, *grads), ref):
        assert np.abs(ours - theirs).max() < 1e-10 * max(1.0, float(np.abs(theirs).max()))


def test_causal_is_the_explicit_low_padding_per_dim():
    x, w = rng.standard_normal((1, 2, 5, 4, 4)), rng.standard_normal((2, 1, 2, 3, 2))
    kw = dict(stride=(1, 2, 1), dilation=(1, 2, 3), groups=2)
    pairs = ((1, 0), (4, 0), (3, 0))  # D*(K-1) per dim
    assert np.array_equal(convgrad.conv(x, w, padding="causal", **kw), convgrad.conv(x, w, padding=pairs, **kw))
    ex = convgrad.explain(x.shape, w.shape, padding="causal", **kw)
    assert ex.spec.padding == pairs and ex.output_shape == (1, 2, 5, 2, 4)


@settings(max_examples=15, deadline=None)
@given(h=st.integers(1, 9), k=st.integers(1, 4), d=st.integers(1, 3), t=st.integers(0, 8))
def test_output_i_never_reads_an_input_after_i(h, k, d, t):
    """Causality at stride 1: changing x[t+1:] leaves y[:t+1] unchanged."""
    t = min(t, h - 1)
    x, w = np.random.default_rng(h).standard_normal((1, 1, h)), np.random.default_rng(k).standard_normal((1, 1, k))
    changed = x.copy()
    changed[..., t + 1:] += 1.0
    y0 = convgrad.conv1d(x, w, padding="causal", dilation=d)
    y1 = convgrad.conv1d(changed, w, padding="causal", dilation=d)
    assert y0.shape == (1, 1, h)
    assert np.array_equal(y0[..., :t + 1], y1[..., :t + 1])


def test_causal_layers_and_refusals():
    layer = nn.Conv1d(2, 3, 3, padding="causal", dilation=2, dtype=np.float64)
    x = rng.standard_normal((2, 2, 8))
    y = layer(x)
    assert np.array_equal(y, convgrad.conv1d(x, layer.weight.value, layer.bias.value, padding="causal", dilation=2))
    dx = layer.backward(np.ones(y.shape))
    ref = convgrad.conv_backward(np.ones(y.shape), x, layer.weight.value, padding="causal", dilation=2)
    assert np.array_equal(dx, ref.input) and np.array_equal(layer.weight.grad, ref.weight)
    assert "padding='causal'" in repr(layer)
    with pytest.raises(ValueError, match=r"conv_transpose1d: padding='causal' is for a convolution only.*\(low, high\)"):
        convgrad.conv_transpose1d(x, rng.standard_normal((2, 3, 3)), padding="causal")
    with pytest.raises(ValueError, match="'causal'"):
        nn.ConvTranspose1d(2, 3, 3, padding="causal")
    with pytest.raises(ValueError, match=r"'valid', 'same' or 'causal', got the string 'casual'"):
        convgrad.conv1d(x, layer.weight.value, padding="casual")


# ------------------------------------------------------------------------------------------------
# bias shapes
# ------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("rank", [1, 2, 3])
def test_the_three_bias_forms_give_pytorchs_output(rank):
    x = rng.standard_normal((2, 4, *(5,) * rank))
    w = rng.standard_normal((6, 2, *(2,) * rank))
    b = rng.standard_normal(6)
    fn = (F.conv1d, F.conv2d, F.conv3d)[rank - 1]
    theirs = fn(torch.tensor(x), torch.tensor(w), torch.tensor(b), 1, 1, 1, 2).numpy()
    for shape in ((6,), (6, *(1,) * rank), (1, 6, *(1,) * rank)):
        ours = convgrad.conv(x, w, b.reshape(shape), padding=1, groups=2)
        assert np.abs(ours - theirs).max() < 1e-12


def test_bias_forms_for_the_transposed_convolution_and_the_gradient_in_the_shape_given():
    x, w, b = rng.standard_normal((2, 4, 5, 5)), rng.standard_normal((4, 3, 3, 3)), rng.standard_normal(6)
    plain = convgrad.conv_transpose(x, w, b, stride=2, groups=2)
    assert np.array_equal(convgrad.conv_transpose(x, w, b.reshape(1, 6, 1, 1), stride=2, groups=2), plain)
    dy = rng.standard_normal(plain.shape)
    for shape in ((6,), (6, 1, 1), (1, 6, 1, 1)):
        g = convgrad.conv_transpose_backward(dy, x, w, stride=2, groups=2, bias_shape=shape)
        assert g.bias.shape == shape and np.allclose(g.bias.reshape(6), dy.sum(axis=(0, 2, 3)), rtol=1e-13)
    xc, wc = rng.standard_normal((2, 4, 5, 5)), rng.standard_normal((6, 2, 3, 3))
    g = convgrad.conv_backward(rng.standard_normal((2, 6, 3, 3)), xc, wc, groups=2, bias_shape=(6, 1, 1))
    assert g.bias.shape == (6, 1, 1)
    assert convgrad.conv_backward(np.ones((2, 6, 3, 3)), xc, wc, groups=2, needs=("input",),
                                  bias_shape=(1, 6, 1, 1)).bias is None
    tg = convgrad.conv_backward(torch.ones(2, 6, 3, 3, dtype=torch.float64), torch.tensor(xc), wc, groups=2,
                                bias_shape=(1, 6, 1, 1))
    assert isinstance(tg.bias, torch.Tensor) and tuple(tg.bias.shape) == (1, 6, 1, 1)


@pytest.mark.parametrize("shape", [(1, 6), (6, 1), (6, 1, 1, 1), (1, 1, 6, 1), (6, 2, 1), (1, 6, 1), (5,), ()])
def test_any_other_bias_shape_is_a_value_error_listing_the_accepted_ones(shape):
    x, w = np.ones((1, 4, 5, 5)), np.ones((6, 2, 3, 3))
    listed = r"\(6,\), \(6, 1, 1\), \(1, 6, 1, 1\)"
    with pytest.raises(ValueError, match=rf"conv2d: bias must have shape {listed} .*got {re_shape(shape)}"):
        convgrad.conv2d(x, w, np.ones(shape), groups=2)
    with pytest.raises(ValueError, match=rf"conv_backward: bias_shape must have shape {listed}"):
        convgrad.conv_backward(np.ones((1, 6, 3, 3)), x, w, groups=2, bias_shape=shape)


def re_shape(shape):
    import re

    return re.escape(str(tuple(shape)))


def test_bias_shape_must_be_a_tuple_of_integers():
    with pytest.raises(TypeError, match="conv_backward: bias_shape must be a tuple of integers or None, got '6'"):
        convgrad.conv_backward(np.ones((1, 6, 3, 3)), np.ones((1, 2, 5, 5)), np.ones((6, 2, 3, 3)), bias_shape="6")
    with pytest.raises(TypeError, match="bias_shape must be a tuple of integers"):
        convgrad.conv_backward(np.ones((1, 6, 3, 3)), np.ones((1, 2, 5, 5)), np.ones((6, 2, 3, 3)), bias_shape=(6.0,))


def test_the_cli_takes_padding_causal(capsys):
    from convgrad.cli import main

    assert main(["explain", "--input", "1,8", "--weight", "1,1,3", "--padding", "causal", "--stride", "2"]) in (0, None)
    out = capsys.readouterr().out
    assert "stride 2, padding (2, 0)" in out and "H_out = floor((H + P_lo + P_hi - K_eff)/S) + 1 = floor((8 + 2 + 0 - 3)/2) + 1 = 4" in out
