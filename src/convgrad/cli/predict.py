"""``convgrad predict``: classify images with weights written by ``convgrad train``.

Accepted images:

- ``.npy``: one image ``(H, W)`` or a stack ``(N, H, W)`` / ``(N, 1, H, W)`` of the model's
  size, in the training data's own units: 0..16 for the digits (as
  ``sklearn.datasets.load_digits().images``), 0..255 for 8-bit IDX data (``--max-value``
  overrides).
- ``.png``, ``.jpg``/``.jpeg``, ``.bmp``, ``.gif``, ``.tif``/``.tiff`` (read with Pillow, which
  comes with matplotlib), prepared as the training digits were: a transparent background is
  composited onto a background contrasting with the ink; the picture is turned grey and inverted
  when the background is light (``--invert auto``: the training digits are light strokes on
  black); it is padded to a square with the background (the aspect ratio is kept, as in MNIST's
  preprocessing) and area-resized to the model's size. What was done is said per picture.

A 1-D model (``convgrad train --data mnist1d``) classifies signals, read from ``.npy`` only: one
signal ``(L,)`` or a stack ``(N, L)`` / ``(N, 1, L)`` of the model's length, in the training data's
units (MNIST-1D's are standardized: the values as ``mnist1d`` makes them).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

from .types import positive_float, positive_int

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff")


def register(sub) -> None:
    p = sub.add_parser(
        "predict",
        help="classify images (.npy, .png, .jpg, ...) with weights written by `convgrad train`",
        description=(
            "Classify images with weights written by `convgrad train`. Accepted: .npy arrays, one (H, W) image or "
            "a stack (N, H, W) of the model's size, in the training data's units (0..16 for the digits, 0..255 "
            "for 8-bit IDX data); PNG/JPEG/BMP/GIF/TIFF pictures (read with Pillow), turned grey, resized to the "
            "model's size and inverted when the background is light."
        ),
    )
    p.add_argument("weights", type=Path, help="the .npz file written by `convgrad train` (e.g. out/weights.npz)")
    p.add_argument("images", type=Path, nargs="+", metavar="IMAGE", help="image files: .npy, .png, .jpg, .bmp, .gif, .tif")
    p.add_argument("--invert", choices=("auto", "yes", "no"), default="auto",
                   help="invert pictures (not .npy): auto inverts when the border is light (default auto)")
    p.add_argument("--max-value", type=positive_float, default=None,
                   help="the raw value of full ink in .npy arrays (default: the training data's, e.g. 16 for the digits)")
    p.add_argument("--top", type=positive_int, default=3, help="how many classes to list per image (default 3)")
    p.add_argument("--json", action="store_true", help="print one JSON object per image")
    p.set_defaults(func=run)


def _numeric_npy(path: Path) -> np.ndarray:
    """The numeric array in the ``.npy`` file ``path`` (never unpickled); ValueError naming the file otherwise."""
    try:
        arr = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise ValueError(f"{path}: cannot read as a .npy array: {exc}") from None
    if arr.dtype.kind not in "biuf":
        raise ValueError(f"{path}: expected a numeric array, got dtype {arr.dtype}")
    return arr


def load_npy(path: Path, size: tuple[int, int], max_value: float) -> np.ndarray:
    """``(N, 1, H, W)`` float32 in [0, 1] from an ``.npy`` array in the training data's units."""
    arr = _numeric_npy(path)
    if arr.ndim == 2:
        arr = arr[None]
    elif arr.ndim == 4 and arr.shape[1] == 1:
        arr = arr[:, 0]
    if arr.ndim != 3 or arr.shape[1:] != tuple(size):
        raise ValueError(
            f"{path}: expected an image of shape {tuple(size)} or a stack (N, {size[0]}, {size[1]}) for this model, "
            f"got shape {arr.shape} (.npy arrays are not resized; save pictures as .png to have them resized)"
        )
    return (arr.astype(np.float64) / max_value).astype(np.float32)[:, None]


def load_signals(path: Path, length: int, max_value: float) -> np.ndarray:
    """``(N, 1, L)`` float32 from an ``.npy`` array of 1-D signals ``(L,)``, ``(N, L)`` or ``(N, 1, L)``."""
    if path.suffix.lower() != ".npy":
        raise ValueError(f"{path}: this model classifies 1-D signals of {length} samples, read from .npy arrays "
                         f"(one signal ({length},) or a stack (N, {length})); got a {path.suffix or 'suffix-less'} file")
    arr = _numeric_npy(path)
    if arr.ndim == 1:
        arr = arr[None]
    elif arr.ndim == 3 and arr.shape[1] == 1:
        arr = arr[:, 0]
    if arr.ndim != 2 or arr.shape[1] != length:
        raise ValueError(f"{path}: expected a signal of shape ({length},) or a stack (N, {length}) for this model, "
                         f"got shape {arr.shape}")
    return (arr.astype(np.float64) / max_value).astype(np.float32)[:, None]  # (N, 1, L)


def _flatten_alpha(img):
    """``(grey image, note)``: a picture with transparency composited onto a background contrasting with its ink.

    The ink is what is opaque; a dark ink goes onto white, a light ink onto black, so that the
    strokes stay visible whatever colour the transparent pixels happen to hold.
    """
    from PIL import Image

    has_alpha = img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info)
    if not has_alpha:
        return img.convert("L"), None
    rgba = img.convert("RGBA")
    alpha = np.asarray(rgba.getchannel("A"), dtype=np.float32) / 255.0  # (H, W)
    if alpha.min() == 1.0:
        return rgba.convert("L"), None
    grey = np.asarray(rgba.convert("L"), dtype=np.float32) / 255.0
    ink = grey[alpha > 0.5]
    background = 1.0 if ink.size == 0 or ink.mean() <= 0.5 else 0.0
    flat = grey * alpha + background * (1 - alpha)
    note = f"transparent background composited on {'white' if background else 'black'}"
    return Image.fromarray(np.round(flat * 255).astype(np.uint8)), note


