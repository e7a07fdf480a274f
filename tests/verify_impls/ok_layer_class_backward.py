"""A Conv2D layer class (forward caches, backward returns dx and stores dw, db), with groups."""
import numpy as np

ENTRY = "conv_backward"
OP = "backward"
DIMS = 2
CHANNELS_LAST = False
PER_DIM = False
PADDING_FORMS = ("int",)
EXPECT = None
WHY = "correct: im2col by a loop over kernel taps with strided slices, groups by reshaping channels"


class Conv2D:
    def __init__(self, w, b, stride=1, padding=0, groups=1):
        self.w, self.b, self.stride, self.padding, self.groups = w, b, stride, padding, groups

    def forward(self, x):
        s, p, G = self.stride, self.padding, self.groups
        self.x_shape = x.shape
        xp = np.pad(x, ((0, 0), (0, 0), (p, p), (p, p)))
        N, C, Hp, Wp = xp.shape
        F, Cg, KH, KW = self.w.shape
        Ho, Wo = (Hp - KH) // s + 1, (Wp - KW) // s + 1
        cols = np.empty((N, C, KH, KW, Ho, Wo))
        for i in range(KH):
            for j in range(KW):
                cols[:, :, i, j] = xp[:, :, i:i + s * (Ho - 1) + 1:s, j:j + s * (Wo - 1) + 1:s]
        self.cols = cols.reshape(N, G, Cg, KH, KW, Ho, Wo)
        wg = self.w.reshape(G, F // G, Cg, KH, KW)
        y = np.einsum("ngcklij,gfckl->ngfij", self.cols, wg)        # (N, G, F/G, Ho, Wo)
        return y.reshape(N, F, Ho, Wo) + self.b[None, :, None, None]

    def backward(self, dout):
        s, p, G = self.stride, self.padding, self.groups
        N, C, H, W = self.x_shape
        F, Cg, KH, KW = self.w.shape
        Ho, Wo = dout.shape[2:]
        dy = dout.reshape(N, G, F // G, Ho, Wo)
        self.dw = np.einsum("ngcklij,ngfij->gfckl", self.cols, dy).reshape(F, Cg, KH, KW)
        self.db = dout.sum(axis=(0, 2, 3))
        wg = self.w.reshape(G, F // G, Cg, KH, KW)
        dcols = np.einsum("gfckl,ngfij->ngcklij", wg, dy).reshape(N, C, KH, KW, Ho, Wo)
        dxp = np.zeros((N, C, H + 2 * p, W + 2 * p))
        for i in range(KH):
            for j in range(KW):
                dxp[:, :, i:i + s * (Ho - 1) + 1:s, j:j + s * (Wo - 1) + 1:s] += dcols[:, :, i, j]
        return dxp[:, :, p:p + H, p:p + W]


def conv_backward(dy, x, w, stride=1, padding=0, groups=1):
    """Adapter: run the layer forward on x, then backward on dy."""
    layer = Conv2D(w, np.zeros(w.shape[0]), stride, padding, groups)
    layer.forward(x)
    dx = layer.backward(dy)
    return dx, layer.dw, layer.db
