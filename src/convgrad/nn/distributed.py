"""Data-parallel training on Dask: each step's batch split into shards, one full-batch step.

:class:`DataParallelStep` is a ``step(x, y) -> (loss, correct)`` for
:func:`convgrad.nn.training.fit`: the batch is split into ``shards`` contiguous slices, Dask
workers run forward and backward of their slice with the layers of ``convgrad.nn``, and the
parameter gradients are added in a tree reduction before one optimizer step on the client. The
step equals the one-process step on the whole batch (float64: to ~1e-15 per step):

- **BatchNorm2d** needs the batch's statistics in the middle of the forward pass, and the batch's
  sums of ``dy`` and ``dy * x_hat`` in the middle of the backward pass. So a step is ``2L + 1``
  stages for ``L`` BatchNorm layers; between two stages each shard reports per-channel numbers
  (forward: ``(count, mean, M2)``, combined with Chan's parallel formula; backward: the two sums),
  a small task combines them, and the next stage reads the combination. The running statistics
  are updated once, on the client, with the batch's mean and variance.
- **Dropout** masks are drawn on the client from the layer's own generator, for the whole batch
  and at the moment the one-process run draws them; each shard gets its rows. Shuffling is the
  caller's (``fit`` draws it as always). So every sample gets the draws of the one-process run.
- **The loss** (``CrossEntropyLoss``) is summed on each shard and divided by the batch's count.

The whole step is one Dask graph submitted at once: the model with its current weights travels
once per step (one object that the first stage of every shard reads), every stage is a pure
function of its inputs (it copies the shard state it is given), so a worker lost in the middle of
a step costs only a recomputation by the scheduler, never a different result.

Supported models: a :class:`~convgrad.nn.Sequential` whose ``BatchNorm2d`` and ``Dropout`` layers
are top-level layers; losses: ``CrossEntropyLoss`` with class-index targets and no class weights.
Importing this module does not import dask.
"""

from __future__ import annotations

import contextlib
import copy
import pickle

import numpy as np

from ..runtime import settings
from .batchnorm import BatchNorm2d
from .container import Sequential
from .dropout import Dropout
from .loss import CrossEntropyLoss
from .module import Module
from .optim import Optimizer

__all__ = ["DataParallelStep", "close", "connect", "data_parallel"]


# ------------------------------------------------------------------------------------------------
# per-channel statistics and their combination across shards
# ------------------------------------------------------------------------------------------------


def _moments(x: np.ndarray) -> tuple[int, np.ndarray, np.ndarray]:
    """``(count, mean, M2)`` per channel of an ``(N, C, H, W)`` array, in float64 (two-pass)."""
    x = x.astype(np.float64, copy=False)
    count = x.shape[0] * x.shape[2] * x.shape[3]
    mean = np.einsum("nchw->c", x) / max(count, 1)
    centered = x - mean[:, None, None]
    return count, mean, np.einsum("nchw,nchw->c", centered, centered)


def _combine_moments(*parts) -> tuple[int, np.ndarray, np.ndarray]:
    """The batch's ``(count, mean, biased variance)`` from each shard's ``(count, mean, M2)`` (Chan et al.)."""
    count = sum(n for n, _, _ in parts)
    mean = sum(n * m for n, m, _ in parts) / count
    m2 = sum(q + n * (m - mean) ** 2 for n, m, q in parts)
    return count, mean, m2 / count


def _add(*parts):
    """Element-wise sum of equally shaped tuples of arrays and numbers (a node of the reduction tree)."""
    return tuple(_add_items(items) for items in zip(*parts))


def _add_items(items):
    if isinstance(items[0], list):
        return [sum(values[1:], values[0].copy()) for values in zip(*items)]
    return sum(items[1:], items[0])


# ------------------------------------------------------------------------------------------------
# one shard's share of a step
# ------------------------------------------------------------------------------------------------


