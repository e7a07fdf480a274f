"""An im2col conv2d forward whose helper only knows stride 1 and raises deep inside at stride > 1."""
import numpy as np

ENTRY = "conv2d"
OP = "forward"
DIMS = 2
CHANNELS_LAST = False
PER_DIM = False
PADDING_FORMS = ("int",)
EXPECT = "error"
WHY = "_window_starts raises ValueError for stride > 1 (three calls deep); verify must report it, not crash"
WITNESS = dict(input_shape=(1, 1, 5, 5), weight_shape=(1, 1, 3, 3), stride=2, padding=0)
CLEAN = dict(input_shape=(2, 2, 5, 6), weight_shape=(3, 2, 3, 2), stride=1, padding=1)


def _window_starts(size, k, stride):
    if stride != 1:
        raise ValueError(f"strided windows are not implemented yet (stride={stride})")
    return np.arange(size - k + 1)


def _im2col(xp, KH, KW, stride):
    rows = _window_starts(xp.shape[2], KH, stride)
    cols = _window_starts(xp.shape[3], KW, stride)
    r = rows[:, None, None, None] + np.arange(KH)[None, None, :, None]     # (Ho, 1, KH, 1)
    c = cols[None, :, None, None] + np.arange(KW)[None, None, None, :]     # (1, Wo, 1, KW)
    return xp[:, :, r, c]                                                   # (N, C, Ho, Wo, KH, KW)


def conv2d(x, w, b, stride=1, padding=0):
    xp = np.pad(x, ((0, 0), (0, 0), (padding, padding), (padding, padding)))
    cols = _im2col(xp, w.shape[2], w.shape[3], stride)
    return np.einsum("nchwkl,fckl->nfhw", cols, w) + b[None, :, None, None]
