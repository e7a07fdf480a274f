"""conv_transpose2d forward by scattering: every input pixel stamps its weighted kernel into the output."""
import numpy as np

ENTRY = "conv_transpose2d"
OP = "transposed_forward"
DIMS = 2
CHANNELS_LAST = False
PER_DIM = False
PADDING_FORMS = ("int",)
EXPECT = None
WHY = "correct: stamps at i*S with taps D apart, then crops P at the start; output_padding rows computed"


def conv_transpose2d(x, w, b, stride=1, padding=0, output_padding=0, groups=1, dilation=1):
    N, C, H, W = x.shape
    _, Fg, KH, KW = w.shape                       # PyTorch layout (C_in, C_out/groups, KH, KW)
    Cg, F = C // groups, Fg * groups
    s, p, d, a = stride, padding, dilation, output_padding
    H_out = (H - 1) * s - 2 * p + d * (KH - 1) + a + 1
    W_out = (W - 1) * s - 2 * p + d * (KW - 1) + a + 1
    full = np.zeros((N, F, H_out + 2 * p, W_out + 2 * p))   # before cropping the padding
    for n in range(N):
        for c in range(C):
            g = c // Cg
            for i in range(H):
                for j in range(W):
                    rows = slice(i * s, i * s + d * (KH - 1) + 1, d)
                    cols = slice(j * s, j * s + d * (KW - 1) + 1, d)
                    full[n, g * Fg:(g + 1) * Fg, rows, cols] += x[n, c, i, j] * w[c]
    y = full[:, :, p:p + H_out, p:p + W_out]
    return y + b[None, :, None, None]
