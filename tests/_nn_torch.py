"""Helpers for comparing convgrad.nn layers with torch.nn layers holding the same weights."""

from __future__ import annotations

import numpy as np

from _configs import max_rel


def load_from_torch(model, torch_model) -> None:
    """Load a torch module's state_dict, converted to NumPy arrays, into the convgrad module."""
    model.load_state_dict({k: v.detach().numpy() for k, v in torch_model.state_dict().items()})


def close(a, b, tol) -> bool:
    """``max_rel(a, b) < tol`` over the finite entries, with infinities required in the same places.

    (A max-pooling window that lies entirely in the padding gives -inf, in PyTorch as here.)
    """
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    assert a.shape == b.shape, (a.shape, b.shape)
    infinite = np.isinf(b)
    if not np.array_equal(np.isinf(a), infinite) or not np.array_equal(a[infinite], b[infinite]):
        return False
    return max_rel(a[~infinite], b[~infinite]) < tol


def compare_passes(model, torch_model, x, *, seed=0, tol=1e-10, train=True):
    """Forward and backward of both on ``x`` (float64) with the same random ``dy``; assert they agree.

    Returns the number of arrays compared.
    """
    import torch

    load_from_torch(model, torch_model)
    model.train(train)
    torch_model.train(train)
    tx = torch.tensor(x, requires_grad=True)
    ty = torch_model(tx)
    y = model(x)
    assert y.dtype == np.float64
    assert close(y, ty.detach().numpy(), tol)
    dy = np.random.default_rng(seed).standard_normal(y.shape)
    ty.backward(torch.tensor(dy))
    dx = model.backward(dy)
    assert close(dx, tx.grad.numpy(), tol)
    torch_params = dict(torch_model.named_parameters())
    assert set(torch_params) == {name for name, _ in model.named_parameters()}
    for name, p in model.named_parameters():
        assert close(p.grad, torch_params[name].grad.numpy(), tol), name
    torch_state = torch_model.state_dict()
    for name, value in model.state_dict().items():  # running statistics after the forward pass
        assert close(value, torch_state[name].numpy(), tol), name
    return 3 + 2 * len(torch_params)
