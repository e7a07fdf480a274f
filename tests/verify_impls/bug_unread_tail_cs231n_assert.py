"""CS231n's fast conv backward (im2col.py's index helpers) with its `assert ... % stride == 0`.

The assignment's helper refuses every configuration with an unread tail: (H + 2P - K) not divisible
by the stride. PyTorch simply never reads those last rows, and their gradient is 0.
"""
import numpy as np

ENTRY = "conv_backward"
OP = "backward"
DIMS = 2
CHANNELS_LAST = False
PER_DIM = False
PADDING_FORMS = ("int",)
EXPECT = "unread_tail"
WHY = "get_im2col_indices asserts (H + 2P - K) % stride == 0: an AssertionError wherever a tail is left unread"
WITNESS = dict(input_shape=(1, 2, 6, 6), weight_shape=(2, 2, 3, 3), stride=2, padding=0)
CLEAN = dict(input_shape=(2, 2, 7, 5), weight_shape=(3, 2, 3, 3), stride=2, padding=1)


def get_im2col_indices(x_shape, field_height, field_width, padding=1, stride=1):
    N, C, H, W = x_shape
    assert (H + 2 * padding - field_height) % stride == 0
    assert (W + 2 * padding - field_width) % stride == 0
    out_height = (H + 2 * padding - field_height) // stride + 1
    out_width = (W + 2 * padding - field_width) // stride + 1
    i0 = np.tile(np.repeat(np.arange(field_height), field_width), C)
    i1 = stride * np.repeat(np.arange(out_height), out_width)
    j0 = np.tile(np.arange(field_width), field_height * C)
    j1 = stride * np.tile(np.arange(out_width), out_height)
    i = i0.reshape(-1, 1) + i1.reshape(1, -1)
    j = j0.reshape(-1, 1) + j1.reshape(1, -1)
    k = np.repeat(np.arange(C), field_height * field_width).reshape(-1, 1)
    return k, i, j


def conv_backward(dy, x, w, stride=1, padding=0):
    N, C, H, W = x.shape
    F, _, HH, WW = w.shape
    p = padding
    k, i, j = get_im2col_indices(x.shape, HH, WW, p, stride)
    x_padded = np.pad(x, ((0, 0), (0, 0), (p, p), (p, p)))
    x_cols = x_padded[:, k, i, j].transpose(1, 2, 0).reshape(C * HH * WW, -1)     # (C*HH*WW, Ho*Wo*N)
    dout = dy.transpose(1, 2, 3, 0).reshape(F, -1)                                 # (F, Ho*Wo*N)
    dw = (dout @ x_cols.T).reshape(w.shape)
    db = dy.sum(axis=(0, 2, 3))
    dx_cols = (w.reshape(F, -1).T @ dout).reshape(C * HH * WW, -1, N).transpose(2, 0, 1)
    dx_padded = np.zeros_like(x_padded)
    np.add.at(dx_padded, (slice(None), k, i, j), dx_cols)
    return dx_padded[:, :, p:p + H, p:p + W], dw, db
