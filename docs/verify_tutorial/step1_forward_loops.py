"""Step 1: the forward pass as plain loops.

y[n, f, i, j] = b[f] + sum over c, k, l of x_pad[n, c, i*S + k, j*S + l] * w[f, c, k, l]
"""
import numpy as np


def conv_forward(x, w, b, stride=1, padding=0):
    N, C, H, W = x.shape
    F, _, KH, KW = w.shape
    H_out = (H + 2 * padding - KH) // stride + 1
    W_out = (W + 2 * padding - KW) // stride + 1
    x_pad = np.pad(x, ((0, 0), (0, 0), (padding, padding), (padding, padding)))
    y = np.zeros((N, F, H_out, W_out))
    for n in range(N):
        for f in range(F):
            for i in range(H_out):
                for j in range(W_out):
                    window = x_pad[n, :, i * stride:i * stride + KH, j * stride:j * stride + KW]
                    y[n, f, i, j] = np.sum(window * w[f]) + b[f]
    return y
