"""The lean nn stack: threaded slices of the batch, released caches, no float64 in float32 runs.

Every path is compared with torch.nn at 1e-10 in float64; the threaded paths (taken on arrays of
at least batch_split.MIN_BYTES) are forced on small arrays by lowering that threshold.
"""

import numpy as np
import pytest

import convgrad
from convgrad import batch_split, blas, nn

from _nn_torch import compare_passes

torch = pytest.importorskip("torch")


@pytest.fixture
def threaded(monkeypatch):
    """Two threads and no size threshold: every layer below cuts its batch in two slices."""
    monkeypatch.setattr(batch_split, "MIN_BYTES", 0)
    with convgrad.settings(num_threads=2):
        yield


def _model(lib, rng_seed=0):
    layers = [lib.Conv2d(2, 4, 3, padding=1), lib.BatchNorm2d(4), lib.ReLU(), lib.MaxPool2d(2),
              lib.Conv2d(4, 4, 3, padding=1), lib.BatchNorm2d(4), lib.ReLU(), lib.MaxPool2d(3, stride=2, padding=1),
              lib.Flatten(), lib.Linear(4 * 2 * 2, 3)]
    return lib.Sequential(*layers)


@pytest.mark.parametrize("train", [True, False])
def test_threaded_layers_match_torch(threaded, train):
    assert len(batch_split.slices(5, 8)) == 2
    torch.manual_seed(0)
    tm = _model(torch.nn).double()
    with torch.no_grad():
        for m in tm.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.weight.uniform_(0.5, 2), m.bias.uniform_(-1, 1), m.running_mean.uniform_(-1, 1)
                m.running_var.uniform_(0.5, 2)
    x = np.random.default_rng(3).integers(-3, 4, (5, 2, 8, 8)).astype(np.float64)  # ties in the pooling windows
    compare_passes(_model(nn).to(np.float64), tm, x, train=train)


def test_threaded_results_equal_the_single_slice_ones(monkeypatch):
    rng = np.random.default_rng(4)
    x = rng.integers(-3, 4, (6, 3, 8, 8)).astype(np.float32)
    dy = rng.standard_normal((6, 3, 4, 4)).astype(np.float32)
    runs = []
    for min_bytes, threads in ((1 << 40, 1), (0, 2)):
        monkeypatch.setattr(batch_split, "MIN_BYTES", min_bytes)
        with convgrad.settings(num_threads=threads):
            relu, pool = nn.ReLU(), nn.MaxPool2d(2)
            y = pool(relu(x))
            runs.append((y, relu.backward(pool.backward(dy))))
    for a, b in zip(*runs):
        np.testing.assert_array_equal(a, b)


def test_sequential_and_basic_block_release_what_forward_kept():
    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1, bias=False), nn.BatchNorm2d(8), nn.ReLU(),
                          nn.BasicBlock(8, 16, 2, rng=0), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 4))
    x = np.random.default_rng(5).standard_normal((4, 3, 8, 8)).astype(np.float32)
    y = model(x)
    assert all(m._cache is not None for m in model.modules() if m is not model and not isinstance(m, nn.Sequential))
    model.backward(np.ones_like(y), input_grad=False)
    assert all(m._cache is None for m in model.modules())
    with pytest.raises(RuntimeError, match="a second time after one forward"):
        model.backward(np.ones_like(y))


@pytest.mark.parametrize("train", [True, False])
def test_float32_runs_make_no_float64_arrays(train):
    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.MaxPool2d(2),
                          nn.BasicBlock(8, 8, 1, rng=0), nn.AvgPool2d(2), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                          nn.Linear(8, 4)).train(train)
    x = np.random.default_rng(6).standard_normal((4, 3, 8, 8)).astype(np.float32)
    seen = []
    for m in model:
        x = m(x)
        seen.append(x.dtype)
        for item in m._cache or ():
            if isinstance(item, np.ndarray) and item.dtype.kind == "f":
                seen.append(item.dtype)
    g = np.ones_like(x)
    for m in reversed(list(model)):
        g = m.backward(g)
        seen.append(g.dtype)
    assert set(seen) == {np.dtype(np.float32)}
    assert all(p.grad.dtype == np.float32 for p in model.parameters())


def test_max_pool_keeps_one_byte_per_output():
    pool = nn.MaxPool2d(2)
    pool(np.zeros((2, 3, 8, 8), dtype=np.float32))
    kept = [a for a in pool._cache if isinstance(a, np.ndarray)]
    assert len(kept) == 1 and kept[0].dtype == np.int8 and kept[0].shape == (2, 3, 4, 4)


@pytest.mark.skipif(not blas.can_set_threads(), reason="the BLAS thread count cannot be read here")
def test_linear_keeps_numpys_blas_on_one_thread(monkeypatch):
    """Linear's three products run on convgrad's workers: NumPy's multithreaded BLAS would leave its
    threads spinning into the next layer's workers (the VGG step's convolutions ran at half speed)."""
    seen = []
    real = blas.gemm
    monkeypatch.setattr(blas, "gemm", lambda *a, **k: (seen.append(blas.get_num_threads()), real(*a, **k))[1])
    layer = nn.Linear(2048, 512, rng=0)
    x = np.random.default_rng(1).standard_normal((64, 2048)).astype(np.float32)
    with convgrad.runtime.settings(num_threads=2):
        y = layer(x)
        dx = layer.backward(np.ones_like(y))
    assert len(seen) >= 3 and set(seen) == {1}
    np.testing.assert_allclose(y, x @ layer.weight.value.T + layer.bias.value, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(dx, np.ones_like(y) @ layer.weight.value, rtol=1e-4, atol=1e-4)


def test_linear_takes_an_empty_batch():
    layer = nn.Linear(8, 4, rng=0)
    for shape in ((0, 8), (2, 0, 8)):
        y = layer(np.zeros(shape, np.float32))
        assert y.shape == (*shape[:-1], 4)
        assert layer.backward(y).shape == shape
