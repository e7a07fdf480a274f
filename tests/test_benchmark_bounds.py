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
def test_products_run_in_every_arrangement(ceiling, op):
    spec = conv_spec((5, 3, 9, 9), (4, 3, 3, 3), padding=1)
    for t in (ceiling.per_sample_ms(op, spec, np.dtype(np.float32), threads=2, repeats=1),
              ceiling.side_by_side_ms(op, spec, np.dtype(np.float32), threads=2, repeats=1),
              ceiling.whole_batch_ms(op, spec, np.dtype(np.float64), repeats=1)):
        assert math.isfinite(t) and t > 0


def test_products_refuse_groups(ceiling):
    with pytest.raises(ValueError, match="groups=2"):
        ceiling._dims(conv_spec((2, 4, 5, 5), (4, 2, 3, 3), groups=2))


@pytest.mark.parametrize("name", ["numpy copy 1 MiB x 64", "BLAS product (32, 288) @ (288, 910) x 16"])
@pytest.mark.parametrize("share", [1, 2])
def test_kernels_run_on_the_executor(scaling, name, share):
    assert name in scaling.KERNELS
    run = scaling._kernel(name, share)
    run()
    run()  # the workers' arrays are made once and kept


def test_worker_start_latency_is_measured(scaling):
    out = scaling._start_latency(idles_ms=(0.0, 0.5), trials=2)
    assert set(out) == {0.0, 0.5}
    assert all(0 <= median <= worst for median, worst in out.values())


def test_cases_name_the_algorithm_auto_picks(scaling):
    for case in scaling.CASES:
        _, xs, ws, stride, padding, op = case
        assert scaling._algorithm_name(case) == algorithms.choose(conv_spec(xs, ws, stride=stride, padding=padding), op).name
