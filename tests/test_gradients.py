"""Gradients checked without any oracle library: finite differences and adjoint identities.

The convolution is linear in x and in w, so ``L = <conv(x, w) + b, dy>`` has gradients
``dL/dx = conv_input(dy, w)``, ``dL/dw = conv_weight(x, dy)`` and ``dL/db = sum(dy)``, and the
adjoint identities ``<conv(x, w), dy> = <x, conv_input(dy, w)> = <w, conv_weight(x, dy)>`` hold
exactly (up to rounding). Also 4-D convolutions, which PyTorch lacks, against sums of PyTorch's
3-D convolutions.
"""

import random

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import convgrad
from _configs import GRID, Case, in_regime, max_rel, random_case, supported_pairs, supporting

ALGORITHMS = convgrad.available_algorithms()


def _loss(case: Case, x, w, b, dy, algorithm):
    y, _ = case.run(x, w, b, algorithm=algorithm)
    return float(np.sum(y * dy))


@pytest.mark.parametrize("case, algorithm", supported_pairs([c for c in GRID if c.batch > 0][::2], ALGORITHMS))
def test_central_finite_differences_entry_by_entry(case, algorithm):
    x, w, b = case.arrays(11)
    y, _ = case.run(x, w, b, algorithm=algorithm)
    dy = np.random.default_rng(12).standard_normal(y.shape)
    _, g = case.run(x, w, b, dy, algorithm=algorithm)
    eps = 1e-6
    rng = np.random.default_rng(13)
    operands = [("input", x, 0), ("weight", w, 1)] + ([("bias", b, 2)] if b is not None else [])
    for name, base, pos in operands:
        grad = getattr(g, name)
        for flat in rng.choice(base.size, size=min(6, base.size), replace=False):
            args = [x, w, b]
            plus, minus = base.copy(), base.copy()
            plus.flat[flat] += eps
            minus.flat[flat] -= eps
            args[pos] = plus
            lp = _loss(case, *args, dy, algorithm)
            args[pos] = minus
            lm = _loss(case, *args, dy, algorithm)
            fd = (lp - lm) / (2 * eps)
            assert abs(fd - grad.flat[flat]) <= 1e-6 * max(1.0, abs(fd)), (name, flat, fd, grad.flat[flat])


@st.composite
def cases(draw):
    seed = draw(st.integers(0, 2**32 - 1))
    return random_case(random.Random(seed), ndim=draw(st.integers(1, 4)), max_size=4)


@pytest.mark.parametrize("algorithm", ALGORITHMS)
@given(case=cases(), pick=st.integers(0, 7))
def test_adjoint_identities(algorithm, case, pick):
    # outside a narrow algorithm's regime, one of its own example configurations: every example asserts
    case = in_regime(algorithm, case, pick)
    x, w, _ = case.arrays(21)
    y, _ = case.run(x, w, None, algorithm=algorithm)
    dy = np.random.default_rng(22).standard_normal(y.shape)
    _, g = case.run(x, w, None, dy, algorithm=algorithm, needs=("input", "weight"))
    forward = float(np.sum(y * dy))
    scale = max(1.0, float(np.sum(np.abs(y * dy))))
    assert abs(forward - float(np.sum(x * g.input))) <= 1e-12 * scale
    assert abs(forward - float(np.sum(w * g.weight))) <= 1e-12 * scale


@given(case=cases())
def test_directional_finite_difference_of_whole_gradients(case):
    x, w, b = case.arrays(31)
    y, _ = case.run(x, w, b)
    dy = np.random.default_rng(32).standard_normal(y.shape)
    _, g = case.run(x, w, b, dy)
    rng = np.random.default_rng(33)
    vx, vw = rng.standard_normal(x.shape), rng.standard_normal(w.shape)
    h = 1e-4
    fd = (_loss(case, x + h * vx, w + h * vw, b, dy, "auto") - _loss(case, x - h * vx, w - h * vw, b, dy, "auto")) / (2 * h)
    exact = float(np.sum(g.input * vx) + np.sum(g.weight * vw))
    assert abs(fd - exact) <= 1e-7 * max(1.0, abs(exact))


