"""Self-check of the corpus of user-style convolution code in ``tests/verify_impls/`` (issue 9).

Each file there is one user's submission with plain constants at its top (``ENTRY``, ``OP``,
``DIMS``, ``CHANNELS_LAST``, ``PER_DIM``, ``PADDING_FORMS``, ``EXPECT``, ``WHY`` and, for files with
a planted mistake, ``WITNESS`` and ``CLEAN``).  This module does NOT use ``convgrad.verify``: it
checks the corpus itself against convgrad's exact functions, so that ``verify``'s own tests can
trust it.

- A correct file (``EXPECT = None``) matches convgrad to 1e-10 on a seeded sweep of small
  configurations in the parameters its function declares, in the file's layout, and never modifies
  its inputs.
- A buggy file differs from convgrad (wrong values, wrong shape, not an array, NaN, an exception or
  a time-out) on its ``WITNESS`` configuration and matches it on its ``CLEAN`` one, where the
  planted mistake cannot show: the file fails for the planted reason, not a random breakage.
- Witness and clean configurations stay inside what ``verify`` can generate (only the declared
  parameters differ from their identity values; sizes as in issue 9's contract).
"""

from __future__ import annotations

import importlib.util
import inspect
import signal
import zlib
from pathlib import Path

import numpy as np
import pytest

import convgrad

CORPUS = Path(__file__).parent / "verify_impls"
FILES = sorted(p for p in CORPUS.glob("*.py") if not p.name.startswith("_"))

OPS = ("forward", "backward", "transposed_forward", "transposed_backward")
BUG_IDS = (
    "stride", "unread_tail", "overlap_accumulate", "kernel_flip", "padding_crop", "padding_split",
    "groups", "bias_reduction", "batch_sum", "channel_axes", "dilation_off_by_one", "per_axis",
    "stride_dilation_swap", "output_padding", "transposed_weight_layout", "summation_bounds",
)
COMMON_IDS = ("stride", "unread_tail", "overlap_accumulate", "kernel_flip", "padding_crop", "bias_reduction", "batch_sum")
PATHOLOGIES = ("error", "shape", "type", "timeout", "nan")
PARAMS = ("stride", "padding", "dilation", "groups", "output_padding")
IDENTITY = {"stride": 1, "padding": 0, "dilation": 1, "groups": 1, "output_padding": 0}
TOL = 1e-10
TIME_LIMIT = 10.0  # seconds per call: a runaway user function fails instead of hanging the suite


class TimedOut(Exception):
    """Raised in the user's function by the alarm when it runs past the time limit."""


def load(path: Path):
    spec = importlib.util.spec_from_file_location(f"verify_impls_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


MODULES = {p.stem: load(p) for p in FILES}


def entry(mod):
    return getattr(mod, mod.ENTRY)


def declared(mod) -> tuple[str, ...]:
    """The parameters verify varies: those the entry function declares, among PARAMS."""
    names = inspect.signature(entry(mod)).parameters
    allowed = PARAMS if mod.OP.startswith("transposed") else PARAMS[:4]
    return tuple(p for p in allowed if p in names)


def takes_bias(mod) -> bool:
    """Forward ops get a bias when the function has a third positional parameter."""
    positional = [
        p for p in inspect.signature(entry(mod)).parameters.values()
        if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) and p.name not in PARAMS
    ]
    return len(positional) >= 3


def expected_ids(mod) -> tuple:
    return mod.EXPECT if isinstance(mod.EXPECT, tuple) else (mod.EXPECT,)


# ------------------------------------------------------------------------------------------------
# layouts: the user's (channels last: NHWC data, HWIO weights) <-> convgrad's (channels first)
# ------------------------------------------------------------------------------------------------


def data_to_cf(a, cl):
    return np.moveaxis(a, -1, 1) if cl else a


def data_to_user(a, cl):
    return np.moveaxis(a, 1, -1) if cl else a


def weight_to_cf(w, dims, cl):
    # (*k, I, O) -> (O, I, *k); for the transposed ops (*k, C_out/g, C_in) -> (C_in, C_out/g, *k)
    return w.transpose(dims + 1, dims, *range(dims)) if cl else w


def weight_to_user(w, dims, cl):
    return w.transpose(*range(2, dims + 2), 1, 0) if cl else w


# ------------------------------------------------------------------------------------------------
# one run of a user's function against convgrad
# ------------------------------------------------------------------------------------------------


def _alarm(signum, frame):
    raise TimedOut(f"no result within {TIME_LIMIT} s")


