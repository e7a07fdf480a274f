"""A first conv1d forward: plain loops, one output element at a time (channels first, with bias)."""
import numpy as np

ENTRY = "conv1d"
OP = "forward"
DIMS = 1
CHANNELS_LAST = False
PER_DIM = False
PADDING_FORMS = ("int",)
EXPECT = None
WHY = "correct: direct loops over batch, output channel, position, input channel and tap"


def conv1d(x, w, b, stride=1, padding=0, dilation=1, groups=1):
    N, C, L = x.shape
    F, C_per_group, K = w.shape
    F_per_group = F // groups
    L_out = (L + 2 * padding - dilation * (K - 1) - 1) // stride + 1
    y = np.zeros((N, F, L_out))
    for n in range(N):
        for f in range(F):
            g = f // F_per_group  # the group of output channel f reads input channels g*C_per_group...
            for i in range(L_out):
                total = b[f]
                for c in range(C_per_group):
                    for k in range(K):
                        pos = i * stride + k * dilation - padding
                        if 0 <= pos < L:  # outside the input is the zero padding
                            total += w[f, c, k] * x[n, g * C_per_group + c, pos]
                y[n, f, i] = total
    return y
