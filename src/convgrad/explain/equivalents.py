"""The gradients as operations: runnable calls in convgrad, PyTorch, JAX and TensorFlow.

For a convolution with stride S, padding (P_lo, P_hi), dilation D, groups G and unread tail
``a = (H + P_lo + P_hi - K_eff) mod S``:

- dX is the transposed convolution of dY with the same S, P, D, G and ``output_padding = a``;
  equivalently the full correlation of the stride-dilated dY (S-1 zeros between samples) with
  the flipped kernel (in/out channels swapped within each group), padded by ``D*(K-1) - P_lo``
  before and ``D*(K-1) - P_hi + a`` after (negative = crop), at dilation D and stride 1;
- dW is a correlation of X with dY in which stride and dilation swap roles: X with batch and
  channels swapped is the input, dY (likewise) the kernel, dilated by S, moving with stride D,
  with padding ``(P_lo, P_hi - a)``; groups become batch groups;
- db is the sum of dY over everything but the channel axis.

A transposed convolution is the first of these used as a layer; its own gradients are an
ordinary convolution (dX) and the convolution's weight gradient with input and grad_output
exchanged (dW).

Every snippet takes NumPy arrays ``x``, ``w``, ``dy`` (batched, channels first) and leaves
``dx``/``dw``/``db`` as NumPy-convertible arrays. The convgrad and PyTorch snippets are run by
the tests; the JAX and TensorFlow ones were checked by hand (JAX 0.10, TensorFlow 2.21).
"""

from __future__ import annotations

from ..padding import padded_spec
from ..reparam import grad_input_as_forward, grad_weight_as_forward
from ..spec import source_index

__all__ = ["equivalents"]

_NP_MODES = {"reflect": "reflect", "replicate": "edge", "circular": "wrap"}


def _t(values):
    """An int when all per-dim values agree, else a tuple (as a literal)."""
    values = tuple(values)
    return repr(values[0]) if len(set(values)) == 1 else repr(values)


def _pads_arg(pairs) -> str:
    if all(lo == hi for lo, hi in pairs):
        return _t(lo for lo, _ in pairs)
    return repr(tuple(tuple(p) for p in pairs))


def _spatial_axes(nd: int) -> str:
    return repr(tuple(range(2, 2 + nd)))


def _torch_pad(pairs) -> str:
    flat = []
    for lo, hi in reversed(pairs):
        flat += [lo, hi]
    return repr(tuple(flat))


def _crop_and_pad(name: str, pairs, lengths) -> tuple[str, list]:
    """Split (lo, hi) pads that may be negative into a crop of ``name`` and non-negative pads.

    Padding by ``(lo, hi)`` means: add ``max(lo, 0)`` and ``max(hi, 0)`` zeros, then remove ``-lo`` and
    ``-hi`` elements where negative. A crop larger than the data left on its side reaches into the
    other side's zeros (``H = 1``, pads ``(2, -2)``: one zero remains), so the crop of the array is
    clipped to its length and the rest taken off the other side's padding.
    """
    crops, pads = [], []
    for (lo, hi), length in zip(pairs, lengths):
        cut_lo = min(max(-lo, 0), length)
        cut_hi = min(max(-hi, 0), length - cut_lo)
        pad_lo = max(lo, 0) - (max(-hi, 0) - cut_hi)
        pad_hi = max(hi, 0) - (max(-lo, 0) - cut_lo)
        crops.append(f"{cut_lo or ''}:{-cut_hi if cut_hi else ''}")
        pads.append((pad_lo, pad_hi))
    if any(lo_hi for lo_hi in pairs) and any(
            min(max(-lo, 0), n) + min(max(-hi, 0), n - min(max(-lo, 0), n)) >= n for (lo, hi), n in zip(pairs, lengths)):
        # the crop takes all of the array along some dim: pad explicitly, then crop (only zeros remain there)
        widths = ((0, 0), (0, 0), *((max(lo, 0), max(hi, 0)) for lo, hi in pairs))
        cuts = ", ".join(f"{max(-lo, 0) or ''}:{(n + max(lo, 0) + max(hi, 0)) - max(-hi, 0) if hi < 0 else ''}"
                         for (lo, hi), n in zip(pairs, lengths))
        return f"np.pad({name}, {widths!r})[:, :, {cuts}]", [(0, 0)] * len(pairs)
    if all(c == ":" for c in crops):
        return name, pads
    return f"{name}[:, :, {', '.join(crops)}]", pads


