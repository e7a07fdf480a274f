"""Figures, the GIF and the command line of ``convgrad explain``.

Pictures are checked for what a reader relies on: the file is a valid PNG/SVG/GIF of a sensible
size, and the cells the contributor list names really have the highlight colours (pixels read
back from the rendered image at the positions the canvas reports), while other cells do not.
"""

from __future__ import annotations

import io
import json
import xml.etree.ElementTree as ET

import numpy as np
import pytest
from PIL import Image

from convgrad.cli import main
from convgrad.explain import explain
from convgrad.explain.figures import COLORS, draw_canvas

ORANGE, BLUE, RED = (COLORS[k] for k in ("first", "second", "element"))


def _rgb(hexcolor):
    return tuple(int(hexcolor[i: i + 2], 16) for i in (1, 3, 5))


def _close(a, b, tol=6):
    return max(abs(int(x) - int(y)) for x, y in zip(a, b)) <= tol


CASES = [
    ("2d_padding", dict(input_shape=(1, 2, 6, 6), weight_shape=(3, 2, 3, 3), stride=2, padding=1), "grad_input",
     (0, 1, 2, 3)),
    ("2d_padding", dict(input_shape=(1, 2, 6, 6), weight_shape=(3, 2, 3, 3), stride=2, padding=1), "output",
     (0, 1, 1, 2)),
    ("1d_groups", dict(input_shape=(2, 4, 9), weight_shape=(6, 2, 3), stride=2, groups=2), "grad_weight", (4, 1, 2)),
    ("3d", dict(input_shape=(1, 2, 5, 5, 5), weight_shape=(2, 2, 3, 3, 3), stride=2, padding=1), "output",
     (0, 1, 1, 1, 1)),
    ("transposed", dict(input_shape=(1, 4, 3, 4), weight_shape=(4, 1, 3, 2), stride=(2, 3), padding=(1, 0),
                        output_padding=(1, 2), groups=2, transposed=True), "output", (0, 1, 2, 6)),
    ("reflect", dict(input_shape=(1, 2, 6, 6), weight_shape=(4, 1, 3, 3), padding=1, padding_mode="reflect", groups=2),
     "grad_input", (0, 1, 0, 1)),
    ("bias", dict(input_shape=(2, 1, 5), weight_shape=(3, 1, 2)), "grad_bias", (2,)),
]


@pytest.mark.parametrize("name, kwargs, quantity, index", CASES, ids=[f"{c[0]}-{c[2]}" for c in CASES])
def test_highlighted_cells_have_the_highlight_colours(name, kwargs, quantity, index):
    ex = explain(**kwargs)
    canvas = draw_canvas(ex, quantity, index)
    img = canvas.rgba()[..., :3]
    first, second, result = {"output": ("x", "w", "y"), "grad_input": ("dy", "w", "dx"),
                             "grad_weight": ("x", "dy", "dw"), "grad_bias": ("dy", None, "db")}[quantity]
    terms = ex.terms_full(quantity, index)
    checked = 0

    def colour_at(arr, idx):
        pos = canvas.pixel_of(arr, idx)
        assert pos is not None, (arr, idx)
        return tuple(img[pos[1], pos[0]])

    for t in terms:
        a, b = (t, None) if quantity == "grad_bias" else t
        if a is not None:
            assert _close(colour_at(first, a), _rgb(ORANGE)), (first, a)
            checked += 1
        if b is not None:
            assert _close(colour_at(second, b), _rgb(BLUE)), (second, b)
            checked += 1
    assert _close(colour_at(result, index), _rgb(RED))
    # a cell that is no contributor keeps its plain colour
    used = {t if quantity == "grad_bias" else t[0] for t in terms}
    shape = ex.full_shape_of(first)
    free = next(i for i in np.ndindex(*shape) if i not in used and canvas.pixel_of(first, i) is not None)
    assert not _close(colour_at(first, free), _rgb(ORANGE))
    assert checked >= 2


def test_png_and_svg_files(tmp_path):
    ex = explain((1, 2, 6, 6), (3, 2, 3, 3), stride=2, padding=1)
    fig = ex.figure("grad_weight", (1, 0, 0, 1), tmp_path / "f.png")
    im = Image.open(tmp_path / "f.png")
    assert im.format == "PNG"
    w, h = fig.get_size_inches() * fig.dpi
    assert abs(im.size[0] - w) <= 1 and abs(im.size[1] - h) <= 1
    assert 500 < im.size[0] < 2000 and 300 < im.size[1] < 1500
    ex.figure("grad_weight", (1, 0, 0, 1), tmp_path / "f.svg")
    root = ET.parse(tmp_path / "f.svg").getroot()
    assert root.tag.endswith("svg")
    text = (tmp_path / "f.svg").read_text()
    assert "dW[1, 0, 0, 1] is a sum of 9 products" in text  # the title: the figure is of the asked quantity
    buf = io.BytesIO()
    ex.figure("output", (0, 0, 0, 0), buf, format="png")
    assert buf.getvalue()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(ValueError, match="format"):
        ex.figure("output", (0, 0, 0, 0), tmp_path / "f.jpg")


