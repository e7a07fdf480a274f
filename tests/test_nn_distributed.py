"""Data-parallel training on Dask: a sharded step is the one-process full-batch step, even when a worker dies."""

from __future__ import annotations

import json
import os
import signal
import sys
from pathlib import Path

import numpy as np
import pytest

from convgrad.nn import Adam, BatchNorm2d, CrossEntropyLoss, Dropout, MSELoss, Module, ReLU, Sequential
from convgrad.nn.data import Dataset
from convgrad.nn.distributed import DataParallelStep, close, connect
from convgrad.nn.models import LeNetConfig, lenet
from convgrad.nn.training import fit

pytest.importorskip("dask")


def _data(n, seed=0):
    rng = np.random.default_rng(seed)
    return Dataset(rng.random((n, 1, 8, 8)), rng.integers(0, 10, n), 1.0)


def _run(step_for, extra_layer=None, *, n=44, batch_size=10, epochs=1, seed=3):
    """Train a float64 LeNet with the step ``step_for(model, loss, optimizer)`` gives (None: one process).

    Returns the final ``state_dict``, the history, and the names whose exact gradient is zero.
    """
    model = lenet(LeNetConfig(), rng=seed).to(np.float64)
    if extra_layer is not None:  # after the first BatchNorm: the kill comes in the middle of a step
        layers = list(model)
        model = Sequential(*layers[:2], extra_layer, *layers[2:])
    loss = CrossEntropyLoss(label_smoothing=0.1)
    optimizer = Adam(model.parameters(), lr=0.01)
    step = None if step_for is None else step_for(model, loss, optimizer)
    history = fit(model, loss, optimizer, _data(n), _data(12, 1), epochs=epochs, batch_size=batch_size,
                  rng=np.random.default_rng(seed), step=step)
    # the bias of a convolution followed by a BatchNorm has an exactly zero gradient (the BatchNorm
    # subtracts it again): its float64 rounding noise (~1e-17), divided by Adam's eps (1e-8), moves it
    # by ~1e-10 per step in both runs alike -- noise, not a step; the BatchNorm's running mean adds it
    noise = {f"{i}.bias" for i in range(len(model) - 1) if isinstance(model[i + 1], BatchNorm2d)}
    noise |= {f"{i + 1}.running_mean" for i in range(len(model) - 1) if isinstance(model[i + 1], BatchNorm2d)}
    return model.state_dict(), history, noise


def _assert_same_run(got, expected):
    (state, history, noise), (ref_state, ref_history, _) = got, expected
    assert state.keys() == ref_state.keys()
    for name in ref_state:
        tol = 1e-8 if name in noise else 1e-10
        np.testing.assert_allclose(state[name], ref_state[name], rtol=tol, atol=tol, err_msg=name)
    for a, b in zip(history, ref_history):
        assert a.train_accuracy == b.train_accuracy and a.test_accuracy == b.test_accuracy
        assert a.train_loss == pytest.approx(b.train_loss, rel=1e-12)


@pytest.mark.parametrize("shards", [1, 3, 7])
def test_sharded_steps_equal_the_one_process_run(shards):
    # 24 samples in batches of 10: the last batch of 4 has fewer samples than 7 shards
    reference = _run(None, n=24, epochs=2)
    got = _run(lambda m, l, o: DataParallelStep(m, l, o, shards=shards), n=24, epochs=2)
    _assert_same_run(got, reference)


def test_batchnorm_running_statistics_and_dropout_draws_match():
    one = lenet(LeNetConfig(), rng=5).to(np.float64)
    two = lenet(LeNetConfig(), rng=5).to(np.float64)
    data = _data(24)
    loss = CrossEntropyLoss()
    DataParallelStep(two, loss, Adam(two.parameters()), shards=4)(data.images, data.labels)
    one(data.images)  # one forward in training mode updates the running statistics the same way
    for layer_one, layer_two in zip(one, two):
        if isinstance(layer_one, BatchNorm2d):
            np.testing.assert_allclose(layer_two.running_mean, layer_one.running_mean, rtol=1e-13, atol=1e-15)
            np.testing.assert_allclose(layer_two.running_var, layer_one.running_var, rtol=1e-13)
            assert layer_two.num_batches_tracked == layer_one.num_batches_tracked == 1
        if isinstance(layer_one, Dropout):  # both generators drew one mask of the same shape
            assert layer_one._rng.random() == layer_two._rng.random()


@pytest.mark.parametrize("make, error, match", [
    (lambda: (Sequential(Sequential(BatchNorm2d(1))), CrossEntropyLoss()), ValueError, "top-level"),
    (lambda: (lenet(LeNetConfig()), MSELoss()), TypeError, "CrossEntropyLoss"),
    (lambda: (Sequential(BatchNorm2d(1, data_format="channels_last")), CrossEntropyLoss()), ValueError, "channels_last"),
    (lambda: (lenet(LeNetConfig()), CrossEntropyLoss(weight=np.ones(10))), TypeError, "without class weights"),
])
def test_unsupported_models_are_named(make, error, match):
    model, loss = make()
    with pytest.raises(error, match=match):
        DataParallelStep(model, loss, Adam(lenet(LeNetConfig()).parameters()), shards=2)


