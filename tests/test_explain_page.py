"""The interactive HTML page in a real browser: Debian's Chromium driven by Playwright.

- the page's own JavaScript index relation (page/relation.js) against Python's contributors,
  sizes and padding on the grid and random configurations;
- hovering a cell highlights exactly its contributors (compared with ``contributors()``), the
  side panel lists them, and the canvas pixels really change colour;
- clicking pins, the configuration form rebuilds the page or names the bad parameter (and goes
  back to the configuration the grids show);
- large planes are readable windows with a minimap; "go to" and ``--at`` move the windows and
  centre the element;
- the page makes no network request and raises no JavaScript error.

The browser is ``/usr/bin/chromium`` (Debian's ``chromium``; ``.ci/run`` installs it). Without it
these tests are skipped with the reason in pytest's summary, except under CI (``CI=true``), where a
missing browser is a failure: CI must drive the real page. ``CONVGRAD_SKIP_BROWSER=1`` skips them
on purpose anywhere.
"""

from __future__ import annotations

import itertools
import os
import random
from pathlib import Path

import numpy as np
import pytest

from convgrad.explain import explain
from convgrad.explain.figures import _padded_reads
from convgrad.explain.page import page_config
from _explain import explanation_of, grid_and_random

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
        "--disable-component-update", "--disable-sync"]
QUANTITY_OF = {"y": "output", "dx": "grad_input", "dw": "grad_weight", "db": "grad_bias"}
OPERANDS = {"output": ("x", "w"), "grad_input": ("dy", "w"), "grad_weight": ("x", "dy"), "grad_bias": ("dy", None)}


@pytest.fixture(scope="module")
def browser():
    if os.environ.get("CONVGRAD_SKIP_BROWSER") == "1":
        pytest.skip("CONVGRAD_SKIP_BROWSER=1: browser tests skipped on request")
    if not Path(CHROMIUM).exists():
        message = (f"{CHROMIUM} is missing: browser tests of the explain page need Debian's chromium "
                   "(apt-get install --no-install-recommends chromium)")
        if os.environ.get("CI") == "true":
            pytest.fail(f"{message}; CI must run them (.ci/run installs it)")
        pytest.skip(message)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield b
        b.close()


class Page:
    """One explain page open in the browser, with its errors and requests recorded."""

    def __init__(self, browser, ex, tmp_path: Path, name="page.html", width=1400, height=950, at=None):
        self.ex = ex
        self.path = tmp_path / name
        ex.html(self.path, at=at)
        self.page = browser.new_page(viewport={"width": width, "height": height}, device_scale_factor=1)
        self.errors, self.requests = [], []
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        self.page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        self.page.on("request", lambda r: self.requests.append(r.url))
        self.page.goto(self.path.as_uri())

    def js(self, expr, arg=None):
        return self.page.evaluate(expr, arg)

    def hover(self, array, index):
        # park the mouse on the header first: scrolling may bring the target right under the
        # pointer, and then moving "to" it would send no mousemove at all
        self.page.mouse.move(2, 2)
        c = self.js("([a, i]) => window.convgradPage.cellCenter(a, i)", [array, list(index)])
        assert c is not None, (array, index)
        self.page.mouse.move(c["x"], c["y"], steps=2)
        return c

    def highlighted(self):
        out = set()
        for line in filter(None, self.js("window.convgradPage.highlighted()").split("\n")):
            array, index, role = line.split("|")
            out.add((array, tuple(int(v) for v in index.split(",")), role))
        return out

    def close(self):
        self.page.close()


def _as_key(t):
    return None if t is None else tuple(t)


# ------------------------------------------------------------------------------------------------
# the JavaScript relation against Python
# ------------------------------------------------------------------------------------------------

JS_COMPARE = """([cfg, queries]) => {
  const R = ConvGradRelation;
  const s = R.makeSpec(cfg);
  return {
    shapes: s.shapes, padding: s.padding, unreadTail: s.unreadTail, zero: s.zeroPositions,
    terms: queries.map(([q, idx]) => R.contributors(s, q, idx)),
    pads: queries.map(([q, idx]) => R.paddedReads(s, q, idx)),
  };
}"""


