"""conv1d backward with dw written as a correlation of x with dy, stride and dilation exchanged wrongly.

dW[f, c, k] = sum_n sum_i dy[n, f, i] * x_pad[n, c, i*S + k*D]: dy acts as a kernel whose taps are
S apart, and the "output" positions k are D apart. This code reads x_pad[n, c, k*S + i*D] instead.
"""
import numpy as np

ENTRY = "conv1d_backward"
OP = "backward"
DIMS = 1
CHANNELS_LAST = False
PER_DIM = False
PADDING_FORMS = ("int",)
EXPECT = "stride_dilation_swap"
WHY = "dw[:, :, k] reads x_pad[k*S : k*S + D*(Lo-1) + 1 : D]; it should be x_pad[k*D : k*D + S*(Lo-1) + 1 : S]"
WITNESS = dict(input_shape=(2, 2, 9), weight_shape=(2, 2, 3), stride=2, padding=0, dilation=1)
CLEAN = dict(input_shape=(2, 2, 10), weight_shape=(3, 2, 3), stride=2, padding=1, dilation=2)


def conv1d_backward(dy, x, w, stride=1, padding=0, dilation=1):
    N, C, L = x.shape
    F, _, K = w.shape
    Lo = dy.shape[2]
    S, P, D = stride, padding, dilation
    xp = np.pad(x, ((0, 0), (0, 0), (P, P)))
    dw = np.zeros_like(w)
    for k in range(K):                      # dW = corr(x, dy): dy "dilated by D", window stride S
        dw[:, :, k] = np.einsum("nfi,nci->fc", dy, xp[:, :, k * S:k * S + D * (Lo - 1) + 1:D])
    dxp = np.zeros_like(xp)
    for k in range(K):                      # dx: the taps scatter back, as in the forward
        dxp[:, :, k * D:k * D + S * (Lo - 1) + 1:S] += np.einsum("fc,nfi->nci", w[:, :, k], dy)
    return dxp[:, :, P:P + L], dw, dy.sum(axis=(0, 2))
