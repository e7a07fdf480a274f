"""``convgrad.verify``: check a user's own convolution code, shrink the failure, name the bug.

:func:`verify` runs the user's function over small configurations chosen to visit every region
where hand-written convolution code commonly goes wrong, compares every element with convgrad's
exact result, shrinks the first failure to a minimal configuration, shows where the wrong numbers
are and names the likely mistake (:data:`BUGS`) with the correct formula and the fix.
"""

from __future__ import annotations

import numpy as np

from ..layout import coupled_channels_last
from .calling import from_user, to_user
from .cases import OPS, Case
from .compare import reference
from .diagnosis import BUGS
from .report import VerifyReport
from .sweep import verify

__all__ = ["BUGS", "OPS", "VerifyReport", "expected", "verify"]


def expected(op: str, *arrays, channels_last: bool = False, stride=1, padding=0, dilation=1, groups=1,
             output_padding=0, data_format: str | None = None, weight_format: str | None = None):
    """convgrad's exact result of ``op`` on the user's arrays, in the user's layout.

    Takes the same positional arrays as the user's function for ``op`` (``x, w[, b]`` for the
    forward ops, ``dy, x, w`` for the backward ones) and returns ``y`` or ``(dx, dw, db)``.
    ``channels_last`` or ``data_format``/``weight_format`` as for :func:`verify`.

    Examples
    --------
    >>> import numpy as np
    >>> x, w = np.arange(8.0).reshape(1, 1, 8), np.array([[[1.0, -1.0]]])
    >>> expected("forward", x, w, stride=3)
    array([[[-1., -1., -1.]]])
    """
    channels_last = coupled_channels_last(channels_last, data_format, weight_format, "expected")
    if op not in OPS:
        raise ValueError(f"expected: op must be one of {', '.join(map(repr, OPS))}, got {op!r}")
    names = ("x", "w", "b") if op.endswith("forward") else ("dy", "x", "w")
    if len(arrays) not in ((2, 3) if op.endswith("forward") else (3,)):
        raise TypeError(f"expected: op {op!r} takes the arrays ({', '.join(names)}), got {len(arrays)}")
    data = {n: from_user(n, np.asarray(a, dtype=np.float64), channels_last) for n, a in zip(names, arrays)}
    w = data["w"]
    x = data["x"]
    ndim = w.ndim - 2
    transposed = op.startswith("transposed")
    cout = w.shape[1] * groups if transposed else w.shape[0]

    def dims(v):
        return v if isinstance(v, (tuple, str)) else (v,) * ndim

    case = Case(op, x.shape[0], x.shape[1], cout, groups, x.shape[2:], w.shape[2:], dims(stride), dims(padding),
                dims(dilation), dims(output_padding))
    data.setdefault("b", np.zeros(cout))
    if "dy" not in data:
        data["dy"] = np.zeros(case.output_shape)
    result = reference(case, data)
    if "output" in result:
        return to_user("y", result["output"], channels_last)
    return tuple(to_user(k, result[k], channels_last) for k in ("grad_input", "grad_weight", "grad_bias"))