def test_unreachable_scheduler_is_one_line():
    with pytest.raises(ValueError, match="cannot reach the Dask scheduler at 'tcp://127.0.0.1:1'") as info:
        connect(scheduler="tcp://127.0.0.1:1", timeout=1)
    assert "\n" not in str(info.value)


# ------------------------------------------------------------------------------------------------
# on a LocalCluster of 2 worker processes
# ------------------------------------------------------------------------------------------------


class KillOnce(Module):
    """The identity, except that the ``at``-th forward run in a worker process kills that process."""

    def __init__(self, counter: Path, at: int):
        super().__init__()
        self.counter, self.at, self.parent = str(counter), at, os.getpid()

    def forward(self, x):
        if os.getpid() != self.parent:
            with open(self.counter, "ab") as f:
                f.write(b".")
            if os.path.getsize(self.counter) == self.at:
                os.kill(os.getpid(), signal.SIGKILL)
        return x.copy()

    def backward(self, grad_output, *, input_grad=True):
        return grad_output.copy() if input_grad else None


def _cli_weights(capsys, folder, *extra):
    from convgrad.cli import main

    out = folder / "out"
    assert main(["train", "--no-progress", "--json", "--epochs", "1", "--batch-size", "16", "--data", str(folder),
                 "--out", str(out), *extra]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    with np.load(out / "weights.npz") as f:
        return result, {k: f[k] for k in f.files if f[k].dtype.kind == "f"}


def test_on_a_local_cluster_same_steps_a_killed_worker_and_the_cli(tmp_path, capsys, monkeypatch):
    # one test, one cluster: starting a LocalCluster costs seconds on busy cores
    pytest.importorskip("distributed")
    from convgrad.cli import train_figures
    from test_nn_data import write_idx

    # the workers unpickle KillOnce from this file: they need its folder on their path
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(Path(__file__).parent), *sys.path]))
    client = connect(workers=2)  # a LocalCluster of 2 processes, 1 thread each: what --workers 2 starts
    try:
        # two workers: the one-process steps
        _assert_same_run(_run(lambda m, l, o: DataParallelStep(m, l, o, shards=2, client=client), n=30), _run(None, n=30))

        # a worker killed in the middle of a step (its 3rd forward: step 2 of 3): recomputed, same run
        counter = tmp_path / "forwards"
        reference = _run(None, KillOnce(counter, at=10**9), n=30)
        counter.unlink(missing_ok=True)
        got = _run(lambda m, l, o: DataParallelStep(m, l, o, shards=2, client=client), KillOnce(counter, at=3), n=30)
        assert counter.stat().st_size > 3  # the worker was killed, and the lost shard computed again
        _assert_same_run(got, reference)

        # the command line on the cluster (--scheduler): the one-process run's weights.npz
        monkeypatch.setattr(train_figures, "write", lambda *args: [])  # pictures: most of a short run's time
        rng = np.random.default_rng(0)
        for stem, n in (("train", 48), ("t10k", 16)):
            write_idx(tmp_path / f"{stem}-images-idx3-ubyte", rng.integers(0, 255, (n, 8, 8)))
            write_idx(tmp_path / f"{stem}-labels-idx1-ubyte", np.arange(n) % 3)
        one, one_arrays = _cli_weights(capsys, tmp_path)
        many, many_arrays = _cli_weights(capsys, tmp_path, "--scheduler", client.scheduler.address)
    finally:
        close(client)
    assert one["test_accuracy"] == many["test_accuracy"]
    assert one_arrays.keys() == many_arrays.keys()
    # float32: the same steps up to float32 rounding -- except the biases of the convolutions before the
    # BatchNorms (and the running means they feed): their exact gradient is zero, and Adam turns their
    # float32 rounding noise (~1e-9, near its eps of 1e-8) into steps of up to lr, differently in each run
    noise = {"state/0.bias", "state/4.bias", "state/1.running_mean", "state/5.running_mean"}
    assert noise <= one_arrays.keys()
    for key, value in one_arrays.items():
        if key not in noise:
            np.testing.assert_allclose(many_arrays[key], value, rtol=1e-3, atol=1e-4, err_msg=key)


def test_cli_unreachable_scheduler_fails_before_training(tmp_path, capsys):
    from convgrad.cli import main

    assert main(["train", "--scheduler", "tcp://127.0.0.1:1", "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [err[0]] and "cannot reach the Dask scheduler" in err[0]
    out = tmp_path / "out"   # proven writable before anything else (possibly created), but nothing written
    assert not out.exists() or not any(out.iterdir())
