"""conv3d forward (sliding_window_view) where the H axis's dilation is copied from the D axis."""
import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

ENTRY = "conv3d"
OP = "forward"
DIMS = 3
CHANNELS_LAST = False
PER_DIM = True
PADDING_FORMS = ("int",)
EXPECT = "per_axis"
WHY = "dd, dh, dw = d[0], d[0], d[2]: a copy-paste slip; tests with equal dilations never see it"
WITNESS = dict(input_shape=(1, 1, 5, 6, 5), weight_shape=(2, 1, 2, 3, 2), stride=(1, 1, 1), padding=(0, 1, 0), dilation=(1, 2, 1))
CLEAN = dict(input_shape=(2, 2, 6, 5, 4), weight_shape=(2, 2, 2, 2, 3), stride=(2, 1, 1), padding=(1, 0, 1), dilation=(2, 2, 1))


def conv3d(x, w, b, stride=1, padding=0, dilation=1):
    s, p, d = (np.broadcast_to(v, 3).tolist() for v in (stride, padding, dilation))
    dd, dh, dw = d[0], d[0], d[2]
    F, C, KD, KH, KW = w.shape
    k_eff = (dd * (KD - 1) + 1, dh * (KH - 1) + 1, dw * (KW - 1) + 1)
    xp = np.pad(x, [(0, 0), (0, 0)] + [(pi, pi) for pi in p])
    win = sliding_window_view(xp, k_eff, axis=(2, 3, 4))                # (N, C, ..., *k_eff)
    win = win[:, :, ::s[0], ::s[1], ::s[2], ::dd, ::dh, ::dw]          # (N, C, Do, Ho, Wo, KD, KH, KW)
    return np.einsum("ncxyzijk,fcijk->nfxyz", win, w) + b[None, :, None, None, None]
