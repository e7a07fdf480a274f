"""``convgrad.explain``: the geometry, contributor sets, derivation and pictures of one configuration."""

from __future__ import annotations

import operator
from typing import Sequence

from .. import layout
from ..general import GeneralConv, general_conv_spec
from ..spec import ConvSpec, conv_transpose_spec
from . import relation
from .geometry import DimGeometry, dim_geometry

__all__ = ["Explanation", "explain", "QUANTITIES", "OPERANDS"]

#: The quantities whose elements :meth:`Explanation.contributors` takes apart.
QUANTITIES = ("output", "grad_input", "grad_weight", "grad_bias")

#: Per quantity: the two operands of each term and the result's own name.
OPERANDS = {
    "output": ("x", "w", "y"),
    "grad_input": ("dy", "w", "dx"),
    "grad_weight": ("x", "dy", "dw"),
    "grad_bias": ("dy", None, "db"),
}


def explain(
    input_shape,
    weight_shape,
    stride=1,
    padding=0,
    dilation=1,
    groups=1,
    padding_mode="zeros",
    *,
    transposed=False,
    output_padding=0,
    data_format="channels_first",
    weight_format="OI",
    input_dilation=1,
) -> "Explanation":
    """Explain one convolution (or transposed convolution): sizes, gradients, equivalent calls, pictures.

    Parameters
    ----------
    input_shape : tuple of int
        ``(N, C_in, *spatial)``, or unbatched ``(C_in, *spatial)`` (indices then have no batch axis).
    weight_shape : tuple of int
        ``(C_out, C_in/groups, *K)``; with ``transposed=True`` PyTorch's ``(C_in, C_out/groups, *K)``.
    stride, padding, dilation, groups, padding_mode
        As in :func:`convgrad.conv` (padding: int, per-dim ints, ``(low, high)`` pairs, ``"valid"``,
        ``"same"``). A transposed convolution has zero padding only.
    transposed : bool
        Explain :func:`convgrad.conv_transpose` instead of :func:`convgrad.conv`.
    output_padding : int or tuple of int
        Transposed convolution only: ``0 <= output_padding < max(stride, dilation)``.
    data_format, weight_format : str
        The layout ``input_shape`` and ``weight_shape`` are given in, as for :func:`convgrad.conv`
        (``"channels_last"``/``"NHWC"``…, ``"IO"``/``"HWIO"``…). The explanation itself -- shapes,
        indices, formulas -- is written channels first (PyTorch's layout); the text says so.
    input_dilation : int or tuple of int
        Convolution only, as in :func:`convgrad.conv` (JAX's ``lhs_dilation``); padding entries may
        then (and always) be negative, a crop. Such a convolution is explained as the ordinary
        convolution of the reduced input ``x~`` (dilated, cropped): ``Explanation.general`` holds
        the reduction, the text a section on it (:mod:`convgrad.explain.general`), and the
        formulas, contributors and pictures are in ``x~``'s coordinates.

    Returns
    -------
    Explanation

    Examples
    --------
    >>> ex = explain((1, 1, 8), (1, 1, 3), stride=2)
    >>> ex.output_shape
    (1, 1, 3)
    >>> ex.dims[0].tail_positions       # input position 7 is never read: its gradient is 0
    (7,)
    >>> ex.contributors("grad_input", (0, 0, 4))   # dX[0, 0, 4] = dY[0, 0, 2]*w[0, 0, 0] + dY[0, 0, 1]*w[0, 0, 2]
    [((0, 0, 2), (0, 0, 0)), ((0, 0, 1), (0, 0, 2))]
    """
    func = "explain"
    input_shape = _shape(input_shape, "input_shape")
    weight_shape = _shape(weight_shape, "weight_shape")
    fmt = layout.formats(data_format, weight_format, func)
    if not fmt.default and len(weight_shape) >= 3:  # the caller's layout -> channels first (convgrad.layout)
        fmt.check_rank(len(weight_shape) - 2, func)
        input_shape = fmt.data_shape_in(input_shape, len(weight_shape) - 2)
        weight_shape = fmt.weight_shape_in(weight_shape)
    if len(weight_shape) < 3:
        raise ValueError(
            f"{func}: weight_shape must have at least 3 entries (out_channels, in_channels/groups, *kernel), "
            f"got {weight_shape}"
        )
    batched = len(input_shape) != len(weight_shape) - 1
    full_input = input_shape if batched else (1, *input_shape)
    if not isinstance(transposed, bool):
        raise TypeError(f"{func}: transposed must be True or False, got {transposed!r}")
    general = None
    if transposed:
        if input_dilation != 1:
            raise ValueError(f"{func}: input_dilation applies to a convolution, not a transposed one (transposed=True), "
                             f"got input_dilation={input_dilation!r}")
        if padding_mode != "zeros":
            raise ValueError(
                f"{func}: a transposed convolution has zero padding only (as in PyTorch), got padding_mode={padding_mode!r}"
            )
        spec = conv_transpose_spec(full_input, weight_shape, stride, padding, output_padding, groups, dilation, func=func)
    else:
        if output_padding not in (0, None) and any(v != 0 for v in _as_tuple(output_padding)):
            raise ValueError(
                f"{func}: output_padding only applies to a transposed convolution (transposed=True), "
                f"got output_padding={output_padding!r}"
            )
        general = general_conv_spec(full_input, weight_shape, stride, padding, dilation, groups, padding_mode,
                                    input_dilation, func=func)
        spec = general.spec
        general = None if general.plain else general
    ex = Explanation(spec, transposed=transposed, batched=batched, same=isinstance(padding, str) and padding == "same",
                     general=general)
    ex.formats = fmt
    return ex


