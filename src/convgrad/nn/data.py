"""Classification data: scikit-learn's 8x8 digits, MNIST-format IDX files, MNIST-1D, splits and batches.

A :class:`Dataset` holds ``images`` of shape ``(N, 1, H, W)`` as float32 in ``[0, 1]`` (the raw
values divided by ``max_value``: 16 for the digits, 255 for 8-bit IDX files) and integer
``labels`` of shape ``(N,)``. MNIST-1D's signals are ``(N, 1, L)`` "images" of one spatial
dimension, standardized by the data set itself (``max_value`` 1).
"""

from __future__ import annotations

import gzip
import os
from pathlib import Path
from typing import Iterator, NamedTuple

import numpy as np

__all__ = ["Dataset", "load_digits", "load_mnist1d", "read_idx", "load_idx_dir", "stratified_split", "batches"]


class Dataset(NamedTuple):
    """Images ``(N, 1, H, W)`` float32 in ``[0, 1]``, labels ``(N,)`` int64, and the raw value that maps to 1."""

    images: np.ndarray
    labels: np.ndarray
    max_value: float

    def __len__(self) -> int:
        return len(self.labels)

    def subset(self, index: np.ndarray) -> "Dataset":
        return Dataset(self.images[index], self.labels[index], self.max_value)

    @property
    def image_size(self) -> tuple[int, ...]:
        """``(H, W)`` of images, ``(L,)`` of 1-D signals."""
        return tuple(self.images.shape[2:])


def load_digits() -> Dataset:
    """The 1797 8x8 handwritten digits shipped inside scikit-learn (values 0..16; no download)."""
    try:
        from sklearn.datasets import load_digits as sk_load_digits
    except ImportError:
        raise ImportError(
            "the digits data ship with scikit-learn, which is not installed: pip install 'convgrad[train]' "
            "(or pass --data DIR with MNIST-format IDX files)"
        ) from None
    bunch = sk_load_digits()
    images = (bunch.images / 16.0).astype(np.float32)[:, None]  # (N, 1, 8, 8)
    return Dataset(images, bunch.target.astype(np.int64), 16.0)


def load_mnist1d(num_samples: int = 5000, seed: int = 42) -> tuple[Dataset, Dataset]:
    """MNIST-1D (Greydanus, 2020), generated locally from its ten templates: ``(train, test)``.

    The paper's configuration: ``num_samples`` signals of 40 samples (the ten digit templates
    padded, scaled, translated, given correlated and white noise and sheared; ``seed`` fixes all of
    it), standardized over the whole set, the first 80 % for training, the rest for testing
    (4000/1000 by default). It needs the ``mnist1d`` package (``pip install 'convgrad[mnist1d]'``);
    nothing is downloaded: its ``get_dataset``, which fetches a pickle from the web by default, is
    not used, only ``make_dataset``. NumPy's and ``random``'s global random states, which
    ``make_dataset`` reseeds, are restored afterwards.
    """
    try:
        from mnist1d.data import get_dataset_args, make_dataset
    except ImportError as exc:
        raise ImportError(f"MNIST-1D needs the mnist1d package ({exc}): pip install 'convgrad[mnist1d]'") from None
    import random

    if isinstance(num_samples, bool) or not isinstance(num_samples, (int, np.integer)) or num_samples < 20:
        raise ValueError(f"load_mnist1d: num_samples must be an integer >= 20 (two per class at least), got {num_samples!r}")
    args = get_dataset_args()
    args.num_samples, args.seed = int(num_samples), int(seed)
    saved = np.random.get_state(), random.getstate()
    try:
        made = make_dataset(args)
    finally:
        np.random.set_state(saved[0])
        random.setstate(saved[1])

    def part(x, y) -> Dataset:
        return Dataset(np.asarray(x, dtype=np.float32)[:, None], np.asarray(y, dtype=np.int64), 1.0)  # (N, 1, L)

    return part(made["x"], made["y"]), part(made["x_test"], made["y_test"])


# ------------------------------------------------------------------------------------------------
# IDX files (the MNIST format)
# ------------------------------------------------------------------------------------------------

#: IDX type byte -> big-endian NumPy dtype
IDX_TYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def read_idx(path) -> np.ndarray:
    """Read an IDX file (optionally gzip-compressed, by its ``.gz`` suffix) into an array.

    The format: two zero bytes, a type byte (0x08 ubyte, 0x09 byte, 0x0B int16, 0x0C int32,
    0x0D float32, 0x0E float64), a byte with the number of dims, one big-endian int32 per dim,
    then the values, row-major and big-endian.
    """
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            data = f.read()
    except OSError as exc:
        raise ValueError(f"cannot read IDX file {path}: {exc}") from None
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] not in IDX_TYPES:
        raise ValueError(
            f"{path} is not an IDX file: it must start with two zero bytes and a type byte from "
            f"{sorted(hex(t) for t in IDX_TYPES)}, got {data[:4]!r}"
        )
    dtype = np.dtype(IDX_TYPES[data[2]])
    ndim = data[3]
    header = 4 + 4 * ndim
    if len(data) < header:
        raise ValueError(f"{path}: truncated IDX header ({ndim} dims need {header} bytes, the file has {len(data)})")
    shape = tuple(int(v) for v in np.frombuffer(data, dtype=">i4", count=ndim, offset=4))
    expected = header + int(np.prod(shape)) * dtype.itemsize
    if len(data) != expected:
        raise ValueError(f"{path}: an IDX file of shape {shape} and type {dtype.str} needs {expected} bytes, it has {len(data)}")
    return np.frombuffer(data, dtype=dtype, offset=header).reshape(shape).astype(dtype.newbyteorder("="))


