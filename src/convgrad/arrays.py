"""Other array types at the boundary: PyTorch tensors, JAX arrays, anything with ``__dlpack__``.

The functional API computes with NumPy. Its array arguments (``input``, ``weight``, ``bias``,
``grad_output``, and those of the second-order, forward-mode and pooling functions: ``grad_grad_*``,
``tangent_*``, ``indices``) may also be

- a PyTorch tensor on the CPU, with or without ``requires_grad`` (it is detached: convgrad computes
  the gradients itself; a lazily conjugated or negated tensor is resolved first);
- a JAX array on the CPU, or any other array with ``__dlpack__`` on the CPU (DLPack device type 1),
  e.g. ``array_api_strict`` arrays;
- anything ``np.asarray`` reads (``__array__``, nested lists), as before.

They are read with ``np.from_dlpack``: **no copy** (the NumPy array is a view of the caller's
memory, never written). An array on another device (a CUDA tensor, ``array_api_strict``'s
``"device1"``) is a ``TypeError`` naming its type and device and saying how to move it to the CPU;
so is a tensor whose dtype NumPy has no equivalent for (e.g. ``torch.bfloat16``).

The results come back as the caller's array type, decided by **the first array argument** in the
function's signature order (``conv(input, weight, bias)``: the input; ``conv_backward(grad_output,
input, weight)``: ``grad_output``; ``conv_input(input_shape, weight, grad_output)``: the weight),
ignoring ``None``, Python lists and scalars:

- a PyTorch tensor -> ``torch.Tensor`` on the CPU sharing the result's memory (``torch.from_numpy``),
  with the result's dtype (the dtype rules of :mod:`convgrad.dtypes`), ``requires_grad=False``;
- a JAX array -> ``jax.numpy.asarray(result)`` (JAX's dtype rules: without ``jax_enable_x64`` a
  float64 result becomes float32, as for any NumPy array handed to JAX);
- another array with ``__array_namespace__`` -> ``namespace.asarray(result, device=template.device)``
  (e.g. an ``array_api_strict`` array on the same simulated device);
- a NumPy array, or an object with only ``__dlpack__``/``__array__`` -> a NumPy array, as before.

:class:`~convgrad.api.Gradients` records hold arrays of that type. Neither torch nor jax is ever
imported here: a type is recognised by its module's name, and the library is already imported
when the caller hands in one of its arrays.
"""

from __future__ import annotations

import functools
import importlib
import inspect
import sys

import numpy as np

__all__ = ["ARRAY_ARGUMENTS", "boundary", "to_numpy", "like", "from_numpy"]

#: The names of the array parameters converted at the boundary.
ARRAY_ARGUMENTS = ("grad_output", "input", "weight", "bias",
                   "lhs", "rhs",  # conv_general_dilated
                   "grad_grad_input", "grad_grad_weight", "grad_grad_bias",  # the double backward (higher.py)
                   "tangent_input", "tangent_weight", "tangent_bias",  # the JVP (higher.py)
                   "indices")  # max_pool_backward (pooling.py)

_DLPACK_CPU = 1  # kDLCPU in DLPack's DLDeviceType
_MOVE = "move it to the CPU first (PyTorch: x.cpu(); JAX: jax.device_get(x); CuPy: x.get()) or pass np.asarray(...)"


def _root(value) -> str:
    return type(value).__module__.partition(".")[0]


def _type_name(value) -> str:
    t = type(value)
    return f"{t.__module__}.{t.__qualname__}"


def _is_dask(value) -> bool:
    return _root(value) == "dask"


def _is_torch(value) -> bool:
    return _root(value) == "torch" and hasattr(value, "detach")


def _is_jax(value) -> bool:
    return _root(value) in ("jax", "jaxlib")


def _is_array(value) -> bool:
    """Whether ``value`` is an array object whose type could be returned (not a list, scalar or None)."""
    if isinstance(value, np.ndarray):
        return True
    if value is None or isinstance(value, (list, tuple, int, float, complex, np.generic, str, bytes)):
        return False
    return hasattr(value, "__dlpack__") or hasattr(value, "__array__") or _is_dask(value)


