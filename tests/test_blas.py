"""convgrad.blas: the accumulating matrix product on strided views, both paths, and BLAS threads."""

import numpy as np
import pytest

from convgrad import blas


def _views(dtype):
    rng = np.random.default_rng(0)
    big = rng.standard_normal((40, 50)).astype(dtype)
    a_views = [big[:5, :7], big[:7, :5].T, big[3:4, :7], big[:7, 2:3].T, big[::2, :7][:5]]
    b_views = [big[10:17, 1:9], big[10:18, 20:27].T, big[20:27, 5:6], np.ascontiguousarray(big[:7, :9])]
    return rng, a_views, b_views


@pytest.mark.parametrize("use_blas", [True, False], ids=["ctypes", "matmul-fallback"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_gemm_matches_matmul_on_strided_and_transposed_views(dtype, use_blas, monkeypatch):
    if not use_blas:
        monkeypatch.setattr(blas, "_BLAS", None)
    rng, a_views, b_views = _views(dtype)
    tol = 1e-5 if dtype == np.float32 else 1e-12
    for a in a_views:
        for b in b_views:
            c = rng.standard_normal((a.shape[0], b.shape[1])).astype(dtype)
            expect = 0.5 * (a.astype(np.float64) @ b) + 2.0 * c
            a0, b0 = a.copy(), b.copy()
            assert blas.gemm(a, b, c, alpha=0.5, beta=2.0) is c
            np.testing.assert_allclose(c, expect, rtol=tol, atol=tol)
            assert np.array_equal(a, a0) and np.array_equal(b, b0)  # inputs untouched
            # beta = 0 ignores whatever c held, NaN included, and writes only into the view
            host = np.full((c.shape[0] + 2, c.shape[1] + 3), np.nan, dtype)
            view = host[1:-1, 2:-1]
            blas.gemm(a, b, view)
            np.testing.assert_allclose(view, a.astype(np.float64) @ b, rtol=tol, atol=tol)
            assert np.isnan(host[0]).all() and np.isnan(host[:, :2]).all() and np.isnan(host[:, -1]).all()


def test_gemm_degenerate_sizes_and_errors():
    a = np.ones((3, 0), np.float32)
    b = np.ones((0, 4), np.float32)
    c = np.full((3, 4), 7.0, np.float32)
    blas.gemm(a, b, c, beta=0.5)
    assert (c == 3.5).all()
    blas.gemm(a, b, c)
    assert (c == 0).all()
    with pytest.raises(ValueError, match="do not match"):
        blas.gemm(np.ones((2, 3), np.float32), np.ones((4, 2), np.float32), np.ones((2, 2), np.float32))
    with pytest.raises(TypeError, match="dtype"):
        blas.gemm(np.ones((2, 2), np.float32), np.ones((2, 2)), np.ones((2, 2), np.float32))


def test_gemm_with_overlapping_output_falls_back_to_a_correct_result():
    a = np.arange(16, dtype=np.float64).reshape(4, 4)
    expect = a @ a + a
    blas.gemm(a, a.copy(), a, beta=1.0)  # c is a itself
    np.testing.assert_allclose(a, expect)


@pytest.mark.skipif(not blas.can_set_threads(), reason="BLAS thread count not settable here")
def test_single_threaded_block_restores_the_thread_count():
    before = blas.set_num_threads(2)
    try:
        with blas.single_threaded():
            assert blas.get_num_threads() == 1
            with blas.single_threaded():
                assert blas.get_num_threads() == 1
            assert blas.get_num_threads() == 1
        assert blas.get_num_threads() == 2
    finally:
        blas.set_num_threads(before)


@pytest.mark.parametrize("use_blas", [True, False], ids=["ctypes", "matmul-fallback"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_gemm_blocks_equals_gemm_on_the_blocks_views(dtype, use_blas, monkeypatch):
    if not use_blas:
        monkeypatch.setattr(blas, "_BLAS", None)
    rng = np.random.default_rng(1)
    host = rng.standard_normal((30, 40)).astype(dtype)
    big = blas.Buffer(host[2:28, 3:37])  # a view with row stride 40: rows contiguous, not the whole array
    out_host = np.full((12, 50), np.nan, dtype)
    out = blas.Buffer(out_host)
    tol = 1e-5 if dtype == np.float32 else 1e-12
    a = big.block(1, 6, 2, 9)  # (5, 7)
    for b in (big.block(10, 17, 0, 11), big.block(3, 14, 20, 27).T):  # (7, 11), plain and transposed
        for at in (a, big.block(4, 11, 25, 30).T):  # (5, 7) plain and transposed
            c = out.block(2, 7, 30, 41)
            np.testing.assert_array_equal(at.view(), (host[2:28, 3:37][4:11, 25:30]).T if at.trans else host[3:8, 5:12])
            blas.gemm_blocks(at, b, c)
            expect = at.view().astype(np.float64) @ b.view()
            np.testing.assert_allclose(c.view(), expect, rtol=tol, atol=tol)
            blas.gemm_blocks(at, b, c, alpha=2.0, beta=1.0)
            np.testing.assert_allclose(c.view(), 3 * expect, rtol=tol, atol=tol)
    assert np.isnan(out_host[:2]).all() and np.isnan(out_host[:, :30]).all() and np.isnan(out_host[7:]).all()


def test_buffer_blocks_check_bounds_shapes_and_layout():
    buf = blas.Buffer(np.zeros((4, 5), np.float32))
    with pytest.raises(IndexError, match="outside"):
        buf.block(0, 5, 0, 1)
    with pytest.raises(IndexError, match="outside"):
        buf.block(0, 1, 3, 6)
    with pytest.raises(ValueError, match="do not match"):
        blas.gemm_blocks(buf.block(0, 2, 0, 3), buf.block(0, 2, 0, 2), buf.block(0, 2, 0, 2))
    with pytest.raises(ValueError, match="rows must be contiguous"):
        blas.Buffer(np.zeros((4, 5), np.float32)[:, ::2])
    with pytest.raises(TypeError, match="2-D float32/float64"):
        blas.Buffer(np.zeros((4, 5), np.int32))
    with pytest.raises(TypeError, match="dtype"):
        other = blas.Buffer(np.zeros((4, 5)))
        blas.gemm_blocks(buf.block(0, 2, 0, 2), other.block(0, 2, 0, 2), buf.block(2, 4, 0, 2))
