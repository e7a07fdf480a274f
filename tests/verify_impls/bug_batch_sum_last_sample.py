"""conv2d backward looping over the batch, with dw ASSIGNED per sample: only the last one survives."""
import numpy as np

ENTRY = "conv_backward"
OP = "backward"
DIMS = 2
CHANNELS_LAST = False
PER_DIM = False
PADDING_FORMS = ("int",)
EXPECT = "batch_sum"
WHY = "dw = einsum(x_pad[n], dy[n]) inside `for n`: `=` where `+=` was needed, so dw is the last sample's"
WITNESS = dict(input_shape=(2, 2, 5, 5), weight_shape=(3, 2, 3, 3), stride=1, padding=1)
CLEAN = dict(input_shape=(1, 3, 6, 7), weight_shape=(2, 3, 3, 2), stride=2, padding=1)


def conv_backward(dy, x, w, stride=1, padding=0):
    N, C, H, W = x.shape
    F, _, KH, KW = w.shape
    Ho, Wo = dy.shape[2:]
    s, p = stride, padding
    xp = np.pad(x, ((0, 0), (0, 0), (p, p), (p, p)))
    dxp = np.zeros_like(xp)
    for n in range(N):
        cols = np.stack([xp[n, :, i:i + s * (Ho - 1) + 1:s, j:j + s * (Wo - 1) + 1:s]
                         for i in range(KH) for j in range(KW)], axis=1)   # (C, KH*KW, Ho, Wo)
        dw = np.einsum("ckhw,fhw->fck", cols, dy[n]).reshape(w.shape)
        dcols = np.einsum("fck,fhw->ckhw", w.reshape(F, C, -1), dy[n])
        for t in range(KH * KW):
            i, j = divmod(t, KW)
            dxp[n, :, i:i + s * (Ho - 1) + 1:s, j:j + s * (Wo - 1) + 1:s] += dcols[:, t]
    db = dy.sum(axis=(0, 2, 3))
    return dxp[:, :, p:p + H, p:p + W], dw, db
