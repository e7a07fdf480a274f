"""Pictures: the operands of one element drawn as grids, its contributors highlighted (matplotlib).

A figure has one panel per array -- the two operands of every term and the result -- side by
side: ``x, w -> y`` for the output, ``dY, w -> dX`` for grad_input, ``x, dY -> dW`` for
grad_weight, ``dY -> db`` for grad_bias. Every (example, channel) of an activation and every
(output channel, input channel) of a weight is its own block; blocks of different groups get
different label colours. A 1-D array is a row of cells, a 2-D one a grid, and 3-D and up are
drawn as 2-D slices over the last two spatial dims (the slices holding contributors, or the
ones asked for with ``slices``). Large arrays are cropped to a window around the contributors.

In a block, orange cells are the first operand's contributors, blue ones the second's, the red
cell is the element itself; the same number in an orange and a blue cell marks one product. The
border of ``x`` is its padding (grey: zeros; green: copies of real cells), hatched where a term
reads it; dark grey cells are never read (their gradient is exactly zero).

Only matplotlib's object API is used (no pyplot), so nothing global changes.
"""

from __future__ import annotations

import dataclasses
import itertools
import os
from typing import Iterable

import numpy as np

from .explanation import OPERANDS, QUANTITIES

__all__ = ["draw", "draw_canvas", "Canvas", "highlights", "COLORS"]

COLORS = {
    "cell": "#ffffff",
    "pad": "#ececec",
    "copy": "#e3ecd3",
    "unread": "#b9b9b9",
    "first": "#f28e2b",
    "second": "#4e79a7",
    "element": "#e15759",
    "grid": "#8c8c8c",
    "text": "#222222",
}
GROUP_COLORS = ["#4e79a7", "#59a14f", "#b07aa1", "#9c755f", "#76b7b2", "#edc948", "#ff9da7", "#bab0ac"]
DISPLAY = {"x": "x", "w": "w", "y": "y", "dy": "dY", "dx": "dX", "dw": "dW", "db": "db", "b": "b"}
MAX_BLOCKS = 12
FULL_EXTENT = 24
MAX_WINDOW = 48
MARGIN = 0.3  # cells of room around a panel so its outer grid lines are not clipped


def _matplotlib():
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:  # pragma: no cover - exercised only without the extra
        raise ImportError(
            "convgrad's figures need matplotlib: pip install 'convgrad[explain]' (the text, JSON and HTML "
            "outputs do not)"
        ) from None
    return Figure, FigureCanvasAgg


# ------------------------------------------------------------------------------------------------
# what to highlight
# ------------------------------------------------------------------------------------------------


@dataclasses.dataclass
class Highlight:
    """Roles and term numbers of the cells of one element's picture, keyed by array name then full index."""

    quantity: str
    index: tuple[int, ...]
    roles: dict[str, dict[tuple, str]]
    labels: dict[str, dict[tuple, list[int]]]
    count: int
    text: str


def _padded_reads(ex, quantity: str, idx: tuple[int, ...]) -> list[tuple[tuple, tuple]]:
    """For the terms reading zero padding: (padded x index, partner index), from the index relation."""
    s = ex.spec
    out = []
    if quantity == "output":
        n, o, *i = idx
        g = s.group_of_output(o)
        for c in range(s.in_per_group):
            for k in itertools.product(*map(range, s.kernel_size)):
                p = s.input_position(i, k)
                if any(not 0 <= v < h for v, h in zip(p, s.input_size)):
                    out.append(((n, g * s.in_per_group + c, *p), (o, c, *k)))
    elif quantity == "grad_weight":
        o, c, *k = idx
        ch = s.group_of_output(o) * s.in_per_group + c
        for n in range(s.batch):
            for i in itertools.product(*map(range, s.output_size)):
                p = s.input_position(i, k)
                if any(not 0 <= v < h for v, h in zip(p, s.input_size)):
                    out.append(((n, ch, *p), (n, o, *i)))
    return out


