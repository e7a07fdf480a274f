"""Seed 002's dX formula with the bounds clipped to 1 ... h_new, but the lower bound still a floor.

Correct at stride 1; at stride s > 1 floor((p - f_r)/s + 1) is one too small whenever s does not
divide p - f_r, and the kernel index p - (i-1)s then runs past f_r.
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
WHY = "i_lower = max(1, floor((p - f_r)/s + 1)) needs ceil: IndexError on W at stride > 1"
WITNESS = dict(input_shape=(1, 1, 6, 6), weight_shape=(1, 1, 2, 2), stride=2)
CLEAN = dict(input_shape=(2, 2, 5, 4), weight_shape=(3, 2, 3, 2), stride=1)


def bounds(p, f, s, n_out):
    return max(1, math.floor((p - f) / s + 1)), min(n_out, math.floor((p - 1) / s + 1))


def conv_backward(dy, x, w, stride=1):
    s = stride
    N, n_ch, h, wd = x.shape
    n_f, _, f_r, f_c = w.shape
    _, _, h_new, w_new = dy.shape
    dX = np.zeros_like(x)
    for p in range(1, h + 1):
        for q in range(1, wd + 1):
            i_lo, i_hi = bounds(p, f_r, s, h_new)
            j_lo, j_hi = bounds(q, f_c, s, w_new)
            for i in range(i_lo, i_hi + 1):
                for j in range(j_lo, j_hi + 1):           # all samples and channels at once
                    dX[:, :, p - 1, q - 1] += dy[:, :, i - 1, j - 1] @ w[:, :, p - (i - 1) * s - 1, q - (j - 1) * s - 1]
    dW = np.zeros_like(w)
    for r in range(f_r):
        for c in range(f_c):
            patch = x[:, :, r:r + s * (h_new - 1) + 1:s, c:c + s * (w_new - 1) + 1:s]   # (N, C, h_new, w_new)
            dW[:, :, r, c] = np.einsum("nfij,ncij->fc", dy, patch)
    return dX, dW, dy.sum(axis=(0, 2, 3))
