"""conv2d forward through the FFT: correct, but every value carries a little floating-point roundoff.

A cross-correlation is a convolution with the flipped kernel; the FFT computes the full linear
convolution, of which the 'valid' part, subsampled by the stride, is the output. The results differ
from a direct sum in the last few bits (about 1e-15 relative): a checker needs a tolerance.
"""
import numpy as np

ENTRY = "conv2d_fft"
OP = "forward"
DIMS = 2
CHANNELS_LAST = False
PER_DIM = False
PADDING_FORMS = ("int",)
EXPECT = None
WHY = "correct: rfft2 of the padded input times rfft2 of the flipped kernel, valid part, every S-th row"


def conv2d_fft(x, w, b, stride=1, padding=0):
    p = padding
    xp = np.pad(x, ((0, 0), (0, 0), (p, p), (p, p)))
    F, C, KH, KW = w.shape
    Hp, Wp = xp.shape[2:]
    size = (Hp + KH - 1, Wp + KW - 1)                           # the full linear convolution
    X = np.fft.rfft2(xp, s=size)                                # (N, C, Hf, Wf//2 + 1)
    K = np.fft.rfft2(w[:, :, ::-1, ::-1], s=size)               # (F, C, Hf, Wf//2 + 1)
    full = np.fft.irfft2(np.einsum("nchw,fchw->nfhw", X, K), s=size)
    valid = full[:, :, KH - 1:Hp, KW - 1:Wp]                    # (N, F, Hp-KH+1, Wp-KW+1)
    return valid[:, :, ::stride, ::stride] + b[None, :, None, None]
