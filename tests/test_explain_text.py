"""``Explanation.text()``, ``to_dict()``, the geometry and the generated calls.

- snapshots of text() and to_dict() for a few configurations (``CONVGRAD_UPDATE_SNAPSHOTS=1``
  rewrites them; review the diff);
- the printed summation bounds are evaluated as Python and compared with ``contributors()``;
- every convgrad and PyTorch call the text prints is executed and compared with ``conv_backward``;
- the zero-gradient positions agree with real gradients, and the warnings fire when they apply.
"""

from __future__ import annotations

import itertools
import json
import math
import os
import random
import re
from pathlib import Path

import numpy as np
import pytest

import convgrad
from convgrad.explain import explain
from convgrad.explain.equivalents import equivalents
from _configs import GRID, random_case
from _explain import explanation_of, grid_and_random

SNAPSHOTS = Path(__file__).parent / "snapshots" / "explain"
UPDATE = os.environ.get("CONVGRAD_UPDATE_SNAPSHOTS") == "1"


SNAPSHOT_CONFIGS = {
    "seed003_5x100x100_ten_5x5x5": dict(input_shape=(5, 100, 100), weight_shape=(10, 5, 5, 5)),
    "tail_1d_stride2": dict(input_shape=(1, 1, 8), weight_shape=(1, 1, 3), stride=2),
    "groups_dilation_2d": dict(input_shape=(2, 4, 9, 8), weight_shape=(6, 2, 3, 2), stride=(2, 3), padding=(1, 2),
                               dilation=(2, 1), groups=2),
    "zeros_same_even": dict(input_shape=(1, 2, 6, 7), weight_shape=(2, 2, 2, 4), padding="same", padding_mode="zeros"),
    "circular_1d": dict(input_shape=(1, 1, 5), weight_shape=(1, 1, 3), padding=2, padding_mode="circular", stride=2),
    "transposed_2d": dict(input_shape=(1, 4, 3, 4), weight_shape=(4, 1, 3, 2), stride=(2, 3), padding=(1, 0),
                          output_padding=(1, 2), groups=2, transposed=True),
}


def _check_snapshot(path: Path, text: str):
    if UPDATE:
        path.write_text(text, encoding="utf-8")
    assert path.exists(), f"missing snapshot {path.name}: run with CONVGRAD_UPDATE_SNAPSHOTS=1 and review it"
    assert text == path.read_text(encoding="utf-8"), f"{path.name} changed; rerun with CONVGRAD_UPDATE_SNAPSHOTS=1 to accept"


@pytest.mark.parametrize("name", sorted(SNAPSHOT_CONFIGS))
def test_text_and_dict_snapshots(name):
    ex = explain(**SNAPSHOT_CONFIGS[name])
    _check_snapshot(SNAPSHOTS / f"{name}.txt", ex.text())
    d = ex.to_dict()
    assert json.loads(json.dumps(d)) == d  # JSON-serialisable, nothing lost
    _check_snapshot(SNAPSHOTS / f"{name}.json", json.dumps(d, indent=1, ensure_ascii=False) + "\n")


def test_dict_holds_what_the_issue_asks_for():
    ex = explain((2, 5, 100, 100), (10, 5, 5, 5), stride=2, padding=1)
    d = ex.to_dict()
    assert d["configuration"]["output_shape"] == [2, 10, 49, 49]
    g = d["dims"][0]
    assert g["effective_kernel"] == 5 and g["output_size"] == 49
    assert g["output_size_formula"].endswith("floor((100 + 1 + 1 - 5)/2) + 1 = 49")
    assert g["padding_used"] == [1, 0] and g["unread_tail"] == 1 and g["tail_positions"] == []
    assert set(d["formulas"]) == {"output", "grad_input", "grad_weight", "grad_bias"}
    assert d["goodfellow"]["applies"]
    assert {w["id"] for w in d["warnings"]} == {"unread_tail", "output_padding"}
    calls = d["equivalents"]["grad_input"]["calls"]
    assert {"convgrad", "pytorch", "jax", "tensorflow"} <= set(calls)
    assert "output_padding=1" in calls["pytorch"] and "lhs_dilation=(2, 2)" in calls["jax"]
    assert "rhs_dilation=(2, 2)" in d["equivalents"]["grad_weight"]["calls"]["jax"]
    from convgrad.explain.derivation import render_dict

    # dX[0, 1, 4, 4]: h + P_lo = 5 = 2*i + k, so (i, k) in {(2, 1), (1, 3)} per dim, times 10 output channels
    e = render_dict(ex, at=("grad_input", (0, 1, 4, 4)))["element"]
    assert e["count"] == len(ex.contributors("grad_input", (0, 1, 4, 4))) == 2 * 2 * 10
    assert e["bounds"] == ["i0 = 1..2", "i1 = 1..2"]


