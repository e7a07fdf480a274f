"""Step 6: the same backward in TensorFlow/Keras's layout: x (N, H, W, C), w (KH, KW, C_in, C_out).

A loop over the kernel taps (few) with strided slices for everything else; run verify with
``--channels-last`` so that it passes NHWC arrays and HWIO weights and reads dx, dw back that way.
"""
import numpy as np


def conv_backward(dy, x, w, stride=1, padding=0):
    N, H, W, C = x.shape
    KH, KW, _, F = w.shape
    _, H_out, W_out, _ = dy.shape
    p, s = padding, stride
    x_pad = np.pad(x, ((0, 0), (p, p), (p, p), (0, 0)))
    dx_pad = np.zeros_like(x_pad)
    dw = np.zeros_like(w)
    for k in range(KH):
        for l in range(KW):
            rows = slice(k, k + s * (H_out - 1) + 1, s)
            cols = slice(l, l + s * (W_out - 1) + 1, s)
            dw[k, l] = np.einsum("nijc,nijf->cf", x_pad[:, rows, cols, :], dy)
            dx_pad[:, rows, cols, :] += np.einsum("nijf,cf->nijc", dy, w[k, l])
    db = dy.sum(axis=(0, 1, 2))
    return dx_pad[:, p:p + H, p:p + W, :], dw, db
