"""NHWC conv2d backward (stride 1) that "rotates the kernel" with np.rot90: 90 degrees, not 180."""
import numpy as np

ENTRY = "conv2d_backward"
OP = "backward"
DIMS = 2
CHANNELS_LAST = True
PER_DIM = False
PADDING_FORMS = ("int",)
EXPECT = "kernel_flip"
WHY = "np.rot90(w) turns the kernel by 90 degrees; the full correlation needs w[::-1, ::-1] (np.rot90(w, 2))"
WITNESS = dict(input_shape=(1, 5, 5, 2), weight_shape=(3, 3, 2, 2), padding=1)
CLEAN = dict(input_shape=(2, 4, 5, 2), weight_shape=(1, 1, 2, 3), padding=2)


def conv2d_backward(dy, x, w, padding=0):
    N, H, W, C = x.shape
    KH, KW, _, F = w.shape
    _, Ho, Wo, _ = dy.shape
    p = padding
    xp = np.pad(x, ((0, 0), (p, p), (p, p), (0, 0)))
    dw = np.zeros_like(w)
    for i in range(KH):
        for j in range(KW):
            dw[i, j] = np.einsum("nhwc,nhwf->cf", xp[:, i:i + Ho, j:j + Wo], dy)
    w_rot = np.rot90(w)                                      # "rotate the filter" (axes 0 and 1)
    dyp = np.pad(dy, ((0, 0), (KH - 1, KH - 1), (KW - 1, KW - 1), (0, 0)))
    dxp = np.zeros((N, Ho + KH - 1, Wo + KW - 1, C))
    for i in range(KH):
        for j in range(KW):
            dxp += np.einsum("nhwf,cf->nhwc", dyp[:, i:i + Ho + KH - 1, j:j + Wo + KW - 1], w_rot[i, j])
    return dxp[:, p:p + H, p:p + W], dw, dy.sum(axis=(0, 1, 2))
