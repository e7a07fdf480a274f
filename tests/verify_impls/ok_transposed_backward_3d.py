"""Backward of conv_transpose3d: per-tap gathers from the padded dy; per-dim parameters and groups."""
import numpy as np

ENTRY = "conv_transpose3d_backward"
OP = "transposed_backward"
DIMS = 3
CHANNELS_LAST = False
PER_DIM = True
PADDING_FORMS = ("int",)
EXPECT = None
WHY = "correct: dx[n,c,h] and dw[c,f,k] both read dy_pad[n, f, h*S + k*D] within c's group"


def conv_transpose3d_backward(dy, x, w, stride=1, padding=0, output_padding=0, groups=1, dilation=1):
    s, p, d = (np.broadcast_to(v, 3).tolist() for v in (stride, padding, dilation))
    N, C, *size = x.shape
    _, Fg, *k = w.shape                                   # (C_in, C_out/G, KD, KH, KW)
    G = groups
    Cg = C // G
    dyp = np.pad(dy, [(0, 0), (0, 0)] + [(pi, pi) for pi in p])
    xg = x.reshape(N, G, Cg, *size)
    wg = w.reshape(G, Cg, Fg, *k)
    dx = np.zeros_like(xg)
    dw = np.zeros_like(wg)
    for tap in np.ndindex(*k):
        window = (slice(None), slice(None)) + tuple(
            slice(t * di, t * di + si * (n - 1) + 1, si) for t, di, si, n in zip(tap, d, s, size))
        patch = dyp[window].reshape(N, G, Fg, *size)      # (N, G, C_out/G, D, H, W)
        dx += np.einsum("ngfxyz,gcf->ngcxyz", patch, wg[(Ellipsis,) + tap])
        dw[(Ellipsis,) + tap] = np.einsum("ngcxyz,ngfxyz->gcf", xg, patch)
    return dx.reshape(x.shape), dw.reshape(w.shape), dy.sum(axis=(0, 2, 3, 4))
