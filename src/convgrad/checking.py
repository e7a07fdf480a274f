"""Check one configuration end to end: output and every gradient, against independent references.

For a random input, weight, bias and upstream gradient ``dy`` (fixed seed), with the scalar loss
``L = sum(conv(x, w, b) * dy)`` whose gradients are exactly the ones ``conv_backward`` returns:

- every quantity against the ``direct`` reference algorithm (plain loops, no shared code);
- every gradient against central finite differences of ``L``: along one random direction (which
  checks the whole gradient at once: ``(L(x + eps v) - L(x - eps v)) / 2 eps = <dL/dx, v>``) and
  entry by entry for a few random entries;
- and, when PyTorch is installed and can express the configuration, against PyTorch.

Used by ``convgrad check``; errors are relative: ``max |a - b| / max(1, max |b|)``.
"""

from __future__ import annotations

import dataclasses
from typing import Callable

import numpy as np

from . import api
from .spec import conv_spec, conv_transpose_spec

QUANTITIES = ("output", "grad_input", "grad_weight", "grad_bias")


@dataclasses.dataclass
class Row:
    quantity: str
    shape: tuple[int, ...]
    max_abs: float
    vs_direct: float | None = None
    vs_fd_direction: float | None = None
    vs_fd_entries: float | None = None
    vs_torch: float | None = None

    def worst(self) -> float:
        values = [v for v in (self.vs_direct, self.vs_fd_direction, self.vs_fd_entries, self.vs_torch) if v is not None]
        return max(values, default=0.0)


@dataclasses.dataclass
class Report:
    description: str
    algorithm: str
    dtype: str
    rows: list[Row]
    tolerance: float
    fd_entries: int
    #: why a column is empty (e.g. "vs PyTorch: PyTorch is not installed"), one sentence each
    notes: list[str] = dataclasses.field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(row.worst() <= self.tolerance for row in self.rows)

    def to_dict(self) -> dict:
        return {
            "configuration": self.description,
            "algorithm": self.algorithm,
            "dtype": self.dtype,
            "tolerance": self.tolerance,
            "ok": self.ok,
            "notes": list(self.notes),
            "rows": [dataclasses.asdict(r) | {"shape": list(r.shape)} for r in self.rows],
        }


def _rel(a: np.ndarray, b: np.ndarray) -> float:
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if a.size == 0:
        return 0.0
    return float(np.max(np.abs(a - b)) / max(1.0, float(np.max(np.abs(b)))))


