"""MNIST-1D: the local loader (no network), the paper's 1-D CNN against PyTorch, and ``convgrad train --data mnist1d``."""

from __future__ import annotations

import json
import random
import socket
import sys

import numpy as np
import pytest

from convgrad.cli import main
from convgrad.cli.train import MNIST1D, data_source
from convgrad.nn import data
from convgrad.nn.models import CNN1dConfig, cnn1d, config_from_dict, count_parameters

pytest.importorskip("mnist1d")

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.fixture
def no_network(monkeypatch):
    """Any attempt to open a connection fails the test."""

    def refuse(*args, **kwargs):
        raise AssertionError(f"MNIST-1D tried to use the network: {args}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)


@pytest.fixture(scope="module")
def small():
    """A 1000-signal MNIST-1D (800 training, 200 test), generated once."""
    return data.load_mnist1d(num_samples=1000)


def test_loader_shapes_and_no_network_and_no_files(no_network, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # mnist1d's get_dataset would write ./mnist1d_data.pkl: load_mnist1d must not
    np_state, py_state = np.random.get_state(), random.getstate()
    train, test = data.load_mnist1d(num_samples=300)
    assert list(tmp_path.iterdir()) == []
    # the global random states mnist1d reseeds are given back
    assert random.getstate() == py_state
    after = np.random.get_state()
    assert after[0] == np_state[0] and np.array_equal(after[1], np_state[1]) and after[2:] == np_state[2:]
    assert train.images.shape == (240, 1, 40) and test.images.shape == (60, 1, 40)  # the paper's 80/20 split
    assert train.images.dtype == np.float32 and train.labels.dtype == np.int64
    assert train.image_size == (40,) and train.max_value == 1.0
    assert set(np.unique(train.labels)) == set(range(10))
    both = np.concatenate([train.images, test.images])
    assert abs(both.mean()) < 1e-5 and abs(both.std() - 1) < 1e-4  # standardized over the whole set


def test_loader_is_deterministic_in_its_seed():
    first, again = data.load_mnist1d(num_samples=200), data.load_mnist1d(num_samples=200)
    for a, b in zip(first, again):
        np.testing.assert_array_equal(a.images, b.images)
        np.testing.assert_array_equal(a.labels, b.labels)
    other = data.load_mnist1d(num_samples=200, seed=7)[0]
    assert not np.array_equal(other.images, first[0].images)


def test_loader_errors(monkeypatch, capsys, tmp_path):
    with pytest.raises(ValueError, match=r"num_samples must be an integer >= 20 .*got 5"):
        data.load_mnist1d(num_samples=5)
    monkeypatch.setitem(sys.modules, "mnist1d", None)  # as if not installed
    monkeypatch.setitem(sys.modules, "mnist1d.data", None)
    with pytest.raises(ImportError, match=r"pip install 'convgrad\[mnist1d\]'"):
        data.load_mnist1d()
    assert main(["train", "--data", "mnist1d", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "convgrad[mnist1d]" in err, err


def test_data_flag_names_mnist1d_or_a_folder():
    assert data_source("mnist1d") == MNIST1D
    assert str(data_source("./mnist1d")) == "mnist1d" and not isinstance(data_source("./mnist1d"), str)
    assert not isinstance(data_source("digits/idx"), str)


def torch_convbase(channels=25, classes=10):
    """The MNIST-1D paper's ``ConvBase`` as a torch Sequential with convgrad's layer numbering."""
    torch = pytest.importorskip("torch")
    nn = torch.nn
    return nn.Sequential(nn.Conv1d(1, channels, 5, stride=2, padding=1), nn.ReLU(),
                         nn.Conv1d(channels, channels, 3, stride=2, padding=1), nn.ReLU(),
                         nn.Conv1d(channels, channels, 3, stride=2, padding=1), nn.ReLU(),
                         nn.Flatten(), nn.Linear(channels * 5, classes)).double()


def test_cnn1d_is_the_papers_network_value_for_value():
    """Same weights as torch's ConvBase: same logits and gradients (float64), same parameter count."""
    from _nn_torch import compare_passes

    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    reference = torch_convbase()
    model = cnn1d(CNN1dConfig(), rng=0).to(np.float64)
    assert count_parameters(model) == sum(p.numel() for p in reference.parameters()) == 5210
    x = np.random.default_rng(1).standard_normal((7, 1, 40))
    assert compare_passes(model, reference, x, tol=1e-10) == 3 + 2 * 8  # y, dx, 8 parameters and their grads


def test_cnn1d_config_round_trip_and_errors():
    config = CNN1dConfig(length=33, num_classes=4, channels=8)
    assert config_from_dict(json.loads(json.dumps(config.to_dict()))) == config
    assert config_from_dict({"image_size": [8, 8], "num_classes": 10, "channels": [16, 32], "hidden": 128,
                             "dropout": 0.3}).image_size == (8, 8)  # files written before the 1-D model: a LeNet
    with pytest.raises(ValueError, match="unknown network kind 'rnn'"):
        config_from_dict({"kind": "rnn"})
    with pytest.raises(ValueError, match="at least 3 samples long.*got 2"):
        cnn1d(CNN1dConfig(length=2), rng=0)


def test_train_on_mnist1d_learns_and_predict_reads_signals(small, monkeypatch, tmp_path, capsys):
    """A short run on 800 signals: well above chance (10 %); the 1-D pictures; predict on .npy signals."""
    monkeypatch.setattr(data, "load_mnist1d", lambda: small)
    out = tmp_path / "out"
    assert main(["train", "--data", "mnist1d", "--epochs", "10", "--batch-size", "50", "--no-progress", "--json",
                 "--out", str(out)]) == 0
    captured = capsys.readouterr()
    result = json.loads(captured.out)
    assert result["test_accuracy"] >= 0.3, captured.err
    assert "MNIST-1D" in captured.err and "800 training and 200 test signals" in captured.err
    assert "5,210 parameters" in captured.err and "SIGNALS.npy" in captured.err
    for name in ("curves.png", "filters.png", "mistakes.png"):
        assert (out / name).read_bytes()[:8] == PNG_SIGNATURE
        assert (out / name).stat().st_size > 5_000
    with np.load(out / "weights.npz") as f:
        meta = json.loads(str(f["meta"]))
    assert meta["config"]["kind"] == "cnn1d" and meta["resume"]["settings"]["data"] == "mnist1d"

    test = small[1]
    np.save(tmp_path / "stack.npy", test.images[:, 0])  # (200, 40)
    np.save(tmp_path / "one.npy", test.images[3, 0])    # (40,)
    assert main(["predict", str(out / "weights.npz"), str(tmp_path / "stack.npy"), str(tmp_path / "one.npy"),
                 "--json"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    predicted = np.array([r["prediction"] for r in rows])
    assert len(rows) == 201 and predicted[-1] == predicted[3]
    assert np.isclose((predicted[:200] == test.labels).mean(), result["test_accuracy"])  # the same network as trained

    np.save(tmp_path / "wrong.npy", np.zeros((3, 41)))
    for path, message in ((tmp_path / "wrong.npy", "expected a signal of shape (40,) or a stack (N, 40)"),
                          (out / "curves.png", "classifies 1-D signals of 40 samples, read from .npy")):
        assert main(["predict", str(out / "weights.npz"), str(path)]) == 2
        assert message in capsys.readouterr().err

    # --resume continues it as the same run: its settings (data included) come from the file
    assert main(["train", "--resume", str(out), "--no-progress", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["epochs"] == 10
