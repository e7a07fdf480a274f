"""NHWC grouped conv1d backward whose input-channel offset of group g is g * F/G instead of g * C/G."""
import numpy as np

ENTRY = "conv1d_backward"
OP = "backward"
DIMS = 1
CHANNELS_LAST = True
PER_DIM = False
PADDING_FORMS = ("int",)
EXPECT = "groups"
WHY = "cin = slice(g * Fg, g * Fg + Cg): the output channels per group used for the input offset"
WITNESS = dict(input_shape=(2, 6, 4), weight_shape=(3, 2, 2), stride=1, padding=1, groups=2)
CLEAN = dict(input_shape=(2, 7, 4), weight_shape=(3, 2, 4), stride=2, padding=1, groups=2)


def conv1d_backward(dy, x, w, stride=1, padding=0, groups=1):
    N, L, C = x.shape
    K, Cg, F = w.shape                                  # (K, C_in/groups, C_out)
    Fg = F // groups
    Lo = dy.shape[1]
    xp = np.pad(x, ((0, 0), (padding, padding), (0, 0)))
    dxp = np.zeros_like(xp)
    dw = np.zeros_like(w)
    for g in range(groups):
        cout = slice(g * Fg, (g + 1) * Fg)
        cin = slice(g * Fg, g * Fg + Cg)
        for k in range(K):
            pos = slice(k, k + stride * (Lo - 1) + 1, stride)
            dw[k, :, cout] = np.einsum("nic,nif->cf", xp[:, pos, cin], dy[:, :, cout])
            dxp[:, pos, cin] += np.einsum("nif,cf->nic", dy[:, :, cout], w[k, :, cout])
    return dxp[:, padding:padding + L, :], dw, dy.sum(axis=(0, 1))
