"""A channels-last Conv1D layer that resets its gradient buffers inside the per-sample loop."""
import numpy as np

ENTRY = "conv1d_backward"
OP = "backward"
DIMS = 1
CHANNELS_LAST = True
PER_DIM = False
PADDING_FORMS = ("int",)
EXPECT = "batch_sum"
WHY = "self.dw / self.db zeroed at the top of `for n in range(N)`: they hold the last sample only"
WITNESS = dict(input_shape=(3, 6, 2), weight_shape=(3, 2, 2), stride=1, padding=1, dilation=1)
CLEAN = dict(input_shape=(1, 8, 2), weight_shape=(2, 2, 3), stride=2, padding=1, dilation=2)


class Conv1D:
    def __init__(self, w, stride=1, padding=0, dilation=1):
        self.w, self.stride, self.padding, self.dilation = w, stride, padding, dilation

    def forward(self, x):
        self.x = x
        return None  # (the forward pass is not needed to check the gradients)

    def backward(self, dy):
        x, w, s, p, d = self.x, self.w, self.stride, self.padding, self.dilation
        N, L, C = x.shape
        K = w.shape[0]
        xp = np.pad(x, ((0, 0), (p, p), (0, 0)))
        dxp = np.zeros_like(xp)
        for n in range(N):
            self.dw = np.zeros_like(w)
            self.db = np.zeros(w.shape[2])
            for i in range(dy.shape[1]):
                pos = i * s + d * np.arange(K)                   # positions output i reads
                self.dw += xp[n, pos, :, None] * dy[n, i][None, None, :]
                self.db += dy[n, i]
                dxp[n, pos, :] += w @ dy[n, i]                   # (K, C, F) @ (F,) -> (K, C)
        return dxp[:, p:p + L, :]


def conv1d_backward(dy, x, w, stride=1, padding=0, dilation=1):
    layer = Conv1D(w, stride, padding, dilation)
    layer.forward(x)
    dx = layer.backward(dy)
    return dx, layer.dw, layer.db
