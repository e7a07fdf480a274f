"""conv3d backward (loop over taps) that keeps the first D, H, W entries of dx_pad instead of skipping P."""
import numpy as np

ENTRY = "conv3d_backward"
OP = "backward"
DIMS = 3
CHANNELS_LAST = False
PER_DIM = False
PADDING_FORMS = ("int",)
EXPECT = "padding_crop"
WHY = "dx = dx_pad[:, :, :D, :H, :W]: the crop starts at 0, not at P, so dx is shifted by P"
WITNESS = dict(input_shape=(1, 2, 4, 4, 4), weight_shape=(2, 2, 3, 3, 3), stride=1, padding=1)
CLEAN = dict(input_shape=(2, 2, 5, 4, 5), weight_shape=(3, 2, 2, 3, 2), stride=2, padding=0)


def conv3d_backward(dy, x, w, stride=1, padding=0):
    N, C, D, H, W = x.shape
    F, _, KD, KH, KW = w.shape
    out = dy.shape[2:]
    s, p = stride, padding
    xp = np.pad(x, ((0, 0), (0, 0), (p, p), (p, p), (p, p)))
    dxp = np.zeros_like(xp)
    dw = np.zeros_like(w)
    for a, b, c in np.ndindex(KD, KH, KW):
        win = (slice(None), slice(None)) + tuple(slice(t, t + s * (o - 1) + 1, s) for t, o in zip((a, b, c), out))
        dw[:, :, a, b, c] = np.einsum("ncxyz,nfxyz->fc", xp[win], dy)
        dxp[win] += np.einsum("fc,nfxyz->ncxyz", w[:, :, a, b, c], dy)
    dx = dxp[:, :, :D, :H, :W]
    return dx, dw, dy.sum(axis=(0, 2, 3, 4))
