"""Seed 002's formulas coded literally (1-based indices, stride, no padding), one sample at a time.

dL/dX[ch, p, q] = sum_f sum_{i = i_lower}^{i_upper} sum_{j = j_lower}^{j_upper} dO[f, i, j] W[f, ch, p-(i-1)s, q-(j-1)s]
with i_lower = floor((p - f_r)/s + 1), i_upper = floor((p - 1)/s + 1): floor where ceil is needed
for the lower bound, and neither bound clipped to 1 ... h_new.
"""
import math

import numpy as np

ENTRY = "conv_backward"
OP = "backward"
DIMS = 2
CHANNELS_LAST = False
PER_DIM = False
PADDING_FORMS = ("int",)
EXPECT = "summation_bounds"
WHY = "i_lower = floor((p - f_r)/s + 1), unclipped: dO[-1] wraps around, and W/dO indices run out of range"
WITNESS = dict(input_shape=(1, 1, 5, 5), weight_shape=(1, 1, 3, 3), stride=2)
CLEAN = dict(input_shape=(2, 2, 4, 5), weight_shape=(3, 2, 1, 1), stride=1)


def conv_backward(dy, x, w, stride=1):
    s = stride
    N, n_ch, h, wd = x.shape
    n_f, _, f_r, f_c = w.shape
    _, _, h_new, w_new = dy.shape
    dX, dW = np.zeros_like(x), np.zeros_like(w)
    for n in range(N):
        dO, X = dy[n], x[n]
        for ch in range(n_ch):
            for p in range(1, h + 1):
                for q in range(1, wd + 1):
                    i_lower, i_upper = math.floor((p - f_r) / s + 1), math.floor((p - 1) / s + 1)
                    j_lower, j_upper = math.floor((q - f_c) / s + 1), math.floor((q - 1) / s + 1)
                    for f in range(n_f):
                        for i in range(i_lower, i_upper + 1):
                            for j in range(j_lower, j_upper + 1):
                                dX[n, ch, p - 1, q - 1] += dO[f, i - 1, j - 1] * W_at(w, f, ch, p - (i - 1) * s, q - (j - 1) * s)
        for f in range(n_f):
            for ch in range(n_ch):
                for r in range(1, f_r + 1):
                    for c in range(1, f_c + 1):
                        dW[f, ch, r - 1, c - 1] += sum(dO[f, i - 1, j - 1] * X[ch, (i - 1) * s + r - 1, (j - 1) * s + c - 1]
                                                       for i in range(1, h_new + 1) for j in range(1, w_new + 1))
    return dX, dW, dy.sum(axis=(0, 2, 3))


def W_at(w, f, ch, r, c):
    """W[f, ch, r, c] with the question's 1-based indices."""
    return w[f, ch, r - 1, c - 1]