def _compare_case(pg: Page, ex, rng: random.Random, per_quantity=4):
    queries = []
    for arr, q in QUANTITY_OF.items():
        shape = ex.full_shape_of(arr)
        if 0 in shape:
            continue
        every = list(itertools.product(*map(range, shape)))
        for idx in rng.sample(every, min(per_quantity, len(every))):
            queries.append((arr, q, idx))
    got = pg.js(JS_COMPARE, [page_config(ex), [[q, list(idx)] for _, q, idx in queries]])
    s = ex.spec
    assert got["shapes"]["x"] == list(ex.full_input_shape) and got["shapes"]["y"] == list(ex.full_output_shape)
    assert got["shapes"]["w"] == list(ex.weight_shape)
    assert got["padding"] == [list(p) for p in s.padding]
    assert got["unreadTail"] == list(s.unread_tail)
    assert got["zero"] == [list(g.zero_positions) for g in ex.dims]
    for (arr, q, idx), terms, pads in zip(queries, got["terms"], got["pads"]):
        want = ex.terms_full(q, idx)
        if q == "grad_bias":
            assert [tuple(t) for t in terms] == want, (q, idx)
        else:
            assert [(_as_key(a), _as_key(b)) for a, b in terms] == want, (q, idx)
        if not ex.transposed and s.padding_mode == "zeros":
            assert [(tuple(a), tuple(b)) for a, b in pads] == _padded_reads(ex, q, idx), (q, idx)
    return len(queries)


def test_javascript_relation_equals_python(browser, tmp_path):
    pg = Page(browser, explain((1, 1, 5), (1, 1, 3)), tmp_path)
    rng = random.Random(7)
    checked = 0
    for case in grid_and_random(50, seed=2024):
        checked += _compare_case(pg, explanation_of(case), rng)
    assert checked > 600
    assert pg.errors == []
    pg.close()


VALIDATION = [
    (dict(input=[1, 3, 5], weight=[2, 2, 3], groups=2), "groups=2 must divide the input channels"),
    (dict(input=[1, 2, 2], weight=[2, 2, 3]), "kernel is larger"),
    (dict(input=[1, 2, 5], weight=[2, 2, 3], stride=0), "stride"),
    (dict(input=[1, 2, 5], weight=[2, 2, 3], padding=5, padding_mode="reflect"), "reflect"),
    (dict(input=[1, 2, 5], weight=[2, 2, 3], transposed=True, output_padding=1), "output_padding"),
    (dict(input=[1, 2, 5], weight=[2, 2, 3], output_padding=1), "only applies to a transposed"),
    (dict(input=[1, 2, 5], weight=[2, 2, 3], padding="same", transposed=True), "'same'"),
]


def test_javascript_validation_names_the_parameter(browser, tmp_path):
    pg = Page(browser, explain((1, 1, 5), (1, 1, 3)), tmp_path)
    for cfg, match in VALIDATION:
        msg = pg.js("(cfg) => { try { ConvGradRelation.makeSpec(cfg); return null } catch (e) { return e.message } }",
                    cfg)
        assert msg is not None and match in msg, (cfg, msg)
    pg.close()


# ------------------------------------------------------------------------------------------------
# hovering highlights exactly the contributors
# ------------------------------------------------------------------------------------------------


