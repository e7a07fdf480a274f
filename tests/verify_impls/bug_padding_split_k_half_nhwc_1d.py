"""Keras-style NHWC conv1d forward whose padding='same' is K//2 on both sides, whatever the stride."""
import numpy as np

ENTRY = "conv1d_nhwc"
OP = "forward"
DIMS = 1
CHANNELS_LAST = True
PER_DIM = False
PADDING_FORMS = ("same",)
EXPECT = "padding_split"
WHY = "'same' as K//2 each side: right for odd K at stride 1; even K or stride > 1 give a shift or a wrong length"
WITNESS = dict(input_shape=(1, 8, 2), weight_shape=(4, 2, 2), stride=2, padding="same")
CLEAN = dict(input_shape=(2, 7, 2), weight_shape=(3, 2, 3), stride=1, padding="same")


def conv1d_nhwc(x, w, b, stride=1, padding="same"):
    K, C, F = w.shape
    half = K // 2
    xp = np.pad(x, ((0, 0), (half, half), (0, 0)))
    L_out = (xp.shape[1] - K) // stride + 1
    y = np.empty((x.shape[0], L_out, F))
    for i in range(L_out):
        y[:, i, :] = np.einsum("nkc,kcf->nf", xp[:, i * stride:i * stride + K, :], w) + b
    return y
