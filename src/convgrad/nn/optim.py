"""Optimizers that step a list of parameters: ``SGD`` and ``Adam``, with PyTorch's exact update rules.

An optimizer is separate from the layers: it is given the parameters (``model.parameters()``),
reads each ``grad`` and updates each ``value`` in place. Its hyper-parameters are plain
attributes (``optimizer.lr = 0.01`` changes the learning rate for the next step).
Parameters with ``requires_grad=False`` are skipped.
"""

from __future__ import annotations

import math
import numbers

import numpy as np

from .parameter import Parameter

__all__ = ["Optimizer", "SGD", "Adam"]


def _number(value, func: str, name: str, low: float = 0.0, high: float | None = None, open_high: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or math.isnan(value):
        raise TypeError(f"{func}: {name} must be a number, got {value!r}")
    if value < low or (high is not None and (value >= high if open_high else value > high)):
        bound = "" if high is None else f" and {'<' if open_high else '<='} {high}"
        raise ValueError(f"{func}: {name} must be >= {low}{bound}, got {value}")
    return float(value)


class Optimizer:
    """Holds the parameter list; subclasses implement :meth:`step`."""

    def __init__(self, params, func: str):
        try:
            params = list(params)
        except TypeError:
            raise TypeError(f"{func}: params must be an iterable of Parameter, got {type(params).__name__}") from None
        if not params:
            raise ValueError(f"{func}: params is empty: nothing to optimize")
        for p in params:
            if not isinstance(p, Parameter):
                raise TypeError(f"{func}: params must hold convgrad.nn.Parameter objects, got {type(p).__name__}")
        if len({id(p) for p in params}) != len(params):
            raise ValueError(f"{func}: a parameter appears more than once in params")
        self.params: list[Parameter] = params
        self.steps = 0

    def zero_grad(self) -> None:
        """Set the gradient of every parameter to zero."""
        for p in self.params:
            p.zero_grad()

    def step(self) -> None:
        raise NotImplementedError

    def state_dict(self) -> dict[str, np.ndarray]:
        """The optimizer's running state as named arrays (copies): enough to continue a run exactly.

        Hyper-parameters are not included (they are the constructor's arguments); ``lr`` is,
        since schedules change it.
        """
        return {"steps": np.array(self.steps), "lr": np.array(self.lr), **{k: np.array(v, copy=True)
                                                                           for k, v in self._state().items()}}

    def load_state_dict(self, state: dict[str, np.ndarray]) -> None:
        """Restore what :meth:`state_dict` returned, for the same parameter list."""
        mine = self.state_dict()
        missing = sorted(set(mine) - set(state))
        unexpected = sorted(set(state) - set(mine))
        if missing or unexpected:
            raise ValueError(f"{type(self).__name__}.load_state_dict: missing entries {missing}, unexpected {unexpected}")
        for name, value in state.items():
            if np.shape(value) != np.shape(mine[name]):
                raise ValueError(f"{type(self).__name__}.load_state_dict: {name!r} has shape {np.shape(value)}, "
                                 f"expected {np.shape(mine[name])}")
        self.steps = int(state["steps"])
        self.lr = float(state["lr"])
        self._load_state({k: np.asarray(v) for k, v in state.items() if k not in ("steps", "lr")})

    def _state(self) -> dict[str, np.ndarray]:
        return {}

    def _load_state(self, state: dict[str, np.ndarray]) -> None:
        pass

    def _trainable(self):
        return ((i, p) for i, p in enumerate(self.params) if p.requires_grad)


class SGD(Optimizer):
    """Stochastic gradient descent with momentum, dampening, Nesterov momentum and weight decay.

    Notes
    -----
    Per parameter ``p`` with gradient ``g`` (``torch.optim.SGD``)::

        g <- -g if maximize
        g <- g + weight_decay * p
        b <- g                                    on the first step
        b <- momentum * b + (1 - dampening) * g   afterwards
        g <- g + momentum * b   if nesterov   else   b      (when momentum != 0)
        p <- p - lr * g
    """

    def __init__(self, params, lr: float = 1e-3, momentum: float = 0.0, dampening: float = 0.0,
                 weight_decay: float = 0.0, nesterov: bool = False, *, maximize: bool = False):
        super().__init__(params, "SGD")
        self.lr = _number(lr, "SGD", "lr")
        self.momentum = _number(momentum, "SGD", "momentum")
        self.dampening = _number(dampening, "SGD", "dampening")
        self.weight_decay = _number(weight_decay, "SGD", "weight_decay")
        for name, flag in (("nesterov", nesterov), ("maximize", maximize)):
            if not isinstance(flag, bool):
                raise TypeError(f"SGD: {name} must be True or False, got {flag!r}")
        if nesterov and (self.momentum <= 0 or self.dampening != 0):
            raise ValueError("SGD: nesterov momentum requires momentum > 0 and dampening = 0")
        self.nesterov = nesterov
        self.maximize = maximize
        self._buffers: list[np.ndarray | None] = [None] * len(self.params)

    def step(self) -> None:
        for i, p in self._trainable():
            g = -p.grad if self.maximize else p.grad
            if self.weight_decay:
                g = g + self.weight_decay * p.value
            if self.momentum:
                buf = self._buffers[i]
                if buf is None:
                    buf = self._buffers[i] = np.array(g, dtype=p.dtype, copy=True)
                else:
                    buf *= self.momentum
                    buf += (1 - self.dampening) * g
                g = g + self.momentum * buf if self.nesterov else buf
            p.value -= self.lr * g
        self.steps += 1

    def _state(self) -> dict[str, np.ndarray]:
        # a buffer not yet created (before the first step) is stored as an empty array
        return {f"momentum_buffer/{i}": (np.zeros(0, p.dtype) if b is None else b)
                for i, (p, b) in enumerate(zip(self.params, self._buffers))}

    def load_state_dict(self, state: dict[str, np.ndarray]) -> None:
        # shapes of not-yet-created buffers differ legitimately: compare names only, then shapes per buffer
        mine = set(self.state_dict())
        if set(state) != mine:
            raise ValueError(f"SGD.load_state_dict: expected entries {sorted(mine)}, got {sorted(state)}")
        for i, p in enumerate(self.params):
            b = np.asarray(state[f"momentum_buffer/{i}"])
            if b.size and b.shape != p.shape:
                raise ValueError(f"SGD.load_state_dict: momentum_buffer/{i} has shape {b.shape}, expected {p.shape}")
        self.steps = int(state["steps"])
        self.lr = float(state["lr"])
        self._buffers = [np.array(state[f"momentum_buffer/{i}"], dtype=p.dtype, copy=True) if np.size(state[f"momentum_buffer/{i}"])
                         else None for i, p in enumerate(self.params)]

    def __repr__(self) -> str:
        return (f"SGD(lr={self.lr}, momentum={self.momentum}, dampening={self.dampening}, "
                f"weight_decay={self.weight_decay}, nesterov={self.nesterov})")


class Adam(Optimizer):
    """Adam (and AMSGrad) with L2 weight decay, as ``torch.optim.Adam``.

    Notes
    -----
    Per parameter at step ``t = 1, 2, ...``::

        g <- -g if maximize;    g <- g + weight_decay * p
        m <- beta1 * m + (1 - beta1) * g
        v <- beta2 * v + (1 - beta2) * g^2
        v_max <- max(v_max, v)                                  (amsgrad; then v_max replaces v below)
        p <- p - lr / (1 - beta1^t) * m / (sqrt(v) / sqrt(1 - beta2^t) + eps)
    """

    def __init__(self, params, lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0.0, amsgrad: bool = False, *, maximize: bool = False):
        super().__init__(params, "Adam")
        self.lr = _number(lr, "Adam", "lr")
        try:
            b1, b2 = betas
        except (TypeError, ValueError):
            raise TypeError(f"Adam: betas must be a pair of numbers in [0, 1), got {betas!r}") from None
        self.betas = (_number(b1, "Adam", "betas[0]", 0.0, 1.0, True), _number(b2, "Adam", "betas[1]", 0.0, 1.0, True))
        self.eps = _number(eps, "Adam", "eps")
        self.weight_decay = _number(weight_decay, "Adam", "weight_decay")
        for name, flag in (("amsgrad", amsgrad), ("maximize", maximize)):
            if not isinstance(flag, bool):
                raise TypeError(f"Adam: {name} must be True or False, got {flag!r}")
        self.amsgrad = amsgrad
        self.maximize = maximize
        # The moments of all parameters live in flat arrays, one slice (a reshaped view) per
        # parameter: when every parameter is trainable and at the same step, one step is a
        # dozen whole-array operations instead of a dozen per parameter (the per-call overhead
        # of NumPy dominated the step of a small network).
        dtype = np.result_type(*(p.dtype for p in self.params))
        sizes = [p.value.size for p in self.params]
        self._offsets = np.concatenate([[0], np.cumsum(sizes)]).astype(int)
        self._m = np.zeros(self._offsets[-1], dtype=dtype)
        self._v = np.zeros_like(self._m)
        self._v_max = np.zeros_like(self._m) if amsgrad else None
        self._t = [0] * len(self.params)

    def _view(self, flat: np.ndarray | None, i: int):
        if flat is None:
            return None
        return flat[self._offsets[i]:self._offsets[i + 1]].reshape(self.params[i].shape)

    def _update(self, g, m, v, v_max, t: int):
        """Advance the moments in place and return the step to subtract (see the class Notes)."""
        beta1, beta2 = self.betas
        m += (1 - beta1) * (g - m)  # torch's lerp: m + (1 - beta1) * (g - m)
        v *= beta2
        v += (1 - beta2) * g * g
        if v_max is not None:
            np.maximum(v_max, v, out=v_max)
            v = v_max
        denom = np.sqrt(v) / math.sqrt(1 - beta2**t) + self.eps
        return (self.lr / (1 - beta1**t)) * (m / denom)

    def _gradient(self, grad, value):
        g = -grad if self.maximize else grad
        if self.weight_decay:
            g = g + self.weight_decay * value
        return g

    def step(self) -> None:
        trainable = list(self._trainable())
        if len(trainable) == len(self.params) and len(set(self._t)) == 1:  # all together: flat arrays
            t = self._t[0] + 1
            self._t = [t] * len(self.params)
            grad = np.concatenate([p.grad.ravel() for p in self.params]).astype(self._m.dtype, copy=False)
            value = np.concatenate([p.value.ravel() for p in self.params]) if self.weight_decay else None
            update = self._update(self._gradient(grad, value), self._m, self._v, self._v_max, t)
            for i, p in enumerate(self.params):
                p.value -= self._view(update, i).astype(p.dtype, copy=False)
        else:
            for i, p in trainable:
                self._t[i] += 1
                update = self._update(self._gradient(p.grad, p.value), self._view(self._m, i), self._view(self._v, i),
                                      self._view(self._v_max, i), self._t[i])
                p.value -= update.astype(p.dtype, copy=False)
        self.steps += 1

    def _state(self) -> dict[str, np.ndarray]:
        state = {"m": self._m, "v": self._v, "t": np.array(self._t, dtype=np.int64)}
        if self._v_max is not None:
            state["v_max"] = self._v_max
        return state

    def _load_state(self, state: dict[str, np.ndarray]) -> None:
        self._m[...] = state["m"]
        self._v[...] = state["v"]
        if self._v_max is not None:
            self._v_max[...] = state["v_max"]
        self._t = [int(t) for t in state["t"]]

    def __repr__(self) -> str:
        return (f"Adam(lr={self.lr}, betas={self.betas}, eps={self.eps}, weight_decay={self.weight_decay}, "
                f"amsgrad={self.amsgrad})")