class _Config:
    def __init__(self, ex):
        s = ex.spec
        self.ex, self.s = ex, s
        self.nd = s.ndim
        self.S, self.D, self.K = s.stride, s.dilation, s.kernel_size
        self.G, self.Cg, self.Og = s.groups, s.in_per_group, s.out_per_group
        self.pads = s.padding
        self.a = s.unread_tail
        self.mode = s.padding_mode
        self.sym = all(lo == hi for lo, hi in s.padding)
        self.kw = f"stride={_t(self.S)}, padding={_pads_arg(self.pads)}, dilation={_t(self.D)}, groups={self.G}"
        # the gradients as forward convolutions (convgrad.reparam), of the explicitly padded input
        # when the padding holds copies
        zero_padded = s if self.mode == "zeros" else padded_spec(s)
        self.dx_form = grad_input_as_forward(zero_padded)
        self.dw_form = grad_weight_as_forward(zero_padded)
        self.torch_ok = self.nd <= 3
        self.tf_ok = self.nd <= 3

    def flipped_weight(self, w="w") -> str:
        s = self.s
        k = ", ".join(map(str, self.K))
        return (
            f"wf = np.flip({w}.reshape({self.G}, {self.Og}, {self.Cg}, {k}).swapaxes(1, 2)"
            f".reshape({s.in_channels}, {self.Og}, {k}), axis={_spatial_axes(self.nd)})"
            "   # flipped kernel, in/out channels swapped within each group"
        )


def equivalents(ex) -> dict:
    """``{quantity: {"statement", "calls": {framework: code}}}`` for this configuration."""
    c = _Config(ex)
    if ex.transposed:
        return _transposed(c)
    return _conv(c)


# ------------------------------------------------------------------------------------------------
# convolution
# ------------------------------------------------------------------------------------------------


def _fold_code(c: _Config, var: str) -> list[str]:
    s = c.s
    lines = ["# fold the border back: each padded position adds its gradient onto the element it copies"]
    for d in range(c.nd):
        lo, hi = s.padding[d]
        src = [source_index(p, s.input_size[d], c.mode) for p in range(-lo, s.input_size[d] + hi)]
        lines.append(f"src{d} = np.array({src})")
    lines.append(f"for axis, src, size in {', '.join(f'({2 + d}, src{d}, {s.input_size[d]})' for d in range(c.nd))},:")
    lines.append(f"    out = np.zeros({var}.shape[:axis] + (size,) + {var}.shape[axis + 1:])")
    lines.append(f"    np.add.at(out, (slice(None),) * axis + (src,), {var})")
    lines.append(f"    {var} = out")
    return lines


def _np_pad(c: _Config, var: str) -> str:
    widths = repr(((0, 0), (0, 0), *c.pads))
    return f"np.pad({var}, {widths}, mode={_NP_MODES[c.mode]!r})"


def _full_correlation_dx(c: _Config) -> str:
    s = c.s
    lines = ["import numpy as np, convgrad"]
    if c.mode != "zeros":
        lines.append(f"# with {c.mode!r} padding: the gradient of the explicitly padded input first, then the fold")
    size = c.dx_form.output_size
    lengths = [(o - 1) * st + 1 for o, st in zip(s.output_size, c.S)]
    steps = ", ".join(f"::{st}" for st in c.S)
    lines.append(
        f"dyd = np.zeros(dy.shape[:2] + {tuple(lengths)!r}); dyd[:, :, {steps}] = dy   # dY with S-1 zeros between samples"
    )
    lines.append(c.flipped_weight())
    full = list(zip(c.dx_form.pad_lo, c.dx_form.pad_hi))
    src, nonneg = _crop_and_pad("dyd", full, lengths)
    lines.append(
        f"# pad D*(K-1) - P_lo before and D*(K-1) - P_hi + a after: {repr(tuple(full))}"
        + (" (negative = crop)" if src != "dyd" else "")
    )
    var = "dxp" if c.mode != "zeros" else "dx"
    lines.append(
        f"{var} = convgrad.conv({src}, wf, padding={repr(tuple(nonneg))}, dilation={_t(c.D)}, groups={c.G})"
        f"   # {tuple(size)!r} spatially"
    )
    if c.mode != "zeros":
        lines.append("dx = dxp")
        lines += _fold_code(c, "dx")
    return "\n".join(lines)


