"""conv_transpose3d forward, channels last, as a direct convolution of the zero-inserted input.

Dumoulin & Visin: insert S-1 zeros between inputs, pad K-1-P (plus output_padding at the end),
correlate with the flipped kernel at stride 1. Weights (KD, KH, KW, C_out, C_in).
"""
import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

ENTRY = "conv_transpose3d_nhwc"
OP = "transposed_forward"
DIMS = 3
CHANNELS_LAST = True
PER_DIM = False
PADDING_FORMS = ("int",)
EXPECT = None
WHY = "correct: a negative K-1-P pad becomes a crop"


def conv_transpose3d_nhwc(x, w, stride=1, padding=0, output_padding=0):
    N, D, H, W, C = x.shape
    *k, F, _ = w.shape
    s, p, a = stride, padding, output_padding
    up = np.zeros((N, (D - 1) * s + 1, (H - 1) * s + 1, (W - 1) * s + 1, C))
    up[:, ::s, ::s, ::s] = x                                   # S-1 zeros between neighbours
    lo = [kk - 1 - p for kk in k]
    hi = [kk - 1 - p + a for kk in k]
    up = np.pad(up, [(0, 0)] + [(max(l, 0), max(h, 0)) for l, h in zip(lo, hi)] + [(0, 0)])
    crop = tuple(slice(max(-l, 0), n - max(-h, 0)) for l, h, n in zip(lo, hi, up.shape[1:4]))
    up = up[(slice(None),) + crop]
    win = sliding_window_view(up, k, axis=(1, 2, 3))           # (N, Do, Ho, Wo, C, KD, KH, KW)
    return np.einsum("nxyzcijk,ijkfc->nxyzf", win, w[::-1, ::-1, ::-1])
