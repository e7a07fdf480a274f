"""Command-line flags for one convolution configuration, shared by the sub-commands.

``--input 2,5,100,100 --weight 10,5,5,5 --stride 2 --padding 1`` and so on; per-dim values are
comma-separated (``--stride 2,1``), a ``(low, high)`` padding pair is written ``low:high``
(``--padding 1:2,0``), and ``--padding same`` / ``valid`` are accepted.
"""

from __future__ import annotations

import argparse

from ..spec import PADDING_MODES


def _ints(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(v) for v in text.replace("x", ",").split(",") if v.strip() != "")
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None


def _int_or_ints(text: str):
    values = _ints(text)
    if not values:
        raise argparse.ArgumentTypeError(f"expected an integer or comma-separated integers, got {text!r}")
    return values[0] if len(values) == 1 else values


def _padding(text: str):
    if text in ("same", "valid", "causal"):
        return text
    items = []
    for part in text.split(","):
        try:
            if ":" in part:
                lo, hi = part.split(":")
                items.append((int(lo), int(hi)))
            else:
                items.append(int(part))
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"expected an integer, comma-separated integers or low:high pairs, 'same', 'valid' or 'causal', got {text!r}"
            ) from None
    return items[0] if len(items) == 1 and isinstance(items[0], int) else tuple(items)


def add_conv_arguments(parser: argparse.ArgumentParser, *, input_default: str, weight_default: str) -> None:
    """Add the flags that describe one convolution to ``parser``."""
    g = parser.add_argument_group("configuration")
    g.add_argument("--input", type=_ints, default=_ints(input_default), metavar="SHAPE",
                   help=f"input shape, (N,)C,*spatial (default {input_default})")
    g.add_argument("--weight", type=_ints, default=_ints(weight_default), metavar="SHAPE",
                   help=f"weight shape: C_out,C_in/groups,*kernel; transposed: C_in,C_out/groups,*kernel (default {weight_default})")
    g.add_argument("--stride", type=_int_or_ints, default=1, metavar="S", help="stride, one value or one per dim")
    g.add_argument("--padding", type=_padding, default=0, metavar="P",
                   help="padding: int, per-dim ints, low:high pairs, 'same', 'valid' or 'causal'")
    g.add_argument("--dilation", type=_int_or_ints, default=1, metavar="D",
                   help="spacing between kernel taps, one value or one per dim")
    g.add_argument("--groups", type=int, default=1, metavar="G",
                   help="channel groups: input and output channels split into G independent convolutions")
    g.add_argument("--padding-mode", choices=PADDING_MODES, default="zeros",
                   help="what the padded border holds")
    g.add_argument("--transposed", action="store_true", help="a transposed convolution")
    g.add_argument("--output-padding", type=_int_or_ints, default=0, metavar="A",
                   help="output_padding of a transposed convolution")


def _typed(shape) -> str:
    return ",".join(str(v) for v in shape)


def check_ranks(input_shape: tuple[int, ...], weight_shape: tuple[int, ...]) -> None:
    """ValueError naming --weight / --input when their lengths cannot describe one convolution.

    The shapes are quoted as the user typed them (the library would add the batch dim first).
    """
    if len(weight_shape) < 3:
        raise ValueError(f"--weight: expected C_out,C_in/groups and at least one kernel size (3 or more numbers), "
                         f"got {len(weight_shape)}: {_typed(weight_shape)!r}")
    dims = len(weight_shape) - 2
    if len(input_shape) not in (dims + 1, dims + 2):
        raise ValueError(
            f"--input: a weight with {dims} kernel size{'s' if dims > 1 else ''} ({_typed(weight_shape)!r}) needs an input of "
            f"{dims + 2} numbers (N,C,{dims} sizes) or {dims + 1} (C,{dims} sizes), got {len(input_shape)}: {_typed(input_shape)!r}")


def conv_kwargs(args: argparse.Namespace) -> dict:
    """The keyword arguments of the convolution the flags describe (shapes excluded)."""
    kwargs = dict(stride=args.stride, padding=args.padding, dilation=args.dilation, groups=args.groups)
    if args.transposed:
        if args.padding_mode != "zeros":
            raise ValueError("--padding-mode: a transposed convolution only has zero padding")
        kwargs["output_padding"] = args.output_padding
    else:
        if args.output_padding not in (0, (0,)):
            raise ValueError("--output-padding only applies to a transposed convolution (add --transposed)")
        kwargs["padding_mode"] = args.padding_mode
    return kwargs
