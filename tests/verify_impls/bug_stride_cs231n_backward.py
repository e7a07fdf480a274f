"""CS231n conv_backward_naive whose windows start at i, not i*stride (the forward used the stride)."""
import numpy as np

ENTRY = "conv_backward"
OP = "backward"
DIMS = 2
CHANNELS_LAST = False
PER_DIM = False
PADDING_FORMS = ("int",)
EXPECT = "stride"
WHY = "conv_backward_naive slices x_pad[n, :, i:i+HH, j:j+WW]: the window of output (i, j) starts at i*stride"
WITNESS = dict(input_shape=(2, 2, 7, 7), weight_shape=(3, 2, 3, 3), stride=2, padding=1)
CLEAN = dict(input_shape=(2, 2, 7, 7), weight_shape=(3, 2, 3, 3), stride=1, padding=1)


def conv_backward_naive(dout, cache):
    x, w, b, conv_param = cache
    pad = conv_param["pad"]
    N, C, H, W = x.shape
    F, _, HH, WW = w.shape
    _, _, H_out, W_out = dout.shape
    x_pad = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)), mode="constant")
    dx_pad = np.zeros_like(x_pad)
    dw = np.zeros_like(w)
    db = np.sum(dout, axis=(0, 2, 3))
    for n in range(N):
        for f in range(F):
            for i in range(H_out):
                for j in range(W_out):
                    dw[f] += x_pad[n, :, i:i + HH, j:j + WW] * dout[n, f, i, j]
                    dx_pad[n, :, i:i + HH, j:j + WW] += w[f] * dout[n, f, i, j]
    dx = dx_pad[:, :, pad:pad + H, pad:pad + W]
    return dx, dw, db


def conv_backward(dy, x, w, stride=1, padding=0):
    """Adapter for convgrad.verify: build the cache the forward pass would have stored."""
    cache = (x, w, np.zeros(w.shape[0]), {"stride": stride, "pad": padding})
    return conv_backward_naive(dy, cache)
