"""conv1d backward: the col2im buffer misses the unread tail, and dx is padded back with zeros.

The shape is right again, but the crop [p : len - p] dropped the last padded rows the windows did
read, so at S > 1 with an unread tail and P > 0 the last real positions get 0.
"""
import numpy as np

ENTRY = "conv1d_backward"
OP = "backward"
DIMS = 1
CHANNELS_LAST = False
PER_DIM = False
PADDING_FORMS = ("int",)
EXPECT = "unread_tail"
WHY = "buffer of length (Lo-1)*S + K_eff cropped [p:-p], then np.pad with zeros to L: the last min(r, P) positions are 0"
WITNESS = dict(input_shape=(2, 2, 6), weight_shape=(3, 2, 3), stride=2, padding=1, dilation=1)
CLEAN = dict(input_shape=(2, 2, 6), weight_shape=(3, 2, 3), stride=2, padding=0, dilation=1)


def conv1d_backward(dy, x, w, stride=1, padding=0, dilation=1):
    N, C, L = x.shape
    F, _, K = w.shape
    Lo = dy.shape[2]
    s, p, d = stride, padding, dilation
    xp = np.pad(x, ((0, 0), (0, 0), (p, p)))
    idx = np.arange(Lo)[:, None] * s + np.arange(K)[None, :] * d     # (Lo, K) positions read
    dw = np.einsum("nfo,ncok->fck", dy, xp[:, :, idx])
    db = dy.sum(axis=(0, 2))
    length = (Lo - 1) * s + d * (K - 1) + 1                          # what the windows span
    buf = np.zeros((N, C, length))
    for k in range(K):
        buf[:, :, k * d:k * d + s * (Lo - 1) + 1:s] += np.einsum("fc,nfo->nco", w[:, :, k], dy)
    dx = buf[:, :, p:length - p]
    dx = np.pad(dx, ((0, 0), (0, 0), (0, L - dx.shape[2])))        # "restore" the input length
    return dx, dw, db