def _as_tuple(v) -> tuple:
    return tuple(v) if isinstance(v, (tuple, list)) else (v,)


def _shape(value, name: str) -> tuple[int, ...]:
    if isinstance(value, (str, bytes)) or not hasattr(value, "__iter__"):
        raise TypeError(f"explain: {name} must be a tuple of integers, got {value!r}")
    out = []
    for v in value:
        try:
            if isinstance(v, bool):
                raise TypeError
            out.append(operator.index(v))
        except TypeError:
            raise TypeError(f"explain: {name} must be a tuple of integers, got {tuple(value)!r}") from None
    return tuple(out)


class Explanation:
    """Everything about one configuration: use :func:`explain` to make one.

    Attributes
    ----------
    spec : ConvSpec
        The normalized convolution. For a transposed convolution it is the spec of the ordinary
        convolution whose input-gradient the transposed one is (its input is our output).
    transposed, batched : bool
    input_shape, weight_shape, output_shape : tuple of int
        The shapes of the user's operation (without the batch axis when the input was unbatched).
    dims : tuple of DimGeometry
        Per spatial dim: effective kernel, output size with its formula, padding used, unread
        tail, positions with zero gradient, holes.
    general : GeneralConv or None
        With input dilation or a negative padding: the reduction to ``spec`` (whose input is the
        dilated, cropped ``x~``); the shapes and indices above are then ``x~``'s.
    """

    #: the layout the caller gave the shapes in (:func:`explain`'s data_format/weight_format)
    formats = layout.DEFAULT

    def __init__(self, spec: ConvSpec, *, transposed: bool = False, batched: bool = True, same: bool = False,
                 general: GeneralConv | None = None):
        self.spec = spec
        self.general = general
        self.transposed = transposed
        self.batched = batched
        self.same = same
        self.dims: tuple[DimGeometry, ...] = tuple(
            dim_geometry(spec, d, transposed=transposed, same=same) for d in range(spec.ndim)
        )

    # -- shapes in the user's terms --------------------------------------------------------------
    @property
    def ndim(self) -> int:
        return self.spec.ndim

    def _user(self, shape: tuple[int, ...]) -> tuple[int, ...]:
        return shape if self.batched else shape[1:]

    @property
    def full_input_shape(self) -> tuple[int, ...]:
        """The input shape with its batch axis, ``(N, C_in, *H)``."""
        return self.spec.output_shape if self.transposed else self.spec.input_shape

    @property
    def full_output_shape(self) -> tuple[int, ...]:
        return self.spec.input_shape if self.transposed else self.spec.output_shape

    @property
    def input_shape(self) -> tuple[int, ...]:
        return self._user(self.full_input_shape)

    @property
    def weight_shape(self) -> tuple[int, ...]:
        return self.spec.weight_shape

    @property
    def output_shape(self) -> tuple[int, ...]:
        return self._user(self.full_output_shape)

    @property
    def bias_shape(self) -> tuple[int, ...]:
        return (self.full_output_shape[1],)

    @property
    def in_channels(self) -> int:
        return self.full_input_shape[1]

    @property
    def out_channels(self) -> int:
        return self.full_output_shape[1]

    @property
    def groups(self) -> int:
        return self.spec.groups

    def shape_of(self, name: str) -> tuple[int, ...]:
        """The user-facing shape of an array by name: x, w, b, y, dy, dx, dw, db."""
        shapes = {
            "x": self.input_shape,
            "dx": self.input_shape,
            "w": self.weight_shape,
            "dw": self.weight_shape,
            "y": self.output_shape,
            "dy": self.output_shape,
            "b": self.bias_shape,
            "db": self.bias_shape,
        }
        if name not in shapes:
            raise ValueError(f"array name must be one of {tuple(shapes)}, got {name!r}")
        return shapes[name]

    def quantity_shape(self, quantity: str) -> tuple[int, ...]:
        """The shape of ``quantity`` (one of :data:`QUANTITIES`)."""
        _check_quantity(quantity)
        return self.shape_of(OPERANDS[quantity][2])

    def kwargs(self) -> dict:
        """The configuration as keyword arguments of :func:`explain` (shapes excluded)."""
        s = self.spec
        padding = "same" if self.same else _compact_padding(s.padding)
        out = dict(stride=_compact(s.stride), padding=padding, dilation=_compact(s.dilation), groups=s.groups)
        if self.transposed:
            out.update(transposed=True, output_padding=_compact(s.unread_tail))
        else:
            out["padding_mode"] = s.padding_mode
        if self.general is not None:
            out["padding"] = _compact_padding(self.general.padding)
            out["input_dilation"] = _compact(self.general.input_dilation)
        return out

    # -- contributors ----------------------------------------------------------------------------
    def contributors(self, quantity: str, index: Sequence[int]) -> list:
        """The exact multiply-add terms that make one element of ``quantity``.

        Parameters
        ----------
        quantity : {"output", "grad_input", "grad_weight", "grad_bias"}
        index : tuple of int
            A full index into the quantity: ``(n, c, *spatial)`` for output and grad_input
            (``(c, *spatial)`` if the input was unbatched), ``(o, c, *k)`` for grad_weight,
            ``(o,)`` for grad_bias. Negative entries count from the end, as in NumPy.

        Returns
        -------
        list
            ``"output"``: pairs ``(x index, or None where the term reads zero padding; w index)``;
            ``"grad_input"``: pairs ``(dy index, w index)``; ``"grad_weight"``: pairs
            ``(x index or None; dy index)``; ``"grad_bias"``: the ``dy`` indices. The element equals
            the sum of the products of the pairs (bias excluded). With reflect/replicate/circular
            padding the x index is the real element the padded position copies. For a transposed
            convolution the same holds for its own x, w, y: taps that would land on a position
            cropped away by its padding are not terms.
        """
        _check_quantity(quantity)
        idx = self._normalize(quantity, index)
        if not self.batched and quantity in ("output", "grad_input"):
            idx = (0, *idx)
        terms = self._terms(quantity, idx)
        return self._strip_batch(quantity, terms)

    def terms_full(self, quantity: str, full_index: tuple[int, ...]) -> list:
        """Like :meth:`contributors`, but with the batch axis always present (used by the pictures)."""
        return self._terms(quantity, tuple(full_index))

    def full_shape_of(self, name: str) -> tuple[int, ...]:
        """The shape of an array by name with its batch axis (x, w, b, y, dy, dx, dw, db)."""
        if name in ("x", "dx"):
            return self.full_input_shape
        if name in ("y", "dy"):
            return self.full_output_shape
        return self.shape_of(name)

    def _terms(self, quantity: str, idx: tuple[int, ...]) -> list:
        s = self.spec
        if quantity == "grad_bias":
            return relation.bias_terms(s, idx[0], s.batch, self.full_output_shape[2:])
        if not self.transposed:
            return {
                "output": relation.forward_terms,
                "grad_input": relation.grad_input_terms,
                "grad_weight": relation.grad_weight_terms,
            }[quantity](s, idx)
        # Transposed: y = spec.grad_input(x, w); dx = spec.forward(dy, w); dw = spec.grad_weight(dy, x).
        if quantity == "output":
            return relation.grad_input_terms(s, idx)
        if quantity == "grad_input":
            return [(a, b) for a, b in relation.forward_terms(s, idx) if a is not None]
        return [(b, a) for a, b in relation.grad_weight_terms(s, idx) if a is not None]

    def _strip_batch(self, quantity: str, terms: list) -> list:
        if self.batched:
            return terms
        if quantity == "grad_bias":
            return [t[1:] for t in terms]

        def cut(t, is_activation):
            return t if t is None or not is_activation else t[1:]

        first, second, _ = OPERANDS[quantity]
        return [(cut(a, first != "w"), cut(b, second != "w")) for a, b in terms]

    def _normalize(self, quantity: str, index) -> tuple[int, ...]:
        shape = self.quantity_shape(quantity)
        if isinstance(index, (str, bytes)) or not hasattr(index, "__iter__"):
            if quantity == "grad_bias" and not isinstance(index, (str, bytes)):
                index = (index,)
            else:
                raise TypeError(f"contributors: index must be a tuple of integers, got {index!r}")
        items = tuple(index)
        if len(items) != len(shape):
            raise ValueError(
                f"contributors: an index into {quantity} (shape {shape}) needs {len(shape)} entries, "
                f"got {len(items)}: {items!r}"
            )
        out = []
        for v, n in zip(items, shape):
            if isinstance(v, bool):
                raise TypeError(f"contributors: index must hold integers, got {items!r}")
            try:
                v = operator.index(v)
            except TypeError:
                raise TypeError(f"contributors: index must hold integers, got {items!r}") from None
            if not -n <= v < n:
                raise ValueError(f"contributors: index {items} is out of range for {quantity} of shape {shape}")
            out.append(v % n)
        return tuple(out)

    # -- presentation ------------------------------------------------------------------------------
    def text(self, at=None) -> str:
        """The derivation, readable in a terminal: sizes, formulas, equivalent operations, traps.

        ``at = (quantity, index)`` adds that element written out in full.
        """
        from .derivation import render_text

        return render_text(self, at)

    def to_dict(self, at=None) -> dict:
        """Everything :meth:`text` says, as JSON-serialisable data (``at`` as for :meth:`text`)."""
        from .derivation import render_dict

        return render_dict(self, at)

    def higher_order(self, *, text: bool = False):
        """The double backward and the JVP as calls: each again this configuration's convolution.

        ``{quantity: {"statement", "calls": {framework: code}}}`` (:mod:`convgrad.explain.higher`), or
        with ``text=True`` the same as a text section.

        Examples
        --------
        >>> ex = explain((1, 1, 5), (1, 1, 3), stride=2)
        >>> print(ex.higher_order()["double_backward_input"]["calls"]["convgrad"])
        import convgrad
        gx = convgrad.conv_input(x.shape, ggw, dy, stride=2, padding=0, dilation=1, groups=1)
        """
        from .higher import higher_order, render_higher_order

        return render_higher_order(self) if text else higher_order(self)

    def figure(self, quantity: str, index: Sequence[int], path=None, *, slices=None, format=None):
        """Draw the operands as grids with the contributors of one element highlighted.

        Needs matplotlib (``pip install convgrad[explain]``). Returns the matplotlib Figure; if
        ``path`` is given it is also saved there (PNG or SVG by the suffix, or ``format``).
        ``slices`` (3-D and up) picks the 2-D slices drawn per array, see
        :func:`convgrad.explain.figures.draw`.
        """
        from .figures import draw

        return draw(self, quantity, index, path=path, slices=slices, format=format)

    def animate(self, quantity: str, path, *, prefix=(), indices=None, max_frames: int = 400, fps: float = 2.0) -> int:
        """Write an animated GIF stepping through every element of ``quantity`` (or those under ``prefix``).

        ``indices`` lists the frames' elements explicitly instead. Returns the number of frames.
        Needs matplotlib (``pip install 'convgrad[explain]'``).
        """
        from .animation import animate

        return animate(self, quantity, path, prefix=prefix, indices=indices, max_frames=max_frames, fps=fps)

    def html(self, path=None, *, at=None):
        """A self-contained interactive page (inline JS/CSS, no network needed).

        Parameters
        ----------
        path : str or path, optional
            Write the page there and return ``path``; without it the page itself is returned (a str).
        at : (quantity, index), optional
            The element the page opens on: pinned, scrolled to and centred (as for :meth:`text`).

        Examples
        --------
        >>> import os, tempfile
        >>> ex = explain((1, 1, 5), (1, 1, 3))
        >>> path = os.path.join(tempfile.mkdtemp(), "page.html")
        >>> ex.html(path) == path
        True
        >>> ex.html().startswith("<!DOCTYPE html>")
        True
        """
        from .page import render_page

        page = render_page(self, at)
        if path is None:
            return page
        with open(path, "w", encoding="utf-8") as fh:
            fh.write(page)
        return path

    def _repr_mimebundle_(self, include=None, exclude=None) -> dict:
        """Jupyter's rich display: the sizes as text and static HTML, the default element's picture
        (with matplotlib), and the whole derivation folded below."""
        from .._display import mime_bundle
        from .derivation import example_index

        text = self.text()
        head, sizes, *_ = text.split("\n\n") + ["", ""]
        quantity = "output"
        index = example_index(self, quantity) if 0 not in self.quantity_shape(quantity) else None
        return mime_bundle(
            f"{repr(self)}\n\n{head}\n\n{sizes}",
            head.split("\n", 1)[0],
            [("the configuration and its sizes", f"{head}\n\n{sizes}"), ("the whole derivation (text)", text)],
            make_figure=None if index is None else (lambda: self.figure(quantity, index)),
            include=include,
            exclude=exclude,
        )

    def __repr__(self) -> str:
        kind = "conv_transpose" if self.transposed else "conv"
        args = ", ".join(f"{k}={v!r}" for k, v in self.kwargs().items())
        shape = self.input_shape if self.general is None else self._user(self.general.input_shape)
        return f"<Explanation {kind}{self.ndim}d input {shape} weight {self.weight_shape} -> {self.output_shape}; {args}>"


def _check_quantity(quantity) -> None:
    if quantity not in QUANTITIES:
        raise ValueError(f"quantity must be one of {QUANTITIES}, got {quantity!r}")


def _compact(values: tuple[int, ...]):
    return values[0] if len(set(values)) == 1 else values


def _compact_padding(pads: tuple[tuple[int, int], ...]):
    if all(lo == hi for lo, hi in pads):
        return _compact(tuple(lo for lo, _ in pads))
    return tuple(pads)
