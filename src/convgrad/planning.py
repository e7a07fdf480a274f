"""Plans: one convolution configuration prepared once, then called many times (as FFTW plans, cuDNN descriptors).

A public function such as :func:`convgrad.conv2d` does, on every call, everything a configuration
needs besides the arithmetic: it converts and checks the operands, validates the arguments into a
:class:`~convgrad.spec.ConvSpec`, picks an algorithm (``auto``'s cost model) and decides whether
the operation is small enough to run on one thread. On a small layer that bookkeeping costs as
much as the arithmetic. :func:`plan` does it once for an input shape, a weight shape and a dtype;
the returned :class:`ConvPlan`'s :meth:`~ConvPlan.forward` and :meth:`~ConvPlan.backward` then only
compare the operands' shapes and dtype with the plan's (a clear ``ValueError``/``TypeError`` when
they differ) and hand them to the chosen algorithms.

A plan holds nothing computed from the *values* of its operands: weights change at every training
step, and a plan called with new weights (a new array, or the same array updated in place) computes
with them. Its results are those of the plain functions with the same arguments: the same
algorithm runs the same code on the same arrays (``tests/test_plan.py``).

The ``nn`` convolution layers keep one plan per input shape (:mod:`convgrad.nn.conv`).
"""

from __future__ import annotations

import numpy as np

from . import algorithms, runtime
from .api import NEEDS, Gradients, _needs, _shape
from .bias import as_bias_vector
from .spec import ConvSpec, conv_spec, conv_transpose_spec

__all__ = ["ConvPlan", "plan"]

_DTYPES = (np.dtype(np.float16), np.dtype(np.float32), np.dtype(np.float64))


def plan(input_shape, weight_shape, stride=1, padding=0, dilation=1, groups: int = 1, padding_mode: str = "zeros",
         *, dtype=np.float32, transposed: bool = False, output_padding=0, algorithm: str = "auto",
         func: str = "plan") -> ConvPlan:
    """Prepare one convolution configuration for repeated calls: :class:`ConvPlan`.

    Parameters
    ----------
    input_shape : tuple of int
        ``(N, C_in, *spatial)``, or unbatched ``(C_in, *spatial)``: the shape of every input the plan takes.
    weight_shape : tuple of int
        ``(C_out, C_in/groups, *kernel)`` for a convolution, ``(C_in, C_out/groups, *kernel)`` for a
        transposed one (PyTorch's layouts).
    stride, padding, dilation, groups, padding_mode
        As in :func:`convgrad.conv` (``padding_mode`` only ``"zeros"`` when ``transposed``).
    dtype : {float32, float64, float16}
        The dtype of every operand (float16 is computed in float32 and returned as float16).
    transposed : bool
        A transposed convolution (:func:`convgrad.conv_transpose`), with ``output_padding``.
    algorithm : str
        ``"auto"``, ``"measure"`` (timed on the first call of each operation, then fixed) or a name
        from :func:`convgrad.available_algorithms`: resolved here, under the thread count and
        workspace limit in force (:mod:`convgrad.runtime`), and again only if a call finds them changed.

    Returns
    -------
    ConvPlan

    Notes
    -----
    ``plan(x.shape, w.shape, **kw).forward(x, w, b)`` equals ``conv(x, w, b, **kw)`` (``conv_transpose``
    when ``transposed``) and ``.backward(dy, x, w, needs=...)`` equals ``conv_backward(dy, x, w, **kw,
    needs=...)``; what a call saves is the per-call bookkeeping: about a third of the Python calls of a
    small layer's forward + backward (README, "Plans").

    Examples
    --------
    >>> import numpy as np
    >>> p = plan((2, 3, 8, 8), (4, 3, 3, 3), padding=1)
    >>> p
    ConvPlan(input (2, 3, 8, 8), weight (4, 3, 3, 3), output (2, 4, 8, 8), float32, padding=((1, 1), (1, 1)))
    >>> x, w = np.ones((2, 3, 8, 8), np.float32), np.ones((4, 3, 3, 3), np.float32)
    >>> y = p.forward(x, w)
    >>> float(y[0, 0, 0, 0]), float(y[0, 0, 4, 4])      # a corner window reads 3*2*2 ones, an inner one 3*3*3
    (12.0, 27.0)
    >>> p.backward(np.ones_like(y), x, w, needs=("weight",)).weight.shape
    (4, 3, 3, 3)
    >>> p.forward(x[:1], w)
    Traceback (most recent call last):
    ...
    ValueError: ConvPlan.forward: input must have shape (2, 3, 8, 8) (the plan's), got (1, 3, 8, 8)
    """
    if not isinstance(transposed, bool):
        raise TypeError(f"{func}: transposed must be True or False, got {transposed!r}")
    input_shape = _shape(input_shape, func, "input_shape")
    weight_shape = _shape(weight_shape, func, "weight_shape")
    dt = _dtype(dtype, func)
    if len(weight_shape) < 3:
        raise ValueError(f"{func}: weight_shape must have at least 3 entries (out, in/groups, *kernel), got {weight_shape}")
    if len(input_shape) not in (len(weight_shape), len(weight_shape) - 1):
        raise ValueError(f"{func}: input_shape must have {len(weight_shape)} entries (batch, channels, "
                         f"{len(weight_shape) - 2} spatial) or {len(weight_shape) - 1} (unbatched) to match "
                         f"weight_shape {weight_shape}, got {input_shape}")
    unbatched = len(input_shape) == len(weight_shape) - 1
    batched = (1, *input_shape) if unbatched else input_shape
    if algorithm not in algorithms.CHOOSERS:
        algorithms.get_algorithm(algorithm, func)
    if transposed:
        if padding_mode != "zeros":
            raise ValueError(f"{func}: a transposed convolution only has padding_mode='zeros', got {padding_mode!r}")
        spec = conv_transpose_spec(batched, weight_shape, stride, padding, output_padding, groups, dilation, func=func)
    else:
        if output_padding != 0:
            raise ValueError(f"{func}: output_padding is for a transposed convolution (transposed=True), "
                             f"got {output_padding!r}")
        spec = conv_spec(batched, weight_shape, stride, padding, dilation, groups, padding_mode, func=func)
    return ConvPlan(spec, dt, transposed, unbatched, algorithm)


