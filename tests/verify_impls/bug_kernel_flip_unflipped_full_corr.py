"""conv2d backward (stride 1) with dx as a full correlation of dy with the kernel NOT flipped."""
import numpy as np

ENTRY = "conv_backward"
OP = "backward"
DIMS = 2
CHANNELS_LAST = False
PER_DIM = False
PADDING_FORMS = ("int",)
EXPECT = "kernel_flip"
WHY = "dx = full correlation of dy with w as stored; the formula needs w rotated by 180 degrees"
WITNESS = dict(input_shape=(1, 2, 5, 5), weight_shape=(2, 2, 3, 3), padding=1)
CLEAN = dict(input_shape=(2, 3, 5, 4), weight_shape=(2, 3, 1, 1), padding=1)


def correlate_full(dy, w):
    """sum_f sum_{i,j} dy_pad[n, f, h+i, v+j] * w[f, c, i, j], dy padded by K-1 on every side."""
    F, C, KH, KW = w.shape
    N, _, Ho, Wo = dy.shape
    dyp = np.pad(dy, ((0, 0), (0, 0), (KH - 1, KH - 1), (KW - 1, KW - 1)))
    out = np.zeros((N, C, Ho + KH - 1, Wo + KW - 1))
    for i in range(KH):
        for j in range(KW):
            out += np.einsum("nfhv,fc->nchv", dyp[:, :, i:i + Ho + KH - 1, j:j + Wo + KW - 1], w[:, :, i, j])
    return out


def conv_backward(dy, x, w, padding=0):
    p = padding
    H, W = x.shape[2:]
    KH, KW = w.shape[2:]
    xp = np.pad(x, ((0, 0), (0, 0), (p, p), (p, p)))
    Ho, Wo = dy.shape[2:]
    dw = np.zeros_like(w)
    for i in range(KH):
        for j in range(KW):
            dw[:, :, i, j] = np.einsum("nchv,nfhv->fc", xp[:, :, i:i + Ho, j:j + Wo], dy)
    dx = correlate_full(dy, w)[:, :, p:p + H, p:p + W]
    return dx, dw, dy.sum(axis=(0, 2, 3))
