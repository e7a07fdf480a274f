"""Keras-style conv2d forward: NHWC input, HWIO weights, padding int, 'same' or 'valid'."""
import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

ENTRY = "conv2d_nhwc"
OP = "forward"
DIMS = 2
CHANNELS_LAST = True
PER_DIM = False
PADDING_FORMS = ("int", "same", "valid")
EXPECT = None
WHY = "correct: 'same' pads floor(total/2) first and the odd pixel at the end, as TensorFlow does"


def same_pads(size, k_eff, stride):
    out = -(-size // stride)                          # ceil(size / stride)
    total = max((out - 1) * stride + k_eff - size, 0)
    return total // 2, total - total // 2


def conv2d_nhwc(x, w, b, stride=1, padding=0, dilation=1):
    KH, KW, C, F = w.shape
    kh_eff, kw_eff = dilation * (KH - 1) + 1, dilation * (KW - 1) + 1
    if padding == "same":
        (top, bottom), (left, right) = same_pads(x.shape[1], kh_eff, stride), same_pads(x.shape[2], kw_eff, stride)
    elif padding == "valid":
        top = bottom = left = right = 0
    else:
        top = bottom = left = right = padding
    xp = np.pad(x, ((0, 0), (top, bottom), (left, right), (0, 0)))
    win = sliding_window_view(xp, (kh_eff, kw_eff), axis=(1, 2))    # (N, Hp-kh_eff+1, Wp-kw_eff+1, C, kh_eff, kw_eff)
    win = win[:, ::stride, ::stride, :, ::dilation, ::dilation]     # (N, Ho, Wo, C, KH, KW)
    return np.einsum("nijckl,klcf->nijf", win, w) + b