def _dtype(dtype, func: str) -> np.dtype:
    try:
        dt = np.dtype(dtype)
    except TypeError:
        raise TypeError(f"{func}: dtype must be float16, float32 or float64, got {dtype!r}") from None
    if dt not in _DTYPES:
        raise TypeError(f"{func}: dtype must be float16, float32 or float64, got {dt}")
    return dt


class ConvPlan:
    """One convolution configuration, validated and resolved once; made by :func:`plan`.

    Attributes
    ----------
    spec : ConvSpec
        The normalized configuration (for a transposed convolution, the convolution whose input
        gradient it is: :func:`convgrad.conv_transpose_spec`).
    dtype : numpy.dtype
        The dtype of every operand and result.
    input_shape, weight_shape, output_shape : tuple of int
        As the caller gives and gets them (unbatched when the plan was made unbatched).
    algorithms : dict
        The algorithm of each operation (``forward``, ``grad_input``, ``grad_weight`` of ``spec``);
        with ``algorithm="measure"``, an operation not yet run shows the cost model's pick.
    """

    def __init__(self, spec: ConvSpec, dtype: np.dtype, transposed: bool, unbatched: bool, algorithm: str):
        self.spec = spec
        self.dtype = dtype
        self.transposed = transposed
        self._compute = np.dtype(np.float32) if dtype == np.float16 else dtype
        self._unbatched = unbatched
        self._algorithm = algorithm
        # the user's forward is the spec's grad_input for a transposed convolution (conv_transpose_spec)
        outer_in, outer_out = (spec.output_shape, spec.input_shape) if transposed else (spec.input_shape, spec.output_shape)
        strip = (lambda s: s[1:]) if unbatched else (lambda s: s)
        self.input_shape, self.output_shape = strip(outer_in), strip(outer_out)
        self.weight_shape = spec.weight_shape
        self._ops = ("grad_input", "forward") if transposed else ("forward", "grad_input")  # (y, dx)
        self._bias_shape = (spec.in_channels if transposed else spec.out_channels,)
        self._bias_view = (1, -1) + (1,) * spec.ndim
        self._bias_axes = (0, *range(2, 2 + spec.ndim))
        self._resolved: dict[str, tuple] = {}
        self._settings: tuple | None = None
        self._resolve_all()

    # -- resolution, once per operation -----------------------------------------------------------

    def _resolve_all(self) -> None:
        """Resolve every operation under the settings now in force (``auto``'s pick depends on them).

        A new dict, assigned at once: a thread using the plan meanwhile sees the old choices or the new.
        """
        settings = (runtime.get_num_threads(), runtime.get_workspace_limit())
        resolved = {}
        if self._algorithm != "measure":
            for op in ("forward", "grad_input", "grad_weight"):
                resolved[op] = self._entry(op)
        self._resolved, self._settings = resolved, settings

    def _entry(self, op: str) -> tuple:
        alg = algorithms.resolve(self._algorithm, self.spec, op, self._compute.itemsize, "plan")
        return alg, algorithms.is_small(alg, self.spec, op, self._compute.itemsize)

    def _run(self, op: str, a: np.ndarray, b: np.ndarray, bias=None) -> np.ndarray:
        if (runtime.get_num_threads(), runtime.get_workspace_limit()) != self._settings:
            self._resolve_all()  # a settings block or set_num_threads since: choose as the functions would now
        entry = self._resolved.get(op)
        if entry is None:  # "measure": time the candidates on these operands, then keep the fastest
            result = algorithms.run(op, self.spec, a, b, "measure", bias=bias, func="plan")
            self._resolved = {**self._resolved, op: self._entry(op)}
            return result
        alg, small = entry
        return algorithms.execute(alg, op, self.spec, a, b, bias, small)

    @property
    def algorithms(self) -> dict[str, str]:
        return {op: (self._resolved[op][0] if op in self._resolved
                     else algorithms.resolve(self._algorithm, self.spec, op, self._compute.itemsize)).name
                for op in ("forward", "grad_input", "grad_weight")}

    # -- operand checks: shape and dtype equality ---------------------------------------------------

    def _operand(self, value, shape: tuple, where: str, name: str, what: str = "the plan's",
                 batch: bool = False) -> np.ndarray:
        """``value`` checked against the plan (shape and dtype equal), in the compute dtype, batched if ``batch``."""
        if not isinstance(value, np.ndarray):
            raise TypeError(f"ConvPlan.{where}: {name} must be a NumPy array of dtype {self.dtype} "
                            f"(a plan takes arrays only), got {type(value).__name__}")
        if value.shape != shape:
            raise ValueError(f"ConvPlan.{where}: {name} must have shape {shape} ({what}), got {value.shape}")
        if value.dtype != self.dtype:
            raise TypeError(f"ConvPlan.{where}: {name} must have dtype {self.dtype} (the plan's), got {value.dtype}")
        if self._compute != self.dtype:
            value = value.astype(self._compute)
        return value[None] if batch and self._unbatched else value

    def _finish(self, arr: np.ndarray, batched_result: bool) -> np.ndarray:
        if self._unbatched and batched_result:
            arr = arr[0]
        return arr.astype(self.dtype, copy=False)

    # -- the passes -------------------------------------------------------------------------------

    def forward(self, input: np.ndarray, weight: np.ndarray, bias: np.ndarray | None = None) -> np.ndarray:
        """The convolution (transposed convolution) of ``input`` with ``weight``, plus ``bias``.

        Operands must have the plan's shapes and dtype; the formula is :func:`convgrad.conv`'s
        (:func:`convgrad.conv_transpose`'s).
        """
        x = self._operand(input, self.input_shape, "forward", "input", batch=True)
        w = self._operand(weight, self.weight_shape, "forward", "weight")
        if isinstance(bias, np.ndarray) and bias.ndim > 1:  # (C, 1, ..., 1) or (1, C, 1, ..., 1), as the functions take
            bias = as_bias_vector(bias, self._bias_shape[0], self.spec.ndim, "ConvPlan.forward")
        b = None if bias is None else self._operand(bias, self._bias_shape, "forward", "bias",
                                                     "one per output channel")
        return self._finish(self._run(self._ops[0], x, w, b), True)

    def backward(self, grad_output: np.ndarray, input: np.ndarray, weight: np.ndarray, *,
                 needs=NEEDS) -> Gradients:
        """The gradients named in ``needs`` (``"input"``, ``"weight"``, ``"bias"``) given ``grad_output = dL/dy``.

        As :func:`convgrad.conv_backward` (:func:`convgrad.conv_transpose_backward`); an operand only
        an unasked gradient reads may be ``None``.
        """
        wanted = _needs(needs, "ConvPlan.backward")
        dy = self._operand(grad_output, self.output_shape, "backward", "grad_output", "the plan's output shape",
                           batch=True)
        dx = dw = db = None
        if "input" in wanted:
            w = self._operand(weight, self.weight_shape, "backward", "weight")
            dx = self._finish(self._run(self._ops[1], dy, w), True)
        if "weight" in wanted:
            x = self._operand(input, self.input_shape, "backward", "input", batch=True)
            first, second = (dy, x) if self.transposed else (x, dy)
            dw = self._finish(self._run("grad_weight", first, second), False)
        if "bias" in wanted:
            db = self._finish(dy.sum(axis=self._bias_axes), False)
        return Gradients(dx, dw, db)

    def __repr__(self) -> str:
        s = self.spec
        args = [f"{k}={v}" for k, v, default in (
            ("stride", s.stride, (1,) * s.ndim), ("padding", s.padding, ((0, 0),) * s.ndim),
            ("dilation", s.dilation, (1,) * s.ndim), ("groups", s.groups, 1),
            ("padding_mode", repr(s.padding_mode), "'zeros'"), ("transposed", self.transposed, False),
            ("algorithm", repr(self._algorithm), "'auto'")) if v != default]
        head = (f"input {self.input_shape}, weight {self.weight_shape}, output {self.output_shape}, "
                f"{self.dtype}")
        return f"ConvPlan({', '.join([head, *args])})"
