"""``docs/questions.md``: the seed questions answered by ``convgrad explain``, each for its own configuration.

Every claim about an asker's formula is checked when the document is generated: the formula is
implemented literally (plain NumPy loops, in the asker's own 1-based or 0-based indices) and
compared with convgrad's gradients on random data, and the document prints the outcome. So the
file is the tool's output; ``python docs/tools/questions.py`` (``make questions``) rewrites it
(with its pictures) and ``--check`` fails if it is stale. A test runs the check. It is docs
tooling, not part of the library (the wheel does not ship it); it uses only convgrad's public API.

Every verdict it prints is computed: a claim's "**right**" / "**not right**" comes from the check
next to it (:func:`_verdict`), and prose that rests on a check says "CHECK FAILED" when the
check does not hold (:func:`_checked`).

Outcomes are printed robustly across machines: "agrees (relative difference < 1e-12)", relative
to the largest value compared, or the difference to two significant digits.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import numpy as np

from convgrad import api

ROOT = Path(__file__).resolve().parents[2]
from convgrad.explain import explain

__all__ = ["render_questions", "main"]

TOL = 1e-12


def _cmp(got, want) -> tuple[bool, str]:
    got, want = np.asarray(got, dtype=float), np.asarray(want, dtype=float)
    if got.shape != want.shape:
        return False, f"wrong shape: {got.shape} instead of {want.shape}"
    diff = float(np.max(np.abs(got - want))) if got.size else 0.0
    scale = max(1.0, float(np.max(np.abs(want)))) if want.size else 1.0
    if diff / scale < TOL:
        return True, "agrees with convgrad (relative difference < 1e-12)"
    return False, f"disagrees with convgrad (max |difference| = {diff:.2g}, values up to {scale:.2g})"


def _verdict(ok: bool) -> str:
    return "**right**" if ok else "**not right**"


def _checked(ok: bool, text: str) -> str:
    """``text``, a statement resting on a check: itself when the check held, else marked as failed."""
    return text if ok else f"CHECK FAILED: {text}"


def _code(text: str, lang: str = "") -> str:
    return f"```{lang}\n{text.rstrip()}\n```\n"


def _rng(seed: int) -> np.random.Generator:
    return np.random.default_rng(seed)


def _cli(ex, at=None) -> str:
    s = ex.spec
    parts = [f"convgrad explain --input {','.join(map(str, ex.input_shape))} --weight {','.join(map(str, ex.weight_shape))}"]
    kw = ex.kwargs()

    def flat(v):
        return ",".join(map(str, v)) if isinstance(v, tuple) else str(v)

    if kw["stride"] != 1:
        parts.append(f"--stride {flat(kw['stride'])}")
    if kw["padding"] not in (0, "valid"):
        pad = kw["padding"]
        parts.append(f"--padding {pad if isinstance(pad, str) else flat(pad)}")
    if kw["dilation"] != 1:
        parts.append(f"--dilation {flat(kw['dilation'])}")
    if s.groups != 1:
        parts.append(f"--groups {s.groups}")
    if at:
        parts.append(f"--at {at}")
    return " ".join(parts)


def _excerpt(text: str, start: str, stop: str) -> str:
    i = text.index(start)
    j = text.index(stop, i)
    return text[i:j].rstrip() + "\n"


# ------------------------------------------------------------------------------------------------
# seed 000: Goodfellow et al. 9.8, 9.11-9.13
# ------------------------------------------------------------------------------------------------


def _goodfellow_loops(V, K, G, s):
    """Eqs. 9.8, 9.11 and 9.13 exactly as printed: 1-based, no padding, one example."""
    C, H, W = V.shape
    O, _, KH, KW = K.shape
    Ho, Wo = (H - KH) // s + 1, (W - KW) // s + 1
    Z = np.zeros((O, Ho, Wo))
    for i in range(1, O + 1):
        for j in range(1, Ho + 1):
            for k in range(1, Wo + 1):
                Z[i - 1, j - 1, k - 1] = sum(
                    V[l - 1, (j - 1) * s + m - 1, (k - 1) * s + n - 1] * K[i - 1, l - 1, m - 1, n - 1]
                    for l in range(1, C + 1) for m in range(1, KH + 1) for n in range(1, KW + 1)
                )
    g = np.zeros(K.shape)
    for i in range(1, O + 1):
        for j in range(1, C + 1):
            for k in range(1, KH + 1):
                for l in range(1, KW + 1):
                    g[i - 1, j - 1, k - 1, l - 1] = sum(
                        G[i - 1, m - 1, n - 1] * V[j - 1, (m - 1) * s + k - 1, (n - 1) * s + l - 1]
                        for m in range(1, Ho + 1) for n in range(1, Wo + 1)
                    )
    h = np.zeros(V.shape)
    for i in range(1, C + 1):
        for j in range(1, H + 1):
            for k in range(1, W + 1):
                total = 0.0
                for l in range(1, Ho + 1):
                    m = j - (l - 1) * s  # (l-1)*s + m = j
                    if not 1 <= m <= KH:
                        continue
                    for n in range(1, Wo + 1):
                        p = k - (n - 1) * s
                        if not 1 <= p <= KW:
                            continue
                        total += sum(K[q - 1, i - 1, m - 1, p - 1] * G[q - 1, l - 1, n - 1] for q in range(1, O + 1))
                h[i - 1, j - 1, k - 1] = total
    return Z, g, h


def _seed000() -> tuple[str, dict]:
    s = 2
    ex = explain((3, 8, 8), (4, 3, 3, 3), stride=s)
    r = _rng(0)
    V, K = r.standard_normal((3, 8, 8)), r.standard_normal((4, 3, 3, 3))
    G = r.standard_normal(ex.output_shape)
    Z, g, h = _goodfellow_loops(V, K, G, s)
    ref = api.conv_backward(G, V, K, stride=s)
    ok_z, msg_z = _cmp(Z, api.conv(V, K, stride=s))
    ok_g, msg_g = _cmp(g, ref.weight)
    ok_h, msg_h = _cmp(h, ref.input)
    zero_row = bool(np.all(ref.input[:, 7, :] == 0) and np.all(ref.input[:, :, 7] == 0))
    ok_tr, _ = _cmp(api.conv_transpose(G, K, stride=s, output_padding=1), ref.input)
    text = ex.text()
    d = ex.to_dict()
    gf = d["goodfellow"]
    out = f"""## 000 — How do Goodfellow et al.'s eqs. 9.11–9.13 follow from 9.8?

