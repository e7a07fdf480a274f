"""An im2col conv2d forward that forgets to reshape its GEMM result back to (N, F, Ho, Wo)."""
import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

ENTRY = "conv2d"
OP = "forward"
DIMS = 2
CHANNELS_LAST = False
PER_DIM = False
PADDING_FORMS = ("int",)
EXPECT = "shape"
WHY = "returns the (N, F, Ho*Wo) matrix product; the values are right, the shape is not"
WITNESS = dict(input_shape=(2, 2, 5, 5), weight_shape=(3, 2, 3, 3), stride=1, padding=1)


def conv2d(x, w, stride=1, padding=0):
    F, C, KH, KW = w.shape
    xp = np.pad(x, ((0, 0), (0, 0), (padding, padding), (padding, padding)))
    win = sliding_window_view(xp, (KH, KW), axis=(2, 3))[:, :, ::stride, ::stride]   # (N, C, Ho, Wo, KH, KW)
    N, _, Ho, Wo = win.shape[:4]
    cols = win.transpose(0, 2, 3, 1, 4, 5).reshape(N, Ho * Wo, C * KH * KW)          # (N, Ho*Wo, C*KH*KW)
    return (cols @ w.reshape(F, -1).T).transpose(0, 2, 1)                           # (N, F, Ho*Wo)
