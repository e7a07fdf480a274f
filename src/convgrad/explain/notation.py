"""Small formatting helpers for index formulas with the numbers of a configuration filled in."""

from __future__ import annotations

__all__ = ["affine", "index", "span", "ceil_div", "floor_div", "names", "plural"]


def affine(terms, const: int = 0) -> str:
    """``sum(coef*var) + const`` as text: ``affine([(2, "i"), (1, "k")], -1) == "2*i + k - 1"``.

    ``terms`` holds ``(coef, var)`` pairs; zero coefficients are dropped, a coefficient of 1 or -1
    is written as a sign only.
    """
    terms = [(c, v) for c, v in terms if c != 0]
    if terms and const > 0 and terms[0][0] < 0:
        # "1 - 2*k" reads better than "-2*k + 1"
        return str(const) + "".join(
            (" - " if c < 0 else " + ") + ("" if abs(c) == 1 else f"{abs(c)}*") + v for c, v in terms
        )
    out = ""
    for coef, var in terms:
        if coef == 0:
            continue
        mag = "" if abs(coef) == 1 else f"{abs(coef)}*"
        if not out:
            out = ("-" if coef < 0 else "") + mag + var
        else:
            out += (" - " if coef < 0 else " + ") + mag + var
    if not out:
        return str(const)
    if const:
        out += f" - {-const}" if const < 0 else f" + {const}"
    return out


def _paren(expr: str) -> str:
    return expr if expr.replace("_", "").isalnum() else f"({expr})"


def ceil_div(expr: str, divisor: int) -> str:
    """``ceil(expr/divisor)``, simplified when the divisor is 1."""
    return expr if divisor == 1 else f"ceil({_paren(expr)}/{divisor})"


def floor_div(expr: str, divisor: int) -> str:
    return expr if divisor == 1 else f"floor({_paren(expr)}/{divisor})"


def plural(count: int, one: str, many: str) -> str:
    return one if count == 1 else many


def index(name: str, parts) -> str:
    return f"{name}[{', '.join(str(p) for p in parts)}]"


def span(lo, hi) -> str:
    return f"{lo}..{hi}"


def names(prefix: str, ndim: int) -> list[str]:
    """Per-dim index names: ``i`` in 1-D, ``i0, i1, ...`` otherwise."""
    return [prefix] if ndim == 1 else [f"{prefix}{d}" for d in range(ndim)]
