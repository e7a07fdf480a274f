"""conv3d forward with sliding_window_view: per-dim stride, padding, dilation, and groups."""
import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

ENTRY = "conv3d"
OP = "forward"
DIMS = 3
CHANNELS_LAST = False
PER_DIM = True
PADDING_FORMS = ("int",)
EXPECT = None
WHY = "correct: windows of the dilated extent, subsampled by the stride, then every D-th tap"


def conv3d(x, w, stride=1, padding=0, dilation=1, groups=1):
    s, p, d = (np.broadcast_to(v, 3).tolist() for v in (stride, padding, dilation))
    N, C = x.shape[:2]
    F, Cg, *k = w.shape
    k_eff = [di * (ki - 1) + 1 for di, ki in zip(d, k)]
    xp = np.pad(x, [(0, 0), (0, 0)] + [(pi, pi) for pi in p])
    win = sliding_window_view(xp, k_eff, axis=(2, 3, 4))   # (N, C, *(padded - k_eff + 1), *k_eff)
    win = win[:, :, ::s[0], ::s[1], ::s[2], ::d[0], ::d[1], ::d[2]]   # (N, C, Do, Ho, Wo, KD, KH, KW)
    win = win.reshape(N, groups, Cg, *win.shape[2:])        # (N, G, C/G, Do, Ho, Wo, KD, KH, KW)
    wg = w.reshape(groups, F // groups, Cg, *k)
    y = np.einsum("ngcxyzijk,gfcijk->ngfxyz", win, wg)      # (N, G, F/G, Do, Ho, Wo)
    return y.reshape(N, F, *y.shape[3:])
