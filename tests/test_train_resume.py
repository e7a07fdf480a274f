"""No training run is lost: interrupted at any moment, ``convgrad train`` leaves the last complete
epoch's weights loadable, and ``--resume`` continues to the uninterrupted run's weights, bit for bit.

Two ways to interrupt: a real SIGINT (Ctrl-C) to a training process, and a failure injected while
``weights.npz`` is being written.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import convgrad.nn.checkpoint as checkpoint
from convgrad.cli import main
from convgrad.nn.checkpoint import load_lenet
from test_cli_train import synthetic_idx

pytest.importorskip("matplotlib")

ENV = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1] / "src")}
EPOCHS = 5


def run_args(data, out, *extra):
    return ["train", "-q", "--data", str(data), "--epochs", str(EPOCHS), "--batch-size", "16", "--seed", "7",
            "--out", str(out), *map(str, extra)]


def arrays(path) -> dict:
    with np.load(path) as f:
        return {k: f[k] for k in f.files if k != "meta"}


def meta(path) -> dict:
    with np.load(path) as f:
        return json.loads(str(f["meta"]))


def results(path) -> list[dict]:
    """The per-epoch losses and accuracies (not the times) saved with the weights."""
    return [{k: v for k, v in r.items() if k != "seconds"} for r in meta(path)["resume"]["history"]]


def assert_same_weights(a, b) -> None:
    x, y = arrays(a), arrays(b)
    assert sorted(x) == sorted(y)
    for k in x:
        np.testing.assert_array_equal(x[k], y[k], err_msg=k)  # bit for bit, optimizer state included


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    folder = tmp_path_factory.mktemp("resume")
    synthetic_idx(folder / "idx")
    assert main(run_args(folder / "idx", folder / "full")) == 0
    return folder / "idx", folder / "full" / "weights.npz"


def test_ctrl_c_keeps_the_last_epoch_and_resume_reproduces_the_run(uninterrupted, tmp_path):
    data, full = uninterrupted
    out = tmp_path / "run"
    argv = run_args(data, out)
    argv.remove("-q")
    proc = subprocess.Popen([sys.executable, "-m", "convgrad", *argv, "--no-progress"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=ENV)
    for line in proc.stdout:
        if line.startswith(f"epoch 2/{EPOCHS}"):
            proc.send_signal(signal.SIGINT)  # Ctrl-C, somewhere in epoch 3 (or later on a fast machine)
            break
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "Traceback" not in err
    said = re.search(r"interrupted: the weights of epoch (\d)/5 \(the last complete one\) are in (\S+); "
                     r"continue with: convgrad train --resume (\S+)", err)
    assert said, err
    epoch = int(said.group(1))
    assert Path(said.group(2)) == out / "weights.npz" and Path(said.group(3)) == out
    if epoch == EPOCHS:
        pytest.skip("the machine finished the run before the signal arrived")
    model, info = load_lenet(out / "weights.npz")  # loadable, and the epoch it says
    assert info["epochs"] == epoch and len(info["resume"]["history"]) == epoch
    assert [p.name for p in out.iterdir()] == ["weights.npz"]  # no partial file, no pictures yet

    assert main(["train", "-q", "--resume", str(out)]) == 0
    assert_same_weights(out / "weights.npz", full)
    assert results(out / "weights.npz") == results(full)


def test_a_failure_while_writing_leaves_the_previous_epoch_whole(uninterrupted, tmp_path, monkeypatch, capsys):
    data, full = uninterrupted
    out = tmp_path / "run"
    real_savez = np.savez
    calls = []

    def failing_savez(file, *args, **kwargs):
        calls.append(1)
        if len(calls) == 3:  # the third epoch's file: half written, then the disk is "full"
            file.write(b"PK\x03\x04 half a zip")
            raise OSError(28, "No space left on device")
        return real_savez(file, *args, **kwargs)

    monkeypatch.setattr(checkpoint.np, "savez", failing_savez)
    assert main(run_args(data, out)) == 2
    assert "No space left on device" in capsys.readouterr().err
    monkeypatch.setattr(checkpoint.np, "savez", real_savez)

    assert sorted(p.name for p in out.iterdir()) == ["weights.npz"]  # the partial file was removed
    _, info = load_lenet(out / "weights.npz")
    assert info["epochs"] == 2
    assert main(["train", "-q", "--resume", str(out)]) == 0
    assert_same_weights(out / "weights.npz", full)
    assert results(out / "weights.npz") == results(full)
    for name in ("curves.png", "filters.png", "mistakes.png"):
        assert (out / name).stat().st_size > 5_000


def test_resume_refuses_other_settings_and_a_finished_run_stays_as_it_is(uninterrupted, tmp_path, capsys):
    data, full = uninterrupted
    assert main(["train", "-q", "--resume", str(full.parent), "--lr", "0.5", "--out", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err
    assert "--lr: the run in" in err and "was started with --lr 0.01" in err and "got 0.5" in err
    assert not (tmp_path / "x").exists()  # refused before anything was created
    before = arrays(full)
    assert main(["train", "-q", "--resume", str(full.parent), "--out", str(tmp_path / "copy")]) == 0
    assert_same_weights(tmp_path / "copy" / "weights.npz", full)
    for k, v in before.items():
        np.testing.assert_array_equal(arrays(full)[k], v)  # the resumed-from file is untouched


def test_out_is_checked_before_training(tmp_path, capsys, monkeypatch):
    """An --out that cannot be written fails in a second, before the data are even read."""
    import convgrad.cli.train as train_cli

    def no_data(args):
        raise AssertionError("the data were loaded although --out is unusable")

    monkeypatch.setattr(train_cli, "load_data", no_data)
    (tmp_path / "file").write_text("")
    assert main(["train", "--out", str(tmp_path / "file")]) == 2
    assert "--out:" in capsys.readouterr().err
