"""Optimizer state_dict / load_state_dict: a run continued from saved state matches the uninterrupted one."""

import numpy as np
import pytest

from convgrad.nn import SGD, Adam, Parameter


def make_params(seed=0):
    rng = np.random.default_rng(seed)
    return [Parameter(rng.standard_normal((3, 4)).astype(np.float32)), Parameter(rng.standard_normal(5).astype(np.float32))]


def steps(optimizer, params, grads):
    for g in grads:
        for p, gp in zip(params, g):
            p.grad[...] = gp
        optimizer.step()


@pytest.mark.parametrize("make", [
    lambda ps: SGD(ps, lr=0.1, momentum=0.9, nesterov=True, weight_decay=1e-3),
    lambda ps: Adam(ps, lr=0.01, weight_decay=1e-3),
    lambda ps: Adam(ps, lr=0.01, amsgrad=True),
], ids=["sgd-nesterov", "adam", "adam-amsgrad"])
def test_state_round_trip_continues_bit_for_bit(make):
    rng = np.random.default_rng(1)
    grads = [[rng.standard_normal(p.shape).astype(np.float32) for p in make_params()] for _ in range(6)]
    full_params = make_params()
    full = make(full_params)
    steps(full, full_params, grads)

    first_params = make_params()
    first = make(first_params)
    steps(first, first_params, grads[:3])
    state = first.state_dict()
    resumed_params = [Parameter(p.value.copy()) for p in first_params]
    resumed = make(resumed_params)
    resumed.lr = 123.0  # overwritten by the saved lr
    resumed.load_state_dict(state)
    assert resumed.steps == 3 and resumed.lr == first.lr
    steps(resumed, resumed_params, grads[3:])
    for a, b in zip(full_params, resumed_params):
        np.testing.assert_array_equal(a.value, b.value)


def test_state_dict_is_a_copy_and_a_mismatch_is_named():
    params = make_params()
    opt = Adam(params)
    state = opt.state_dict()
    state["m"][...] = 7
    assert not opt.state_dict()["m"].any()
    with pytest.raises(ValueError, match="missing entries \\['v'\\]"):
        Adam(make_params()).load_state_dict({k: v for k, v in opt.state_dict().items() if k != "v"})
    with pytest.raises(ValueError, match="'m' has shape"):
        Adam(make_params()).load_state_dict({**opt.state_dict(), "m": np.zeros(3)})
    with pytest.raises(ValueError, match="SGD.load_state_dict: expected entries"):
        SGD(make_params(), lr=0.1).load_state_dict(opt.state_dict())
