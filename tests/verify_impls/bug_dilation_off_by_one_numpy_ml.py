"""numpy-ml-style NHWC conv2d forward: dilation d inserts d zeros between kernel taps.

That is numpy-ml's convention (0 means no dilation). PyTorch's dilation D puts taps D apart,
i.e. D - 1 zeros between them; read with PyTorch's meaning, every tap lands one step too far.
"""
import numpy as np

ENTRY = "conv2d"
OP = "forward"
DIMS = 2
CHANNELS_LAST = True
PER_DIM = False
PADDING_FORMS = ("int",)
EXPECT = "dilation_off_by_one"
WHY = "dilate(w, d) inserts d zeros (tap spacing d + 1); PyTorch's dilation d means spacing d"
WITNESS = dict(input_shape=(1, 9, 9, 2), weight_shape=(3, 3, 2, 2), stride=1, padding=1, dilation=2)
CLEAN = dict(input_shape=(2, 6, 5, 2), weight_shape=(1, 1, 2, 3), stride=2, padding=1, dilation=3)


def dilate(w, d):
    """Insert d zeros between neighbouring kernel entries (numpy-ml's `dilate`)."""
    KH, KW, C, F = w.shape
    out = np.zeros((KH + (KH - 1) * d, KW + (KW - 1) * d, C, F))
    out[::d + 1, ::d + 1] = w
    return out


def conv2d(x, w, b, stride=1, padding=0, dilation=1):
    wd = dilate(w, dilation)
    KH, KW, C, F = wd.shape
    s, p = stride, padding
    xp = np.pad(x, ((0, 0), (p, p), (p, p), (0, 0)))
    Ho, Wo = (xp.shape[1] - KH) // s + 1, (xp.shape[2] - KW) // s + 1
    y = np.zeros((x.shape[0], Ho, Wo, F))
    for i in range(Ho):
        for j in range(Wo):
            window = xp[:, i * s:i * s + KH, j * s:j * s + KW, :]       # (N, KH, KW, C)
            y[:, i, j, :] = np.tensordot(window, wd, axes=([1, 2, 3], [0, 1, 2])) + b
    return y
