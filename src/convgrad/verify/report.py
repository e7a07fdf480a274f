"""``VerifyReport``: what ``verify`` found, as text, as data, as a picture and in a notebook."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import numpy as np

from .._display import mime_bundle
from .advice import explanation
from .calling import user_shape
from .cases import random_key
from .compare import TOLERANCE, describe, spatial_map
from .diagnosis import BUGS, Evidence

RESULT_INDEX = {"grad_input": 0, "grad_weight": 1, "grad_bias": 2, "output": 0}
_NAMES = {"output": "y", "grad_input": "dX", "grad_weight": "dW", "grad_bias": "db"}


@dataclass
class VerifyReport:
    """The result of :func:`convgrad.verify`.

    Attributes
    ----------
    ok : bool
        True when every configuration tried gave convgrad's results.
    configs_checked : int
        How many configurations the user's function was run on (sweep and shrinking).
    minimal : dict or None
        The smallest failing configuration: ``input_shape``, ``weight_shape`` (the user's layout) and
        the parameters the function declares (``stride``, ``padding``, ``dilation``, ``groups``,
        ``output_padding``) as they were passed.
    quantity : str or None
        What was wrong first: ``output``, ``grad_input``, ``grad_weight``, ``grad_bias``, or ``call``
        when the call itself failed (an exception, a time-out, a result that is not a tuple).
    exception : str or None
        ``Type: message (file:line: code)`` when the function raised.
    diagnosis : list of str
        Ids from :data:`convgrad.verify.BUGS`, most likely first; empty when no known mistake matches.
    """

    ok: bool
    op: str
    fn_name: str
    source: str
    declared: tuple
    dims: int
    channels_last: bool
    per_dim: bool
    dtype: str
    configs_checked: int
    seconds: float
    seed: int = 0
    evidence: Evidence | None = field(default=None, repr=False)
    first: Evidence | None = field(default=None, repr=False)
    region: str = ""
    shrink_steps: int = 0
    diagnosis: list = field(default_factory=list)
    explains: dict = field(default_factory=dict)
    params: dict = field(default_factory=dict)
    fn_module: str | None = None
    takes_bias: bool = False
    not_visited: list = field(default_factory=list)
    hint: str = ""

    # -- the public summary ------------------------------------------------------------------------

    @property
    def finding(self):
        return self.evidence.findings[0] if self.evidence else None

    @property
    def quantity(self) -> str | None:
        return self.finding.quantity if self.finding else None

    @property
    def exception(self) -> str | None:
        f = self.finding
        if f is None or f.kind != "exception":
            return None
        return f"{f.message} ({f.where})" if f.where else f.message

    @property
    def minimal(self) -> dict | None:
        if self.evidence is None:
            return None
        case = self.evidence.case
        out = {"input_shape": user_shape("x", case.input_shape, self.channels_last),
               "weight_shape": user_shape("w", case.weight_shape, self.channels_last)}
        out.update(self.params)
        return out

    # -- text ----------------------------------------------------------------------------------------

    def _config_line(self) -> str:
        m = self.minimal
        parts = [f"input {m['input_shape']}", f"weight {m['weight_shape']}"]
        parts += [f"{k} {v!r}" for k, v in m.items() if k not in ("input_shape", "weight_shape")]
        return ", ".join(parts)

    def snippet(self) -> str:
        """A ready-to-paste reproduction of the minimal failing call, with convgrad's expected result."""
        if self.evidence is None:
            return ""
        case = self.evidence.case
        operands = {"forward": ["x", "w"], "transposed_forward": ["x", "w"],
                    "backward": ["dy", "x", "w"], "transposed_backward": ["dy", "x", "w"]}[self.op]
        lines = ["import numpy as np", "from convgrad.verify import expected"]
        if self.fn_module and self.fn_module not in ("__main__", "builtins"):
            folder = os.path.dirname(self.source.rsplit(":", 1)[0]) if self.source != "?" else ""
            if folder:
                lines[0] = "import sys\nimport numpy as np"
                lines.append(f"sys.path.insert(0, {folder!r})")
            if self.fn_name.isidentifier():
                lines.append(f"from {self.fn_module} import {self.fn_name}")
        # the very numbers verify used: its seed for this case, drawn in its order, in convgrad's layout
        lines.append(f"rng = np.random.default_rng({random_key(case, self.seed)})")
        for name, shape in (("x", case.input_shape), ("w", case.weight_shape), ("b", (case.output_shape[1],)),
                            ("dy", case.output_shape)):
            lines.append(f"{name} = rng.standard_normal({shape}).astype({self.dtype!r})")
        if self.channels_last:
            nd = len(case.size)
            lines.append("x, dy = np.moveaxis(x, 1, -1), np.moveaxis(dy, 1, -1)   # (N, *spatial, C)")
            lines.append(f"w = np.transpose(w, {(*range(2, 2 + nd), 1, 0)})   # (*kernel, in, out)")
        args = list(operands) + (["b"] if self.takes_bias else [])
        kw = "".join(f", {k}={v!r}" for k, v in self.params.items())
        call = self.fn_name if self.fn_name.isidentifier() else "fn"   # a lambda, a partial, an instance
        if call == "fn":
            lines.append("# fn = the function you checked")
        lines.append(f"got = {call}({', '.join(args)}{kw})")
        cl = ", channels_last=True" if self.channels_last else ""
        lines.append(f"want = expected({self.op!r}, {', '.join(args)}{kw}{cl})")
        f = self.finding
        if f is not None and f.kind in ("values", "nonfinite", "shape"):
            pick = "" if self.op.endswith("forward") else f"[{RESULT_INDEX[f.quantity]}]"
            scale = max(1.0, float(abs(f.expected).max())) if f.expected is not None and f.expected.size else 1.0
            lines.append(f"np.testing.assert_allclose(got{pick}, want{pick}, rtol=0, "
                         f"atol={TOLERANCE[self.dtype] * scale:.3g})   # fails: {f.quantity}")
        return "\n".join(lines)

    def text(self, *, seconds: bool = True) -> str:
        """The report for a reader; ``seconds=False`` leaves the run time out (for documents that must not change)."""
        layout = "channels last" if self.channels_last else "channels first"
        head = (f"convgrad verify: {self.fn_name} ({self.source}), op {self.op}, {self.dims}-D, {layout}, "
                f"{self.dtype}; varied: {', '.join(self.declared) or 'nothing (no stride/padding/... keywords)'}")
        plural = "" if self.configs_checked == 1 else "s"
        lines = [head, f"checked {self.configs_checked} configuration{plural}" + (f" in {self.seconds:.1f} s" if seconds else "")]
        if self.ok:
            lines.append("OK: every configuration matched convgrad's exact result "
                         f"(elementwise, tolerance {TOLERANCE[self.dtype]:g} of the largest value)")
            if self.not_visited:
                lines.append(f"but the time limit ran out before the regions {', '.join(self.not_visited)}: "
                             "raise time_limit (--time-limit) to check them")
            return "\n".join(lines)
        f = self.finding
        lines.append(f"FAIL: {f.message}" + (f"\n  raised at {f.where}" if f.where else ""))
        if self.hint:
            lines.append(f"note: {self.hint}")
        if f.kind == "timeout":
            how = "not shrunk: every try would take the whole per-call time"
        else:
            how = f"{self.shrink_steps} shrinking step{'' if self.shrink_steps == 1 else 's'} from the first failure"
        lines.append(f"minimal failing configuration ({how}; first failure in the '{self.region}' region):")
        lines.append(f"  {self._config_line()}")
        lines.append("reproduce it:")
        lines += ["  " + s for s in self.snippet().splitlines()]
        others = [g for g in self.evidence.findings[1:]]
        if others:
            lines.append("also wrong in this configuration: " + "; ".join(g.message for g in others))
        if f.kind in ("values", "nonfinite"):
            lines += self._where_lines(f)
        if self.diagnosis:
            lines.append("diagnosis (most likely first): " + ", ".join(self.diagnosis))
            for bug in self.diagnosis:
                what = ", ".join(self.explains.get(bug, []))
                lines.append(f"  [{bug}] {BUGS[bug]}" + (f" (explains: {what})" if what and what != f.quantity else ""))
                lines += _wrap(explanation(bug, self.evidence.case), "      ")
        elif f.kind in ("values", "nonfinite"):
            lines.append("diagnosis: no known mistake matches; the map and patterns above say where the numbers go wrong")
        else:
            lines.append(f"diagnosis: no known mistake explains this {f.kind}; run the call above to see it happen")
        return "\n".join(lines)

    def _where_lines(self, f) -> list[str]:
        lines = []
        worst = f.worst()
        if worst is not None:
            idx, exp, got = worst
            uidx = _user_index(f.quantity, idx, self.channels_last)
            name = _NAMES[f.quantity]
            lines.append(f"worst element: {name}[{', '.join(map(str, uidx))}]: expected {_num(exp, got)}, "
                         f"got {_num(got, exp)}")
            terms = self._terms(f.quantity, idx)
            if terms:
                lines.append(f"  it should sum {len(terms)} term{'' if len(terms) == 1 else 's'}: " + " + ".join(terms))
            elif terms is not None:
                lines.append("  no window reads this element: its gradient is exactly 0")
        if f.quantity != "grad_bias":
            axes = "kernel positions" if f.quantity == "grad_weight" else "positions"
            lines.append(f"wrong elements over the {axes} (#: wrong in every sample and channel, +: in some, .: none):")
            lines += ["  " + s for s in spatial_map(f.wrong)]
        for phrase in describe(f, self.evidence.case):
            lines.append(f"  - {phrase}")
        return lines

    def _terms(self, quantity: str, idx) -> list[str] | None:
        from ..explain import explain
        from ..explain.explanation import OPERANDS
        case = self.evidence.case
        try:
            ex = explain(case.input_shape, case.weight_shape, case.stride, case.padding, case.dilation,
                         case.groups, transposed=case.transposed, output_padding=case.output_padding)
            pairs = ex.contributors(quantity, idx)
        except (ValueError, TypeError):
            return None
        a, b, _ = OPERANDS[quantity]
        out = []
        for term in pairs[:12]:
            first, second = (term, None) if b is None else term
            left = "0 (padding)" if first is None else f"{a}[{', '.join(map(str, first))}]"
            out.append(left if b is None else f"{left}*{b}[{', '.join(map(str, second))}]")
        if len(pairs) > 12:
            out.append(f"... ({len(pairs) - 12} more)")
        return out

    # -- data, pictures, notebooks -------------------------------------------------------------------

    def to_dict(self) -> dict:
        out = {
            "ok": self.ok, "op": self.op, "function": self.fn_name, "source": self.source,
            "declared": list(self.declared), "dims": self.dims, "channels_last": self.channels_last,
            "per_dim": self.per_dim, "dtype": self.dtype, "configs_checked": self.configs_checked,
            "seconds": round(self.seconds, 3),
        }
        if self.ok:
            out["not_visited"] = list(self.not_visited)
            return out
        f = self.finding
        out.update({
            "quantity": f.quantity, "kind": f.kind, "message": f.message, "exception": self.exception,
            "minimal": {k: (list(v) if isinstance(v, tuple) else v) for k, v in self.minimal.items()},
            "region": self.region, "shrink_steps": self.shrink_steps,
            "diagnosis": [{"id": b, "mistake": BUGS[b], "explains": self.explains.get(b, []),
                           "explanation": explanation(b, self.evidence.case)} for b in self.diagnosis],
            "reproduce": self.snippet(),
            "hint": self.hint or None,
        })
        if f.wrong is not None:
            worst = f.worst()
            out.update({"wrong": int(f.n_wrong), "total": int(f.n_total),
                        "wrong_map": spatial_map(f.wrong) if f.quantity != "grad_bias" else None,
                        "patterns": describe(f, self.evidence.case)})
            if worst is not None:
                out["worst"] = {"index": list(_user_index(f.quantity, worst[0], self.channels_last)),
                                "expected": worst[1], "got": worst[2]}
        return out

    def figure(self, path=None):
        """The expected values, the user's, and the wrong elements of the failing quantity (needs matplotlib)."""
        try:
            from matplotlib.figure import Figure   # no pyplot: leaves the caller's backend alone
        except ImportError:
            raise ImportError("VerifyReport.figure needs matplotlib: pip install 'convgrad[explain]'") from None
        f = self.finding
        if f is None or f.wrong is None or f.quantity == "grad_bias":
            raise ValueError("VerifyReport.figure: nothing to draw (no wrong elements over positions)")
        exp, got = f.expected, f.got
        # the (sample, channel) pair with the most wrong elements, and its plane
        counts = f.wrong.reshape(*f.wrong.shape[:2], -1).sum(axis=2)
        n, c = (int(i) for i in np.unravel_index(int(np.argmax(counts)), counts.shape))
        planes = [exp[n, c], got[n, c], f.wrong[n, c]]
        planes = [p.reshape(p.shape[0], -1) if p.ndim > 2 else (p[None] if p.ndim == 1 else p) for p in planes]
        name = _NAMES[f.quantity]
        titles = (f"expected {name}[{n}, {c}]", f"yours {name}[{n}, {c}]", "wrong elements (red)")
        lo = float(min(np.nanmin(planes[0]), np.nanmin(np.where(np.isfinite(planes[1]), planes[1], np.nan))))
        hi = float(max(np.nanmax(planes[0]), np.nanmax(np.where(np.isfinite(planes[1]), planes[1], np.nan))))
        h, w = planes[0].shape
        fig = Figure(figsize=(min(14.0, 3 * max(3.0, 0.45 * w) + 1.5), max(2.6, 0.45 * h + 1.6)))
        axes = fig.subplots(1, 3)
        for k, (ax, plane, title) in enumerate(zip(axes, planes, titles)):
            if k < 2:
                im = ax.imshow(plane, cmap="viridis", vmin=lo, vmax=hi)   # one scale: equal colours, equal values
            else:
                im = ax.imshow(plane.astype(float), cmap="Reds", vmin=0, vmax=1)
            if h * w <= 144 and k < 2:
                for (i, j), v in np.ndenumerate(plane):
                    ax.text(j, i, f"{v:.2g}", ha="center", va="center", fontsize=7,
                            color="white" if v < (lo + hi) / 2 else "black")
            ax.set_title(title, fontsize=10)
            ax.set_xticks(range(w))
            ax.set_yticks(range(h))
            ax.tick_params(labelsize=8)
        fig.colorbar(axes[0].images[0], ax=list(axes[:2]), fraction=0.03)
        fig.suptitle(f"{self.fn_name}: {f.message}", fontsize=10)
        if path is None:
            return fig
        fig.savefig(path, dpi=110)
        return str(path)

    def _repr_mimebundle_(self, include=None, exclude=None):
        """Jupyter: the text, static HTML (the verdict open, the rest folded) and the wrong-element figure."""
        text = self.text()
        verdict, _, rest = text.partition("\nminimal failing configuration")
        sections = [("verdict", verdict)]
        if rest:
            sections.append(("minimal configuration, where the numbers go wrong, diagnosis",
                             "minimal failing configuration" + rest))
        f = self.finding
        drawable = f is not None and f.wrong is not None and f.quantity != "grad_bias"
        title = f"convgrad verify: {self.fn_name} ({self.op}): " + ("OK" if self.ok else f"FAIL ({self.quantity})")
        return mime_bundle(text, title, sections, make_figure=self.figure if drawable else None,
                           include=include, exclude=exclude)

    def __repr__(self) -> str:
        state = "ok" if self.ok else f"FAIL {self.quantity} diagnosis={self.diagnosis}"
        return f"<VerifyReport {self.fn_name} {self.op}: {state}, {self.configs_checked} configurations>"


def _num(value: float, other: float) -> str:
    """``value`` with enough digits to differ from ``other`` in print (6 unless they agree that far)."""
    for digits in (6, 10, 17):
        text = f"{value:.{digits}g}"
        if text != f"{other:.{digits}g}":
            return text
    return f"{value:.17g}"


def _user_index(quantity: str, idx: tuple, channels_last: bool) -> tuple:
    if not channels_last or quantity == "grad_bias":
        return idx
    if quantity == "grad_weight":
        return (*idx[2:], idx[1], idx[0])
    return (idx[0], *idx[2:], idx[1])


def _wrap(text: str, indent: str, width: int = 100) -> list[str]:
    import textwrap
    return textwrap.wrap(text, width=width, initial_indent=indent, subsequent_indent=indent)

