"""benchmarks/gemm_ceiling.py and benchmarks/thread_scaling.py: what they record runs and adds up (not their timings)."""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path

import numpy as np
import pytest

import convgrad
from convgrad import algorithms
from convgrad.spec import conv_spec

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def _load(name: str):
    spec = importlib.util.spec_from_file_location(name, BENCHMARKS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def ceiling():
    return _load("gemm_ceiling")


@pytest.fixture(scope="module")
def scaling():
    return _load("thread_scaling")


def test_records_every_convolution_operation_of_a_real_step(ceiling):
    pytest.importorskip("torch")  # the networks get PyTorch's initial weights
    compute, threads = algorithms._compute, convgrad.get_num_threads()
    try:
        out = ceiling._convgrad_child("cnn1d", "float32", steps=1, threads=1, repeats=1)
    finally:
        convgrad.set_num_threads(threads)  # (the script's child process sets it for good)
    assert algorithms._compute is compute  # the timer is taken off again
    ops = sorted((o["conv"], o["op"]) for o in out["ops"])
    # three convolutions: forward and weight gradient each, input gradient for the two after the first
    assert len(ops) == 8
    assert ("N128 1->32 40 k5 s2", "grad_input") not in ops
    assert {op for _, op in ops} == {"forward", "grad_input", "grad_weight"}
    assert 0 < out["conv_ms"] < out["step_ms"]
    assert all(o["products_ms"] > 0 and o["in_step_ms"] > 0 and o["calls"] == 1 for o in out["ops"])


def test_counts_the_calls_of_layers_that_share_a_shape(ceiling):
    pytest.importorskip("torch")
    threads = convgrad.get_num_threads()
    try:
        out = ceiling._convgrad_child("resnet8", "float32", steps=1, threads=1, repeats=1)
    finally:
        convgrad.set_num_threads(threads)
    twice = [o for o in out["ops"] if o["conv"] == "N64 16->16 32x32 k3x3 s1,1"]  # block 1's two convolutions
    assert sorted(o["op"] for o in twice) == ["forward", "grad_input", "grad_weight"]
    assert all(o["calls"] == 2 for o in twice)
    assert sum(o["calls"] for o in out["ops"]) == 3 * 9 - 1  # nine convolutions; the stem's input gradient not needed


@pytest.mark.parametrize("op", ["forward", "grad_input", "grad_weight"])
@pytest.mark.parametrize("shape", [((5, 3, 9, 9), (4, 3, 3, 3)),  # one chunk, stacked weight-gradient products
                                   ((8, 16, 32, 32), (16, 16, 3, 3))])  # 8 chunks on two workers, BLAS beta = 1
def test_products_run_in_every_arrangement(ceiling, op, shape):
    spec = conv_spec(*shape, padding=1)
    times = (ceiling.per_sample_ms(op, spec, np.dtype(np.float32), threads=2, repeats=1),
             ceiling.side_by_side_ms(op, spec, np.dtype(np.float32), threads=2, repeats=1),
             ceiling.whole_batch_ms(op, spec, np.dtype(np.float64), repeats=1))
    assert all(math.isfinite(t) and t > 0 for t in times)
    for small in (False, True):
        assert ceiling.products_ms(op, spec, np.dtype(np.float32), 2, 1, small) > 0


def test_summary_bound_is_its_rounds_rest_plus_products(ceiling):
    def cg(step, conv, rest, products):
        return {"step_ms": step, "conv_ms": conv, "rest_ms": rest, "ops": [{"products_ms": p} for p in products]}

    runs = {"torch": [{"step_ms": 10.0}, {"step_ms": 12.0}],
            "convgrad": [cg(15.0, 9.0, 6.5, [2.0, 1.0]), cg(13.0, 8.0, 5.0, [2.5, 0.5])]}
    row = ceiling.summarise(runs)
    assert row["bounds_ms"] == [9.5, 8.0]
    assert row["bound_ms"] == 8.0 == row["rest_ms"] + row["products_ms"]  # the lower median's round, whole
    assert row["convgrad_conv_ms"] == 8.0
    assert row["torch_step_ms"] == 11.0 and row["convgrad_step_ms"] == 14.0
    assert row["ratio_bound"] == pytest.approx(8.0 / 11.0)


def test_products_refuse_groups(ceiling):
    with pytest.raises(ValueError, match="groups=2"):
        ceiling._dims(conv_spec((2, 4, 5, 5), (4, 2, 3, 3), groups=2))


@pytest.mark.parametrize("name", ["numpy copy 1 MiB x 64", "BLAS product (32, 288) @ (288, 910) x 16"])
@pytest.mark.parametrize("share", [1, 2])
def test_kernels_run_on_the_executor(scaling, name, share):
    assert name in scaling.KERNELS
    run = scaling._kernel(name, share)
    run()
    run()


def test_worker_start_latency_is_measured(scaling):
    out = scaling._start_latency(idles_ms=(0.0, 0.5), trials=2)
    assert set(out) == {0.0, 0.5}
    assert all(0 <= median <= worst for median, worst in out.values())


def test_every_column_times_the_algorithm_picked_for_two_threads(scaling):
    for case in scaling.CASES:
        _, xs, ws, stride, padding, op = case
        spec = conv_spec(xs, ws, stride=stride, padding=padding)
        for threads in (1, 2):
            with convgrad.runtime.settings(num_threads=threads):
                assert scaling._algorithm_name(case, threads) == algorithms.choose(spec, op).name


def test_a_child_times_the_algorithm_it_is_given(scaling, monkeypatch):
    used = []
    monkeypatch.setattr(algorithms, "execute", lambda alg, *args, **kwargs: used.append(alg.name))
    scaling._convolution(scaling.CASES[0], 4, "tapgemm")()
    assert used == ["tapgemm"]


def test_row_oriented_forward_is_the_convolution():
    module = _load("row_forward_parts")
    rng = np.random.default_rng(3)
    x = rng.standard_normal((5, 4, 7, 6))  # five samples in chunks of two: the last chunk is short
    w = rng.standard_normal((3, 4, 3, 3))
    y, parts = module.row_forward(x, w, nb=2)
    np.testing.assert_allclose(y, convgrad.conv2d(x, w, padding=1), rtol=1e-12, atol=1e-12)
    assert set(parts) == set(module.PARTS) and all(t >= 0 for t in parts.values())
