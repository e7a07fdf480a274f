"""``convgrad predict`` reads pictures as a person draws them: transparency, either polarity, any aspect.

The pictures are generated here with Pillow; the reference is the same digit as the model sees
it after the documented preparation (light ink on black, padded to a square, area-resized).
"""

from __future__ import annotations

import numpy as np
import pytest

from convgrad.cli import main
from convgrad.cli.predict import load_picture

Image = pytest.importorskip("PIL.Image")
ImageDraw = pytest.importorskip("PIL.ImageDraw")

SIZE = (8, 8)


def bar_picture(width=120, height=160):
    """A vertical bar (a drawn 1) in the middle of a width x height canvas: the ink mask, 0/1."""
    mask = np.zeros((height, width), dtype=np.float32)
    mask[20:140, width // 2 - 8:width // 2 + 8] = 1.0
    return mask


def expected(mask):
    """The mask padded to a square with 0 and area-resized to 8x8: what the model must see."""
    h, w = mask.shape
    side = max(h, w)
    square = np.zeros((side, side), np.float32)
    square[(side - h) // 2:(side - h) // 2 + h, (side - w) // 2:(side - w) // 2 + w] = mask
    return np.asarray(Image.fromarray(square, mode="F").resize(SIZE, Image.Resampling.BOX))


def save_rgba(path, mask, ink, background_alpha=0):
    """Ink of grey level ``ink`` (0 black, 255 white) where mask is 1, transparent elsewhere.

    Read without its alpha channel, such a picture is one flat colour: the bug of the issue
    (a drawn 0 and a drawn 1 both read as an all-zero image).
    """
    rgba = np.zeros(mask.shape + (4,), np.uint8)
    rgba[..., :3] = ink  # the hidden colour is the ink's (as drawing programs leave it): only alpha tells them apart
    rgba[..., 3] = np.where(mask > 0, 255, background_alpha)
    Image.fromarray(rgba, mode="RGBA").save(path)


@pytest.mark.parametrize("ink", [0, 255], ids=["black ink", "white ink"])
def test_transparent_background_is_composited_whatever_the_ink(tmp_path, ink):
    mask = bar_picture()
    save_rgba(tmp_path / "drawn.png", mask, ink)
    image, note = load_picture(tmp_path / "drawn.png", SIZE, "auto")
    np.testing.assert_allclose(image[0, 0], expected(mask), atol=2 / 255)
    assert "transparent background composited on " + ("white" if ink == 0 else "black") in note
    assert ("inverted (dark ink" in note) == (ink == 0)


@pytest.mark.parametrize("ink,paper", [(0, 255), (255, 0)], ids=["dark on light", "light on dark"])
def test_polarity_is_detected(tmp_path, ink, paper):
    mask = bar_picture(100, 100)
    Image.fromarray(np.where(mask > 0, ink, paper).astype(np.uint8)).save(tmp_path / "p.png")
    image, note = load_picture(tmp_path / "p.png", SIZE, "auto")
    np.testing.assert_allclose(image[0, 0], expected(mask), atol=1 / 255)
    assert ("not inverted" in note) == (ink == 255)


def test_aspect_ratio_is_kept_by_padding_not_stretching(tmp_path):
    wide = np.zeros((40, 160), np.float32)
    wide[10:30, 10:150] = 1.0  # a horizontal stroke in a wide picture
    Image.fromarray((wide * 255).astype(np.uint8)).save(tmp_path / "wide.png")
    image, note = load_picture(tmp_path / "wide.png", SIZE, "auto")
    assert "padded to 160x160" in note and "resized to 8x8" in note
    rows_with_ink = np.flatnonzero(image[0, 0].max(axis=1) > 0.1)
    assert len(rows_with_ink) <= 2  # a stretched picture would fill all 8 rows
    np.testing.assert_allclose(image[0, 0], expected(wide), atol=1 / 255)


def test_predict_says_what_it_did_and_reads_a_drawn_digit(tmp_path, capsys):
    """A transparent, non-square drawing of the class the synthetic data call 'bar on the left'."""
    from test_cli_train import synthetic_idx

    synthetic_idx(tmp_path / "idx")
    assert main(["train", "-q", "--data", str(tmp_path / "idx"), "--epochs", "6", "--batch-size", "16",
                 "--out", str(tmp_path / "out")]) == 0
    capsys.readouterr()
    mask = np.zeros((8, 8), np.float32)
    mask[1:7, 1:3] = 1.0  # class 2 of synthetic_idx
    big = np.kron(mask, np.ones((20, 20), np.float32))  # 160x160
    save_rgba(tmp_path / "left.png", big, ink=0)
    assert main(["predict", str(tmp_path / "out" / "weights.npz"), str(tmp_path / "left.png")]) == 0
    captured = capsys.readouterr()
    assert "left.png: read as: 160x160 RGBA, transparent background composited on white, inverted" in captured.err
    assert captured.out.startswith(f"{tmp_path / 'left.png'}: 2 (")
