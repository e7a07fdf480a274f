"""numpy-ml-style conv1d backward: (N, L, C) signals, (K, C_in, C_out) weights, a loop over outputs."""
import numpy as np

ENTRY = "conv1d_backward"
OP = "backward"
DIMS = 1
CHANNELS_LAST = True
PER_DIM = False
PADDING_FORMS = ("int", "same")
EXPECT = None
WHY = "correct: each output adds its window's products into dw and dx; 'same' puts the odd pad pixel last"


def conv1d_backward(dy, x, w, stride=1, padding=0, dilation=1):
    N, L, C = x.shape
    K, _, F = w.shape
    L_out = dy.shape[1]
    if padding == "same":                           # TensorFlow's rule: the odd pixel at the end
        total = max((L_out - 1) * stride + dilation * (K - 1) + 1 - L, 0)
        lo, hi = total // 2, total - total // 2
    else:
        lo = hi = padding
    xp = np.pad(x, ((0, 0), (lo, hi), (0, 0)))
    dxp = np.zeros_like(xp)
    dw = np.zeros_like(w)
    taps = np.arange(K) * dilation
    for i in range(L_out):
        pos = i * stride + taps                     # the K input positions output i reads
        window = xp[:, pos, :]                      # (N, K, C)
        dw += np.einsum("nkc,nf->kcf", window, dy[:, i, :])
        dxp[:, pos, :] += np.einsum("kcf,nf->nkc", w, dy[:, i, :])
    dx = dxp[:, lo:lo + L, :]
    db = dy.sum(axis=(0, 1))
    return dx, dw, db
