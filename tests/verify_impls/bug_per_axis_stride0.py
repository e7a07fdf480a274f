"""conv2d backward with per-axis parameters where the column stride reads stride[0] (a copy-paste slip)."""
import numpy as np

ENTRY = "conv_backward"
OP = "backward"
DIMS = 2
CHANNELS_LAST = False
PER_DIM = True
PADDING_FORMS = ("int",)
EXPECT = "per_axis"
WHY = "sh, sw = stride[0], stride[0]: the W axis uses the H axis's stride; square strides hide it"
WITNESS = dict(input_shape=(1, 2, 5, 7), weight_shape=(2, 2, 3, 3), stride=(1, 2), padding=(1, 1))
CLEAN = dict(input_shape=(2, 2, 7, 6), weight_shape=(3, 2, 3, 2), stride=(2, 2), padding=(1, 0))


def pair(v):
    return (v, v) if isinstance(v, int) else tuple(v)


def conv_backward(dy, x, w, stride=1, padding=0):
    stride, padding = pair(stride), pair(padding)
    sh, sw = stride[0], stride[0]
    ph, pw = padding
    N, C, H, W = x.shape
    F, _, KH, KW = w.shape
    Ho, Wo = dy.shape[2:]
    xp = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    dxp = np.zeros_like(xp)
    dw = np.zeros_like(w)
    for i in range(Ho):
        for j in range(Wo):
            rows, cols = slice(i * sh, i * sh + KH), slice(j * sw, j * sw + KW)
            dw += np.einsum("nf,nckl->fckl", dy[:, :, i, j], xp[:, :, rows, cols])
            dxp[:, :, rows, cols] += np.einsum("nf,fckl->nckl", dy[:, :, i, j], w)
    return dxp[:, :, ph:ph + H, pw:pw + W], dw, dy.sum(axis=(0, 2, 3))
