"""``chunkgemm`` beyond the shared grids (tests/test_algorithms.py, test_torch_oracle.py, test_fast_algorithms.py
run it like every algorithm): LeNet-sized layers against PyTorch in both dtypes, many uneven chunks on several
workers against the ``direct`` loops, the adjoint identities, and the thread rule that makes it worth having."""

import numpy as np
import pytest
import torch

import convgrad
from convgrad import algorithms
from convgrad.algorithms import chunkgemm, costmodel
from convgrad.spec import conv_spec
from _configs import Case, max_rel, torch_reference

torch.set_num_threads(1)

OPS = ("forward", "grad_input", "grad_weight")

# odd sizes, batch 1, groups, stride, dilation, asymmetric padding, 1-D and 3-D, a padding mode
CASES = [
    Case(64, 6, 16, 1, (14, 14), (5, 5), bias=True),  # LeNet-5's second layer (g2)
    Case(7, 1, 6, 1, (13, 11), (5, 5), padding=2),  # g1's shape, odd
    Case(1, 4, 6, 2, (9, 8), (3, 3), stride=(1, 2), dilation=(2, 1), padding=1),
    Case(3, 3, 5, 1, (11,), (4,), stride=3, padding=((2, 0),), dilation=2),
    Case(2, 4, 4, 4, (5, 6, 7), (2, 3, 3), padding=(0, 1, 1)),
    Case(2, 3, 4, 1, (6, 7), (3, 3), padding=1, padding_mode="reflect"),
]


def _ours(case, x, w, b, dy, **settings):
    with convgrad.settings(**settings):
        y, g = case.run(x, w, b, dy, algorithm="chunkgemm")
    return y, g.input, g.weight, g.bias


@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{c.size}x{c.kernel}g{c.groups}s{c.stride}")
def test_float64_agrees_with_direct_and_torch(case):
    x, w, b = case.arrays(1, np.float64)
    dy = np.random.default_rng(2).standard_normal(case.run(x, w, b, algorithm="direct")[0].shape)
    ref = case.run(x, w, b, dy, algorithm="direct")
    ref = (ref[0], ref[1].input, ref[1].weight, ref[1].bias)
    ours = _ours(case, x, w, b, dy)
    theirs = torch_reference(case, x, w, b, dy)
    for name, a, r, t in zip(("output", "grad_input", "grad_weight", "grad_bias"), ours, ref, theirs or ref):
        assert a.shape == r.shape and a.dtype == np.float64, name
        assert max_rel(a, r) < 1e-10, f"{name} vs direct: {max_rel(a, r):.1e}"
        assert max_rel(a, t) < 1e-10, f"{name} vs torch: {max_rel(a, t):.1e}"


@pytest.mark.parametrize("case", CASES[:3], ids=["g2", "g1-odd", "groups"])
def test_float32_error_is_a_small_multiple_of_torch_float32_error(case):
    x, w, b = case.arrays(3, np.float32)
    dy = np.random.default_rng(4).standard_normal(torch_reference(case, x, w, b, None)[0].shape).astype(np.float32)
    exact = torch_reference(case, *(a.astype(np.float64) for a in (x, w, b, dy)))
    theirs = torch_reference(case, x, w, b, dy)
    for name, a, t, e in zip(("output", "grad_input", "grad_weight"), _ours(case, x, w, b, dy, num_threads=2), theirs,
                             exact):
        assert a.dtype == np.float32, name
        assert max_rel(a, e) <= 8 * max(max_rel(t, e), 4 * np.finfo(np.float32).eps), name


