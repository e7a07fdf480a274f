"""conv2d forward with groups where output channel f belongs to group f % G and reads channels g::G.

PyTorch's groups are contiguous blocks: group g is input channels g*C/G ... (g+1)*C/G - 1 and output
channels g*F/G ... (g+1)*F/G - 1.
"""
import numpy as np

ENTRY = "grouped_conv2d"
OP = "forward"
DIMS = 2
CHANNELS_LAST = False
PER_DIM = False
PADDING_FORMS = ("int",)
EXPECT = "groups"
WHY = "channel-to-group map interleaved (f % G, x[:, g::G]) instead of contiguous blocks"
WITNESS = dict(input_shape=(1, 4, 5, 5), weight_shape=(4, 2, 3, 3), stride=1, groups=2)
CLEAN = dict(input_shape=(2, 3, 6, 5), weight_shape=(2, 3, 3, 2), stride=2, groups=1)


def grouped_conv2d(x, w, b, stride=1, groups=1):
    N, C, H, W = x.shape
    F, Cg, KH, KW = w.shape
    Ho, Wo = (H - KH) // stride + 1, (W - KW) // stride + 1
    y = np.zeros((N, F, Ho, Wo))
    for f in range(F):
        g = f % groups
        xg = x[:, g::groups]                                  # (N, C/G, H, W): this group's inputs
        for i in range(Ho):
            for j in range(Wo):
                patch = xg[:, :, i * stride:i * stride + KH, j * stride:j * stride + KW]
                y[:, f, i, j] = np.einsum("nckl,ckl->n", patch, w[f]) + b[f]
    return y
