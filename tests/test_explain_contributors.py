"""``Explanation.contributors`` against brute force through the ``direct`` reference algorithm.

Every element of every quantity is bilinear in its two operands: ``Q[idx] = sum_ab M[a, b] u[a] v[b]``,
and the contributor list claims ``M`` (a pair ``(a, b)`` listed m times means ``M[a, b] = m``).
Brute force recovers ``M`` without the index relation: the gradient of ``Q[idx]`` with respect to
``u`` at a random ``v`` gives the support of ``M``'s rows, and for each ``a`` in it the gradient
with respect to ``v`` at ``u = one-hot(a)`` is the row ``M[a, :]``. All gradients are one-hot
gradients through the public API with ``algorithm="direct"`` (plain loops).

Terms that read zero padding are found by running the same convolution on the explicitly
zero-padded input: a term at a border position is the contributor list's ``None``.
"""

from __future__ import annotations

import itertools
import random
from collections import Counter

import numpy as np
import pytest

import convgrad
from convgrad.explain import QUANTITIES, explain
from _configs import GRID, Case, random_case
from _explain import explanation_of

ALG = "direct"


def _onehot(shape, index):
    e = np.zeros(shape)
    e[index] = 1.0
    return e


def _nonzero(arr):
    return [tuple(int(v) for v in t) for t in zip(*np.nonzero(arr))]


class Oracle:
    """The bilinear maps of one configuration, through the public API (direct algorithm).

    For a convolution with zero padding and some padding, ``x`` lives in the explicitly padded
    coordinates (so reads of the padding are visible); ``x_offset`` maps them back.
    """

    def __init__(self, case: Case, ex):
        self.case, self.ex = case, ex
        spec = ex.spec
        self.x_offset = None
        self.kw = self.real_kw = case.kwargs()
        self.x_shape = self.real_x_shape = ex.full_input_shape
        if not case.transposed and case.padding_mode == "zeros" and any(p != (0, 0) for p in spec.padding):
            self.x_offset = spec.pad_lo
            self.kw = dict(stride=spec.stride, padding=0, dilation=spec.dilation, groups=spec.groups)
            n, c, *size = ex.full_input_shape
            self.x_shape = (n, c, *(h + lo + hi for h, (lo, hi) in zip(size, spec.padding)))
        self.w_shape = ex.weight_shape
        self.y_shape = ex.full_output_shape

    # forward and the two gradients, for the user's operation
    def fwd(self, x, w, real=False):
        f = convgrad.conv_transpose if self.case.transposed else convgrad.conv
        return f(x, w, None, **(self.real_kw if real else self.kw), algorithm=ALG)

    def back(self, dy, x, w, need, real=False):
        f = convgrad.conv_transpose_backward if self.case.transposed else convgrad.conv_backward
        return getattr(f(dy, x, w, **(self.real_kw if real else self.kw), needs=(need,), algorithm=ALG), need)

    def to_user_x(self, a):
        """A brute-force x index as the contributor list writes it (None in zero padding)."""
        if self.x_offset is None:
            return a
        n, c, *p = a
        real = tuple(pi - lo for pi, lo in zip(p, self.x_offset))
        if all(0 <= r < h for r, h in zip(real, self.ex.full_input_shape[2:])):
            return (n, c, *real)
        return None

    def matrix(self, quantity, idx) -> Counter:
        """``M`` of ``quantity[idx]`` as a Counter of index pairs (first operand, second operand)."""
        rng = np.random.default_rng(0)
        X, W, Y = self.x_shape, self.w_shape, self.y_shape
        e = None
        if quantity == "output":  # Q = fwd(x, w)[idx]
            e = _onehot(Y, idx)
            support = _nonzero(self.back(e, np.zeros(X), rng.standard_normal(W), "input"))
            rows = {a: self.back(e, _onehot(X, a), np.zeros(W), "weight") for a in support}
            fix_a, fix_b = self.to_user_x, lambda b: b
        elif quantity == "grad_input":  # Q = back(dy, ., w).input[idx] = <dy, fwd(e_idx, w)>
            e = _onehot(self.real_x_shape, idx)
            support = _nonzero(self.fwd(e, rng.standard_normal(W), real=True))
            rows = {a: self.back(_onehot(Y, a), e, np.zeros(W), "weight", real=True) for a in support}
            fix_a, fix_b = (lambda a: a), (lambda b: b)
        elif quantity == "grad_weight":  # Q = back(dy, x, .).weight[idx] = <dy, fwd(x, e_idx)>
            e = _onehot(W, idx)
            support = _nonzero(self.back(rng.standard_normal(Y), np.zeros(X), e, "input"))
            rows = {a: self.fwd(_onehot(X, a), e) for a in support}
            fix_a, fix_b = self.to_user_x, lambda b: b
        else:  # grad_bias: Q = sum of dy over the channel
            counts = Counter()
            for a in itertools.product(*map(range, Y)):
                g = self.back(_onehot(Y, a), np.zeros(X), np.zeros(W), "bias")
                if g[idx[0]] != 0:
                    counts[a] += int(g[idx[0]])
            return counts
        counts = Counter()
        for a, row in rows.items():
            for bidx in _nonzero(row):
                m = row[bidx]
                assert m == round(m), "one-hot products must be integer counts"
                counts[(fix_a(a), fix_b(bidx))] += int(round(m))
        return counts