def highlights(ex, quantity: str, full_index: tuple[int, ...]) -> Highlight:
    """The cells to colour for ``quantity[full_index]`` (batch axis always present)."""
    from .derivation import format_terms

    first, second, result = OPERANDS[quantity]
    terms = ex.terms_full(quantity, full_index)
    roles: dict[str, dict[tuple, str]] = {first: {}, result: {}}
    labels: dict[str, dict[tuple, list[int]]] = {first: {}}
    if second:
        roles[second], labels[second] = {}, {}
    padded = iter(_padded_reads(ex, quantity, full_index)) if ex.spec.padding_mode == "zeros" and not ex.transposed else None
    for t, term in enumerate(terms, start=1):
        if quantity == "grad_bias":
            roles[first][term] = "first"
            labels[first].setdefault(term, []).append(t)
            continue
        a, b = term
        if a is None:
            a, b_check = next(padded)
            role_a = "pad"
        else:
            role_a = "first"
        roles[first][a] = role_a
        labels[first].setdefault(a, []).append(t)
        roles[second][b] = "second"
        labels[second].setdefault(b, []).append(t)
    roles[result][tuple(full_index)] = "element"
    name = DISPLAY[result] + "[" + ", ".join(map(str, full_index)) + "]"
    return Highlight(quantity, tuple(full_index), roles, labels, len(terms),
                     f"{name} = {format_terms(ex, quantity, terms, limit=4)}")


# ------------------------------------------------------------------------------------------------
# layout
# ------------------------------------------------------------------------------------------------


@dataclasses.dataclass
class Block:
    lead: tuple  # leading indices: (n, c) / (o, c) plus any sliced spatial dims; () for a bias
    rows: range  # array coordinates (x's may reach into the padding)
    cols: range
    x0: float = 0.0
    y0: float = 0.0
    label: str = ""
    color: str = "#222222"


@dataclasses.dataclass
class Panel:
    name: str
    blocks: list[Block]
    width: float
    height: float
    title: str
    dense: bool
    hidden: int  # blocks left out


def _array_layout(ex, name: str):
    """``(leading shape, row extent, col extent, spatial ndim)`` of an array; x includes its padding."""
    shape = ex.full_shape_of(name)
    if name in ("b", "db"):
        return (), range(0, 1), range(0, shape[0]), 0
    nd = len(shape) - 2
    lead_shape = shape[:2] + shape[2: 2 + max(nd - 2, 0)]
    spatial = list(shape[2:])
    ranges = [range(0, h) for h in spatial]
    if name == "x" and not ex.transposed:
        ranges = [range(-lo, h + hi) for h, (lo, hi) in zip(spatial, ex.spec.padding)]
    if nd == 1:
        return lead_shape, range(0, 1), ranges[0], 1
    return lead_shape, ranges[-2], ranges[-1], nd


def _cell_of(name: str, index: tuple, nd: int):
    """(lead, row, col) of a full index."""
    if name in ("b", "db"):
        return (), 0, index[0]
    if nd == 1:
        return tuple(index[:2]), 0, index[2]
    return tuple(index[:-2]), index[-2], index[-1]


def _block_label(ex, name: str, lead: tuple) -> tuple[str, str]:
    if not lead:
        return "", COLORS["text"]
    s = ex.spec
    first, second = lead[0], lead[1]
    extra = lead[2:]
    if name in ("w", "dw"):
        text = f"o={first} c={second}" if not ex.transposed else f"c={first} o={second}"
        group = first // (ex.weight_shape[0] // s.groups)
    else:
        text = (f"n={first} " if ex.batched else "") + f"c={second}"
        group = second // (ex.full_shape_of(name)[1] // s.groups)
    for d, v in enumerate(extra):
        text += f" d{d}={v}"
    if s.groups > 1:
        text += f"  (group {group})"
        return text, GROUP_COLORS[group % len(GROUP_COLORS)]
    return text, COLORS["text"]


def _window(extent: range, used: list[int], full: bool) -> tuple[range, bool]:
    """A window of ``extent`` around the used coordinates; (range, dense)."""
    if full or len(extent) <= FULL_EXTENT or not used:
        return extent, len(extent) > MAX_WINDOW
    lo, hi = max(extent.start, min(used) - 3), min(extent.stop, max(used) + 4)
    if hi - lo > MAX_WINDOW:
        return extent, True
    if hi - lo < 12:  # keep some context
        pad = (12 - (hi - lo)) // 2
        lo, hi = max(extent.start, lo - pad), min(extent.stop, hi + pad)
    return range(lo, hi), False


