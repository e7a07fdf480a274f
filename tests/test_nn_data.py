"""IDX reading, the stratified split and batching."""

from __future__ import annotations

import gzip
import struct

import numpy as np
import pytest

from convgrad.nn import data


def write_idx(path, array: np.ndarray, type_byte: int = 0x08) -> None:
    """An IDX file written from the format's definition (not with the reader's code)."""
    dtype = np.dtype(data.IDX_TYPES[type_byte])
    header = bytes([0, 0, type_byte, array.ndim]) + b"".join(struct.pack(">i", d) for d in array.shape)
    payload = header + array.astype(dtype).tobytes()
    if str(path).endswith(".gz"):
        with gzip.open(path, "wb") as f:
            f.write(payload)
    else:
        path.write_bytes(payload)


@pytest.mark.parametrize("type_byte", sorted(data.IDX_TYPES))
@pytest.mark.parametrize("gz", [False, True])
def test_read_idx_every_type(tmp_path, type_byte, gz):
    arr = (np.arange(24).reshape(2, 3, 4) - (0 if type_byte == 0x08 else 5)).astype(np.float64)
    path = tmp_path / ("a.idx" + (".gz" if gz else ""))
    write_idx(path, arr, type_byte)
    out = data.read_idx(path)
    assert out.shape == (2, 3, 4) and out.dtype.isnative
    np.testing.assert_array_equal(out, arr)


def test_read_idx_errors(tmp_path):
    bad = tmp_path / "bad"
    bad.write_bytes(b"\x01\x02\x08\x01")
    with pytest.raises(ValueError, match="not an IDX file"):
        data.read_idx(bad)
    short = tmp_path / "short"
    write_idx(short, np.zeros((3, 2, 2)))
    short.write_bytes(short.read_bytes()[:-1])
    with pytest.raises(ValueError, match="needs 28 bytes, it has 27"):
        data.read_idx(short)
    with pytest.raises(ValueError, match="cannot read IDX file"):
        data.read_idx(tmp_path / "missing")


def test_load_idx_dir_finds_mnist_names(tmp_path):
    rng = np.random.default_rng(0)
    write_idx(tmp_path / "train-images-idx3-ubyte.gz", rng.integers(0, 256, (10, 6, 5)))
    write_idx(tmp_path / "train-labels-idx1-ubyte.gz", np.arange(10) % 3)
    write_idx(tmp_path / "t10k-images.idx3-ubyte", rng.integers(0, 256, (4, 6, 5)))
    write_idx(tmp_path / "t10k-labels.idx1-ubyte", np.array([0, 1, 2, 0]))
    train, test = data.load_idx_dir(tmp_path)
    assert train.images.shape == (10, 1, 6, 5) and train.images.dtype == np.float32
    assert 0 <= train.images.min() and train.images.max() <= 1 and train.max_value == 255
    np.testing.assert_array_equal(test.labels, [0, 1, 2, 0])
    (tmp_path / "t10k-labels.idx1-ubyte").unlink()
    with pytest.raises(ValueError, match="only one of t10k"):
        data.load_idx_dir(tmp_path)
    write_idx(tmp_path / "t10k-labels.idx1-ubyte", np.array([0, 1, 2]))
    with pytest.raises(ValueError, match="holds 4 images but .* holds 3 labels"):
        data.load_idx_dir(tmp_path)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="must hold train-images-idx3-ubyte"):
        data.load_idx_dir(tmp_path / "empty")


def test_stratified_split_is_deterministic_and_balanced():
    labels = np.repeat(np.arange(4), [10, 20, 30, 40])
    train, test = data.stratified_split(labels, 0.2, seed=3)
    again = data.stratified_split(labels, 0.2, seed=3)
    np.testing.assert_array_equal(test, again[1])
    assert np.bincount(labels[test]).tolist() == [2, 4, 6, 8]
    assert sorted(np.concatenate([train, test]).tolist()) == list(range(100))
    assert not np.array_equal(test, data.stratified_split(labels, 0.2, seed=4)[1])


def test_batches_cover_every_index_once():
    out = list(data.batches(10, 4, np.random.default_rng(0)))
    assert [len(b) for b in out] == [4, 4, 2]
    assert sorted(np.concatenate(out).tolist()) == list(range(10))
