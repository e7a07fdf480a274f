"""What the fast algorithms promise beyond agreeing with ``direct`` (tests/test_algorithms.py does that):
results independent of the thread count and the workspace limit, and scratch memory bounded by it."""

import tracemalloc

import numpy as np
import pytest

import convgrad
from convgrad import algorithms
from convgrad.spec import conv_spec

# the algorithms that chunk the batch under the workspace limit
CHUNKED = [name for name in ("tapgemm",) if name in convgrad.available_algorithms()]


def _operands(spec, seed=0, dtype=np.float64):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(spec.input_shape).astype(dtype)
    w = rng.standard_normal(spec.weight_shape).astype(dtype)
    dy = rng.standard_normal(spec.output_shape).astype(dtype)
    return x, w, dy


def _all_ops(spec, x, w, dy, name):
    return (algorithms.run("forward", spec, x, w, name), algorithms.run("grad_input", spec, dy, w, name),
            algorithms.run("grad_weight", spec, x, dy, name))


@pytest.mark.parametrize("algorithm", CHUNKED)
def test_results_do_not_depend_on_threads_or_workspace(algorithm):
    spec = conv_spec((5, 4, 9, 8), (6, 2, 3, 3), stride=2, padding=1, groups=2)
    if any(algorithms.get_algorithm(algorithm).unsupported(spec, op) for op in ("forward", "grad_input", "grad_weight")):
        spec = conv_spec((5, 4, 9, 8), (4, 4, 3, 3), padding=1)
    x, w, dy = _operands(spec)
    results = []
    for threads, limit in ((1, 2**30), (2, 0), (3, 5000)):
        with convgrad.settings(num_threads=threads, workspace_limit=limit):
            results.append(_all_ops(spec, x, w, dy, algorithm))
    for other in results[1:]:
        for a, b in zip(results[0], other):
            np.testing.assert_allclose(a, b, rtol=1e-13, atol=1e-13)


@pytest.mark.parametrize("algorithm", CHUNKED)
@pytest.mark.parametrize("op", ["forward", "grad_input", "grad_weight"])
def test_scratch_memory_stays_under_the_workspace_limit(algorithm, op):
    """NumPy reports its allocations to tracemalloc: the peak beyond the result is the scratch."""
    spec = conv_spec((24, 8, 40, 40), (8, 8, 3, 3), padding=1)
    x, w, dy = _operands(spec, dtype=np.float32)
    operands = {"forward": (x, w), "grad_input": (dy, w), "grad_weight": (x, dy)}[op]
    limit = 128 * 2**10  # a few batch elements' worth: many chunks
    with convgrad.settings(workspace_limit=limit, num_threads=2):
        algorithms.run(op, spec, *operands, algorithm)  # warm up (thread pool, imports)
        tracemalloc.start()
        try:
            result = algorithms.run(op, spec, *operands, algorithm)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    scratch = peak - result.nbytes
    slack = 16 * w.nbytes + 64 * 2**10  # transformed weights, small bookkeeping
    assert scratch <= limit + slack, f"{op}: {scratch} bytes of scratch for a limit of {limit}"
    # and the limit really was binding: the whole batch's scratch would be far larger
    assert x.nbytes > 8 * limit