def _dw_as_conv(c: _Config) -> str:
    s = c.s
    lines = ["import numpy as np, convgrad"]
    xs = "x"
    if c.mode != "zeros":
        lines.append(f"xp = {_np_pad(c, 'x')}   # the border holds copies: pad explicitly")
        xs = "xp"
    pads = list(zip(c.dw_form.pad_lo, c.dw_form.pad_hi))
    sizes = [h + (lo + hi if c.mode != "zeros" else 0) for h, (lo, hi) in zip(s.input_size, c.pads)]
    src, nonneg = _crop_and_pad(xs, pads, sizes)
    lines.append(f"xs = {src}.swapaxes(0, 1)   # (C_in, N, *H): channels become the batch, the batch the channels")
    lines.append("dys = dy.swapaxes(0, 1)   # (C_out, N, *H_out): dY becomes the kernel")
    note = f"# padding (P_lo, P_hi - a) = {repr(tuple(pads))}" + (" (negative = crop)" if src != xs else "")
    lines.append(note)
    call = (
        f"convgrad.conv(xs[{{lo}}:{{hi}}], dys[{{olo}}:{{ohi}}], stride={_t(c.D)}, dilation={_t(c.S)}, "
        f"padding={repr(tuple(nonneg))}).swapaxes(0, 1)"
    )
    if c.G == 1:
        lines.append(
            "dw = " + call.format(lo="", hi="", olo="", ohi="").replace("xs[:]", "xs").replace("dys[:]", "dys")
            + "   # stride <-> dilation"
        )
    else:
        lines.append(
            f"dw = np.concatenate([{call.format(lo=f'g*{c.Cg}', hi=f'(g+1)*{c.Cg}', olo=f'g*{c.Og}', ohi=f'(g+1)*{c.Og}')}"
            f" for g in range({c.G})])   # one correlation per group (batch grouping)"
        )
    return "\n".join(lines)


def _torch_conv(c: _Config) -> dict:
    nd, s = c.nd, c.s
    head = "import torch, torch.nn.functional as F\nx_, w_, dy_ = (torch.from_numpy(a) for a in (x, w, dy))"
    if c.mode != "zeros":
        autograd = (
            "import torch, torch.nn.functional as F\n"
            "x_, w_ = torch.from_numpy(x).requires_grad_(), torch.from_numpy(w).requires_grad_()\n"
            f"y_ = F.conv{nd}d(F.pad(x_, {_torch_pad(c.pads)}, mode={c.mode!r}), w_, stride={_t(c.S)}, "
            f"dilation={_t(c.D)}, groups={c.G})\n"
            "y_.backward(torch.from_numpy(dy))\n"
            "dx, dw = x_.grad, w_.grad"
        )
        return {"grad_input": autograd, "grad_weight": autograd}
    if c.sym:
        p = _t(lo for lo, _ in c.pads)
        kw = f"stride={_t(c.S)}, padding={p}, dilation={_t(c.D)}, groups={c.G}"
        dx = (
            f"{head}\ndx = torch.nn.grad.conv{nd}d_input(x_.shape, w_, dy_, {kw})\n"
            f"dx = F.conv_transpose{nd}d(dy_, w_, stride={_t(c.S)}, padding={p}, output_padding={_t(c.a)}, "
            f"groups={c.G}, dilation={_t(c.D)})   # the same"
        )
        dw = f"{head}\ndw = torch.nn.grad.conv{nd}d_weight(x_, w_.shape, dy_, {kw})"
    else:
        crop = ", ".join(f"{lo}:{lo + h}" for (lo, _), h in zip(c.pads, s.input_size))
        dx = (
            f"{head}\n# asymmetric padding: transposed convolution without padding, then crop P_lo from the start\n"
            f"dx = F.conv_transpose{nd}d(dy_, w_, stride={_t(c.S)}, output_padding={_t(c.a)}, groups={c.G}, "
            f"dilation={_t(c.D)})[:, :, {crop}]"
        )
        dw = (
            f"{head}\ndw = torch.nn.grad.conv{nd}d_weight(F.pad(x_, {_torch_pad(c.pads)}), w_.shape, dy_, "
            f"stride={_t(c.S)}, dilation={_t(c.D)}, groups={c.G})"
        )
    return {"grad_input": dx, "grad_weight": dw}


