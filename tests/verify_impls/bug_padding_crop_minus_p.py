"""conv2d backward with loops; padding removed from dx with dx_pad[:, :, p:-p, p:-p].

At p = 0 that is dx_pad[:, :, 0:0, 0:0]: an empty array.
"""
import numpy as np

ENTRY = "conv_backward"
OP = "backward"
DIMS = 2
CHANNELS_LAST = False
PER_DIM = False
PADDING_FORMS = ("int",)
EXPECT = "padding_crop"
WHY = "dx = dx_pad[:, :, p:-p, p:-p] is empty when p = 0 (-0 is 0)"
WITNESS = dict(input_shape=(1, 2, 5, 5), weight_shape=(2, 2, 3, 3), stride=1, padding=0)
CLEAN = dict(input_shape=(2, 2, 7, 6), weight_shape=(3, 2, 3, 2), stride=2, padding=1)


def conv_backward(dy, x, w, stride=1, padding=0):
    N, C, H, W = x.shape
    F, _, KH, KW = w.shape
    _, _, Ho, Wo = dy.shape
    p, s = padding, stride
    x_pad = np.pad(x, ((0, 0), (0, 0), (p, p), (p, p)))
    dx_pad = np.zeros_like(x_pad)
    dw = np.zeros_like(w)
    for n in range(N):
        for i in range(Ho):
            for j in range(Wo):
                window = x_pad[n, :, i * s:i * s + KH, j * s:j * s + KW]       # (C, KH, KW)
                dw += dy[n, :, i, j][:, None, None, None] * window[None]
                dx_pad[n, :, i * s:i * s + KH, j * s:j * s + KW] += np.einsum("f,fckl->ckl", dy[n, :, i, j], w)
    dx = dx_pad[:, :, p:-p, p:-p]
    return dx, dw, dy.sum(axis=(0, 2, 3))