def load_picture(path: Path, size: tuple[int, int], invert: str) -> tuple[np.ndarray, str]:
    """``((1, 1, H, W) float32 in [0, 1], what was done)`` from a picture file, through Pillow."""
    try:
        from PIL import Image
    except ImportError:
        raise ValueError(f"{path}: reading pictures needs Pillow: pip install 'convgrad[train]' (or pass a .npy array)") from None
    try:
        with Image.open(path) as img:
            img.load()
            mode, (width, height) = img.mode, img.size
            grey, composited = _flatten_alpha(img)
    except OSError as exc:
        raise ValueError(f"{path}: cannot read as a picture: {exc}") from None
    steps = [f"{width}x{height} {mode}"] + ([composited] if composited else [])
    pixels = np.asarray(grey, dtype=np.float32) / 255.0  # (h, w)
    border = np.concatenate([pixels[0], pixels[-1], pixels[:, 0], pixels[:, -1]])
    light_background = border.mean() > 0.5
    if invert == "yes" or (invert == "auto" and light_background):
        pixels = 1.0 - pixels
        steps.append("inverted (dark ink on a light background)" if invert == "auto" else "inverted (--invert yes)")
    elif invert == "auto":
        steps.append("not inverted (light ink on a dark background)")
    # pad to a square with the background (now 0), so the resize keeps the aspect ratio
    h, w = pixels.shape
    side = max(h, w)
    if h != w:
        top, left = (side - h) // 2, (side - w) // 2
        square = np.zeros((side, side), dtype=np.float32)  # (side, side)
        square[top:top + h, left:left + w] = pixels
        pixels = square
        steps.append(f"padded to {side}x{side}")
    if pixels.shape != tuple(size):
        target_h, target_w = size
        if target_h != target_w:
            # a model of another aspect: pad the square to that aspect, so the resize does not stretch
            canvas = np.zeros((max(side, round(side * target_h / target_w)), max(side, round(side * target_w / target_h))),
                              dtype=np.float32)  # (H', W') with H'/W' = target_h/target_w
            top, left = (canvas.shape[0] - side) // 2, (canvas.shape[1] - side) // 2
            canvas[top:top + side, left:left + side] = pixels
            pixels = canvas
        resized = Image.fromarray(pixels, mode="F").resize((target_w, target_h), Image.Resampling.BOX)
        pixels = np.clip(np.asarray(resized, dtype=np.float32), 0.0, 1.0)
        steps.append(f"resized to {target_h}x{target_w} (area average)")
    return pixels[None, None], ", ".join(steps)


def load_images(paths, size: tuple[int, ...], max_value: float, invert: str) -> list[tuple[str, np.ndarray, str]]:
    """``(label, image, what was done)`` per image (a ``.npy`` stack gives several, labelled ``path[i]``).

    ``size`` is ``(H, W)`` for an image model, ``(L,)`` for a 1-D model (signals, ``.npy`` only).
    """
    out = []
    for path in paths:
        if not path.is_file():
            raise ValueError(f"{path}: no such file")
        suffix = path.suffix.lower()
        if len(size) == 1 or suffix == ".npy":
            stack = load_signals(path, size[0], max_value) if len(size) == 1 else load_npy(path, size, max_value)
            if len(size) == 1:
                note = "as given (a 1-D signal)" if max_value == 1 else f"divided by {max_value:g} (--max-value)"
            else:
                note = f"divided by {max_value:g} (the raw value of full ink)"
            if len(stack) == 1:
                out.append((str(path), stack[0], note))
            else:
                out.extend((f"{path}[{i}]", image, note) for i, image in enumerate(stack))
        elif suffix in IMAGE_SUFFIXES:
            image, note = load_picture(path, size, invert)
            out.append((str(path), image[0], note))
        else:
            raise ValueError(f"{path}: unsupported file type {suffix or '(none)'!r}; accepted: .npy, {', '.join(IMAGE_SUFFIXES)}")
    return out


def run(args) -> int:
    from ..nn.checkpoint import load_lenet
    from ..nn.loss import log_softmax

    try:
        model, meta = load_lenet(args.weights)
    except ValueError as exc:
        if args.weights.suffix.lower() != ".npz":
            raise ValueError(f"{exc} (usage: convgrad predict WEIGHTS.npz IMAGE...: the weights come first)") from None
        raise
    config = meta["config"]
    size = (int(config["length"]),) if config.get("kind") == "cnn1d" else tuple(config["image_size"])
    max_value = args.max_value or meta["max_value"]
    items = load_images(args.images, size, max_value, args.invert)
    batch = np.stack([image for _, image, _ in items])  # (N, 1, H, W), or (N, 1, L) for signals
    probs = np.exp(log_softmax(model(batch).astype(np.float64)))
    top = min(args.top, probs.shape[1])
    quiet = getattr(args, "quiet", False)
    for (name, _, note), p in zip(items, probs):
        order = np.argsort(-p, kind="stable")[:top]
        if args.json:
            print(json.dumps({"image": name, "prediction": int(order[0]), "probability": round(float(p[order[0]]), 6),
                              "top": [[int(c), round(float(p[c]), 6)] for c in order], "preprocessing": note}))
        else:
            if not quiet:
                print(f"{name}: read as: {note}", file=sys.stderr)
            others = ", ".join(f"{c} ({100 * p[c]:.1f}%)" for c in order[1:])
            print(f"{name}: {order[0]} ({100 * p[order[0]]:.1f}%)" + (f"   then {others}" if others else ""))
    return 0
