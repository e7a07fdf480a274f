"""Every algorithm against the ``direct`` reference loops: a fixed grid and a property sweep.

An algorithm that cannot do a configuration must say why (``unsupported``), and ``run`` must
then refuse it with a ``ValueError``; everything it accepts must agree with ``direct``.
"""

import random

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import convgrad
from convgrad import algorithms
from convgrad.spec import conv_spec, conv_transpose_spec
from _configs import GRID, Case, case_of, max_rel, random_case, supported_pairs, supports

FAST = [a for a in convgrad.available_algorithms() if a != "direct"]


def _spec(case: Case):
    if case.transposed:
        return conv_transpose_spec(case.input_shape, case.weight_shape, case.stride, case.padding,
                                   case.output_padding, case.groups, case.dilation)
    return conv_spec(case.input_shape, case.weight_shape, case.stride, case.padding, case.dilation, case.groups,
                     case.padding_mode)


def check_against_direct(case: Case, algorithm: str, dtype=np.float64, seed=0, tol=1e-10):
    spec = _spec(case)
    alg = algorithms.get_algorithm(algorithm)
    x, w, b = case.arrays(seed, dtype)
    y_ref, _ = case.run(x, w, b, algorithm="direct")
    dy = np.random.default_rng(seed + 1).standard_normal(y_ref.shape).astype(dtype)
    ops = ("grad_input", "forward", "grad_weight") if case.transposed else ("forward", "grad_input", "grad_weight")
    reasons = [alg.unsupported(spec, op) for op in ops]
    if any(r is not None for r in reasons):
        with pytest.raises(ValueError, match=algorithm):
            case.run(x, w, b, dy, algorithm=algorithm)
        return False
    _, ref = case.run(x, w, b, dy, algorithm="direct")
    y, g = case.run(x, w, b, dy, algorithm=algorithm)
    for name, a, r in (("output", y, y_ref), ("grad_input", g.input, ref.input),
                       ("grad_weight", g.weight, ref.weight), ("grad_bias", g.bias, ref.bias)):
        if r is None:
            continue
        assert a.shape == r.shape and a.dtype == r.dtype, name
        assert max_rel(a, r) < tol, f"{algorithm} {name}: {max_rel(a, r):.2e} on {case}"
    return True


@pytest.mark.parametrize("case, algorithm", supported_pairs(GRID, FAST))
def test_grid_against_direct(case, algorithm):
    assert check_against_direct(case, algorithm)


@pytest.mark.parametrize("algorithm", FAST)
def test_refuses_the_grid_cases_outside_its_regime_saying_why(algorithm):
    """The pairs the grid test leaves out: ``run`` raises a ValueError naming the algorithm and the reason."""
    outside = [case for case in GRID if not supports(algorithm, case)]
    assert not any(check_against_direct(case, algorithm) for case in outside)


@pytest.mark.parametrize("algorithm", FAST)
def test_every_algorithm_supports_some_grid_case(algorithm):
    """Guard against an algorithm that refuses everything and so is never really tested."""
    assert sum(supports(algorithm, c) for c in GRID) >= 3


EXAMPLES = [pytest.param(spec, name, id=f"{name}-{i}") for name in FAST
            for i, spec in enumerate(algorithms.get_algorithm(name).examples())]


@pytest.mark.parametrize("algorithm", [name for name in FAST if algorithms.get_algorithm(name).auto_candidate])
def test_every_algorithm_auto_may_pick_declares_examples(algorithm):
    """Its examples are what the regime tests run on (test_fast_algorithms.py): at least two."""
    assert len(algorithms.get_algorithm(algorithm).examples()) >= 2


@pytest.mark.parametrize("spec, algorithm", EXAMPLES)
def test_declared_examples_are_in_regime_and_agree_with_direct(spec, algorithm):
    """An algorithm's own example configurations: supported for every operation, and exact."""
    alg = algorithms.get_algorithm(algorithm)
    assert all(alg.unsupported(spec, op) is None for op in ("forward", "grad_input", "grad_weight"))
    assert check_against_direct(case_of(spec), algorithm)


@st.composite
def cases(draw, max_ndim=4):
    seed = draw(st.integers(0, 2**32 - 1))
    ndim = draw(st.integers(1, max_ndim))
    rng = random.Random(seed)
    return random_case(rng, ndim=ndim, max_size=5 if ndim < 4 else 3)


@pytest.mark.parametrize("algorithm", FAST)
@given(case=cases())
def test_property_sweep_against_direct(algorithm, case):
    check_against_direct(case, algorithm)


