"""NHWC conv3d backward: per tap, dw comes out as (C_out, C_in) and is reshaped to (C_in, C_out).

The einsum's output letters were written "fc"; `.reshape(C, F)` made the assignment fit where
`.T` was needed. With one input or one output channel nothing changes.
"""
import numpy as np

ENTRY = "conv3d_backward"
OP = "backward"
DIMS = 3
CHANNELS_LAST = True
PER_DIM = False
PADDING_FORMS = ("int",)
EXPECT = "channel_axes"
WHY = "dw[tap] = einsum('...f,...c->fc').reshape(C, F): a reshape where a transpose was needed"
WITNESS = dict(input_shape=(1, 4, 4, 4, 2), weight_shape=(2, 2, 2, 2, 2), stride=1, padding=0)
CLEAN = dict(input_shape=(2, 5, 4, 4, 1), weight_shape=(2, 3, 2, 1, 2), stride=2, padding=1)


def conv3d_backward(dy, x, w, stride=1, padding=0):
    N, D, H, W, C = x.shape
    KD, KH, KW, _, F = w.shape
    out = dy.shape[1:4]
    s, p = stride, padding
    xp = np.pad(x, ((0, 0), (p, p), (p, p), (p, p), (0, 0)))
    dxp = np.zeros_like(xp)
    dw = np.zeros_like(w)
    for tap in np.ndindex(KD, KH, KW):
        win = (slice(None),) + tuple(slice(t, t + s * (o - 1) + 1, s) for t, o in zip(tap, out))
        dw[tap] = np.einsum("nxyzf,nxyzc->fc", dy, xp[win]).reshape(C, F)
        dxp[win] += dy @ w[tap].T                           # (N, Do, Ho, Wo, F) @ (F, C)
    return dxp[:, p:p + D, p:p + H, p:p + W], dw, dy.sum(axis=(0, 1, 2, 3))
