"""``convgrad explain``: the derivation, contributor sets and pictures of one configuration."""

from __future__ import annotations

import itertools
import json
import math
import os
import sys

from ..explain import QUANTITIES, explain
from .config import _int_or_ints, add_conv_arguments, conv_kwargs

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
    p.add_argument("--input-dilation", type=_int_or_ints, default=1, metavar="L",
                   help="L-1 zeros between neighbouring inputs (JAX's lhs_dilation), one value or one per dim; "
                        "with it, and always, --padding entries may be negative (a crop), e.g. --padding=-1:2")
    p.add_argument("--data-format", default="channels_first", metavar="FORMAT",
                   help="the layout --input is given in: channels_first (NCHW...) or channels_last (NHWC...); "
                        "the explanation itself is written channels first")
    p.add_argument("--weight-format", default="OI", metavar="FORMAT",
                   help="the layout --weight is given in: OI ((C_out, C_in/groups, *k)) or IO ((*k, C_in/groups, "
                        "C_out), TensorFlow's HWIO)")
    p.add_argument(
        "--at", metavar="QUANTITY:INDEX",
        help="an element, e.g. grad_input:0,1,4,4 (quantities: output, grad_input, grad_weight, grad_bias, or y, dx, "
             "dw, db): written out in text/json, drawn in png/svg, the page opens on it in html (default: none; "
             "png/svg: the middle of output's first plane); for --format gif a leading part of an index "
             "(output:0,1 steps through y[0, 1]; default: output's first plane, evenly subsampled to --max-frames)",
    )
    p.add_argument("--format", choices=FORMATS,
                   help="output format (default: from -o's extension: .txt/.md text, .json, .png, .svg, .gif, .html; "
                        "else text)")
    p.add_argument("-o", "--output", metavar="FILE",
                   help="write to FILE (default: stdout for text/json/html, explain-QUANTITY-INDEX.png|svg|gif for "
                        "pictures)")
    p.add_argument("--higher-order", action="store_true",
                   help="text/json: add the double backward and the JVP as calls of this configuration's convolution")
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
    if (not prefix_ok and len(index) != len(shape)) or len(index) > len(shape):
        raise ValueError(f"--at: {quantity} has shape {shape}, so its index needs {len(shape)} entries, got {text!r}")
    lowest = 0 if len(index) < len(shape) else -1  # a full index may count from the end, as in NumPy
    if any(not lowest * n <= v < n for v, n in zip(index, shape)):
        raise ValueError(f"--at: index {index} is out of range for {quantity} of shape {shape}, got {text!r}")
    return quantity, tuple(v % n for v, n in zip(index, shape))


#: Output file suffixes and the format each one means.
SUFFIXES = {"txt": "text", "text": "text", "md": "text", "json": "json", "png": "png", "svg": "svg", "gif": "gif",
            "html": "html", "htm": "html"}


class UsageError(ValueError):
    """A mistake in the command line, reported as one line (the message names the flag)."""


def _suffix(path: str) -> str | None:
    name = os.path.basename(path)
    return name.rsplit(".", 1)[1].lower() if "." in name.strip(".") else None


def _format(args) -> str:
    """The output format: --format, else -o's suffix, else text; an unknown suffix is refused."""
    suffix = _suffix(args.output) if args.output else None
    accepted = ", ".join("." + k for k in SUFFIXES)
    if suffix is not None and suffix not in SUFFIXES:
        raise UsageError(f"-o {args.output}: unknown extension '.{suffix}' (accepted: {accepted}; or no extension "
                         "with --format)")
    if args.format:
        if suffix is not None and SUFFIXES[suffix] != args.format:
            raise UsageError(f"-o {args.output}: the extension '.{suffix}' does not match --format {args.format}")
        return args.format
    return SUFFIXES[suffix] if suffix else "text"


def _check_output(path: str | None) -> None:
    """Refuse an output path that cannot be written, before any work is done."""
    if path is None:
        return
    folder = os.path.dirname(os.path.abspath(path))
    if os.path.isdir(path):
        raise UsageError(f"-o {path}: is a folder; give a file name")
    if not os.path.isdir(folder):
        raise UsageError(f"-o {path}: the folder {folder} does not exist")
    if not os.access(folder, os.W_OK) or (os.path.exists(path) and not os.access(path, os.W_OK)):
        raise UsageError(f"-o {path}: not writable")