def test_torch_nn_grad_aliases_equal_conv_backward():
    case = Case(2, 4, 6, 2, (9, 8), (3, 2), stride=(2, 3), padding=(1, 2), dilation=(2, 1))
    x, w, _ = case.arrays(41)
    y = convgrad.conv2d(x, w, stride=(2, 3), padding=(1, 2), dilation=(2, 1), groups=2)
    dy = np.random.default_rng(42).standard_normal(y.shape)
    dx = convgrad.conv2d_input(x.shape, w, dy, stride=(2, 3), padding=(1, 2), dilation=(2, 1), groups=2)
    dw = convgrad.conv2d_weight(x, w.shape, dy, stride=(2, 3), padding=(1, 2), dilation=(2, 1), groups=2)
    # conv_backward computed independently (the reference loops) ...
    g = convgrad.conv_backward(dy, x, w, stride=(2, 3), padding=(1, 2), dilation=(2, 1), groups=2, algorithm="direct")
    assert max_rel(dx, g.input) < 1e-12 and max_rel(dw, g.weight) < 1e-12
    # ... and torch.nn.grad
    import torch
    import torch.nn.grad as tg

    tdx = tg.conv2d_input(x.shape, torch.tensor(w), torch.tensor(dy), (2, 3), (1, 2), (2, 1), 2)
    tdw = tg.conv2d_weight(torch.tensor(x), w.shape, torch.tensor(dy), (2, 3), (1, 2), (2, 1), 2)
    assert max_rel(dx, tdx.numpy()) < 1e-12 and max_rel(dw, tdw.numpy()) < 1e-12


def test_transposed_forward_is_the_input_gradient_of_the_convolution():
    """conv_transpose(dy, w, S, P, output_padding=a, G, D) == conv_input(dy, w) with a = unread tail."""
    rng = np.random.default_rng(51)
    x = rng.standard_normal((2, 4, 10, 9))
    w = rng.standard_normal((6, 2, 3, 2))
    kw = dict(stride=(3, 2), padding=(1, 0), dilation=(2, 1), groups=2)
    y = convgrad.conv2d(x, w, **kw)
    # H: (10 + 2 - 5) % 3 = 1; W: (9 - 2) % 2 = 1
    dy = rng.standard_normal(y.shape)
    dx = convgrad.conv2d_input(x.shape, w, dy, **kw)
    t = convgrad.conv_transpose2d(dy, w, stride=(3, 2), padding=(1, 0), output_padding=(1, 1), groups=2, dilation=(2, 1))
    assert t.shape == x.shape
    assert max_rel(t, dx) < 1e-13


S4, P4, D4, G4 = (2, 1, 1, 1), (1, 1, 0, 1), (2, 1, 1, 1), 2


@pytest.mark.parametrize("algorithm", supporting(ALGORITHMS, ((2, 2, 5, 4, 4, 3), (4, 1, 2, 3, 2, 2)), stride=S4,
                                                 padding=P4, dilation=D4, groups=G4))
def test_4d_convolution_against_sums_of_torch_3d_convolutions(algorithm):
    """conv4d(x, w)[..., t, :, :, :] = sum_k conv3d(x[..., t*S + k*D - P, :, :, :], w[..., k, :, :, :])."""
    import torch
    import torch.nn.functional as F

    rng = np.random.default_rng(61)
    x = rng.standard_normal((2, 2, 5, 4, 4, 3))
    w = rng.standard_normal((4, 1, 2, 3, 2, 2))
    S, P, D, G = S4, P4, D4, G4
    y = convgrad.conv(x, w, stride=S, padding=P, dilation=D, groups=G, algorithm=algorithm)
    tx = torch.tensor(x, requires_grad=True)
    tw = torch.tensor(w, requires_grad=True)
    xp = F.pad(tx, (0, 0, 0, 0, 0, 0, P[0], P[0]))  # pad only the first spatial dim by hand
    h_out = (x.shape[2] + 2 * P[0] - D[0] * (w.shape[2] - 1) - 1) // S[0] + 1
    slices = []
    for t in range(h_out):
        acc = 0
        for k in range(w.shape[2]):
            acc = acc + F.conv3d(xp[:, :, t * S[0] + k * D[0]], tw[:, :, k], None, S[1:], P[1:], D[1:], G)
        slices.append(acc)
    ty = torch.stack(slices, dim=2)
    assert y.shape == tuple(ty.shape)
    assert max_rel(y, ty.detach().numpy()) < 1e-12
    dy = rng.standard_normal(y.shape)
    ty.backward(torch.tensor(dy))
    g = convgrad.conv_backward(dy, x, w, stride=S, padding=P, dilation=D, groups=G, algorithm=algorithm)
    assert max_rel(g.input, tx.grad.numpy()) < 1e-12
    assert max_rel(g.weight, tw.grad.numpy()) < 1e-12