def check_configuration(
    input_shape,
    weight_shape,
    *,
    stride=1,
    padding=0,
    dilation=1,
    groups=1,
    padding_mode="zeros",
    transposed=False,
    output_padding=0,
    bias=True,
    dtype="float64",
    algorithm="auto",
    seed=0,
    fd_entries=8,
    eps=None,
    torch_check=True,
    progress: Callable[[int, int], None] | None = None,
) -> Report:
    """Compute the output and gradients of one configuration and compare them with references.

    Returns a :class:`Report` whose ``ok`` is true when every error is within the tolerance
    (``1e-8`` in float64; in float32 the finite differences are taken in float64 on the same
    data and the tolerance is ``1e-4``). ``progress(done, total)`` is called after each step
    (a forward or backward pass, a finite-difference evaluation, PyTorch's pass).
    """
    if isinstance(fd_entries, bool) or not isinstance(fd_entries, (int, np.integer)) or fd_entries < 0:
        raise ValueError(f"check_configuration: fd_entries must be an integer >= 0, got {fd_entries!r}")
    dtype = np.dtype(dtype)
    rng = np.random.default_rng(seed)
    input_shape = tuple(input_shape)
    weight_shape = tuple(weight_shape)
    batched = (1, *input_shape) if len(input_shape) == len(weight_shape) - 1 else input_shape
    if transposed:
        kwargs = dict(stride=stride, padding=padding, output_padding=output_padding, groups=groups, dilation=dilation)
        forward, backward = api.conv_transpose, api.conv_transpose_backward
        spec = conv_transpose_spec(batched, weight_shape, stride, padding, output_padding, groups, dilation)
        out_channels = spec.in_channels
        description = f"conv_transpose: input {input_shape}, weight {weight_shape}, " + _describe(kwargs)
    else:
        kwargs = dict(stride=stride, padding=padding, dilation=dilation, groups=groups, padding_mode=padding_mode)
        forward, backward = api.conv, api.conv_backward
        spec = conv_spec(batched, weight_shape, stride, padding, dilation, groups, padding_mode)
        out_channels = spec.out_channels
        description = f"conv: input {input_shape}, weight {weight_shape}, " + _describe(kwargs)

    gradients = 3 if bias else 2
    total = 4 + gradients * 2 * (1 + fd_entries) + (1 if torch_check else 0)
    done = 0

    def advance(n: int = 1) -> None:
        nonlocal done
        done += n
        if progress is not None:
            progress(done, total)

    x = rng.standard_normal(input_shape).astype(dtype)
    w = rng.standard_normal(weight_shape).astype(dtype)
    b = rng.standard_normal(out_channels).astype(dtype) if bias else None
    y = forward(x, w, b, **kwargs, algorithm=algorithm)
    advance()
    dy = rng.standard_normal(y.shape).astype(dtype)
    grads = backward(dy, x, w, **kwargs, algorithm=algorithm)
    advance()
    values = {"output": y, "grad_input": grads.input, "grad_weight": grads.weight, "grad_bias": grads.bias}

    ref_y = forward(x, w, b, **kwargs, algorithm="direct")
    advance()
    ref = backward(dy, x, w, **kwargs, algorithm="direct")
    advance()
    refs = {"output": ref_y, "grad_input": ref.input, "grad_weight": ref.weight, "grad_bias": ref.bias}

    # Finite differences always in float64, on the same data.
    x64, w64, dy64 = (a.astype(np.float64) for a in (x, w, dy))
    b64 = None if b is None else b.astype(np.float64)

    def loss(xx, ww, bb):
        return float(np.sum(forward(xx, ww, bb, **kwargs, algorithm=algorithm) * dy64))

    operands = {"grad_input": (0, x64), "grad_weight": (1, w64), "grad_bias": (2, b64)}
    step = eps if eps is not None else 1e-3

    def perturbed(which: int, delta: np.ndarray, sign: float) -> float:
        args = [x64, w64, b64]
        args[which] = args[which] + sign * delta
        value = loss(*args)
        advance()
        return value

    notes = []
    if torch_check:
        torch_values, why = _torch_values(x, w, b, dy, kwargs, transposed)
        advance()
        if torch_values is None:
            notes.append(f"vs PyTorch: {why}")
    else:
        torch_values = None
        notes.append("vs PyTorch: not compared (torch_check=False, --no-torch)")
    if fd_entries == 0:
        notes.append("vs FD entries: no entries asked for (fd_entries=0)")

    rows = []
    for q in QUANTITIES:
        if values[q] is None:
            continue
        v = values[q]
        row = Row(q, tuple(v.shape), float(np.max(np.abs(v), initial=0.0)), vs_direct=_rel(v, refs[q]))
        if q in operands:
            which, base = operands[q]
            g = v.astype(np.float64)
            direction = np.random.default_rng(seed + 1).standard_normal(base.shape)
            fd = (perturbed(which, step * direction, 1) - perturbed(which, step * direction, -1)) / (2 * step)
            exact = float(np.sum(g * direction))
            row.vs_fd_direction = abs(fd - exact) / max(1.0, abs(exact))
            errs = []
            picks = np.random.default_rng(seed + 2).integers(0, base.size, size=min(fd_entries, base.size))
            for flat in picks:
                e = np.zeros(base.size)
                e[flat] = step
                e = e.reshape(base.shape)
                fd = (perturbed(which, e, 1) - perturbed(which, e, -1)) / (2 * step)
                errs.append(abs(fd - g.flat[flat]) / max(1.0, abs(g.flat[flat])))
            row.vs_fd_entries = max(errs, default=0.0)
        if torch_values is not None and torch_values.get(q) is not None:
            row.vs_torch = _rel(v, torch_values[q])
        rows.append(row)
    tolerance = 1e-8 if dtype == np.float64 else (1e-4 if dtype == np.float32 else 3e-2)
    alg_name = algorithm
    if algorithm == "auto":
        from . import algorithms

        # the spec's operations, named as the user sees them (a transposed conv's forward is grad_input)
        ops = (("output", "grad_input"), ("grad_input", "forward"), ("grad_weight", "grad_weight")) if transposed else (
            ("output", "forward"), ("grad_input", "grad_input"), ("grad_weight", "grad_weight"))
        itemsize = np.dtype(np.float32 if dtype == np.float16 else dtype).itemsize
        picks = [(q, algorithms.choose(spec, op, itemsize).name) for q, op in ops]
        if len({name for _, name in picks}) == 1:
            alg_name = f"auto -> {picks[0][1]}"
        else:
            alg_name = "auto -> " + ", ".join(f"{name} ({q})" for q, name in picks)
    advance(total - done)  # the steps skipped (no bias, fewer entries than asked)
    return Report(description, alg_name, str(dtype), rows, tolerance, fd_entries, notes)


