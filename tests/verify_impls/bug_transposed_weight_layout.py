"""conv_transpose2d forward that reads the weight as (C_out, C_in, KH, KW), like a conv weight.

PyTorch stores a transposed convolution's weight as (C_in, C_out/groups, KH, KW).
"""
import numpy as np

ENTRY = "conv_transpose2d"
OP = "transposed_forward"
DIMS = 2
CHANNELS_LAST = False
PER_DIM = False
PADDING_FORMS = ("int",)
EXPECT = "transposed_weight_layout"
WHY = "F, C_, KH, KW = w.shape and w[f, c]: the weight read as (C_out, C_in, k) instead of (C_in, C_out, k)"
WITNESS = dict(input_shape=(1, 2, 3, 3), weight_shape=(2, 2, 3, 3), stride=2, padding=1)
CLEAN = dict(input_shape=(2, 1, 4, 3), weight_shape=(1, 1, 3, 2), stride=2, padding=1)


def conv_transpose2d(x, w, stride=1, padding=0):
    N, C, H, W = x.shape
    F, _, KH, KW = w.shape
    s, p = stride, padding
    full = np.zeros((N, F, (H - 1) * s + KH, (W - 1) * s + KW))
    for n in range(N):
        for f in range(F):
            for c in range(C):
                for i in range(H):
                    for j in range(W):
                        full[n, f, i * s:i * s + KH, j * s:j * s + KW] += x[n, c, i, j] * w[f, c]
    return full[:, :, p:full.shape[2] - p, p:full.shape[3] - p]
