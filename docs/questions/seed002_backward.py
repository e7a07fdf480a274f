"""Seed 002's backward pass, coded exactly as the asker's formulas read (1-based, no padding).

    dL/dX[ch, p, q] = sum_f sum_{i = i_lower..i_upper} sum_{j = j_lower..j_upper} dL/dO[f, i, j] W[f, ch, p-(i-1)s, q-(j-1)s]
    i_lower = floor((p - f_r)/s + 1),  i_upper = floor((p - 1)/s + 1)     (the same for j with f_c)

`backward_as_asked` uses those bounds; `backward_fixed` uses the corrected ones,
i_lower = max(1, ceil((p - f_r)/s) + 1), i_upper = min(h_new, floor((p - 1)/s) + 1).
Check either with:  convgrad verify docs/questions/seed002_backward.py:backward_as_asked --op backward
"""

import math

import numpy as np


def _backward(dO, X, W, stride, bounds):
    N, n_ch, h, w = X.shape
    n_f, _, f_r, f_c = W.shape
    h_new, w_new = dO.shape[2:]
    s = stride
    dX = np.zeros_like(X)
    for n in range(N):
        for ch in range(1, n_ch + 1):
            for p in range(1, h + 1):
                for q in range(1, w + 1):
                    i_lo, i_hi = bounds(p, f_r, s, h_new)
                    j_lo, j_hi = bounds(q, f_c, s, w_new)
                    for f in range(1, n_f + 1):
                        for i in range(i_lo, i_hi + 1):
                            for j in range(j_lo, j_hi + 1):
                                dX[n, ch - 1, p - 1, q - 1] += (dO[n, f - 1, i - 1, j - 1]
                                                                * W[f - 1, ch - 1, p - (i - 1) * s - 1, q - (j - 1) * s - 1])
    # dL/dW and dL/db as the asker wrote them (these are right)
    dW = np.zeros_like(W)
    for f in range(n_f):
        for ch in range(n_ch):
            for r in range(1, f_r + 1):
                for c in range(1, f_c + 1):
                    for i in range(1, h_new + 1):
                        for j in range(1, w_new + 1):
                            dW[f, ch, r - 1, c - 1] += (dO[:, f, i - 1, j - 1]
                                                        * X[:, ch, (i - 1) * s + r - 1, (j - 1) * s + c - 1]).sum()
    db = dO.sum(axis=(0, 2, 3))
    return dX, dW, db


def asked_bounds(p, f_r, s, h_new):
    return math.floor((p - f_r) / s + 1), math.floor((p - 1) / s + 1)


def fixed_bounds(p, f_r, s, h_new):
    return max(1, math.ceil((p - f_r) / s) + 1), min(h_new, math.floor((p - 1) / s) + 1)


def backward_as_asked(dO, X, W, stride=1):
    return _backward(dO, X, W, stride, asked_bounds)


def backward_fixed(dO, X, W, stride=1):
    return _backward(dO, X, W, stride, fixed_bounds)
