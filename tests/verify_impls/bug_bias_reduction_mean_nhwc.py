"""A channels-last Conv2D layer whose backward takes db as the MEAN of dy (a loss-averaging habit)."""
import numpy as np

ENTRY = "conv2d_backward"
OP = "backward"
DIMS = 2
CHANNELS_LAST = True
PER_DIM = False
PADDING_FORMS = ("int",)
EXPECT = "bias_reduction"
WHY = "db = dy.mean(axis=(0, 1, 2)): the bias gradient is the SUM over batch and positions"
WITNESS = dict(input_shape=(2, 5, 5, 2), weight_shape=(3, 3, 2, 3), stride=1, padding=0)
CLEAN = dict(input_shape=(1, 3, 2, 2), weight_shape=(3, 2, 2, 3), stride=2, padding=0)


class Conv2D:
    def __init__(self, w, stride, padding):
        self.w, self.stride, self.padding = w, stride, padding

    def forward(self, x):
        p, s = self.padding, self.stride
        self.xp = np.pad(x, ((0, 0), (p, p), (p, p), (0, 0)))
        KH, KW, _, _ = self.w.shape
        Ho, Wo = (self.xp.shape[1] - KH) // s + 1, (self.xp.shape[2] - KW) // s + 1
        self.cols = np.stack([np.stack([self.xp[:, i:i + s * (Ho - 1) + 1:s, j:j + s * (Wo - 1) + 1:s]
                                        for j in range(KW)], axis=3) for i in range(KH)], axis=3)
        return np.einsum("nhwklc,klcf->nhwf", self.cols, self.w)   # cols (N, Ho, Wo, KH, KW, C)

    def backward(self, dy):
        p, s = self.padding, self.stride
        KH, KW, _, _ = self.w.shape
        Ho, Wo = dy.shape[1:3]
        self.dw = np.einsum("nhwklc,nhwf->klcf", self.cols, dy)
        self.db = dy.mean(axis=(0, 1, 2))
        dcols = np.einsum("klcf,nhwf->nhwklc", self.w, dy)
        dxp = np.zeros_like(self.xp)
        for i in range(KH):
            for j in range(KW):
                dxp[:, i:i + s * (Ho - 1) + 1:s, j:j + s * (Wo - 1) + 1:s] += dcols[:, :, :, i, j]
        return dxp[:, p:dxp.shape[1] - p, p:dxp.shape[2] - p]


def conv2d_backward(dy, x, w, stride=1, padding=0):
    layer = Conv2D(w, stride, padding)
    layer.forward(x)
    dx = layer.backward(dy)
    return dx, layer.dw, layer.db
