"""``convgrad.explain`` in Jupyter: the rich display of an Explanation, and docs/explain.ipynb run end to end."""

from __future__ import annotations

import base64
import html.parser
import os
from pathlib import Path

import pytest

import convgrad
from convgrad.explain import explain

NOTEBOOK = Path(__file__).resolve().parents[1] / "docs" / "explain.ipynb"


class _Tags(html.parser.HTMLParser):
    def __init__(self):
        super().__init__()
        self.tags, self.srcs = [], []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        self.srcs += [v for k, v in attrs if k == "src"]


def test_mimebundle_is_text_static_html_and_a_png():
    ex = explain((1, 2, 6, 6), (3, 2, 3, 3), stride=2, padding=1)
    bundle = ex._repr_mimebundle_()
    assert sorted(bundle) == ["image/png", "text/html", "text/plain"]
    assert bundle["text/plain"].startswith("<Explanation conv2d") and "floor((6 + 1 + 1 - 3)/2) + 1 = 3" in bundle["text/plain"]
    page = _Tags()
    page.feed(bundle["text/html"])
    # static: no script, no style sheet, nothing fetched -- the figure is inline
    assert "script" not in page.tags and "link" not in page.tags and "style" not in page.tags
    assert page.srcs and all(s.startswith("data:image/png;base64,") for s in page.srcs)
    assert "details" in page.tags and "THE ELEMENT" not in bundle["text/html"]
    assert "padding_mode &#x27;zeros&#x27;" in bundle["text/html"]  # escaped text
    assert base64.b64decode(bundle["image/png"])[:8] == b"\x89PNG\r\n\x1a\n"
    assert sorted(ex._repr_mimebundle_(include={"text/plain", "text/html"})) == ["text/html", "text/plain"]
    assert sorted(ex._repr_mimebundle_(exclude={"image/png", "text/html"})) == ["text/plain"]


def test_mimebundle_without_matplotlib_has_no_figure(monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "matplotlib", None)
    bundle = explain((1, 1, 5), (1, 1, 3))._repr_mimebundle_()
    assert sorted(bundle) == ["text/html", "text/plain"] and "<img" not in bundle["text/html"]


def test_html_with_a_path_returns_the_path(tmp_path):
    ex = explain((1, 1, 5), (1, 1, 3))
    path = tmp_path / "page.html"
    assert ex.html(path) == path and path.read_text().startswith("<!DOCTYPE html>")
    assert ex.html().startswith("<!DOCTYPE html>")


def test_docs_notebook_runs(tmp_path, monkeypatch):
    nbclient = pytest.importorskip("nbclient", reason="nbclient is not installed (pip install 'convgrad[test]')")
    import nbformat

    src = str(Path(convgrad.__file__).resolve().parents[1])  # the kernel imports this convgrad
    monkeypatch.setenv("PYTHONPATH", src + os.pathsep + os.environ.get("PYTHONPATH", ""))
    nb = nbformat.read(NOTEBOOK, as_version=4)
    nbclient.NotebookClient(nb, timeout=60, kernel_name="python3",
                            resources={"metadata": {"path": str(tmp_path)}}).execute()
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    first = outputs[0]["data"]
    assert {"text/plain", "text/html", "image/png"} <= set(first) and "SIZES" in first["text/html"]
    assert outputs[-1]["data"]["text/plain"] == "'explain-page.html'"
    assert (tmp_path / "explain-page.html").exists()


def test_display_docstring_examples_run():
    import doctest

    import convgrad._display

    result = doctest.testmod(convgrad._display)
    assert result.attempted >= 2 and result.failed == 0
