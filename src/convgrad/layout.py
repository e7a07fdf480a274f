"""Memory layouts at the API boundary: channels-first or channels-last data, ``OI…`` or ``…IO`` weights.

convgrad computes in PyTorch's layout -- data ``(N, C, *spatial)``, weights ``(C_out, C_in/groups,
*kernel)`` -- and every algorithm sees only that. A caller holding TensorFlow/Keras/JAX-style arrays
says so with two keywords of the public functions:

``data_format``
    ``"channels_first"`` (default; also ``"NCW"``, ``"NCHW"``, ``"NCDHW"``) or ``"channels_last"``
    (also ``"NWC"``, ``"NHWC"``, ``"NDHWC"``): input, output and their gradients are
    ``(N, *spatial, C)``, unbatched ``(*spatial, C)``.
``weight_format``
    ``"OI"`` (default; also ``"OIW"``, ``"OIHW"``, ``"OIDHW"``): PyTorch's weight; or ``"IO"`` (also
    ``"WIO"``, ``"HWIO"``, ``"DHWIO"``): the kernel dims first and the two channel dims reversed.
    For a convolution that is ``(*kernel, C_in/groups, C_out)`` -- TensorFlow's ``HWIO``. For a
    transposed convolution it is the same permutation of PyTorch's transposed weight
    ``(C_in, C_out/groups, *kernel)``, i.e. ``(*kernel, C_out/groups, C_in)`` -- TensorFlow's
    ``conv2d_transpose`` filter ``(height, width, output_channels, in_channels)`` and Keras'
    ``Conv2DTranspose`` kernel. Either way an ``"IO"`` weight is the ``"OI"`` one with its axes
    permuted by :func:`weight_to_first`; the bias stays ``(C_out,)``.

The rank-specific names (``"NHWC"``, ``"HWIO"``, …) must match the number of spatial dims.

Conversions here are transposed *views* (no copy): a channels-last input reaches the algorithm as a
strided ``(N, C, *spatial)`` view, and a result computed channels-first is handed back as the
``(N, *spatial, C)`` view of it -- so a chain of channels-last calls never copies at the boundary.
Use ``np.ascontiguousarray`` on a result if its memory order matters. Where reading the views
across the grain costs more than the arithmetic, ``conv`` and ``conv_backward`` (and
``conv_input``/``conv_weight``, the same backward with a placeholder for the operand not read, and
``conv_transpose``/``conv_transpose_backward``, through their spec's input gradient, forward and
weight gradient) with ``algorithm="auto"`` compute natively channels last instead, on the caller's
arrays, and return channels-last results (C-contiguous except where noted): the 1x1 convolution at
stride 1 without padding as one matrix product (:meth:`Formats.native_forward`; its input gradient
is the channels-last view of a channels-first array), and the configurations a channels-last
algorithm prefers (:mod:`convgrad.native_last`: ``depthwise_last`` for depthwise layers,
``samplegemm_last`` where the products are wide, ``rowgemm_last`` where they are narrow (2-16
channels a side), ``tapgemm_last`` and ``winograd_last`` where ``auto`` runs ``tapgemm`` or
``winograd``; the latter's results stay channels-first arrays).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

import numpy as np

from . import algorithms, blas, dask_array, native_last, parallel, runtime
from .bias import check_bias_shape
from .dtypes import as_real_array, result_dtype
from .spec import conv_spec, conv_transpose_spec

__all__ = ["Formats", "formats", "layer_channels_last", "coupled_channels_last", "data_to_first", "data_to_last",
           "weight_to_first", "weight_to_last"]

_DATA_FIRST = {"channels_first": None, "NCW": 1, "NCHW": 2, "NCDHW": 3}
_DATA_LAST = {"channels_last": None, "NWC": 1, "NHWC": 2, "NDHWC": 3}
_WEIGHT_OI = {"OI": None, "OIW": 1, "OIHW": 2, "OIDHW": 3}
_WEIGHT_IO = {"IO": None, "WIO": 1, "HWIO": 2, "DHWIO": 3}


def _parse(value, name: str, first: dict, last: dict, func: str) -> tuple[bool, int | None]:
    """``(is_the_non_default_layout, rank_named_by_the_string_or_None)``, or a ``ValueError`` listing the names."""
    if isinstance(value, str):
        if value in first:
            return False, first[value]
        if value in last:
            return True, last[value]
    names = ", ".join(repr(v) for v in (*first, *last))
    if not isinstance(value, str):
        raise TypeError(f"{func}: {name} must be a string, one of {names}; got {value!r}")
    raise ValueError(f"{func}: {name} must be one of {names}; got {value!r}")


@dataclass(frozen=True)
class Formats:
    """The parsed ``data_format`` / ``weight_format`` of one call (see the module docstring)."""

    channels_last: bool = False
    weight_io: bool = False
    data_rank: int | None = None
    weight_rank: int | None = None
    data_format: str = "channels_first"
    weight_format: str = "OI"

    @property
    def default(self) -> bool:
        """Whether nothing needs converting (PyTorch's layouts)."""
        return not (self.channels_last or self.weight_io)

    def check_rank(self, rank: int, func: str) -> None:
        """A rank-specific format string (``"NHWC"``, ``"HWIO"``) must name ``rank`` spatial dims."""
        for name, value, named in (("data_format", self.data_format, self.data_rank),
                                   ("weight_format", self.weight_format, self.weight_rank)):
            if named is not None and named != rank:
                raise ValueError(f"{func}: {name}={value!r} names {named} spatial dim(s), but the weight has "
                                 f"{rank} (a {rank + 2}-D weight)")

    # --------------------------------------------------------------------------------------------
    # the caller's layout -> convgrad's, and back
    # --------------------------------------------------------------------------------------------

    def weight_operand(self, weight, func: str, rank: int | None):
        """``(weight as (O, I, *kernel), rank)``; a weight of too few dims passes through to the shared check."""
        w = _array(weight, func, "weight")
        if self.weight_io and rank is not None and w.ndim != rank + 2:
            raise ValueError(f"{func}: weight must be {rank + 2}-D ({rank} kernel dims, in, out) with weight_format="
                             f"{self.weight_format!r}, got shape {tuple(w.shape)}")
        if w.ndim < 3 or (rank is not None and w.ndim != rank + 2):
            return w, max(w.ndim - 2, 1)
        self.check_rank(w.ndim - 2, func)
        return self.weight_in(w, func), w.ndim - 2

    def shape_operands(self, input_shape: tuple[int, ...], weight, groups, func: str, rank: int | None):
        """``(input_shape, weight, rank)`` in convgrad's layout for ``conv_input``, the weight checked."""
        given = _array(weight, func, "weight")
        w, r = self.weight_operand(given, func, rank)
        shape = self.data_shape_in(input_shape, r)
        if given.ndim >= 3 and len(shape) in (r + 1, r + 2):
            self.check_channels(shape[len(shape) - r - 1], tuple(given.shape), groups, False, func)
        return shape, w, r

    def backward_operands(self, dy, x, w, needs):
        """``(dy, x)`` for the backward: contiguous channels-first copies when the kernel has many taps.

        Every tap of the backward re-reads ``dy`` (and, for the weight gradient, ``x``); through a
        channels-last view each of those passes reads across the grain. From 25 taps on, one
        transposing copy measured cheaper (CPU time, one thread: layer d's backward 0.34-0.40 s
        instead of 0.44-0.49, g1's 6.6-8.8 ms instead of 11.8-12.7; g2 and the 9-tap h unchanged).
        """
        if not self.channels_last or not isinstance(dy, np.ndarray) or not isinstance(w, np.ndarray) or \
                w.ndim < 3 or math.prod(w.shape[2:]) < 25:
            return dy, x
        wanted = (needs,) if isinstance(needs, str) else needs
        try:
            weight_too = "weight" in wanted
        except TypeError:
            return dy, x  # the shared path reports the bad needs
        if weight_too and isinstance(x, np.ndarray):
            x = np.ascontiguousarray(x)
        return np.ascontiguousarray(dy), x

    def grad_output_errors(self, r: int):
        """Around the shared path: its ``grad_output must have shape …`` error restated in the caller's layout."""
        return _CallersShapes(self, r)

    def operands(self, data, weight, groups, transposed: bool, func: str, rank: int | None,
                 data_name: str = "input"):
        """``(data, weight, rank)`` in convgrad's layout, the weight checked against the data's channels."""
        given = _array(weight, func, "weight")
        w, r = self.weight_operand(given, func, rank)
        if given.ndim < 3 or (rank is not None and given.ndim != rank + 2):
            return data, w, r
        x = self.data_in(data, r, func, data_name) if self.channels_last else _array(data, func, data_name)
        if x.ndim in (r + 1, r + 2):
            self.check_channels(x.shape[x.ndim - r - 1], tuple(given.shape), groups, transposed, func)
        return x, w, r

    # --------------------------------------------------------------------------------------------
    # native channels-last: the 1x1 convolution is one matrix product on the caller's arrays; other
    # configurations go to a channels-last algorithm when one prefers them (convgrad.native_last)
    # --------------------------------------------------------------------------------------------

    def _native_spec(self, x, w, stride, padding, dilation, groups, padding_mode, algorithm, func):
        """The batched spec when a native path may apply (channels last, ``algorithm="auto"``, real NumPy
        operands, valid arguments), else ``None``: the shared path, which also reports every error."""
        if not self.channels_last or algorithm != "auto" or not isinstance(x, np.ndarray) or \
                not isinstance(w, np.ndarray) or w.ndim < 3 or x.ndim not in (w.ndim - 1, w.ndim) or \
                np.iscomplexobj(x) or np.iscomplexobj(w):  # complex: the shared path (conjugations, cplx)
            return None
        try:
            return conv_spec(x.shape if x.ndim == w.ndim else (1, *x.shape), w.shape, stride, padding, dilation,
                             groups, padding_mode, func=func)
        except (TypeError, ValueError):
            return None

    def _pointwise(self, x, w, spec):
        """``(x as (M, C_in) rows, w as (C_in, C_out), x in the caller's layout, spec)`` when the native
        path applies (a spec from :meth:`_native_spec`, a 1x1 kernel, stride 1, no padding, one group);
        else ``None``."""
        if spec.groups != 1 or any(k != 1 for k in spec.kernel_size) or \
                any(s != 1 for s in spec.stride) or any(p != (0, 0) for p in spec.padding) or \
                spec.input_size != spec.output_size:
            return None
        last = data_to_last(x, w.ndim - 2)  # the caller's array again
        rows = last.reshape(-1, spec.in_channels)  # (M, C_in) with M = N * prod(spatial): a view when contiguous
        return rows, w.reshape(spec.out_channels, spec.in_channels).T, last, spec  # w: (C_in, C_out), a view

    def _native_algorithm_forward(self, x, w, bias, spec, func, transposed: bool = False):
        """:meth:`native_forward` through a channels-last algorithm (:func:`convgrad.native_last.choose_all`),
        or ``None``. ``transposed``: ``spec``'s input gradient, the transposed convolution of ``x``."""
        op = "grad_input" if transposed else "forward"
        if bias is not None and np.iscomplexobj(bias):
            return None
        b = None if bias is None else as_real_array(bias, func, "bias")
        if b is not None and b.shape != ((spec.in_channels if transposed else spec.out_channels),):
            return None
        compute, out = result_dtype(x, w, b)
        chosen = native_last.choose_all(spec, (op,), compute.itemsize)
        if chosen is None:
            return None
        unbatched = x.ndim != w.ndim
        b = None if b is None else b.astype(compute, copy=False)
        y = native_last.run(chosen[op], op, spec, (x[None] if unbatched else x).astype(compute, copy=False),
                            w.astype(compute, copy=False), None if transposed else b)
        y = data_to_last(y, spec.ndim)  # (N, *spatial, C_out): C-contiguous
        if transposed and b is not None:
            y += b  # along the channels, the last axis
        return (y[0] if unbatched else y).astype(out, copy=False)

    def _native_algorithm_backward(self, grad_output, x, w, wanted, spec, func, transposed: bool = False):
        """:meth:`native_backward` through channels-last algorithms (every wanted gradient's, or none), or ``None``.

        ``transposed``: the gradients of ``spec``'s transposed convolution, whose input gradient is
        ``spec``'s forward of ``dy`` and whose weight gradient is ``spec``'s with ``x`` and ``dy`` exchanged.
        """
        data_op = "forward" if transposed else "grad_input"
        ops = tuple(op for need, op in (("input", data_op), ("weight", "grad_weight")) if need in wanted)
        if not ops or np.iscomplexobj(grad_output):
            return None
        unbatched = x.ndim != w.ndim
        dy = as_real_array(grad_output, func, "grad_output")
        compute, out = result_dtype(dy, x, w)
        chosen = native_last.choose_all(spec, ops, compute.itemsize)
        if chosen is None:
            return None
        size, channels = (spec.input_size, spec.in_channels) if transposed else (spec.output_size, spec.out_channels)
        if dy.shape != (*(() if unbatched else (spec.batch,)), *size, channels):
            return None  # the shared path reports it
        d = data_to_first(dy[None] if unbatched else dy, spec.ndim)  # (N, C, *spatial), a view
        d = d.astype(compute, copy=False)
        dx = dw = db = None
        if data_op in chosen:
            dx = data_to_last(native_last.run(chosen[data_op], data_op, spec, d, w.astype(compute, copy=False)),
                              spec.ndim)
            dx = (dx[0] if unbatched else dx).astype(out, copy=False)
        if "grad_weight" in chosen:
            xb = (x[None] if unbatched else x).astype(compute, copy=False)
            dw = self.weight_out(native_last.run(chosen["grad_weight"], "grad_weight", spec,
                                                 *((d, xb) if transposed else (xb, d)))).astype(out, copy=False)
        if "bias" in wanted:
            db = _channel_sums(data_to_last(d, spec.ndim).reshape(-1, channels)).astype(out, copy=False)
        return dx, dw, db

    def native_forward(self, x, w, bias, stride, padding, dilation, groups, padding_mode, algorithm, func):
        """The forward in the caller's layout without the transposed views, or ``None`` (see :meth:`_pointwise`).

        ``y[m, o] = b[o] + sum_c x[m, c] * w[c, o]`` over the rows ``m`` of ``(N, *spatial)``.
        """
        spec = self._native_spec(x, w, stride, padding, dilation, groups, padding_mode, algorithm, func)
        if spec is None:
            return None
        got = self._pointwise(x, w, spec)
        if got is None:
            return self._native_algorithm_forward(x, w, bias, spec, func)
        rows, mat, last, _ = got
        if bias is not None and np.iscomplexobj(bias):
            return None
        b = None if bias is None else as_real_array(bias, func, "bias")
        if b is not None and b.shape != (mat.shape[1],):
            return None
        compute, out = result_dtype(rows, mat, b)
        y = np.empty((rows.shape[0], mat.shape[1]), dtype=compute)  # (M, C_out)
        if b is not None:  # the products accumulate onto the bias, as in the pointwise algorithm
            y[...] = b.astype(compute, copy=False)
        _rows_gemm(rows.astype(compute, copy=False), mat.astype(compute, copy=False), y, 0.0 if b is None else 1.0)
        return y.reshape(*last.shape[:-1], mat.shape[1]).astype(out, copy=False)

    def native_backward(self, grad_output, x, w, needs, stride, padding, dilation, groups, padding_mode, algorithm,
                        func):
        """``(dx, dw, db)`` in the caller's layouts without the transposed views, or ``None``.

        ``dx = dy @ w.T``, ``dw = dy.T @ x`` (``(C_out, C_in)``, then the caller's weight layout), ``db = sum_m dy[m]``.
        ``dx`` is computed per batch element as ``(C_in, P) = w.T @ dy[n].T`` (the ``pointwise``
        algorithm on the transposed view of ``dy``), so that BLAS's long dimension runs along the
        positions: CPU time on one thread, layer c, 55 ms against 64 ms for the rows product
        ``(N*P, C_out) @ (C_out, C_in)`` (channels first: 54 ms). It is returned as the channels-last
        view of that channels-first array.
        """
        spec = self._native_spec(x, w, stride, padding, dilation, groups, padding_mode, algorithm, func)
        if spec is None:
            return None
        got = self._pointwise(x, w, spec)
        try:
            wanted = frozenset((needs,) if isinstance(needs, str) else needs)
        except TypeError:
            return None
        if not wanted <= {"input", "weight", "bias"}:
            return None
        if got is None:
            return self._native_algorithm_backward(grad_output, x, w, wanted, spec, func)
        rows, mat, last, spec = got
        if np.iscomplexobj(grad_output):
            return None
        dy = as_real_array(grad_output, func, "grad_output")
        if dy.shape != (*last.shape[:-1], mat.shape[1]):
            return None
        compute, out = result_dtype(dy, rows, mat)
        d = dy.reshape(-1, mat.shape[1]).astype(compute, copy=False)  # (M, C_out)
        dx = dw = db = None
        if "input" in wanted:
            r, unbatched = w.ndim - 2, last.ndim != w.ndim
            dyf = data_to_first(dy[None] if unbatched else dy, r).astype(compute, copy=False)  # (N, C_out, *S)
            dx = data_to_last(algorithms.run("grad_input", spec, dyf, w.astype(compute, copy=False), "pointwise",
                                             func=func), r)
            dx = (dx[0] if unbatched else dx).astype(out, copy=False)
        if "weight" in wanted:
            # (C_out, C_in) = d.T @ rows: BLAS's long side along C_in's rows, CPU time on one thread on
            # layer c 53-63 ms against 55-72 for rows.T @ d (channels first: 52-64), 2026-12-02, load 5
            dwo = _rows_gram(d, rows.astype(compute, copy=False))  # (C_out, C_in)
            shape = (1,) * (w.ndim - 2)
            dw = (np.ascontiguousarray(dwo.T).reshape(*shape, *dwo.shape[::-1]) if self.weight_io else
                  dwo.reshape(*dwo.shape, *shape)).astype(out, copy=False)
        if "bias" in wanted:
            db = _channel_sums(d).astype(out, copy=False)
        return dx, dw, db

    def _native_transpose_spec(self, x, w, stride, padding, output_padding, groups, dilation, algorithm, func):
        """:meth:`_native_spec` for a transposed convolution: the spec whose input gradient it is, or ``None``."""
        if not self.channels_last or algorithm != "auto" or not isinstance(x, np.ndarray) or \
                not isinstance(w, np.ndarray) or w.ndim < 3 or x.ndim not in (w.ndim - 1, w.ndim) or \
                np.iscomplexobj(x) or np.iscomplexobj(w):
            return None
        try:
            return conv_transpose_spec(x.shape if x.ndim == w.ndim else (1, *x.shape), w.shape, stride, padding,
                                       output_padding, groups, dilation, func=func)
        except (TypeError, ValueError):
            return None

    def native_transpose_forward(self, x, w, bias, stride, padding, output_padding, groups, dilation, algorithm,
                                 func):
        """The transposed convolution in the caller's layout through a channels-last algorithm's input
        gradient (:mod:`convgrad.native_last`), or ``None``: then the transposed views."""
        spec = self._native_transpose_spec(x, w, stride, padding, output_padding, groups, dilation, algorithm, func)
        return None if spec is None else self._native_algorithm_forward(x, w, bias, spec, func, transposed=True)

    def native_transpose_backward(self, grad_output, x, w, needs, stride, padding, output_padding, groups, dilation,
                                  algorithm, func):
        """``(dx, dw, db)`` of a transposed convolution in the caller's layouts through channels-last
        algorithms (``dx`` their forward of ``dy``), or ``None``."""
        spec = self._native_transpose_spec(x, w, stride, padding, output_padding, groups, dilation, algorithm, func)
        try:
            wanted = frozenset((needs,) if isinstance(needs, str) else needs)
        except TypeError:
            return None
        if spec is None or not wanted <= {"input", "weight", "bias"}:
            return None
        return self._native_algorithm_backward(grad_output, x, w, wanted, spec, func, transposed=True)

    def bias_in(self, bias, channels: int | None, rank: int, func: str):
        """A bias in one of the caller's layout's broadcasting forms (:func:`convgrad.bias.bias_forms`) as ``(C,)``.

        Channels last: ``(C,)``, ``(1, ..., 1, C)`` or ``(1, 1, ..., 1, C)``; the ``(C,)`` result is then
        checked against the output channels by the channels-first call.
        """
        if bias is None or not self.channels_last or np.ndim(bias) <= 1:
            return bias
        shape = tuple(np.shape(bias))
        check_bias_shape(shape, shape[-1] if channels is None else channels, rank, func, "bias", channels_last=True)
        return np.reshape(bias, shape[-1:])

    def data_in(self, value, rank: int, func: str, name: str):
        """``value`` (input, grad_output) in channels-first order: a transposed view, never a copy."""
        if not self.channels_last:
            return value
        a = _array(value, func, name)
        if a.ndim not in (rank + 1, rank + 2):
            raise ValueError(
                f"{func}: {name} must have {rank + 2} dims (batch, {rank} spatial, channels) or {rank + 1} "
                f"(unbatched: {rank} spatial, channels) with data_format={self.data_format!r} and a "
                f"{rank + 2}-D weight, got shape {tuple(a.shape)}")
        return data_to_first(a, rank)

    def data_out(self, a, rank: int):
        """A channels-first result (output, input gradient) in the caller's layout."""
        return data_to_last(a, rank) if self.channels_last and a is not None else a

    def weight_in(self, value, func: str, name: str = "weight"):
        """``value`` as PyTorch's ``(O, I, *kernel)`` weight: a transposed view, never a copy."""
        if not self.weight_io:
            return value
        a = _array(value, func, name)
        if a.ndim < 3:
            raise ValueError(f"{func}: {name} must have at least 3 dims (*kernel, in, out) with weight_format="
                             f"{self.weight_format!r}, got shape {tuple(a.shape)}")
        return weight_to_first(a)

    def weight_out(self, a):
        """A weight gradient in the caller's weight layout."""
        return weight_to_last(a) if self.weight_io and a is not None else a

    def data_shape_in(self, shape: tuple[int, ...], rank: int) -> tuple[int, ...]:
        """An ``input_shape`` given in the caller's layout, channels first."""
        if not self.channels_last or len(shape) not in (rank + 1, rank + 2):
            return shape  # a wrong length is reported by the shared check, in the caller's terms below
        return (*shape[:-rank - 1], shape[-1], *shape[-rank - 1:-1])

    def weight_shape_in(self, shape: tuple[int, ...]) -> tuple[int, ...]:
        """A ``weight_shape`` given in the caller's weight layout, as ``(O, I, *kernel)``."""
        if not self.weight_io or len(shape) < 3:
            return shape
        return (shape[-1], shape[-2], *shape[:-2])

    def check_channels(self, x_channels: int, weight_shape: tuple[int, ...], groups, transposed: bool,
                       func: str) -> None:
        """A weight whose channel dims do not fit the input under ``weight_format``: say which layout it fits.

        ``weight_shape`` is the caller's (before conversion); a mismatch that no layout explains is
        left to the spec's own check. Only called when a format was given.
        """
        if not isinstance(groups, (int, np.integer)) or groups < 1 or len(weight_shape) < 3:
            return
        oi = tuple(weight_shape)
        io = (oi[-1], oi[-2], *oi[:-2])  # how the array reads if it really was (*k, I, O)

        def fits(cf):
            return cf[0] == x_channels if transposed else cf[1] * groups == x_channels

        given, other = (io, oi) if self.weight_io else (oi, io)
        if fits(given):
            return
        layouts = ("(*kernel, C_out/groups, C_in)", "(C_in, C_out/groups, *kernel)") if transposed else \
                  ("(*kernel, C_in/groups, C_out)", "(C_out, C_in/groups, *kernel)")
        mine, theirs = (layouts[0], layouts[1]) if self.weight_io else (layouts[1], layouts[0])
        other_name = "'OI'" if self.weight_io else "'IO'"
        what = f"{x_channels} input channels" + ("" if transposed else f" and groups={groups}")
        hint = (f"it fits weight_format={other_name} {theirs}" if fits(other) and other != given
                else "it fits neither layout; check data_format (the input's channel dim) too")
        raise ValueError(f"{func}: weight of shape {oi} does not fit weight_format={self.weight_format!r} {mine} "
                         f"with {what}: {hint}")


DEFAULT = Formats()


class _CallersShapes:
    """Context manager: re-raise the shared check's grad_output shape error with the caller's shapes."""

    _PATTERN = re.compile(r"^(.*grad_output must have shape )\(([\d, ]*)\)(.*, got )\(([\d, ]*)\)$", re.S)

    def __init__(self, fmt: Formats, rank: int):
        self.fmt, self.rank = fmt, rank

    def __enter__(self):
        return self

    def __exit__(self, kind, exc, tb):
        if kind is not ValueError or not self.fmt.channels_last:
            return False
        m = self._PATTERN.match(str(exc))
        if m is None:
            return False
        want, got = (tuple(int(v) for v in g.split(",") if v.strip()) for g in (m.group(2), m.group(4)))
        if len(want) not in (self.rank + 1, self.rank + 2) or len(got) not in (self.rank + 1, self.rank + 2):
            return False  # (a got of another rank was never transposed: the message already holds the caller's)

        def last(shape):
            c = len(shape) - self.rank - 1
            return (*shape[:c], *shape[c + 1:], shape[c])

        raise ValueError(f"{m.group(1)}{last(want)}{m.group(3)}{last(got)} "
                         f"(data_format={self.fmt.data_format!r})") from None


def formats(data_format, weight_format, func: str) -> Formats:
    """Parse the two keywords (``ValueError``/``TypeError`` naming the keyword and the accepted values).

    Examples
    --------
    >>> formats("NHWC", "HWIO", "conv2d")
    Formats(channels_last=True, weight_io=True, data_rank=2, weight_rank=2, data_format='NHWC', weight_format='HWIO')
    >>> formats("channels_first", "OI", "conv").default
    True
    """
    if data_format == "channels_first" and weight_format == "OI":
        return DEFAULT
    last, data_rank = _parse(data_format, "data_format", _DATA_FIRST, _DATA_LAST, func)
    io, weight_rank = _parse(weight_format, "weight_format", _WEIGHT_OI, _WEIGHT_IO, func)
    return Formats(last, io, data_rank, weight_rank, data_format, weight_format)


def layer_channels_last(data_format, func: str, rank: int | None = None) -> bool:
    """Whether a layer's ``data_format`` is channels last (``ValueError`` for a bad or wrong-rank name).

    Examples
    --------
    >>> layer_channels_last("NHWC", "MaxPool2d", 2), layer_channels_last("channels_first", "Conv1d", 1)
    (True, False)
    """
    fmt = formats(data_format, "OI", func)
    if rank is not None and fmt.data_rank not in (None, rank):
        raise ValueError(f"{func}: data_format={data_format!r} names {fmt.data_rank} spatial dim(s), the layer has "
                         f"{rank}")
    return fmt.channels_last


def coupled_channels_last(channels_last, data_format, weight_format, func: str) -> bool:
    """``verify``'s layout: its ``channels_last=True`` is ``data_format="channels_last"`` with ``weight_format="IO"``.

    ``verify`` permutes data and weights together, so the two keywords must name the same side
    (channels first with ``OI``, or channels last with ``IO``) and agree with ``channels_last``.

    Examples
    --------
    >>> coupled_channels_last(False, "NHWC", "HWIO", "verify"), coupled_channels_last(True, None, None, "verify")
    (True, True)
    """
    if data_format is None and weight_format is None:
        return channels_last
    if data_format is None:  # the one given names the side
        data_format = "channels_last" if _parse(weight_format, "weight_format", _WEIGHT_OI, _WEIGHT_IO, func)[0] \
            else "channels_first"
    if weight_format is None:
        weight_format = "IO" if _parse(data_format, "data_format", _DATA_FIRST, _DATA_LAST, func)[0] else "OI"
    fmt = formats(data_format, weight_format, func)
    if fmt.channels_last != fmt.weight_io:
        raise ValueError(f"{func}: data_format={fmt.data_format!r} with weight_format={fmt.weight_format!r}: "
                         "verify checks channels-first data with 'OI' weights or channels-last data with 'IO' "
                         "weights (channels_last=True), not a mix")
    if channels_last is True and not fmt.channels_last:
        raise ValueError(f"{func}: channels_last=True contradicts data_format={fmt.data_format!r}")
    return fmt.channels_last


def _row_plan(m: int) -> parallel.Plan:
    """Rows shared out to the worker threads, a few blocks each (no scratch per row)."""
    return parallel.plan(m, 0, max_chunk=max(1, -(-m // (4 * runtime.get_num_threads()))))


def _rows_gemm(a: np.ndarray, b: np.ndarray, c: np.ndarray, beta: float) -> None:
    """``c = a @ b + beta * c``, blocks of rows on the worker threads (``a``: (M, K), ``b``: (K, N))."""
    def process(_, m0, m1):
        blas.gemm(a[m0:m1], b, c[m0:m1], beta=beta)

    parallel.run_chunks(_row_plan(a.shape[0]), dict, process)


def _rows_gram(a: np.ndarray, d: np.ndarray) -> np.ndarray:
    """``a.T @ d`` summed over blocks of rows on the worker threads (``a``: (M, K), ``d``: (M, N))."""
    def process(s, m0, m1):
        blas.gemm(a[m0:m1].T, d[m0:m1], s["dw"], beta=1.0)

    total = parallel.run_chunks(_row_plan(a.shape[0]), lambda: {"dw": np.zeros((a.shape[1], d.shape[1]), a.dtype)},
                                process, reduce=("dw",)).get("dw")
    return np.zeros((a.shape[1], d.shape[1]), a.dtype) if total is None else total


def _channel_sums(rows: np.ndarray) -> np.ndarray:
    """``rows.sum(axis=0)`` of an ``(M, C)`` array (a channels-last bias gradient), in two stages.

    NumPy reduces the long axis of short rows one row at a time: (50176, 6) -- layer g1's ``dy`` --
    took 1.0 ms, (6400, 16) 0.15 ms. Summing blocks of ``k`` rows read as rows of ``k*C`` values
    first, then the ``k`` partial rows, took 0.06 and 0.02 ms (and adds fewer float32 terms in a
    chain: 10x smaller error there).

    Examples
    --------
    >>> _channel_sums(np.arange(14.0).reshape(7, 2))
    array([42., 49.])
    """
    m, c = rows.shape
    k = max(1, 512 // max(c, 1))  # rows per block: blocks of ~512 values
    r = m // k
    if r < 2:
        return rows.sum(axis=0)
    total = rows[: r * k].reshape(r, k * c).sum(axis=0).reshape(k, c).sum(axis=0)  # (k*C,) -> (C,)
    if r * k < m:
        total += rows[r * k:].sum(axis=0)
    return total


def _array(value, func: str, name: str):
    """The array to permute: a dask array as it is (it transposes lazily), anything else through NumPy."""
    if dask_array.is_dask_array(value):
        return value
    return as_real_array(value, func, name, complex_ok=True)  # complex: the spec path decides


# ------------------------------------------------------------------------------------------------
# the permutations (views)
# ------------------------------------------------------------------------------------------------


def data_to_first(a, rank: int):
    """``(N, *S, C)`` -> ``(N, C, *S)`` (or unbatched ``(*S, C)`` -> ``(C, *S)``) for ``rank`` spatial dims: a view.

    Examples
    --------
    >>> data_to_first(np.zeros((2, 5, 4, 3)), 2).shape, data_to_first(np.zeros((5, 4, 3)), 2).shape
    ((2, 3, 5, 4), (3, 5, 4))
    """
    return np.moveaxis(a, -1, a.ndim - rank - 1)


def data_to_last(a, rank: int):
    """The inverse of :func:`data_to_first`: ``(N, C, *S)`` -> ``(N, *S, C)``, a view.

    Examples
    --------
    >>> data_to_last(np.zeros((2, 3, 5, 4)), 2).shape
    (2, 5, 4, 3)
    """
    return np.moveaxis(a, a.ndim - rank - 1, -1)


def weight_to_first(a):
    """``(*K, I, O)`` -> ``(O, I, *K)``: the ``"IO"`` weight as PyTorch's, a view.

    Examples
    --------
    >>> weight_to_first(np.zeros((3, 5, 4, 8))).shape   # HWIO -> OIHW
    (8, 4, 3, 5)
    """
    n = a.ndim
    return a.transpose(n - 1, n - 2, *range(n - 2))


def weight_to_last(a):
    """The inverse of :func:`weight_to_first`: ``(O, I, *K)`` -> ``(*K, I, O)``, a view.

    Examples
    --------
    >>> weight_to_last(np.zeros((8, 4, 3, 5))).shape
    (3, 5, 4, 8)
    """
    return a.transpose(*range(2, a.ndim), 1, 0)