def _jax_conv(c: _Config) -> dict:
    nd = c.nd
    head = 'import jax, numpy as np\njax.config.update("jax_enable_x64", True)\nfrom jax import lax'
    if c.mode != "zeros":
        widths = repr(((0, 0), (0, 0), *c.pads))
        vjp = (
            f"{head}\nimport jax.numpy as jnp\n"
            f"f = lambda x, w: lax.conv_general_dilated(jnp.pad(x, {widths}, mode={_NP_MODES[c.mode]!r}), w, "
            f"{tuple(c.S)!r}, 'VALID', rhs_dilation={tuple(c.D)!r}, feature_group_count={c.G})\n"
            "y, vjp = jax.vjp(f, x, w)\n"
            "dx, dw = vjp(dy)"
        )
        return {"grad_input": vjp, "grad_weight": vjp}
    dx_pads = tuple(zip(c.dx_form.pad_lo, c.dx_form.pad_hi))
    dx = (
        f"{head}\n{c.flipped_weight()}\n"
        f"dx = lax.conv_general_dilated(dy, wf, window_strides={(1,) * nd!r}, padding={dx_pads!r}, "
        f"lhs_dilation={tuple(c.S)!r}, rhs_dilation={tuple(c.D)!r}, feature_group_count={c.G})"
    )
    dw_pads = tuple(zip(c.dw_form.pad_lo, c.dw_form.pad_hi))
    dw = (
        f"{head}\n"
        f"dw = lax.conv_general_dilated(x.swapaxes(0, 1), dy.swapaxes(0, 1), window_strides={tuple(c.D)!r}, "
        f"padding={dw_pads!r}, rhs_dilation={tuple(c.S)!r}, batch_group_count={c.G}).swapaxes(0, 1)"
    )
    return {"grad_input": dx, "grad_weight": dw}


