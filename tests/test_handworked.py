"""Small cases worked by hand, and the seeds' configurations."""

import numpy as np
import pytest

import convgrad
from _configs import supporting

I4 = np.arange(1.0, 17.0).reshape(1, 1, 4, 4)  # [[1..4],[5..8],[9..12],[13..16]]
K2 = np.array([[1.0, 2.0], [3.0, 4.0]]).reshape(1, 1, 2, 2)


def test_4x4_input_2x2_kernel_stride_1_forward():
    # O(i,j) = I(i,j) + 2 I(i,j+1) + 3 I(i+1,j) + 4 I(i+1,j+1); O(0,0) = 1 + 4 + 15 + 24 = 44
    expected = np.array([[44, 54, 64], [84, 94, 104], [124, 134, 144]], dtype=float)
    assert np.array_equal(convgrad.conv2d(I4, K2)[0, 0], expected)


def test_4x4_input_2x2_kernel_stride_1_gradients():
    dO = np.arange(1.0, 10.0).reshape(1, 1, 3, 3)
    g = convgrad.conv_backward(dO, I4, K2)
    # dK = I star dO (valid cross-correlation): dK(0,0) = sum_ij dO(i,j) I(i,j)
    dK00 = sum(dO[0, 0, i, j] * I4[0, 0, i, j] for i in range(3) for j in range(3))
    dK11 = sum(dO[0, 0, i, j] * I4[0, 0, i + 1, j + 1] for i in range(3) for j in range(3))
    assert g.weight[0, 0, 0, 0] == dK00 == 1 * 1 + 2 * 2 + 3 * 3 + 4 * 5 + 5 * 6 + 6 * 7 + 7 * 9 + 8 * 10 + 9 * 11
    assert g.weight[0, 0, 1, 1] == dK11
    # dI = full correlation of dO with the flipped kernel, worked out:
    #   dI(0,0) = 1*dO(0,0) = 1;  dI(1,1) = 4 dO(0,0) + 3 dO(0,1) + 2 dO(1,0) + 1 dO(1,1) = 4+6+8+5 = 23
    #   dI(3,3) = 4 dO(2,2) = 36;  dI(0,3) = 2 dO(0,2) = 6
    assert g.input[0, 0, 0, 0] == 1
    assert g.input[0, 0, 1, 1] == 23
    assert g.input[0, 0, 3, 3] == 36
    assert g.input[0, 0, 0, 3] == 6
    flipped = K2[0, 0, ::-1, ::-1]
    padded = np.pad(dO[0, 0], 1)
    full = np.array([[np.sum(padded[i:i + 2, j:j + 2] * flipped) for j in range(4)] for i in range(4)])
    assert np.array_equal(g.input[0, 0], full)
    assert g.bias[0] == 45


def test_4x4_input_2x2_kernel_stride_2():
    # windows at (0,0), (0,2), (2,0), (2,2), no overlap
    y = convgrad.conv2d(I4, K2, stride=2)[0, 0]
    assert np.array_equal(y, [[44, 64], [124, 144]])
    dO = np.array([[1.0, 10.0], [100.0, 1000.0]]).reshape(1, 1, 2, 2)
    g = convgrad.conv_backward(dO, I4, K2, stride=2)
    # each input pixel is read by exactly one output: dI = dO kron K (the stride-2 "tiles")
    assert np.array_equal(g.input[0, 0], np.kron(dO[0, 0], K2[0, 0]))
    # dK(u,v) = sum_ij dO(i,j) I(2i+u, 2j+v)
    expected = np.array(
        [[sum(dO[0, 0, i, j] * I4[0, 0, 2 * i + u, 2 * j + v] for i in range(2) for j in range(2)) for v in range(2)]
         for u in range(2)]
    )
    assert np.array_equal(g.weight[0, 0], expected)
    # and dI equals the full correlation of the stride-dilated dO (zeros inserted) with the flipped kernel
    dilated = np.zeros((3, 3))
    dilated[::2, ::2] = dO[0, 0]
    padded = np.pad(dilated, ((1, 2), (1, 2)))  # high side: + unread tail (here 0) ... + 1 for the 4th row
    flipped = K2[0, 0, ::-1, ::-1]
    full = np.array([[np.sum(padded[i:i + 2, j:j + 2] * flipped) for j in range(4)] for i in range(4)])
    assert np.array_equal(g.input[0, 0], full)


def test_stride_larger_than_kernel_leaves_holes_with_zero_gradient():
    # REFERENCE d1: S=4, K=2 on H=9 gives grad [1,1,0,0,1,1,0,0,0]
    x = np.random.default_rng(0).standard_normal((1, 1, 9))
    w = np.ones((1, 1, 2))
    y = convgrad.conv1d(x, w, stride=4)
    g = convgrad.conv_backward(np.ones_like(y), x, w, stride=4)
    assert np.array_equal(g.input[0, 0], [1, 1, 0, 0, 1, 1, 0, 0, 0])


