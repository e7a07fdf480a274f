"""Calling the user's function: what it declares, its layout, a time limit, and what it returned.

Everything the user's code sees is a fresh copy in the user's layout; everything it returns is
turned back into convgrad's layout (channels first, PyTorch's weight layouts) before comparing,
so the rest of ``verify`` never thinks about layouts.
"""

from __future__ import annotations

import ctypes
import inspect
import os
import sys
import threading
import time
import traceback
from dataclasses import dataclass

import numpy as np

from .cases import PARAMS, Case

#: What each op returns, in order (the bias gradient is optional in the backward ops).
RESULTS = {
    "forward": ("output",),
    "transposed_forward": ("output",),
    "backward": ("grad_input", "grad_weight", "grad_bias"),
    "transposed_backward": ("grad_input", "grad_weight", "grad_bias"),
}
#: The array names the user's function receives, positionally.
OPERANDS = {
    "forward": ("x", "w"),
    "transposed_forward": ("x", "w"),
    "backward": ("dy", "x", "w"),
    "transposed_backward": ("dy", "x", "w"),
}


@dataclass(frozen=True)
class Signature:
    """What ``verify`` reads off the user's function."""

    name: str
    declared: tuple[str, ...]   # the parameters it declares among stride, padding, ...
    takes_bias: bool            # forward ops: a third positional parameter
    source: str                 # "file.py:line"
    first: str = ""             # the name of its first positional parameter

    def op_hint(self, op: str, error: BaseException | None = None, dims: int = 2) -> str:
        """A hint when the parameter names suggest another op (a backward checked as a forward, ...), or else
        when an unpacking error suggests another number of spatial dims."""
        grad_like = self.first.lower().startswith(("d", "grad", "delta", "g_")) and self.first.lower() not in ("data",)
        if op.endswith("forward") and grad_like:
            return (f"its first parameter is named {self.first!r}: if it computes gradients, check it with "
                    f"op='{op.replace('forward', 'backward')}' (--op {op.replace('forward', 'backward')})")
        if op.endswith("backward") and self.first.lower() in ("x", "input", "inputs", "a", "a_prev", "img", "images"):
            return (f"its first parameter is named {self.first!r}: if it is a forward pass, check it with "
                    f"op='{op.replace('backward', 'forward')}' (--op {op.replace('backward', 'forward')})")
        if error is not None and "values to unpack" in str(error):
            return (f"it could not unpack a shape: does it expect {dims}-D convolutions ({dims + 2}-D arrays)? "
                    "Set dims= (--dims) to the number of spatial dims it handles")
        return ""


def read_signature(fn, op: str) -> Signature:
    """The parameters ``fn`` declares; raises ``TypeError`` if it cannot take the op's operands."""
    if not callable(fn):
        raise TypeError(f"verify: fn must be a callable, got {type(fn).__name__}")
    name = getattr(fn, "__name__", None) or type(fn).__name__
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):
        raise TypeError(f"verify: cannot read the signature of {name!r}; pass a Python function") from None
    allowed = PARAMS if op.startswith("transposed") else PARAMS[:4]
    declared = tuple(p for p in allowed if p in sig.parameters)
    positional = [p for p in sig.parameters.values()
                  if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) and p.name not in PARAMS]
    varargs = any(p.kind is p.VAR_POSITIONAL for p in sig.parameters.values())
    need = len(OPERANDS[op])
    if len(positional) < need and not varargs:
        names = ", ".join(OPERANDS[op])
        raise TypeError(
            f"verify: for op={op!r}, fn must take {need} positional arrays ({names}), "
            f"but {name}{sig} takes {len(positional)}"
        )
    takes_bias = op.endswith("forward") and (len(positional) >= 3 or varargs)
    required = [p for p in positional[need + takes_bias:] if p.default is p.empty]
    if required:
        raise TypeError(
            f"verify: {name}{sig} has required parameters verify cannot fill: "
            f"{', '.join(p.name for p in required)} (it passes {', '.join(OPERANDS[op])}"
            f"{', b' if takes_bias else ''} and the keywords among {', '.join(allowed)})"
        )
    return Signature(name, declared, takes_bias, _source(fn), positional[0].name if positional else "")


