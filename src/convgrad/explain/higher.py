"""Second-order and forward-mode derivatives as operations: each is again this configuration's convolution.

The gradients ``dX = conv_input(dY, W)``, ``dW = conv_weight(X, dY)``, ``db = sum dY`` are
bilinear, so the gradients of ``L2 = <ggX, dX> + <ggW, dW> + <ggb, db>`` (the double backward,
:func:`convgrad.conv_double_backward`) and the tangent of ``Y`` (forward mode,
:func:`convgrad.conv_jvp`) are the same three operations with other operands::

    dL2/d(dY) = conv(ggX, W) + conv(X, ggW) + ggb
    dL2/dX    = conv_input(dY, ggW)
    dL2/dW    = conv_weight(ggX, dY)
    tY        = conv(tX, W) + conv(X, tW) + tb

:func:`higher_order` prints them as runnable calls, like :mod:`convgrad.explain.equivalents` does
for the first-order gradients. Every snippet reads NumPy arrays ``x``, ``w``, ``dy`` and
``ggx``, ``ggw``, ``ggb`` (double backward) or ``b``, ``tx``, ``tw``, ``tb`` (forward mode),
batched and channels first, and leaves ``gdy``, ``gx``, ``gw`` or ``y``, ``ty``. The convgrad,
PyTorch and JAX snippets are run by the tests.
"""

from __future__ import annotations

from .derivation import _wrap
from .equivalents import _NP_MODES, _Config, _pads_arg, _t, _torch_pad

__all__ = ["higher_order", "render_higher_order"]

LABELS = {
    "double_backward_grad_output": "dL2/d(dY)",
    "double_backward_input": "dL2/dX",
    "double_backward_weight": "dL2/dW",
    "double_backward": "(dL2/d(dY), dL2/dX, dL2/dW)",
    "jvp": "tY",
}

_JAX_HEAD = 'import jax, jax.numpy as jnp, numpy as np\njax.config.update("jax_enable_x64", True)\nfrom jax import lax'


