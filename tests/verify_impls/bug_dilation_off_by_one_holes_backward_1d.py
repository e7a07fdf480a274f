"""conv1d backward where `dilation` is read as "the number of holes between taps" (spacing d + 1)."""
import numpy as np

ENTRY = "conv1d_backward"
OP = "backward"
DIMS = 1
CHANNELS_LAST = False
PER_DIM = False
PADDING_FORMS = ("int",)
EXPECT = "dilation_off_by_one"
WHY = "taps = np.arange(K) * (dilation + 1), and the output length from that: PyTorch's dilation d puts taps d apart"
WITNESS = dict(input_shape=(2, 2, 9), weight_shape=(2, 2, 3), stride=1, padding=1, dilation=2)
CLEAN = dict(input_shape=(2, 2, 7), weight_shape=(3, 2, 1), stride=2, padding=1, dilation=3)


def conv1d_backward(dy, x, w, stride=1, padding=0, dilation=1):
    N, C, L = x.shape
    F, _, K = w.shape
    taps = np.arange(K) * (dilation + 1)                # dilation = holes between neighbouring taps
    Lo = (L + 2 * padding - taps[-1] - 1) // stride + 1  # the output length, from the same idea
    xp = np.pad(x, ((0, 0), (0, 0), (padding, padding)))
    dxp = np.zeros_like(xp)
    dw = np.zeros_like(w)
    for i in range(Lo):
        pos = i * stride + taps
        dw += np.einsum("nf,nck->fck", dy[:, :, i], xp[:, :, pos])
        dxp[:, :, pos] += np.einsum("nf,fck->nck", dy[:, :, i], w)
    return dxp[:, :, padding:padding + L], dw, dy.sum(axis=(0, 2))