**The question.** *Deep Learning*, §9.5, defines the strided convolution
`Z_{{i,j,k}} = Σ_{{l,m,n}} V_{{l,(j-1)s+m,(k-1)s+n}} K_{{i,l,m,n}}` (9.8) and states the kernel gradient
`g_{{i,j,k,l}} = Σ_{{m,n}} G_{{i,m,n}} V_{{j,(m-1)s+k,(n-1)s+l}}` (9.11) and the input gradient
`h_{{i,j,k}} = Σ_{{l,m: (l-1)s+m=j}} Σ_{{n,p: (n-1)s+p=k}} Σ_q K_{{q,i,m,p}} G_{{q,l,n}}` (9.12–9.13), with
`G_{{i,j,k}} = ∂J/∂Z_{{i,j,k}}`. The asker suspects the chain rule but does not see why `G_{{i,j,k}}` turns
into `G_{{i,m,n}}` summed over `m, n`.

**The configuration.** The book gives no sizes; take 3 input channels of 8×8, four 3×3 kernels and
stride 2 (chosen so that the stride leaves a row and a column unread):

{_code(f"convgrad.explain((3, 8, 8), (4, 3, 3, 3), stride=2)   # unbatched: V is one example" + chr(10) + _cli(ex), "python")}
{_code(_excerpt(text, "SIZES", "FORWARD"))}
**Answer: the chain rule, summed over every place the variable is used.** `J` depends on the kernel
entry `K_{{i,j,k,l}}` only through the outputs it helps make, and 9.8 shows which: every output
`Z_{{i,m,n}}` of output channel `i`, at *every* output position `(m, n)`, contains exactly one term
with `K_{{i,j,k,l}}`, namely `V_{{j,(m-1)s+k,(n-1)s+l}} K_{{i,j,k,l}}`. So

    ∂J/∂K_{{i,j,k,l}} = Σ_{{m,n}} ∂J/∂Z_{{i,m,n}} · ∂Z_{{i,m,n}}/∂K_{{i,j,k,l}} = Σ_{{m,n}} G_{{i,m,n}} V_{{j,(m-1)s+k,(n-1)s+l}}.

The letters `j, k` in `G_{{i,j,k}}` were only names for an output position; in 9.11 they are taken by
the kernel's indices, so the output position that is summed over is renamed `(m, n)`. That is the
whole step from `G_{{i,j,k}}` to `Σ_{{m,n}} G_{{i,m,n}}`. The input gradient is the same argument for
`V_{{i,j,k}}`: it appears in `Z_{{q,l,n}}` for every output channel `q` and for every output position
`(l, n)` whose window covers it, with the kernel entry `K_{{q,i,m,p}}` where `(l-1)s+m = j` and
`(n-1)s+p = k` — which is why 9.13 sums over exactly those pairs. With this configuration's numbers
(`convgrad explain` prints them, 1-based as in the book):

{_code(chr(10).join([gf["eq_9_8"], gf["eq_9_11"], gf["eq_9_13"], "exactly: " + gf["eq_9_13_bounds"][0], "         " + gf["eq_9_13_bounds"][1]]))}
The "exactly" line is what "s.t. (l−1)s+m = j" means as loop bounds: `l` from
`max(1, ⌈(j−3)/2⌉+1)` to `min(3, ⌊(j−1)/2⌋+1)`. For `j = 8` the range is empty: the 8th row is never
read by any window (the stride leaves it out), so `h` is exactly 0 there.

**Checked numerically** (the three equations as plain 1-based loops, random V, K, G):

| equation | result |
|---|---|
| 9.8 (forward) | {_verdict(ok_z)}: {msg_z} |
| 9.11 (kernel gradient) | {_verdict(ok_g)}: {msg_g} |
| 9.13 (input gradient) | {_verdict(ok_h)}: {msg_h} |
| row and column 8 of `h` are exactly 0 | {"yes" if zero_row else "no"} |

{_checked(ok_z and ok_g and ok_h, "All three equations of the book are right.")} In convgrad's 0-based notation, with padding, dilation and
groups added, 9.11 is `dW` and 9.13 is `dX` in the output of `convgrad explain` above; the same
gradients are `convgrad.conv_weight` / `torch.nn.grad.conv2d_weight` and the transposed convolution
`convgrad.conv_transpose(G, K, stride=2, output_padding=1)` ({"checked: it equals h" if ok_tr else "CHECK FAILED"};
the unread row is why `output_padding=1` is needed to get back to 8×8).

![h for V[0, 4, 4] (1-based h_{{1,5,5}}): the G and K entries it sums](questions/seed000.png)

