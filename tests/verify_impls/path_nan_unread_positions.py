"""conv1d backward that gathers dx per input position and leaves NaN where no window reads it.

The user filled dx with NaN "to see which positions are never written"; the correct gradient of a
position no output reads (holes when S > K_eff, the unread tail) is 0, not NaN.
"""
import numpy as np

ENTRY = "conv1d_backward"
OP = "backward"
DIMS = 1
CHANNELS_LAST = False
PER_DIM = False
PADDING_FORMS = ("int",)
EXPECT = "nan"
WHY = "dx = np.full(..., np.nan) and only positions with contributing outputs are assigned"
WITNESS = dict(input_shape=(1, 1, 7), weight_shape=(1, 1, 1), stride=3, padding=0)
CLEAN = dict(input_shape=(2, 2, 6), weight_shape=(3, 2, 3), stride=1, padding=1)


def conv1d_backward(dy, x, w, stride=1, padding=0):
    N, C, L = x.shape
    F, _, K = w.shape
    Lo = dy.shape[2]
    dx = np.full(x.shape, np.nan)
    for h in range(L):
        terms = [(i, k) for i in range(Lo) for k in range(K) if i * stride + k - padding == h]
        if terms:  # positions nobody reads stay NaN
            dx[:, :, h] = sum(np.einsum("nf,fc->nc", dy[:, :, i], w[:, :, k]) for i, k in terms)
    xp = np.pad(x, ((0, 0), (0, 0), (padding, padding)))
    idx = np.arange(Lo)[:, None] * stride + np.arange(K)[None, :]       # (Lo, K)
    dw = np.einsum("nfi,ncik->fck", dy, xp[:, :, idx])
    return dx, dw, dy.sum(axis=(0, 2))
