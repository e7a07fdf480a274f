"""An animated GIF stepping through every element of a quantity, its contributors highlighted.

The layout is computed once from the union of all frames' contributors (so nothing jumps between
frames) and each frame only recolours the cells (see :class:`~convgrad.explain.figures.Canvas`).
"""

from __future__ import annotations

import itertools

from .explanation import QUANTITIES
from .figures import _full_index, canvas_for, highlights

__all__ = ["animate", "frame_indices"]


def frame_indices(ex, quantity: str, prefix=()) -> list[tuple[int, ...]]:
    """Every index of ``quantity`` (user-facing, row-major) that starts with ``prefix``."""
    shape = ex.quantity_shape(quantity)
    prefix = tuple(prefix)
    if len(prefix) > len(shape):
        raise ValueError(f"animate: prefix {prefix} has more entries than {quantity} has dims {shape}")
    for v, n in zip(prefix, shape):
        if not (isinstance(v, int) and 0 <= v < n):
            raise ValueError(f"animate: prefix {prefix} is out of range for {quantity} of shape {shape}")
    rest = shape[len(prefix):]
    return [prefix + tail for tail in itertools.product(*map(range, rest))]


def animate(ex, quantity: str, path, *, prefix=(), indices=None, max_frames: int = 400, fps: float = 2.0) -> int:
    """Write a GIF with one frame per element of ``quantity`` under ``prefix``; return the frame count.

    ``prefix`` fixes leading indices, e.g. ``prefix=(0, 1)`` steps through the spatial positions
    of example 0, channel 1 of the output; ``indices`` (full indices) gives the frames explicitly
    instead. More than ``max_frames`` frames is a ``ValueError``. Needs Pillow (it comes with
    matplotlib: ``pip install 'convgrad[explain]'``).
    """
    try:
        from PIL import Image
    except ImportError:
        raise ImportError("convgrad's animated GIF needs Pillow (installed with matplotlib): "
                          "pip install 'convgrad[explain]'") from None

    if quantity not in QUANTITIES:
        raise ValueError(f"animate: quantity must be one of {QUANTITIES}, got {quantity!r}")
    if not fps > 0:
        raise ValueError(f"animate: fps must be positive, got {fps!r}")
    if indices is None:
        indices = frame_indices(ex, quantity, prefix)
    else:
        indices = [ex._normalize(quantity, idx) for idx in indices]
    if not indices:
        raise ValueError(f"animate: {quantity} has no elements (shape {ex.quantity_shape(quantity)})")
    if len(indices) > max_frames:
        raise ValueError(
            f"animate: {quantity}{'' if not prefix else ' under prefix ' + str(tuple(prefix))} has {len(indices)} "
            f"elements, more than max_frames={max_frames}; fix leading indices with prefix= (e.g. one channel), "
            "pick frames with indices= or raise max_frames"
        )
    lights = [highlights(ex, quantity, _full_index(ex, quantity, idx)) for idx in indices]
    union: dict[str, set] = {}
    for hl in lights:
        for name, roles in hl.roles.items():
            union.setdefault(name, set()).update(roles)
    canvas = canvas_for(ex, quantity, union)
    frames = []
    for hl in lights:
        canvas.show(hl)
        rgba = canvas.rgba()
        frames.append(Image.fromarray(rgba[..., :3].copy()).convert("P", palette=Image.Palette.ADAPTIVE, colors=64))
    frames[0].save(path, format="GIF", save_all=True, append_images=frames[1:], duration=int(1000 / fps), loop=0,
                   optimize=False)
    return len(frames)
