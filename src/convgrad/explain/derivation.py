"""The derivation of one configuration, as a JSON-serialisable dict and as terminal text.

:func:`render_dict` builds everything once -- configuration, per-dim sizes, the index formulas
(general and with the numbers, with exact summation bounds), Goodfellow's 1-based form where it
fits, the equivalent operations with runnable calls, warnings, and worked examples -- and
:func:`render_text` lays the same dict out for a terminal, so the two never disagree.
"""

from __future__ import annotations

import math
import textwrap

from . import formulas
from .equivalents import equivalents
from .explanation import OPERANDS
from .geometry import copies
from .notation import plural
from .general import calls as general_calls
from .general import describe as describe_general
from .general import text_lines as general_text
from .general import traps as general_traps
from .traps import notes_for, warnings_for

__all__ = ["render_dict", "render_text", "example_index", "element", "format_terms"]

#: How the text and the pictures name the arrays.
DISPLAY = {"x": "x", "w": "w", "b": "b", "y": "y", "dy": "dY", "dx": "dX", "dw": "dW", "db": "db"}
QUANTITY_ARRAY = {q: OPERANDS[q][2] for q in OPERANDS}
TEXT_TERMS = 8


def _name(ex) -> str:
    return f"conv_transpose{ex.ndim}d" if ex.transposed else f"conv{ex.ndim}d"


def _configuration(ex) -> dict:
    s = ex.spec
    cfg = {
        "operation": _name(ex),
        "transposed": ex.transposed,
        "batched": ex.batched,
        "input_shape": list(ex.input_shape),
        "weight_shape": list(ex.weight_shape),
        "output_shape": list(ex.output_shape),
        "bias_shape": list(ex.bias_shape),
        "stride": list(s.stride),
        "padding": [list(p) for p in s.padding],
        "padding_argument": "same" if ex.same else [list(p) for p in s.padding],
        "dilation": list(s.dilation),
        "groups": s.groups,
        "padding_mode": s.padding_mode,
        "in_channels_per_group": ex.in_channels // s.groups,
        "out_channels_per_group": ex.out_channels // s.groups,
    }
    if ex.transposed:
        cfg["output_padding"] = list(s.unread_tail)
    return cfg


def _formulas(ex) -> dict:
    s = ex.spec
    if not ex.transposed:
        out = {
            "output": formulas.gather(s, "y", "o", "c", "w", "x", "b"),
            "grad_input": formulas.scatter(s, "dX", "c", "o", "w", "dY", None),
            "grad_weight": formulas.weight(s, "dW", "o", "c", "dY", "x"),
            "grad_bias": formulas.bias("db", "o", "dY", s.batch, s.output_size),
        }
        out["output"]["padding"] = formulas.padding_note(s, "x")
        out["grad_weight"]["padding"] = out["output"]["padding"]
        if s.padding_mode != "zeros":
            out["grad_input"]["fold"] = _fold_text(ex)
        return out
    out = {
        "output": formulas.scatter(s, "y", "o", "c", "w", "x", "b", groups_text="C_out/G"),
        "grad_input": formulas.gather(s, "dX", "c", "o", "w", "dY", None, groups_text=("C_out/G", "C_in/G")),
        "grad_weight": formulas.weight(s, "dW", "c", "o", "x", "dY", groups_text="C_out/G"),
        "grad_bias": formulas.bias("db", "o", "dY", s.batch, s.input_size),
    }
    note = (
        "dY is 0 at positions outside "
        + ", ".join(f"0..{h - 1}" for h in s.input_size)
        + " (the positions the transposed convolution's padding cropped away)."
    )
    out["grad_input"]["padding"] = out["grad_weight"]["padding"] = note
    return out


def _fold_text(ex) -> list[str]:
    lines = []
    for d in range(ex.ndim):
        pairs = copies(ex.spec, d)
        if not pairs:
            continue
        dim = "" if ex.ndim == 1 else f"dim {d}: "
        parts = [f"position{'s' if len(ps) > 1 else ''} {', '.join(map(str, ps))} hold{'' if len(ps) > 1 else 's'} x at {src}"
                 for src, ps in pairs.items()]
        lines.append(dim + "; ".join(parts))
    return lines


