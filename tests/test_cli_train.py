"""``convgrad train`` and ``convgrad predict`` end to end: the digits, IDX files, pictures, weights."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

from convgrad.cli import main
from test_nn_data import write_idx

pytest.importorskip("matplotlib")
pytest.importorskip("sklearn")

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def synthetic_idx(folder, n_train=96, n_test=30, seed=0):
    """Three easy classes of 8x8 images: a bright bar at the top, in the middle, or on the left."""
    rng = np.random.default_rng(seed)

    def make(n):
        labels = np.arange(n) % 3
        images = rng.integers(0, 40, size=(n, 8, 8))
        for img, c in zip(images, labels):
            if c == 0:
                img[1:3, 1:7] = 230
            elif c == 1:
                img[3:5, 1:7] = 230
            else:
                img[1:7, 1:3] = 230
        return images, labels

    folder.mkdir(exist_ok=True)
    for stem, n in (("train", n_train), ("t10k", n_test)):
        images, labels = make(n)
        write_idx(folder / f"{stem}-images-idx3-ubyte", images)
        write_idx(folder / f"{stem}-labels-idx1-ubyte.gz", labels)
    return make(6)


def train_json(capsys, *args):
    assert main(["train", "--no-progress", "--json", *map(str, args)]) == 0
    captured = capsys.readouterr()
    lines = captured.out.strip().splitlines()
    assert len(lines) == 1, captured.out  # --json: exactly one line on stdout
    return json.loads(lines[0]), captured.err


def test_train_on_idx_files_writes_weights_and_pictures(tmp_path, capsys):
    synthetic_idx(tmp_path / "idx")
    out = tmp_path / "out"
    result, report = train_json(capsys, "--data", tmp_path / "idx", "--epochs", 6, "--batch-size", 16, "--out", out)
    assert set(result) >= {"test_accuracy", "epochs", "seconds"}
    assert result["epochs"] == 6 and result["seconds"] > 0
    assert result["test_accuracy"] >= 0.9  # an easy task: the network must have learned it
    assert "96 training and 30 test images" in report and "epoch 6/6" in report
    for name in ("curves.png", "filters.png", "mistakes.png"):
        assert (out / name).read_bytes()[:8] == PNG_SIGNATURE
        assert (out / name).stat().st_size > 5_000
    assert f"wrote {out / 'weights.npz'}" in report


def test_same_seed_same_run_different_seed_different_run(tmp_path, capsys):
    synthetic_idx(tmp_path / "idx")
    runs = {}
    for name, seed in (("a", 3), ("b", 3), ("c", 4)):
        train_json(capsys, "--data", tmp_path / "idx", "--epochs", 2, "--seed", seed, "--out", tmp_path / name)
        with np.load(tmp_path / name / "weights.npz") as f:
            runs[name] = {k: f[k] for k in f.files if k.startswith("state/")}
    for key in runs["a"]:
        np.testing.assert_array_equal(runs["a"][key], runs["b"][key])
    assert any(not np.array_equal(runs["a"][k], runs["c"][k]) for k in runs["a"])


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """Weights trained once on the synthetic IDX data, and six more labelled images."""
    folder = tmp_path_factory.mktemp("trained")
    extra_images, extra_labels = synthetic_idx(folder / "idx")
    args = ["train", "--no-progress", "--data", str(folder / "idx"), "--epochs", "6", "--batch-size", "16",
            "--out", str(folder / "out")]
    assert main(args) == 0
    return folder / "out" / "weights.npz", extra_images, extra_labels


def test_predict_npy_and_png(trained, tmp_path, capsys):
    weights, extra_images, extra_labels = trained
    np.save(tmp_path / "stack.npy", extra_images)  # 0..255, the IDX data's own units
    from PIL import Image

    # the first image as a picture a person would draw: dark ink on white, larger than 8x8
    picture = Image.fromarray((255 - extra_images[0]).astype(np.uint8)).resize((40, 40), Image.Resampling.NEAREST)
    picture.save(tmp_path / "drawn.png")
    assert main(["predict", str(weights), str(tmp_path / "stack.npy"), str(tmp_path / "drawn.png"), "--json"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.strip().splitlines()]
    assert [r["image"] for r in rows[:2]] == [f"{tmp_path / 'stack.npy'}[0]", f"{tmp_path / 'stack.npy'}[1]"]
    predictions = [r["prediction"] for r in rows]
    assert predictions[:6] == extra_labels.tolist()
    assert predictions[6] == extra_labels[0]
    assert all(0 <= r["probability"] <= 1 and len(r["top"]) == 3 for r in rows)

    assert main(["predict", str(weights), str(tmp_path / "stack.npy")]) == 0
    assert f"{tmp_path / 'stack.npy'}[2]: {extra_labels[2]} (" in capsys.readouterr().out


@pytest.mark.parametrize(
    "make,message",
    [
        (lambda d: (d / "notes.txt").write_text("x") and d / "notes.txt", "unsupported file type '.txt'"),
        (lambda d: np.save(d / "wrong.npy", np.zeros((5, 5))) or d / "wrong.npy", "expected an image of shape \\(8, 8\\)"),
        (lambda d: d / "missing.png", "no such file"),
        (lambda d: (d / "broken.png").write_bytes(b"not a png") and d / "broken.png", "cannot read as a picture"),
    ],
)
def test_predict_errors_are_clear(trained, tmp_path, capsys, make, message):
    assert main(["predict", str(trained[0]), str(make(tmp_path))]) == 2
    assert re.search(message, capsys.readouterr().err)


def test_train_errors_are_clear(tmp_path, capsys):
    assert main(["train", "--data", str(tmp_path / "nowhere"), "--out", str(tmp_path)]) == 2
    assert "is not a directory" in capsys.readouterr().err
    assert main(["predict", str(tmp_path / "nothing.npz"), str(tmp_path / "x.npy")]) == 2
    assert "cannot read weights file" in capsys.readouterr().err


def test_default_run_reaches_98_percent_on_the_digits(tmp_path, capsys):
    """The README's demo: the default configuration on scikit-learn's digits."""
    result, report = train_json(capsys, "--out", tmp_path)
    assert result["epochs"] == 20
    assert result["test_accuracy"] >= 0.98, report
    assert "scikit-learn's 8x8 digits" in report
