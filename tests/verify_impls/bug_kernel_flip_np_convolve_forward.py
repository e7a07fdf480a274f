"""conv1d forward built on np.convolve, which is a true convolution: it flips the kernel.

Deep-learning "convolution" is a cross-correlation. The user's own finite-difference check passes
(the code is self-consistent), yet every output differs from PyTorch's unless the kernel is a palindrome.
"""
import numpy as np

ENTRY = "conv1d"
OP = "forward"
DIMS = 1
CHANNELS_LAST = False
PER_DIM = False
PADDING_FORMS = ("int",)
EXPECT = "kernel_flip"
WHY = "np.convolve(x, w, 'valid') reverses w: the forward computes a true convolution"
WITNESS = dict(input_shape=(2, 2, 7), weight_shape=(3, 2, 3), stride=1, padding=1)
CLEAN = dict(input_shape=(2, 2, 7), weight_shape=(3, 2, 1), stride=2, padding=1)


def conv1d(x, w, b, stride=1, padding=0):
    N, C, L = x.shape
    F, _, K = w.shape
    xp = np.pad(x, ((0, 0), (0, 0), (padding, padding)))
    L_out = (L + 2 * padding - K) // stride + 1
    y = np.zeros((N, F, L_out))
    for n in range(N):
        for f in range(F):
            acc = sum(np.convolve(xp[n, c], w[f, c], mode="valid") for c in range(C))
            y[n, f] = acc[::stride] + b[f]
    return y
