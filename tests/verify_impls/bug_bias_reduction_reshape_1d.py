"""im2col conv1d backward whose db sums dy.reshape(F, -1): batch and channel axes get mixed.

dW needed dy.transpose(1, 0, 2).reshape(F, -1) and has it; db reuses a bare reshape, which groups
dy's elements by memory order, not by output channel, as soon as the batch has more than one sample.
"""
import numpy as np

ENTRY = "conv1d_backward"
OP = "backward"
DIMS = 1
CHANNELS_LAST = False
PER_DIM = False
PADDING_FORMS = ("int",)
EXPECT = "bias_reduction"
WHY = "db = dy.reshape(F, -1).sum(axis=1) sums the wrong elements when N > 1 (a transpose was needed)"
WITNESS = dict(input_shape=(2, 2, 6), weight_shape=(3, 2, 3), stride=1, padding=1)
CLEAN = dict(input_shape=(1, 2, 7), weight_shape=(3, 2, 3), stride=2, padding=1)


def conv1d_backward(dy, x, w, stride=1, padding=0):
    N, C, L = x.shape
    F, _, K = w.shape
    Lo = dy.shape[2]
    xp = np.pad(x, ((0, 0), (0, 0), (padding, padding)))
    idx = np.arange(K)[:, None] + stride * np.arange(Lo)[None, :]          # (K, Lo)
    x_cols = xp[:, :, idx].transpose(1, 2, 0, 3).reshape(C * K, N * Lo)   # (C*K, N*Lo)
    dy_mat = dy.transpose(1, 0, 2).reshape(F, N * Lo)                      # (F, N*Lo)
    dw = (dy_mat @ x_cols.T).reshape(F, C, K)
    db = dy.reshape(F, -1).sum(axis=1)
    dx_cols = (w.reshape(F, C * K).T @ dy_mat).reshape(C, K, N, Lo)
    dxp = np.zeros_like(xp)
    for k in range(K):
        dxp[:, :, k:k + stride * (Lo - 1) + 1:stride] += dx_cols[:, k].transpose(1, 0, 2)
    return dxp[:, :, padding:padding + L], dw, db
