"""Step 3: the backward loops with the window at (i*S, j*S), as in the forward pass."""
import numpy as np


def conv_backward(dy, x, w, stride=1, padding=0):
    N, C, H, W = x.shape
    F, _, KH, KW = w.shape
    _, _, H_out, W_out = dy.shape
    x_pad = np.pad(x, ((0, 0), (0, 0), (padding, padding), (padding, padding)))
    dx_pad = np.zeros_like(x_pad)
    dw = np.zeros_like(w)
    db = dy.sum(axis=(0, 2, 3))
    for n in range(N):
        for f in range(F):
            for i in range(H_out):
                for j in range(W_out):
                    h0, w0 = i * stride, j * stride
                    window = (n, slice(None), slice(h0, h0 + KH), slice(w0, w0 + KW))
                    dw[f] += x_pad[window] * dy[n, f, i, j]
                    dx_pad[window] += w[f] * dy[n, f, i, j]
    dx = dx_pad[:, :, padding:padding + H, padding:padding + W]
    return dx, dw, db
