"""The exact reference of a case, the elementwise comparison, and where the wrong numbers are.

An element is wrong when ``|got - expected| > tol * max(1, max|expected|)`` with ``tol = 1e-9``
in float64 and ``2e-4`` in float32: far above the rounding of any summation order, far below any
real mistake (a wrong term changes an element by about one product ``|x w|``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .. import api
from .cases import Case

TOLERANCE = {"float64": 1e-9, "float32": 2e-4}

#: The order quantities are checked in; the first failing one is the one shrinking keeps.
ORDER = ("output", "grad_input", "grad_weight", "grad_bias")


def reference(case: Case, data: dict) -> dict[str, np.ndarray]:
    """convgrad's exact results for ``case`` (computed in float64 whatever the dtype)."""
    x, w, b, dy = (data[k].astype(np.float64) for k in ("x", "w", "b", "dy"))
    kw = case.kwargs()
    if case.op == "forward":
        return {"output": api.conv(x, w, b, **kw)}
    if case.op == "transposed_forward":
        return {"output": api.conv_transpose(x, w, b, **kw)}
    if case.op == "backward":
        g = api.conv_backward(dy, x, w, **kw)
    else:
        g = api.conv_transpose_backward(dy, x, w, **kw)
    return {"grad_input": g.input, "grad_weight": g.weight, "grad_bias": g.bias}


@dataclass
class Finding:
    """How one quantity of one case failed."""

    quantity: str
    kind: str                 # exception | timeout | type | shape | nonfinite | values
    message: str
    expected: np.ndarray | None = None   # convgrad's layout
    got: np.ndarray | None = None        # the user's result turned to convgrad's layout (same shape)
    wrong: np.ndarray | None = None      # boolean mask of the wrong elements
    got_shape: tuple | None = None       # the user's shape, as returned
    got_raw: np.ndarray | None = None    # a result of the wrong shape, in convgrad's layout (for its values)
    where: str = ""
    error: BaseException | None = field(default=None, repr=False)

    @property
    def signature(self) -> tuple[str, str]:
        """What "fails the same way" means while shrinking."""
        return (self.quantity, self.kind)

    @property
    def n_wrong(self) -> int:
        return int(self.wrong.sum()) if self.wrong is not None else 0

    @property
    def n_total(self) -> int:
        return int(self.expected.size) if self.expected is not None else 0

    def worst(self) -> tuple[tuple[int, ...], float, float] | None:
        """(index, expected, got) of the element with the largest error, in convgrad's layout."""
        if self.wrong is None or not self.wrong.any():
            return None
        err = np.where(self.wrong, np.abs(np.nan_to_num(self.got - self.expected, nan=np.inf)), -1.0)
        idx = tuple(int(i) for i in np.unravel_index(int(np.argmax(err)), err.shape))
        return idx, float(self.expected[idx]), float(self.got[idx])


def wrong_mask(expected: np.ndarray, got: np.ndarray, tol: float) -> np.ndarray:
    scale = max(1.0, float(np.max(np.abs(expected)))) if expected.size else 1.0
    with np.errstate(invalid="ignore"):
        bad = ~(np.abs(got - expected) <= tol * scale)
    return bad


def compare(quantity: str, expected: np.ndarray, got, user_name_shape, tol: float) -> Finding | None:
    """``None`` when ``got`` (already in convgrad's layout, or the raw object) equals ``expected``."""
    if not isinstance(got, np.ndarray):
        return Finding(quantity, "type", f"{quantity} is a {type(got).__name__}, not a numpy.ndarray "
                       f"(expected shape {user_name_shape})", expected=expected)
    if got.shape != expected.shape:
        return Finding(quantity, "shape", f"{quantity} has shape {got.shape}, expected {user_name_shape}",
                       expected=expected, got_shape=got.shape)
    try:
        if got.dtype.kind not in "fiu":
            raise TypeError(got.dtype)
        g = got.astype(np.float64)
    except (TypeError, ValueError):
        return Finding(quantity, "type", f"{quantity} has dtype {got.dtype}, not a real floating-point array",
                       expected=expected)
    bad = wrong_mask(expected, g, tol)
    if not bad.any():
        return None
    finite = np.isfinite(g)
    if not finite.all():
        kind, what = "nonfinite", f"{int((~finite).sum())} NaN/inf element(s)"
    else:
        kind, what = "values", "wrong values"
    return Finding(quantity, kind, f"{quantity}: {what} in {int(bad.sum())} of {bad.size} elements",
                   expected=expected, got=g, wrong=bad)


# ------------------------------------------------------------------------------------------------
# where the wrong numbers are
# ------------------------------------------------------------------------------------------------