def example_index(ex, quantity: str) -> tuple[int, ...]:
    """A representative element: the middle of the first example's first channel (or the first weight)."""
    shape = ex.quantity_shape(quantity)
    if quantity == "grad_bias":
        return (0,)
    lead = 2 if quantity == "grad_weight" or ex.batched else 1
    return tuple([0] * lead + [(n - 1) // 2 for n in shape[lead:]])


def _fmt_index(name: str, idx) -> str:
    return f"{name}[{', '.join(map(str, idx))}]"


def format_terms(ex, quantity: str, terms, limit: int | None = None) -> str:
    first, second, _ = OPERANDS[quantity]
    shown = terms if limit is None or len(terms) <= limit else terms[: limit - 1]
    parts = []
    for t in shown:
        if quantity == "grad_bias":
            parts.append(_fmt_index(DISPLAY[first], t))
        else:
            a, b = t
            left = "pad" if a is None else _fmt_index(DISPLAY[first], a)
            right = "pad" if b is None else _fmt_index(DISPLAY[second], b)
            parts.append(f"{left}·{right}")
    if limit is not None and len(terms) > limit:
        last = format_terms(ex, quantity, terms[-1:])
        parts.append(f"... ({len(terms) - limit} more) ... + {last}")
    return " + ".join(parts) if parts else "0 (no terms)"


def _bounds_values(ex, quantity: str, idx) -> list[str]:
    """The summation ranges of one element's formula, evaluated."""
    s = ex.spec
    scatter_q = ("grad_input" if not ex.transposed else "output")
    out = []
    if quantity == scatter_q:
        full = idx if ex.batched else (0, *idx)
        for d, h in enumerate(full[2:]):
            S, D, P, K, Ho = s.stride[d], s.dilation[d], s.pad_lo[d], s.kernel_size[d], s.output_size[d]
            lo = max(0, math.ceil((h + P - D * (K - 1)) / S))
            hi = min(Ho - 1, (h + P) // S)
            keep = [i for i in range(lo, hi + 1) if (h + P - S * i) % D == 0]
            name = "i" if ex.ndim == 1 else f"i{d}"
            if lo > hi:
                out.append(f"{name}: empty range ({lo}..{hi})")
            elif D > 1:
                out.append(f"{name} = {lo}..{hi}, of which {keep} land on a tap")
            else:
                out.append(f"{name} = {lo}..{hi}")
    return out


def element(ex, quantity: str, index, limit: int | None = None) -> dict:
    """One element written out: its terms and, for the scatter formula, the evaluated bounds."""
    terms = ex.contributors(quantity, index)
    idx = ex._normalize(quantity, index)
    name = DISPLAY[QUANTITY_ARRAY[quantity]]
    reads_pad = sum(1 for t in terms if quantity != "grad_bias" and (t[0] is None or t[1] is None))
    head = _fmt_index(name, idx)
    bias = ""
    if quantity == "output":
        bias = f"b[{idx[1] if ex.batched else idx[0]}] + "
    return {
        "quantity": quantity,
        "index": list(idx),
        "name": head,
        "count": len(terms),
        "padding_terms": reads_pad,
        "terms": [_jsonable(t, quantity) for t in (terms if limit is None else terms[:limit])],
        "terms_truncated": limit is not None and len(terms) > limit,
        "bounds": _bounds_values(ex, quantity, idx),
        "text": f"{head} = {bias}{format_terms(ex, quantity, terms, limit=TEXT_TERMS if limit is not None else None)}",
    }


def _jsonable(term, quantity: str):
    if quantity == "grad_bias":
        return list(term)
    return [None if part is None else list(part) for part in term]


def render_dict(ex, at=None) -> dict:
    """Everything :func:`render_text` shows, JSON-serialisable. ``at = (quantity, index)`` adds that element in full."""
    d = {
        "configuration": _configuration(ex),
        "dims": [g.to_dict() for g in ex.dims],
        "formulas": _formulas(ex),
        "goodfellow": formulas.goodfellow(ex.spec, ex.transposed),
        "equivalents": equivalents(ex),
        "warnings": warnings_for(ex) + ([] if ex.general is None else general_traps(ex.general)),
        "notes": notes_for(ex),
        "examples": [
            element(ex, q, example_index(ex, q), limit=64) for q in OPERANDS if 0 not in ex.quantity_shape(q)
        ],
    }
    if ex.general is not None:
        d["general"] = describe_general(ex.general)
        d["general_calls"] = general_calls(ex.general)
    if at is not None:
        d["element"] = element(ex, at[0], at[1])
    return d


# ------------------------------------------------------------------------------------------------
# text
# ------------------------------------------------------------------------------------------------


def _wrap(text: str, indent: str, width: int = 100) -> list[str]:
    """Prose, wrapped at spaces."""
    return textwrap.wrap(text, width=width, initial_indent=indent, subsequent_indent=indent + "  ",
                         break_long_words=False, break_on_hyphens=False) or [indent]


def _formula(text: str, indent: str, width: int = 100) -> list[str]:
    """A formula: broken only between summands (at " + " outside brackets), never inside an index."""
    parts, depth, start = [], 0, 0
    for pos, ch in enumerate(text):
        depth += ch in "[({"
        depth -= ch in "])}"
        if depth == 0 and text.startswith(" + ", pos):
            parts.append(text[start:pos])
            start = pos + 3
    parts.append(text[start:])
    lines, line = [], indent + parts[0]
    for part in parts[1:]:
        if len(line) + 3 + len(part) > width:
            lines.append(line)
            line = indent + "    + " + part
        else:
            line += " + " + part
    lines.append(line)
    return lines


def _sizes(ex, dims: list[dict]) -> list[str]:
    """Per-dim blocks; dims with identical numbers share one block ("dims 0, 1: ...")."""
    groups: list[list[dict]] = []
    for g in dims:
        key = {k: v for k, v in g.items() if k != "dim"}
        for grp in groups:
            if {k: v for k, v in grp[0].items() if k != "dim"} == key:
                grp.append(g)
                break
        else:
            groups.append([g])
    lines = []
    for grp in groups:
        label = "" if ex.ndim == 1 else ("dim " if len(grp) == 1 else "dims ") + ", ".join(str(g["dim"]) for g in grp) + ": "
        lines += _dim_lines(ex, grp[0], label)
    return lines


def _dim_lines(ex, g: dict, name: str) -> list[str]:
    lines = [
        f"  {name}H{'_in' if ex.transposed else ''} = {g['input_size']}, K = {g['kernel_size']}, S = {g['stride']}, "
        f"D = {g['dilation']}, padding ({g['padding'][0]}, {g['padding'][1]})" + (" from 'same'" if g["same"] else ""),
        f"    effective kernel  K_eff = {g['effective_kernel_formula']}",
        f"    output size       {'H_out' if not ex.transposed else 'H_out'} = {g['output_size_formula']}",
    ]
    if not ex.transposed:
        lo, hi = g["padding"]
        lines.append(f"    padding used      {g['padding_used'][0]} before, {g['padding_used'][1]} of {hi} after")
        tail = (
            f"(H + P_lo + P_hi - K_eff) mod S = {g['unread_tail']}"
            + (
                f": {plural(len(g['tail_positions']), 'input', 'inputs')} {', '.join(map(str, g['tail_positions']))} "
                f"{plural(len(g['tail_positions']), 'is', 'are')} never read"
                if g["tail_positions"]
                else (" (only padding)" if g["unread_tail"] else "")
            )
        )
        lines.append(f"    unread tail       {tail}")
        zero = g["zero_positions"]
        lines.append(
            "    zero gradient     "
            + (
                f"{plural(len(zero), 'input', 'inputs')} {', '.join(map(str, zero))} (no output reads "
                f"{plural(len(zero), 'it', 'them')})"
                if zero
                else "none: every input is read"
            )
        )
    else:
        lines.append(f"    output_padding    {g['unread_tail']}" + (
            f": {plural(g['unread_tail'], 'output position', 'output positions')} "
            f"{', '.join(map(str, g['tail_positions']))} {plural(g['unread_tail'], 'is the added one', 'are the added ones')}"
            if g["unread_tail"]
            else ""
        ))
        zero = g["zero_positions"]
        lines.append(
            "    never written     "
            + (f"{plural(len(zero), 'output', 'outputs')} {', '.join(map(str, zero))} (bias only)" if zero else "none")
        )
    return lines


def _bounded(entry: dict, indent: str) -> list[str]:
    """A scatter formula with its numbers, then its exact bounds one per line."""
    return _formula(entry["filled"], indent) + [indent + "  " + b for b in entry["bounds"]]


def render_text(ex, at=None) -> str:
    d = render_dict(ex, at)
    cfg = d["configuration"]
    L: list[str] = []
    kind = "transposed convolution" if ex.transposed else "convolution (cross-correlation)"
    L.append(f"{cfg['operation']}: a {ex.ndim}-D {kind}")
    fmt = getattr(ex, "formats", None)
    if fmt is not None and not fmt.default:
        L.append(f"  (you gave data_format={fmt.data_format!r}, weight_format={fmt.weight_format!r}: everything below "
                 "is channels first, PyTorch's layout -- x[n, c, h] here is your x[n, h, c]"
                 + (", w[o, c, k] your w[k, c, o])" if fmt.weight_io else ")"))
    lead = "N, " if ex.batched else ""
    sp = ", ".join(f"H{d_}" for d_ in range(ex.ndim)) if ex.ndim > 1 else "H"
    if ex.general is None:
        L.append(f"  x  input   {tuple(cfg['input_shape'])}   ({lead}C_in, {sp})")
    else:  # the formulas are x~'s, the dilated and cropped input
        L.append(f"  x  input   {ex._user(ex.general.input_shape)}   ({lead}C_in, {sp}), read as x~ {tuple(cfg['input_shape'])}")
    wl = "C_in, C_out/groups" if ex.transposed else "C_out, C_in/groups"
    L.append(f"  w  weight  {tuple(cfg['weight_shape'])}   ({wl}, {'K' if ex.ndim == 1 else ', '.join(f'K{i}' for i in range(ex.ndim))})")
    L.append(f"  b  bias    {tuple(cfg['bias_shape'])}")
    L.append(f"  y  output  {tuple(cfg['output_shape'])}")
    extra = f", output_padding {_t(cfg['output_padding'])}" if ex.transposed else f", padding_mode {cfg['padding_mode']!r}"
    L.append(
        f"  stride {_t(cfg['stride'])}, padding {_pad(cfg)}, dilation {_t(cfg['dilation'])}, groups {cfg['groups']}{extra}"
    )
    if ex.general is not None:
        L.append(f"  (the padding of x~; requested: padding {_pairs(ex.general.padding)}, "
                 f"input_dilation {_t(ex.general.input_dilation)})")
    if not ex.batched:
        L.append("  (unbatched: the formulas carry a batch index n = 0 that your arrays do not have)")
    if ex.general is not None:
        L.append("")
        L += general_text(ex.general, ex.batched)
    L.append("")
    L.append("SIZES (each spatial dim on its own)")
    L += _sizes(ex, d["dims"])
    L.append("")
    f = d["formulas"]
    if not ex.transposed:
        L.append("FORWARD (0-based indices)")
        L.append("  " + f["output"]["general"])
        L.append("  with this configuration's numbers:")
        L += _formula(f["output"]["filled"], "  ")
        L += _wrap(f["output"]["padding"], "  ")
        L.append("")
        L.append("BACKWARD, given dY = dL/dy (the shape of y)")
        for note in d["notes"][1:]:
            L += _wrap(note, "  ")
        L.append("  db, the bias gradient:")
        L += _formula(f["grad_bias"]["filled"], "    ")
        L.append("  dW, the weight gradient (Goodfellow's 9.11 with groups, padding and dilation):")
        L += _formula(f["grad_weight"]["filled"], "    ")
        if any(p != [0, 0] for p in cfg["padding"]) and ex.spec.padding_mode == "zeros":
            L.append("    terms with x inside the input (the others read zero padding):")
            L += ["      " + b for b in f["grad_weight"]["bounds"]]
        L.append("  dX, the input gradient (Goodfellow's 9.13 with groups, padding and dilation):")
        L += _formula(f["grad_input"]["general"], "    ")
        L.append("    solved for the output positions i, with exact bounds:")
        L += _bounded(f["grad_input"], "    ")
        L.append("    the same as a sum over kernel taps:")
        L += _formula(f["grad_input"]["tap_form"], "    ")
        L.append("      over the taps with")
        L += ["        " + c for c in f["grad_input"]["tap_conditions"]]
        if "fold" in f["grad_input"]:
            L += _wrap(
                f"with {ex.spec.padding_mode!r} padding this is first computed for every padded position h, then each "
                "border position's value is added onto the element it copies:", "    ")
            for line in f["grad_input"]["fold"]:
                L += _wrap(line, "      ")
    else:
        L.append("FORWARD (0-based indices): every input element is spread over the output")
        L += _formula(f["output"]["general"], "  ")
        L.append("  with this configuration's numbers, solved for the input positions i:")
        L += _bounded(f["output"], "  ")
        L.append("")
        L.append("BACKWARD, given dY = dL/dy (the shape of y)")
        L.append("  db:")
        L += _formula(f["grad_bias"]["filled"], "    ")
        L.append("  dX, an ordinary convolution of dY:")
        L += _formula(f["grad_input"]["filled"], "    ")
        L += _wrap(f["grad_input"]["padding"], "    ")
        L.append("  dW:")
        L += _formula(f["grad_weight"]["filled"], "    ")
    L.append("")
    L.append("ONE ELEMENT OF EACH, WRITTEN OUT (pad = a zero-padding position, contributes 0)")
    for e in d["examples"]:
        L += _formula(f"{e['text']}   [{e['count']} {plural(e['count'], 'term', 'terms')}" + (f", {e['padding_terms']} read padding" if e["padding_terms"] else "") + "]", "  ")
        for b in e["bounds"]:
            L.append("      " + b)
    if "element" in d:
        e = d["element"]
        L.append("")
        L.append(f"THE ELEMENT YOU ASKED FOR: {e['name']} ({e['count']} {plural(e['count'], 'term', 'terms')})")
        L += _formula(e["text"], "  ")
        for b in e["bounds"]:
            L.append("    " + b)
    L.append("")
    gf = d["goodfellow"]
    L.append("GOODFELLOW ET AL., DEEP LEARNING, EQS. 9.8 AND 9.11-9.13 (1-based)")
    if gf["applies"]:
        L += _wrap(gf["mapping"], "  ")
        for key, label in (("eq_9_8", "(9.8) "), ("eq_9_11", "(9.11)"), ("eq_9_13", "(9.13)")):
            L.append(f"  {label} {gf[key]}")
        L.append("         exactly: " + gf["eq_9_13_bounds"][0])
        L += ["                  " + b for b in gf["eq_9_13_bounds"][1:]]
    else:
        L += _wrap(f"Not in the book's form: {gf['reason']}. The 0-based formulas above are the general form.", "  ")
    L.append("")
    L.append("THE SAME GRADIENTS AS OPERATIONS")
    labels = {"output": "y", "grad_input": "dX", "grad_weight": "dW", "grad_bias": "db"}
    for q, entry in d["equivalents"].items():
        L += _wrap(f"{labels[q]}: {entry['statement']}", "  ")
        for fw, code in entry["calls"].items():
            if not code:
                continue
            L.append(f"    {fw}:")
            L += ["      " + line for line in code.splitlines()]
    if d["warnings"]:
        L.append("")
        L.append("WARNINGS")
        for w in d["warnings"]:
            L += _wrap(f"! {w['title']}: {w['text']}", "  ")
    L.append("")
    L.append("NOTES")
    L += _wrap(d["notes"][0], "  ")
    return "\n".join(line.rstrip() for line in L) + "\n"


def _t(values):
    values = list(values)
    return str(values[0]) if len(set(values)) == 1 else "(" + ", ".join(map(str, values)) + ")"


def _pad(cfg) -> str:
    if cfg["padding_argument"] == "same":
        return "'same' = " + _pairs(cfg["padding"])
    return _pairs(cfg["padding"])


def _pairs(pairs) -> str:
    if all(lo == hi for lo, hi in pairs):
        return _t([lo for lo, _ in pairs])
    if len(pairs) == 1:
        return f"({pairs[0][0]}, {pairs[0][1]})"
    return "(" + ", ".join(f"({lo}, {hi})" for lo, hi in pairs) + ")"
