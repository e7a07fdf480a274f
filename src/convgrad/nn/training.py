"""The training loop: epochs of mini-batch gradient steps, evaluation, a cosine learning-rate schedule.

One step is the whole protocol of ``convgrad.nn`` in four lines::

    logits = model(x)                          # forward, layer by layer
    loss, grad = loss_fn(logits, y)            # the loss and dL/dlogits
    model.backward(grad, input_grad=False)     # dL/dW accumulated into every Parameter.grad
    optimizer.step()                           # W <- W - update(dL/dW)

:func:`local_step` is that step; :func:`train_epoch` and :func:`fit` take any other function
with its signature, such as the data-parallel step of :mod:`convgrad.nn.distributed`.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass
from typing import Callable

import numpy as np

from .data import Dataset, batches
from .module import Module
from .optim import Optimizer

__all__ = ["EpochResult", "cosine_lr", "local_step", "train_epoch", "predict_logits", "evaluate", "fit"]


@dataclass(frozen=True)
class EpochResult:
    epoch: int
    lr: float
    train_loss: float
    train_accuracy: float
    test_loss: float
    test_accuracy: float
    seconds: float  # the training pass only (evaluation excluded)

    def to_dict(self) -> dict:
        return asdict(self)


def cosine_lr(base: float, epoch: int, epochs: int) -> float:
    """``base * (1 + cos(pi * epoch / epochs)) / 2`` for epoch 0, 1, ...: from ``base`` down towards 0."""
    return base * 0.5 * (1 + math.cos(math.pi * epoch / epochs))


#: ``step(x, y) -> (loss, correct)``: one gradient step on the batch ``(x, y)``, its mean loss and
#: the number of its samples classified right.
Step = Callable[[np.ndarray, np.ndarray], tuple[float, int]]


def local_step(model: Module, loss_fn, optimizer: Optimizer) -> Step:
    """The one-process step: forward, loss, backward and update of ``model`` on the whole batch."""

    def step(x, y):
        logits = model(x)
        loss, grad = loss_fn(logits, y)
        optimizer.zero_grad()
        model.backward(grad, input_grad=False)
        optimizer.step()
        return loss, int((logits.argmax(axis=1) == y).sum())

    return step


def train_epoch(model: Module, loss_fn, optimizer: Optimizer, data: Dataset, batch_size: int,
                rng: np.random.Generator, progress: Callable[[int, float], None] | None = None,
                step: Step | None = None) -> tuple[float, float]:
    """One pass over ``data`` in shuffled mini-batches; returns ``(mean loss, accuracy)`` over the pass.

    ``progress(n, loss)`` is called after each batch of ``n`` images. ``step`` takes each batch
    (default :func:`local_step`).
    """
    model.train()
    step = local_step(model, loss_fn, optimizer) if step is None else step
    total_loss = 0.0
    correct = 0
    for index in batches(len(data), batch_size, rng):
        loss, right = step(data.images[index], data.labels[index])
        total_loss += loss * len(index)
        correct += right
        if progress is not None:
            progress(len(index), loss)
    return total_loss / len(data), correct / len(data)


def predict_logits(model: Module, images: np.ndarray, batch_size: int = 512) -> np.ndarray:
    """The model's logits in eval mode, computed batch by batch."""
    model.eval()
    return np.concatenate([model(images[i:i + batch_size]) for i in range(0, len(images), batch_size)])


def evaluate(model: Module, loss_fn, data: Dataset, batch_size: int = 512) -> tuple[float, float]:
    """``(mean loss, accuracy)`` of ``model`` on ``data``, in eval mode."""
    logits = predict_logits(model, data.images, batch_size)
    loss, _ = loss_fn(logits, data.labels)
    return loss, float((logits.argmax(axis=1) == data.labels).mean())


def fit(model: Module, loss_fn, optimizer: Optimizer, train: Dataset, test: Dataset, *, epochs: int, batch_size: int,
        rng: np.random.Generator, schedule: Callable[[int], float] | None = None,
        progress_factory: Callable[[int], Callable[[int, float], None]] | None = None,
        on_epoch: Callable[[EpochResult], None] | None = None, start_epoch: int = 0,
        step: Step | None = None) -> list[EpochResult]:
    """Train for ``epochs``, evaluating on ``test`` after each; returns one :class:`EpochResult` per epoch.

    ``schedule(epoch)`` sets ``optimizer.lr`` before each epoch; ``progress_factory(epoch)``
    returns the per-batch ``progress`` callback of that epoch. ``start_epoch`` continues a run
    whose first ``start_epoch`` epochs are done (model, optimizer and ``rng`` restored to their
    state after them): the results are those of epochs ``start_epoch + 1 .. epochs``. ``step`` is
    passed to :func:`train_epoch` (the data-parallel step of :mod:`convgrad.nn.distributed`).
    """
    history = []
    for epoch in range(start_epoch, epochs):
        if schedule is not None:
            optimizer.lr = schedule(epoch)
        progress = progress_factory(epoch) if progress_factory is not None else None
        start = time.perf_counter()
        train_loss, train_acc = train_epoch(model, loss_fn, optimizer, train, batch_size, rng, progress, step)
        seconds = time.perf_counter() - start
        test_loss, test_acc = evaluate(model, loss_fn, test)
        result = EpochResult(epoch + 1, optimizer.lr, train_loss, train_acc, test_loss, test_acc, seconds)
        history.append(result)
        if on_epoch is not None:
            on_epoch(result)
    return history