def _panel(ex, name: str, roles: dict[tuple, str], slices=None, all_blocks: bool = False) -> Panel:
    lead_shape, rows, cols, nd = _array_layout(ex, name)
    leads = list(itertools.product(*map(range, lead_shape)))
    cells = [_cell_of(name, idx, nd) for idx in roles]
    touched = {lead for lead, _, _ in cells}
    if slices is not None and nd >= 3:
        wanted = {tuple(v) if isinstance(v, (tuple, list)) else (v,) for v in slices}
        leads = [lead for lead in leads if lead[2:] in wanted]
    elif nd >= 3 and not all_blocks:
        # only the slices (of the sliced spatial dims) that hold something
        wanted = {lead[2:] for lead in touched}
        leads = [lead for lead in leads if lead[2:] in wanted]
    hidden = 0
    row_win, dense_r = _window(rows, [r for lead, r, _ in cells], all_blocks)
    col_win, dense_c = _window(cols, [c for lead, _, c in cells], all_blocks)
    dense = dense_r or dense_c
    if not all_blocks and (len(leads) > MAX_BLOCKS or dense):
        # many blocks, or blocks drawn as images: only those holding something
        keep = [lead for lead in leads if lead in touched]
        hidden = len(leads) - len(keep)
        leads = keep
    # Grid of blocks: activations/weights as (first index) rows x (second index) columns; 1-D as rows.
    blocks = []
    bw, bh = len(col_win), len(row_win)
    gap, label_h = (2.0, 1.4) if not dense else (0.08 * max(bw, bh), 0.09 * max(bw, bh))
    if nd == 1 or not lead_shape:
        positions = {lead: (0, r) for r, lead in enumerate(leads)}
        if len(leads) > 6 and bw * 2 < 40:  # many short rows: two columns
            half = (len(leads) + 1) // 2
            positions = {lead: (r // half, r % half) for r, lead in enumerate(leads)}
    else:
        firsts = sorted({lead[0] for lead in leads})
        rest = sorted({lead[1:] for lead in leads})
        grid_w, grid_h = len(rest) * (bw + gap), len(firsts) * (bh + gap + label_h)
        if len(leads) > 3 and (grid_w > 3 * grid_h or grid_h > 3 * grid_w or len(firsts) * len(rest) != len(leads)):
            # an extreme row or column of blocks (or a ragged set): wrap it into a near-square grid
            per_row = max(1, round(np.sqrt(len(leads) * (bh + gap + label_h) / (bw + gap))))
            positions = {lead: (k % per_row, k // per_row) for k, lead in enumerate(leads)}
        else:
            positions = {lead: (rest.index(lead[1:]), firsts.index(lead[0])) for lead in leads}
    for lead in leads:
        col, row = positions[lead]
        label, color = _block_label(ex, name, lead)
        blocks.append(Block(lead, row_win, col_win, x0=col * (bw + gap), y0=row * (bh + gap + label_h) + label_h,
                            label=label, color=color))
    width = max((b.x0 + bw for b in blocks), default=1.0)
    height = max((b.y0 + bh for b in blocks), default=1.0)
    shape = ex.shape_of(name)
    title = f"{DISPLAY[name]}  {tuple(shape)}"
    if len(row_win) < len(rows) or len(col_win) < len(cols):
        title += "  (window)"
    if hidden:
        title += f"\n+{hidden} {'block' if hidden == 1 else 'blocks'} not involved"
    return Panel(name, blocks, width, height, title, dense, hidden)


# ------------------------------------------------------------------------------------------------
# drawing
# ------------------------------------------------------------------------------------------------


def _hex(color: str) -> np.ndarray:
    color = color.lstrip("#")
    return np.array([int(color[i: i + 2], 16) / 255 for i in (0, 2, 4)])


class Canvas:
    """A figure whose grids are drawn once; :meth:`show` recolours it for one element."""

    def __init__(self, ex, quantity: str, panels: list[Panel], title_lines: int = 2):
        Figure, FigureCanvasAgg = _matplotlib()
        self.ex, self.quantity, self.panels = ex, quantity, panels
        first, second, result = OPERANDS[quantity]
        self.names = [n for n in (first, second, result) if n]
        # One size per cell for grids drawn cell by cell; a block drawn as an image gets ~2.4 inches.
        normal = [p for p in panels if not p.dense]
        span = sum(p.width for p in normal) + 6 * max(len(normal) - 1, 0)
        height = max((p.height for p in normal), default=1)
        cell = float(np.clip(min(11.0 / max(span, 1), 6.5 / max(height, 1)), 0.045, 0.34)) if normal else 0.3
        scales = []
        for p in panels:
            if p.dense:
                biggest = max(max(len(b.rows), len(b.cols)) for b in p.blocks) if p.blocks else 1
                scales.append(min(cell, 2.4 / biggest))
            else:
                scales.append(cell)
        gap = 0.6
        widths = [(p.width + 2 * MARGIN) * c for p, c in zip(panels, scales)]
        heights = [(p.height + 2 * MARGIN) * c for p, c in zip(panels, scales)]
        total = sum(widths) + gap * (len(panels) - 1)
        if total > 14:
            shrink = 14 / total
            scales = [c * shrink for c in scales]
            widths = [w * shrink for w in widths]
            heights = [h * shrink for h in heights]
            total = 14
        self.cell_inches = min(scales) if normal else cell
        self.scales = dict(zip((p.name for p in panels), scales))
        top, bottom, side = 0.55 + 0.22 * title_lines, 0.75, 0.35
        fig_w = max(total + 2 * side, 6.2)
        extra_title = 0.18 * max(p.title.count("\n") for p in panels)
        fig_h = max(heights) + top + bottom + 0.35 + extra_title
        self.fig = Figure(figsize=(fig_w, fig_h), dpi=100)
        FigureCanvasAgg(self.fig)
        self.images, self.texts, self.hatches = {}, {}, {}
        self._fontsize = {}
        x_in = (fig_w - total) / 2
        ops = {"output": ("×", "→"), "grad_input": ("×", "→"), "grad_weight": ("×", "→"), "grad_bias": ("→",)}[quantity]
        for k, panel in enumerate(panels):
            w_in, h_in = widths[k], heights[k]
            bot = fig_h - top - 0.35 - extra_title - h_in
            ax = self.fig.add_axes((x_in / fig_w, bot / fig_h, w_in / fig_w, h_in / fig_h))
            self._draw_panel(ax, panel, scales[k])
            if k < len(panels) - 1:
                self.fig.text((x_in + w_in + gap / 2) / fig_w, (fig_h - top - 0.35 - extra_title - max(heights) / 2) / fig_h,
                              ops[k], ha="center", va="center", fontsize=18, color="#555555")
            x_in += w_in + gap
        self.title = self.fig.text(0.5, 1 - 0.3 / fig_h, "", ha="center", va="top", fontsize=11, color=COLORS["text"],
                                   family="DejaVu Sans")
        self.subtitle = self.fig.text(0.5, 1 - (0.3 + 0.28) / fig_h, "", ha="center", va="top", fontsize=8.5,
                                      color="#444444", family="DejaVu Sans Mono")
        self._legend(first, second, result)

    # -- static parts ------------------------------------------------------------------------------
    def _base(self, name: str, block: Block) -> np.ndarray:
        ex, s = self.ex, self.ex.spec
        rgb = np.tile(_hex(COLORS["cell"]), (len(block.rows), len(block.cols), 1))
        if name in ("x", "dx") and not ex.transposed:
            pad = _hex(COLORS["pad"] if s.padding_mode == "zeros" else COLORS["copy"])
            unread = _hex(COLORS["unread"])
            nd = s.ndim
            lead_pos = block.lead[2:]
            row_dim = nd - 2 if nd >= 2 else None
            col_dim = nd - 1
            outside_lead = any(not 0 <= v < s.input_size[d] for d, v in enumerate(lead_pos))
            zero_lead = any(v in self.ex.dims[d].zero_positions for d, v in enumerate(lead_pos))
            for r, row in enumerate(block.rows):
                for c, col in enumerate(block.cols):
                    in_row = row_dim is None or 0 <= row < s.input_size[row_dim]
                    in_col = 0 <= col < s.input_size[col_dim]
                    if outside_lead or not (in_row and in_col):
                        rgb[r, c] = pad
                    elif zero_lead or (row_dim is not None and row in ex.dims[row_dim].zero_positions) or (
                        col in ex.dims[col_dim].zero_positions
                    ):
                        rgb[r, c] = unread
        if name in ("y", "dy") and ex.transposed:
            unread = _hex(COLORS["unread"])
            nd = s.ndim
            for r, row in enumerate(block.rows):
                for c, col in enumerate(block.cols):
                    if (nd >= 2 and row in ex.dims[nd - 2].zero_positions) or col in ex.dims[nd - 1].zero_positions or any(
                        v in ex.dims[d].zero_positions for d, v in enumerate(block.lead[2:])
                    ):
                        rgb[r, c] = unread
        return rgb

    def _draw_panel(self, ax, panel: Panel, cell: float) -> None:
        from matplotlib.collections import LineCollection

        ax.set_xlim(-MARGIN, panel.width + MARGIN)
        ax.set_ylim(panel.height + MARGIN, -MARGIN)
        ax.set_axis_off()
        head, _, note = panel.title.partition("\n")
        ax.set_title(head + ("\n" if note else ""), fontsize=10, color=COLORS["text"], pad=4)
        if note:
            ax.text(0.5, 1.0, note, transform=ax.transAxes, fontsize=7.5, color="#777777", ha="center", va="bottom")
        fs = float(np.clip(cell * 30, 4.5, 8.5)) if not panel.dense else 7.0
        for block in panel.blocks:
            base = self._base(panel.name, block)
            h, w = base.shape[:2]
            im = ax.imshow(base.copy(), extent=(block.x0, block.x0 + w, block.y0 + h, block.y0), interpolation="nearest",
                           zorder=1)
            self.images[(panel.name, block.lead)] = (im, base, block, panel)
            if not panel.dense:
                segs = [[(block.x0 + c, block.y0), (block.x0 + c, block.y0 + h)] for c in range(w + 1)]
                segs += [[(block.x0, block.y0 + r), (block.x0 + w, block.y0 + r)] for r in range(h + 1)]
                ax.add_collection(LineCollection(segs, colors=COLORS["grid"], linewidths=0.5, zorder=2))
            else:
                ax.add_patch(_rect(block.x0, block.y0, w, h, fill=False, edgecolor=COLORS["grid"], linewidth=0.6, zorder=2))
                tick = dict(fontsize=6, color="#777777")
                ax.text(block.x0, block.y0 + h, f" {block.cols[0]}", ha="left", va="top", **tick)
                ax.text(block.x0 + w, block.y0 + h, f"{block.cols[-1]} ", ha="right", va="top", **tick)
                if h > 1:
                    ax.text(block.x0, block.y0, f"{block.rows[0]} ", ha="right", va="top", **tick)
                    ax.text(block.x0, block.y0 + h, f"{block.rows[-1]} ", ha="right", va="bottom", **tick)
            if block.label:
                ax.text(block.x0, block.y0 - (0.35 if not panel.dense else 0.02 * max(w, h)), block.label, fontsize=fs, va="bottom", ha="left", color=block.color,
                        zorder=3)
            # index ticks: first and last row/column of the window
            if not panel.dense and w > 1:
                ax.text(block.x0 + 0.5, block.y0 + h + 0.1, str(block.cols[0]), fontsize=fs * 0.8, ha="center",
                        va="top", color="#777777")
                ax.text(block.x0 + w - 0.5, block.y0 + h + 0.1, str(block.cols[-1]), fontsize=fs * 0.8, ha="center",
                        va="top", color="#777777")
            if not panel.dense and h > 1:
                ax.text(block.x0 - 0.15, block.y0 + 0.5, str(block.rows[0]), fontsize=fs * 0.8, ha="right",
                        va="center", color="#777777")
                ax.text(block.x0 - 0.15, block.y0 + h - 0.5, str(block.rows[-1]), fontsize=fs * 0.8, ha="right",
                        va="center", color="#777777")
        self.texts[panel.name] = []
        self.hatches[panel.name] = []
        self._fontsize[panel.name] = fs

    def _legend(self, first, second, result) -> None:
        from matplotlib.patches import Patch

        items = [Patch(facecolor=COLORS["first"], edgecolor="#555555", label=f"{DISPLAY[first]}: contributors")]
        if second:
            items.append(Patch(facecolor=COLORS["second"], edgecolor="#555555", label=f"{DISPLAY[second]}: contributors"))
        items.append(Patch(facecolor=COLORS["element"], edgecolor="#555555", label=f"{DISPLAY[result]}: the element"))
        s = self.ex.spec
        names = set(self.names)
        if not self.ex.transposed and "x" in names and any(p != (0, 0) for p in s.padding):
            if s.padding_mode == "zeros":
                items.append(Patch(facecolor=COLORS["pad"], edgecolor="#555555", label="zero padding"))
                if self.quantity in ("output", "grad_weight"):
                    items.append(Patch(facecolor=COLORS["pad"], edgecolor=COLORS["first"], hatch="////",
                                       label="padding read (term = 0)"))
            else:
                items.append(Patch(facecolor=COLORS["copy"], edgecolor="#555555",
                                   label=f"{s.padding_mode} padding (copies)"))
        if (not self.ex.transposed and names & {"x", "dx"} and any(g.zero_positions for g in self.ex.dims)) or (
            self.ex.transposed and names & {"y", "dy"} and any(g.zero_positions for g in self.ex.dims)
        ):
            items.append(Patch(facecolor=COLORS["unread"], edgecolor="#555555",
                               label="never read: gradient 0" if not self.ex.transposed else "never written: bias only"))
        self.fig.legend(handles=items, loc="lower center", ncol=min(len(items), 3), fontsize=8, frameon=False,
                        bbox_to_anchor=(0.5, 0.0), handlelength=1.6, columnspacing=1.4)

    # -- per element -------------------------------------------------------------------------------
    def show(self, hl: Highlight) -> None:
        colors = {k: _hex(COLORS[k]) for k in ("first", "second", "element")}
        for (name, lead), (im, base, block, panel) in self.images.items():
            im.set_data(base.copy())
        for name in self.texts:
            for artist in self.texts[name] + self.hatches[name]:
                artist.remove()
            self.texts[name], self.hatches[name] = [], []
        label_ok = hl.count <= 80
        for (name, lead), (im, base, block, panel) in self.images.items():
            roles = hl.roles.get(name, {})
            if not roles:
                continue
            nd = _array_layout(self.ex, name)[3]
            data = im.get_array().copy()
            ax = im.axes
            for idx, role in roles.items():
                l, r, c = _cell_of(name, idx, nd)
                if l != lead or r not in block.rows or c not in block.cols:
                    continue
                rr, cc = r - block.rows.start, c - block.cols.start
                if role == "pad":
                    self.hatches[name].append(ax.add_patch(_rect(block.x0 + cc, block.y0 + rr, 1, 1, fill=False,
                                                                 hatch="////", edgecolor=COLORS["first"], linewidth=0,
                                                                 zorder=2.5)))
                else:
                    data[rr, cc] = colors[role]
                numbers = hl.labels.get(name, {}).get(idx)
                if label_ok and numbers and not panel.dense and self.scales[name] >= 0.15:
                    text = ",".join(map(str, numbers[:2])) + ("…" if len(numbers) > 2 else "")
                    size = self._fontsize[name] * (0.95 if len(text) <= 2 else 0.75)
                    self.texts[name].append(ax.text(block.x0 + cc + 0.5, block.y0 + rr + 0.55, text, ha="center",
                                                    va="center", fontsize=size, color="white" if role != "pad" else
                                                    "#7a4a12", zorder=3, fontweight="bold"))
            im.set_data(data)
        first, second, result = OPERANDS[self.quantity]
        parts = f"{DISPLAY[first]}·{DISPLAY[second]}" if second else DISPLAY[first]
        name = DISPLAY[result] + "[" + ", ".join(map(str, hl.index)) + "]"
        self.title.set_text(f"{name} is a sum of {hl.count} product{'s' if hl.count != 1 else ''} {parts}"
                            if second else f"{name} is the sum of {hl.count} entries of {parts}")
        sub = hl.text
        fit = int((self.fig.get_figwidth() - 0.5) * 13.5)
        self.subtitle.set_text(sub if len(sub) <= fit else sub[: fit - 1] + "…")

    def save(self, path, format=None) -> None:
        self.fig.savefig(path, format=format, dpi=100)

    def rgba(self) -> np.ndarray:
        self.fig.canvas.draw()
        return np.asarray(self.fig.canvas.buffer_rgba())

    def pixel_of(self, name: str, index: tuple, where=(0.25, 0.25)) -> tuple[int, int] | None:
        """(column, row) in :meth:`rgba` of a point inside the cell of ``name[index]`` (None if not drawn).

        ``where`` is the point's place in the cell, (0, 0) being its top-left corner.
        """
        nd = _array_layout(self.ex, name)[3]
        lead, r, c = _cell_of(name, tuple(index), nd)
        entry = self.images.get((name, lead))
        if entry is None:
            return None
        im, _, block, _ = entry
        if r not in block.rows or c not in block.cols:
            return None
        x = block.x0 + (c - block.cols.start) + where[0]
        y = block.y0 + (r - block.rows.start) + where[1]
        px, py = im.axes.transData.transform((x, y))
        height = self.fig.canvas.get_width_height()[1]
        return int(px), int(height - py)


def _rect(x, y, w, h, **kw):
    from matplotlib.patches import Rectangle

    return Rectangle((x, y), w, h, **kw)


# ------------------------------------------------------------------------------------------------
# public entry points
# ------------------------------------------------------------------------------------------------


def _full_index(ex, quantity: str, index) -> tuple[int, ...]:
    idx = ex._normalize(quantity, index)
    if not ex.batched and quantity in ("output", "grad_input"):
        idx = (0, *idx)
    return idx


def _format(path, format):
    if format is not None:
        if format not in ("png", "svg"):
            raise ValueError(f"figure: format must be 'png' or 'svg', got {format!r}")
        return format
    if isinstance(path, (str, os.PathLike)):
        suffix = os.fspath(path).rsplit(".", 1)[-1].lower() if "." in os.fspath(path) else ""
        if suffix in ("png", "svg"):
            return suffix
        raise ValueError(f"figure: cannot tell the format from {os.fspath(path)!r}: use a .png or .svg name or format=")
    return "png"


def canvas_for(ex, quantity: str, roles_union: dict[str, Iterable], slices=None, all_blocks=False) -> Canvas:
    first, second, result = OPERANDS[quantity]
    panels = []
    for name in (first, second, result):
        if name is None:
            continue
        panel_slices = None if slices is None else slices.get(DISPLAY[name], slices.get(name))
        panels.append(_panel(ex, name, {i: "" for i in roles_union.get(name, ())}, panel_slices, all_blocks))
    return Canvas(ex, quantity, panels)


def draw(ex, quantity: str, index, path=None, *, slices=None, format=None):
    """Draw ``quantity[index]``'s contributors; return the matplotlib Figure (saved to ``path`` if given).

    Parameters
    ----------
    ex : Explanation
    quantity : {"output", "grad_input", "grad_weight", "grad_bias"}
    index : tuple of int
        As for :meth:`Explanation.contributors`.
    path : str, path or file object, optional
        Where to save; PNG or SVG from the suffix (or ``format``).
    slices : dict, optional
        For 3-D and up: ``{array name: [index along the leading spatial dims, ...]}`` (names x, w,
        y, dY, dX, dW) picks the 2-D slices drawn; by default the slices holding contributors.
    """
    canvas = draw_canvas(ex, quantity, index, slices=slices)
    if path is not None:
        canvas.save(path, format=_format(path, format))
    return canvas.fig


def draw_canvas(ex, quantity: str, index, *, slices=None) -> Canvas:
    """The :class:`Canvas` behind :func:`draw` (it knows where every cell is drawn)."""
    if quantity not in QUANTITIES:
        raise ValueError(f"figure: quantity must be one of {QUANTITIES}, got {quantity!r}")
    full = _full_index(ex, quantity, index)
    hl = highlights(ex, quantity, full)
    canvas = canvas_for(ex, quantity, {k: list(v) for k, v in hl.roles.items()}, slices)
    canvas.show(hl)
    return canvas
