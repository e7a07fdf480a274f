"""Backward of conv_transpose1d: its input gradient is an ordinary conv1d of dy with the same weight."""
import numpy as np

ENTRY = "conv_transpose1d_backward"
OP = "transposed_backward"
DIMS = 1
CHANNELS_LAST = False
PER_DIM = False
PADDING_FORMS = ("int",)
EXPECT = None
WHY = "correct: dx[n,c,i] = sum_f,k dy_pad[n,f,i*S+k*D] w[c,f,k]; output_padding only lengthens dy"


def conv_transpose1d_backward(dy, x, w, stride=1, padding=0, output_padding=0, dilation=1):
    # output_padding needs no code: it only made dy longer, and those extra samples are read below
    N, C, L = x.shape
    _, F, K = w.shape                                   # (C_in, C_out, K)
    dyp = np.pad(dy, ((0, 0), (0, 0), (padding, padding)))
    idx = np.arange(L)[:, None] * stride + np.arange(K)[None, :] * dilation   # (L, K)
    cols = dyp[:, :, idx]                               # (N, F, L, K)
    dx = np.einsum("nfik,cfk->nci", cols, w)
    dw = np.einsum("nci,nfik->cfk", x, cols)
    db = dy.sum(axis=(0, 2))
    return dx, dw, db
