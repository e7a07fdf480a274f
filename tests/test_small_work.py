"""Which operations run on one thread: the dispatcher's ``SMALL_WORK``, or an algorithm's own ``small_work``.

``rowgemm``'s workers each run a whole batch chunk (no hand-off inside an operation), so it declares a
lower threshold than the dispatcher's: LeNet's 6 -> 16 layer (g2, about a millisecond per operation on
one core) then runs on both cores, and ``auto`` compares it at the thread count it will run with.
"""

import numpy as np
import pytest
import torch

import convgrad
from convgrad import algorithms, parallel
from convgrad.algorithms import costmodel
from convgrad.spec import conv_spec

OPS = ("forward", "grad_input", "grad_weight")
G2 = conv_spec((64, 6, 14, 14), (16, 6, 5, 5))  # LeNet-5's second convolution at batch 64
TINY = conv_spec((2, 3, 8, 8), (4, 3, 3, 3))


def test_the_threshold_is_the_algorithms_own_when_it_declares_one():
    row, gemm = algorithms.get_algorithm("rowgemm"), algorithms.get_algorithm("gemm")
    assert row.small_work is not None and row.small_work < algorithms.SMALL_WORK and gemm.small_work is None
    for op in OPS:
        one = costmodel.estimate("rowgemm", G2, op, 1)
        assert row.small_work < one < algorithms.SMALL_WORK  # between the two thresholds...
        assert not algorithms.is_small(row, G2, op)  # ...so on every thread
        assert algorithms.is_small(row, TINY, op) and algorithms.is_small(gemm, TINY, op)
    # an algorithm without its own threshold keeps the dispatcher's
    spec = next(s for s in (conv_spec((64, 8, 12, 12), (8, 8, 3, 3), padding=1), conv_spec((32, 8, 12, 12), (8, 8, 3, 3)))
                if 3e-4 < costmodel.estimate("gemm", s, "forward", 1) < algorithms.SMALL_WORK)
    assert algorithms.is_small(gemm, spec, "forward")


def test_auto_compares_it_at_the_thread_count_it_runs_with(monkeypatch):
    """In the one-thread regime the others are compared on one thread, rowgemm (above its own threshold) on two."""
    calls = []
    with convgrad.settings(num_threads=2):
        for op in OPS:
            assert algorithms.choose(G2, op).name == "rowgemm"
        real = parallel.run_chunks
        monkeypatch.setattr(parallel, "run_chunks", lambda plan, *a, **k: calls.append(plan.workers) or real(plan, *a, **k))
        rng = np.random.default_rng(0)
        x, w, dy = (rng.standard_normal(s).astype(np.float32) for s in (G2.input_shape, G2.weight_shape, G2.output_shape))
        algorithms.run("forward", G2, x, w)
        algorithms.run("grad_input", G2, dy, w)
        algorithms.run("grad_weight", G2, x, dy)
    assert calls == [2, 2, 2]
    # were rowgemm compared at two threads everywhere, a cheaper one-thread pick could lose to it: the rule
    # changes only the comparison of algorithms that declare a threshold
    with convgrad.settings(num_threads=2):
        one = {n: costmodel.estimate(n, TINY, "forward", 1) for n in algorithms.candidates(TINY, "forward")}
        assert algorithms.choose(TINY, "forward").name == min(one, key=one.get)


@pytest.mark.parametrize("threads", [1, 2])
def test_lenet_layers_on_two_threads_match_torch_in_float32(threads):
    torch.set_num_threads(1)
    cases = [(G2, {}), (conv_spec((64, 1, 28, 28), (6, 1, 5, 5), padding=2), {"padding": 2})]
    rng = np.random.default_rng(1)
    for spec, kw in cases:
        x, w, dy = (rng.standard_normal(s).astype(np.float32) for s in (spec.input_shape, spec.weight_shape, spec.output_shape))
        with convgrad.settings(num_threads=threads):
            y = convgrad.conv2d(x, w, **kw)
            g = convgrad.conv_backward(dy, x, w, **kw)
        exact, theirs = (_torch(x, w, dy, kw, dtype) for dtype in (torch.float64, torch.float32))
        for ours, e, t in zip((y, g.input, g.weight), exact, theirs):
            assert ours.dtype == np.float32
            assert _rel(ours, e) <= 8 * max(_rel(t, e), 4 * np.finfo(np.float32).eps)


def _torch(x, w, dy, kw, dtype):
    tx = torch.tensor(x, dtype=dtype, requires_grad=True)
    tw = torch.tensor(w, dtype=dtype, requires_grad=True)
    ty = torch.nn.functional.conv2d(tx, tw, **kw)
    ty.backward(torch.tensor(dy, dtype=dtype))
    return ty.detach().numpy(), tx.grad.numpy(), tw.grad.numpy()


def _rel(a, b):
    return float(np.abs(a.astype(np.float64) - b).max() / np.abs(b).max())


def test_float64_counts_twice_the_float32_estimate():
    """g1's forward (samplegemm, ~0.7 ms estimated in float32) runs on one thread in float32, on two in float64."""
    g1 = conv_spec((64, 1, 28, 28), (6, 1, 5, 5), padding=2)
    sample = algorithms.get_algorithm("samplegemm")
    assert sample.small_work is None
    est = costmodel.estimate("samplegemm", g1, "forward", 1)
    assert est < algorithms.SMALL_WORK < 2 * est
    assert algorithms.is_small(sample, g1, "forward", 4) and algorithms.is_small(sample, g1, "forward")
    assert not algorithms.is_small(sample, g1, "forward", 8)
    with convgrad.settings(num_threads=2):
        assert algorithms.choose(g1, "forward", 8).name == "samplegemm"
        plan = convgrad.plan((64, 1, 28, 28), (6, 1, 5, 5), padding=2, dtype=np.float64)
        assert plan._entry("forward")[1] is False
