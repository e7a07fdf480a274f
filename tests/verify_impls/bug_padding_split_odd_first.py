"""conv2d forward with TensorFlow's padding='same' whose odd padding pixel goes first (top/left)."""
import numpy as np

ENTRY = "conv2d"
OP = "forward"
DIMS = 2
CHANNELS_LAST = False
PER_DIM = False
PADDING_FORMS = ("same",)
EXPECT = "padding_split"
WHY = "'same' pads ceil(total/2) before and floor(total/2) after; TF/JAX put the odd pixel at the end"
WITNESS = dict(input_shape=(1, 2, 6, 6), weight_shape=(2, 2, 4, 4), stride=1, padding="same")
CLEAN = dict(input_shape=(2, 2, 6, 7), weight_shape=(3, 2, 3, 3), stride=1, padding="same")


def same_padding(size, k, stride):
    out = -(-size // stride)
    total = max((out - 1) * stride + k - size, 0)
    before = (total + 1) // 2
    return before, total - before


def conv2d(x, w, stride=1, padding="same"):
    F, C, KH, KW = w.shape
    N, _, H, W = x.shape
    (t, b), (l, r) = same_padding(H, KH, stride), same_padding(W, KW, stride)
    xp = np.pad(x, ((0, 0), (0, 0), (t, b), (l, r)))
    Ho, Wo = (xp.shape[2] - KH) // stride + 1, (xp.shape[3] - KW) // stride + 1
    y = np.zeros((N, F, Ho, Wo))
    for i in range(Ho):
        for j in range(Wo):
            patch = xp[:, :, i * stride:i * stride + KH, j * stride:j * stride + KW]
            y[:, :, i, j] = np.einsum("nckl,fckl->nf", patch, w)
    return y