def test_large_arrays_are_windowed_or_drawn_as_images():
    ex = explain((5, 100, 100), (10, 5, 5, 5))
    canvas = draw_canvas(ex, "grad_input", (2, 50, 50))  # a 5x5 window of contributors in 96x96 dY
    dy = next(p for p in canvas.panels if p.name == "dy")
    assert not dy.dense and len(dy.blocks[0].rows) < 20 and "(window)" in dy.title
    canvas = draw_canvas(ex, "grad_weight", (3, 2, 1, 4))  # every dY position of channel 3 contributes
    dy = next(p for p in canvas.panels if p.name == "dy")
    assert dy.dense and len(dy.blocks) == 1 and dy.hidden == 9
    img = canvas.rgba()[..., :3]
    x, y = canvas.pixel_of("dy", (0, 3, 40, 40))
    assert _close(img[y, x], _rgb(BLUE))
    w, h = canvas.fig.get_size_inches()
    assert w < 16 and h < 10


def test_3d_slices_can_be_chosen():
    ex = explain((1, 1, 5, 5, 5), (1, 1, 3, 3, 3), padding=1)
    canvas = draw_canvas(ex, "output", (0, 0, 2, 2, 2))
    x = next(p for p in canvas.panels if p.name == "x")
    assert sorted(b.lead[2] for b in x.blocks) == [1, 2, 3]  # the depth slices holding contributors
    canvas = draw_canvas(ex, "output", (0, 0, 2, 2, 2), slices={"x": [2]})
    x = next(p for p in canvas.panels if p.name == "x")
    assert [b.lead[2] for b in x.blocks] == [2]


def test_gif_steps_through_every_element(tmp_path):
    ex = explain((1, 1, 5, 5), (1, 1, 3, 3), stride=2, padding=1)
    n = ex.animate("output", tmp_path / "a.gif")
    assert n == 9
    im = Image.open(tmp_path / "a.gif")
    assert im.format == "GIF" and im.n_frames == 9
    frames = []
    for k in range(9):
        im.seek(k)
        frames.append(np.asarray(im.convert("RGB")))
    assert all(not np.array_equal(frames[k], frames[k + 1]) for k in range(8))
    # frame 4 is y[0, 0, 1, 1]: its x contributors are x[0, 0, 1..3, 1..3]
    from convgrad.explain.animation import frame_indices
    from convgrad.explain.figures import _full_index, canvas_for, highlights

    lights = [highlights(ex, "output", _full_index(ex, "output", i)) for i in frame_indices(ex, "output")]
    union = {}
    for hl in lights:
        for k, v in hl.roles.items():
            union.setdefault(k, set()).update(v)
    canvas = canvas_for(ex, "output", union)
    canvas.rgba()
    for idx, want in (((0, 0, 2, 2), ORANGE), ((0, 0, 0, 0), None)):
        x, y = canvas.pixel_of("x", idx)
        got = frames[4][y, x]
        assert _close(got, _rgb(want), tol=14) if want else not _close(got, _rgb(ORANGE), tol=14)
    with pytest.raises(ValueError, match="max_frames"):
        explain((1, 1, 30, 30), (1, 1, 3, 3)).animate("output", tmp_path / "b.gif", max_frames=100)
    assert ex.animate("grad_input", tmp_path / "c.gif", prefix=(0, 0, 2)) == 5


# ------------------------------------------------------------------------------------------------
# the command line
# ------------------------------------------------------------------------------------------------


def test_cli_text_json_and_files(tmp_path, capsys):
    args = ["explain", "--input", "2,5,100,100", "--weight", "10,5,5,5", "--stride", "2", "--padding", "1"]
    assert main(args + ["--at", "grad_input:0,1,4,4"]) == 0
    out = capsys.readouterr().out
    assert "H_out = floor((H + P_lo + P_hi - K_eff)/S) + 1 = floor((100 + 1 + 1 - 5)/2) + 1 = 49" in out
    assert "THE ELEMENT YOU ASKED FOR: dX[0, 1, 4, 4] (40 terms)" in out
    assert main(args + ["--format", "json", "--at", "dw:3,2,1,4"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert d["element"]["count"] == 2 * 49 * 49 and d["configuration"]["output_shape"] == [2, 10, 49, 49]
    small = ["explain", "--input", "1,2,6,6", "--weight", "3,2,3,3", "--padding", "1"]
    assert main(small + ["--at", "dx:0,1,2,3", "-o", str(tmp_path / "a.png")]) == 0
    assert Image.open(tmp_path / "a.png").format == "PNG"
    assert main(small + ["--at", "y:0,0,1,1", "--format", "svg", "-o", str(tmp_path / "a.svg")]) == 0
    assert ET.parse(tmp_path / "a.svg").getroot().tag.endswith("svg")
    assert main(small + ["--format", "gif", "--at", "output:0,0,1", "-o", str(tmp_path / "a.gif")]) == 0
    assert Image.open(tmp_path / "a.gif").n_frames == 6
    assert main(small + ["-o", str(tmp_path / "a.html")]) == 0
    assert "ConvGradView.start(" in (tmp_path / "a.html").read_text()
    assert main(["explain", "--input", "1,4,3", "--weight", "4,1,3", "--transposed", "--stride", "2",
                 "--output-padding", "1", "--at", "y:0,0,7"]) == 0
    assert "conv_transpose1d" in capsys.readouterr().out


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--at", "dz:0,0,0"], "--at: the quantity must be one of"),
        (["--at", "dx:0,0"], "needs 3 entries"),
        (["--at", "dx:0,0,9"], "out of range"),
        (["--groups", "2"], "groups=2 must divide"),
        (["--padding-mode", "reflect", "--transposed"], "--padding-mode"),
    ],
)
def test_cli_errors_name_the_flag(extra, message, capsys):
    assert main(["explain", "--input", "1,1,5", "--weight", "1,1,3", *extra]) == 2
    assert message in capsys.readouterr().err
