"""Backward of a channels-last conv_transpose2d with groups; weights (KH, KW, C_out/groups, C_in)."""
import numpy as np

ENTRY = "conv_transpose2d_backward"
OP = "transposed_backward"
DIMS = 2
CHANNELS_LAST = True
PER_DIM = False
PADDING_FORMS = ("int",)
EXPECT = None
WHY = "correct: input i with tap k wrote output i*S + k*D - P, so both gradients read dy there"


def conv_transpose2d_backward(dy, x, w, stride=1, padding=0, output_padding=0, groups=1, dilation=1):
    N, H, W, C = x.shape
    KH, KW, Fg, _ = w.shape
    G, s, d, p = groups, stride, dilation, padding
    Cg = C // G
    dyp = np.pad(dy, ((0, 0), (p, p), (p, p), (0, 0)))
    xg = x.reshape(N, H, W, G, Cg)
    dx = np.zeros((N, H, W, G, Cg))
    dw = np.zeros_like(w)
    for kh in range(KH):
        for kw in range(KW):
            sl = dyp[:, kh * d:kh * d + s * (H - 1) + 1:s, kw * d:kw * d + s * (W - 1) + 1:s, :]
            sl = sl.reshape(N, H, W, G, Fg)                       # (N, H, W, G, C_out/G)
            wk = w[kh, kw].reshape(Fg, G, Cg)                     # (C_out/G, G, C_in/G)
            dx += np.einsum("nijgf,fgc->nijgc", sl, wk)
            dw[kh, kw] = np.einsum("nijgc,nijgf->fgc", xg, sl).reshape(Fg, C)
    db = dy.sum(axis=(0, 1, 2))
    return dx.reshape(N, H, W, C), dw, db
