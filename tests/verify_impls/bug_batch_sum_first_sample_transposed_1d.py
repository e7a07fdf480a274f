"""NHWC conv_transpose1d backward whose dw is computed from the first sample only (tested at batch 1)."""
import numpy as np

ENTRY = "conv_transpose1d_backward"
OP = "transposed_backward"
DIMS = 1
CHANNELS_LAST = True
PER_DIM = False
PADDING_FORMS = ("int",)
EXPECT = "batch_sum"
WHY = "dw = einsum(x[0], dy_windows[0]): the batch axis indexed at 0 instead of summed"
WITNESS = dict(input_shape=(2, 4, 2), weight_shape=(3, 2, 2), stride=2, padding=1)
CLEAN = dict(input_shape=(1, 5, 2), weight_shape=(2, 3, 2), stride=1, padding=0)


def conv_transpose1d_backward(dy, x, w, stride=1, padding=0):
    N, L, C = x.shape
    K, F, _ = w.shape                                     # (K, C_out, C_in)
    dyp = np.pad(dy, ((0, 0), (padding, padding), (0, 0)))
    idx = np.arange(L)[:, None] * stride + np.arange(K)[None, :]     # (L, K): where x[:, i] was stamped
    windows = dyp[:, idx, :]                              # (N, L, K, F)
    dx = np.einsum("nikf,kfc->nic", windows, w)
    dw = np.einsum("ic,ikf->kfc", x[0], windows[0])
    return dx, dw, dy.sum(axis=(0, 1))