def _expected(ex, array, idx):
    """The (array, index, role) set the page must highlight when ``array[idx]`` is hovered."""
    out = {(array, tuple(idx), "element")}
    if array in QUANTITY_OF:
        q = QUANTITY_OF[array]
        first, second = OPERANDS[q]
        terms = ex.terms_full(q, tuple(idx))
        pads = iter(_padded_reads(ex, q, tuple(idx)))
        for t in terms:
            if q == "grad_bias":
                out.add((first, t, "a"))
                continue
            a, b = t
            out.add((first, next(pads)[0], "pad") if a is None else (first, a, "a"))
            out.add((second, b, "b"))
        return out
    if array == "x":
        for dy_i, w_i in ex.terms_full("grad_input", tuple(idx)):
            out |= {("y", dy_i, "a"), ("w", w_i, "b")}
    elif array == "w":
        pads = iter(_padded_reads(ex, "grad_weight", tuple(idx)))
        for x_i, dy_i in ex.terms_full("grad_weight", tuple(idx)):
            out |= {("x", next(pads)[0], "pad") if x_i is None else ("x", x_i, "a"), ("y", dy_i, "b")}
    elif array == "dy":
        for x_i, w_i in ex.terms_full("output", tuple(idx)):
            if x_i is not None:
                out.add(("dx", x_i, "a"))
            out.add(("dw", w_i, "b"))
    elif array == "b":
        shape = ex.full_output_shape
        for rest in itertools.product(range(shape[0]), *map(range, shape[2:])):
            out.add(("y", (rest[0], idx[0], *rest[1:]), "a"))
    return out


HOVER_CASES = {
    "2d_padding_groups_stride": dict(input_shape=(2, 4, 7, 6), weight_shape=(4, 2, 3, 3), stride=(2, 1), padding=1,
                                     groups=2),
    "1d_reflect_dilation": dict(input_shape=(1, 2, 9), weight_shape=(2, 2, 3), padding=2, dilation=2,
                                padding_mode="reflect"),
    "3d_tail": dict(input_shape=(1, 1, 4, 5, 5), weight_shape=(2, 1, 2, 3, 3), stride=2, padding=(0, 1, 1)),
    "transposed_holes": dict(input_shape=(1, 2, 3, 3), weight_shape=(2, 1, 2, 2), stride=3, padding=(1, 0),
                             output_padding=(1, 2), transposed=True),
    "unbatched_seed003": dict(input_shape=(5, 100, 100), weight_shape=(10, 5, 5, 5)),
    # windows onto long rows and large 3-D slices (with padding: x's window reaches into it)
    "1d_long_window": dict(input_shape=(1, 2, 300), weight_shape=(2, 2, 5), stride=3, padding=2),
    "3d_large_window": dict(input_shape=(1, 1, 3, 40, 30), weight_shape=(2, 1, 2, 3, 3), padding=1),
}


@pytest.mark.parametrize("name", sorted(HOVER_CASES))
def test_hovering_highlights_exactly_the_contributors(browser, tmp_path, name):
    ex = explain(**HOVER_CASES[name])
    pg = Page(browser, ex, tmp_path)
    rng = random.Random(name)
    hovered = 0
    for array in ("y", "dx", "dw", "db", "x", "w", "dy", "b"):
        shape = ex.full_shape_of(array)
        cells = list(itertools.product(*map(range, shape)))
        for idx in rng.sample(cells, min(2 if name.startswith("unbatched") else 3, len(cells))):
            pg.hover(array, idx)
            assert pg.highlighted() == _expected(ex, array, idx), (array, idx)
            if array in QUANTITY_OF:
                panel = pg.js("window.convgradPage.panelText()")
                n_terms = len(ex.terms_full(QUANTITY_OF[array], idx))
                assert f"sum of {n_terms} " in panel["title"]
                listed = [t for t in panel["terms"] if not t.startswith("b[") and not t.startswith("…")]
                assert len(listed) == min(n_terms, 400)
            hovered += 1
    assert hovered >= 14
    assert pg.errors == [] and all(u.startswith("file://") for u in pg.requests), (pg.errors, pg.requests)
    pg.close()


