"""conv2d backward that accumulates dw as [c, f, i, j] and then RESHAPES it to (F, C, KH, KW).

A reshape keeps the memory order; a transpose was needed. With C = F the shape even looks right.
"""
import numpy as np

ENTRY = "conv_backward"
OP = "backward"
DIMS = 2
CHANNELS_LAST = False
PER_DIM = False
PADDING_FORMS = ("int",)
EXPECT = "channel_axes"
WHY = "dw built as (C, F, KH, KW) then dw.reshape(F, C, KH, KW) where dw.transpose(1, 0, 2, 3) was needed"
WITNESS = dict(input_shape=(2, 3, 5, 5), weight_shape=(3, 3, 3, 3), stride=1, padding=1)
CLEAN = dict(input_shape=(2, 1, 6, 5), weight_shape=(3, 1, 3, 2), stride=2, padding=1)


def conv_backward(dy, x, w, stride=1, padding=0):
    N, C, H, W = x.shape
    F, _, KH, KW = w.shape
    Ho, Wo = dy.shape[2:]
    s, p = stride, padding
    xp = np.pad(x, ((0, 0), (0, 0), (p, p), (p, p)))
    dw = np.zeros((C, F, KH, KW))
    dxp = np.zeros_like(xp)
    for c in range(C):
        for f in range(F):
            for i in range(KH):
                for j in range(KW):
                    window = xp[:, c, i:i + s * (Ho - 1) + 1:s, j:j + s * (Wo - 1) + 1:s]   # (N, Ho, Wo)
                    dw[c, f, i, j] = np.sum(window * dy[:, f])
                    dxp[:, c, i:i + s * (Ho - 1) + 1:s, j:j + s * (Wo - 1) + 1:s] += w[f, c, i, j] * dy[:, f]
    dw = dw.reshape(F, C, KH, KW)              # to the weight's shape
    return dxp[:, :, p:p + H, p:p + W], dw, dy.sum(axis=(0, 2, 3))
