"""``Module``: the layer protocol -- forward, backward, parameters, modes, state.

Every layer is a ``Module`` with two explicit passes::

    y  = layer.forward(x)                 # also layer(x); keeps what backward will need
    dx = layer.backward(dy)               # dy = dL/dy  ->  dx = dL/dx, and adds dL/dW into W.grad

``backward`` uses what the *last* ``forward`` kept (one entry, overwritten each time: nothing
grows). A ``Sequential`` (or ``BasicBlock``) releases each layer's entry as soon as that layer's
backward is done, as PyTorch frees its graph: the arrays of the forward pass do not outlive the
step, and a second backward needs a new forward. Parameters (:class:`~convgrad.nn.Parameter`) and sub-modules are found among a
module's public attributes, in the order they were assigned; ``state_dict`` names them with
PyTorch's dotted keys (``"0.weight"``, ``"features.3.running_mean"``), so the ``state_dict``
of the matching PyTorch model, converted to NumPy arrays, loads as it is.
"""

from __future__ import annotations

from typing import Iterator, Mapping

import numpy as np

from .. import memory
from .init import resolve_dtype
from .parameter import Parameter

__all__ = ["Module"]


class Module:
    """Base class of every layer and model.

    Subclasses implement ``forward(x)`` and ``backward(grad_output, *, input_grad=True)``, may
    register non-trainable state with :meth:`register_buffer`, and describe their non-default
    constructor arguments in :meth:`extra_repr`.
    """

    def __init__(self) -> None:
        self.training = True
        self._buffer_names: list[str] = []
        self._cache = None

    # -- the two passes ---------------------------------------------------------------------------
    def forward(self, x: np.ndarray) -> np.ndarray:
        raise NotImplementedError(f"{type(self).__name__} does not implement forward")

    def backward(self, grad_output: np.ndarray, *, input_grad: bool = True) -> np.ndarray | None:
        """Given ``dL/dy`` for the last ``forward``, accumulate parameter gradients and return ``dL/dx``.

        With ``input_grad=False`` the input gradient is not computed and ``None`` is returned
        (the first layer of a network needs no gradient for the images).
        """
        raise NotImplementedError(f"{type(self).__name__} does not implement backward")

    def __call__(self, x: np.ndarray) -> np.ndarray:
        if not memory._state["chosen"]:  # the first layer run: freed memory kept for the next step's arrays
            memory.reuse_by_default()
        return self.forward(x)

    def _remember(self, *items) -> None:
        """Keep what ``backward`` needs from this forward pass (replacing the previous one)."""
        self._cache = items

    def _recall(self) -> tuple:
        """What the last forward kept; ``RuntimeError`` if there was none."""
        if self._cache is None:
            raise RuntimeError(f"{type(self).__name__}.backward was called before forward (or a second time after "
                               "one forward, whose arrays the first backward released): run forward first")
        return self._cache

    def __getstate__(self) -> dict:
        """Pickling and ``copy.deepcopy``: everything but the internal scratch kept between steps
        (``_kept``, :func:`convgrad.nn.bn_passes.kept`), which the copy makes anew when it runs."""
        state = self.__dict__.copy()
        state.pop("_kept", None)
        return state

    def _release(self) -> None:
        """Drop what the last forward kept, here and in every sub-module (its backward is done)."""
        self._cache = None
        for child in self.children():
            child._release()

    # -- structure --------------------------------------------------------------------------------
    def named_children(self) -> Iterator[tuple[str, "Module"]]:
        """Direct sub-modules with their attribute names, in assignment order."""
        for name, value in vars(self).items():
            if not name.startswith("_") and isinstance(value, Module):
                yield name, value

    def children(self) -> list["Module"]:
        return [m for _, m in self.named_children()]

    def modules(self) -> list["Module"]:
        """This module and all its descendants, depth first."""
        out = [self]
        for child in self.children():
            out.extend(child.modules())
        return out

    def named_parameters(self, prefix: str = "") -> list[tuple[str, Parameter]]:
        """``(dotted name, Parameter)`` pairs: own parameters first, then each child's, recursively."""
        out: list[tuple[str, Parameter]] = []
        seen: set[int] = set()
        for name, p in self._named_tensors(prefix, buffers=False):
            if id(p) not in seen:
                seen.add(id(p))
                out.append((name, p))
        return out

    def parameters(self) -> list[Parameter]:
        """Every trainable :class:`Parameter` of the module and its sub-modules (each once)."""
        return [p for _, p in self.named_parameters()]

    def register_buffer(self, name: str, value: np.ndarray) -> None:
        """Add non-trainable state (saved in ``state_dict``, e.g. BatchNorm's running statistics)."""
        setattr(self, name, value)
        if name not in self._buffer_names:
            self._buffer_names.append(name)

    def named_buffers(self, prefix: str = "") -> list[tuple[str, np.ndarray]]:
        return list(self._named_tensors(prefix, parameters=False))

    def _named_tensors(self, prefix: str, parameters: bool = True, buffers: bool = True):
        if parameters:
            for name, value in vars(self).items():
                if not name.startswith("_") and isinstance(value, Parameter):
                    yield prefix + name, value
        if buffers:
            for name in self._buffer_names:
                yield prefix + name, getattr(self, name)
        for cname, child in self.named_children():
            yield from child._named_tensors(f"{prefix}{cname}.", parameters, buffers)

    # -- modes and housekeeping -------------------------------------------------------------------
    def train(self, mode: bool = True) -> "Module":
        """Training mode (Dropout drops, BatchNorm uses batch statistics) or, with ``False``, eval mode."""
        if not isinstance(mode, bool):
            raise TypeError(f"{type(self).__name__}.train: mode must be True or False, got {mode!r}")
        for m in self.modules():
            m.training = mode
        return self

    def eval(self) -> "Module":
        """Evaluation mode: ``train(False)``."""
        return self.train(False)

    def set_algorithm(self, algorithm: str) -> "Module":
        """Set the convolution algorithm of every convolution layer in this module (``algorithm=`` of
        :class:`~convgrad.nn.Conv2d` & co.); returns the module.

        ``"auto"`` (the default) is the cost model's pick. ``"measure"`` times the plausible
        algorithms on the first step's real arrays and keeps the fastest, per layer and operation
        (as ``torch.backends.cudnn.benchmark``): a slower first step, then each convolution on what
        measured fastest on this machine -- which may differ from run to run, and with it the last
        bits of the results. Or a name from :func:`convgrad.available_algorithms`.

        Examples
        --------
        >>> from convgrad import nn
        >>> net = nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.Conv2d(4, 4, 3)).set_algorithm("measure")
        >>> [m.algorithm for m in net.modules() if hasattr(m, "algorithm")]
        ['measure', 'measure']
        """
        from .conv import _algorithm, _ConvBase

        algorithm = _algorithm(algorithm, f"{type(self).__name__}.set_algorithm")
        for m in self.modules():
            if isinstance(m, _ConvBase):
                m.algorithm = algorithm
        return self

    def zero_grad(self) -> None:
        """Set every parameter's gradient to zero."""
        for p in self.parameters():
            p.zero_grad()

    def to(self, dtype) -> "Module":
        """Convert every parameter and floating buffer to ``dtype`` (float16/32/64), in place; returns self."""
        dt = resolve_dtype(dtype, f"{type(self).__name__}.to")
        for p in self.parameters():
            p.astype(dt)
        for m in self.modules():
            for name in m._buffer_names:
                value = getattr(m, name)
                if value.dtype.kind == "f":
                    setattr(m, name, value.astype(dt))
        return self

    # -- state ------------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, np.ndarray]:
        """Copies of every parameter value and buffer, under PyTorch's dotted names."""
        return {name: np.array(value.value if isinstance(value, Parameter) else value, copy=True)
                for name, value in self._named_tensors("")}

    def load_state_dict(self, state_dict: Mapping[str, object], strict: bool = True) -> None:
        """Copy arrays into the parameters and buffers of the same names (cast to their dtypes).

        ``state_dict`` maps names to array-likes -- NumPy arrays, or anything ``np.asarray``
        accepts, such as CPU tensors from ``torch_model.state_dict()``. With ``strict`` (default)
        a missing or unexpected name is a ``ValueError``; a shape mismatch always is. The values
        are copied: the module never aliases the caller's arrays.
        """
        if not isinstance(state_dict, Mapping):
            raise TypeError(f"load_state_dict: state_dict must be a mapping of names to arrays, got {type(state_dict).__name__}")
        own = dict(self._named_tensors(""))
        missing = [k for k in own if k not in state_dict]
        unexpected = [k for k in state_dict if k not in own]
        if strict and (missing or unexpected):
            raise ValueError(
                f"load_state_dict: the names do not match this {type(self).__name__}: "
                f"missing {missing}, unexpected {unexpected}"
            )
        arrays = {}
        for name, target in own.items():
            if name not in state_dict:
                continue
            arr = np.asarray(state_dict[name])
            shape = target.value.shape if isinstance(target, Parameter) else target.shape
            if arr.shape != shape:
                raise ValueError(f"load_state_dict: {name!r} must have shape {shape}, got {arr.shape}")
            arrays[name] = arr
        for name, arr in arrays.items():  # all checked first: a failed load changes nothing
            target = own[name]
            (target.value if isinstance(target, Parameter) else target)[...] = arr

    # -- repr -------------------------------------------------------------------------------------
    def extra_repr(self) -> str:
        """The constructor arguments that differ from their defaults, as ``repr`` shows them."""
        return ""

    def __repr__(self) -> str:
        children = list(self.named_children())
        if not children:
            return f"{type(self).__name__}({self.extra_repr()})"
        lines = [f"{type(self).__name__}("]
        for name, child in children:
            body = repr(child).replace("\n", "\n  ")
            lines.append(f"  ({name}): {body}")
        lines.append(")")
        return "\n".join(lines)


def format_args(positional=(), keywords=()) -> str:
    """``"1, 16, kernel_size=3, padding=1"``: positional values, then ``(name, value, default)``
    triples whose value differs from the default. Per-dim tuples with equal entries print as one int."""
    parts = [_compact(v) for v in positional]
    for name, value, default in keywords:
        if _differs(value, default):
            parts.append(f"{name}={_compact(value)}")
    return ", ".join(parts)


def _differs(value, default) -> bool:
    if isinstance(value, tuple) and not isinstance(default, tuple) and len(value) and not isinstance(default, str):
        return any(_differs(v, default) for v in value)
    if isinstance(value, float) or isinstance(default, float):
        return value is None or default is None or float(value) != float(default)
    return value != default


def _compact(value) -> str:
    if isinstance(value, tuple) and value and all(v == value[0] for v in value) and isinstance(value[0], int):
        return str(value[0])
    if isinstance(value, np.dtype):
        return value.name
    return repr(value)
