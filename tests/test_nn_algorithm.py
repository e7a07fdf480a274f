"""The convolution layers' ``algorithm=`` and ``Module.set_algorithm`` (``"measure"``: cudnn.benchmark's idea)."""

import pickle

import numpy as np
import pytest

import convgrad
from convgrad import algorithms, nn


def _net(rng=0):
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1, rng=rng), nn.ReLU(), nn.BasicBlock(8, 16, stride=2, rng=rng),
                         nn.ConvTranspose2d(16, 4, 2, stride=2, rng=rng))


def _step(net, x):
    net.zero_grad()
    y = net(x)
    dx = net.backward(np.cos(y))
    return y, dx, [p.grad.copy() for p in net.parameters()]


def _plans(net):
    return [plan for m in net.modules() for plan in getattr(m, "_plans", {}).values()]


def test_a_named_algorithm_runs_every_operation_of_the_layer():
    x = np.random.default_rng(0).standard_normal((2, 3, 8, 8))
    layer = nn.Conv2d(3, 5, 3, padding=1, dtype=np.float64, rng=0, algorithm="tapgemm")
    y = layer(x)
    layer.backward(np.ones_like(y))
    (plan,) = layer._plans.values()
    assert set(plan.algorithms.values()) == {"tapgemm"}
    ref = nn.Conv2d(3, 5, 3, padding=1, dtype=np.float64, rng=0, algorithm="direct")
    np.testing.assert_allclose(y, ref(x), rtol=1e-12, atol=1e-12)
    assert "algorithm='tapgemm'" in repr(layer) and "algorithm" not in repr(ref.set_algorithm("auto"))


def test_measure_trains_the_same_step_and_remembers_its_choices():
    x = np.random.default_rng(1).standard_normal((4, 3, 8, 8))
    auto = _net().to(np.float64)
    measured = _net().to(np.float64).set_algorithm("measure")
    assert {m.algorithm for m in measured.modules() if hasattr(m, "_plans") or hasattr(m, "kernel_size")} == {"measure"}
    algorithms.clear_measured_choices()
    for _ in range(2):  # the first step measures, the second runs the choices
        got, want = _step(measured, x), _step(auto, x)
        np.testing.assert_allclose(got[0], want[0], rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(got[1], want[1], rtol=1e-10, atol=1e-12)
        for g, w in zip(got[2], want[2]):
            np.testing.assert_allclose(g, w, rtol=1e-10, atol=1e-12)
    assert len(algorithms.measured_choices()) >= 3 * 4  # BasicBlock's convs, the projection, both ends
    assert all(p._algorithm == "measure" for p in _plans(measured))


def test_set_algorithm_reaches_the_convolutions_inside_blocks_and_survives_pickling():
    net = _net().set_algorithm("gemm")
    convs = [m for m in net.modules() if type(m).__name__.startswith("Conv")]
    assert len(convs) == 5 and {m.algorithm for m in convs} == {"gemm"}  # 2 in the block + its projection
    copy = pickle.loads(pickle.dumps(net))
    assert {m.algorithm for m in copy.modules() if type(m).__name__.startswith("Conv")} == {"gemm"}


def test_a_layer_pickled_before_algorithm_existed_loads_as_auto():
    layer = nn.Conv2d(1, 2, 3, rng=0)
    del layer.__dict__["algorithm"]  # as a layer of an older convgrad pickled it
    old = pickle.loads(pickle.dumps(layer))
    assert old.algorithm == "auto"
    np.testing.assert_array_equal(old(np.ones((1, 1, 5, 5), np.float32)), layer(np.ones((1, 1, 5, 5), np.float32)))


def test_bad_algorithms_are_named():
    with pytest.raises(ValueError, match=r"Conv2d: algorithm must be one of \('auto', 'measure', .*got 'fastest'"):
        nn.Conv2d(1, 1, 3, algorithm="fastest")
    with pytest.raises(TypeError, match="Sequential.set_algorithm: algorithm must be a string"):
        _net().set_algorithm(None)
    layer = nn.Conv2d(2, 2, 3, algorithm="pointwise")  # valid name, but not for a 3x3 kernel: said at the call
    with pytest.raises(ValueError, match="Conv2d: algorithm 'pointwise' cannot compute forward"):
        layer(np.zeros((1, 2, 5, 5), np.float32))