def _source(fn) -> str:
    try:
        file = inspect.getsourcefile(fn) or "?"
        line = inspect.getsourcelines(fn)[1]
    except (TypeError, OSError):
        return "?"
    return f"{os.path.relpath(file) if not os.path.relpath(file).startswith('..') else file}:{line}"


# ------------------------------------------------------------------------------------------------
# layouts
# ------------------------------------------------------------------------------------------------


def to_user(name: str, a: np.ndarray, channels_last: bool) -> np.ndarray:
    """convgrad's layout -> the user's: activations (N, C, *S) -> (N, *S, C); weights -> (*K, I, O)."""
    if not channels_last or name in ("b", "grad_bias"):
        return a
    if name in ("w", "grad_weight"):
        return np.transpose(a, (*range(2, a.ndim), 1, 0))
    return np.moveaxis(a, 1, -1)


def from_user(name: str, a: np.ndarray, channels_last: bool) -> np.ndarray:
    """The inverse of :func:`to_user`."""
    if not channels_last or name in ("b", "grad_bias"):
        return a
    if name in ("w", "grad_weight"):
        n = a.ndim
        return np.transpose(a, (n - 1, n - 2, *range(n - 2)))
    return np.moveaxis(a, -1, 1)


def user_shape(name: str, shape: tuple[int, ...], channels_last: bool) -> tuple[int, ...]:
    return to_user(name, np.empty(shape, dtype=np.int8), channels_last).shape


def user_params(case: Case, declared, per_dim: bool) -> dict:
    """The keyword arguments the user's function gets: ints, or per-dim tuples with ``per_dim``."""
    out = {}
    for name in declared:
        value = case.groups if name == "groups" else getattr(case, name)
        if name != "groups" and not isinstance(value, str):
            value = tuple(value) if per_dim else value[0]
        out[name] = value
    return out


# ------------------------------------------------------------------------------------------------
# calling with a time limit
# ------------------------------------------------------------------------------------------------


@dataclass
class Call:
    """What one call of the user's function gave: its value, or the exception, or a time-out."""

    value: object = None
    error: BaseException | None = None
    where: str = ""          # the user's own file:line where the exception was raised
    timed_out: bool = False
    seconds: float = 0.0


class _Stop(BaseException):
    """Raised inside a user's function that ran out of time (a BaseException: ``except Exception`` keeps out)."""


def call(fn, args: tuple, kwargs: dict, limit: float) -> Call:
    """Run ``fn(*args, **kwargs)`` on a worker thread; stop it after ``limit`` seconds.

    A function that is still running is interrupted by an exception raised inside its thread at
    its next Python bytecode (pure-Python loops stop at once; a single long NumPy call ends first).
    """
    out = Call()

    def target():
        start = time.perf_counter()
        try:
            out.value = fn(*args, **kwargs)
        except _Stop:
            out.timed_out = True
        except BaseException as exc:  # the user's code may raise anything: it is a finding, not a crash
            out.error = exc
            out.where = user_frame(exc)
        finally:
            out.seconds = time.perf_counter() - start

    worker = threading.Thread(target=target, name="convgrad-verify-call", daemon=True)
    worker.start()
    worker.join(limit)
    if worker.is_alive():
        ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(worker.ident), ctypes.py_object(_Stop))
        worker.join(2.0)
        out.timed_out = True
        out.seconds = limit
    return out


def user_frame(exc: BaseException) -> str:
    """``file:line: code`` of the innermost frame of the traceback in the user's own code."""
    frames = traceback.extract_tb(exc.__traceback__)
    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    skip = (here, os.path.dirname(np.__file__), os.path.dirname(os.__file__), sys.prefix + os.sep + "lib")
    own = [f for f in frames if not os.path.abspath(f.filename).startswith(skip)]
    frame = (own or frames or [None])[-1]
    if frame is None:
        return ""
    file = frame.filename
    rel = os.path.relpath(file)
    return f"{file if rel.startswith('..') else rel}:{frame.lineno}: {frame.line or ''}".rstrip()


def describe_exception(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    first = text[0] if text else ""
    return f"{type(exc).__name__}: {first}" if first else type(exc).__name__
