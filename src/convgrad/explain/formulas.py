"""Index formulas of the forward and backward pass with the numbers of one configuration filled in.

Three shapes of formula cover everything, because a transposed convolution's passes are an
ordinary convolution's passes with the roles exchanged (:func:`convgrad.spec.conv_transpose_spec`):

- *gather* (convolution forward; transposed grad_input)::

      R[n, a, i] = sum_b sum_k  K[a, b, k] * A[n, C_g*(a // O_g) + b, i*S + k*D - P_lo]

- *scatter* (convolution grad_input; transposed forward), the same sum solved for the input
  position ``h = i*S + k*D - P_lo``, with exact bounds on ``i``::

      R[n, b, h] = sum_{a in group(b)} sum_{i = i_lo(h)..i_hi(h)} A[n, a, i] * K[a, b % C_g, (h + P_lo - i*S)/D]
      i_lo(h) = max(0, ceil((h + P_lo - D*(K-1))/S)),  i_hi(h) = min(H_out - 1, floor((h + P_lo)/S))
      (only the i for which (h + P_lo - i*S) is divisible by D)

- *weight* (grad_weight of both)::

      R[a, b, k] = sum_n sum_i  G[n, a, i] * A[n, C_g*(a // O_g) + b, i*S + k*D - P_lo]

``a`` runs over the spec's output channels (``O_g`` per group), ``b`` over its input channels of
one group (``C_g``). Every function returns a dict of text lines: ``general`` (symbols),
``filled`` (this configuration's numbers), ``bounds`` (exact summation bounds), ``ranges`` (the
free indices).
"""

from __future__ import annotations

from ..spec import ConvSpec
from .notation import affine, ceil_div, floor_div, index, names, span

__all__ = ["gather", "scatter", "weight", "bias", "goodfellow", "padding_note"]


def _channel(spec: ConvSpec, a: str, b: str) -> str:
    """The activation channel read for spec-output channel ``a`` and in-group channel ``b``."""
    cg, og = spec.in_per_group, spec.out_per_group
    if spec.groups == 1:
        return b
    group = a if og == 1 else f"{a} // {og}"
    base = group if cg == 1 else (f"{cg}*{group}" if og == 1 else f"{cg}*({group})")
    return base if cg == 1 else f"{base} + {b}"


def _sum(var: str, lo: int, hi: int) -> str:
    return "" if lo == hi else f"Σ_{{{var}={lo}..{hi}}} "


def _positions(spec: ConvSpec, outs, taps) -> list[str]:
    return [affine([(s, i), (d, k)], -lo) for i, k, s, d, lo in zip(outs, taps, spec.stride, spec.dilation, spec.pad_lo)]


def gather(spec: ConvSpec, R: str, a: str, b: str, K: str, A: str, bias_name: str | None,
           groups_text: tuple[str, str] = ("C_in/G", "C_out/G")) -> dict:
    """``R[n, a, i]`` read through the kernel. ``groups_text`` names the group sizes (per b, per a)."""
    nd = spec.ndim
    i, k = names("i", nd), names("k", nd)
    cg = spec.in_per_group
    bvar = b if cg > 1 else "0"
    sums = _sum(b, 0, cg - 1) + "".join(f"Σ_{{{kk}=0..{kn - 1}}} " for kk, kn in zip(k, spec.kernel_size))
    head = index(R, ["n", a, *i]) + " = " + (f"{bias_name}[{a}] + " if bias_name else "")
    filled = head + sums + index(K, [a, bvar, *k]) + " · " + index(A, ["n", _channel(spec, a, bvar), *_positions(spec, i, k)])
    general = (
        f"{R}[n, {a}, i] = " + (f"{bias_name}[{a}] + " if bias_name else "") + f"Σ_{b} Σ_k {K}[{a}, {b}, k] · "
        + f"{A}[n, " + (f"g*({groups_text[0]}) + {b}" if spec.groups > 1 else b) + ", i*S + k*D - P_lo]"
        + (f"   with g = {a} // ({groups_text[1]})" if spec.groups > 1 else "")
    )
    return {"general": general, "filled": filled}


