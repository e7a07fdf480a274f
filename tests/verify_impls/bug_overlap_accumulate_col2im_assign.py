"""im2col conv2d backward whose col2im writes each kernel tap's slice with `=` instead of `+=`."""
import numpy as np

ENTRY = "conv_backward"
OP = "backward"
DIMS = 2
CHANNELS_LAST = False
PER_DIM = False
PADDING_FORMS = ("int",)
EXPECT = "overlap_accumulate"
WHY = "col2im: dx_pad[..., i::S, j::S] = dcols[tap]; cells read by 2+ windows keep only the last tap"
WITNESS = dict(input_shape=(2, 2, 6, 6), weight_shape=(2, 2, 3, 3), stride=1, padding=1)
CLEAN = dict(input_shape=(2, 2, 7, 8), weight_shape=(3, 2, 2, 2), stride=2, padding=1)


def col2im(dcols, x_shape, KH, KW, stride, pad):
    N, C, H, W = x_shape
    _, _, _, _, Ho, Wo = dcols.shape                                 # (N, C, KH, KW, Ho, Wo)
    dx_pad = np.zeros((N, C, H + 2 * pad, W + 2 * pad))
    for i in range(KH):
        for j in range(KW):
            dx_pad[:, :, i:i + stride * Ho:stride, j:j + stride * Wo:stride] = dcols[:, :, i, j]
    return dx_pad[:, :, pad:pad + H, pad:pad + W]


def conv_backward(dy, x, w, stride=1, padding=0):
    F, C, KH, KW = w.shape
    Ho, Wo = dy.shape[2:]
    s = stride
    xp = np.pad(x, ((0, 0), (0, 0), (padding, padding), (padding, padding)))
    cols = np.empty((x.shape[0], C, KH, KW, Ho, Wo))
    for i in range(KH):
        for j in range(KW):
            cols[:, :, i, j] = xp[:, :, i:i + s * Ho:s, j:j + s * Wo:s]
    dw = np.einsum("ncklhw,nfhw->fckl", cols, dy)
    db = dy.sum(axis=(0, 2, 3))
    dcols = np.einsum("fckl,nfhw->ncklhw", w, dy)
    return col2im(dcols, x.shape, KH, KW, s, padding), dw, db