# ------------------------------------------------------------------------------------------------
# the printed formulas, evaluated
# ------------------------------------------------------------------------------------------------

_ENV = {"max": max, "min": min, "ceil": math.ceil, "floor": math.floor}


def _parse_range(text: str):
    """'i0 = max(0, ceil((h0 - 3)/2))..min(48, floor((h0 + 1)/2)); only the i0 with h0 - 2*i0 + 1 divisible by 2'"""
    m = re.fullmatch(r"(\w+) = (.+)\.\.(.+?)(?:; only the \w+ with (.+) divisible by (\d+))?", text)
    assert m, text
    return m.group(1), m.group(2), m.group(3), m.group(4), m.group(5)


def _eval_range(text: str, env: dict) -> list[int]:
    var, lo, hi, cond, div = _parse_range(text)
    lo_v, hi_v = eval(lo, _ENV, env), eval(hi, _ENV, env)  # noqa: S307 - our own formula text
    values = list(range(lo_v, hi_v + 1))
    if cond:
        values = [v for v in values if eval(cond, _ENV, {**env, var: v}) % int(div) == 0]  # noqa: S307
    return values


CHECK_CASES = [c for c in GRID if not c.transposed and c.batch > 0 and c.padding_mode == "zeros"][:14]


@pytest.mark.parametrize("case", CHECK_CASES, ids=str)
def test_printed_dx_bounds_give_exactly_the_contributing_output_positions(case):
    ex = explanation_of(case)
    f = ex.to_dict()["formulas"]["grad_input"]
    nd = ex.ndim
    hnames = ["h"] if nd == 1 else [f"h{d}" for d in range(nd)]
    for h in itertools.product(*map(range, ex.spec.input_size)):
        env = dict(zip(hnames, h))
        ranges = [_eval_range(b, env) for b in f["bounds"]]
        want = sorted({a[2:] for a, _ in ex.contributors("grad_input", (0, 0, *h))})
        assert sorted(itertools.product(*ranges)) == want, (h, f["bounds"])


@pytest.mark.parametrize("case", CHECK_CASES, ids=str)
def test_printed_dw_bounds_give_exactly_the_terms_inside_the_input(case):
    ex = explanation_of(case)
    f = ex.to_dict()["formulas"]["grad_weight"]
    if "bounds" not in f:
        return
    nd = ex.ndim
    knames = ["k"] if nd == 1 else [f"k{d}" for d in range(nd)]
    for k in itertools.product(*map(range, ex.spec.kernel_size)):
        ranges = [_eval_range(b, dict(zip(knames, k))) for b in f["bounds"]]
        want = sorted({b[2:] for a, b in ex.contributors("grad_weight", (0, 0, *k)) if a is not None and b[0] == 0})
        assert sorted(itertools.product(*ranges)) == want, (k, f["bounds"])


@pytest.mark.parametrize("case", [c for c in CHECK_CASES if c.ndim == 2 and c.groups == 1], ids=str)
def test_goodfellow_9_13_bounds_are_exact(case):
    """Eq. 9.13's l range (1-based), printed with the numbers, against contributors (0-based, padded V)."""
    ex = explanation_of(case)
    gf = ex.to_dict()["goodfellow"]
    if not gf["applies"]:
        return
    lo = ex.spec.pad_lo
    sizes = [h + a + b for h, (a, b) in zip(ex.spec.input_size, ex.spec.padding)]
    for j, k in itertools.product(range(1, sizes[0] + 1), range(1, sizes[1] + 1)):
        # V is the padded input, 1-based: V index j is x index j - 1 - P_lo
        h = (j - 1 - lo[0], k - 1 - lo[1])
        if not all(0 <= v < n for v, n in zip(h, ex.spec.input_size)):
            continue
        ls = _eval_range(gf["eq_9_13_bounds"][0].split(", m =")[0], {"j": j})
        ns = _eval_range(gf["eq_9_13_bounds"][1].split(", p =")[0], {"k": k})
        got = sorted((l - 1, n - 1) for l in ls for n in ns)
        want = sorted({a[2:] for a, _ in ex.contributors("grad_input", (0, 0, *h))})
        assert got == want


