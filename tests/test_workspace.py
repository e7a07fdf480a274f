"""convgrad.workspace: scratch blocks kept between operations, never handed out twice at once,
never part of a result."""

import threading

import numpy as np
import pytest

import convgrad
from convgrad import algorithms, workspace
from convgrad.spec import conv_spec
from _configs import supporting

BIG = (256, 256)  # 256 KiB of float32: above MIN_BYTES


@pytest.fixture(autouse=True)
def _cache_policy_without_reuse(monkeypatch):
    """These tests are about the cache, which keeps blocks only while malloc returns freed memory
    (convgrad.memory): pretend it does, whatever an earlier nn test of this process turned on."""
    from convgrad import memory

    monkeypatch.setitem(memory._state, "enabled", False)
    workspace.clear()
    yield
    workspace.clear()


def test_nothing_is_cached_while_malloc_keeps_freed_memory(monkeypatch):
    from convgrad import memory

    monkeypatch.setitem(memory._state, "enabled", True)
    with workspace.scope():
        a = workspace.empty(BIG, np.float32)
        a[...] = 1
    assert workspace.cached_bytes() == 0


def test_blocks_are_reused_after_their_scope_and_distinct_within_one():
    workspace.clear()
    with workspace.scope():
        a = workspace.empty(BIG, np.float32)
        b = workspace.zeros(BIG, np.float32)
        assert not np.shares_memory(a, b) and (b == 0).all()
        a_ptr = a.__array_interface__["data"][0]
    assert workspace.cached_bytes() == 2 * a.nbytes
    with workspace.scope():
        c = workspace.empty(BIG, np.float32)
        d = workspace.zeros(BIG, np.float32)
        assert {c.__array_interface__["data"][0], d.__array_interface__["data"][0]} >= {a_ptr}
        assert (d == 0).all() and workspace.cached_bytes() == 0
    workspace.clear()
    assert workspace.cached_bytes() == 0


def test_small_requests_and_requests_outside_a_scope_are_plain_numpy():
    workspace.clear()
    small = workspace.empty((4, 4), np.float64)
    outside = workspace.zeros(BIG, np.float32)
    with workspace.scope():
        tiny = workspace.zeros((10,), np.float32)
    assert small.base is None and outside.base is None and tiny.base is None and (outside == 0).all()
    assert workspace.cached_bytes() == 0


