"""``convgrad explain``: the derivation, contributor sets and pictures of one configuration."""

from __future__ import annotations

import json
import os
import sys

from ..explain import QUANTITIES, explain
from .config import add_conv_arguments, conv_kwargs

FORMATS = ("text", "json", "png", "svg", "gif", "html")
ALIASES = {"y": "output", "dx": "grad_input", "dw": "grad_weight", "db": "grad_bias"}


def register(sub) -> None:
    p = sub.add_parser(
        "explain",
        help="explain a convolution's forward and backward pass: formulas, contributors, pictures",
        description=(
            "For one configuration: the sizes with their formulas, the forward pass and the gradients dX, dW, db as "
            "index formulas with exact bounds (0-based, and Goodfellow's 1-based form where it fits), the same "
            "gradients as calls in convgrad, PyTorch, JAX and TensorFlow, the traps that apply, and the exact terms of "
            "any element; as text, JSON, a picture (PNG/SVG), an animated GIF or an interactive HTML page."
        ),
    )
    add_conv_arguments(p, input_default="5,100,100", weight_default="10,5,5,5")
    p.add_argument(
        "--at", metavar="QUANTITY:INDEX",
        help="an element, e.g. grad_input:0,1,4,4 (quantities: output, grad_input, grad_weight, grad_bias, or y, dx, "
             "dw, db); for --format gif a leading part of an index (output:0,1 steps through y[0, 1])",
    )
    p.add_argument("--format", choices=FORMATS, help="output format (default: from -o's suffix, else text)")
    p.add_argument("-o", "--output", metavar="FILE", help="write to FILE (default: stdout for text/json/html)")
    p.add_argument("--max-frames", type=int, default=400, help="gif: refuse more frames than this (default 400)")
    p.add_argument("--fps", type=float, default=2.0, help="gif: frames per second (default 2)")
    p.set_defaults(func=run)


def parse_at(text: str | None, ex, *, prefix_ok: bool = False):
    """``"grad_input:0,1,4,4"`` -> ``("grad_input", (0, 1, 4, 4))``; ValueError naming --at otherwise."""
    if text is None:
        return None
    quantity, sep, rest = text.partition(":")
    quantity = ALIASES.get(quantity.strip(), quantity.strip())
    if quantity not in QUANTITIES:
        raise ValueError(f"--at: the quantity must be one of {QUANTITIES} (or y, dx, dw, db), got {text!r}")
    try:
        index = tuple(int(v) for v in rest.split(",") if v.strip() != "") if sep else ()
    except ValueError:
        raise ValueError(f"--at: expected QUANTITY:i,j,..., e.g. grad_input:0,1,4,4, got {text!r}") from None
    shape = ex.quantity_shape(quantity)
    if not prefix_ok and len(index) != len(shape):
        raise ValueError(f"--at: {quantity} has shape {shape}, so its index needs {len(shape)} entries, got {text!r}")
    return quantity, index


def _format(args) -> str:
    if args.format:
        return args.format
    if args.output and "." in os.path.basename(args.output):
        suffix = args.output.rsplit(".", 1)[1].lower()
        if suffix in FORMATS:
            return suffix
        if suffix in ("txt", "md"):
            return "text"
    return "text"


def _write_text(text: str, path: str | None) -> None:
    if path is None:
        sys.stdout.write(text)
    else:
        with open(path, "w", encoding="utf-8") as fh:
            fh.write(text)
        print(f"wrote {path}", file=sys.stderr)


def run(args) -> int:
    kwargs = conv_kwargs(args)
    ex = explain(args.input, args.weight, **kwargs, transposed=args.transposed)
    fmt = _format(args)
    if fmt == "text":
        _write_text(ex.text(parse_at(args.at, ex)), args.output)
        return 0
    if fmt == "json":
        _write_text(json.dumps(ex.to_dict(parse_at(args.at, ex)), indent=2, ensure_ascii=False) + "\n", args.output)
        return 0
    if fmt == "html":
        _write_text(ex.html(), args.output)
        return 0
    from ..explain.derivation import example_index

    try:
        if fmt == "gif":
            at = parse_at(args.at, ex, prefix_ok=True)
            if at is None:
                at = ("output", (0, 0) if ex.batched else (0,))
            path = args.output or f"explain-{at[0]}{''.join('-' + str(v) for v in at[1])}.gif"
            frames = ex.animate(at[0], path, prefix=at[1], max_frames=args.max_frames, fps=args.fps)
            print(f"wrote {path} ({frames} frames)", file=sys.stderr)
            return 0
        at = parse_at(args.at, ex) or ("output", example_index(ex, "output"))
        path = args.output or f"explain-{at[0]}-{'-'.join(map(str, at[1]))}.{fmt}"
        ex.figure(at[0], at[1], path, format=fmt)
        print(f"wrote {path}", file=sys.stderr)
        return 0
    except ImportError as exc:
        print(f"convgrad explain: error: {exc}", file=sys.stderr)
        return 2