# ------------------------------------------------------------------------------------------------
# the calls the text prints, executed
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("case", grid_and_random(12, seed=11, max_size=5), ids=str)
def test_printed_convgrad_and_pytorch_calls_compute_the_gradients(case):
    ex = explanation_of(case)
    x, w, _ = case.arrays(0)
    y, _ = case.run(x, w, None)
    dy = np.random.default_rng(1).standard_normal(y.shape)
    _, g = case.run(x, w, None, dy)
    want = {"y": y, "dx": g.input, "dw": g.weight, "db": dy.sum(axis=(0, *range(2, dy.ndim)))}
    ran = 0
    for quantity, entry in equivalents(ex).items():
        for framework, code in entry["calls"].items():
            if framework == "jax" or framework == "tensorflow" or code.startswith("#"):
                continue  # JAX/TF are not installed here; checked by scripts/check_framework_snippets.py
            env = {"x": x, "w": w, "dy": dy}
            exec(code, env)  # noqa: S102 - our own generated code
            for name in ("y", "dx", "dw", "db"):
                if name in env:
                    got = np.asarray(env[name].detach() if hasattr(env[name], "detach") else env[name])
                    assert got.shape == want[name].shape, (framework, name, code)
                    np.testing.assert_allclose(got, want[name], rtol=1e-10, atol=1e-10, err_msg=f"{framework}\n{code}")
                    ran += 1
    assert ran >= 4


# ------------------------------------------------------------------------------------------------
# geometry
# ------------------------------------------------------------------------------------------------


def test_reference_cases_by_hand():
    # REFERENCE d1: S=4, K=2, H=9 gives grad [1,1,0,0,1,1,0,0,0]
    g = explain((1, 1, 9), (1, 1, 2), stride=4).dims[0]
    # (9 - 2) mod 4 = 3: positions 6, 7, 8 are the unread tail, 2 and 3 are holes between the windows
    assert g.zero_positions == (2, 3, 6, 7, 8) and g.tail_positions == (6, 7, 8) and g.holes == (2, 3)
    assert g.holes_from_stride
    # TF 'SAME': H=10, K=3, S=2 -> (0, 1); H=9 -> (1, 1)
    assert explain((1, 1, 10), (1, 1, 3), stride=2, padding="same").dims[0].padding == (0, 1)
    assert explain((1, 1, 9), (1, 1, 3), stride=2, padding="same").dims[0].padding == (1, 1)
    # PyTorch 'same' with K=4: total 3, P_lo 1, extra on the right
    assert explain((1, 1, 7), (1, 1, 4), padding="same").dims[0].padding == (1, 2)
    # unread tail that is only padding: H=100, K=5, S=2, P=1
    g = explain((1, 1, 100), (1, 1, 5), stride=2, padding=1).dims[0]
    assert (g.unread_tail, g.tail_positions, g.padding_used) == (1, (), (1, 0))
    # dilation 4 with stride 2: odd positions are holes though S < K_eff
    g = explain((1, 1, 9), (1, 1, 2), stride=2, dilation=4).dims[0]
    assert g.holes == (1, 3, 5, 7) and not g.holes_from_stride
    # circular padding copies the tail into the low border: read after all
    # (6 + 2 + 0 - 3) mod 2 = 1: x[5] is never read directly, but the low border -2, -1 copies x[4], x[5]
    g = explain((1, 1, 6), (1, 1, 3), stride=2, padding=((2, 0),), padding_mode="circular").dims[0]
    assert g.unread_tail == 1 and g.tail_positions == (5,) and g.zero_positions == ()
    g = explain((1, 1, 6), (1, 1, 3), stride=2, padding=((2, 0),)).dims[0]
    assert g.tail_positions == (5,) and g.zero_positions == (5,)


@pytest.mark.parametrize("seed", range(24))
def test_zero_positions_are_exactly_the_zero_gradients(seed):
    rng = random.Random(seed)
    case = random_case(rng, max_size=7)
    ex = explanation_of(case)
    if case.batch == 0:
        return
    x, w, _ = case.arrays(seed)
    # all-positive operands: no cancellation can make a structurally non-zero entry vanish
    w = np.abs(w) + 0.1
    y, _ = case.run(x, w, None)
    dy = np.abs(np.random.default_rng(seed).standard_normal(y.shape)) + 0.1
    _, g = case.run(x, w, None, dy)
    if case.transposed:
        # never-written output positions: y there has no term; check via grad of x: use the forward with x = 1
        y1, _ = case.run(np.ones_like(x), w, None)
        arr, axes = np.abs(y1), ex.spec.input_size
    else:
        arr, axes = np.abs(g.input), ex.spec.input_size
    for d, geom in enumerate(ex.dims):
        other = tuple(a for a in range(arr.ndim) if a != 2 + d)
        zero = np.flatnonzero(arr.sum(axis=other) == 0).tolist()
        assert tuple(zero) == geom.zero_positions, (d, zero, geom)
        assert len(axes) == ex.ndim


