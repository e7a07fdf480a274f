"""conv3d backward: a loop over the kernel taps, everything else strided slices and einsum.

Per-dim stride, padding and dilation, and groups; returns (dx, dw) only.
"""
import numpy as np

ENTRY = "conv3d_backward"
OP = "backward"
DIMS = 3
CHANNELS_LAST = False
PER_DIM = True
PADDING_FORMS = ("int",)
EXPECT = None
WHY = "correct: tap (a, b, c) reads x_pad[t*D : t*D + S*(out-1) + 1 : S] on every axis"


def conv3d_backward(dy, x, w, stride=1, padding=0, dilation=1, groups=1):
    s, p, d = (np.broadcast_to(v, 3).tolist() for v in (stride, padding, dilation))
    N, C, *size = x.shape
    F, Cg, *k = w.shape
    out = dy.shape[2:]
    G = groups
    xp = np.pad(x, [(0, 0), (0, 0)] + [(pi, pi) for pi in p])
    dxp = np.zeros_like(xp)
    dw = np.zeros_like(w)
    dyg = dy.reshape(N, G, F // G, *out)                            # (N, G, F/G, Do, Ho, Wo)
    wg = w.reshape(G, F // G, Cg, *k)
    for tap in np.ndindex(*k):
        window = (slice(None), slice(None)) + tuple(
            slice(t * di, t * di + si * (o - 1) + 1, si) for t, di, si, o in zip(tap, d, s, out))
        patch = xp[window].reshape(N, G, Cg, *out)                  # (N, G, C/G, Do, Ho, Wo)
        dw[(slice(None), slice(None)) + tap] = np.einsum("ngcxyz,ngfxyz->gfc", patch, dyg).reshape(F, Cg)
        wt = wg[(Ellipsis,) + tap]                                  # (G, F/G, C/G)
        dxp[window] += np.einsum("gfc,ngfxyz->ngcxyz", wt, dyg).reshape(N, C, *out)
    dx = dxp[(slice(None), slice(None)) + tuple(slice(pi, pi + n) for pi, n in zip(p, size))]
    return dx, dw
