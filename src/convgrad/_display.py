"""Rich display in Jupyter: the mime bundle of an object that has text, static HTML and maybe a figure.

``_repr_mimebundle_`` methods build their answer with :func:`mime_bundle`. The HTML is static (no
script, no style sheet, the figure inlined as a data URI), so it shows the same in an untrusted
notebook, on GitHub and in nbviewer; ``image/png`` is there too, for front ends without HTML.
matplotlib is optional: without it the bundle has no figure.
"""

from __future__ import annotations

import base64
import html
from typing import Callable

__all__ = ["mime_bundle", "png_of"]


def png_of(make_figure: Callable[[], object] | None) -> bytes | None:
    """PNG bytes of the matplotlib Figure ``make_figure()`` returns; None without matplotlib (or a figure)."""
    if make_figure is None:
        return None
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return None
    import io

    buf = io.BytesIO()
    make_figure().savefig(buf, format="png", dpi=100)
    return buf.getvalue()


def mime_bundle(text: str, title: str, sections: list[tuple[str, str]], *, make_figure=None, include=None,
                exclude=None) -> dict:
    """``{"text/plain": ..., "text/html": ..., "image/png": ...}`` for ``_repr_mimebundle_``.

    Parameters
    ----------
    text : str
        The plain-text form.
    title : str
        The HTML heading (plain text; escaped here).
    sections : list of (str, str)
        ``(summary, body)`` pairs of plain text, shown as preformatted text; the first one open,
        the others folded in ``<details>``.
    make_figure : callable, optional
        Returns a matplotlib Figure; called only if matplotlib is installed.
    include, exclude : collection of str, optional
        The mime types wanted / not wanted, as Jupyter passes them.

    Examples
    --------
    >>> b = mime_bundle("x = 1", "x", [("value", "1")])
    >>> sorted(b), b["text/html"].count("<pre")
    (['text/html', 'text/plain'], 1)
    """
    bundle = {"text/plain": text}
    wanted = (lambda m: (include is None or m in include) and (exclude is None or m not in exclude))
    png = png_of(make_figure) if wanted("image/png") or wanted("text/html") else None
    if wanted("text/html"):
        pre = 'style="white-space:pre;overflow-x:auto;font-size:12px;line-height:1.4"'
        parts = [f"<div><p><strong>{html.escape(title)}</strong></p>"]
        for k, (summary, body) in enumerate(sections):
            block = f"<pre {pre}>{html.escape(body)}</pre>"
            if k == 0:
                parts.append(block)
            else:
                parts.append(f"<details><summary>{html.escape(summary)}</summary>{block}</details>")
            if k == 0 and png is not None:
                data = base64.b64encode(png).decode("ascii")
                parts.append(f'<img alt="{html.escape(summary)}" style="max-width:100%" '
                             f'src="data:image/png;base64,{data}">')
        parts.append("</div>")
        bundle["text/html"] = "\n".join(parts)
    if png is not None and wanted("image/png"):
        bundle["image/png"] = base64.b64encode(png).decode("ascii")
    return {k: v for k, v in bundle.items() if wanted(k) or k == "text/plain"}