def scatter(spec: ConvSpec, R: str, b: str, a: str, K: str, A: str, bias_name: str | None,
            groups_text: str = "C_in/G") -> dict:
    """``R[n, b, h]``: the convolution's grad_input (or the transposed convolution's output).

    ``groups_text`` names the group size of ``b`` in the general formula.
    """
    nd = spec.ndim
    h, i, k = names("h", nd), names("i", nd), names("k", nd)
    cg, og = spec.in_per_group, spec.out_per_group
    if spec.groups == 1:
        a_lo, a_hi, b_in = "0", str(spec.out_channels - 1), b
    else:
        grp = f"({b} // {cg})" if cg > 1 else b
        first = grp if og == 1 else f"{og}*{grp}"
        a_lo, a_hi = first, (first if og == 1 else f"{first} + {og - 1}")
        b_in = f"{b} % {cg}" if cg > 1 else "0"
    sum_a = "" if a_lo == a_hi else f"Σ_{{{a}={a_lo}..{a_hi}}} "
    a_term = a if a_lo != a_hi else (a_lo if a_lo.isdigit() else f"({a_lo})")
    taps, bounds = [], []
    for d in range(nd):
        s, dil, lo, kk, hout = spec.stride[d], spec.dilation[d], spec.pad_lo[d], spec.kernel_size[d], spec.output_size[d]
        num = affine([(1, h[d]), (-s, i[d])], lo)  # h + P_lo - S*i
        taps.append(num if dil == 1 else f"({num})/{dil}")
        lo_expr = f"max(0, {ceil_div(affine([(1, h[d])], lo - dil * (kk - 1)), s)})"
        hi_expr = f"min({hout - 1}, {floor_div(affine([(1, h[d])], lo), s)})"
        cond = f"; only the {i[d]} with {num} divisible by {dil}" if dil > 1 else ""
        bounds.append(f"{i[d]} = {lo_expr}..{hi_expr}{cond}")
    head = index(R, ["n", b, *h]) + " = " + (f"{bias_name}[{b}] + " if bias_name else "")
    filled = head + sum_a + "".join(f"Σ_{{{ii}}} " for ii in i) + index(A, ["n", a_term, *i]) + " · " + index(K, [a_term, b_in, *taps])
    tap_form = (
        head + sum_a + "".join(f"Σ_{{{kk}=0..{kn - 1}}} " for kk, kn in zip(k, spec.kernel_size))
        + index(A, ["n", a_term, *[f"({affine([(1, hh), (-dd, kk)], lo)})/{s}" if s > 1 else affine([(1, hh), (-dd, kk)], lo)
                             for hh, kk, dd, s, lo in zip(h, k, spec.dilation, spec.stride, spec.pad_lo)]])
        + " · " + index(K, [a_term, b_in, *k])
    )
    tap_cond = []
    for d in range(nd):
        s, dil, lo, hout = spec.stride[d], spec.dilation[d], spec.pad_lo[d], spec.output_size[d]
        num = affine([(1, h[d]), (-dil, k[d])], lo)
        if s > 1:
            tap_cond.append(f"{num} divisible by {s} and 0 <= ({num})/{s} <= {hout - 1}")
        else:
            tap_cond.append(f"0 <= {num} <= {hout - 1}")
    return {
        "filled": filled,
        "bounds": bounds,
        "tap_form": tap_form,
        "tap_conditions": tap_cond,
        "general": (
            f"{R}[n, {b}, h] = " + (f"{bias_name}[{b}] + " if bias_name else "")
            + f"Σ_{{{a} in the group of {b}}} Σ_{{i, k: i*S + k*D - P_lo = h}} {A}[n, {a}, i] · {K}[{a}, "
            + (f"{b} % ({groups_text})" if spec.groups > 1 else b) + ", k]"
        ),
    }


def weight(spec: ConvSpec, R: str, a: str, b: str, G: str, A: str, groups_text: str = "C_in/G") -> dict:
    nd = spec.ndim
    i, k = names("i", nd), names("k", nd)
    n = "0" if spec.batch == 1 else "n"
    b = b if spec.in_per_group > 1 else "0"
    sums = _sum("n", 0, spec.batch - 1) if spec.batch > 0 else "Σ_{n in ∅} "
    sums += "".join(f"Σ_{{{ii}=0..{hn - 1}}} " for ii, hn in zip(i, spec.output_size))
    filled = (
        index(R, [a, b, *k]) + " = " + sums + index(G, [n, a, *i]) + " · "
        + index(A, [n, _channel(spec, a, b), *_positions(spec, i, k)])
    )
    bounds = []
    for d in range(nd):
        s, dil, lo, hin, hout = spec.stride[d], spec.dilation[d], spec.pad_lo[d], spec.input_size[d], spec.output_size[d]
        lo_expr = ceil_div(affine([(-dil, k[d])], lo), s)
        hi_expr = floor_div(affine([(-dil, k[d])], hin - 1 + lo), s)
        bounds.append(f"{i[d]} = max(0, {lo_expr})..min({hout - 1}, {hi_expr})")
    general = (
        f"{R}[{a}, {b}, k] = Σ_n Σ_i {G}[n, {a}, i] · {A}[n, " + (f"g*({groups_text}) + " if spec.groups > 1 else "")
        + f"{b}, i*S + k*D - P_lo]"
    )
    return {"general": general, "filled": filled, "bounds": bounds}


def bias(R: str, ch: str, G: str, batch: int, size) -> dict:
    i = names("i", len(size))
    sums = (_sum("n", 0, batch - 1) if batch > 0 else "Σ_{n in ∅} ") + "".join(
        f"Σ_{{{ii}=0..{hn - 1}}} " for ii, hn in zip(i, size)
    )
    n = "0" if batch == 1 else "n"
    return {"general": f"{R}[{ch}] = Σ_n Σ_i {G}[n, {ch}, i]", "filled": f"{R}[{ch}] = {sums}{index(G, [n, ch, *i])}"}


