"""im2col conv2d backward that rebuilds the padded input from the windows alone.

The buffer is (Ho-1)*S + K long: the rows of the padded input that no window reads (the unread
tail, when S does not divide H + 2P - K) are not in it, so dx comes out short.
"""
import numpy as np

ENTRY = "conv_backward"
OP = "backward"
DIMS = 2
CHANNELS_LAST = False
PER_DIM = False
PADDING_FORMS = ("int",)
EXPECT = "unread_tail"
WHY = "col2im buffer sized (Ho-1)*S+K instead of H+2P, cropped [p:-p or end]: dx short by the unread tail"
WITNESS = dict(input_shape=(1, 2, 6, 6), weight_shape=(2, 2, 3, 3), stride=2, padding=0)
CLEAN = dict(input_shape=(2, 2, 7, 6), weight_shape=(3, 2, 3, 2), stride=1, padding=1)


def conv_backward(dy, x, w, stride=1, padding=0):
    N, C, H, W = x.shape
    F, _, KH, KW = w.shape
    _, _, Ho, Wo = dy.shape
    s, p = stride, padding
    xp = np.pad(x, ((0, 0), (0, 0), (p, p), (p, p)))
    cols = np.stack([xp[:, :, i:i + s * (Ho - 1) + 1:s, j:j + s * (Wo - 1) + 1:s]
                     for i in range(KH) for j in range(KW)], axis=2)      # (N, C, KH*KW, Ho, Wo)
    dw = np.einsum("nckhw,nfhw->fck", cols, dy).reshape(w.shape)
    db = dy.sum(axis=(0, 2, 3))
    dcols = np.einsum("fck,nfhw->nckhw", w.reshape(F, C, KH * KW), dy)
    rows_read, cols_read = (Ho - 1) * s + KH, (Wo - 1) * s + KW             # the extent the windows cover
    buf = np.zeros((N, C, rows_read, cols_read))
    for t in range(KH * KW):
        i, j = divmod(t, KW)
        buf[:, :, i:i + s * (Ho - 1) + 1:s, j:j + s * (Wo - 1) + 1:s] += dcols[:, :, t]
    dx = buf[:, :, p:rows_read - p, p:cols_read - p]
    return dx, dw, db