class _Higher:
    """The per-configuration strings: keyword arguments, PyTorch and JAX forward expressions."""

    def __init__(self, ex):
        c = _Config(ex)
        self.c, self.transposed, self.nd = c, ex.transposed, c.nd
        s = c.s
        self.mode_kw = f", padding_mode={c.mode!r}" if c.mode != "zeros" else ""
        # convgrad.conv's keywords (for a transposed configuration: of the convolution it transposes)
        self.conv_kw = c.kw + self.mode_kw
        self.t_kw = (f"stride={_t(c.S)}, padding={_pads_arg(c.pads)}, output_padding={_t(c.a)}, groups={c.G}, "
                     f"dilation={_t(c.D)}")
        self.out_channels = s.in_channels if ex.transposed else s.out_channels
        # output_padding >= stride (dilation > stride): the convolution has more outputs than the transposed
        # convolution's input has elements; zero-extend x-shaped operands and crop x-shaped results
        self.extra = [a // st for a, st in zip(c.a, c.S)] if ex.transposed else [0] * c.nd
        self.widen = any(self.extra)
        self.crop = "[:, :, " + ", ".join(f":{h}" for h in s.output_size) + "]" if self.widen else ""
        self.torch_ok = c.torch_ok and (not ex.transposed or c.sym)

    # -- PyTorch ---------------------------------------------------------------------------------
    def torch_forward(self, x: str, w: str, b: str) -> str:
        c, nd = self.c, self.nd
        if self.transposed:
            p = _t(lo for lo, _ in c.pads)
            return (f"F.conv_transpose{nd}d({x}, {w}, {b}, stride={_t(c.S)}, padding={p}, output_padding={_t(c.a)}, "
                    f"groups={c.G}, dilation={_t(c.D)})")
        if c.mode == "zeros" and c.sym:
            return (f"F.conv{nd}d({x}, {w}, {b}, stride={_t(c.S)}, padding={_t(lo for lo, _ in c.pads)}, "
                    f"dilation={_t(c.D)}, groups={c.G})")
        mode = "constant" if c.mode == "zeros" else c.mode
        return (f"F.conv{nd}d(F.pad({x}, {_torch_pad(c.pads)}, mode={mode!r}), {w}, {b}, stride={_t(c.S)}, "
                f"dilation={_t(c.D)}, groups={c.G})")

    def torch_missing(self) -> str:
        if not self.c.torch_ok:
            return f"# PyTorch has no {self.nd}-D convolution (it stops at 3-D)"
        return "# PyTorch's conv_transpose takes symmetric padding only (use convgrad)"

    def torch_double_backward(self) -> str:
        if not self.torch_ok:
            return self.torch_missing()
        return "\n".join([
            "import torch, torch.nn.functional as F",
            "x_, w_, dy_ = (torch.from_numpy(a).requires_grad_() for a in (x, w, dy))",
            f"b_ = torch.zeros({self.out_channels}, dtype=x_.dtype, requires_grad=True)",
            f"y_ = {self.torch_forward('x_', 'w_', 'b_')}",
            "dx_, dw_, db_ = torch.autograd.grad(y_, (x_, w_, b_), dy_, create_graph=True)   # the first backward, kept differentiable",
            "l2 = sum((g * torch.from_numpy(gg)).sum() for g, gg in ((dx_, ggx), (dw_, ggw), (db_, ggb)))",
            "gdy, gx, gw = torch.autograd.grad(l2, (dy_, x_, w_))   # as torch.autograd.gradgradcheck differentiates",
        ])

    def torch_jvp(self) -> str:
        if not self.torch_ok:
            return self.torch_missing()
        return "\n".join([
            "import torch, torch.nn.functional as F",
            f"f = lambda x_, w_, b_: {self.torch_forward('x_', 'w_', 'b_')}",
            "y, ty = torch.func.jvp(f, tuple(map(torch.from_numpy, (x, w, b))), tuple(map(torch.from_numpy, (tx, tw, tb))))",
        ])

    # -- JAX -------------------------------------------------------------------------------------
    def jax_forward(self) -> list[str]:
        """Lines defining ``f(x, w, b)``: this configuration's layer in ``jax.lax``."""
        c, nd = self.c, self.nd
        bias = f"b.reshape(1, -1{', 1' * nd})"
        lines = ["def f(x, w, b):"]
        if self.transposed:
            lines.append("    " + c.flipped_weight().replace("np.", "jnp."))
            pads = tuple(zip(c.dx_form.pad_lo, c.dx_form.pad_hi))
            lines.append(f"    return lax.conv_general_dilated(x, wf, {(1,) * nd!r}, {pads!r}, lhs_dilation={tuple(c.S)!r}, "
                         f"rhs_dilation={tuple(c.D)!r}, feature_group_count={c.G}) + {bias}")
        elif c.mode == "zeros":
            lines.append(f"    return lax.conv_general_dilated(x, w, {tuple(c.S)!r}, {tuple(c.pads)!r}, "
                         f"rhs_dilation={tuple(c.D)!r}, feature_group_count={c.G}) + {bias}")
        else:
            widths = repr(((0, 0), (0, 0), *c.pads))
            lines.append(f"    return lax.conv_general_dilated(jnp.pad(x, {widths}, mode={_NP_MODES[c.mode]!r}), w, "
                         f"{tuple(c.S)!r}, 'VALID', rhs_dilation={tuple(c.D)!r}, feature_group_count={c.G}) + {bias}")
        return lines

    def jax_double_backward(self) -> str:
        return "\n".join([_JAX_HEAD, *self.jax_forward(),
                          f"b = np.zeros({self.out_channels})",
                          "backward = lambda dy, x, w, b: jax.vjp(f, x, w, b)[1](dy)   # (dx, dw, db)",
                          "_, vjp2 = jax.vjp(backward, dy, x, w, b)",
                          "gdy, gx, gw, _ = vjp2((ggx, ggw, ggb))"])

    def jax_jvp(self) -> str:
        return "\n".join([_JAX_HEAD, *self.jax_forward(), "y, ty = jax.jvp(f, (x, w, b), (tx, tw, tb))"])


def _statement_kw(h: _Higher) -> str:
    c = h.c
    text = f"stride {_t(c.S)}, padding {_pads_arg(c.pads)}, dilation {_t(c.D)}, groups {c.G}"
    if h.transposed:
        text += f", output_padding {_t(c.a)}"
    if c.mode != "zeros":
        text += f", padding_mode {c.mode!r}"
    return text


def higher_order(ex) -> dict:
    """``{quantity: {"statement", "calls": {framework: code}}}`` for the double backward and the JVP.

    Quantities: ``double_backward_grad_output``, ``double_backward_input``, ``double_backward_weight``
    (the gradients of ``L2 = <ggX, dX> + <ggW, dW> + <ggb, db>``, each as first-order calls),
    ``double_backward`` (all three by one call, and by PyTorch's and JAX's autograd) and ``jvp``
    (the output's tangent).
    """
    h = _Higher(ex)
    c, nd = h.c, h.nd
    kw = _statement_kw(h)
    layer = "convgrad.conv_transpose" if h.transposed else "convgrad.conv"
    layer_kw = h.t_kw if h.transposed else h.conv_kw
    name = "conv_transpose" if h.transposed else "conv"
    one_call = (f"import convgrad\ngdy, gx, gw = convgrad.{name}_double_backward(ggx, ggw, ggb, dy, x, w, {layer_kw})")
    torch_db = h.torch_double_backward()
    jax_db = h.jax_double_backward()

    # the three terms as first-order calls
    gdy = f"import convgrad\ngdy = {layer}(ggx, w, ggb, {layer_kw}) + {layer}(x, ggw, None, {layer_kw})"
    pad_x = f"np.pad(ggx, {((0, 0), (0, 0), *((0, e) for e in h.extra))!r})" if h.widen else "ggx"
    if h.transposed:
        gx = f"import convgrad\ngx = convgrad.conv(dy, ggw, {c.kw}){h.crop}"
        gw = f"import numpy as np, convgrad\ngw = convgrad.conv_weight(dy, w.shape, {pad_x}, {c.kw})"
    else:
        gx = f"import convgrad\ngx = convgrad.conv_input(x.shape, ggw, dy, {h.conv_kw})"
        gw = f"import convgrad\ngw = convgrad.conv_weight(ggx, w.shape, dy, {h.conv_kw})"
    torch_terms = {}
    head = "import torch, torch.nn.functional as F\nt = torch.from_numpy"
    if h.torch_ok and (h.transposed or (c.mode == "zeros" and c.sym)):
        p = _t(lo for lo, _ in c.pads)
        tkw = f"stride={_t(c.S)}, padding={p}, dilation={_t(c.D)}, groups={c.G}"
        torch_terms["gdy"] = f"{head}\ngdy = {h.torch_forward('t(ggx)', 't(w)', 't(ggb)')} + {h.torch_forward('t(x)', 't(ggw)', 'None')}"
        if h.transposed:
            pad_t = f"F.pad(t(ggx), {_torch_pad([(0, e) for e in h.extra])})" if h.widen else "t(ggx)"
            torch_terms["gx"] = f"{head}\ngx = F.conv{nd}d(t(dy), t(ggw), None, {tkw}){h.crop}"
            torch_terms["gw"] = f"{head}\ngw = torch.nn.grad.conv{nd}d_weight(t(dy), w.shape, {pad_t}, {tkw})"
        else:
            torch_terms["gx"] = f"{head}\ngx = torch.nn.grad.conv{nd}d_input(x.shape, t(ggw), t(dy), {tkw})"
            torch_terms["gw"] = f"{head}\ngw = torch.nn.grad.conv{nd}d_weight(t(ggx), w.shape, t(dy), {tkw})"
    elif h.torch_ok:
        torch_terms["gdy"] = f"{head}\ngdy = {h.torch_forward('t(ggx)', 't(w)', 't(ggb)')} + {h.torch_forward('t(x)', 't(ggw)', 'None')}"

    def calls(term: str, own: str) -> dict:
        return {"convgrad": own, **({"pytorch": torch_terms[term]} if term in torch_terms else {})}

    inner = "the transposed convolution" if h.transposed else "the convolution"
    adj_input = ("an ordinary convolution of dY with ggW (the transposed convolution's input-gradient)" if h.transposed
                 else "the input-gradient conv_input(dY, ggW)"
                 + (", i.e. the transposed convolution of dY with ggW" if c.mode == "zeros" else ""))
    adj_weight = ("the transposed convolution's weight-gradient with ggX in place of X (input dY, grad_output ggX)"
                  if h.transposed else "the weight-gradient conv_weight(ggX, dY) with ggX in place of X")
    result = {
        "double_backward_grad_output": {
            "statement": (
                f"With L2 = <ggX, dX> + <ggW, dW> + <ggb, db> (the double backward: each first-order gradient is "
                f"bilinear in its operands), dL2/d(dY) = {inner} of ggX with W plus {inner} of X with ggW plus ggb: "
                f"{inner} itself, twice, with this configuration's {kw}. It is also the forward-mode tangent of Y "
                "along (ggX, ggW, ggb)."
            ),
            "calls": calls("gdy", gdy),
        },
        "double_backward_input": {
            "statement": f"dL2/dX is {adj_input}, with this configuration's {kw}.",
            "calls": calls("gx", gx),
        },
        "double_backward_weight": {
            "statement": f"dL2/dW is {adj_weight}, with this configuration's {kw}.",
            "calls": calls("gw", gw),
        },
        "double_backward": {
            "statement": (
                "All three at once: convgrad's double backward, and the same by differentiating the first backward "
                "(PyTorch's autograd with create_graph=True, JAX's vjp of the vjp)."
            ),
            "calls": {"convgrad": one_call, "pytorch (autograd)": torch_db, "jax (autograd)": jax_db},
        },
        "jvp": {
            "statement": (
                f"The forward-mode derivative (JVP) of Y along (tX, tW, tb) is tY = {inner} of tX with W plus "
                f"{inner} of X with tW plus tb: two calls of {inner} with this configuration's {kw}."
            ),
            "calls": {
                "convgrad": f"import convgrad\nty = {layer}(tx, w, tb, {layer_kw}) + {layer}(x, tw, None, {layer_kw})",
                "convgrad (one call)": f"import convgrad\ny, ty = convgrad.{name}_jvp(x, w, b, tx, tw, tb, {layer_kw})",
                "pytorch": h.torch_jvp(),
                "jax": h.jax_jvp(),
            },
        },
    }
    notes = _notes(ex)
    if notes:  # the calls are written for the reduced input / channels first: say so in each
        for entry in result.values():
            entry["calls"] = {k: notes + code for k, code in entry["calls"].items()}
    return result


def _notes(ex) -> str:
    """Comment lines that head every printed call when they are not written for the caller's own ``x``."""
    lines = []
    if getattr(ex, "general", None) is not None:
        lines.append("# x, dX, ggX and tX here are x~'s: the input after input dilation and the crop (the explanation's "
                     "input-dilation section builds x~; the caller's dX is read back from dX~ there)")
    formats = getattr(ex, "formats", None)
    if formats is not None and not formats.default:
        lines.append("# channels first (PyTorch's layout): the caller's channels-last arrays / IO weights transposed first")
    return "".join(line + "\n" for line in lines)


def render_higher_order(ex) -> str:
    """:func:`higher_order` as text, in the style of the ``THE SAME GRADIENTS AS OPERATIONS`` section."""
    lines = ["SECOND-ORDER AND FORWARD-MODE DERIVATIVES AS OPERATIONS"]
    for quantity, entry in higher_order(ex).items():
        lines += _wrap(f"{LABELS[quantity]}: {entry['statement']}", "  ")
        for framework, code in entry["calls"].items():
            lines.append(f"    {framework}:")
            lines += ["      " + line for line in code.splitlines()]
    return "\n".join(lines) + "\n"