#: The two MNIST parts and the file-name stems that identify them
IDX_PARTS = {"train": "train", "test": "t10k"}


def _find(folder: Path, stem: str, kind: str) -> Path | None:
    """The file for ``stem`` (``train``/``t10k``) and ``kind`` (``images``/``labels``), ``-`` or ``.`` separated."""
    dims = "idx3" if kind == "images" else "idx1"
    for sep in ("-", "."):
        for suffix in ("", ".gz"):
            candidate = folder / f"{stem}-{kind}{sep}{dims}-ubyte{suffix}"
            if candidate.is_file():
                return candidate
    return None


def _idx_dataset(images_path: Path, labels_path: Path) -> Dataset:
    images = read_idx(images_path)
    labels = read_idx(labels_path)
    if images.ndim != 3:
        raise ValueError(f"{images_path}: images must be a 3-d IDX array (count, rows, cols), got shape {images.shape}")
    if labels.ndim != 1:
        raise ValueError(f"{labels_path}: labels must be a 1-d IDX array, got shape {labels.shape}")
    if len(images) != len(labels):
        raise ValueError(f"{images_path} holds {len(images)} images but {labels_path} holds {len(labels)} labels")
    if labels.dtype.kind not in "iu" or (len(labels) and labels.min() < 0):
        raise ValueError(f"{labels_path}: labels must be non-negative integers")
    max_value = 255.0 if images.dtype == np.uint8 else float(max(np.abs(images).max(initial=0), 1))
    return Dataset((images / max_value).astype(np.float32)[:, None], labels.astype(np.int64), max_value)


def load_idx_dir(folder) -> tuple[Dataset, Dataset | None]:
    """The training set (and the test set, if present) from MNIST-format files in ``folder``.

    Looks for ``train-images-idx3-ubyte`` and ``train-labels-idx1-ubyte`` (and ``t10k-...`` for
    the test set), each optionally ``.gz``, with ``-`` or ``.`` before ``idx``. 8-bit images
    are scaled by 1/255.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise ValueError(f"--data: {folder} is not a directory")
    found = {part: (_find(folder, stem, "images"), _find(folder, stem, "labels")) for part, stem in IDX_PARTS.items()}
    train_images, train_labels = found["train"]
    if train_images is None or train_labels is None:
        listing = sorted(os.listdir(folder))[:10]
        raise ValueError(
            f"--data: {folder} must hold train-images-idx3-ubyte and train-labels-idx1-ubyte (optionally .gz); "
            f"found {listing}"
        )
    train = _idx_dataset(train_images, train_labels)
    test_images, test_labels = found["test"]
    if (test_images is None) != (test_labels is None):
        raise ValueError(f"--data: {folder} has only one of t10k-images-idx3-ubyte and t10k-labels-idx1-ubyte")
    test = None if test_images is None else _idx_dataset(test_images, test_labels)
    if test is not None and test.image_size != train.image_size:
        raise ValueError(f"--data: test images are {test.image_size}, training images {train.image_size}")
    return train, test


# ------------------------------------------------------------------------------------------------
# splitting and batching
# ------------------------------------------------------------------------------------------------


def stratified_split(labels: np.ndarray, test_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices ``(train, test)``: ``round(test_fraction * count)`` of each class go to the test set.

    The same ``seed`` always gives the same split; both index arrays are sorted.
    """
    if not 0 < test_fraction < 1:
        raise ValueError(f"test_fraction must be between 0 and 1, got {test_fraction}")
    rng = np.random.default_rng(seed)
    test = []
    for c in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == c))
        test.append(members[: int(round(test_fraction * len(members)))])
    test_index = np.sort(np.concatenate(test)) if test else np.zeros(0, dtype=np.intp)
    mask = np.zeros(len(labels), dtype=bool)
    mask[test_index] = True
    return np.flatnonzero(~mask), test_index


def batches(n: int, batch_size: int, rng: np.random.Generator | None = None) -> Iterator[np.ndarray]:
    """Index arrays of ``batch_size`` (the last one may be smaller), shuffled by ``rng`` if given."""
    order = np.arange(n) if rng is None else rng.permutation(n)
    for start in range(0, n, batch_size):
        yield order[start:start + batch_size]
