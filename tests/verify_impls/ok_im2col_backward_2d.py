"""conv2d backward with im2col index arrays; col2im with np.add.at so overlapping windows add up."""
import numpy as np

ENTRY = "conv_backward"
OP = "backward"
DIMS = 2
CHANNELS_LAST = False
PER_DIM = False
PADDING_FORMS = ("int",)
EXPECT = None
WHY = "correct: im2col gather, col2im scatter with np.add.at, dx cropped at [p:p+H]"


def im2col_indices(C, KH, KW, H_out, W_out, stride, dilation):
    c = np.repeat(np.arange(C), KH * KW)                           # (C*KH*KW,)
    kh = np.tile(np.repeat(np.arange(KH), KW), C) * dilation
    kw = np.tile(np.arange(KW), C * KH) * dilation
    oh = np.repeat(np.arange(H_out), W_out) * stride               # (H_out*W_out,)
    ow = np.tile(np.arange(W_out), H_out) * stride
    return c[:, None], kh[:, None] + oh[None, :], kw[:, None] + ow[None, :]


def conv_backward(dy, x, w, stride=1, padding=0, dilation=1):
    N, C, H, W = x.shape
    F, _, KH, KW = w.shape
    _, _, H_out, W_out = dy.shape
    p = padding
    x_pad = np.pad(x, ((0, 0), (0, 0), (p, p), (p, p)))
    c, rows, cols = im2col_indices(C, KH, KW, H_out, W_out, stride, dilation)
    x_cols = x_pad[:, c, rows, cols]                                # (N, C*KH*KW, H_out*W_out)
    dy_mat = dy.reshape(N, F, H_out * W_out)                       # (N, F, H_out*W_out)

    dw = np.einsum("nfp,nkp->fk", dy_mat, x_cols).reshape(w.shape)
    db = dy.sum(axis=(0, 2, 3))
    dx_cols = np.einsum("fk,nfp->nkp", w.reshape(F, -1), dy_mat)  # (N, C*KH*KW, H_out*W_out)
    dx_pad = np.zeros_like(x_pad)
    np.add.at(dx_pad, (slice(None), c, rows, cols), dx_cols)       # repeated indices accumulate
    dx = dx_pad[:, :, p:p + H, p:p + W]
    return dx, dw, db