def test_highlighted_cells_really_change_colour(browser, tmp_path):
    """Pixels of a full-page screenshot: after hovering dX[0, 1, 2, 3] its dY contributors are orange,
    its w contributors blue, the element red, and an uninvolved dY cell stays white."""
    from PIL import Image
    import io

    ex = explain((1, 2, 6, 6), (3, 2, 3, 3), stride=2, padding=1)
    pg = Page(browser, ex, tmp_path)
    target = ("dx", (0, 1, 2, 3))
    terms = ex.terms_full("grad_input", target[1])
    c = pg.hover(*target)
    # pin it: a full-page screenshot resizes the viewport, and the pointer may then be over another cell
    pg.page.mouse.click(c["x"], c["y"])
    img = np.asarray(Image.open(io.BytesIO(pg.page.screenshot(full_page=True))).convert("RGB"))
    assert pg.js("window.convgradPage.focus()") == {"name": "dx", "index": [0, 1, 2, 3], "pinned": True}
    orange, blue, red, white = (0xF2, 0x8E, 0x2B), (0x4E, 0x79, 0xA7), (0xE1, 0x57, 0x59), (255, 255, 255)
    checks = [("dy", t[0], orange) for t in terms] + [("w", t[1], blue) for t in terms]
    checks += [(*target, red), ("dy", (0, 0, 0, 0), white), ("w", (0, 0, 0, 0), white), ("dx", (0, 1, 2, 2), white)]
    for arr, idx, colour in checks:
        box = pg.js("([a, i]) => window.convgradPage.cellBox(a, i)", [arr, list(idx)])
        # a point inside the cell, away from the centred term number and from the grid lines
        x, y = box["x"] + 0.22 * box["px"], box["y"] + 0.22 * box["px"]
        got = tuple(int(v) for v in img[int(y), int(x)])
        assert max(abs(a - b) for a, b in zip(got, colour)) <= 3, (arr, idx, got, colour)
    pg.close()


def test_click_pins_and_the_form_rebuilds_the_page(browser, tmp_path):
    ex = explain((1, 2, 6, 6), (3, 2, 3, 3), stride=2, padding=1)
    pg = Page(browser, ex, tmp_path)
    c = pg.hover("y", (0, 1, 1, 2))
    pg.page.mouse.click(c["x"], c["y"])
    assert pg.js("window.convgradPage.focus()")["pinned"] is True
    pinned = pg.highlighted()
    pg.hover("dx", (0, 0, 0, 0))  # moving elsewhere does not change a pinned element
    assert pg.highlighted() == pinned
    c = pg.hover("y", (0, 1, 1, 2))
    pg.page.mouse.click(c["x"], c["y"])  # click again: released
    assert pg.js("window.convgradPage.focus()")["pinned"] is False

    # a new configuration through the form: 1-D, groups, circular padding
    for field, value in (("f-input", "2,4,9"), ("f-weight", "6,2,3"), ("f-stride", "2"), ("f-padding", "2"),
                         ("f-dilation", "1"), ("f-groups", "2")):
        pg.page.fill(f"#{field}", value)
    pg.page.select_option("#f-mode", "circular")
    pg.page.click("#apply")
    new = explain((2, 4, 9), (6, 2, 3), stride=2, padding=2, groups=2, padding_mode="circular")
    assert pg.js("window.convgradPage.spec().shapes.y") == list(new.full_output_shape)
    for arr, idx in [("dx", (1, 3, 8)), ("y", (0, 5, 0)), ("dw", (4, 1, 2))]:
        pg.hover(arr, idx)
        assert pg.highlighted() == _expected(new, arr, idx)
    assert "convgrad explain --input 2,4,9 --weight 6,2,3" in pg.page.text_content("#derivation-note")

    # a bad configuration: the error names the parameter, the page keeps the last good one, and the
    # form goes back to it (so the form and the grids never disagree)
    pg.page.fill("#f-groups", "4")
    pg.page.fill("#f-stride", "3")
    pg.page.click("#apply")
    assert "groups=4 must divide" in pg.page.text_content("#error")
    assert "not applied" in pg.page.text_content("#error")
    assert pg.js("window.convgradPage.spec().shapes.y") == list(new.full_output_shape)
    assert pg.page.input_value("#f-groups") == "2" and pg.page.input_value("#f-stride") == "2"
    assert pg.page.input_value("#f-input") == "2,4,9" and pg.page.input_value("#f-mode") == "circular"
    pg.page.click("#reset")
    assert pg.js("window.convgradPage.spec().shapes.y") == list(ex.full_output_shape)
    assert pg.errors == [] and all(u.startswith("file://") for u in pg.requests)
    pg.close()


