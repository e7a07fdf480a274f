"""Channels-last conv_transpose1d forward that reads the weight as conv's (K, C_in, C_out).

Keras/TF store a transposed convolution's kernel as (K, C_out, C_in) — the transpose of the layout
of the convolution it is the gradient of.
"""
import numpy as np

ENTRY = "conv1d_transpose_nhwc"
OP = "transposed_forward"
DIMS = 1
CHANNELS_LAST = True
PER_DIM = False
PADDING_FORMS = ("int",)
EXPECT = "transposed_weight_layout"
WHY = "K, C_in, C_out = w.shape: the weight read as (K, C_in, C_out) instead of (K, C_out, C_in)"
WITNESS = dict(input_shape=(1, 4, 2), weight_shape=(3, 2, 2), stride=2, padding=0)
CLEAN = dict(input_shape=(2, 4, 1), weight_shape=(3, 1, 1), stride=2, padding=1)


def conv1d_transpose_nhwc(x, w, b, stride=1, padding=0):
    N, L, _ = x.shape
    K, C_in, C_out = w.shape
    full = np.zeros((N, (L - 1) * stride + K, C_out))
    for i in range(L):
        for k in range(K):
            full[:, i * stride + k, :] += x[:, i, :] @ w[k]        # (N, C_in) @ (C_in, C_out)
    return full[:, padding:full.shape[1] - padding, :] + b
