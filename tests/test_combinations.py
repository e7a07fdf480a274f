"""Features built separately meet in one call: layouts with crops and input dilation, complex operands
in another layout, foreign arrays and complex numbers through conv_general_dilated.

Each is checked against the same call written without the extra feature (which the other test files
check against PyTorch, JAX and plain loops)."""

import numpy as np
import pytest

import convgrad

RNG = np.random.default_rng(7)


def _nchw(a):
    return np.ascontiguousarray(a.transpose(0, 3, 1, 2))


def _oihw(w):  # HWIO -> OIHW
    return np.ascontiguousarray(w.transpose(3, 2, 0, 1))


@pytest.mark.parametrize("dtype", [np.float64, np.complex128])
@pytest.mark.parametrize("padding, input_dilation", [(((-1, 2), (0, 1)), (2, 1)), (1, 3), (((-2, 0), (1, -1)), 1)])
def test_channels_last_with_crops_and_input_dilation(dtype, padding, input_dilation):
    x = RNG.standard_normal((2, 7, 6, 3)).astype(dtype)
    w = RNG.standard_normal((3, 2, 3, 4)).astype(dtype)
    if np.iscomplexobj(x):
        x = x + 1j * RNG.standard_normal(x.shape)
        w = w + 1j * RNG.standard_normal(w.shape)
    kw = dict(padding=padding, input_dilation=input_dilation)
    y = convgrad.conv2d(x, w, data_format="channels_last", weight_format="HWIO", **kw)
    y_ref = convgrad.conv2d(_nchw(x), _oihw(w), **kw)
    np.testing.assert_allclose(y, y_ref.transpose(0, 2, 3, 1), rtol=1e-12, atol=1e-12)
    dy = RNG.standard_normal(y.shape).astype(y.dtype)
    g = convgrad.conv_backward(dy, x, w, data_format="channels_last", weight_format="HWIO", bias_shape=(1, 1, 4), **kw)
    g_ref = convgrad.conv_backward(_nchw(dy), _nchw(x), _oihw(w), **kw)
    np.testing.assert_allclose(g.input, g_ref.input.transpose(0, 2, 3, 1), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(g.weight, g_ref.weight.transpose(2, 3, 1, 0), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(g.bias, g_ref.bias.reshape(1, 1, 4), rtol=1e-12, atol=1e-12)


def test_conv_general_dilated_returns_the_callers_tensor_type():
    torch = pytest.importorskip("torch")
    x, w = RNG.standard_normal((2, 6, 6, 3)), RNG.standard_normal((3, 3, 3, 4))
    dn = ("NHWC", "HWIO", "NHWC")
    tx = torch.tensor(x, requires_grad=True)  # requires_grad: read without torch's own error
    ty = convgrad.conv_general_dilated(tx, torch.tensor(w), (1, 1), "SAME", dimension_numbers=dn)
    assert isinstance(ty, torch.Tensor) and ty.dtype == torch.float64
    np.testing.assert_allclose(ty.numpy(), convgrad.conv_general_dilated(x, w, (1, 1), "SAME", dimension_numbers=dn))
    g = convgrad.conv_general_dilated_backward(torch.ones(tuple(ty.shape), dtype=torch.float64), tx, torch.tensor(w),
                                               (1, 1), "SAME", dimension_numbers=dn)
    assert isinstance(g.input, torch.Tensor) and isinstance(g.weight, torch.Tensor)
    ref = convgrad.conv_general_dilated_backward(np.ones(tuple(ty.shape)), x, w, (1, 1), "SAME", dimension_numbers=dn)
    np.testing.assert_allclose(g.input.numpy(), ref.input)
    np.testing.assert_allclose(g.weight.numpy(), ref.weight)


def test_conv_general_dilated_complex_against_jax():
    """JAX's vjp of a complex convolution is the transpose without conjugation; convgrad's gradients
    follow PyTorch's convention (conjugated), so ``convgrad(dy) == conj(jax_vjp(conj(dy)))``."""
    jax = pytest.importorskip("jax")
    jnp = jax.numpy
    x = RNG.standard_normal((2, 3, 7, 5)) + 1j * RNG.standard_normal((2, 3, 7, 5))
    w = RNG.standard_normal((4, 3, 2, 3)) + 1j * RNG.standard_normal((4, 3, 2, 3))
    args = dict(window_strides=(2, 1), padding=((1, -1), (2, 0)), lhs_dilation=(1, 2), rhs_dilation=(2, 1))
    y = convgrad.conv_general_dilated(x, w, **args)
    dy = RNG.standard_normal(y.shape) + 1j * RNG.standard_normal(y.shape)
    g = convgrad.conv_general_dilated_backward(dy, x, w, **args)
    with jax.enable_x64(True):
        f = lambda a, b: jax.lax.conv_general_dilated(a, b, **args)  # noqa: E731
        yj, vjp = jax.vjp(f, jnp.asarray(x), jnp.asarray(w))
        gx, gw = vjp(jnp.asarray(np.conj(dy)))
        np.testing.assert_allclose(y, np.asarray(yj), rtol=1e-10, atol=1e-10)
        np.testing.assert_allclose(g.input, np.conj(np.asarray(gx)), rtol=1e-10, atol=1e-10)
        np.testing.assert_allclose(g.weight, np.conj(np.asarray(gw)), rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("complex_operand", ["input", "bias", "grad_output"])
def test_channels_last_1x1_with_complex_operands(complex_operand):
    """The native channels-last 1x1 path is real-only: complex operands take the shared path."""
    x = RNG.standard_normal((2, 5, 5, 4))
    w = RNG.standard_normal((1, 1, 4, 3))
    b = RNG.standard_normal(3)
    dy = RNG.standard_normal((2, 5, 5, 3))
    if complex_operand == "input":
        x = x + 1j * RNG.standard_normal(x.shape)
    elif complex_operand == "bias":
        b = b + 1j * RNG.standard_normal(b.shape)
    else:
        dy = dy + 1j * RNG.standard_normal(dy.shape)
    kw = dict(data_format="channels_last", weight_format="HWIO")
    y = convgrad.conv2d(x, w, b, **kw)
    np.testing.assert_allclose(y, convgrad.conv2d(_nchw(x), _oihw(w), b).transpose(0, 2, 3, 1), atol=1e-12)
    g = convgrad.conv_backward(dy, x, w, **kw)
    ref = convgrad.conv_backward(_nchw(dy), _nchw(x), _oihw(w))
    np.testing.assert_allclose(g.input, ref.input.transpose(0, 2, 3, 1), atol=1e-12)
    np.testing.assert_allclose(g.weight, ref.weight.transpose(2, 3, 1, 0), atol=1e-12)


def test_conv_general_dilated_preferred_element_type_with_complex_operands():
    xc = RNG.standard_normal((1, 2, 4, 4)) + 1j
    wc = RNG.standard_normal((3, 2, 2, 2)) + 0.5j
    y = convgrad.conv_general_dilated(xc.astype(np.complex64), wc.astype(np.complex64), (1, 1), "VALID",
                                      preferred_element_type=np.complex128)
    assert y.dtype == np.complex128
    np.testing.assert_allclose(y, convgrad.conv_general_dilated(xc, wc, (1, 1), "VALID"), rtol=1e-6)
    with pytest.raises(TypeError, match="preferred_element_type must be a complex dtype"):
        convgrad.conv_general_dilated(xc, wc, (1, 1), "VALID", preferred_element_type=np.float64)


@pytest.mark.parametrize("transposed", [False, True])
def test_bias_forms_follow_the_data_format(transposed):
    """Channels last: the broadcasting bias forms end in the channel ((1, 1, C), (1, 1, 1, C)); the
    channels-first forms are refused there, naming the accepted ones."""
    x, w, b = RNG.standard_normal((2, 6, 5, 3)), RNG.standard_normal((3, 3, 3, 4)), RNG.standard_normal(4)
    f = convgrad.conv_transpose2d if transposed else convgrad.conv2d
    if transposed:
        w = RNG.standard_normal((3, 3, 4, 3))  # IO for a transposed conv: (*k, C_out, C_in)
    kw = dict(data_format="channels_last", weight_format="HWIO")
    y = f(x, w, b, **kw)
    for form in [(1, 1, 4), (1, 1, 1, 4)]:
        np.testing.assert_array_equal(f(x, w, b.reshape(form), **kw), y)
    with pytest.raises(ValueError, match=r"\(1, 1, 4\)"):
        f(x, w, b.reshape(4, 1, 1), **kw)
    back = convgrad.conv_transpose_backward if transposed else convgrad.conv_backward
    g = back(np.ones(y.shape), x, w, bias_shape=(1, 1, 1, 4), **kw)
    assert g.bias.shape == (1, 1, 1, 4)
    with pytest.raises(ValueError, match="bias_shape"):
        back(np.ones(y.shape), x, w, bias_shape=(4, 1, 1), **kw)


def test_explain_higher_order_says_which_arrays_its_calls_are_written_for():
    general = convgrad.explain((2, 3, 8), (4, 3, 3), padding=((-1, 2),), input_dilation=2).higher_order()
    assert all(code.startswith("# x, dX, ggX and tX here are x~'s") for e in general.values() for code in e["calls"].values())
    last = convgrad.explain((2, 8, 3), (3, 3, 4), data_format="channels_last", weight_format="IO").higher_order()
    assert all(code.startswith("# channels first") for e in last.values() for code in e["calls"].values())
    plain = convgrad.explain((2, 3, 8), (4, 3, 3)).higher_order()
    assert not any(code.startswith("#") for e in plain.values() for code in e["calls"].values())


def test_a_grad_output_of_the_wrong_rank_is_reported_as_given():
    with pytest.raises(ValueError, match=r"got \(2, 6, 6\)"):
        convgrad.conv_backward(np.ones((2, 6, 6)), np.ones((2, 6, 6, 4)), np.ones((3, 3, 4, 6)), padding="same",
                               data_format="channels_last", weight_format="HWIO")


def test_explain_cli_takes_the_caller_layout(capsys):
    from convgrad import cli

    assert cli.main(["explain", "--input", "2,8,8,3", "--weight", "3,3,3,4", "--padding", "1",
                     "--data-format", "channels_last", "--weight-format", "HWIO", "--format", "json"]) == 0
    import json

    config = json.loads(capsys.readouterr().out)["configuration"]  # the explanation is written channels first
    assert (config["input_shape"], config["weight_shape"]) == ([2, 3, 8, 8], [4, 3, 3, 3])
    text_code = cli.main(["explain", "--input", "2,8,8,3", "--weight", "3,3,3,4", "--data-format", "NCHWX"])
    assert text_code == 2
    assert "data_format must be one of" in capsys.readouterr().err