def test_page_is_self_contained(tmp_path):
    html = explain((1, 2, 6, 6), (3, 2, 3, 3), padding="same").html()
    assert "<script src" not in html and "<link" not in html and "http://" not in html and "https://" not in html
    assert html.count("<script>") == 3 and "ConvGradRelation" in html and "ConvGradView.start(" in html


def test_large_arrays_draw_part_and_go_to_reaches_everything(browser, tmp_path):
    """100 channels of 64x64: not every block is drawn, but "go to" pins any element exactly."""
    ex = explain((1, 100, 64, 64), (2, 100, 3, 3), padding=1)
    pg = Page(browser, ex, tmp_path)
    drawn = pg.js("document.querySelectorAll('canvas[data-array=x]').length")
    assert 0 < drawn < 100 and "more blocks not drawn" in pg.page.text_content(".array-x .note")
    for text, array, idx in (("x 0,99,5,63", "x", (0, 99, 5, 63)), ("dW 1,99,0,2", "dw", (1, 99, 0, 2)),
                             ("dX[0, 98, 63, 0]", "dx", (0, 98, 63, 0))):
        pg.page.fill("#goto-text", text)
        pg.page.click("#goto button")
        assert pg.js("window.convgradPage.focus()") == {"name": array, "index": list(idx), "pinned": True}
        assert pg.highlighted() == _expected(ex, array, idx)
    pg.page.fill("#goto-text", "dX 0,100,0,0")
    pg.page.click("#goto button")
    assert "out of range" in pg.page.text_content("#goto-error")
    assert pg.errors == []
    pg.close()


# ------------------------------------------------------------------------------------------------
# large planes: readable windows with a minimap, "go to" and --at centre the element
# ------------------------------------------------------------------------------------------------

DEFAULT = dict(input_shape=(5, 100, 100), weight_shape=(10, 5, 5, 5))  # `convgrad explain`'s default


def _in_window(win, row, col):
    return win["rows"][0] <= row < win["rows"][1] and win["cols"][0] <= col < win["cols"][1]


def _centred(pg, array, idx):
    """The cell's centre is in the middle of the viewport (vertically; horizontally inside it)."""
    box = pg.js("([a, i]) => window.convgradPage.cellBox(a, i)", [array, list(idx)])
    view = pg.js("({x: window.scrollX, y: window.scrollY, w: window.innerWidth, h: window.innerHeight})")
    cy = box["y"] + box["px"] / 2 - view["y"]
    cx = box["x"] + box["px"] / 2 - view["x"]
    return abs(cy - view["h"] / 2) <= box["px"] and 0 < cx < view["w"]


