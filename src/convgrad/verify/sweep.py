"""``verify``: run the user's function over the sweep, shrink the first failure, name the mistake."""

from __future__ import annotations

import numbers
import time

import numpy as np

from ..layout import coupled_channels_last
from .calling import (OPERANDS, RESULTS, call, describe_exception, from_user, read_signature, to_user,
                      user_params, user_shape)
from .cases import OPS, Case, arrays, directed_cases, random_case, shrink_moves
from .compare import TOLERANCE, Finding, compare, reference
from .diagnosis import Evidence, diagnose
from .report import VerifyReport

PADDING_FORMS = ("int", "same", "valid")
#: random configurations tried after the directed ones (when time allows)
RANDOM_CASES = 40


def _check_args(op, dims, dtype, time_limit, padding_forms, seed, channels_last, per_dim, progress):
    for name, value in (("channels_last", channels_last), ("per_dim", per_dim)):
        if not isinstance(value, (bool, np.bool_)):
            raise TypeError(f"verify: {name} must be True or False, got {value!r}")
    if progress is not None and not callable(progress):
        raise TypeError(f"verify: progress must be a callable progress(checked, phase) or None, got {progress!r}")
    if op not in OPS:
        raise ValueError(f"verify: op must be one of {', '.join(map(repr, OPS))}, got {op!r}")
    if isinstance(dims, bool) or not isinstance(dims, (int, np.integer)) or dims not in (1, 2, 3):
        raise ValueError(f"verify: dims must be 1, 2 or 3 (spatial dims), got {dims!r}")
    try:
        name = np.dtype(dtype).name
    except TypeError:
        name = None
    if name not in TOLERANCE:
        raise ValueError(f"verify: dtype must be 'float64' or 'float32', got {dtype!r}")
    if isinstance(time_limit, bool) or not isinstance(time_limit, numbers.Real) or not time_limit > 0:
        raise ValueError(f"verify: time_limit must be a positive number of seconds, got {time_limit!r}")
    if isinstance(padding_forms, str):
        padding_forms = (padding_forms,)
    forms = tuple(padding_forms)
    bad = [f for f in forms if f not in PADDING_FORMS]
    if bad or not forms:
        raise ValueError(f"verify: padding_forms entries must be from {PADDING_FORMS}, got {padding_forms!r}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"verify: seed must be a non-negative integer, got {seed!r}")
    return forms, name


class _Runner:
    """Runs the user's function on cases, within the overall time limit."""

    def __init__(self, fn, op, sig, channels_last, per_dim, dtype, seed, deadline):
        self.fn, self.op, self.sig = fn, op, sig
        self.channels_last, self.per_dim, self.dtype, self.seed = channels_last, per_dim, np.dtype(dtype), seed
        self.tol = TOLERANCE[str(dtype)]
        self.deadline = deadline
        self.slowest = 0.0
        self.checked = 0

    def remaining(self) -> float:
        return self.deadline - time.perf_counter()

    def wanted(self) -> float:
        """Time one call may take: generous against the slowest call so far."""
        return max(2.0, 20 * self.slowest)

    def limit(self) -> float:
        return max(0.05, min(self.remaining(), self.wanted()))

    def run(self, case: Case, *, count: bool = True) -> Evidence | None:
        """The user's function on ``case``; ``None`` when the overall time ran out (``count``: a
        configuration of the sweep or of shrinking, not a diagnosis probe)."""
        data = arrays(case, self.seed, self.dtype)
        if not self.sig.takes_bias:
            data["b"] = np.zeros_like(data["b"])   # the reference then has no bias either
        expected = reference(case, data)
        names = OPERANDS[self.op] + (("b",) if self.sig.takes_bias else ())
        args = tuple(np.array(to_user(n, data[n], self.channels_last)) for n in names)
        params = user_params(case, self.sig.declared, self.per_dim)
        limit = self.limit()
        result = call(self.fn, args, params, limit)
        if result.timed_out and limit < self.wanted():
            return None   # the overall time limit ran out, not the function's own time
        self.checked += count
        if not result.timed_out:
            self.slowest = max(self.slowest, result.seconds)
        findings, got = self._findings(case, result, expected)
        return Evidence(case, data, expected, got, findings, self.tol,
                        probe=lambda other: self.run(other, count=False))

    def _findings(self, case, result, expected) -> tuple[list[Finding], dict]:
        names = RESULTS[self.op]
        if result.timed_out:
            return [Finding("call", "timeout", f"did not return within {self.wanted():.1f} s")], {}
        if result.error is not None:
            return [Finding("call", "exception", describe_exception(result.error), where=result.where,
                            error=result.error)], {}
        value = result.value
        if len(names) == 1:
            values = {names[0]: value}
        else:
            if not isinstance(value, (tuple, list)) or len(value) not in (2, 3):
                what = f"a {type(value).__name__}" + (f" of length {len(value)}" if hasattr(value, "__len__") else "")
                return [Finding("call", "type", f"returned {what}; expected a tuple (dx, dw) or (dx, dw, db)")], {}
            values = dict(zip(names, value))
        findings, got = [], {}
        for name in names:
            if name not in values:
                continue
            exp = expected[name]
            want = user_shape(name, exp.shape, self.channels_last)
            v = values[name]
            if isinstance(v, np.ndarray) and v.ndim == exp.ndim:
                v = from_user(name, v, self.channels_last)
            f = compare(name, exp, v, want, self.tol)
            if f is not None:
                if f.kind == "shape":
                    f.got_shape = v.shape
                    f.got_raw = v if v.dtype.kind in "fiu" else None
                    f.message = f"{name} has shape {values[name].shape}, expected {want}"
                findings.append(f)
            if isinstance(v, np.ndarray) and v.shape == exp.shape:
                got[name] = v
        findings.sort(key=lambda f: ORDER_INDEX.get(f.quantity, 9))
        return findings, got


ORDER_INDEX = {"output": 0, "grad_input": 1, "grad_weight": 2, "grad_bias": 3}


def verify(fn, op: str, *, dims: int = 2, channels_last: bool = False, per_dim: bool = False,
           dtype: str = "float64", seed: int = 0, time_limit: float = 30.0, padding_forms=("int",),
           progress=None, data_format: str | None = None, weight_format: str | None = None) -> VerifyReport:
    """Check a user's own convolution code against convgrad's exact results; shrink and name a failure.

    Parameters
    ----------
    fn : callable
        The user's function. ``op="forward"``: ``fn(x, w, **params) -> y`` or ``fn(x, w, b, **params)``
        (a third positional parameter is the bias, shape ``(C_out,)``). ``op="backward"``:
        ``fn(dy, x, w, **params) -> (dx, dw)`` or ``(dx, dw, db)``. ``"transposed_forward"`` and
        ``"transposed_backward"`` likewise, with PyTorch's transposed weight ``(C_in, C_out/groups, *k)``.
        ``params`` are the keywords ``fn`` declares among ``stride``, ``padding``, ``dilation``,
        ``groups`` (and ``output_padding`` for the transposed ops): only those are varied.
    op : {"forward", "backward", "transposed_forward", "transposed_backward"}
    dims : {1, 2, 3}
        Number of spatial dims.
    channels_last : bool
        Arrays ``(N, *spatial, C)`` and weights ``(*k, C_in/groups, C_out)`` (HWIO; transposed:
        ``(*k, C_out/groups, C_in)``) instead of PyTorch's layouts.
    data_format, weight_format : str, optional
        The same, in :func:`convgrad.conv`'s words: ``data_format="channels_last"`` (or ``"NHWC"``…)
        with ``weight_format="IO"`` (or ``"HWIO"``…) is ``channels_last=True``; either one alone
        implies the other. A mix (channels-last data with ``OI`` weights) is a ``ValueError``.
    per_dim : bool
        Pass stride, padding, dilation (and output_padding) as per-dim tuples, with values that differ
        between dims; otherwise as ints.
    dtype : {"float64", "float32"}
        The operands' dtype. Elements are compared with ``|got - expected| <= tol * max(1, max|expected|)``,
        ``tol = 1e-9`` (float64) or ``2e-4`` (float32).
    seed : int
        Seeds the random operands (never all ones, never symmetric kernels).
    time_limit : float
        Seconds for the whole check (sweep, shrinking and diagnosis); a call that does not return
        in time is a failure.
    padding_forms : tuple of {"int", "same", "valid"}
        What ``padding`` values to pass: ints (default) and/or the strings.
    progress : callable, optional
        Called as ``progress(checked, phase)`` after each call (the CLI's progress line).

    Returns
    -------
    VerifyReport
        ``.ok``, ``.configs_checked``, ``.minimal``, ``.quantity``, ``.exception``, ``.diagnosis``,
        ``.text()``, ``.to_dict()``, ``.figure(path)``.

    Examples
    --------
    >>> import numpy as np, convgrad
    >>> def my_conv(x, w, stride=1):          # correct 1-D forward, loops over taps
    ...     n, c, h = x.shape
    ...     f, _, k = w.shape
    ...     ho = (h - k) // stride + 1
    ...     y = np.zeros((n, f, ho))
    ...     for t in range(k):
    ...         y += np.einsum("nci,fc->nfi", x[:, :, t:t + (ho - 1) * stride + 1:stride], w[:, :, t])
    ...     return y
    >>> convgrad.verify(my_conv, "forward", dims=1).ok
    True
    >>> def my_bad_conv(x, w, stride=1):      # forgets the stride when slicing
    ...     n, c, h = x.shape
    ...     f, _, k = w.shape
    ...     ho = (h - k) // stride + 1
    ...     y = np.zeros((n, f, ho))
    ...     for t in range(k):
    ...         y += np.einsum("nci,fc->nfi", x[:, :, t:t + ho], w[:, :, t])
    ...     return y
    >>> report = convgrad.verify(my_bad_conv, "forward", dims=1)
    >>> report.ok, report.quantity, report.minimal["stride"]
    (False, 'output', 2)
    """
    if data_format is not None or weight_format is not None:
        channels_last = coupled_channels_last(channels_last, data_format, weight_format, "verify")
    forms, dtype = _check_args(op, dims, dtype, time_limit, padding_forms, seed, channels_last, per_dim, progress)
    time_limit = float(time_limit)
    sig = read_signature(fn, op)
    start = time.perf_counter()
    runner = _Runner(fn, op, sig, bool(channels_last), bool(per_dim), str(dtype), int(seed), start + time_limit)
    notify = progress or (lambda checked, phase: None)
    rng = np.random.default_rng(seed)
    first: Evidence | None = None
    region = ""
    todo = [(name, case) for name, case in directed_cases(op, dims, sig.declared, per_dim, forms)]
    todo += [("random", None)] * RANDOM_CASES
    sweep_deadline = start + 0.5 * time_limit
    skipped: list[str] = []
    for name, case in todo:
        if name == "random" and time.perf_counter() > sweep_deadline:
            break
        if runner.remaining() <= 0.05 * time_limit:
            skipped.append(name)
            continue
        case = case or random_case(rng, op, dims, sig.declared, per_dim, forms)
        ev = runner.run(case)
        if ev is None:
            skipped.append(name)
            continue
        notify(runner.checked, "sweep")
        if ev.findings:
            first, region = ev, name
            break
    skipped = [n for n in dict.fromkeys(skipped) if n != "random"]
    if first is None:
        return VerifyReport(ok=True, op=op, fn_name=sig.name, source=sig.source, declared=sig.declared,
                            dims=dims, channels_last=bool(channels_last), per_dim=bool(per_dim), dtype=str(dtype),
                            configs_checked=runner.checked, seconds=time.perf_counter() - start, seed=int(seed),
                            not_visited=skipped)
    minimal, evidence, steps = _shrink(first, runner, per_dim, start + 0.85 * time_limit, notify)
    found = diagnose([minimal] + [e for e in evidence if e is not minimal][:3], sig.declared, region)
    return VerifyReport(ok=False, op=op, fn_name=sig.name, source=sig.source, declared=sig.declared, dims=dims,
                        channels_last=bool(channels_last), per_dim=bool(per_dim), dtype=str(dtype),
                        configs_checked=runner.checked, seconds=time.perf_counter() - start, seed=int(seed),
                        evidence=minimal, first=first, region=region, shrink_steps=steps,
                        diagnosis=found.ids, explains=found.explains,
                        params=user_params(minimal.case, sig.declared, per_dim),
                        fn_module=_importable_module(fn), takes_bias=sig.takes_bias,
                        hint=sig.op_hint(op, first.findings[0].error, dims)
                        if first.findings[0].kind in ("exception", "shape", "type") else "")


def _importable_module(fn) -> str | None:
    """The module to import ``fn`` from in the ready-to-paste call (None for a nested or interactive one)."""
    module = getattr(fn, "__module__", None)
    if module in (None, "__main__", "builtins") or getattr(fn, "__qualname__", "") != getattr(fn, "__name__", None):
        return None
    return module


def _shrink(first: Evidence, runner: _Runner, per_dim: bool, deadline: float, notify):
    """Greedy shrinking: take the first simpler neighbour that still fails the same way, until none does."""
    current = first
    kept = [first]
    steps = 0
    if first.findings[0].kind == "timeout":
        return current, kept, steps
    want = first.findings[0].signature
    improved = True
    while improved and time.perf_counter() < deadline:
        improved = False
        for candidate in sorted(shrink_moves(current.case, per_dim), key=lambda c: c.size_key()):
            if time.perf_counter() > deadline:
                break
            if candidate.size_key() >= current.case.size_key():
                continue
            ev = runner.run(candidate)
            if ev is None:
                break
            notify(runner.checked, "shrink")
            if ev.findings and ev.findings[0].signature == want:
                current, improved = ev, True
                kept.append(ev)
                steps += 1
                break
    return current, kept[::-1], steps
