"""conv_transpose2d backward that drops dy's output_padding rows first ("they are only padding")."""
import numpy as np

ENTRY = "conv_transpose2d_backward"
OP = "transposed_backward"
DIMS = 2
CHANNELS_LAST = False
PER_DIM = False
PADDING_FORMS = ("int",)
EXPECT = "output_padding"
WHY = "dy[:, :, :H_out - a, :W_out - a]: the output_padding rows were computed, so their gradient flows back"
WITNESS = dict(input_shape=(1, 2, 3, 3), weight_shape=(2, 2, 3, 3), stride=2, padding=1, output_padding=1)
CLEAN = dict(input_shape=(2, 2, 3, 4), weight_shape=(2, 3, 3, 2), stride=2, padding=0, output_padding=1, dilation=2)


def conv_transpose2d_backward(dy, x, w, stride=1, padding=0, output_padding=0, dilation=1):
    a, s, p, d = output_padding, stride, padding, dilation
    db = dy.sum(axis=(0, 2, 3))
    dy = dy[:, :, :dy.shape[2] - a, :dy.shape[3] - a]      # strip the output_padding rows and columns
    N, C, H, W = x.shape
    _, F, KH, KW = w.shape
    dyp = np.pad(dy, ((0, 0), (0, 0), (p, p + a), (p, p + a)))   # (and keep the sizes the loops expect)
    dx = np.zeros_like(x)
    dw = np.zeros_like(w)
    for i in range(KH):
        for j in range(KW):
            window = dyp[:, :, i * d:i * d + s * (H - 1) + 1:s, j * d:j * d + s * (W - 1) + 1:s]   # (N, F, H, W)
            dx += np.einsum("nfhv,cf->nchv", window, w[:, :, i, j])
            dw[:, :, i, j] = np.einsum("nchv,nfhv->cf", x, window)
    return dx, dw, db