"""
    return out, {"seed000.png": (ex, "grad_input", (0, 4, 4))}


# ------------------------------------------------------------------------------------------------
# seed 001: dK = I ⋆ dO and dI = full correlation, then stride 2
# ------------------------------------------------------------------------------------------------


def _xcorr_valid(I, K):
    """(I ⋆ K)(i, j) = Σ_{u,v} I(i+u-1, j+v-1) K(u, v), 1-based, valid part only."""
    m, n = I.shape
    p, q = K.shape
    return np.array([[np.sum(I[i:i + p, j:j + q] * K) for j in range(n - q + 1)] for i in range(m - p + 1)])


def _dilate(A, s):
    out = np.zeros(((A.shape[0] - 1) * s + 1, (A.shape[1] - 1) * s + 1))
    out[::s, ::s] = A
    return out


def _seed001() -> tuple[str, dict]:
    r = _rng(1)
    I, K = r.standard_normal((4, 4)), r.standard_normal((2, 2))
    # stride 1
    ex1 = explain((1, 1, 4, 4), (1, 1, 2, 2))
    dO = r.standard_normal((3, 3))
    ref = api.conv_backward(dO[None, None], I[None, None], K[None, None])
    ok_dk, msg_dk = _cmp(_xcorr_valid(I, dO), ref.weight[0, 0])
    flipped = K[::-1, ::-1]
    ok_di, msg_di = _cmp(_xcorr_valid(np.pad(dO, 1), flipped), ref.input[0, 0])
    # the bounds, 1-based: dI(a, b) = Σ_{i = max(1, a-p+1)..min(m-p+1, a)} Σ_j dO(i, j) K(a-i+1, b-j+1)
    m, p = 4, 2
    dI = np.zeros((4, 4))
    for a in range(1, m + 1):
        for b in range(1, m + 1):
            dI[a - 1, b - 1] = sum(dO[i - 1, j - 1] * K[a - i, b - j]
                                   for i in range(max(1, a - p + 1), min(m - p + 1, a) + 1)
                                   for j in range(max(1, b - p + 1), min(m - p + 1, b) + 1))
    ok_bounds, msg_bounds = _cmp(dI, ref.input[0, 0])
    # stride 2
    ex2 = explain((1, 1, 4, 4), (1, 1, 2, 2), stride=2)
    dO2 = r.standard_normal((2, 2))
    ref2 = api.conv_backward(dO2[None, None], I[None, None], K[None, None], stride=2)
    ok_dk2, msg_dk2 = _cmp(_xcorr_valid(I, _dilate(dO2, 2)), ref2.weight[0, 0])
    ok_di2, msg_di2 = _cmp(_xcorr_valid(np.pad(_dilate(dO2, 2), 1), flipped), ref2.input[0, 0])
    ok_tr, msg_tr = _cmp(api.conv_transpose(dO2[None, None], K[None, None], stride=2)[0, 0], ref2.input[0, 0])
    # a 5x5 image with stride 2: the 5th row/column is never read
    ex5 = explain((1, 1, 5, 5), (1, 1, 2, 2), stride=2)
    I5 = r.standard_normal((5, 5))
    ref5 = api.conv_backward(dO2[None, None], I5[None, None], K[None, None], stride=2)
    plain = api.conv_transpose(dO2[None, None], K[None, None], stride=2)[0, 0]
    with_op = api.conv_transpose(dO2[None, None], K[None, None], stride=2, output_padding=1)[0, 0]
    ok_op, msg_op = _cmp(with_op, ref5.input[0, 0])
    tail_zero = bool(np.all(ref5.input[0, 0, 4, :] == 0) and np.all(ref5.input[0, 0, :, 4] == 0))
    t2 = ex2.text()
    f2 = ex2.to_dict()["formulas"]
    out = f"""## 001 — Deriving dK and dI for a valid cross-correlation, and with stride 2

**The question.** With `O = I ⋆ K` (valid cross-correlation of an m×n image with a p×q filter, 1-based:
`O(i,j) = Σ_{{u,v}} I(i+u−1, j+v−1) K(u,v)`), the asker derives `dK = I ⋆ dO`, finds for m = n = 4,
p = q = 2 that `dI = dO * K'` (full cross-correlation with zero padding, `K'` the flipped kernel),
and asks (1) how to handle the indices that go out of bounds in the derivation of `dI`, and (2) how
`dK` and `dI` generalise to stride 2 ("I don't see any easy way of writing this as a cross-correlation").

**The configurations.**

{_code(_cli(ex1) + chr(10) + _cli(ex2) + chr(10) + _cli(ex5), "sh")}
**Stride 1: {"both results are right" if ok_dk and ok_di else "CHECK FAILED: not both results are right"}.** `dK(u,v) = Σ_{{i,j}} dO(i,j) I(i+u−1, j+v−1) = (I ⋆ dO)(u,v)`:
{msg_dk}. `dI` = full cross-correlation of `dO` (zero-padded by p−1 = 1) with the flipped `K`:
{msg_di}.

**The out-of-bounds indices** are {_checked(ok_bounds, "the terms")} where the output index leaves `1..m−p+1` (or the kernel
index leaves `1..p`). Two equivalent ways to deal with them: pad `dO` with p−1 zeros on every side
(those zeros are the missing terms — this is the "full" correlation), or write the sum with exact
bounds: `dI(a, b) = Σ_{{i = max(1, a−p+1)}}^{{min(m−p+1, a)}} Σ_{{j = max(1, b−q+1)}}^{{min(n−q+1, b)}} dO(i,j) K(a−i+1, b−j+1)`.
Run as a loop, this sum {msg_bounds.split(" (")[0]}. convgrad prints these bounds for any configuration
(0-based), e.g. for stride 1: `i0 = max(0, h0 - 1)..min(2, h0)`.

**Stride 2.** {_checked(ok_dk2 and ok_di2, "Nothing new is needed")}: the stride multiplies the output index, `O(i,j) = Σ_{{u,v}}
I(2(i−1)+u, 2(j−1)+v) K(u,v)`, so

- `dK(u,v) = Σ_{{i,j}} dO(i,j) I(2(i−1)+u, 2(j−1)+v)`: a correlation of `I` with `dO` *dilated by the
  stride* (one zero between its entries: a 3×3 kernel `[[a,0,b],[0,0,0],[c,0,d]]`); in convgrad's
  words, stride and dilation swap roles. Checked: {msg_dk2}.
- `dI` = the full cross-correlation of the stride-dilated `dO` with the flipped `K`, i.e. the
  *transposed convolution* of `dO`. Checked: {msg_di2}; and `convgrad.conv_transpose(dO, K, stride=2)`
  {msg_tr.split(" (")[0]}.

With this configuration's numbers (0-based, from `convgrad explain`):

{_code(f2["grad_weight"]["filled"] + chr(10) + f2["grad_input"]["filled"] + chr(10) + chr(10).join("  " + b for b in f2["grad_input"]["bounds"]))}
**Efficiently:** no loops over output positions — the transposed convolution
(`convgrad.conv_transpose`, `torch.nn.functional.conv_transpose2d`, or `torch.nn.grad.conv2d_input`)
does `dI`, and `convgrad.conv_weight` / `torch.nn.grad.conv2d_weight` does `dK`; convgrad's `gemm`
algorithm shows how (one matrix product on a strided window view, and a loop over the 4 kernel taps
for `dI`).

