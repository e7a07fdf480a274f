"""The self-contained interactive HTML page: inline CSS and JavaScript, no network needed.

The page computes everything it shows in the browser (``page/relation.js`` mirrors the index
relation of :mod:`convgrad.spec` and :mod:`convgrad.explain.relation`; the tests compare the two
in Chromium), so its configuration form can change the convolution. It embeds the text
derivation of the configuration it was made for.
"""

from __future__ import annotations

import html
import json
import re
from importlib import resources

__all__ = ["render_page", "page_config"]


def _asset(name: str) -> str:
    return resources.files(__package__).joinpath("page", name).read_text(encoding="utf-8")


def page_config(ex) -> dict:
    """The configuration in the page's terms (lists, the batch axis as the user gave it)."""
    s = ex.spec
    cfg = ex.kwargs()
    padding = cfg["padding"]
    if isinstance(padding, tuple):
        padding = [list(p) if isinstance(p, tuple) else p for p in padding]

    def plain(v):
        return list(v) if isinstance(v, tuple) else v

    return {
        "input": list(ex.input_shape),
        "weight": list(ex.weight_shape),
        "stride": plain(cfg["stride"]),
        "padding": padding,
        "dilation": plain(cfg["dilation"]),
        "groups": s.groups,
        "padding_mode": s.padding_mode,
        "transposed": ex.transposed,
        "output_padding": plain(cfg.get("output_padding", 0)),
    }


def _script(text: str) -> str:
    # nothing inside a <script> may close it
    return text.replace("</script", "<\\/script")


#: The page's names of the quantities' arrays.
PAGE_NAMES = {"output": "y", "grad_input": "dx", "grad_weight": "dw", "grad_bias": "db"}


def page_focus(ex, at) -> dict | None:
    """``(quantity, index)`` -> the element the page opens on, in its terms (batch axis always present)."""
    if at is None:
        return None
    quantity, index = at
    idx = ex._normalize(quantity, index)
    if not ex.batched and quantity in ("output", "grad_input"):
        idx = (0, *idx)
    return {"name": PAGE_NAMES[quantity], "index": list(idx)}


def render_page(ex, at=None) -> str:
    """The page as a string; ``at = (quantity, index)`` opens it on that element (pinned, centred)."""
    cfg = page_config(ex)
    focus = page_focus(ex, at)
    name = f"{'conv_transpose' if ex.transposed else 'conv'}{ex.ndim}d {tuple(ex.input_shape)} * {tuple(ex.weight_shape)}"
    values = {
        "__TITLE__": html.escape(name),
        "__CSS__": _asset("page.css"),
        "__TEXT__": html.escape(ex.text()),
        "__RELATION_JS__": _script(_asset("relation.js")),
        "__VIEW_JS__": _script(_asset("view.js")),
        "__CONFIG__": _script(json.dumps(cfg)),
        "__AT__": _script(json.dumps(focus)),
    }
    # one pass, so no inserted text is ever taken for a placeholder
    return re.sub("|".join(values), lambda m: values[m.group(0)], _asset("page.html"))
