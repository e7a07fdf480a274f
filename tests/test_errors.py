"""Every mistake a user can make gets a ValueError or TypeError naming the parameter."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import convgrad

X = np.zeros((2, 4, 8, 8))
W = np.zeros((6, 2, 3, 3))  # groups=2
DY = np.zeros((2, 6, 6, 6))


def conv(**kw):
    args = dict(input=X, weight=W, groups=2) | kw
    return convgrad.conv(args.pop("input"), args.pop("weight"), **args)


CASES = [
    # (what, call, exception, words that must appear in the message)
    ("input ndim", lambda: convgrad.conv(np.zeros((8, 8)), W, groups=2), ValueError, ["input", "dims", "(8, 8)"]),
    ("input ndim too many", lambda: convgrad.conv(np.zeros((1, 2, 4, 8, 8)), W, groups=2), ValueError, ["input"]),
    ("conv2d weight rank", lambda: convgrad.conv2d(X, np.zeros((6, 2, 3))), ValueError, ["conv2d", "weight", "4-D"]),
    ("conv1d weight rank", lambda: convgrad.conv1d(X, W), ValueError, ["conv1d", "weight", "3-D"]),
    ("weight ndim", lambda: convgrad.conv(X, np.zeros((6, 4))), ValueError, ["weight", "3 dims"]),
    ("channel mismatch", lambda: conv(weight=np.zeros((6, 3, 3, 3))), ValueError, ["weight.shape[1]", "4/2"]),
    ("groups not dividing input", lambda: conv(groups=3, weight=np.zeros((6, 1, 3, 3))), ValueError, ["groups=3", "input channels"]),
    ("groups not dividing output", lambda: conv(weight=np.zeros((5, 2, 3, 3))), ValueError, ["groups=2", "output channels"]),
    ("groups zero", lambda: conv(groups=0), ValueError, ["groups", "0"]),
    ("groups float", lambda: conv(groups=2.0), TypeError, ["groups", "2.0"]),
    ("stride zero", lambda: conv(stride=0), ValueError, ["stride", "positive", "0"]),
    ("stride negative", lambda: conv(stride=(1, -2)), ValueError, ["stride", "-2"]),
    ("stride float", lambda: conv(stride=1.5), TypeError, ["stride", "1.5"]),
    ("stride bool", lambda: conv(stride=True), TypeError, ["stride", "True"]),
    ("stride string", lambda: conv(stride="2"), TypeError, ["stride", "'2'"]),
    ("stride length", lambda: conv(stride=(1, 2, 3)), ValueError, ["stride", "2 values", "3 values"]),
    ("dilation zero", lambda: conv(dilation=0), ValueError, ["dilation", "positive"]),
    ("dilation float", lambda: conv(dilation=(1, 2.5)), TypeError, ["dilation", "2.5"]),
    ("dilation length", lambda: conv(dilation=(1,)), ValueError, ["dilation", "1 values"]),
    # negative padding is a crop (convgrad.general): refused when it leaves no input or no output
    ("padding crop of everything", lambda: conv(padding=-4), ValueError, ["padding (-4, -4)", "crops away the whole input",
                                                                          "(8-1)*1+1 = 8", "4+4"]),
    ("padding crop empties the output", lambda: conv(padding=((0, -6), 1)), ValueError,
     ["padding (0, -6)", "output would be empty", "floor((8 + 0 + -6 - 3)/1) + 1 = 0 < 1"]),
    ("padding crop with reflect", lambda: conv(padding=-1, padding_mode="reflect"), ValueError,
     ["padding_mode='reflect'", "negative padding"]),
    ("padding pair length", lambda: conv(padding=((0, 1, 2), 1)), ValueError, ["padding", "(low, high)"]),
    ("padding length", lambda: conv(padding=(1, 1, 1)), ValueError, ["padding", "3", "2 in all"]),
    ("padding string", lambda: conv(padding="full"), ValueError, ["padding", "'valid'", "'same'", "'full'"]),
    ("padding float", lambda: conv(padding=1.0), TypeError, ["padding", "1.0"]),
    ("padding mode", lambda: conv(padding_mode="mirror"), ValueError, ["padding_mode", "'mirror'", "reflect"]),
    ("padding mode type", lambda: conv(padding_mode=None), TypeError, ["padding_mode"]),
    ("kernel too large", lambda: conv(weight=np.zeros((6, 2, 9, 3))), ValueError, ["kernel", "9", "padded input", "8"]),
    ("dilated kernel too large", lambda: conv(dilation=4), ValueError, ["kernel", "9 > padded"]),
    ("zero spatial", lambda: convgrad.conv(np.zeros((2, 4, 0, 8)), W, groups=2), ValueError, ["zero-size", "input"]),
    ("zero kernel", lambda: convgrad.conv(X, np.zeros((6, 2, 0, 3)), groups=2), ValueError, ["zero-size", "weight"]),
    ("bias shape", lambda: conv(bias=np.zeros(5)), ValueError, ["bias", "(6,)", "(5,)"]),
    ("bias 2-D", lambda: conv(bias=np.zeros((6, 1))), ValueError, ["bias", "(6, 1)"]),
    ("reflect pad too large", lambda: conv(padding=8, padding_mode="reflect"), ValueError, ["reflect", "smaller than the input size", "8"]),
    ("circular wraps twice", lambda: conv(padding=9, padding_mode="circular"), ValueError, ["circular", "more than once"]),
    ("algorithm unknown", lambda: conv(algorithm="winograd3000"), ValueError, ["algorithm", "'winograd3000'", "direct"]),
    ("algorithm type", lambda: conv(algorithm=3), TypeError, ["algorithm"]),
    ("complex longdouble input", lambda: conv(input=X.astype(np.clongdouble)), TypeError,
     ["input", "complex64 or complex128", str(np.dtype(np.clongdouble))]),
    ("bias 3-D not (C, 1, 1)", lambda: conv(bias=np.zeros((6, 1, 2))), ValueError, ["bias", "(6, 1, 1)", "(6, 1, 2)"]),
    ("string input", lambda: conv(input=np.array([["a"]])), TypeError, ["input", "numeric"]),
    ("object input", lambda: conv(input=None), TypeError, ["input", "numeric"]),
    ("ragged input", lambda: conv(input=[[1, 2], [3]]), TypeError, ["input"]),
    ("longdouble", lambda: conv(input=X.astype(np.longdouble)), TypeError, ["input", "float64"]),
    # backward
    ("grad_output shape", lambda: convgrad.conv_backward(np.zeros((2, 6, 5, 6)), X, W, groups=2), ValueError,
     ["grad_output", "(2, 6, 6, 6)", "(2, 6, 5, 6)"]),
    ("grad_output batch", lambda: convgrad.conv_backward(np.zeros((3, 6, 6, 6)), X, W, groups=2), ValueError, ["grad_output"]),
    ("grad_output unbatched mismatch", lambda: convgrad.conv_backward(DY, X[0], W, groups=2), ValueError,
     ["grad_output", "(6, 6, 6)"]),
    ("needs unknown", lambda: convgrad.conv_backward(DY, X, W, groups=2, needs=("input", "wieght")), ValueError,
     ["needs", "'wieght'"]),
    ("needs type", lambda: convgrad.conv_backward(DY, X, W, groups=2, needs=3), TypeError, ["needs"]),
    ("input_shape type", lambda: convgrad.conv2d_input("2,4,8,8", W, DY, groups=2), TypeError, ["input_shape"]),
    ("input_shape float", lambda: convgrad.conv2d_input((2, 4, 8.0, 8), W, DY, groups=2), TypeError, ["input_shape"]),
    ("input_shape inconsistent with weight", lambda: convgrad.conv2d_input((2, 6, 8, 8), W, DY, groups=2), ValueError,
     ["weight.shape[1]"]),
    ("input_shape inconsistent with grad_output", lambda: convgrad.conv2d_input((2, 4, 9, 8), W, DY, groups=2),
     ValueError, ["grad_output", "(2, 6, 7, 6)"]),
    ("input_shape rank", lambda: convgrad.conv2d_input((4, 8), W, DY, groups=2), ValueError, ["input_shape"]),
    ("weight_shape inconsistent", lambda: convgrad.conv2d_weight(X, (6, 2, 2, 3), DY, groups=2), ValueError,
     ["grad_output", "(2, 6, 7, 6)"]),
    ("weight_shape rank", lambda: convgrad.conv2d_weight(X, (6, 2, 3), DY, groups=2), ValueError, ["weight_shape", "4"]),
    ("weight_shape negative", lambda: convgrad.conv2d_weight(X, (6, 2, -3, 3), DY, groups=2), ValueError, ["weight_shape"]),
    # transposed
    ("output_padding too large", lambda: convgrad.conv_transpose2d(np.zeros((1, 2, 4, 4)), np.zeros((2, 3, 3, 3)), stride=2,
                                                                   output_padding=2), ValueError,
     ["output_padding", "smaller than either stride or dilation", "output_padding=2"]),
    ("output_padding with stride 1", lambda: convgrad.conv_transpose1d(np.zeros((1, 2, 4)), np.zeros((2, 3, 3)),
                                                                       output_padding=1), ValueError, ["output_padding"]),
    ("output_padding negative", lambda: convgrad.conv_transpose1d(np.zeros((1, 2, 4)), np.zeros((2, 3, 3)), stride=2,
                                                                  output_padding=-1), ValueError, ["output_padding"]),
    ("transposed weight layout", lambda: convgrad.conv_transpose2d(np.zeros((1, 2, 4, 4)), np.zeros((3, 2, 3, 3))),
     ValueError, ["weight.shape[0]", "(in_channels, out_channels/groups"]),
    ("transposed same", lambda: convgrad.conv_transpose1d(np.zeros((1, 2, 4)), np.zeros((2, 3, 3)), padding="same"),
     ValueError, ["padding", "'same'"]),
    ("transposed empty output", lambda: convgrad.conv_transpose1d(np.zeros((1, 2, 2)), np.zeros((2, 3, 1)), padding=1),
     ValueError, ["empty", "padding"]),
    ("transposed grad_output", lambda: convgrad.conv_transpose_backward(np.zeros((1, 3, 5)), np.zeros((1, 2, 4)),
                                                                        np.zeros((2, 3, 3))), ValueError,
     ["grad_output", "(1, 3, 6)"]),
    ("transposed bias", lambda: convgrad.conv_transpose1d(np.zeros((1, 2, 4)), np.zeros((2, 3, 3)), bias=np.zeros(2)),
     ValueError, ["bias", "(3,)"]),
]


@pytest.mark.parametrize("what, call, exc, words", CASES, ids=[c[0] for c in CASES])
def test_bad_input_gets_a_clear_error(what, call, exc, words):
    with pytest.raises(exc) as info:
        call()
    message = str(info.value)
    for word in words:
        assert word in message, f"{word!r} not in {message!r}"


def test_algorithm_that_cannot_do_a_configuration_says_why():
    from convgrad import algorithms
    from convgrad.algorithms.base import Algorithm

    class OnlyStrideOne(Algorithm):
        name = "only_stride_one_for_test"

        def unsupported(self, spec, op):
            return None if all(s == 1 for s in spec.stride) else "it only handles stride 1"

    algorithms.register(OnlyStrideOne())
    try:
        with pytest.raises(ValueError, match="only_stride_one_for_test.*it only handles stride 1"):
            conv(stride=2, algorithm="only_stride_one_for_test")
    finally:
        algorithms._REGISTRY.pop("only_stride_one_for_test")


def test_inputs_are_not_modified_even_on_error():
    x = np.random.default_rng(0).standard_normal(X.shape)
    before = x.copy()
    with pytest.raises(ValueError):
        convgrad.conv(x, W, groups=2, stride=0)
    assert np.array_equal(x, before)


# -- fuzz: whatever the arguments, the only exceptions are ValueError and TypeError ------------------

_values = st.one_of(
    st.integers(-2, 4),
    st.tuples(st.integers(-1, 3), st.integers(-1, 3)),
    st.tuples(st.integers(0, 3)),
    st.sampled_from(["same", "valid", "full", None, 1.5, True, ((0, 1), (1, 0)), ((0, 1, 2), 1)]),
)


@given(
    x_shape=st.lists(st.integers(0, 5), min_size=1, max_size=5),
    w_shape=st.lists(st.integers(0, 4), min_size=1, max_size=5),
    stride=_values,
    padding=_values,
    dilation=_values,
    groups=st.one_of(st.integers(-1, 3), st.just(1.0)),
    mode=st.sampled_from(["zeros", "reflect", "replicate", "circular", "bad"]),
    transposed=st.booleans(),
    output_padding=_values,
)
def test_fuzzed_arguments_raise_only_clear_errors(x_shape, w_shape, stride, padding, dilation, groups, mode,
                                                  transposed, output_padding):
    x = np.ones(x_shape)
    w = np.ones(w_shape)
    try:
        if transposed:
            y = convgrad.conv_transpose(x, w, None, stride, padding, output_padding, groups, dilation)
            g = convgrad.conv_transpose_backward(np.ones(y.shape), x, w, stride, padding, output_padding, groups, dilation)
        else:
            y = convgrad.conv(x, w, None, stride, padding, dilation, groups, mode)
            g = convgrad.conv_backward(np.ones(y.shape), x, w, stride, padding, dilation, groups, mode)
    except (ValueError, TypeError) as exc:
        assert str(exc)  # a message, never empty
        return
    assert g.input.shape == x.shape and g.weight.shape == w.shape