**A trap the 4×4 example hides.** With a 5×5 image and stride 2 the output is still 2×2: the 5th row
and column are never read, their gradient is exactly 0 ({"checked" if tail_zero else "NOT confirmed"}), and
`conv_transpose(dO, K, stride=2)` returns {plain.shape[0]}×{plain.shape[1]}, not 5×5 — it needs
{_checked(ok_op, "`output_padding=1`")}, which then {msg_op.split(" (")[0]}:

{_code(_excerpt(ex5.text(), "! Unread tail", "  ! Going back"))}
![dI at 0-based (1, 2) for stride 2: the dilated dO and flipped K entries it sums](questions/seed001.png)

"""
    del t2
    return out, {"seed001.png": (ex2, "grad_input", (0, 0, 1, 2))}


# ------------------------------------------------------------------------------------------------
# seed 002: the bounds i_lower, i_upper
# ------------------------------------------------------------------------------------------------


def _verify_seed002():
    """``convgrad verify`` on seed 002's formulas as coded in docs/questions/seed002_backward.py."""
    import contextlib
    import importlib.util

    import convgrad

    path = ROOT / "docs" / "questions" / "seed002_backward.py"
    spec = importlib.util.spec_from_file_location("seed002_backward", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    with contextlib.chdir(ROOT):   # the report names the file relative to the repository
        asked = convgrad.verify(module.backward_as_asked, "backward", time_limit=120)
        fixed = convgrad.verify(module.backward_fixed, "backward", time_limit=120)  # every case, whatever the load
    return asked, fixed


def _seed002() -> tuple[str, dict]:
    n_ch, h, n_f, f, s = 2, 8, 3, 3, 2
    ex = explain((n_ch, h, h), (n_f, n_ch, f, f), stride=s)
    h_new = ex.output_shape[1]
    r = _rng(2)
    X, W, b = r.standard_normal((n_ch, h, h)), r.standard_normal((n_f, n_ch, f, f)), r.standard_normal(n_f)
    dO = r.standard_normal((n_f, h_new, h_new))
    ref = api.conv_backward(dO, X, W, stride=s)
    # the forward formula, 1-based as written
    O = np.zeros((n_f, h_new, h_new))
    for fi in range(1, n_f + 1):
        for i in range(1, h_new + 1):
            for j in range(1, h_new + 1):
                O[fi - 1, i - 1, j - 1] = b[fi - 1] + sum(
                    W[fi - 1, ch - 1, rr - 1, c - 1] * X[ch - 1, (i - 1) * s + rr - 1, (j - 1) * s + c - 1]
                    for ch in range(1, n_ch + 1) for rr in range(1, f + 1) for c in range(1, f + 1))
    ok_o, msg_o = _cmp(O, api.conv(X, W, b, stride=s))

    def asked(p):  # the asker's bounds
        return math.floor((p - f) / s + 1), math.floor((p - 1) / s + 1)

    def exact(p):  # from 1 <= p - (i-1)s <= f_r and 1 <= i <= h_new
        return max(1, math.ceil((p - f) / s) + 1), min(h_new, math.floor((p - 1) / s) + 1)

    def true_set(p):
        return [i for i in range(1, h_new + 1) if 1 <= p - (i - 1) * s <= f]

    rows = []
    for p in range(1, h + 1):
        lo, hi = asked(p)
        elo, ehi = exact(p)
        assert list(range(elo, ehi + 1)) == true_set(p)
        bad = []
        for i in range(lo, hi + 1):
            if not 1 <= i <= h_new:
                bad.append(f"i = {i} is not an output row (1..{h_new})")
            elif not 1 <= p - (i - 1) * s <= f:
                bad.append(f"i = {i} needs kernel row {p - (i - 1) * s} (1..{f})")
        rows.append((p, f"{lo}..{hi}", f"{elo}..{ehi}" if elo <= ehi else "none", "; ".join(bad) or "—"))
    n_bad = sum(1 for row in rows if row[3] != "—")

    def dx_with(bounds):
        dX = np.zeros_like(X)
        for ch in range(1, n_ch + 1):
            for p in range(1, h + 1):
                for q in range(1, h + 1):
                    ilo, ihi = bounds(p)
                    jlo, jhi = bounds(q)
                    dX[ch - 1, p - 1, q - 1] = sum(
                        dO[fi - 1, i - 1, j - 1] * W[fi - 1, ch - 1, p - (i - 1) * s - 1, q - (j - 1) * s - 1]
                        for fi in range(1, n_f + 1) for i in range(ilo, ihi + 1) for j in range(jlo, jhi + 1))
        return dX

    ok_fix, msg_fix = _cmp(dx_with(exact), ref.input)
    # the asker's bounds run literally in NumPy: out-of-range indices wrap around or raise
    try:
        literal = dx_with(asked)
        ok_lit, msg_lit = _cmp(literal, ref.input)
        msg_lit = "runs, but " + msg_lit + " (negative indices wrap around silently)"
    except IndexError as exc:
        ok_lit, msg_lit = False, f"raises IndexError ({exc})"
    dW = np.zeros_like(W)
    for fi in range(n_f):
        for ch in range(n_ch):
            for rr in range(1, f + 1):
                for c in range(1, f + 1):
                    dW[fi, ch, rr - 1, c - 1] = sum(dO[fi, i - 1, j - 1] * X[ch, (i - 1) * s + rr - 1, (j - 1) * s + c - 1]
                                                    for i in range(1, h_new + 1) for j in range(1, h_new + 1))
    ok_w, msg_w = _cmp(dW, ref.weight)
    ok_b, msg_b = _cmp(dO.sum(axis=(1, 2)), ref.bias)
    # vectorized: im2col with a strided view, one matrix product each
    vec = f"""import numpy as np
from numpy.lib.stride_tricks import sliding_window_view
# X: (n_ch, h, w), W: (n_f, n_ch, f_r, f_c), dO: (n_f, h_new, w_new), stride s
win = sliding_window_view(X, (f, f), axis=(1, 2))[:, ::s, ::s]   # (n_ch, h_new, w_new, f_r, f_c), no copy
cols = win.transpose(0, 3, 4, 1, 2).reshape(n_ch * f * f, -1)      # (n_ch*f_r*f_c, h_new*w_new)
O = (W.reshape(n_f, -1) @ cols).reshape(n_f, h_new, h_new) + b[:, None, None]
dW = (dO.reshape(n_f, -1) @ cols.T).reshape(W.shape)
dcols = (W.reshape(n_f, -1).T @ dO.reshape(n_f, -1)).reshape(n_ch, f, f, h_new, h_new)
dX = np.zeros_like(X)
for r in range(f):            # col2im: one strided slice += per kernel tap
    for c in range(f):
        dX[:, r:r + s * (h_new - 1) + 1:s, c:c + s * (h_new - 1) + 1:s] += dcols[:, r, c]
db = dO.sum(axis=(1, 2))"""
    env = {"X": X, "W": W, "b": b, "dO": dO, "f": f, "s": s, "n_ch": n_ch, "n_f": n_f, "h_new": h_new}
    exec(vec, env)  # noqa: S102 - our own code, run so that the document can say it works
    ok_vec = all(_cmp(env[k], v)[0] for k, v in (("O", api.conv(X, W, b, stride=s)), ("dW", ref.weight),
                                                  ("dX", ref.input), ("db", ref.bias)))
    table = "\n".join(f"| {p} | {a} | {e} | {bad} |" for p, a, e, bad in rows)
    f0 = ex.to_dict()["formulas"]["grad_input"]
    ok_calls = _cmp(api.conv_transpose(dO, W, stride=s, output_padding=1), ref.input)[0] and _cmp(
        api.conv_weight(X, W.shape, dO, stride=s), ref.weight)[0]
    asked_report, fixed_report = _verify_seed002()
    asked_named = asked_report.diagnosis[:1] == ["summation_bounds"]
    fixed_ok = fixed_report.ok
    asked_text = asked_report.text(seconds=False)
    fixed_text = fixed_report.text(seconds=False)
    out = f"""## 002 — Backpropagation for one conv layer: are the bounds i_lower, i_upper right?

**The question.** A layer without padding (padding is a separate layer), input `X` (n_ch×h×w),
weights `W` (n_f×n_ch×f_r×f_c), stride `s`, 1-based:
`O_{{f,i,j}} = Σ_{{ch,r,c}} W_{{f,ch,r,c}} X_{{ch,(i−1)s+r,(j−1)s+c}} + b_f`. The asker derives
`∂O_{{f,i,j}}/∂X_{{ch,p,q}} = W_{{f,ch,p−(i−1)s,q−(j−1)s}}` when `1 ≤ p−(i−1)s ≤ f_r` and `1 ≤ q−(j−1)s ≤ f_c`
(0 otherwise), then
`∂L/∂X_{{ch,p,q}} = Σ_f Σ_{{i=i_lower}}^{{i_upper}} Σ_{{j=j_lower}}^{{j_upper}} ∂L/∂O_{{f,i,j}} W_{{f,ch,p−(i−1)s,q−(j−1)s}}`
with `i_lower = ⌊(p−f_r)/s + 1⌋`, `i_upper = ⌊(p−1)/s + 1⌋` (same for j), and
`∂L/∂W_{{f,ch,r,c}} = Σ_{{i,j}} ∂L/∂O_{{f,i,j}} X_{{ch,(i−1)s+r,(j−1)s+c}}`, `∂L/∂b_f = Σ_{{i,j}} ∂L/∂O_{{f,i,j}}`.
Is this right, and how to vectorise it?

**The configuration.** The question has no numbers; take n_ch = 2 channels of 8×8, n_f = 3 filters
of 3×3 and stride 2 (so h_new = 3 and the 8th row and column are never read):

{_code(_cli(ex, "grad_input:0,3,3"), "sh")}
**Verdict.**

| formula | verdict | checked numerically |
|---|---|---|
| the forward formula | {_verdict(ok_o)} | {msg_o} |
| `∂O/∂X` (the case split) | {_verdict(ok_fix)} | it is exactly the condition the exact bounds below come from |
| `∂L/∂X` with the asked `i_lower`, `i_upper` | {_verdict(ok_lit)} | run literally in NumPy it {msg_lit} |
| `∂L/∂X` with the corrected bounds | {_verdict(ok_fix)} | {msg_fix} |
| `∂L/∂W` | {_verdict(ok_w)} | {msg_w} (sum over i = 1..h_new, j = 1..w_new) |
| `∂L/∂b` | {_verdict(ok_b)} | {msg_b} |

**What is wrong with the bounds.** Solving `1 ≤ p − (i−1)s ≤ f_r` for `i` gives
`(p − f_r)/s + 1 ≤ i ≤ (p − 1)/s + 1`. The upper bound rounds *down*, but the lower bound must round
*up* — `i` is the smallest integer at or above `(p−f_r)/s + 1` — and both must also stay inside the
output rows `1..h_new`:

    i_lower = max(1, ⌈(p − f_r)/s⌉ + 1),    i_upper = min(h_new, ⌊(p − 1)/s⌋ + 1)

The floor only coincides with the ceiling when `s = 1` (or `s` divides `p − f_r`); the clipping is
needed at every border (`p < f_r` gives `i_lower ≤ 0`) and whenever the stride leaves an unread tail
(then `i_upper` can exceed `h_new`). For this configuration, row by row ({n_bad} of {h} rows go wrong):

| p | asked i_lower..i_upper | exact | what goes wrong |
|---|---|---|---|
{table}

Row 8 has no term at all: it is the unread tail, and `∂L/∂X` is exactly 0 there. `convgrad explain`
prints the same bounds 0-based, for any stride, padding and dilation (here `h = p − 1`):

{_code(f0["filled"] + chr(10) + chr(10).join("  " + b for b in f0["bounds"]))}
**Vectorising.** Gather every window once (im2col, a zero-copy strided view), and each of the three
formulas is one matrix product; `dX` scatters back with one strided `+=` per kernel tap (col2im).
This is convgrad's `gemm` algorithm in miniature; run on this configuration it
{_checked(ok_vec, "agrees with convgrad for O, dW, dX and db (relative difference < 1e-12)")}:

{_code(vec, "python")}
Equivalently, `dX` is the transposed convolution of `dO`
(`convgrad.conv_transpose(dO, W, stride=2, output_padding=1)` — `output_padding=1` because of the
unread 8th row) and `dW` is `convgrad.conv_weight(X, W.shape, dO, stride=2)`
({"both checked" if ok_calls else "CHECK FAILED"}).

**Checking the code itself with `convgrad verify`.** The formulas above, coded literally as the
asker would (1-based loops, NumPy indexing; [questions/seed002_backward.py](questions/seed002_backward.py)),
run through `convgrad verify`, which tries the configurations where such code goes wrong, shrinks the
first failure and names the mistake ({_checked(asked_named, "it names `summation_bounds`")}):

{_code("$ convgrad verify docs/questions/seed002_backward.py:backward_as_asked --op backward" + chr(10) + asked_text, "sh")}
With the corrected bounds the same file passes ({_checked(fixed_ok, "every configuration matches")}):

{_code("$ convgrad verify docs/questions/seed002_backward.py:backward_fixed --op backward" + chr(10) + fixed_text, "sh")}
![∂L/∂X at 0-based (0, 3, 3), i.e. p = q = 4: only i = j = 2 contributes](questions/seed002.png)

"""
    return out, {"seed002.png": (ex, "grad_input", (0, 3, 3))}


# ------------------------------------------------------------------------------------------------
# seed 003: dE/dF for 5x100x100 input and ten 5x5x5 filters
# ------------------------------------------------------------------------------------------------


def _seed003() -> tuple[str, dict]:
    ex = explain((5, 100, 100), (10, 5, 5, 5))
    r = _rng(3)
    X, F = r.standard_normal((5, 100, 100)), r.standard_normal((10, 5, 5, 5))
    dO = r.standard_normal((10, 96, 96))
    ref = api.conv_backward(dO, X, F)
    # per (filter, channel): a valid correlation of X[c] with dO[f], via convgrad with channels as batch
    pairs = api.conv(X[:, None], dO[:, None])  # (5, 10, 5, 5): [c, f]
    ok_pairs, msg_pairs = _cmp(pairs.transpose(1, 0, 2, 3), ref.weight)
    # Imran: broadcast dE/dO to 5 channels, correlate channel by channel (depthwise, no sum)
    dw_f3 = api.conv(X[None], np.repeat(dO[3][None, None], 5, axis=0), groups=5)[0]
    ok_bcast, msg_bcast = _cmp(dw_f3, ref.weight[3])
    # the second answer, read as an ordinary multi-channel convolution (it sums over the channels)
    summed = api.conv(X[None], np.repeat(dO[3][None], 5, axis=0)[None])[0, 0]
    ok_sum_is_total, _ = _cmp(summed, ref.weight[3].sum(axis=0))
    full_size = 100 + 96 - 1
    ok_dx = _cmp(api.conv_input(X.shape, F, dO), ref.input)[0] and _cmp(api.conv_transpose(dO, F), ref.input)[0]
    t = ex.text()
    eq = ex.to_dict()["equivalents"]["grad_weight"]
    out = f"""## 003 — dE/dF when the input has 5 channels and dE/dO has 10

**The question.** `X` is 5×100×100, ten filters `F` of 5×5×5 give `O` = 10×96×96 and the layer
receives `dE/dO` (10×96×96). "dE/dF is a convolution between X and dE/dO", but the depths (5 and 10)
do not match: how is it computed? The thread has two comments (Imran) and two answers.

**The configuration.**

{_code(_cli(ex, "grad_weight:3,2,1,4"), "sh")}
{_code(_excerpt(t, "SIZES", "FORWARD"))}
**Answer.** Every filter entry `F[f, c, k0, k1]` multiplies input channel `c` only, at every output
position of output channel `f`. So the 10×5 pairs `(f, c)` are independent 2-D problems:

    dF[f, c, k0, k1] = Σ_{{i0, i1}} dO[f, i0, i1] · X[c, i0 + k0, i1 + k1]      (0-based; i0, i1 = 0..95, k0, k1 = 0..4)

a **valid** correlation of one input channel (100×100) with one output gradient channel (96×96),
which is 100 − 96 + 1 = 5 wide: exactly the filter's size. No channel is summed over, no padding
is involved, and the depth mismatch disappears: there are 50 such correlations, one per filter entry
`(f, c)`. It is still one convolution call if channels are used as the batch — input `X` as 5
one-channel images, `dE/dO` as 10 one-channel kernels, stride and dilation 1 — which gives a
(5, 10, 5, 5) array, transposed to (10, 5, 5, 5). {_checked(ok_pairs, "Checked")}: {msg_pairs}.

{_code("# x = X[None], w = F, dy = dO[None]: the calls take a batch axis" + chr(10) + eq["calls"]["convgrad (as a convolution)"] + chr(10) + "# or simply" + chr(10) + eq["calls"]["convgrad"], "python")}
**The comments and answers, checked.**

| claim | verdict | why / checked numerically |
|---|---|---|
| Imran: "broadcast dE/dO to 5 channels" | {_verdict(ok_bcast)}, if each channel is correlated separately | for filter 3: a depthwise (groups=5) correlation of X with dE/dO[3] repeated 5 times {msg_bcast} |
| Imran: "information is lost … maybe there isn't a nice analogy" | {_verdict(not ok_pairs)} | dF is exactly the correlation above; nothing is lost because each `F[f, c]` only ever touched channel `c` |
| Imran: "a full convolution will take the shape of the left argument (100×100)" | {_verdict(ref.weight.shape[-2:] == (100, 100))} | dF needs the *valid* correlation, size 100 − 96 + 1 = 5; a full convolution would be 100 + 96 − 1 = {full_size} wide. 100×100 is the size of dE/dX, the full correlation of dE/dO (96) with the flipped filter (5): 96 + 5 − 1 = 100 |
| Answer 1: "pad the lower-dimensional object to match" | {_verdict(not ok_pairs)} | nothing is padded; the channel axes are not matched up, they are paired (f, c) |
| Answer 2: "convolution between X and tiled dE/dO" | {"**right in substance**" if ok_bcast and ok_sum_is_total else "**not right**"}, not as an ordinary convolution | tiling is the broadcast above; but an ordinary multi-channel convolution sums over the 5 channels and returns one 5×5 map per filter — {"that is exactly Σ_c dF[f, c] (checked)" if ok_sum_is_total else "(check failed)"} — instead of 5×5×5 |

**And dE/dX** (which the question does not ask, but needs next): the full correlation of dE/dO with
the flipped filters, summed over the 10 filters: `convgrad.conv_input(X.shape, F, dO)` or
`convgrad.conv_transpose(dO, F)` ({"both checked" if ok_dx else "CHECK FAILED"}).

![dF[3, 2, 1, 4]: every position of X channel 2 (window) times dE/dO channel 3](questions/seed003.png)

"""
    return out, {"seed003.png": (ex, "grad_weight", (3, 2, 1, 4))}


# ------------------------------------------------------------------------------------------------
# seed 004: a page's delta and weight formulas, against its own four configurations
# ------------------------------------------------------------------------------------------------


def _seed004() -> tuple[str, dict]:
    r = _rng(4)
    H = 7
    configs = [
        ("1: in 1, out 1, K 3, stride 1, padding 1", dict(input_shape=(1, 1, H, H), weight_shape=(1, 1, 3, 3), padding=1)),
        ("2: in 1, out 1, K 3, stride 2, padding 0", dict(input_shape=(1, 1, H, H), weight_shape=(1, 1, 3, 3), stride=2)),
        ("3: in 1, out 1, K 3, stride 1, dilation 2", dict(input_shape=(1, 1, H, H), weight_shape=(1, 1, 3, 3), dilation=2)),
        ("4: in 2, out 3, K 3, stride 1, bias", dict(input_shape=(1, 2, H, H), weight_shape=(3, 2, 3, 3))),
    ]
    base = explain((1, 1, H, H), (1, 1, 3, 3))
    rows, fixes = [], []

    def page_delta(d_next, w):  # δ^l_{i,j} = Σ_m Σ_n δ^{l+1}_{i-m, j-n} ω'_{m,n}  (out-of-range δ = 0), one channel
        out = np.zeros((H, H))
        for i in range(H):
            for j in range(H):
                out[i, j] = sum(d_next[i - m, j - n] * w[m, n] for m in range(3) for n in range(3)
                                if 0 <= i - m < d_next.shape[0] and 0 <= j - n < d_next.shape[1])
        return out

    def page_dw(delta, a):  # ∂Loss/∂ω'_{m,n} = Σ_{i,j} δ_{i,j} a_{i+m, j+n}, one channel
        return np.array([[sum(delta[i, j] * a[i + m, j + n] for i in range(delta.shape[0]) for j in range(delta.shape[1])
                              if i + m < H and j + n < H) for n in range(3)] for m in range(3)])

    # the formulas' own case: stride 1, no padding, no dilation, one channel
    a, w = r.standard_normal((H, H)), r.standard_normal((3, 3))
    d5 = r.standard_normal((5, 5))
    ref = api.conv_backward(d5[None, None], a[None, None], w[None, None])
    base_delta = _cmp(page_delta(d5, w), ref.input[0, 0])
    base_dw = _cmp(page_dw(d5, a), ref.weight[0, 0])
    for label, kw in configs:
        ex = explain(**kw)
        x = r.standard_normal(ex.input_shape)
        wt = r.standard_normal(ex.weight_shape)
        dy = r.standard_normal(ex.output_shape)
        conv_kw = {k: v for k, v in kw.items() if k not in ("input_shape", "weight_shape")}
        g = api.conv_backward(dy, x, wt, **conv_kw)
        if ex.in_channels == 1 and ex.out_channels == 1:
            lit_delta = _cmp(page_delta(dy[0, 0], wt[0, 0]), g.input[0, 0])
            lit_dw = _cmp(page_dw(dy[0, 0], x[0, 0]), g.weight[0, 0])
        else:  # the page's formulas have no channel sums: apply them per (output, input) channel pair
            lit_delta = _cmp(np.stack([page_delta(dy[0, o], wt[o, c]) for o, c in [(0, 0), (0, 1)]]), g.input[0])
            lit_dw = _cmp(np.stack([page_dw(dy[0, 0], x[0, c]) for c in range(2)]), g.weight[0])
        f = ex.to_dict()["formulas"]
        rows.append((label, ex.output_shape[2:], lit_delta, lit_dw))
        padded = any(p != (0, 0) for p in ex.spec.padding)
        fixes.append((label, f["grad_input"]["filled"], f["grad_input"]["bounds"], f["grad_weight"]["filled"],
                      f["grad_weight"]["bounds"] if padded else None))
    # the bias: PyTorch's bias=True is one number per output channel
    ex4 = explain(**configs[3][1])
    dy4 = r.standard_normal(ex4.output_shape)
    db = api.conv_backward(dy4, r.standard_normal(ex4.input_shape), r.standard_normal(ex4.weight_shape), needs=("bias",)).bias
    ok_db, msg_db = _cmp(dy4.sum(axis=(0, 2, 3)), db)
    delta_wrong_everywhere = not any(d[0] for _, _, d, _ in rows)
    dw_right_only_in_4 = [w_[0] for _, _, _, w_ in rows] == [False, False, False, True]
    table = "\n".join(
        f"| {label} | {tuple(size)} | {_verdict(d[0])}: {d[1]} | {_verdict(w_[0])}: {w_[1]} |"
        for label, size, d, w_ in rows
    )
    fix_text = ""
    for label, dx, bounds, dw, dw_bounds in fixes:
        fix_text += f"Configuration {label}:\n\n" + _code(
            dx + "\n" + "\n".join("  " + b for b in bounds) + "\n" + dw
            + ("\n  terms inside the input: " + "; ".join(dw_bounds) if dw_bounds else "")
        )
    out = f"""## 004 — A web page's backprop formulas, against its own four configurations

**The question.** The page defines (0-based, `ω'` the kernel as used in the cross-correlation)
`z^l_{{i,j}} = Σ_m Σ_n a^{{l−1}}_{{i+m,j+n}} ω'^l_{{m,n}} + b^l_{{i,j}}` and derives
`δ^l_{{i,j}} = Σ_m Σ_n δ^{{l+1}}_{{i−m,j−n}} ω'^{{l+1}}_{{m,n}} σ'(z^l_{{i,j}})`,
`∂Loss/∂ω'^l_{{m,n}} = Σ_{{i,j}} δ^l_{{i,j}} a^{{l−1}}_{{i+m,j+n}}` and `∂Loss/∂b^l_{{i,j}} = δ^l_{{i,j}}`, then lists
four PyTorch configurations: (1) stride 1, padding 1; (2) stride 2; (3) dilation 2; (4) 2 input and
3 output channels with bias. Do the formulas hold for them?

**The configurations.** The page gives no image size; take 7×7 (σ' is left out below: it multiplies
both sides alike, so the question is only the convolution's own gradient):

{_code(chr(10).join(_cli(explain(**kw)) for _, kw in configs), "sh")}
**Verdict.** The formulas are {_checked(base_delta[0] and base_dw[0], "right")} for the case they were derived in — stride 1, no padding, no
dilation, one input and one output channel, with `δ^{{l+1}}` taken as 0 outside its range (a full
convolution): the δ formula {base_delta[1]}, the weight formula {base_dw[1]}. But the δ formula is
{_checked(delta_wrong_everywhere, "not right for any of the four configurations the page then lists")}, and the weight formula {_checked(dw_right_only_in_4, "only for the" + chr(10) + "fourth")}, where it holds for each (output channel, input channel) pair separately. Each was checked by
running the page's formulas literally (for configuration 4 per channel pair, as the formulas have no
channel sums):

| configuration | output size | δ formula | weight formula |
|---|---|---|---|
{table}

**Why, and the right formulas.** The forward index `i+m` only holds for stride 1, padding 0 and
dilation 1; in general an output position `i` reads input position `S·i + D·m − P_lo`. Solving that
for the backward pass changes every formula:

- padding 1: `δ^l_{{i}}` collects `δ^{{l+1}}_{{i+1−m}}` (shifted by the padding), and the weight gradient
  reads `a_{{i+m−1}}` with zeros outside the image;
- stride 2: only the `(i − m)` divisible by 2 contribute, as `δ^{{l+1}}_{{(i−m)/2}}` (the stride-dilated
  δ), and the weight gradient reads `a_{{2i+m}}`;
- dilation 2: the kernel taps are 2 apart: `δ^{{l+1}}_{{i−2m}}` and `a_{{i+2m}}`;
- channels: `δ^l` of input channel `c` sums over all output channels `o`:
  `δ^l_{{c,i,j}} = Σ_o Σ_{{m,n}} δ^{{l+1}}_{{o,i−m,j−n}} ω'_{{o,c,m,n}}`, and there is one weight gradient per pair `(o, c)`.

`convgrad explain` writes each of them out with the numbers and exact summation bounds (0-based, `h`
the input position, `i` the output position):

{fix_text}**The bias.** `∂Loss/∂b^l_{{i,j}} = δ^l_{{i,j}}` is right for an *untied* bias (one parameter per
output position, as the page's `b^l_{{i,j}}` is written). PyTorch's `bias=True` in configuration 4 is one
number per output channel, added at every position, so its gradient sums over the positions (and the
batch): `∂Loss/∂b_o = Σ_{{n,i,j}} δ_{{n,o,i,j}}` — {_checked(ok_db, msg_db.replace("agrees with convgrad", "this agrees with convgrad's bias gradient"))}.
With the page's formula one would get a 5×5 array per channel instead of one number.

![δ for configuration 2 (stride 2) at 0-based (2, 4): only the δ^(l+1) entries on the stride grid contribute](questions/seed004.png)

"""
    del base
    return out, {"seed004.png": (explain(**configs[1][1]), "grad_input", (0, 0, 2, 4))}


HEADER = """# The seed questions, answered by `convgrad explain`

Each section takes one question from the project's seed set (people learning or implementing
convolution gradients), runs `convgrad explain` on its configuration, and answers it — including
whether the formulas the asker (or the thread) proposes are right. Every verdict below was computed
when this file was generated: the proposed formula is implemented literally, in the asker's own
indexing, and compared with convgrad's gradients on random data (convgrad itself is tested against
PyTorch, finite differences and plain reference loops).

This file is generated: `python -m convgrad.explain.questions` (or `make questions`) rewrites it and
its pictures; a test fails if it no longer matches the tool's output.

**Summary of what is not right:**

- 002: the lower summation bound `i_lower = ⌊(p − f_r)/s + 1⌋` must be a ceiling,
  `⌈(p − f_r)/s⌉ + 1`, and both bounds must be clipped to `1..h_new`;
- 003: three of the thread's claims ("information is lost", a *full* convolution of X with dE/dO,
  padding to match the depths), and one answer's "convolution" works only as a per-channel
  (depthwise) correlation, not as an ordinary one;
- 004: the page's δ formula holds only for stride 1 / no padding / no dilation / one channel — not
  for any of the four configurations it lists (no sum over output channels in the fourth); its
  weight formula fails for the first three; and its bias gradient is that of an untied bias, not of
  PyTorch's per-channel bias.

Nothing is wrong in 000 (Goodfellow's 9.8, 9.11 and 9.13 are right; the derivation is the chain
rule) or in 001 (both stride-1 results are right; the stride-2 forms are derived below).

"""


def _sections():
    return [_seed000(), _seed001(), _seed002(), _seed003(), _seed004()]


def render_questions(sections=None) -> str:
    """The markdown of docs/questions.md."""
    sections = sections if sections is not None else _sections()
    return HEADER + "".join(text for text, _ in sections)


def pictures(sections=None) -> dict:
    sections = sections if sections is not None else _sections()
    out = {}
    for _, pics in sections:
        out.update(pics)
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python docs/tools/questions.py", description=__doc__.split("\n")[0])
    parser.add_argument("--out", default="docs", help="the docs directory (default: docs)")
    parser.add_argument("--check", action="store_true", help="only check that docs/questions.md is up to date")
    args = parser.parse_args(argv)
    sections = _sections()
    text = render_questions(sections)
    target = Path(args.out) / "questions.md"
    if args.check:
        if not target.exists() or target.read_text(encoding="utf-8") != text:
            print(f"{target} is stale: run python docs/tools/questions.py (make questions)", file=sys.stderr)
            return 1
        return 0
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(text, encoding="utf-8")
    images = target.parent / "questions"
    images.mkdir(exist_ok=True)
    for name, (ex, quantity, index) in pictures(sections).items():
        ex.figure(quantity, index, images / name)
    print(f"wrote {target} and {len(pictures(sections))} pictures in {images}")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
