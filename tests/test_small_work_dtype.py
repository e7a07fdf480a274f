"""Which operations run on one thread: the float32 cost estimate scaled to the dtype, against ``SMALL_WORK``.

The estimates are fitted in float32; a float64 operation takes about twice as long (half BLAS's rate, twice
the bytes), so LeNet's 1-ms layers, 2-3 ms in float64, go to every core there.
"""

import numpy as np
import torch

import convgrad
from convgrad import algorithms
from convgrad.algorithms import costmodel
from convgrad.spec import conv_spec

OPS = ("forward", "grad_input", "grad_weight")
G1 = conv_spec((64, 1, 28, 28), (6, 1, 5, 5), padding=2)  # LeNet-5's first convolution at batch 64
G2 = conv_spec((64, 6, 14, 14), (16, 6, 5, 5))  # and its second
TINY = conv_spec((2, 3, 8, 8), (4, 3, 3, 3))


def test_float64_counts_twice_the_float32_estimate():
    """g1's forward (samplegemm, ~0.7 ms estimated) runs on one thread in float32, on two in float64."""
    sample = algorithms.get_algorithm("samplegemm")
    est = costmodel.estimate("samplegemm", G1, "forward", 1)
    assert est < algorithms.SMALL_WORK < 2 * est
    assert algorithms.is_small(sample, G1, "forward", 4) and algorithms.is_small(sample, G1, "forward")
    assert not algorithms.is_small(sample, G1, "forward", 8)
    assert all(algorithms.is_small(algorithms.choose(TINY, op, 8), TINY, op, 8) for op in OPS)
    with convgrad.settings(num_threads=2):
        assert algorithms.choose(G1, "forward", 8).name == "samplegemm"
        plan = convgrad.plan(G1.input_shape, G1.weight_shape, padding=2, dtype=np.float64)
        assert plan._entry("forward")[1] is False  # plans (the nn layers) follow the same rule
        plan32 = convgrad.plan(G1.input_shape, G1.weight_shape, padding=2, dtype=np.float32)
        assert plan32._entry("forward")[1] is True


def test_a_float64_operation_runs_on_the_workers(monkeypatch):
    from convgrad import parallel

    calls = []
    real = parallel.run_chunks
    monkeypatch.setattr(parallel, "run_chunks", lambda plan, *a, **k: calls.append(plan.workers) or real(plan, *a, **k))
    rng = np.random.default_rng(0)
    with convgrad.settings(num_threads=2):
        for dtype in (np.float32, np.float64):
            x, w = (rng.standard_normal(s).astype(dtype) for s in (G2.input_shape, G2.weight_shape))
            algorithms.run("forward", G2, x, w)
    assert calls == [1, 2]  # rowgemm: on one worker in float32, two in float64


def test_lenet_layers_agree_with_torch_on_one_and_two_threads():
    """float64 to 1e-10 (now on two threads) and float32 within a small multiple of PyTorch's own error."""
    torch.set_num_threads(1)
    rng = np.random.default_rng(1)
    for spec, kw in ((G2, {}), (G1, {"padding": 2})):
        x, w, dy = (rng.standard_normal(s) for s in (spec.input_shape, spec.weight_shape, spec.output_shape))
        exact = _torch(x, w, dy, kw, torch.float64)
        theirs = _torch(*(a.astype(np.float32) for a in (x, w, dy)), kw, torch.float32)
        for threads in (1, 2):
            with convgrad.settings(num_threads=threads):
                for dtype in (np.float64, np.float32):
                    xd, wd, dyd = (a.astype(dtype) for a in (x, w, dy))
                    g = convgrad.conv_backward(dyd, xd, wd, **kw)
                    ours = (convgrad.conv2d(xd, wd, **kw), g.input, g.weight)
                    for o, e, t in zip(ours, exact, theirs):
                        assert o.dtype == dtype
                        bound = 1e-10 if dtype == np.float64 else 8 * max(_rel(t, e), 4 * np.finfo(np.float32).eps)
                        assert _rel(o, e) <= bound


def _torch(x, w, dy, kw, dtype):
    tx = torch.tensor(x, dtype=dtype, requires_grad=True)
    tw = torch.tensor(w, dtype=dtype, requires_grad=True)
    ty = torch.nn.functional.conv2d(tx, tw, **kw)
    ty.backward(torch.tensor(dy, dtype=dtype))
    return ty.detach().numpy(), tx.grad.numpy(), tw.grad.numpy()


def _rel(a, b):
    return float(np.abs(a.astype(np.float64) - b).max() / np.abs(b).max())
