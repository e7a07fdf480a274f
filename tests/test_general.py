"""Input dilation and negative padding: the reduction (convgrad.general), its errors, explain; lax.py's errors.

The numbers themselves are checked against JAX, plain loops and finite differences in
tests/test_jax_oracle.py; here: what the reduction claims about itself, and that bad input is
refused with a message naming the parameter and the numbers.
"""

from __future__ import annotations

import numpy as np
import pytest

import convgrad
from convgrad.explain.general import reduced_index, user_index
from convgrad.general import expand_grad_input, general_conv_spec, reduce_input


def test_plain_calls_keep_the_ordinary_spec():
    g = general_conv_spec((2, 3, 8, 8), (4, 3, 3, 3), stride=2, padding=1)
    assert g.plain and g.spec == convgrad.conv_spec((2, 3, 8, 8), (4, 3, 3, 3), stride=2, padding=1)
    x = np.ones((2, 3, 8, 8))
    assert reduce_input(x, g) is x


def test_reduce_and_expand_are_adjoint():
    """<reduce(x), z> = <x, expand(z)>: the input gradient is the exact transpose of the re-arrangement."""
    rng = np.random.default_rng(0)
    g = general_conv_spec((2, 3, 7, 5), (1, 3, 2, 2), padding=((-2, 1), (3, -3)), input_dilation=(3, 2))
    x, z = rng.standard_normal(g.input_shape), rng.standard_normal(g.spec.input_shape)
    assert np.isclose(np.vdot(reduce_input(x, g), z), np.vdot(x, expand_grad_input(z, g)), rtol=1e-13)
    for index in [(0, 1, 3, 2), (1, 2, 6, 0), (0, 0, 0, 4)]:
        at = reduced_index(g, index)
        if at is None:
            assert np.all(expand_grad_input(np.ones(g.spec.input_shape), g)[index] == 0.0)
        else:
            assert user_index(g, at) == index and reduce_input(x, g)[at] == x[index]


