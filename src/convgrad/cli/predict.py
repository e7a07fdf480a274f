"""``convgrad predict``: classify images with weights written by ``convgrad train``.

Accepted images:

- ``.npy``: one image ``(H, W)`` or a stack ``(N, H, W)`` / ``(N, 1, H, W)`` of the model's
  size, in the training data's own units: 0..16 for the digits (as
  ``sklearn.datasets.load_digits().images``), 0..255 for 8-bit IDX data (``--max-value``
  overrides).
- ``.png``, ``.jpg``/``.jpeg``, ``.bmp``, ``.gif``, ``.tif``/``.tiff`` (read with Pillow, which
  comes with matplotlib): turned to 8-bit grey, resized to the model's size (area-averaged), and
  inverted when the background is light (``--invert auto``), since the training digits are light
  strokes on black.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

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
    p.add_argument("--max-value", type=float, default=None,
                   help="the raw value of full ink in .npy arrays (default: the training data's, e.g. 16 for the digits)")
    p.add_argument("--top", type=int, default=3, help="how many classes to list per image (default 3)")
    p.add_argument("--json", action="store_true", help="print one JSON object per image")
    p.set_defaults(func=run)


def load_npy(path: Path, size: tuple[int, int], max_value: float) -> np.ndarray:
    """``(N, 1, H, W)`` float32 in [0, 1] from an ``.npy`` array in the training data's units."""
    try:
        arr = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise ValueError(f"{path}: cannot read as a .npy array: {exc}") from None
    if arr.dtype.kind not in "biuf":
        raise ValueError(f"{path}: expected a numeric array, got dtype {arr.dtype}")
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


def load_picture(path: Path, size: tuple[int, int], invert: str) -> np.ndarray:
    """``(1, 1, H, W)`` float32 in [0, 1] from a picture file, through Pillow."""
    try:
        from PIL import Image
    except ImportError:
        raise ValueError(f"{path}: reading pictures needs Pillow: pip install 'convgrad[train]' (or pass a .npy array)") from None
    try:
        with Image.open(path) as img:
            grey = img.convert("L")
    except OSError as exc:
        raise ValueError(f"{path}: cannot read as a picture: {exc}") from None
    if grey.size != (size[1], size[0]):
        grey = grey.resize((size[1], size[0]), Image.Resampling.BOX)
    pixels = np.asarray(grey, dtype=np.float32) / 255.0  # (H, W)
    border = np.concatenate([pixels[0], pixels[-1], pixels[:, 0], pixels[:, -1]])
    if invert == "yes" or (invert == "auto" and border.mean() > 0.5):
        pixels = 1.0 - pixels
    return pixels[None, None]


def load_images(paths, size: tuple[int, int], max_value: float, invert: str) -> list[tuple[str, np.ndarray]]:
    """``(label, image)`` pairs, one per image (a ``.npy`` stack gives several, labelled ``path[i]``)."""
    out = []
    for path in paths:
        if not path.is_file():
            raise ValueError(f"{path}: no such file")
        suffix = path.suffix.lower()
        if suffix == ".npy":
            stack = load_npy(path, size, max_value)
            if len(stack) == 1:
                out.append((str(path), stack[0]))
            else:
                out.extend((f"{path}[{i}]", image) for i, image in enumerate(stack))
        elif suffix in IMAGE_SUFFIXES:
            out.append((str(path), load_picture(path, size, invert)[0]))
        else:
            raise ValueError(f"{path}: unsupported file type {suffix or '(none)'!r}; accepted: .npy, {', '.join(IMAGE_SUFFIXES)}")
    return out


def run(args) -> int:
    from ..nn.checkpoint import load_lenet
    from ..nn.loss import log_softmax

    if args.top < 1:
        raise ValueError(f"--top must be at least 1, got {args.top}")
    if args.max_value is not None and args.max_value <= 0:
        raise ValueError(f"--max-value must be positive, got {args.max_value}")
    model, meta = load_lenet(args.weights)
    size = tuple(meta["config"]["image_size"])
    max_value = args.max_value or meta["max_value"]
    items = load_images(args.images, size, max_value, args.invert)
    batch = np.stack([image for _, image in items])  # (N, 1, H, W)
    probs = np.exp(log_softmax(model(batch).astype(np.float64)))
    top = min(args.top, probs.shape[1])
    for (name, _), p in zip(items, probs):
        order = np.argsort(-p, kind="stable")[:top]
        if args.json:
            print(json.dumps({"image": name, "prediction": int(order[0]), "probability": round(float(p[order[0]]), 6),
                              "top": [[int(c), round(float(p[c]), 6)] for c in order]}))
        else:
            others = ", ".join(f"{c} ({100 * p[c]:.1f}%)" for c in order[1:])
            print(f"{name}: {order[0]} ({100 * p[order[0]]:.1f}%)" + (f"   then {others}" if others else ""))
    return 0