def _check_element(ex, oracle, quantity, idx):
    got = ex.contributors(quantity, idx if ex.batched or quantity in ("grad_weight", "grad_bias") else idx[1:])
    if not ex.batched:
        pad = lambda t, act: t if t is None or not act else (0, *t)  # noqa: E731
        if quantity == "grad_bias":
            got = [(0, *t) for t in got]
        elif quantity == "output":
            got = [(pad(a, True), b) for a, b in got]
        elif quantity == "grad_input":
            got = [(pad(a, True), b) for a, b in got]
        else:
            got = [(pad(a, True), pad(b, True)) for a, b in got]
    claimed = Counter(got)
    brute = oracle.matrix(quantity, idx)
    assert claimed == brute, f"{quantity}{idx}: extra {claimed - brute}, missing {brute - claimed}"
    return len(got)


def _elements(ex, quantity, rng, count):
    shape = {"output": ex.full_output_shape, "grad_input": ex.full_input_shape, "grad_weight": ex.weight_shape,
             "grad_bias": ex.bias_shape}[quantity]
    if 0 in shape:
        return []
    every = list(itertools.product(*map(range, shape)))
    return rng.sample(every, min(count, len(every)))


def _check_case(case: Case, per_quantity=3, seed=0):
    ex = explanation_of(case)
    oracle = Oracle(case, ex)
    rng = random.Random(seed)
    checked = 0
    for quantity in QUANTITIES:
        if quantity == "grad_bias" and np.prod(oracle.y_shape) > 200:
            continue
        for idx in _elements(ex, quantity, rng, per_quantity):
            _check_element(ex, oracle, quantity, idx)
            checked += 1
    return checked


def _small(case: Case) -> bool:
    return np.prod(case.size) <= 64 and np.prod(case.kernel) <= 18


@pytest.mark.parametrize("case", [c for c in GRID if _small(c) and c.batch > 0], ids=str)
def test_grid_cases_match_brute_force(case):
    assert _check_case(case) > 0


def _random_cases(count=48, seed=1234):
    rng = random.Random(seed)
    cases = []
    while len(cases) < count:
        case = random_case(rng, max_size=6)
        if case.batch == 0 or not _small(case):
            continue
        cases.append(case)
    return cases


RANDOM = _random_cases()


@pytest.mark.parametrize("case", RANDOM, ids=str)
def test_random_cases_match_brute_force(case):
    assert _check_case(case, per_quantity=2, seed=hash(str(case)) % 1000) > 0


def test_random_cases_cover_the_hard_features():
    """The random sweep above really contains the configurations that make contributors tricky."""
    feats = Counter()
    for c in RANDOM:
        ex = explanation_of(c)
        feats["groups"] += c.groups > 1
        feats["dilation"] += any(d > 1 for d in ex.spec.dilation)
        feats["tail"] += any(g.tail_positions for g in ex.dims)
        feats["holes"] += any(g.holes for g in ex.dims)
        feats["mode"] += c.padding_mode != "zeros"
        feats["transposed"] += c.transposed
        feats["padding"] += any(p != (0, 0) for p in ex.spec.padding)
    assert all(feats[k] >= 3 for k in ("groups", "dilation", "tail", "holes", "mode", "transposed", "padding")), feats