def _tf_conv_def(c: _Config) -> list[str]:
    """TensorFlow lines defining ``conv(x_, w_)``: this convolution on channels-last tensors.

    Checked against TF 2.21 on CPU, which refuses strides > 1 together with dilation > 1
    (so the kernel is dilated explicitly) and has no gradient for grouped convolutions (so each
    group is its own convolution).
    """
    s, nd = c.s, c.nd
    lines = [
        "import numpy as np, tensorflow as tf",
        "def conv(x_, w_):   # channels last: x_ (N, *H, C_in), w_ (*K, C_in/groups, C_out)",
    ]
    if c.mode == "zeros":
        if any(p != (0, 0) for p in c.pads):
            lines.append(f"    x_ = tf.pad(x_, {[[0, 0], *[list(p) for p in c.pads], [0, 0]]!r})")
    else:
        for d in range(nd):
            lo, hi = s.padding[d]
            src = [source_index(p, s.input_size[d], c.mode) for p in range(-lo, s.input_size[d] + hi)]
            lines.append(f"    x_ = tf.gather(x_, {src}, axis={1 + d})   # {c.mode} padding of dim {d}")
    dil = c.D
    if any(st > 1 for st in c.S) and any(d > 1 for d in c.D):
        lines.append("    # TF refuses stride > 1 with dilation > 1: dilate the kernel explicitly (D-1 zeros between taps)")
        for d, (k, dd) in enumerate(zip(c.K, c.D)):
            if dd > 1:
                idx = [p // dd if p % dd == 0 else k for p in range(dd * (k - 1) + 1)]
                zero = "w_[" + ":, " * d + ":1]"
                lines.append(f"    w_ = tf.gather(tf.concat([w_, tf.zeros_like({zero})], axis={d}), {idx}, axis={d})")
        dil = (1,) * nd
    kw = f"strides={_t(c.S)}, padding='VALID', dilations={_t(dil)}"
    if c.G > 1:
        lines.append("    # one convolution per group (TF has no gradient for grouped convolutions on CPU)")
        lines.append(
            f"    return tf.concat([tf.nn.convolution(x_[..., {c.Cg}*g:{c.Cg}*(g+1)], w_[..., {c.Og}*g:{c.Og}*(g+1)], "
            f"{kw}) for g in range({c.G})], axis=-1)"
        )
    else:
        lines.append(f"    return tf.nn.convolution(x_, w_, {kw})")
    return lines


def _tf_function(nd: int) -> str:
    return "@tf.function" + ("   # needed: an eager GradientTape fails on 3-D convolutions in TF 2.21" if nd == 3 else "")



_TF_IN = "x_, w_, dy_ = tf.constant(np.moveaxis(x, 1, -1)), tf.constant(np.moveaxis(w, (0, 1), (-1, -2))), tf.constant(np.moveaxis(dy, 1, -1))"


def _tf_conv(c: _Config) -> str:
    lines = _tf_conv_def(c) + [
        _tf_function(c.nd),
        "def grads(x_, w_, dy_):",
        "    with tf.GradientTape() as tape:",
        "        tape.watch([x_, w_])",
        "        y_ = conv(x_, w_)",
        "    return [tf.convert_to_tensor(g) for g in tape.gradient(y_, [x_, w_], output_gradients=dy_)]",
        _TF_IN,
        "dx, dw = grads(x_, w_, dy_)",
        "dx, dw = np.moveaxis(dx.numpy(), -1, 1), np.moveaxis(dw.numpy(), (-1, -2), (0, 1))",
    ]
    return "\n".join(lines)


def _tf_transposed(c: _Config, extra) -> str:
    s = c.s
    z_shape = (s.batch, *s.input_size, s.in_channels)
    lines = _tf_conv_def(c) + [
        "# the transposed convolution is the input-gradient of conv; its dx is conv(dy), its dw conv's weight-gradient",
        _tf_function(c.nd),
        "def passes(x_, w_, dy_):",
        f"    z = tf.zeros({z_shape!r}, x_.dtype)",
        "    with tf.GradientTape(persistent=True) as tape:",
        "        tape.watch([z, w_])",
        "        cz, cdy = conv(z, w_), conv(dy_, w_)",
        "    return tape.gradient(cz, z, output_gradients=x_), cdy, tf.convert_to_tensor(tape.gradient(cdy, w_, output_gradients=x_))",
    ]
    if any(extra):
        lines.append(
            f"xz = np.pad(np.moveaxis(x, 1, -1), {((0, 0), *((0, e) for e in extra), (0, 0))!r})   "
            "# zeros for the convolution's extra outputs"
        )
        lines.append(_TF_IN.replace("np.moveaxis(x, 1, -1)", "xz", 1))
    else:
        lines.append(_TF_IN)
    lines.append("y, dx, dw = passes(x_, w_, dy_)")
    crop = "[:, :, " + ", ".join(f":{h}" for h in s.output_size) + "]" if any(extra) else ""
    lines.append(
        f"y, dx, dw = np.moveaxis(y.numpy(), -1, 1), np.moveaxis(dx.numpy(), -1, 1){crop}, "
        "np.moveaxis(dw.numpy(), (-1, -2), (0, 1))"
    )
    return "\n".join(lines)


def _conv(c: _Config) -> dict:
    s = c.s
    mode_kw = f", padding_mode={c.mode!r}" if c.mode != "zeros" else ""
    torch_calls = _torch_conv(c) if c.torch_ok else None
    jax_calls = _jax_conv(c)
    tf_call = _tf_conv(c) if c.tf_ok else None
    no_torch = f"# PyTorch has no {c.nd}-D convolution (it stops at 3-D)"
    dx_calls = {
        "convgrad": (
            "import convgrad\n"
            f"dx = convgrad.conv_input(x.shape, w, dy, {c.kw}{mode_kw})"
            + (
                f"\ndx = convgrad.conv_transpose(dy, w, stride={_t(c.S)}, padding={_pads_arg(c.pads)}, "
                f"output_padding={_t(c.a)}, groups={c.G}, dilation={_t(c.D)})   # the same"
                if c.mode == "zeros"
                else ""
            )
        ),
        "convgrad (full correlation)": _full_correlation_dx(c),
        "pytorch": torch_calls["grad_input"] if torch_calls else no_torch,
        "jax": jax_calls["grad_input"],
        "tensorflow": tf_call if tf_call else f"# TensorFlow has no {c.nd}-D convolution",
    }
    dw_calls = {
        "convgrad": f"import convgrad\ndw = convgrad.conv_weight(x, w.shape, dy, {c.kw}{mode_kw})",
        "convgrad (as a convolution)": _dw_as_conv(c),
        "pytorch": torch_calls["grad_weight"] if torch_calls else no_torch,
        "jax": jax_calls["grad_weight"],
        "tensorflow": "# dw comes from the same GradientTape call as dx above" if tf_call else "",
    }
    axes = "(0, " + ", ".join(str(2 + d) for d in range(c.nd)) + ")"
    base = c.pads if c.mode == "zeros" else [(0, 0)] * c.nd  # a non-zero mode pads x explicitly first
    full = [(d * (k - 1) - lo, d * (k - 1) - hi + a) for d, k, (lo, hi), a in zip(c.D, c.K, base, c.a)]
    return {
        "grad_input": {
            "statement": (
                f"dX is the transposed convolution of dY with stride {_t(c.S)}, padding {_pads_arg(c.pads)}, dilation "
                f"{_t(c.D)}, groups {c.G} and output_padding = the unread tail = {_t(c.a)}; equivalently the full "
                f"correlation of dY dilated by the stride (S-1 zeros between samples) with the flipped kernel (in/out "
                f"channels swapped within each group), padded by D*(K-1) - P_lo before and D*(K-1) - P_hi + a after = "
                f"{repr(tuple(full))}"
                + (" (a negative pad is a crop)" if any(v < 0 for p in full for v in p) else "")
                + f", at dilation {_t(c.D)} and stride 1."
                + (
                    f" With {c.mode!r} padding these numbers are for the explicitly padded input (P = 0): the result is "
                    "the gradient of the padded input, which is then folded back onto the elements the border copies."
                    if c.mode != "zeros"
                    else ""
                )
            ),
            "calls": dx_calls,
        },
        "grad_weight": {
            "statement": (
                f"dW is a correlation of X with dY in which stride and dilation swap roles: X with batch and channel "
                f"axes swapped is the input, dY (likewise swapped) is the kernel dilated by the stride {_t(c.S)}, moving "
                f"with stride = the dilation {_t(c.D)}, padding (P_lo, P_hi - a) = "
                f"{repr(tuple((lo, u) for lo, u in zip(s.pad_lo, s.used_pad_hi)))}"
                + (f"; the {c.G} groups become batch groups" if c.G > 1 else "")
                + "."
            ),
            "calls": dw_calls,
        },
        "grad_bias": {
            "statement": "db is the sum of dY over the batch and every spatial axis.",
            "calls": {"numpy": f"db = dy.sum(axis={axes})"},
        },
    }


# ------------------------------------------------------------------------------------------------
# transposed convolution
# ------------------------------------------------------------------------------------------------


def _transposed(c: _Config) -> dict:
    nd, s = c.nd, c.s
    axes = "(0, " + ", ".join(str(2 + d) for d in range(nd)) + ")"
    # output_padding >= stride (possible when dilation > stride): the convolution whose gradient this
    # is has floor(output_padding/S) more outputs than our input has elements. Extending x by zeros
    # there (and cropping dx back) keeps every identity exact.
    extra = [a // st for a, st in zip(c.a, c.S)]
    conv_shape = (*s.output_shape[:2], *(h + e for h, e in zip(s.output_size, extra)))
    widen = any(extra)
    xz_np = f"xz = np.pad(x, {((0, 0), (0, 0), *((0, e) for e in extra))!r})   # zeros for the convolution's extra outputs"
    xz = "xz" if widen else "x"
    crop = "[:, :, " + ", ".join(f":{h}" for h in s.output_size) + "]" if widen else ""
    note = (
        f"# output_padding {_t(c.a)} >= stride {_t(c.S)}: the convolution has {_t(extra)} more outputs than x has "
        "elements; they are zero-extended / cropped\n"
        if widen
        else ""
    )
    head = "import torch, torch.nn.functional as F\nx_, w_, dy_ = (torch.from_numpy(a) for a in (x, w, dy))"
    kw_t = f"stride={_t(c.S)}, padding={_pads_arg(c.pads)}, dilation={_t(c.D)}, groups={c.G}"
    if c.torch_ok and c.sym:
        p = _t(lo for lo, _ in c.pads)
        kw = f"stride={_t(c.S)}, padding={p}, dilation={_t(c.D)}, groups={c.G}"
        xz_t = f"\nxz_ = F.pad(x_, {_torch_pad([(0, e) for e in extra])})" if widen else ""
        xt = "xz_" if widen else "x_"
        torch_y = (
            f"{head}\ny = F.conv_transpose{nd}d(x_, w_, stride={_t(c.S)}, padding={p}, output_padding={_t(c.a)}, "
            f"groups={c.G}, dilation={_t(c.D)}){xz_t}\n"
            f"y = torch.nn.grad.conv{nd}d_input({tuple(s.input_shape)!r}, w_, {xt}, {kw})   # the same"
        )
        torch_dx = f"{head}\ndx = F.conv{nd}d(dy_, w_, {kw}){crop}"
        torch_dw = f"{head}{xz_t}\ndw = torch.nn.grad.conv{nd}d_weight(dy_, w_.shape, {xt}, {kw})"
    elif c.torch_ok:
        torch_y = torch_dx = torch_dw = (
            "# PyTorch's conv_transpose takes symmetric padding only: pad 0 and crop P_lo/P_hi from the output "
            "(or use convgrad)"
        )
    else:
        torch_y = torch_dx = torch_dw = f"# PyTorch has no {nd}-D convolution"
    dx_pads = tuple(zip(c.dx_form.pad_lo, c.dx_form.pad_hi))
    tf_all = _tf_transposed(c, extra) if c.tf_ok else f"# TensorFlow has no {nd}-D convolution"
    tf_same = "# y, dx and dw all come from the TensorFlow call under 'output'" if c.tf_ok else tf_all
    jhead = 'import jax, numpy as np\njax.config.update("jax_enable_x64", True)\nfrom jax import lax'
    np_head = "import numpy as np, convgrad\n" + (xz_np + "\n" if widen else "")
    return {
        "output": {
            "statement": (
                "The transposed convolution is the input-gradient of the convolution with the same stride, padding, "
                f"dilation and groups that maps shape {s.input_shape} to {conv_shape}: every input element x[n, c, i] "
                "adds x[n, c, i]*w[c, o', k] into y at position i*S + k*D - P_lo (positions outside the output are "
                f"cropped away). output_padding = {_t(c.a)} picks its output size."
            ),
            "calls": {
                "convgrad": (
                    np_head + note
                    + f"y = convgrad.conv_transpose(x, w, stride={_t(c.S)}, padding={_pads_arg(c.pads)}, "
                    f"output_padding={_t(c.a)}, groups={c.G}, dilation={_t(c.D)})\n"
                    f"y = convgrad.conv_input({tuple(s.input_shape)!r}, w, {xz}, {kw_t})   # the same"
                ),
                "pytorch": torch_y,
                "jax": (
                    f"{jhead}\n{c.flipped_weight()}\n"
                    f"y = lax.conv_general_dilated(x, wf, window_strides={(1,) * nd!r}, padding={dx_pads!r}, "
                    f"lhs_dilation={tuple(c.S)!r}, rhs_dilation={tuple(c.D)!r}, feature_group_count={c.G})"
                ),
                "tensorflow": tf_all,
            },
        },
        "grad_input": {
            "statement": (
                "dX of a transposed convolution is an ordinary convolution of dY with the same weight, stride, padding, "
                "dilation and groups" + (f", cropped to x's size {s.output_size}" if widen else "") + "."
            ),
            "calls": {
                "convgrad": f"import convgrad\n{note}dx = convgrad.conv(dy, w, {kw_t}){crop}",
                "pytorch": torch_dx,
                "jax": (
                    f"{jhead}\ndx = lax.conv_general_dilated(dy, w, {tuple(c.S)!r}, {tuple(c.pads)!r}, "
                    f"rhs_dilation={tuple(c.D)!r}, feature_group_count={c.G}){crop}"
                ),
                "tensorflow": tf_same,
            },
        },
        "grad_weight": {
            "statement": (
                "dW of a transposed convolution is the weight-gradient of that convolution with its input and "
                "grad_output exchanged: input dY, grad_output X" + (" (zero-extended)" if widen else "") + "."
            ),
            "calls": {
                "convgrad": f"{np_head}{note}dw = convgrad.conv_weight(dy, w.shape, {xz}, {kw_t})",
                "pytorch": torch_dw,
                "jax": (
                    f"{jhead}\n"
                    f"dw = lax.conv_general_dilated(dy.swapaxes(0, 1), x.swapaxes(0, 1), window_strides={tuple(c.D)!r}, "
                    f"padding={tuple(zip(c.dw_form.pad_lo, c.dw_form.pad_hi))!r}, rhs_dilation={tuple(c.S)!r}, "
                    f"batch_group_count={c.G}).swapaxes(0, 1)"
                ),
                "tensorflow": tf_same,
            },
        },
        "grad_bias": {
            "statement": "db is the sum of dY over the batch and every spatial axis.",
            "calls": {"numpy": f"db = dy.sum(axis={axes})"},
        },
    }