def test_the_cache_keeps_at_most_cache_factor_times_the_workspace_limit():
    workspace.clear()
    with convgrad.settings(workspace_limit=1200 * 2**10 // workspace.CACHE_FACTOR):  # room for 4 blocks of 256 KiB
        with workspace.scope():
            blocks = [workspace.empty(BIG, np.float32) for _ in range(6)]
        assert workspace.cached_bytes() == 4 * blocks[0].nbytes
    workspace.clear()


def _address(a) -> int:
    return a.__array_interface__["data"][0]


def test_a_smaller_request_is_served_by_the_smallest_cached_block_that_holds_it():
    workspace.clear()
    with workspace.scope():
        big = workspace.empty((512, 256), np.float32)     # 512 KiB
        mid = workspace.empty((300, 256), np.float32)     # 300 KiB
        huge = workspace.empty((2048, 512), np.float32)   # 4 MiB: more than FIT_FACTOR times the next request
    cached = workspace.cached_bytes()
    with workspace.scope():
        a = workspace.empty((280, 256), np.float32)       # fits in mid (and big): mid, the smallest
        b = workspace.empty((280, 256), np.float32)       # then big
        c = workspace.empty((280, 256), np.float32)       # not huge (over 4x): a fresh block
        assert (_address(a), _address(b)) == (_address(mid), _address(big))
        assert _address(c) != _address(huge) and a.shape == (280, 256)
        assert workspace.cached_bytes() == cached - big.nbytes - mid.nbytes
    workspace.clear()


def test_over_the_cap_smaller_blocks_make_room_for_a_larger_one():
    workspace.clear()
    with convgrad.settings(workspace_limit=1200 * 2**10 // workspace.CACHE_FACTOR):  # a cache of 1200 KiB
        with workspace.scope():
            small = [workspace.empty(BIG, np.float32) for _ in range(4)]  # 4 x 256 KiB cached
        with workspace.scope():
            large = workspace.empty((768, 256), np.float32)  # 768 KiB: no cached block holds it
        assert workspace.cached_bytes() == large.nbytes + small[0].nbytes  # three small ones evicted
        with workspace.scope():
            again = workspace.empty((700, 256), np.float32)
            assert _address(again) == _address(large)
    workspace.clear()


def test_a_fresh_block_first_drops_cached_ones_so_that_in_use_and_cached_stay_under_the_cap():
    workspace.clear()
    with convgrad.settings(workspace_limit=1200 * 2**10 // workspace.CACHE_FACTOR):  # cap 1200 KiB, in use and cached
        with workspace.scope():
            [workspace.empty(BIG, np.float32) for _ in range(3)]  # 3 x 256 KiB, cached when the scope ends
        assert workspace.cached_bytes() == 3 * 256 * 2**10
        with workspace.scope():
            held = [workspace.empty(BIG, np.float32) for _ in range(2)]  # two of them back in use
            assert workspace.cached_bytes() == 256 * 2**10
            large = workspace.empty((768, 256), np.float32)  # 512 in use + 256 cached + 768 > 1200: drop the cached one
            assert workspace.cached_bytes() == 0 and not any(np.shares_memory(large, h) for h in held)
    workspace.clear()


def test_worker_threads_of_an_operation_take_from_its_scope():
    from convgrad import parallel

    workspace.clear()
    seen = []
    with convgrad.settings(num_threads=2), workspace.scope():
        plan = parallel.Plan(batch=4, chunk=1, workers=2)
        parallel.run(plan, lambda: workspace.empty(BIG, np.float32), lambda s, a, b: seen.append(s.base is not None))
    assert seen == [True] * 4
    assert workspace.cached_bytes() > 0  # given back when the scope ended
    workspace.clear()


SHAPES = {"N1-O1": ((1, 4, 30, 30), (1, 4, 3, 3)), "depthwise": ((3, 4, 40, 40), (4, 1, 3, 3)),
          "1x1-groups": ((2, 64, 16, 16), (8, 16, 1, 1))}


def _kwargs(shape) -> dict:
    xs, ws = shape
    return dict(padding=ws[-1] // 2, groups=xs[1] // ws[1])


# every algorithm auto may pick (they use the workspace), on the shapes it computes
WORKSPACE_PAIRS = [pytest.param(name, shape, id=f"{name}-{key}") for key, shape in SHAPES.items()
                   for name in supporting([n for n in convgrad.available_algorithms()
                                           if algorithms.get_algorithm(n).auto_candidate], shape, **_kwargs(shape))]


@pytest.mark.parametrize("algorithm, shape", WORKSPACE_PAIRS)
def test_results_never_share_memory_with_the_workspace(algorithm, shape, monkeypatch):
    """A result that were a view of a scratch block would change when the block is reused."""
    monkeypatch.setattr(workspace, "MIN_BYTES", 0)  # every scratch array from the cache
    xs, ws = shape
    spec = conv_spec(xs, ws, **_kwargs(shape))
    rng = np.random.default_rng(0)
    x, w, dy = (rng.standard_normal(s).astype(np.float32) for s in (spec.input_shape, spec.weight_shape, spec.output_shape))
    results = [algorithms.run("forward", spec, x, w, algorithm), algorithms.run("grad_input", spec, dy, w, algorithm),
               algorithms.run("grad_weight", spec, x, dy, algorithm)]
    saved = [r.copy() for r in results]
    for _ in range(2):  # reuse every cached block, with other values
        algorithms.run("forward", spec, -x, 2 * w, algorithm)
        algorithms.run("grad_input", spec, -dy, 3 * w, algorithm)
        algorithms.run("grad_weight", spec, 2 * x, -dy, algorithm)
    for r, s in zip(results, saved):
        np.testing.assert_array_equal(r, s)


def test_concurrent_operations_from_user_threads_agree():
    spec = conv_spec((4, 16, 24, 24), (16, 16, 3, 3), padding=1)
    rng = np.random.default_rng(1)
    x = rng.standard_normal(spec.input_shape).astype(np.float32)
    w = rng.standard_normal(spec.weight_shape).astype(np.float32)
    expect = algorithms.run("forward", spec, x, w, "tapgemm")
    out = [None] * 4

    def work(i):
        out[i] = algorithms.run("forward", spec, x, w, "tapgemm" if i % 2 else "gemm")

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for r in out:
        np.testing.assert_allclose(r, expect, rtol=1e-4, atol=1e-4)
