"""A conv1d backward that spins forever at stride 3 (an unfinished branch), correct otherwise."""
import numpy as np

ENTRY = "conv1d_backward"
OP = "backward"
DIMS = 1
CHANNELS_LAST = False
PER_DIM = False
PADDING_FORMS = ("int",)
EXPECT = "timeout"
WHY = "`while True: pass` when stride == 3; verify must stop it at time_limit and say so"
WITNESS = dict(input_shape=(1, 1, 7), weight_shape=(1, 1, 3), stride=3, padding=0)
CLEAN = dict(input_shape=(2, 2, 7), weight_shape=(3, 2, 3), stride=2, padding=1)


def conv1d_backward(dy, x, w, stride=1, padding=0):
    if stride == 3:
        while True:  # TODO: stride 3 needs a different window table
            pass
    N, C, L = x.shape
    F, _, K = w.shape
    Lo = dy.shape[2]
    xp = np.pad(x, ((0, 0), (0, 0), (padding, padding)))
    dxp = np.zeros_like(xp)
    dw = np.zeros_like(w)
    for k in range(K):
        sl = slice(k, k + stride * (Lo - 1) + 1, stride)
        dw[:, :, k] = np.einsum("nfi,nci->fc", dy, xp[:, :, sl])
        dxp[:, :, sl] += np.einsum("fc,nfi->nci", w[:, :, k], dy)
    return dxp[:, :, padding:padding + L], dw, dy.sum(axis=(0, 2))
