"""conv_transpose1d forward that appends output_padding ZEROS instead of computing those positions."""
import numpy as np

ENTRY = "conv_transpose1d"
OP = "transposed_forward"
DIMS = 1
CHANNELS_LAST = False
PER_DIM = False
PADDING_FORMS = ("int",)
EXPECT = "output_padding"
WHY = "y = np.pad(full[P:-P], (0, output_padding)): the extra positions are the next rows of the full output"
WITNESS = dict(input_shape=(1, 2, 4), weight_shape=(2, 3, 3), stride=2, padding=1, output_padding=1)
CLEAN = dict(input_shape=(2, 2, 4), weight_shape=(2, 3, 3), stride=2, padding=0, output_padding=1)


def conv_transpose1d(x, w, b, stride=1, padding=0, output_padding=0):
    N, C, L = x.shape
    _, F, K = w.shape                              # (C_in, C_out, K)
    full = np.zeros((N, F, (L - 1) * stride + K))
    for i in range(L):
        full[:, :, i * stride:i * stride + K] += np.einsum("nc,cfk->nfk", x[:, :, i], w)
    y = full[:, :, padding:full.shape[2] - padding]
    y = np.pad(y, ((0, 0), (0, 0), (0, output_padding)))   # output_padding: a few more rows
    return y + b[None, :, None]