def test_auto_picks_an_algorithm_that_supports_the_configuration():
    for case in GRID:
        spec = _spec(case)
        for op in ("forward", "grad_input", "grad_weight"):
            assert algorithms.choose(spec, op).unsupported(spec, op) is None


def test_available_algorithms_lists_direct_and_a_vectorized_default():
    names = convgrad.available_algorithms()
    assert "direct" in names and "gemm" in names
    assert all(isinstance(n, str) for n in names)


def test_float64_operations_count_twice_for_the_one_thread_rule(monkeypatch):
    """The cost model is fitted in float32; an operation runs on one thread when its estimate, doubled
    in float64, is below SMALL_WORK: LeNet-5's second layer (about 0.9 ms estimated) runs on one
    thread in float32 and on the workers in float64, in the functions and in plans alike."""
    from convgrad import algorithms, planning
    from convgrad.algorithms import costmodel

    spec = conv_spec((64, 6, 14, 14), (16, 6, 5, 5))
    alg = algorithms.choose(spec, "forward", 8)
    estimate = costmodel.estimate(alg.name, spec, "forward", 1)
    monkeypatch.setattr(algorithms, "SMALL_WORK", 1.5 * estimate)  # between one and two estimates
    algorithms._small_work.cache_clear()
    algorithms._choice.cache_clear()
    try:
        assert algorithms.is_small(alg, spec, "forward", 4)
        assert not algorithms.is_small(alg, spec, "forward", 8)
        assert algorithms.is_small(alg, spec, "forward")  # float32 unless told
        seen = []
        real = algorithms._execute
        monkeypatch.setattr(algorithms, "_execute", lambda *a: (seen.append(a[-1]), real(*a))[1])
        rng = np.random.default_rng(0)
        for dtype in (np.float32, np.float64):
            x = rng.standard_normal(spec.input_shape).astype(dtype)
            w = rng.standard_normal(spec.weight_shape).astype(dtype)
            algorithms.run("forward", spec, x, w, alg.name)
        assert seen == [True, False]
        for dtype, small in ((np.float32, True), (np.float64, False)):
            plan = planning.plan(spec.input_shape, spec.weight_shape, dtype=dtype)
            assert plan._entry("forward")[1] is small
    finally:
        algorithms._small_work.cache_clear()
        algorithms._choice.cache_clear()


def test_auto_compares_one_thread_estimates_exactly_when_the_operation_runs_on_one_thread(monkeypatch):
    """``choose`` and ``is_small`` apply the same dtype-scaled rule: on two threads, ``auto``'s pick is
    the smallest one-thread estimate when that pick will run on one thread (``is_small``), else the
    smallest two-thread estimate. Checked where the two minima are different algorithms and
    ``SMALL_WORK`` lies between the smallest one-thread estimate and twice it, so the float32 and
    float64 answers differ (a ``_choice`` that did not scale by the dtype picked the one-thread
    minimum for float64, which is_small then ran on both threads)."""
    from convgrad import runtime
    from convgrad.algorithms import costmodel

    def minima(spec, op):
        names = algorithms.candidates(spec, op, 8)
        one = {n: costmodel.estimate(n, spec, op, 1) for n in names}
        two = {n: costmodel.estimate(n, spec, op, 2) for n in names}
        return min(one, key=one.get), min(two, key=two.get), min(one.values())

    shapes = [((16, 16, 8, 8), (32, 16, 5, 5), 2, "grad_input"), ((8, 32, 16, 16), (6, 32, 5, 5), 2, "grad_weight"),
              ((8, 3, 28, 28), (32, 3, 5, 5), 2, "grad_input"), ((16, 16, 28, 28), (6, 16, 3, 3), 1, "grad_weight")]
    cases = [(spec, op, *minima(spec, op)) for spec, op in
             ((conv_spec(x, w, padding=p), op) for x, w, p, op in shapes)]
    cases = [c for c in cases if c[2] != c[3]]
    assert cases, "no configuration left whose one- and two-thread minima differ: choose others"
    algorithms._small_work.cache_clear()
    algorithms._choice.cache_clear()
    try:
        with runtime.settings(num_threads=2):
            for spec, op, one_best, two_best, best in cases:
                monkeypatch.setattr(algorithms, "SMALL_WORK", 1.5 * best)
                algorithms._small_work.cache_clear()
                algorithms._choice.cache_clear()
                for itemsize, small, pick in ((4, True, one_best), (8, False, two_best)):
                    alg = algorithms.choose(spec, op, itemsize)
                    assert (alg.name, algorithms.is_small(alg, spec, op, itemsize)) == (pick, small), (spec, op, itemsize)
    finally:
        algorithms._small_work.cache_clear()
        algorithms._choice.cache_clear()