class _Shard:
    """A shard's copy of the model and where its step has got to; :func:`_advance` moves it one stage on."""

    def __init__(self, model: Sequential, x, y, masks: dict[int, np.ndarray], norm: float, loss: CrossEntropyLoss):
        self.model, self.x, self.y, self.masks, self.norm, self.loss = model, x, y, masks, norm, loss
        self.layers = list(model)
        self.bn = [i for i, layer in enumerate(self.layers) if isinstance(layer, BatchNorm2d)]
        self.act = x  # the activation going forward, then the gradient going back
        self.loss_sum = 0.0
        self.correct = 0

    def _bounds(self, segment: int) -> range:
        """Indices of the layers between BatchNorm ``segment - 1`` and BatchNorm ``segment``."""
        start = 0 if segment == 0 else self.bn[segment - 1] + 1
        stop = self.bn[segment] if segment < len(self.bn) else len(self.layers)
        return range(start, stop)

    def _forward(self, segment: int) -> None:
        for i in self._bounds(segment):
            layer = self.layers[i]
            self.act = _dropout_forward(layer, self.act, self.masks[i]) if i in self.masks else layer.forward(self.act)

    def _backward(self, segment: int) -> None:
        for i in reversed(self._bounds(segment)):
            self.act = self.layers[i].backward(self.act, input_grad=i > 0)

    def stage(self, s: int, combined):
        """Run stage ``s`` of ``2L + 1`` given the previous stage's combined numbers; return this shard's report."""
        L = len(self.bn)
        if s <= L:  # forward through segment s (after BatchNorm s-1 with the batch's statistics)
            if s > 0:
                self.act = _batchnorm_forward(self.layers[self.bn[s - 1]], self.act, combined)
            self._forward(s)
            if s < L:
                return _moments(self.act)
            total, grad = self.loss(self.act, self.y)  # reduction "sum": divided by the batch's count
            self.loss_sum = total
            self.correct = int((self.act.argmax(axis=1) == self.y).sum())
            self.act = grad / self.norm
            self._backward(L)
        else:  # backward through BatchNorm i (with the batch's sums), then segment i
            i = 2 * L - s
            self.act = _batchnorm_backward(self.layers[self.bn[i]], self.act, combined)
            self._backward(i)
        b = self._next_backward_batchnorm(s)
        if b is not None:
            return _batchnorm_sums(self.layers[b], self.act)
        grads = [p.grad for p in self.model.parameters()]
        return grads, self.loss_sum, self.correct

    def _next_backward_batchnorm(self, s: int) -> int | None:
        L = len(self.bn)
        i = L - 1 if s == L else 2 * L - s - 1  # the BatchNorm below the segment just back-propagated
        return self.bn[i] if i >= 0 else None


def _copy(obj):
    """A deep copy (a pickle round trip: several times faster than ``copy.deepcopy`` on a model)."""
    return pickle.loads(pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL))


def _start(model: Sequential, x, y, masks, norm, loss, threads: int):
    """Stage 0 of a shard: a private copy of ``model`` (the step's weights, zero gradients) and its first segment."""
    model = _copy(model)  # the step's model may be shared by the tasks of one worker
    model.zero_grad()
    shard = _Shard(model, x, y, masks, norm, loss)
    with settings(num_threads=threads):
        report = shard.stage(0, None)
    return shard, report


def _advance(shard: _Shard, s: int, combined, threads: int):
    """``(the shard after stage s, its report)``: a pure function -- the shard given is copied, never changed."""
    shard = _copy(shard)
    with settings(num_threads=threads):
        report = shard.stage(s, combined)
    return shard, report


def _dropout_forward(layer: Dropout, x: np.ndarray, keep: np.ndarray | None) -> np.ndarray:
    """``Dropout.forward`` with the mask drawn by the client (``None``: the layer draws nothing)."""
    if keep is None:
        return layer.forward(x)
    return layer._apply(x, keep)  # exactly Dropout.forward's arithmetic


def _batchnorm_forward(layer: BatchNorm2d, x: np.ndarray, combined) -> np.ndarray:
    """``BatchNorm2d.forward`` in training mode with the whole batch's ``(count, mean, var)``."""
    _, mean, var = combined
    mean, var = mean.astype(x.dtype), var.astype(x.dtype)
    centered = x.reshape(x.shape[0], x.shape[1], -1) - mean[:, None]  # (N, C, HW)
    return layer._normalize(centered, var, x.shape)


def _batchnorm_sums(layer: BatchNorm2d, dy: np.ndarray) -> tuple[int, np.ndarray, np.ndarray]:
    """A shard's ``(count, sum dy, sum dy * x_hat)`` per channel, for the batch's BatchNorm backward."""
    _, sum_dy, sum_dy_xhat = layer._sums(dy)
    return dy.shape[0] * dy.shape[2] * dy.shape[3], sum_dy, sum_dy_xhat


def _batchnorm_backward(layer: BatchNorm2d, dy: np.ndarray, combined) -> np.ndarray:
    """``BatchNorm2d.backward`` with the whole batch's sums; this shard's share of the parameter gradients."""
    m, sum_dy, sum_dy_xhat = combined
    dy3, own_dy, own_dy_xhat = layer._sums(dy)
    if layer.affine:  # the shard's own sums: the reduction over shards adds them up to the batch's
        if layer.weight.requires_grad:
            layer.weight.accumulate(own_dy_xhat)
        if layer.bias.requires_grad:
            layer.bias.accumulate(own_dy)
    return layer._input_grad(dy3, sum_dy.astype(dy.dtype), sum_dy_xhat.astype(dy.dtype), m)