def test_large_planes_are_readable_windows_with_a_minimap(browser, tmp_path):
    from PIL import Image
    import io

    ex = explain(**DEFAULT)
    pg = Page(browser, ex, tmp_path)
    for array in ("x", "y", "dy", "dx"):
        win = pg.js("(a) => window.convgradPage.window(a)", array)
        assert win["rows"][1] - win["rows"][0] == 20 and win["cols"][1] - win["cols"][0] == 20, (array, win)
        assert pg.js(f"document.querySelectorAll('canvas.minimap[data-array={array}]').length") == 1
    assert pg.js("(a) => window.convgradPage.window(a)", "w") is None  # 5x5 kernels are drawn whole
    box = pg.js("([a, i]) => window.convgradPage.cellBox(a, i)", ["x", [0, 0, 50, 50]])
    assert box["px"] >= 14  # readable cells, not 3 px dots
    assert "rows 40–59, columns 40–59 of 100×100" in pg.page.text_content(".array-x .caption")

    # hovering y far from the first windows: y's window moves to the cell, x's follows the contributors
    target = (0, 3, 90, 7)
    c = pg.hover("y", target)
    pg.page.mouse.click(c["x"], c["y"])
    assert pg.highlighted() == _expected(ex, "y", target)
    assert all(_in_window(pg.js("(a) => window.convgradPage.window(a)", "x"), r, k)
               for r in range(90, 95) for k in range(7, 12))
    # the pixels: a contributor of x is orange in its window, the element red, and the minimap shows both
    img = np.asarray(Image.open(io.BytesIO(pg.page.screenshot(full_page=True))).convert("RGB"))
    for arr, idx, colour in (("x", (0, 2, 92, 9), (0xF2, 0x8E, 0x2B)), ("y", target, (0xE1, 0x57, 0x59)),
                             ("x", (0, 2, 80, 9), (255, 255, 255))):
        b = pg.js("([a, i]) => window.convgradPage.cellBox(a, i)", [arr, list(idx)])
        got = tuple(int(v) for v in img[int(b["y"] + 0.22 * b["px"]), int(b["x"] + 0.22 * b["px"])])
        assert max(abs(a - b) for a, b in zip(got, colour)) <= 3, (arr, idx, got, colour)
    minimap = pg.js("""(a) => { const c = document.querySelector(`canvas.minimap[data-array=${a}]`);
        const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data; let n = 0;
        for (let i = 0; i < d.length; i += 4) if (d[i] === 0xf2 && d[i + 1] === 0x8e && d[i + 2] === 0x2b) n++;
        return n }""", "x")
    assert minimap > 0

    # clicking the minimap moves the window there
    mm = pg.page.query_selector("canvas.minimap[data-array=dx]")
    mm.scroll_into_view_if_needed()
    bb = mm.bounding_box()
    pg.page.mouse.click(bb["x"] + 2, bb["y"] + 2)  # the top-left corner of the plane
    assert pg.js("(a) => window.convgradPage.window(a)", "dx") == {"rows": [0, 20], "cols": [0, 20]}
    assert pg.errors == []
    pg.close()


def test_go_to_scrolls_to_and_centres_the_element(browser, tmp_path):
    ex = explain(**DEFAULT)
    pg = Page(browser, ex, tmp_path)
    for text, array, idx in (("dX 3,80,90", "dx", (0, 3, 80, 90)), ("y 9,5,2", "y", (0, 9, 5, 2)),
                             ("x 4,99,0", "x", (0, 4, 99, 0))):
        pg.page.fill("#goto-text", text)
        pg.page.click("#goto button")
        assert pg.js("window.convgradPage.focus()") == {"name": array, "index": list(idx), "pinned": True}
        assert _in_window(pg.js("(a) => window.convgradPage.window(a)", array), *idx[-2:])
        assert _centred(pg, array, idx), text
        assert pg.highlighted() == _expected(ex, array, idx)
    assert pg.errors == []
    pg.close()


def test_at_opens_the_page_on_the_element(browser, tmp_path):
    ex = explain(**DEFAULT)
    pg = Page(browser, ex, tmp_path, at=("grad_input", (1, 70, 30)))
    idx = (0, 1, 70, 30)
    assert pg.js("window.convgradPage.focus()") == {"name": "dx", "index": list(idx), "pinned": True}
    assert pg.highlighted() == _expected(ex, "dx", idx)
    assert _in_window(pg.js("(a) => window.convgradPage.window(a)", "dx"), 70, 30)
    assert _in_window(pg.js("(a) => window.convgradPage.window(a)", "dy"), 66, 26)  # its contributors
    assert _centred(pg, "dx", idx)
    assert "dX[1, 70, 30] = sum of 250 products" in pg.js("window.convgradPage.panelText()")["title"]
    assert pg.errors == []
    pg.close()