def call_limited(fn, args, kwargs, seconds=TIME_LIMIT):
    previous = signal.signal(signal.SIGALRM, _alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        return fn(*args, **kwargs)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def reference(mod, cfg, arrays, op=None):
    """convgrad's result, in the user's layout, for ``op`` (by default the op of ``mod``)."""
    dims, cl, op = mod.DIMS, mod.CHANNELS_LAST, op or mod.OP
    p = {k: cfg.get(k, IDENTITY[k]) for k in PARAMS}
    x = data_to_cf(arrays["x"], cl)
    w = weight_to_cf(arrays["w"], dims, cl)
    b = arrays.get("b")
    if op == "forward":
        y = convgrad.conv(x, w, b, stride=p["stride"], padding=p["padding"], dilation=p["dilation"], groups=p["groups"])
        return (data_to_user(y, cl),)
    if op == "transposed_forward":
        y = convgrad.conv_transpose(x, w, b, stride=p["stride"], padding=p["padding"], output_padding=p["output_padding"],
                                    groups=p["groups"], dilation=p["dilation"])
        return (data_to_user(y, cl),)
    dy = data_to_cf(arrays["dy"], cl)
    if op == "backward":
        g = convgrad.conv_backward(dy, x, w, stride=p["stride"], padding=p["padding"], dilation=p["dilation"], groups=p["groups"])
    else:
        g = convgrad.conv_transpose_backward(dy, x, w, stride=p["stride"], padding=p["padding"], output_padding=p["output_padding"],
                                             groups=p["groups"], dilation=p["dilation"])
    return data_to_user(g.input, cl), weight_to_user(g.weight, dims, cl), g.bias


def make_arrays(mod, cfg, seed=0):
    """Random float64 inputs in the user's layout (dy shaped like the reference output)."""
    rng = np.random.default_rng(seed)
    arrays = {"x": rng.standard_normal(cfg["input_shape"]), "w": rng.standard_normal(cfg["weight_shape"])}
    w_cf = weight_to_cf(arrays["w"], mod.DIMS, mod.CHANNELS_LAST)
    groups = cfg.get("groups", 1)
    out_channels = w_cf.shape[0] if mod.OP in ("forward", "backward") else w_cf.shape[1] * groups
    if mod.OP.endswith("forward"):
        if takes_bias(mod):
            arrays["b"] = rng.standard_normal(out_channels)
        return arrays
    forward = {"backward": "forward", "transposed_backward": "transposed_forward"}[mod.OP]
    y = reference(mod, cfg, arrays, op=forward)[0]
    arrays["dy"] = rng.standard_normal(y.shape)
    return arrays


def mismatch(mod, cfg, seconds=TIME_LIMIT, check_inputs=False):
    """None when the user's function equals convgrad on ``cfg``; else why not (a short string)."""
    arrays = make_arrays(mod, cfg)
    want = reference(mod, cfg, arrays)
    order = ("x", "w", "b") if mod.OP.endswith("forward") else ("dy", "x", "w")
    args = [arrays[k] for k in order if k in arrays]
    copies = [a.copy() for a in args]
    kwargs = {k: cfg.get(k, IDENTITY[k]) for k in declared(mod)}
    try:
        got = call_limited(entry(mod), args, kwargs, seconds)
    except TimedOut:
        return "timeout"
    except Exception as exc:  # the user's code raising is a finding, not a crash of the check
        return f"error: {type(exc).__name__}: {exc}"
    if check_inputs:
        for a, c in zip(args, copies):
            assert np.array_equal(a, c), f"{mod.__name__} modified its input"
    if mod.OP.endswith("forward"):
        got = (got,)
    elif not isinstance(got, tuple) or len(got) not in (2, 3):
        return f"type: a backward must return (dx, dw) or (dx, dw, db), got {type(got).__name__}"
    for name, g, r in zip(("output" if mod.OP.endswith("forward") else "dx", "dw", "db"), got, want):
        if not isinstance(g, np.ndarray):
            return f"type: {name} is a {type(g).__name__}"
        if g.shape != r.shape:
            return f"shape: {name} {g.shape} != {r.shape}"
        if not np.all(np.isfinite(g)):
            return f"nan: {name} has non-finite elements"
        if not np.allclose(g, r, rtol=TOL, atol=TOL):
            return f"values: {name} differs in {np.sum(~np.isclose(g, r, rtol=TOL, atol=TOL))}/{r.size} elements"
    return None


# ------------------------------------------------------------------------------------------------
# the sweep for correct files
# ------------------------------------------------------------------------------------------------


def _spatial_ok(mod, cfg) -> bool:
    try:
        reference(mod, cfg, make_arrays(mod, cfg))
    except ValueError:
        return False
    return True


def random_config(mod, rng):
    """A small configuration in the file's declared parameters, as verify could generate it."""
    dims, per, names = mod.DIMS, mod.PER_DIM, declared(mod)
    transposed = mod.OP.startswith("transposed")

    def draw(name, lo, hi):
        if name not in names:
            return IDENTITY[name]
        values = tuple(int(rng.integers(lo, hi + 1)) for _ in range(dims))
        return values if per else values[0]

    def each(v):
        return v if isinstance(v, tuple) else (v,) * dims

    cfg = {"stride": draw("stride", 1, 3), "dilation": draw("dilation", 1, 2 if dims == 3 else 3)}
    form = "int"
    if "padding" in names:
        form = str(rng.choice(mod.PADDING_FORMS))
    cfg["padding"] = draw("padding", 0, 2) if form == "int" else form
    groups = int(rng.integers(1, 4)) if "groups" in names else 1
    cfg["groups"] = groups
    if "output_padding" in names:
        limits = [max(s, d) - 1 for s, d in zip(each(cfg["stride"]), each(cfg["dilation"]))]
        ops = tuple(int(rng.integers(0, m + 1)) for m in limits)
        cfg["output_padding"] = ops if per else min(ops)
    n = int(rng.integers(1, 4))
    c_in, c_out = groups * int(rng.integers(1, 3)), groups * int(rng.integers(1, 3))
    kmax, hmax = (3, 7) if dims == 3 else (4, 12)
    kernel = tuple(int(rng.integers(1, kmax + 1)) for _ in range(dims))
    spatial = []
    for k, s, d, p in zip(kernel, each(cfg["stride"]), each(cfg["dilation"]),
                          each(cfg["padding"]) if form == "int" else (0,) * dims):
        if transposed:
            spatial.append(int(rng.integers(1, 7 if dims < 3 else 4)))
        else:
            k_eff = d * (k - 1) + 1
            lo = {"int": max(1, k_eff - 2 * p), "same": 1, "valid": k_eff}[form]
            spatial.append(int(rng.integers(lo, max(lo, min(hmax, lo + 2 * s + 2)) + 1)))
    spatial = tuple(spatial)
    if transposed:
        weight_cf = (c_in, c_out // groups, *kernel)
    else:
        weight_cf = (c_out, c_in // groups, *kernel)
    weight = weight_cf[2:] + (weight_cf[1], weight_cf[0]) if mod.CHANNELS_LAST else weight_cf
    cfg["input_shape"] = (n, *spatial, c_in) if mod.CHANNELS_LAST else (n, c_in, *spatial)
    cfg["weight_shape"] = weight
    return {k: v for k, v in cfg.items() if k in ("input_shape", "weight_shape") or k in names}


def sweep(mod, count):
    rng = np.random.default_rng(zlib.crc32(mod.__name__.encode()))
    configs = []
    while len(configs) < count:
        cfg = random_config(mod, rng)
        if _spatial_ok(mod, cfg):
            configs.append(cfg)
    return configs


# ------------------------------------------------------------------------------------------------
# the tests
# ------------------------------------------------------------------------------------------------

CORRECT = [name for name, m in MODULES.items() if m.EXPECT is None]
BUGGY = [name for name, m in MODULES.items() if m.EXPECT is not None and expected_ids(m)[0] in BUG_IDS]
PATHOLOGICAL = [name for name, m in MODULES.items() if m.EXPECT in PATHOLOGIES]


@pytest.mark.parametrize("name", sorted(MODULES))
def test_header_constants(name):
    mod = MODULES[name]
    assert callable(getattr(mod, mod.ENTRY, None)), f"{name}: ENTRY {mod.ENTRY!r} is not a function of the file"
    assert mod.OP in OPS
    assert mod.DIMS in (1, 2, 3)
    assert isinstance(mod.CHANNELS_LAST, bool) and isinstance(mod.PER_DIM, bool)
    assert set(mod.PADDING_FORMS) <= {"int", "same", "valid"} and mod.PADDING_FORMS
    assert mod.EXPECT is None or mod.EXPECT in PATHOLOGIES or all(e in BUG_IDS for e in expected_ids(mod))
    assert isinstance(mod.WHY, str) and mod.WHY
    # verify's own tests pick files by prefix: ok_ (correct), bug_<id>_ (planted mistake), path_ (broken)
    if mod.EXPECT is None:
        assert name.startswith("ok_")
    elif mod.EXPECT in PATHOLOGIES:
        assert name.startswith("path_")
    else:
        bug = expected_ids(mod)[0]
        assert name == f"bug_{bug}" or name.startswith(f"bug_{bug}_")
    lines = len(Path(mod.__file__).read_text().splitlines())
    assert 20 <= lines <= 80, f"{name} is {lines} lines long: tutorial examples stay between 20 and 80"


@pytest.mark.parametrize("name", CORRECT)
def test_correct_file_matches_convgrad(name):
    mod = MODULES[name]
    for cfg in sweep(mod, 12 if mod.DIMS == 3 else 24):
        problem = mismatch(mod, cfg, check_inputs=True)
        assert problem is None, f"{name} on {cfg}: {problem}"


def _in_contract(mod, cfg):
    """The configuration is one verify could generate for this file."""
    names = declared(mod)
    for k in PARAMS:
        if k in cfg and k not in names:
            assert cfg[k] == IDENTITY[k], f"{k} is not declared by {mod.ENTRY}, so verify keeps it at {IDENTITY[k]}"
        v = cfg.get(k)
        if isinstance(v, tuple):
            assert mod.PER_DIM and len(v) == mod.DIMS
        if isinstance(v, str):
            assert k == "padding" and v in mod.PADDING_FORMS
    x, w = cfg["input_shape"], cfg["weight_shape"]
    assert len(x) == len(w) == mod.DIMS + 2
    spatial = x[1:-1] if mod.CHANNELS_LAST else x[2:]
    kernel = w[:-2] if mod.CHANNELS_LAST else w[2:]
    assert x[0] <= 3 and max(spatial) <= 12 and max(kernel) <= 4
    flat = [e for k in ("stride", "dilation") for e in np.atleast_1d(cfg.get(k, 1))]
    assert max(flat) <= 3
    if not isinstance(cfg.get("padding", 0), str):
        assert max(np.atleast_1d(cfg.get("padding", 0))) <= 2


@pytest.mark.parametrize("name", BUGGY + PATHOLOGICAL)
def test_witness_shows_the_mistake(name):
    mod = MODULES[name]
    _in_contract(mod, mod.WITNESS)
    problem = mismatch(mod, mod.WITNESS, seconds=1.0 if mod.EXPECT == "timeout" else TIME_LIMIT)
    assert problem is not None, f"{name} matches convgrad on its WITNESS"
    if mod.EXPECT in PATHOLOGIES:  # mismatch() names the kind of failure first
        assert problem.startswith(mod.EXPECT), f"{name}: expected a {mod.EXPECT} failure, got {problem}"


@pytest.mark.parametrize("name", BUGGY)
def test_sweep_reaches_the_mistake(name):
    """The generic sweep of correct files, in the file's declared parameters, finds the mistake too."""
    mod = MODULES[name]
    assert any(mismatch(mod, cfg) for cfg in sweep(mod, 24)), f"{name}: no configuration of the sweep shows the mistake"


@pytest.mark.parametrize("name", BUGGY + [n for n in PATHOLOGICAL if hasattr(MODULES[n], "CLEAN")])
def test_clean_config_hides_the_mistake(name):
    mod = MODULES[name]
    _in_contract(mod, mod.CLEAN)
    problem = mismatch(mod, mod.CLEAN)
    assert problem is None, f"{name} differs from convgrad on its CLEAN configuration: {problem}"


def test_corpus_coverage():
    """Every bug id planted (the common ones at least twice), correct code in every op/dims/layout."""
    planted = [expected_ids(MODULES[n])[0] for n in BUGGY]
    for bug in BUG_IDS:
        want = 2 if bug in COMMON_IDS else 1
        assert planted.count(bug) >= want, f"{bug}: {planted.count(bug)} files, want {want}"
    assert set(PATHOLOGIES) <= {MODULES[n].EXPECT for n in PATHOLOGICAL}
    correct = [MODULES[n] for n in CORRECT]
    assert len(correct) >= 10
    assert {(m.OP, m.DIMS) for m in correct} == {(op, d) for op in OPS for d in (1, 2, 3)}
    assert {(m.OP, m.CHANNELS_LAST) for m in correct} == {(op, cl) for op in OPS for cl in (False, True)}
    assert {m.PER_DIM for m in correct} == {True, False}
    for form in ("same", "valid"):
        assert any(form in m.PADDING_FORMS for m in correct), f"no correct file takes padding={form!r}"
    assert any("same" in m.PADDING_FORMS and m.OP == "backward" for m in correct)
    for p in PARAMS:
        assert any(p in declared(m) for m in correct), f"no correct file declares {p}"
    assert any(m.OP.endswith("forward") and takes_bias(m) for m in correct)
    assert any(m.OP.endswith("forward") and not takes_bias(m) for m in correct)


def test_readme_lists_every_file():
    readme = (CORPUS / "README.md").read_text()
    missing = [p.name for p in FILES if p.name not in readme]
    assert not missing, f"tests/verify_impls/README.md does not list {missing}"