def to_numpy(value, func: str, name: str):
    """``value`` as a NumPy array if it is a foreign array (read without a copy); anything else unchanged.

    Examples
    --------
    >>> import numpy as np
    >>> x = np.ones(3)
    >>> to_numpy(x, "conv", "input") is x
    True
    """
    if value is None or isinstance(value, np.ndarray) or _is_dask(value):
        return value
    if _is_torch(value):
        device = getattr(value, "device", None)
        if getattr(device, "type", "cpu") != "cpu":
            raise TypeError(f"{func}: {name} is a {_type_name(value)} on device '{device}'; convgrad computes on the "
                            f"CPU with NumPy: pass {name}.cpu()")
        value = value.detach()
        if value.is_conj():
            value = value.resolve_conj()
        if value.is_neg():
            value = value.resolve_neg()
        return _from_dlpack(value, func, name)
    if hasattr(value, "__dlpack__"):
        device = _dlpack_device(value)
        if device is not None and device[0] != _DLPACK_CPU:
            where = getattr(value, "device", f"DLPack device type {device[0]}")
            raise TypeError(f"{func}: {name} is a {_type_name(value)} on device {where!r}, not the CPU; convgrad "
                            f"computes with NumPy: {_MOVE}")
        return _from_dlpack(value, func, name)
    return value


def _dlpack_device(value):
    try:
        return tuple(value.__dlpack_device__())
    except (AttributeError, TypeError, ValueError, RuntimeError):
        return None


def _from_dlpack(value, func: str, name: str) -> np.ndarray:
    try:
        return np.from_dlpack(value)
    except (BufferError, TypeError, ValueError, RuntimeError) as exc:
        dtype = getattr(value, "dtype", "?")
        why = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise TypeError(f"{func}: {name} is a {_type_name(value)} of dtype {dtype} that NumPy cannot read ({why}); "
                        f"convert it to a float or complex dtype NumPy has (e.g. float32/float64) or pass "
                        f"np.asarray(...)") from None


def like(values):
    """The first array object among ``values`` (its type decides the results' type), or ``None``."""
    return next((v for v in values if _is_array(v)), None)


def from_numpy(result, template):
    """``result`` (a NumPy array, a tuple of them -- a NamedTuple such as ``Gradients`` or a plain tuple such as
    ``max_pool``'s ``(y, indices)`` -- or ``None``) as ``template``'s array type.

    Examples
    --------
    >>> import numpy as np
    >>> y = np.zeros(2)
    >>> from_numpy(y, np.ones(3)) is y, from_numpy(y, None) is y
    (True, True)
    """
    if result is None or template is None or isinstance(template, np.ndarray):
        return result
    if isinstance(result, tuple):
        items = [from_numpy(r, template) for r in result]
        return type(result)._make(items) if hasattr(type(result), "_make") else tuple(items)  # NamedTuple or plain
    if not isinstance(result, np.ndarray):  # e.g. a lazy dask result: left as it is
        return result
    if _is_torch(template):
        torch = sys.modules["torch"]
        if not result.flags.writeable or any(s < 0 for s in result.strides):  # torch.from_numpy refuses these
            result = result.copy()
        return torch.from_numpy(result)
    if _is_jax(template):
        return importlib.import_module("jax.numpy").asarray(result)
    namespace = getattr(template, "__array_namespace__", None)
    if namespace is not None:
        device = getattr(template, "device", None)
        try:
            return namespace().asarray(result, device=device)  # the caller's device (array API)
        except TypeError:  # a namespace without the device keyword
            return namespace().asarray(result)
    return result


def boundary(fn):
    """Decorate a function of the API whose parameters include some of :data:`ARRAY_ARGUMENTS` (and ``func``):
    foreign arrays are converted by :func:`to_numpy` on the way in, the result by :func:`from_numpy`
    on the way out. NumPy arguments pass through untouched (and cost one loop over the arguments)."""
    params = list(inspect.signature(fn).parameters)
    slots = [(i, p) for i, p in enumerate(params) if p in ARRAY_ARGUMENTS]
    func_slot = params.index("func") if "func" in params else None  # a public function: its own name

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        n = len(args)
        values = [args[i] if i < n else kwargs.get(p) for i, p in slots]
        for v in values:
            if v is not None and type(v) is not np.ndarray:
                break
        else:  # all NumPy (the common case): nothing to do
            return fn(*args, **kwargs)
        func = args[func_slot] if func_slot is not None and func_slot < len(args) else kwargs.get("func", fn.__name__)
        template = like(values)
        args = list(args)
        for (i, p), v in zip(slots, values):
            converted = to_numpy(v, func, p)
            if i < len(args):
                args[i] = converted
            elif p in kwargs:
                kwargs[p] = converted
        return from_numpy(fn(*args, **kwargs), template)

    return wrapper