def padding_note(spec: ConvSpec, A: str) -> str:
    sizes = ", ".join(f"0..{h - 1}" for h in spec.input_size)
    if all(p == (0, 0) for p in spec.padding):
        return f"every position read lies inside {A} ({sizes}): no padding."
    if spec.padding_mode == "zeros":
        return f"{A} is 0 at positions outside {sizes} (zero padding)."
    rule = {
        "reflect": "p < 0 reads p -> -p, p > H-1 reads 2*(H-1) - p (mirror without repeating the edge)",
        "replicate": "p < 0 reads 0, p > H-1 reads H-1 (the edge repeated)",
        "circular": "p < 0 reads p + H, p > H-1 reads p - H (wrap around)",
    }[spec.padding_mode]
    return f"a position p outside {sizes} reads a real element of {A} ({spec.padding_mode!r} padding): {rule}."


def goodfellow(spec: ConvSpec, transposed: bool) -> dict:
    """Goodfellow, Bengio & Courville eqs. 9.8 and 9.11-9.13 (1-based) with this configuration's numbers.

    They are written for one 2-D multi-channel example with stride ``s``, no padding, no dilation
    and no groups. Padding is covered by reading ``V`` as the padded input.
    """
    reasons = []
    if transposed:
        reasons.append("it is a transposed convolution (it is Goodfellow's h(K, G, s) of eq. 9.13 used as a layer)")
    if spec.ndim != 2:
        reasons.append(f"it has {spec.ndim} spatial dim{'s' if spec.ndim > 1 else ''}, the book's equations have 2")
    if any(d != 1 for d in spec.dilation):
        reasons.append("it has dilation (the book has none)")
    if spec.groups != 1:
        reasons.append("it has groups (the book has none)")
    if reasons:
        return {"applies": False, "reason": "; ".join(reasons)}
    (s0, s1), (k0, k1) = spec.stride, spec.kernel_size
    (ho, wo), (lo0, lo1) = spec.output_size, spec.pad_lo
    c_in, c_out = spec.in_channels, spec.out_channels

    def lrange(j, s, kk, hout):
        if s == 1:
            return f"max(1, {affine([(1, j)], 1 - kk)})..min({hout}, {j})"
        return f"max(1, {ceil_div(f'{j} - {kk}', s)} + 1)..min({hout}, {floor_div(f'{j} - 1', s)} + 1)"

    padded = any(p != (0, 0) for p in spec.padding)
    v_note = (
        "V is the input of one example, V_{l,j,k} = x[n, l-1, j-1, k-1]"
        if not padded
        else (
            f"V is the padded input of one example (size {spec.input_size[0] + sum(spec.padding[0])} x "
            f"{spec.input_size[1] + sum(spec.padding[1])}), V_{{l,j,k}} = x[n, l-1, {affine([(1, 'j')], -1 - lo0)}, "
            f"{affine([(1, 'k')], -1 - lo1)}] "
            f"({spec.padding_mode} padding outside); h below is the gradient of that padded V"
            + (", whose border is then dropped" if spec.padding_mode == "zeros" else ", whose border is then folded back onto the copied elements")
        )
    )
    return {
        "applies": True,
        "mapping": (
            f"{v_note}; K_{{i,l,m,n}} = w[i-1, l-1, m-1, n-1]; Z_{{i,j,k}} = y[n, i-1, j-1, k-1] - b[i-1]; "
            f"G_{{i,j,k}} = dY[n, i-1, j-1, k-1]; g sums over the batch: dW = Σ_n g; h = dX[n] (per example)"
        ),
        "eq_9_8": (
            f"Z_{{i,j,k}} = Σ_{{l=1..{c_in}}} Σ_{{m=1..{k0}}} Σ_{{n=1..{k1}}} "
            f"V_{{l,(j-1)*{s0}+m,(k-1)*{s1}+n}} K_{{i,l,m,n}}   for i=1..{c_out}, j=1..{ho}, k=1..{wo}"
        ),
        "eq_9_11": (
            f"g_{{i,j,k,l}} = ∂J/∂K_{{i,j,k,l}} = Σ_{{m=1..{ho}}} Σ_{{n=1..{wo}}} G_{{i,m,n}} V_{{j,(m-1)*{s0}+k,(n-1)*{s1}+l}}"
            f"   for i=1..{c_out}, j=1..{c_in}, k=1..{k0}, l=1..{k1}"
        ),
        "eq_9_13": (
            f"h_{{i,j,k}} = ∂J/∂V_{{i,j,k}} = Σ_{{l,m: (l-1)*{s0}+m=j}} Σ_{{n,p: (n-1)*{s1}+p=k}} Σ_{{q=1..{c_out}}} "
            f"K_{{q,i,m,p}} G_{{q,l,n}}"
        ),
        "eq_9_13_bounds": [
            f"l = {lrange('j', s0, k0, ho)}, m = j - (l-1)*{s0}",
            f"n = {lrange('k', s1, k1, wo)}, p = k - (n-1)*{s1}",
        ],
    }