# ------------------------------------------------------------------------------------------------
# warnings and errors
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs, expected",
    [
        (dict(input_shape=(1, 1, 8), weight_shape=(1, 1, 3), stride=2), {"unread_tail", "output_padding"}),
        (dict(input_shape=(1, 1, 9), weight_shape=(1, 1, 2), stride=4), {"unread_tail", "holes", "output_padding"}),
        (dict(input_shape=(1, 1, 7), weight_shape=(1, 1, 4), padding="same"), {"asymmetric_same"}),
        (dict(input_shape=(1, 1, 10), weight_shape=(1, 1, 3), stride=2, padding="same"),
         {"asymmetric_same", "same_with_stride", "output_padding"}),
        (dict(input_shape=(1, 1, 6), weight_shape=(1, 1, 3), padding=((2, 0),)), {"asymmetric_padding"}),
        (dict(input_shape=(1, 1, 5), weight_shape=(1, 1, 3), padding=3), {"large_padding"}),
        (dict(input_shape=(1, 2, 6), weight_shape=(2, 1, 3), padding=1, padding_mode="reflect", groups=2),
         {"padding_mode", "groups"}),
        (dict(input_shape=(1, 1, 6), weight_shape=(1, 1, 1), dilation=3), {"dilation_k1", "dilation_convention"}),
        (dict(input_shape=(0, 1, 6), weight_shape=(1, 1, 3)), {"empty_batch"}),
        (dict(input_shape=(1, 2, 4), weight_shape=(2, 3, 3), stride=3, output_padding=2, transposed=True),
         {"output_padding", "weight_layout", "unwritten_outputs"} - {"unwritten_outputs"} | {"unwritten_outputs"}),
    ],
)
def test_warnings_fire_exactly_when_they_apply(kwargs, expected):
    assert {w["id"] for w in explain(**kwargs).to_dict()["warnings"]} == expected


def test_unread_tail_warning_names_the_positions_and_the_output_padding():
    text = explain((1, 1, 8), (1, 1, 3), stride=2).text()
    assert "(position 7): no output depends on them and their gradient dX is exactly 0" in text
    assert "needs output_padding = 1" in text


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        (dict(input_shape=(1, 1, 5), weight_shape=(1, 1, 3), padding_mode="reflect", transposed=True), ValueError,
         "padding_mode"),
        (dict(input_shape=(1, 1, 5), weight_shape=(1, 1, 3), output_padding=1), ValueError, "output_padding"),
        (dict(input_shape=(1, 1, 5), weight_shape=(1, 3)), ValueError, "weight_shape"),
        (dict(input_shape="1,1,5", weight_shape=(1, 1, 3)), TypeError, "input_shape"),
        (dict(input_shape=(1, 2, 5), weight_shape=(1, 1, 3)), ValueError, "weight.shape\\[1\\]"),
        (dict(input_shape=(1, 1, 2), weight_shape=(1, 1, 3)), ValueError, "kernel is larger"),
        (dict(input_shape=(1, 1, 5), weight_shape=(1, 1, 3), stride=0), ValueError, "stride"),
        (dict(input_shape=(1, 1, 5), weight_shape=(1, 1, 3), transposed=1), TypeError, "transposed"),
    ],
)
def test_bad_configurations_are_named(kwargs, error, match):
    with pytest.raises(error, match=match):
        explain(**kwargs)


def test_docstring_examples_run():
    import doctest
    import importlib

    # (convgrad.explain is the function; the subpackage's modules are reached by their full name)
    module = importlib.import_module("convgrad.explain.explanation")

    result = doctest.testmod(module)
    assert result.attempted >= 3 and result.failed == 0


@pytest.mark.parametrize("shape,wshape,kw", [
    ((1, 1, 1), (1, 1, 1), dict(stride=3, padding=((2, 0),))),                  # a crop reaches past the input
    ((1, 2, 2, 9), (2, 2, 1, 2), dict(stride=(4, 3), padding=((3, 0), (0, 2)))),
    ((1, 1, 5), (1, 1, 3), dict(stride=2, padding=3)),                          # padding > D(K-1): a crop
])
def test_printed_convgrad_calls_with_crops_that_reach_past_the_input(shape, wshape, kw):
    ex = explain(shape, wshape, **kw)
    rng = np.random.default_rng(0)
    x, w = rng.standard_normal(shape), rng.standard_normal(wshape)
    dy = rng.standard_normal(convgrad.conv(x, w, **kw).shape)
    g = convgrad.conv_backward(dy, x, w, **kw)
    ran = 0
    for entry in ex.to_dict()["equivalents"].values():
        for framework, code in entry["calls"].items():
            if not framework.startswith("convgrad") or code.startswith("#"):
                continue
            env = {"x": x, "w": w, "dy": dy}
            exec(code, env)  # noqa: S102 - our own generated code
            for name, want in (("dx", g.input), ("dw", g.weight)):
                if name in env:
                    np.testing.assert_allclose(env[name], want, rtol=1e-10, atol=1e-12, err_msg=code)
                    ran += 1
    assert ran >= 2