def test_input_dilation_is_a_transposed_convolution():
    """The explain trap's identity: conv(x, w, input_dilation=L, padding=K_eff-1-P) = conv_transpose(x, w', stride=L, padding=P)."""
    rng = np.random.default_rng(1)
    x, w = rng.standard_normal((2, 4, 5, 6)), rng.standard_normal((4, 3, 3, 2))  # conv_transpose weight (C_in, C_out, K)
    L, P = (2, 3), (1, 0)
    wf = np.ascontiguousarray(np.flip(w, axis=(2, 3)).swapaxes(0, 1))  # (C_out, C_in, K), flipped
    pads = tuple(k - 1 - p for k, p in zip(w.shape[2:], P))
    np.testing.assert_allclose(convgrad.conv(x, wf, padding=pads, input_dilation=L),
                               convgrad.conv_transpose(x, w, stride=L, padding=P), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("call, match", [
    (lambda: convgrad.conv1d(np.ones((1, 1, 3)), np.ones((1, 1, 1)), padding=((-2, -1),)),
     r"padding \(-2, -1\) crops away the whole input in spatial dim 0: .*\(3-1\)\*1\+1 = 3 positions .* 2\+1"),
    (lambda: convgrad.conv1d(np.ones((1, 1, 4)), np.ones((1, 1, 3)), padding=((-1, -1),)),
     r"output would be empty in spatial dim 0 .*floor\(\(4 \+ -1 \+ -1 - 3\)/1\) \+ 1 = 0 < 1"),
    (lambda: convgrad.conv1d(np.ones((1, 1, 4)), np.ones((1, 1, 3)), padding="same", input_dilation=2),
     r"padding='same' is not defined with input_dilation=\(2,\)"),
    (lambda: convgrad.conv1d(np.ones((1, 1, 4)), np.ones((1, 1, 3)), padding=((-1, 2),), padding_mode="reflect"),
     r"padding_mode='reflect' cannot be combined with negative padding"),
    (lambda: convgrad.conv1d(np.ones((1, 1, 4)), np.ones((1, 1, 3)), padding=1, input_dilation=2,
                             padding_mode="circular"),
     r"padding_mode='circular' cannot be combined with input_dilation > 1"),
    (lambda: convgrad.conv2d(np.ones((1, 1, 4, 4)), np.ones((1, 1, 3, 3)), input_dilation=0),
     r"conv2d: input_dilation must be positive"),
    (lambda: convgrad.conv2d(np.ones((1, 1, 4, 4)), np.ones((1, 1, 3, 3)), input_dilation=(1, 2, 3)),
     r"conv2d: input_dilation must be an integer or a tuple of 2 values"),
    (lambda: convgrad.conv_backward(np.ones((1, 1, 3)), np.ones((1, 1, 4)), np.ones((1, 1, 2)), padding=((-1, 0),),
                                    input_dilation=2),
     r"grad_output must have shape \(1, 1, 5\)"),
    (lambda: convgrad.explain((1, 1, 4), (1, 1, 2), transposed=True, input_dilation=2),
     r"input_dilation applies to a convolution, not a transposed one"),
])
def test_bad_arguments_are_named(call, match):
    with pytest.raises(ValueError, match=match):
        call()


_X, _W = np.ones((2, 4, 6, 5)), np.ones((4, 2, 2, 2))


@pytest.mark.parametrize("kwargs, error, match", [
    (dict(dimension_numbers=("NCHW", "OIHW")), TypeError, r"dimension_numbers must be None or three entries"),
    (dict(dimension_numbers=("NCHW", "OIHW", "NCXW")), ValueError, r"same spatial letters"),
    (dict(dimension_numbers=("NCHH", "OIHW", "NCHW")), ValueError, r"exactly once and no letter twice"),
    (dict(dimension_numbers=((0, 1, 2), (0, 1, 2, 3), (0, 1, 2, 3))), ValueError, r"permutation of 0\.\.3"),
    (dict(feature_group_count=3), ValueError, r"feature_group_count must divide the lhs feature dimension, but 3 does not divide 4"),
    (dict(feature_group_count=2, batch_group_count=2), ValueError, r"at most one of feature_group_count"),
    (dict(feature_group_count=0), ValueError, r"feature_group_count must be a positive integer, got 0"),
    (dict(feature_group_count=4, dimension_numbers=("NCHW", "IOHW", "NCHW")), ValueError,
     r"the rhs output feature dimension \(2\) must be a multiple of feature_group_count=4"),
    (dict(padding="SAMEISH"), ValueError, r"padding must be 'SAME', 'SAME_LOWER', 'VALID'"),
    (dict(padding=[(1, 1)]), ValueError, r"padding must hold 2 \(low, high\) pairs"),
    (dict(padding="SAME", lhs_dilation=(2, 1)), ValueError, r"string padding 'SAME' is not defined with lhs_dilation"),
    (dict(window_strides=(1, 0)), ValueError, r"window_strides must be positive"),
    (dict(precision="ultra"), ValueError, r"precision must be None"),
    (dict(preferred_element_type=np.int32), ValueError, r"preferred_element_type must be a floating dtype"),
])
def test_conv_general_dilated_errors(kwargs, error, match):
    args = dict(window_strides=(1, 1), padding="VALID", feature_group_count=2)
    args.update(kwargs)
    with pytest.raises(error, match=match):
        convgrad.conv_general_dilated(_X, _W, **args)


def test_conv_general_dilated_backward_errors():
    x, w = np.ones((4, 3, 5)), np.ones((4, 3, 2))
    with pytest.raises(ValueError, match=r"batch_group_count must divide the lhs batch dimension, but 3 does not divide 4"):
        convgrad.conv_general_dilated(x, w, (1,), "VALID", batch_group_count=3)
    with pytest.raises(ValueError, match=r"needs entries must be 'input' or 'weight' \(conv_general_dilated has no bias\)"):
        convgrad.conv_general_dilated_backward(np.ones((4, 4, 4)), x, w, (1,), "VALID", needs=("bias",))
    with pytest.raises(ValueError, match=r"grad_output must have the output's shape \(4, 4, 4\), got \(4, 4, 5\)"):
        convgrad.conv_general_dilated_backward(np.ones((4, 4, 5)), x, w, (1,), "VALID")
    g = convgrad.conv_general_dilated_backward(np.ones((4, 4, 4)), x, w, (1,), "VALID", needs=("weight",))
    assert g.input is None and g.bias is None and g.weight.shape == w.shape


def test_batch_groups_are_per_block_convolutions():
    """Output channel block g is batch block g convolved with its kernels (an independent statement of XLA's rule)."""
    rng = np.random.default_rng(2)
    B, x, w = 3, rng.standard_normal((6, 2, 7)), rng.standard_normal((6, 2, 3))  # N = 3*2, O = 3*2
    y = convgrad.conv_general_dilated(x, w, (2,), [(1, -1)], batch_group_count=B)
    assert y.shape == (2, 6, 3)
    for g in range(B):
        block = convgrad.conv1d(x[2 * g:2 * g + 2], w[2 * g:2 * g + 2], stride=2, padding=((1, -1),))
        np.testing.assert_allclose(y[:, 2 * g:2 * g + 2], block, rtol=1e-13, atol=1e-13)


def test_explain_describes_dilation_and_crop():
    ex = convgrad.explain((1, 2, 5, 4), (2, 1, 3, 2), padding=((-1, 2), (0, -1)), input_dilation=(2, 1), groups=2)
    text = ex.text()
    assert "INPUT DILATION AND CROP" in text
    assert "H_dil   (H-1)*L+1 = (5-1)*2+1 = 9" in text
    assert "crop    (1, 0) -> H~ = H_dil - crop_lo - crop_hi = 9 - 1 - 0 = 8" in text
    assert "floor((9 + -1 + 2 - 3)/1) + 1 = 8" in text
    assert "x[h] sits at x~[h*2 - 1]; x~'s other positions are inserted zeros" in text
    assert "elements of x kept: 1..4; cropped (gradient exactly 0): 0" in text
    assert "elements of x kept: 0..2; cropped (gradient exactly 0): 3" in text
    assert "cropped elements" in text and "input dilation is a transposed convolution" in text
    assert "padding=((-1, 2), (0, -1))" in repr(ex) and "input_dilation=(2, 1)" in repr(ex)
    assert "input (1, 2, 5, 4)" in repr(ex)
    # the explanation's world is x~: its shapes are what conv computes, and its contributors are x~'s
    x, w = np.random.default_rng(3).standard_normal((1, 2, 5, 4)), np.ones((2, 1, 3, 2))
    y = convgrad.conv(x, w, padding=((-1, 2), (0, -1)), input_dilation=(2, 1), groups=2)
    assert ex.output_shape == y.shape
    xt = reduce_input(x, ex.general)
    terms = ex.contributors("output", (0, 1, 3, 0))
    assert np.isclose(sum(xt[a] * w[b] for a, b in terms if a is not None), y[0, 1, 3, 0], rtol=1e-13)
    d = ex.to_dict()
    assert d["general"][0]["cropped"] == [0] and d["general"][1]["cropped"] == [3]
    assert convgrad.explain((1, 1, 5), (1, 1, 3)).general is None