# ------------------------------------------------------------------------------------------------
# the step
# ------------------------------------------------------------------------------------------------


def _check_model(model, loss_fn) -> None:
    if not isinstance(model, Sequential):
        raise TypeError(f"DataParallelStep: model must be a convgrad.nn.Sequential, got {type(model).__name__}")
    top = {id(layer) for layer in model}
    for m in model.modules():
        if isinstance(m, (BatchNorm2d, Dropout)) and id(m) not in top:
            raise ValueError(f"DataParallelStep: {type(m).__name__} layers must be top-level layers of the Sequential "
                             "(their statistics and masks are combined across shards there)")
        if isinstance(m, BatchNorm2d) and m.channels_last:
            raise ValueError("DataParallelStep: BatchNorm2d(data_format='channels_last') is not supported in "
                             "data-parallel training (its statistics are combined across shards channels first); "
                             "use the channels-first layout, or train in one process")
    if type(loss_fn) is not CrossEntropyLoss or loss_fn.weight is not None:
        raise TypeError(f"DataParallelStep: loss_fn must be a CrossEntropyLoss without class weights, got {loss_fn!r}")


def _clean_copy(model: Module) -> Module:
    """A copy of ``model`` without the arrays its last forward kept: what travels to the workers."""
    caches = {id(m): m._cache for m in model.modules()}
    for m in model.modules():
        m._cache = None
    try:
        return copy.deepcopy(model)
    finally:
        for m in model.modules():
            m._cache = caches[id(m)]


class DataParallelStep:
    """``step(x, y) -> (loss, correct)``: one step of ``model`` on the batch, its shards computed by Dask.

    Parameters
    ----------
    model : Sequential
        The model; its parameters are updated in place by ``optimizer``, its BatchNorm running
        statistics on the client, as in the one-process run.
    loss_fn : CrossEntropyLoss
    optimizer : Optimizer
        Steps ``model``'s parameters (on the client: the update is cheap next to a step).
    shards : int
        Slices of each batch (usually the number of workers); a batch smaller than that has fewer.
    client : dask.distributed.Client or None
        The cluster; ``None`` runs the tasks one after the other in this process (Dask's
        synchronous scheduler: the same arithmetic, for tests and debugging).
    threads : int
        convgrad's threads inside each task.

    Examples
    --------
    >>> import numpy as np
    >>> from convgrad.nn import Adam, CrossEntropyLoss
    >>> from convgrad.nn.models import LeNetConfig, lenet
    >>> from convgrad.nn.training import local_step
    >>> x = np.random.default_rng(0).random((8, 1, 8, 8)).astype(np.float32)
    >>> y = np.arange(8) % 10
    >>> one, two = lenet(LeNetConfig(), rng=1), lenet(LeNetConfig(), rng=1)
    >>> loss1, _ = local_step(one, CrossEntropyLoss(), Adam(one.parameters()))(x, y)
    >>> loss2, _ = DataParallelStep(two, CrossEntropyLoss(), Adam(two.parameters()), shards=2)(x, y)
    >>> abs(loss1 - loss2) < 1e-6
    True
    """

    def __init__(self, model: Sequential, loss_fn, optimizer: Optimizer, *, shards: int, client=None, threads: int = 1):
        _check_model(model, loss_fn)
        if isinstance(shards, bool) or not isinstance(shards, (int, np.integer)) or shards < 1:
            raise ValueError(f"DataParallelStep: shards must be a positive integer, got {shards!r}")
        self.model, self.loss_fn, self.optimizer = model, loss_fn, optimizer
        self.shards, self.client, self.threads = int(shards), client, threads
        # a shard's share of the batch's mean: its sum, divided by the batch's count
        self._sum_loss = CrossEntropyLoss(ignore_index=loss_fn.ignore_index, reduction="sum",
                                          label_smoothing=loss_fn.label_smoothing)
        self._dropout_shapes: dict[tuple, dict[int, tuple]] = {}

    def _masks(self, x: np.ndarray) -> dict[int, np.ndarray | None]:
        """Each training Dropout's keep-mask for the whole batch, drawn as ``Dropout.forward`` draws it."""
        key = x.shape[1:]
        if key not in self._dropout_shapes:  # the shape each Dropout sees: one probe sample in eval mode
            probe, shapes, act = _clean_copy(self.model).eval(), {}, x[:1]
            for i, layer in enumerate(probe):
                if isinstance(layer, Dropout):
                    shapes[i] = act.shape[1:]
                act = layer.forward(act)
            self._dropout_shapes[key] = shapes
        masks = {}
        for i, shape in self._dropout_shapes[key].items():
            layer = self.model[i]
            draws = layer.training and 0 < layer.p < 1
            masks[i] = layer._rng.random((len(x), *shape)) >= layer.p if draws else None
        return masks

    def __call__(self, x: np.ndarray, y: np.ndarray) -> tuple[float, int]:
        import dask

        y = np.asarray(y)
        norm = float(np.count_nonzero(y != self.loss_fn.ignore_index))
        masks = self._masks(x)
        model = dask.delayed(_clean_copy(self.model), traverse=False)  # the weights: once per step
        advance = dask.delayed(_advance, nout=2, pure=False)
        states, reports = [], []
        for part in np.array_split(np.arange(len(x)), min(self.shards, len(x))):
            sl = slice(part[0], part[-1] + 1)
            shard_masks = {i: None if m is None else m[sl] for i, m in masks.items()}
            state, report = dask.delayed(_start, nout=2, pure=False)(model, x[sl], y[sl], shard_masks, norm,
                                                                      self._sum_loss, self.threads)
            states.append(state)
            reports.append(report)
        L = sum(isinstance(layer, BatchNorm2d) for layer in self.model)
        statistics = []
        for s in range(1, 2 * L + 1):
            combine = _combine_moments if s <= L else _add
            combined = dask.delayed(combine, pure=False)(*reports)
            if s <= L:
                statistics.append(combined)
            advanced = [advance(state, s, combined, self.threads) for state in states]
            states, reports = [a[0] for a in advanced], [a[1] for a in advanced]
        total = _tree(reports, dask.delayed(_add, pure=False))
        (grads, loss_sum, correct), statistics = self._compute(total, statistics)
        self._apply(grads, statistics)
        return float(loss_sum / norm), int(correct)

    def _compute(self, total, statistics):
        import dask

        if self.client is None:
            return dask.compute(total, statistics, scheduler="synchronous")
        return self.client.compute([total, statistics], sync=True)

    def _apply(self, grads, statistics) -> None:
        """The optimizer step with the summed gradients; BatchNorm's running statistics updated with the batch's."""
        self.optimizer.zero_grad()
        for p, g in zip(self.model.parameters(), grads):
            if p.requires_grad:
                p.accumulate(g)
        layers = [layer for layer in self.model if isinstance(layer, BatchNorm2d)]
        for layer, (count, mean, var) in zip(layers, statistics):
            if layer.track_running_stats:
                layer._update_running(mean.astype(layer.running_mean.dtype), var.astype(layer.running_var.dtype), count)
        self.optimizer.step()


