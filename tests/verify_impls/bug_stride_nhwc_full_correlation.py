"""NHWC conv2d backward: dx as "the full convolution of dy with the rotated kernel", dy not dilated.

The lecture's stride-1 formula: at stride S the S-1 zeros between the samples of dy are missing, so
dx only fills the top-left (Ho+K-1) x (Wo+K-1) block of the padded input.
"""
import numpy as np

ENTRY = "conv2d_backward"
OP = "backward"
DIMS = 2
CHANNELS_LAST = True
PER_DIM = False
PADDING_FORMS = ("int",)
EXPECT = "stride"
WHY = "dx = full correlation of dy (without S-1 zeros inserted between its samples) with the flipped kernel"
WITNESS = dict(input_shape=(1, 8, 8, 2), weight_shape=(3, 3, 2, 2), stride=2, padding=1)
CLEAN = dict(input_shape=(2, 6, 5, 2), weight_shape=(3, 2, 2, 3), stride=1, padding=1)


def conv2d_backward(dy, x, w, stride=1, padding=0):
    N, H, W, C = x.shape
    KH, KW, _, F = w.shape
    _, Ho, Wo, _ = dy.shape
    s, p = stride, padding
    xp = np.pad(x, ((0, 0), (p, p), (p, p), (0, 0)))
    dw = np.zeros_like(w)
    for i in range(KH):
        for j in range(KW):
            patch = xp[:, i:i + s * (Ho - 1) + 1:s, j:j + s * (Wo - 1) + 1:s, :]
            dw[i, j] = np.einsum("nhwc,nhwf->cf", patch, dy)
    db = dy.sum(axis=(0, 1, 2))

    dyp = np.pad(dy, ((0, 0), (KH - 1, KH - 1), (KW - 1, KW - 1), (0, 0)))
    w_rot = w[::-1, ::-1]                                   # rotate the kernel by 180 degrees
    full = np.zeros((N, Ho + KH - 1, Wo + KW - 1, C))
    for i in range(KH):
        for j in range(KW):
            full += np.einsum("nhwf,cf->nhwc", dyp[:, i:i + Ho + KH - 1, j:j + Wo + KW - 1], w_rot[i, j])
    dxp = np.zeros_like(xp)
    dxp[:, :full.shape[1], :full.shape[2]] = full
    dx = dxp[:, p:p + H, p:p + W]
    return dx, dw, db
