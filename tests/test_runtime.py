"""Workspace limit and thread count: explicit settings, chunk planning and the worker pool."""

import threading

import numpy as np
import pytest

import convgrad
from convgrad import blas, parallel, runtime


def test_settings_set_get_and_context_manager():
    limit = runtime.get_workspace_limit()
    threads = runtime.get_num_threads()
    with convgrad.settings(workspace_limit=123, num_threads=1):
        assert runtime.get_workspace_limit() == 123
        assert runtime.get_num_threads() == 1
        with convgrad.settings(num_threads=3):
            assert runtime.get_num_threads() == 3
            assert runtime.get_workspace_limit() == 123
    assert runtime.get_workspace_limit() == limit
    assert runtime.get_num_threads() == threads
    previous = convgrad.set_workspace_limit(2**20)
    try:
        assert previous == limit and convgrad.get_workspace_limit() == 2**20
    finally:
        convgrad.set_workspace_limit(previous)
    previous = convgrad.set_num_threads(1)
    try:
        assert convgrad.get_num_threads() == 1
    finally:
        convgrad.set_num_threads(previous)


def test_context_settings_do_not_leak_into_other_threads():
    seen = []
    with convgrad.settings(num_threads=5):
        t = threading.Thread(target=lambda: seen.append(runtime.get_num_threads()))
        t.start()
        t.join()
    assert seen == [runtime.get_num_threads()]


@pytest.mark.parametrize("call, message", [
    (lambda: convgrad.set_workspace_limit(-1), "non-negative"),
    (lambda: convgrad.set_workspace_limit(1.5), "integer number of bytes"),
    (lambda: convgrad.set_num_threads(0), "positive"),
    (lambda: convgrad.set_num_threads(True), "positive integer"),
    (lambda: convgrad.settings(num_threads="2").__enter__(), "positive integer"),
])
def test_bad_settings_are_refused_with_the_parameter_name(call, message):
    with pytest.raises((ValueError, TypeError), match=message):
        call()


@pytest.mark.parametrize("batch, per_item, fixed, limit, threads", [
    (32, 1_000_000, 0, 32 * 2**20, 2),
    (1000, 10_000, 50_000, 2**20, 2),
    (7, 5_000_000, 0, 2**20, 2),  # one element does not fit: one element per chunk, one worker
    (3, 100, 0, 2**30, 8),
    (0, 100, 0, 2**20, 2),
])
def test_plan_keeps_the_scratch_of_all_workers_under_the_limit(batch, per_item, fixed, limit, threads):
    with convgrad.settings(workspace_limit=limit, num_threads=threads):
        p = parallel.plan(batch, per_item, fixed, uses_blas=False)
    assert p.chunk >= 1 and 1 <= p.workers <= threads
    chunks = p.chunks()
    assert sum(stop - start for start, stop in chunks) == batch
    if p.workers * (fixed + per_item) <= limit:
        assert p.workers * (fixed + p.chunk * per_item) <= limit
    else:
        assert p.chunk == 1 and p.workers == 1


def test_run_covers_every_chunk_once_and_returns_each_workers_scratch():
    p = parallel.Plan(batch=10, chunk=3, workers=2)
    seen = []

    def process(scratch, start, stop):
        scratch.append((start, stop))
        seen.append((start, stop))

    results = parallel.run(p, list, process)
    assert sorted(seen) == [(0, 3), (3, 6), (6, 8), (8, 10)]  # 4 chunks (a multiple of the workers), even sizes
    assert sorted(x for r in results for x in r) == sorted(seen)


def test_run_reraises_a_workers_exception():
    p = parallel.Plan(batch=8, chunk=1, workers=2)

    def process(scratch, start, stop):
        if start == 5:
            raise KeyError("boom")

    with pytest.raises(KeyError, match="boom"):
        parallel.run(p, lambda: None, process)


