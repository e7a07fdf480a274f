"""One paragraph per mistake: what it is, the correct formula for this configuration, and the fix."""

from __future__ import annotations

from . import geometry as geo
from .cases import Case


def _dims(g: geo.Geometry) -> str:
    return ", ".join(f"dim {d}: H={g.H[d]}, K={g.K[d]}, S={g.step[d]}, D={g.spacing[d]}, "
                     f"P=({g.lo[d]}, {g.hi[d]}), H_out={g.Ho[d]}" for d in range(g.ndim))


def _relation(g: geo.Geometry, d: int = 0) -> str:
    return f"h = {g.step[d]}*i + {g.spacing[d]}*k - {g.lo[d]}"


def explanation(bug: str, case: Case) -> str:
    g = geo.geometry(case)
    # the numbers of the dim where the configuration is least trivial
    d = max(range(g.ndim), key=lambda a: (g.step[a], g.spacing[a], g.lo[a] + g.hi[a], g.K[a], g.H[a]))
    S, D, K, P, H, Ho = g.step[d], g.spacing[d], g.K[d], g.lo[d], g.H[d], g.Ho[d]
    lo, hi = g.lo[d], g.hi[d]
    keff = D * (K - 1) + 1
    span = (Ho - 1) * S + keff
    tail = case.spec().unread_tail[d] if not case.transposed else 0
    rel = _relation(g, d)
    texts = {
        "stride": (
            f"Output position i's window starts at input row i*S - P_lo = {S}*i - {P}, not at i. In the backward "
            f"pass every term dY[i] * w[k] lands on the input row {rel}: dX is the full correlation of dY "
            f"*dilated by the stride* (S-1 = {S - 1} zeros between its rows) with the flipped kernel, and "
            f"dW[k] = sum_i dY[i] * x[{S}*i + {D}*k - {P}]. Fix: multiply the output index by the stride "
            f"wherever you turn it into an input index (`h0 = i*stride`), in dX and in dW alike."),
        "unread_tail": (
            f"Here (H + P_lo + P_hi - K_eff) mod S = ({H} + {lo} + {hi} - {keff}) mod {S} = "
            f"{(H + lo + hi - keff) % S} along spatial dim {d}: the windows read only the first {span} padded "
            f"positions, so the last {tail} real input position{'s' if tail != 1 else ''} of that dim "
            f"{'are' if tail != 1 else 'is'} never read and get{'' if tail != 1 else 's'} exactly 0 gradient -- but dX "
            f"must still have the input's full size {H} there. Fix: allocate dX (or the padded dX) with the input's "
            f"shape, accumulate into it, and crop [P_lo : P_lo + H]; never derive its size from the output's."),
        "overlap_accumulate": (
            f"With K_eff = {keff} > S = {S} neighbouring windows share input rows, and each shared row must "
            f"receive the SUM of every window's contribution: dX[h] = sum over all (i, k) with {rel} of "
            f"dY[i] * w[k]. Writing with `=` keeps only the last window's share; `a[idx] += v` with repeated "
            f"indices also adds only once (NumPy buffers it). Fix: `+=` on slices, one kernel tap at a time, or "
            f"`np.add.at(dx, idx, v)` for fancy indices."),
        "kernel_flip": (
            "Deep-learning 'convolution' is a cross-correlation: y[i] = sum_k w[k] * x[i*S + k*D - P] with the "
            "kernel NOT flipped. Its input gradient is the full correlation of the (stride-dilated) dY with the "
            f"kernel flipped along EVERY spatial axis (w[::-1, ::-1]), i.e. dX[h] = sum over {rel} of "
            "dY[i] * w[k] -- written as a sum over k there is nothing to flip; flip only when you rewrite it as a "
            "correlation over the padded dY. dW is a plain correlation of x with dY: no flip. Fix: flip all "
            "kernel axes exactly once, in dX's correlation form only (not rot90, not one axis, not in the forward)."),
        "padding_crop": (
            f"dX of the padded input has H + P_lo + P_hi = {H + lo + hi} rows; the input's own "
            f"gradient is rows [P_lo : P_lo + H] = [{lo} : {lo + H}]. Slicing `[p:-p]` breaks at p = 0 "
            "(`[0:-0]` is empty) and a crop at another offset shifts every value. Fix: "
            "`dx = dx_pad[..., p_lo:p_lo + H, ...]` (explicit end, never a negative one)."),
        "padding_split": (
            "'same' padding (TensorFlow/JAX's rule, PyTorch's at stride 1): H_out = ceil(H/S), total = "
            "max((H_out-1)*S + K_eff - H, 0), P_lo = total // 2, P_hi = total - P_lo: an odd total puts the "
            f"extra pixel at the END. Here: P = ({lo}, {hi}) along dim {d}. K//2 on both sides is only "
            "right for odd K at stride 1. Fix: compute total per dim and split it (lo = total // 2)."),
        "groups": (
            f"With groups G = {g.groups}, input channels form G CONTIGUOUS blocks of C_in/G, and output channel o "
            "belongs to group g = o // (C_out/G), reading only input channels g*C_in/G ... (g+1)*C_in/G - 1: "
            "y[n, o] = sum_c w[o, c] * x[n, g*C_in/G + c]. Fix: offset by the group's first channel in every "
            "pass (forward, dX, dW), and slice contiguous blocks, not every G-th channel."),
        "bias_reduction": (
            "db[o] = sum over the batch AND every output position of dY[n, o, ...]: a sum, not a mean (the 1/N of "
            "a mean loss is already inside dY), with shape (C_out,). Fix: `db = dy.sum(axis=(0, 2, 3))` for "
            "NCHW, `axis=(0, 1, 2)` for NHWC."),
        "batch_sum": (
            "dW[o, c, k] = sum over n AND i of dY[n, o, i] * x[n, c, i*S + k*D - P]: every sample contributes. "
            "Fix: initialise dW (and db) once before the loop over samples and accumulate with `+=`; do not "
            "assign or reset per sample."),
        "channel_axes": (
            "dW has the weight's layout (C_out, C_in/G, *K): dW[o, c] pairs OUTPUT channel o of dY with INPUT "
            "channel c of x. An im2col product gives (C_out, C_in*K) -- reshape that; a product in the other "
            "order gives (C_in*K, C_out) and needs a transpose, not a reshape. Fix: "
            "`dw = (dy_cols @ x_cols.T).reshape(w.shape)` or transpose before reshaping."),
        "dilation_off_by_one": (
            f"Dilation D means taps D apart (D - 1 zeros between them; D = 1 is none): tap k reads "
            f"{rel}, and K_eff = D*(K-1) + 1 = {keff}. Reading taps D + 1 apart (numpy-ml's convention where "
            "0 means none), D - 1 apart, or 1 apart (dilation ignored in one pass) shifts every tap after the "
            "first. Fix: `h = i*stride + k*dilation - pad`, with the same D in the forward and both gradients."),
        "per_axis": (
            "Stride, padding and dilation are per dim: along dim d use stride[d], padding[d], dilation[d]. Here: "
            f"{_dims(g)}. Fix: index every per-dim parameter with its own dim; test with values that differ "
            "between dims (symmetric tests hide this)."),
        "stride_dilation_swap": (
            "Written as a correlation, dW = corr(x, dY) has dY's taps S apart (stride becomes the kernel's "
            "dilation) and the windows D apart (dilation becomes the stride): dW[k] = sum_i dY[i] * "
            f"x[{S}*i + {D}*k - {P}]. Fix: call the correlation with stride=D and dilation=S, not the other way."),
        "output_padding": (
            "A transposed convolution's output_padding adds rows at the high end that ARE computed: they receive "
            "every dY[i] * w[k] whose position lands there (PyTorch #8816); they are zeros only when no window "
            "reaches them. Fix: compute the full transposed output of length (H-1)*S + K_eff, crop P_lo from "
            "the start, and take H_out rows, extending with zeros only past the full length."),
        "transposed_weight_layout": (
            "A transposed convolution's weight is (C_in, C_out/G, *K) in PyTorch (TF: (*K, C_out, C_in)): "
            "w[c_in, o] connects input channel c_in to output channel o. It is the layout of the convolution "
            "it transposes, read the other way. Fix: index w[c_in, o_in_group] (and with groups, the group of "
            "c_in selects the block of output channels)."),
        "summation_bounds": (
            f"Solving 1 <= p - (i-1)*S <= K for i gives ceil((p - K)/S) + 1 <= i <= floor((p - 1)/S) + 1, "
            f"clipped to 1 <= i <= H_out = {Ho}. With floor at the lower bound (seed 002's formula) i starts "
            "one too low whenever S does not divide p - K, so w is read past its end (IndexError); without "
            "clipping, i - 1 < 0 silently reads dY[-1] through NumPy's wrap-around. Fix: "
            "`i_lo = max(0, -(-(h + P - D*(K-1)) // S))`, `i_hi = min(H_out - 1, (h + P) // S)` (0-based), or "
            "loop over (i, k) and scatter, which needs no bounds at all."),
    }
    return texts[bug]