@pytest.mark.parametrize("threads, limit", [(1, 2**30), (2, 2**30), (3, 40_000), (2, 1)])
def test_uneven_chunks_on_several_workers_agree_with_direct(threads, limit):
    """13 elements cut by the workspace limit into chunks of different sizes, on 1-3 workers (1 byte: one element each)."""
    case = Case(13, 4, 6, 2, (9, 7), (3, 2), stride=(1, 2), padding=(1, 0))
    x, w, b = case.arrays(5, np.float64)
    dy = np.random.default_rng(6).standard_normal(case.run(x, w, b, algorithm="direct")[0].shape)
    ref = case.run(x, w, b, dy, algorithm="direct")
    ours = _ours(case, x, w, b, dy, num_threads=threads, workspace_limit=limit)
    for a, r in zip(ours, (ref[0], ref[1].input, ref[1].weight, ref[1].bias)):
        assert max_rel(a, r) < 1e-12


def test_adjoint_identities_hold():
    """<conv(x, w), dy> = <x, dx> = <w, dw>: the three operations are one bilinear form (no bias)."""
    spec = conv_spec((5, 6, 11, 10), (8, 3, 3, 4), stride=(2, 1), padding=(2, 1), dilation=(1, 2), groups=2)
    rng = np.random.default_rng(7)
    x, w, dy = (rng.standard_normal(s) for s in (spec.input_shape, spec.weight_shape, spec.output_shape))
    y = algorithms.run("forward", spec, x, w, "chunkgemm")
    dx = algorithms.run("grad_input", spec, dy, w, "chunkgemm")
    dw = algorithms.run("grad_weight", spec, x, dy, "chunkgemm")
    form = np.vdot(y, dy)
    assert np.vdot(x, dx) == pytest.approx(form, rel=1e-12)
    assert np.vdot(w, dw) == pytest.approx(form, rel=1e-12)


def test_operands_are_not_written_and_results_are_fresh():
    spec = conv_spec((3, 2, 6, 6), (4, 2, 3, 3), padding=1)
    rng = np.random.default_rng(8)
    x, w, dy = (rng.standard_normal(s) for s in (spec.input_shape, spec.weight_shape, spec.output_shape))
    copies = [a.copy() for a in (x, w, dy)]
    results = [algorithms.run(op, spec, a, b, "chunkgemm") for op, a, b in
               (("forward", x, w), ("grad_input", dy, w), ("grad_weight", x, dy))]
    assert all(np.array_equal(a, c) for a, c in zip((x, w, dy), copies))
    assert not any(np.may_share_memory(r, a) for r in results for a in (x, w, dy))


def test_lenet_layer_runs_on_both_cores_and_auto_picks_it_there():
    """g2's operations (~1 ms on one core) are above chunkgemm's own one-thread threshold (0.5 ms), below
    the dispatcher's (1 ms): auto compares it at two threads, the others at one, and picks it."""
    g2 = conv_spec((64, 6, 14, 14), (16, 6, 5, 5))
    alg = algorithms.get_algorithm("chunkgemm")
    with convgrad.settings(num_threads=2):
        for op in OPS:
            assert costmodel.estimate("chunkgemm", g2, op, 1) > alg.small_work
            assert not algorithms.is_small(alg, g2, op)
            assert algorithms.choose(g2, op).name == "chunkgemm"
    with convgrad.settings(num_threads=1):  # on one core nothing is gained from chunks: the others' estimates win
        assert all(algorithms.choose(g2, op).name != "chunkgemm" for op in OPS)
    tiny = conv_spec((2, 3, 8, 8), (4, 3, 3, 3))
    assert all(algorithms.is_small(alg, tiny, op) for op in OPS)


def test_one_chunk_per_worker_when_the_workspace_allows():
    g2 = conv_spec((64, 6, 14, 14), (16, 6, 5, 5))
    with convgrad.settings(num_threads=2):
        assert chunkgemm._Chunks(g2, 4).plan.chunks() == [(0, 32), (32, 64)]
    with convgrad.settings(num_threads=2, workspace_limit=2**20):  # ~71 KB per element: 7 per chunk
        plan = chunkgemm._Chunks(g2, 4).plan
        assert plan.workers == 2 and plan.chunk * 71_000 * 2 <= 2**20 + 2 * 71_000