@pytest.mark.parametrize(
    "case",
    [
        Case(1, 2, 3, 1, (7,), (3,), padding=5, padding_mode="circular", dilation=2),  # wraps: copies of the tail
        Case(1, 1, 1, 1, (6, 5), (3, 2), stride=2, padding=((2, 1), (1, 2)), padding_mode="reflect"),
        Case(2, 4, 2, 2, (9,), (2,), stride=2, dilation=4),  # gcd(S, D) = 2: odd positions never read
        Case(1, 2, 2, 2, (4, 3), (3, 2), stride=(3, 2), padding=(2, 1), dilation=(2, 1), output_padding=(2, 1),
             transposed=True),
    ],
    ids=str,
)
def test_every_element_of_tricky_cases(case):
    ex = explanation_of(case)
    oracle = Oracle(case, ex)
    for quantity in QUANTITIES:
        shape = {"output": ex.full_output_shape, "grad_input": ex.full_input_shape,
                 "grad_weight": ex.weight_shape, "grad_bias": ex.bias_shape}[quantity]
        for idx in itertools.product(*map(range, shape)):
            _check_element(ex, oracle, quantity, idx)


def test_unbatched_indices_have_no_batch_axis():
    ex = explain((2, 5, 5), (3, 2, 3, 3), padding=1)
    assert ex.output_shape == (3, 5, 5) and ex.input_shape == (2, 5, 5)
    terms = ex.contributors("output", (1, 0, 0))
    assert terms[0] == (None, (1, 0, 0, 0))  # the corner tap reads padding
    assert ((0, 0, 0), (1, 0, 1, 1)) in terms and len(terms) == 18
    assert ex.contributors("grad_bias", 2)[:2] == [(2, 0, 0), (2, 0, 1)]
    assert all(len(a) == 3 for a, _ in ex.contributors("grad_input", (0, 4, 4)))


def test_contributors_sum_to_the_computed_value():
    """The pairs, multiplied and summed, give convgrad's own numbers (default algorithm)."""
    case = Case(2, 4, 6, 2, (7, 6), (3, 2), stride=(2, 1), padding=((1, 2), (0, 1)), dilation=(1, 2), bias=False)
    ex = explanation_of(case)
    x, w, _ = case.arrays(3)
    y = convgrad.conv(x, w, **case.kwargs())
    dy = np.random.default_rng(4).standard_normal(y.shape)
    g = convgrad.conv_backward(dy, x, w, **case.kwargs())
    val = lambda arr, t: 0.0 if t is None else arr[t]  # noqa: E731
    for idx in [(1, 3, 2, 4), (0, 0, 0, 0)]:
        assert np.isclose(sum(val(x, a) * w[b] for a, b in ex.contributors("output", idx)), y[idx])
    for idx in [(1, 2, 6, 5), (0, 1, 3, 0)]:
        assert np.isclose(sum(dy[a] * w[b] for a, b in ex.contributors("grad_input", idx)), g.input[idx])
    for idx in [(5, 1, 2, 1), (0, 0, 0, 0)]:
        assert np.isclose(sum(val(x, a) * dy[b] for a, b in ex.contributors("grad_weight", idx)), g.weight[idx])
    assert np.isclose(sum(dy[t] for t in ex.contributors("grad_bias", (4,))), g.bias[4])


@pytest.mark.parametrize(
    "quantity, index, error, match",
    [
        ("outputs", (0, 0, 0), ValueError, "quantity must be one of"),
        ("output", (0, 0), ValueError, r"needs 3 entries"),
        ("output", (0, 0, 9), ValueError, r"out of range for output of shape \(1, 2, 4\)"),
        ("grad_weight", (0, 0, 1.0), TypeError, "integers"),
        ("grad_input", "0,0,0", TypeError, "tuple of integers"),
    ],
)
def test_bad_indices_are_named(quantity, index, error, match):
    ex = explain((1, 1, 6), (2, 1, 3))
    with pytest.raises(error, match=match):
        ex.contributors(quantity, index)


def test_negative_indices_count_from_the_end():
    ex = explain((1, 1, 6), (2, 1, 3))
    assert ex.contributors("output", (0, -1, -1)) == ex.contributors("output", (0, 1, 3))
