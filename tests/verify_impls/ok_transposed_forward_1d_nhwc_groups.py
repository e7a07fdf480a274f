"""Channels-last conv_transpose1d forward with groups, dilation and output_padding; weights (K, C_out/G, C_in)."""
import numpy as np

ENTRY = "conv1d_transpose"
OP = "transposed_forward"
DIMS = 1
CHANNELS_LAST = True
PER_DIM = False
PADDING_FORMS = ("int",)
EXPECT = None
WHY = "correct: tap k of input i lands at i*S + k*D in the uncropped output, then P is cropped at the start"


def conv1d_transpose(x, w, b, stride=1, padding=0, output_padding=0, groups=1, dilation=1):
    N, L, C = x.shape
    K, Fg, _ = w.shape
    G, s, d = groups, stride, dilation
    Cg, F = C // G, Fg * G
    L_out = (L - 1) * s - 2 * padding + d * (K - 1) + output_padding + 1
    full = np.zeros((N, L_out + 2 * padding, F))          # before cropping the padding
    xg = x.reshape(N, L, G, Cg)
    for k in range(K):
        wk = w[k].reshape(Fg, G, Cg)                       # (C_out/G, G, C_in/G)
        stamp = np.einsum("nlgc,fgc->nlgf", xg, wk).reshape(N, L, F)
        full[:, k * d:k * d + s * (L - 1) + 1:s, :] += stamp
    return full[:, padding:padding + L_out, :] + b