def spatial_map(mask: np.ndarray, max_width: int = 24) -> list[str]:
    """The wrong elements over the spatial (or kernel) positions, one character per position.

    ``#``: wrong in every (sample, channel) at that position; ``+``: in some; ``.``: in none.
    A 3-D grid is shown as one 2-D slice per index of its first spatial dim.
    """
    spatial = mask.reshape(-1, *mask.shape[2:])  # (N*C, *S)
    anyw, allw = spatial.any(axis=0), spatial.all(axis=0)
    grid = np.where(allw, "#", np.where(anyw, "+", "."))
    if grid.ndim == 1:
        grid = grid[None, :]
    lines: list[str] = []
    if grid.ndim == 2:
        lines += ["".join(row[:max_width]) for row in grid[:max_width]]
    else:
        for i, plane in enumerate(grid.reshape(grid.shape[0], -1, grid.shape[-1])):
            lines.append(f"[{i}]")
            lines += ["".join(row[:max_width]) for row in plane[:max_width]]
    return lines


def axis_names(ndim: int, kernel: bool = False) -> list[str]:
    """Readable names of the spatial axes: 'W (spatial dim 1)', or the kernel's 'kW (kernel dim 1)'."""
    letters = {1: ("L",), 2: ("H", "W"), 3: ("D", "H", "W")}.get(ndim, tuple(f"S{d}" for d in range(ndim)))
    if kernel:
        return [f"k{letters[d]} (kernel dim {d})" for d in range(ndim)]
    return [f"{letters[d]} (spatial dim {d})" for d in range(ndim)]


def _runs(indices: list[int], n: int, name: str) -> str | None:
    """'the last 2 rows of dim 0' style phrases for a set of indices along one axis."""
    s = sorted(indices)
    if not s or len(s) == n:
        return None
    if s == list(range(n - len(s), n)):
        return f"only the last {len(s)} of {n} positions along {name}"
    if s == list(range(len(s))):
        return f"only the first {len(s)} of {n} positions along {name}"
    return f"only positions {s} of {n} along {name}"


def describe(finding: Finding, case: Case) -> list[str]:
    """Plain-words patterns of the wrong elements (what a reader would notice in the map)."""
    out: list[str] = []
    m = finding.wrong
    if m is None:
        return out
    if m.all():
        out.append(f"every element is wrong ({m.size} of {m.size})")
    lead = ("sample", "channel") if finding.quantity in ("output", "grad_input") else ("output channel", "input channel")
    if finding.quantity == "grad_bias":
        lead = ("channel",)
    for axis, name in enumerate(lead):
        if m.ndim > axis and m.shape[axis] > 1:
            idx = [i for i in range(m.shape[axis]) if np.take(m, i, axis=axis).any()]
            if len(idx) < m.shape[axis]:
                out.append(f"only {name}(s) {idx} of {m.shape[axis]} are wrong")
    if finding.quantity != "grad_bias":
        spatial = m.reshape(-1, *m.shape[2:]).any(axis=0)
        names = axis_names(spatial.ndim, kernel=finding.quantity == "grad_weight")
        for d in range(spatial.ndim):
            other = tuple(a for a in range(spatial.ndim) if a != d)
            idx = [int(i) for i in np.nonzero(spatial.any(axis=other) if other else spatial)[0]]
            phrase = _runs(idx, spatial.shape[d], names[d])
            if phrase:
                out.append(phrase)
    if finding.quantity in ("grad_input", "output") and m.any():
        from . import geometry as geo
        spatial = m.reshape(-1, *m.shape[2:]).any(axis=0)
        if (case.op, finding.quantity) in (("backward", "grad_input"), ("transposed_forward", "output")):
            cover = geo.coverage(geo.geometry(case)) >= 2
            if cover.any() and np.array_equal(spatial, cover):
                out.append("exactly the cells covered by two or more windows are wrong")
        right = ~spatial
        if right.any() and spatial.any():
            block = tuple(int(np.nonzero(right.any(axis=tuple(a for a in range(right.ndim) if a != d)))[0].max()) + 1
                          for d in range(right.ndim))
            corner = np.zeros_like(right)
            corner[tuple(slice(0, b) for b in block)] = True
            if np.array_equal(right, corner) and not corner.all():
                out.append(f"everything outside the top-left {'x'.join(map(str, block))} block is wrong")
    got, exp = finding.got, finding.expected
    if got is not None and exp is not None and np.all(np.isfinite(got)):
        scale = max(1.0, float(np.max(np.abs(exp))))
        worst = float(np.max(np.abs(got - exp))) / scale
        if worst < 1e-4:
            out.append(f"the errors are tiny (at most {worst:.1e} of the largest value): your code computes or "
                       "accumulates in float32 (or lower); check it with dtype='float32' (--dtype float32) if that "
                       "is intended")
    if got is not None and exp is not None:
        sel = m & np.isfinite(got)
        if sel.any() and np.all(got[sel] == 0):
            out.append("your result is 0 at every wrong element")
        if sel.sum() > 1 and np.all(np.abs(exp[sel]) > 1e-12):
            ratio = got[sel] / exp[sel]
            if np.allclose(ratio, ratio.flat[0], rtol=1e-6) and abs(ratio.flat[0]) > 1e-12:
                out.append(f"your values are {ratio.flat[0]:.6g} x the expected ones")
    return out
