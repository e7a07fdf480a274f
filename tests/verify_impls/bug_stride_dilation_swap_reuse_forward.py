"""conv2d backward that reuses its own single-channel correlation for dW, passing stride and dilation as is.

dW[f, c] is the correlation of x_pad[n, c] with dy[n, f] used as the kernel, but in that correlation
the roles swap: dy's taps are S apart (its dilation is the forward stride) and the windows move by D
(its stride is the forward dilation).
"""
import numpy as np

ENTRY = "conv_backward"
OP = "backward"
DIMS = 2
CHANNELS_LAST = False
PER_DIM = False
PADDING_FORMS = ("int",)
EXPECT = "stride_dilation_swap"
WHY = "dw[f, c] += corr2d(x_pad[n, c], dy[n, f], stride, dilation); it needs stride=dilation, dilation=stride"
WITNESS = dict(input_shape=(1, 2, 9, 9), weight_shape=(2, 2, 3, 3), stride=2, padding=0, dilation=1)
CLEAN = dict(input_shape=(2, 2, 7, 8), weight_shape=(3, 2, 2, 3), stride=2, padding=1, dilation=2)


def corr2d(image, kernel, stride=1, dilation=1):
    """Valid cross-correlation of one 2-D image with one 2-D kernel."""
    KH, KW = kernel.shape
    Ho = (image.shape[0] - dilation * (KH - 1) - 1) // stride + 1
    Wo = (image.shape[1] - dilation * (KW - 1) - 1) // stride + 1
    out = np.zeros((Ho, Wo))
    for i in range(KH):
        for j in range(KW):
            out += kernel[i, j] * image[i * dilation:i * dilation + stride * (Ho - 1) + 1:stride,
                                        j * dilation:j * dilation + stride * (Wo - 1) + 1:stride]
    return out


def conv_backward(dy, x, w, stride=1, padding=0, dilation=1):
    N, C, H, W = x.shape
    F, _, KH, KW = w.shape
    Ho, Wo = dy.shape[2:]
    s, p, d = stride, padding, dilation
    xp = np.pad(x, ((0, 0), (0, 0), (p, p), (p, p)))
    dw = np.zeros_like(w)
    for n in range(N):
        for f in range(F):
            for c in range(C):
                dw[f, c] += corr2d(xp[n, c], dy[n, f], stride=s, dilation=d)
    dxp = np.zeros_like(xp)
    for i in range(KH):
        for j in range(KW):
            rows, cols = slice(i * d, i * d + s * (Ho - 1) + 1, s), slice(j * d, j * d + s * (Wo - 1) + 1, s)
            dxp[:, :, rows, cols] += np.einsum("fc,nfhw->nchw", w[:, :, i, j], dy)
    return dxp[:, :, p:p + H, p:p + W], dw, dy.sum(axis=(0, 2, 3))
