"""Warnings for the traps that apply to one configuration (see REFERENCE d3 in the project notes).

Each warning is a dict ``{"id", "title", "text"}``; :func:`warnings_for` returns only the ones
whose condition holds, with this configuration's numbers in the text.
"""

from __future__ import annotations

from .geometry import ambiguous_sizes

__all__ = ["warnings_for", "notes_for"]


def _per_dim(ex, items) -> list[str]:
    """``(dim, message)`` pairs as sentences; dims with the same message share one ("dims 0, 1: ...")."""
    merged: dict[str, list[int]] = {}
    for d, msg in items:
        merged.setdefault(msg, []).append(d)
    if ex.ndim == 1:
        return list(merged)
    return [("dim " if len(ds) == 1 else "dims ") + ", ".join(map(str, ds)) + ": " + msg for msg, ds in merged.items()]


def _positions(ps) -> str:
    ps = list(ps)
    if len(ps) > 12:
        return ", ".join(map(str, ps[:10])) + f", ... ({len(ps)} positions)"
    return ", ".join(map(str, ps))


def warnings_for(ex) -> list[dict]:
    spec, out = ex.spec, []
    dims = ex.dims

    def add(id_, title, lines):
        out.append({"id": id_, "title": title, "text": " ".join(lines) if isinstance(lines, list) else lines})

    if not ex.transposed:
        lines = []
        for g in dims:
            if g.unread_tail == 0:
                continue
            lo, hi = g.padding
            msg = (
                f"(H + P_lo + P_hi - K_eff) mod S = ({g.input_size} + {lo} + {hi} - "
                f"{g.effective_kernel}) mod {g.stride} = {g.unread_tail}: the last {g.unread_tail} padded "
                f"position{'s are' if g.unread_tail > 1 else ' is'} never read"
            )
            if g.tail_positions:
                rescued = [p for p in g.tail_positions if p not in g.zero_positions]
                msg += (
                    f", and {len(g.tail_positions)} of them {'are' if len(g.tail_positions) > 1 else 'is'} real input "
                    f"(position{'s' if len(g.tail_positions) > 1 else ''} {_positions(g.tail_positions)})"
                )
                if rescued:
                    msg += (
                        f"; {spec.padding_mode!r} padding copies position{'s' if len(rescued) > 1 else ''} "
                        f"{_positions(rescued)} into the border, so {'they are' if len(rescued) > 1 else 'it is'} still "
                        "read and get gradient"
                    )
                else:
                    msg += ": no output depends on them and their gradient dX is exactly 0"
            else:
                msg += (
                    f" ({'they are' if g.unread_tail > 1 else 'it is'} padding: only {g.padding_used[1]} of the {hi} "
                    "high padding positions are used)"
                )
            lines.append((g.dim, msg + "."))
        lines = _per_dim(ex, lines)
        if lines:
            lines.append(
                "The gradient buffer must still have the input's full size; a transposed convolution that maps y's "
                "shape back to x's needs output_padding = " + _tuple([g.unread_tail for g in dims]) + "."
            )
            add("unread_tail", "Unread tail (the stride does not divide the padded size)", lines)

        lines = []
        for g in dims:
            if not g.holes:
                continue
            why = (
                f"the stride {g.stride} exceeds the effective kernel {g.effective_kernel}"
                if g.holes_from_stride
                else f"stride {g.stride} and dilation {g.dilation} step over them"
            )
            lines.append((g.dim, f"positions {_positions(g.holes)} are never read ({why}): their gradient is exactly 0."))
        lines = _per_dim(ex, lines)
        if lines:
            add("holes", "Holes: inputs no window reads", lines)

        lines = []
        for g in dims:
            lo, hi = g.padding
            if g.same and lo != hi:
                lines.append((g.dim,
                    f"padding='same' needs {lo + hi} padding positions in all, an odd number: "
                    f"P_lo = {lo}, P_hi = {hi}. convgrad, PyTorch and TensorFlow put the extra one at the end, "
                    "JAX's 'SAME_LOWER' at the start; getting it backwards shifts every output by one."
                ))
        lines = _per_dim(ex, lines)
        if lines:
            add("asymmetric_same", "'same' padding is asymmetric here", lines)
        if ex.same and any(s > 1 for s in spec.stride):
            add(
                "same_with_stride",
                "'same' at stride > 1",
                "With stride > 1, 'same' follows TensorFlow/JAX: H_out = ceil(H/S) and the padding depends on H "
                f"(here {_tuple([g.padding for g in dims])}). PyTorch refuses padding='same' with stride > 1, and "
                "numpy-ml's 'same' means H_out = H instead.",
            )
        if not ex.same and any(lo != hi for lo, hi in spec.padding):
            add(
                "asymmetric_padding",
                "Asymmetric padding",
                "PyTorch's conv/conv_transpose and torch.nn.grad take one symmetric padding per dim: pad explicitly "
                "with F.pad (or crop the transposed convolution's output), as in the calls below.",
            )
        lines = []
        for g in dims:
            if g.stride > 1:
                sizes = ambiguous_sizes(g)
                if len(sizes) > 1:
                    lines.append((g.dim,
                        f"input sizes {', '.join(map(str, sizes))} all give H_out = {g.output_size} "
                        f"(with this padding); output_padding = {g.input_size - sizes[0]} picks H = {g.input_size}."
                    ))
        lines = _per_dim(ex, lines)
        if lines:
            add(
                "output_padding",
                "Going back is ambiguous: output_padding",
                lines + ["That is what output_padding (PyTorch), output_shape (TF) and outsize (Chainer) resolve."],
            )
        lines = []
        for g in dims:
            lo, hi = g.padding
            if max(lo, hi) > g.effective_kernel - 1:
                lines.append((g.dim, f"padding ({lo}, {hi}) exceeds D*(K-1) = {g.effective_kernel - 1}"))
        lines = _per_dim(ex, lines)
        if lines:
            tail = (
                ": some outputs read nothing but zero padding (they equal the bias, and their dY reaches no dX), and "
                if spec.padding_mode == "zeros"
                else ": "
            )
            add(
                "large_padding",
                "Padding larger than the kernel reach",
                "; ".join(lines) + tail + "the full-correlation form of dX needs a negative padding, i.e. a crop "
                "(PyTorch's conv_transpose does it for you).",
            )
        if spec.padding_mode != "zeros":
            add(
                "padding_mode",
                f"{spec.padding_mode!r} padding is differentiable",
                "The border holds copies of real elements, so its gradient belongs to them: dX is the gradient of the "
                "padded input folded back (each border position adds its gradient onto the element it copies). "
                + {
                    "reflect": "reflect needs padding < input size.",
                    "circular": "circular cannot wrap around more than once (padding <= input size).",
                    "replicate": "replicate piles the whole border's gradient onto the edge element.",
                }[spec.padding_mode]
                + " PyTorch has no non-zero padding mode for conv_transpose.",
            )
    else:
        lines = []
        for g in dims:
            if g.zero_positions:
                lines.append((g.dim,
                    f"output positions {_positions(g.zero_positions)} are written by no input "
                    "element: they hold only the bias, and their grad_output reaches no gradient."
                ))
        lines = _per_dim(ex, lines)
        if lines:
            add("unwritten_outputs", "Output positions no input writes", lines)
        if any(max(g.stride, g.dilation) > 1 for g in dims):
            lines = []
            for g in dims:
                top = max(g.stride, g.dilation)
                if top > 1:
                    base = g.output_size - g.unread_tail
                    lines.append((g.dim,
                        f"output_padding 0..{top - 1} gives output sizes "
                        f"{', '.join(str(base + op) for op in range(top))}; here {g.unread_tail} gives {g.output_size}."
                    ))
            add(
                "output_padding",
                "output_padding picks one of several output sizes",
                _per_dim(ex, lines)
                + [
                    "A convolution with this stride maps all of those sizes to this input's size; output_padding says "
                    "which one to go back to. Its extra positions are real computed values, not zeros."
                ],
            )
        add(
            "weight_layout",
            "Weight layout of a transposed convolution",
            f"The weight is (C_in, C_out/groups, *K) = {spec.weight_shape}, PyTorch's layout, not (C_out, C_in/groups, "
            "*K); TensorFlow's conv2d_transpose filter is [kh, kw, out, in]. JAX's lax.conv_transpose is this "
            "operation only with transpose_kernel=True.",
        )
    if spec.groups > 1:
        depthwise = spec.in_per_group == 1
        add(
            "groups",
            "Groups",
            f"{spec.groups} groups{' (depthwise)' if depthwise else ''}: an output channel o sees only its group's "
            f"{spec.in_per_group} input channel{'s' if spec.in_per_group > 1 else ''} (group g = o // {spec.out_per_group}), "
            "so dW has no entries for the other groups' channels and dX of channel c sums only over its group's "
            "output channels. Written as a convolution, dW turns the groups into batch groups "
            "(JAX: feature_group_count becomes batch_group_count).",
        )
    if any(d > 1 for d in spec.dilation):
        if any(d > 1 and k == 1 for d, k in zip(spec.dilation, spec.kernel_size)):
            add("dilation_k1", "Dilation with a 1-tap kernel", "Along a dim with kernel size 1 the dilation changes nothing.")
        add(
            "dilation_convention",
            "Dilation convention",
            "Here (as in PyTorch, TensorFlow and JAX) dilation D means taps D apart, D = 1 being none; numpy-ml's "
            "dilation d inserts d zeros (d = 0 being none), so its d is D - 1.",
        )
    if spec.batch == 0:
        add("empty_batch", "Empty batch", "With batch size 0, dW and db are sums with no terms: exactly 0.")
    return out


def notes_for(ex) -> list[str]:
    """General remarks that always hold (not configuration-specific traps)."""
    notes = [
        "Deep-learning 'convolution' is cross-correlation: the kernel is not flipped in the forward pass. "
        "dX uses the flipped kernel (the transposed convolution flips it for you); dW does not flip.",
    ]
    if not ex.transposed:
        notes.append(
            "Chain rule: dL/dv = Σ over every term of the forward sum that contains v, of dL/dy[that output] times "
            "the term's other factor. x[h] appears once per (output position, tap) that reads h; w[o, c, k] appears "
            "once per (example, output position) of channel o; b[o] once per (example, output position) of channel o."
        )
    return notes


def _tuple(values) -> str:
    """One value when all dims agree, else a tuple."""
    values = list(values)
    return str(values[0]) if len(set(map(str, values))) == 1 else "(" + ", ".join(map(str, values)) + ")"