def _describe(kwargs: dict) -> str:
    return ", ".join(f"{k} {v!r}" for k, v in kwargs.items())


def _torch_values(x, w, b, dy, kwargs, transposed) -> tuple[dict | None, str]:
    """``(values, "")``: PyTorch's output and gradients, or ``(None, why)`` when it cannot give them."""
    try:
        import torch
        import torch.nn.functional as F
    except ImportError:
        return None, "PyTorch is not installed (pip install torch==2.13.0 for this column)"
    nd = w.ndim - 2
    if nd > 3:
        return None, f"PyTorch has no {nd}-d convolution"
    if x.dtype == np.float16:
        return None, "not compared for float16 (convgrad computes float16 in float32; --dtype float32 compares that)"
    try:
        tx = torch.tensor(x, requires_grad=True)
        tw = torch.tensor(w, requires_grad=True)
        tb = None if b is None else torch.tensor(b, requires_grad=True)
        if transposed:
            fn = (F.conv_transpose1d, F.conv_transpose2d, F.conv_transpose3d)[nd - 1]
            pad = kwargs["padding"]
            if not isinstance(pad, int) and any(not isinstance(p, int) for p in pad):
                return None, "PyTorch's transposed convolution has no asymmetric padding"
            ty = fn(tx, tw, tb, kwargs["stride"], pad, kwargs["output_padding"], kwargs["groups"], kwargs["dilation"])
        else:
            batched = x.ndim == w.ndim
            spec = conv_spec(x.shape if batched else (1, *x.shape), w.shape, kwargs["stride"], kwargs["padding"],
                             kwargs["dilation"], kwargs["groups"], kwargs["padding_mode"])
            pads = []
            for lo, hi in reversed(spec.padding):
                pads += [lo, hi]
            mode = "constant" if spec.padding_mode == "zeros" else spec.padding_mode
            txp = F.pad(tx, pads, mode=mode) if any(pads) else tx
            fn = (F.conv1d, F.conv2d, F.conv3d)[nd - 1]
            ty = fn(txp, tw, tb, kwargs["stride"], 0, kwargs["dilation"], kwargs["groups"])
        ty.backward(torch.tensor(dy))
    except (RuntimeError, NotImplementedError) as exc:
        return None, f"PyTorch refused this configuration ({str(exc).splitlines()[0]})"
    return {
        "output": ty.detach().numpy(),
        "grad_input": tx.grad.numpy(),
        "grad_weight": tw.grad.numpy(),
        "grad_bias": None if tb is None else tb.grad.numpy(),
    }, ""


def format_report(report: Report) -> str:
    """The report as a table for the terminal."""

    def f(v):
        return "-" if v is None else f"{v:.1e}"

    lines = [
        f"convgrad check: {report.description}",
        f"dtype {report.dtype}, algorithm {report.algorithm}; errors are max|a-b| / max(1, max|b|)",
        "",
        f"{'quantity':<12} {'shape':<18} {'max|value|':>10} {'vs direct':>10} {'vs FD dir':>10} "
        f"{'vs FD ' + str(report.fd_entries) + ' ent':>11} {'vs PyTorch':>10}",
    ]
    for r in report.rows:
        lines.append(
            f"{r.quantity:<12} {str(r.shape):<18} {r.max_abs:>10.3g} {f(r.vs_direct):>10} {f(r.vs_fd_direction):>10} "
            f"{f(r.vs_fd_entries):>11} {f(r.vs_torch):>10}"
        )
    lines.append("")
    lines.extend(f"- {note}" for note in report.notes)
    if report.notes:
        lines.append("")
    verdict = "OK" if report.ok else "FAILED"
    lines.append(f"{verdict}: every error {'within' if report.ok else 'NOT within'} {report.tolerance:g}")
    return "\n".join(lines)


__all__ = ["check_configuration", "Report", "Row", "format_report", "QUANTITIES"]