def _write_text(text: str, path: str | None) -> None:
    if path is None:
        sys.stdout.write(text)
    else:
        with open(path, "w", encoding="utf-8") as fh:
            fh.write(text)
        print(f"wrote {path}", file=sys.stderr)


def _gif_frames(ex, at, max_frames: int):
    """The frames of the GIF: ``(quantity, indices, note)``; ``note`` says what was chosen without --at."""
    from ..explain.animation import frame_indices

    if at is not None:
        quantity, prefix = at
        indices = frame_indices(ex, quantity, prefix)
        if len(indices) > max_frames:
            shape = ex.quantity_shape(quantity)
            raise UsageError(
                f"--format gif: {quantity}{'[' + ','.join(map(str, prefix)) + ']' if prefix else ''} has "
                f"{len(indices)} elements, more than --max-frames {max_frames}; fix more leading indices with --at "
                f"(e.g. --at {quantity}:{','.join(['0'] * min(len(prefix) + 1, len(shape)))}) or raise --max-frames"
            )
        return quantity, indices, None
    # Without --at: the first sample's first output channel, its plane subsampled evenly to fit.
    quantity = "output"
    prefix = (0, 0) if ex.batched else (0,)
    plane = ex.quantity_shape(quantity)[len(prefix):]
    step = 1
    while math.prod(-(-n // step) for n in plane) > max_frames:
        step += 1
    grids = [range(0, n, step) for n in plane]
    indices = [prefix + tail for tail in itertools.product(*grids)]
    where = f"output[{', '.join(map(str, prefix))}]"
    note = f"no --at: stepping through {where} ({'x'.join(map(str, plane))})"
    if step > 1:
        note += f", one position in {step} along each axis (to stay within --max-frames {max_frames})"
    note += f"; choose with --at, e.g. --at output:{','.join(map(str, prefix))}"
    return quantity, indices, note


def run(args) -> int:
    try:
        return _run(args)
    except UsageError as exc:
        print(f"convgrad explain: error: {exc}", file=sys.stderr)
        return 2
    except ImportError as exc:
        print(f"convgrad explain: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"convgrad explain: error: -o {args.output}: {exc.strerror or exc}", file=sys.stderr)
        return 2


def _run(args) -> int:
    fmt = _format(args)
    _check_output(args.output)
    if args.max_frames < 1:
        raise UsageError(f"--max-frames must be at least 1, got {args.max_frames}")
    if not args.fps > 0:
        raise UsageError(f"--fps must be positive, got {args.fps}")
    kwargs = conv_kwargs(args)
    ex = explain(args.input, args.weight, **kwargs, transposed=args.transposed, input_dilation=args.input_dilation,
                 data_format=args.data_format, weight_format=args.weight_format)
    at = parse_at(args.at, ex, prefix_ok=fmt == "gif")
    if args.higher_order and fmt not in ("text", "json"):
        raise UsageError(f"--higher-order needs --format text or json, got --format {fmt}")
    if fmt == "text":
        _write_text(ex.text(at) + ("\n" + ex.higher_order(text=True) if args.higher_order else ""), args.output)
        return 0
    if fmt == "json":
        data = {**ex.to_dict(at), **({"higher_order": ex.higher_order()} if args.higher_order else {})}
        _write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", args.output)
        return 0
    if fmt == "html":
        _write_text(ex.html(at=at), args.output)
        return 0
    if fmt == "gif":
        try:
            import PIL  # noqa: F401
        except ImportError:
            raise ImportError("--format gif needs Pillow (installed with matplotlib): pip install 'convgrad[explain]'") from None
        quantity, indices, note = _gif_frames(ex, at, args.max_frames)
        if note:
            print(note, file=sys.stderr)
        path = args.output or f"explain-{quantity}{''.join('-' + str(v) for v in (at[1] if at else ()))}.gif"
        frames = ex.animate(quantity, path, indices=indices, fps=args.fps)
        print(f"wrote {path} ({frames} frames)", file=sys.stderr)
        return 0
    from ..explain.derivation import example_index

    at = at or ("output", example_index(ex, "output"))
    path = args.output or f"explain-{at[0]}-{'-'.join(map(str, at[1]))}.{fmt}"
    ex.figure(at[0], at[1], path, format=fmt)
    print(f"wrote {path}", file=sys.stderr)
    return 0
