"""NHWC conv1d backward whose db line was copied from channels-first code: dy.sum(axis=(0, 2)).

On (N, L_out, C_out) data that sums over batch and CHANNELS, leaving one value per position: a
wrong shape, or (when L_out == C_out) the right shape with the wrong numbers.
"""
import numpy as np

ENTRY = "conv1d_backward"
OP = "backward"
DIMS = 1
CHANNELS_LAST = True
PER_DIM = False
PADDING_FORMS = ("int",)
EXPECT = "bias_reduction"
WHY = "db = dy.sum(axis=(0, 2)) is the NCL reduction; for NLC data it is dy.sum(axis=(0, 1))"
WITNESS = dict(input_shape=(2, 5, 2), weight_shape=(3, 2, 3), stride=1, padding=0)
CLEAN = dict(input_shape=(2, 3, 2), weight_shape=(3, 2, 1), stride=2, padding=0)


def conv1d_backward(dy, x, w, stride=1, padding=0):
    N, L, C = x.shape
    K, _, F = w.shape
    Lo = dy.shape[1]
    xp = np.pad(x, ((0, 0), (padding, padding), (0, 0)))
    dxp = np.zeros_like(xp)
    dw = np.zeros_like(w)
    for k in range(K):
        rows = slice(k, k + stride * (Lo - 1) + 1, stride)
        dw[k] = np.einsum("nlc,nlf->cf", xp[:, rows], dy)
        dxp[:, rows] += dy @ w[k].T                        # (N, Lo, F) @ (F, C)
    db = dy.sum(axis=(0, 2))
    return dxp[:, padding:padding + L], dw, db