def _tree(items: list, add) -> object:
    """``add`` applied pairwise, level by level: a reduction tree of depth ``ceil(log2(len(items)))``."""
    while len(items) > 1:
        items = [add(*items[i:i + 2]) if i + 1 < len(items) else items[i] for i in range(0, len(items), 2)]
    return items[0]


# ------------------------------------------------------------------------------------------------
# clusters
# ------------------------------------------------------------------------------------------------


def connect(workers: int | None = None, scheduler: str | None = None, *, timeout: float = 5.0):
    """A ``dask.distributed.Client``: of a new ``LocalCluster`` of ``workers`` processes, or of ``scheduler``.

    An unreachable scheduler is a ``ValueError`` of one line, raised within ``timeout`` seconds.
    """
    if (workers is None) == (scheduler is None):
        raise ValueError("give either workers (--workers: a LocalCluster) or scheduler (--scheduler: an address), not both or neither")
    try:
        from dask.distributed import Client, LocalCluster
    except ImportError:
        raise ValueError("data-parallel training needs dask: pip install 'convgrad[dask]'") from None
    if scheduler is not None:
        try:
            return Client(scheduler, timeout=timeout)
        except (OSError, TimeoutError, ValueError) as exc:
            reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise ValueError(f"cannot reach the Dask scheduler at {scheduler!r}: {reason}") from None
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ValueError(f"connect: workers must be a positive integer, got {workers!r}")
    cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=":0")
    client = Client(cluster)
    client._convgrad_owns_cluster = cluster
    return client


@contextlib.contextmanager
def data_parallel(model, loss_fn, optimizer, *, workers: int | None = None, scheduler: str | None = None, threads: int = 1):
    """A :class:`DataParallelStep` on a LocalCluster of ``workers`` or on ``scheduler``; ``None`` if neither is given.

    The cluster (a LocalCluster this function started) is closed on exit.
    """
    if workers is None and scheduler is None:
        yield None
        return
    client = connect(workers, scheduler)
    try:
        shards = workers if workers is not None else max(1, len(client.nthreads()))
        yield DataParallelStep(model, loss_fn, optimizer, shards=shards, client=client, threads=threads)
    finally:
        close(client)


def close(client) -> None:
    """Close a client of :func:`connect`, and the LocalCluster it started."""
    cluster = getattr(client, "_convgrad_owns_cluster", None)
    client.close()
    if cluster is not None:
        cluster.close()