@pytest.mark.parametrize("shape", [(3, 4, 5), (300, 200, 40), (10, 300, 900), (2000, 64, 1), (1, 2048, 10)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_parallel_matmul_equals_numpy_on_both_split_directions(shape, dtype):
    m, k, n = shape
    rng = np.random.default_rng(0)
    a = rng.standard_normal((m, k)).astype(dtype)
    b = rng.standard_normal((n, k)).astype(dtype).T  # a transposed view, as Linear passes W.T
    a0, b0 = a.copy(), b.copy()
    with runtime.settings(num_threads=2):
        got = parallel.matmul(a, b)
    assert got.shape == (m, n) and got.dtype == dtype
    np.testing.assert_allclose(got, a.astype(np.float64) @ b.astype(np.float64), rtol=1e-5 if dtype == np.float32 else 1e-12,
                               atol=1e-4 if dtype == np.float32 else 1e-10)
    assert np.array_equal(a, a0) and np.array_equal(b, b0)


def test_parallel_matmul_mixed_dtypes_and_errors():
    a = np.ones((3, 4), np.float32)
    assert parallel.matmul(a, np.ones((4, 2))).dtype == np.float64
    with pytest.raises(ValueError, match=r"matmul: needs \(M, K\) @ \(K, N\).*\(3, 4\) and \(5, 2\)"):
        parallel.matmul(a, np.ones((5, 2), np.float32))


@pytest.mark.skipif(not blas.can_set_threads(), reason="the BLAS thread count cannot be read here")
def test_parallel_matmul_never_runs_blas_on_more_than_one_thread(monkeypatch):
    """A product NumPy would give its multithreaded BLAS runs on convgrad's workers, BLAS on one thread
    each: BLAS's own threads would spin on after it into the next layer's workers (parallel.matmul)."""
    seen = []
    real = blas.gemm

    def spy(*args, **kwargs):
        seen.append(blas.get_num_threads())
        return real(*args, **kwargs)

    monkeypatch.setattr(blas, "gemm", spy)
    before = blas.get_num_threads()
    with runtime.settings(num_threads=2):
        parallel.matmul(np.ones((512, 512), np.float32), np.ones((512, 256), np.float32))
    assert seen and set(seen) == {1}
    assert blas.get_num_threads() == before


@pytest.mark.skipif(not blas.can_set_threads(), reason="the BLAS thread count cannot be read here")
@pytest.mark.parametrize("algorithm", ["gemm", "im2row"])
def test_whole_batch_algorithms_keep_blas_on_one_thread(algorithm, monkeypatch):
    """gemm's and im2row's products go through parallel.matmul: every BLAS call sees one BLAS thread."""
    seen = []
    real = blas.gemm
    monkeypatch.setattr(blas, "gemm", lambda *a, **k: (seen.append(blas.get_num_threads()), real(*a, **k))[1])
    monkeypatch.setattr(convgrad.algorithms, "is_small", lambda *args: False)  # on two threads, however small
    rng = np.random.default_rng(0)
    x = rng.standard_normal((8, 16, 20, 20)).astype(np.float32)
    w = rng.standard_normal((32, 16, 3, 3)).astype(np.float32)
    with runtime.settings(num_threads=2):
        y = convgrad.conv2d(x, w, padding=1, algorithm=algorithm)
        g = convgrad.conv_backward(np.ones_like(y), x, w, padding=1, algorithm=algorithm)
    assert len(seen) >= 6 and set(seen) == {1}
    ref = convgrad.conv_backward(np.ones_like(y), x, w, padding=1, algorithm="direct")
    np.testing.assert_allclose(g.weight, ref.weight, rtol=1e-4, atol=1e-2)


@pytest.mark.skipif(not blas.can_set_threads(), reason="the BLAS thread count cannot be read here")
@pytest.mark.parametrize("algorithm", ["tapgemm", "samplegemm", "winograd", "pointwise"])
def test_one_thread_means_blas_on_one_thread_too(algorithm):
    """set_num_threads(1): no worker threads, and BLAS not on its own threads either (their spinning made a
    ResNet-8 step 13x slower on 2 cores). Read inside the algorithm, at its first BLAS call."""
    seen = []

    def spy(real):
        return lambda *args, **kwargs: (seen.append(blas.get_num_threads()), real(*args, **kwargs))[1]

    rng = np.random.default_rng(0)
    x = rng.standard_normal((4, 8, 12, 12)).astype(np.float32)
    k = 1 if algorithm == "pointwise" else 3
    w = rng.standard_normal((8, 8, k, k)).astype(np.float32)
    before = blas.get_num_threads()
    blas.set_num_threads(2)  # BLAS on its own threads outside convgrad (as NumPy starts on 2+ cores)
    try:
        with pytest.MonkeyPatch.context() as mp, runtime.settings(num_threads=1):
            for name in ("gemm", "gemm_blocks"):
                mp.setattr(blas, name, spy(getattr(blas, name)))
            mp.setattr(np, "matmul", spy(np.matmul))
            stride = 2 if algorithm == "pointwise" else 1  # pointwise's stacked products
            y = convgrad.conv2d(x, w, padding=k // 2, stride=stride, algorithm=algorithm)
            convgrad.conv_backward(np.ones_like(y), x, w, padding=k // 2, stride=stride, algorithm=algorithm)
        assert blas.get_num_threads() == 2
    finally:
        blas.set_num_threads(before)
    assert seen and set(seen) == {1}, seen