# the algorithms doing stride 2 (the others' unread-input test: test_fast_algorithms.py)
@pytest.mark.parametrize("algorithm", supporting(convgrad.available_algorithms(), ((1, 1, 8), (1, 1, 3)), stride=2))
def test_unread_tail_gets_exactly_zero_and_is_never_read(algorithm):
    # H=8, K=3, S=2: outputs read positions 0..6, x[7] is never read
    x = np.arange(8.0).reshape(1, 1, 8)
    x[0, 0, 7] = np.nan  # so a read of the tail would show
    w = np.array([1.0, -2.0, 3.0]).reshape(1, 1, 3)
    y = convgrad.conv1d(x, w, stride=2, algorithm=algorithm)
    assert y.shape == (1, 1, 3)
    assert np.array_equal(y[0, 0], [0 - 2 + 6, 2 - 6 + 12, 4 - 10 + 18])
    g = convgrad.conv_backward(np.ones_like(y), x, w, stride=2, algorithm=algorithm)
    assert np.array_equal(g.input[0, 0], [1, -2, 4, -2, 4, -2, 3, 0])
    assert np.array_equal(g.weight[0, 0], [0 + 2 + 4, 1 + 3 + 5, 2 + 4 + 6])


def test_transposed_with_padding_larger_than_dilated_kernel_crops():
    # REFERENCE d3.3: conv_transpose with padding > D(K-1) crops, 5x5 -> 1x1 for K=3, P=3
    x = np.random.default_rng(1).standard_normal((1, 1, 5, 5))
    w = np.random.default_rng(2).standard_normal((1, 1, 3, 3))
    y = convgrad.conv_transpose2d(x, w, padding=3)
    assert y.shape == (1, 1, 1, 1)
    # y[0,0] sits at full-output position (3,3): sum over taps k of x[3-k] w[k]
    expected = sum(x[0, 0, 3 - a, 3 - b] * w[0, 0, a, b] for a in range(3) for b in range(3))
    assert np.isclose(y[0, 0, 0, 0], expected, rtol=1e-14)


def test_seed_5x100x100_input_with_ten_5x5x5_filters():
    """Seed 003: X 5x100x100, ten filters 5x5x5 -> O 10x96x96; dE/dF[f, c] = X[c] star dE/dO[f]."""
    from scipy.signal import correlate

    rng = np.random.default_rng(3)
    x = rng.standard_normal((5, 100, 100))
    f = rng.standard_normal((10, 5, 5, 5))
    o = convgrad.conv2d(x, f)
    assert o.shape == (10, 96, 96)
    d_o = rng.standard_normal(o.shape)
    g = convgrad.conv_backward(d_o, x, f)
    assert g.weight.shape == (10, 5, 5, 5) and g.input.shape == (5, 100, 100) and g.bias.shape == (10,)
    # depths 5 and 10 never have to match: each (filter f, channel c) pair is its own 2-D correlation
    for fi in (0, 7):
        for c in (0, 4):
            assert np.allclose(g.weight[fi, c], correlate(x[c], d_o[fi], mode="valid"), rtol=1e-12, atol=1e-10)
    # dE/dX[c] = sum over filters of the full convolution of dE/dO[f] with F[f, c]
    from scipy.signal import convolve

    for c in (0, 3):
        expected = sum(convolve(d_o[fi], f[fi, c], mode="full") for fi in range(10))
        assert np.allclose(g.input[c], expected, rtol=1e-12, atol=1e-10)
    assert np.allclose(o[2], sum(correlate(x[c], f[2, c], mode="valid") for c in range(5)), atol=1e-10)


def test_reflect_padding_gradient_folds_back_onto_copied_elements():
    # 1-D, K=1 (identity weight), reflect pad 2: padded = [x2, x1, x0, x1, x2, x3, x2, x1]
    x = np.arange(4.0).reshape(1, 1, 4)
    w = np.ones((1, 1, 1))
    y = convgrad.conv1d(x, w, padding=2, padding_mode="reflect")
    assert np.array_equal(y[0, 0], [2, 1, 0, 1, 2, 3, 2, 1])
    g = convgrad.conv_backward(np.ones_like(y), x, w, padding=2, padding_mode="reflect")
    assert np.array_equal(g.input[0, 0], [1, 3, 3, 1])  # x1 and x2 are copied twice each
    g = convgrad.conv_backward(np.ones_like(y), x, w, padding=2, padding_mode="replicate")
    assert np.array_equal(g.input[0, 0], [3, 1, 1, 3])
    g = convgrad.conv_backward(np.ones_like(y), x, w, padding=2, padding_mode="circular")
    assert np.array_equal(g.input[0, 0], [2, 2, 2, 2])
