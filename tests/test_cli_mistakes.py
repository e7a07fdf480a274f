"""A newcomer's mistakes on the command line: one line each, naming the flag or file, exit 2, no traceback.

Every row of :data:`MISTAKES` is a command a user could type, the exit status it must end with and
a regular expression the one error line must match. Add a row for every new sub-command or flag:

    Mistake(["verify", "--bad"], 2, r"unrecognized arguments: --bad"),

``{tmp}`` in an argument is the row's scratch folder, which holds the files of :func:`scratch`
(``notes.txt``, ``seven.png``, ``afile``). ``hide`` lists modules to make unimportable (as if an
optional dependency were not installed). The message is the one line of stderr that contains
``error:``; the only other lines allowed are argparse's usage of the sub-command.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pytest

from convgrad.cli import COMMANDS, main

SRC = str(Path(__file__).resolve().parents[1] / "src")
ENV = {**os.environ, "PYTHONPATH": SRC}


class Mistake(NamedTuple):
    argv: list[str]
    status: int
    message: str  # a regular expression the error line must match (re.search)
    hide: tuple[str, ...] = ()  # modules that behave as not installed


MISTAKES = [
    # a mistyped flag: the sub-command's usage (not convgrad's), the unknown flag and the nearest known one
    Mistake(["check", "--stide", "2"], 2, r"^convgrad check: error: unrecognized arguments: --stide 2 \(did you mean --stride\?\)"),
    Mistake(["train", "--epohcs", "3"], 2, r"^convgrad train: error: unrecognized arguments: --epohcs 3 \(did you mean --epochs\?\)"),
    Mistake(["predict", "a.npz", "b.png", "--jsn"], 2, r"^convgrad predict: error: unrecognized arguments: --jsn"),
    Mistake(["bench", "--repaets", "3"], 2, r"^convgrad bench: error: unrecognized arguments: --repaets 3"),
    Mistake(["chek"], 2, r"invalid choice: 'chek'"),
    Mistake(["verify", "{tmp}/nothing.py:f", "--op", "forward"], 2, r"^convgrad verify: error: no such file: .*nothing.py"),
    Mistake(["verify", "{tmp}/notes.txt", "--op", "forward"], 2, r"^convgrad verify: error: expected FILE.py:FUNCTION"),
    Mistake(["verify", "{tmp}/notes.txt:f", "--op", "sideways"], 2, r"argument --op: invalid choice: 'sideways'"),
    Mistake(["verify", "{tmp}/notes.txt:f", "--op", "forward", "--time-limit", "0"], 2, r"--time-limit: expected a positive"),
    Mistake(["verify", "{tmp}/notes.txt:f", "--op", "forward", "--figure", "{tmp}/no/dir/x.png"], 2, r"--figure: folder"),
    Mistake(["verify", "{tmp}/notes.txt:f", "--op", "forward", "--padding", "full"], 2, r"--padding: expected a comma-separated"),
    Mistake(["verify", "{tmp}/notes.txt:f", "--op", "forward", "--tme-limit", "3"], 2, r"did you mean --time-limit\?"),
    # check
    Mistake(["check", "--fd-entries", "-3"], 2, r"argument --fd-entries: expected an integer >= 0, got -3"),
    Mistake(["check", "--input", "1,3,8,8", "--weight", "2,3,3"], 2,
            r"--input: a weight with 1 kernel size \('2,3,3'\).* got 4: '1,3,8,8'$"),
    Mistake(["check", "--weight", "4,3"], 2, r"--weight: expected C_out,C_in/groups and at least one kernel size"),
    Mistake(["check", "--input", "1,3,8,8", "--weight", "4,2,3,3"], 2, r"weight\.shape\[1\]"),
    Mistake(["check", "--stride", "two"], 2, r"argument --stride: expected comma-separated integers, got 'two'"),
    Mistake(["check", "--dtype", "float8"], 2, r"argument --dtype: invalid choice: 'float8'"),
    Mistake(["check", "--output-padding", "1"], 2, r"--output-padding only applies to a transposed convolution"),
    # train: every one found before any training
    Mistake(["train", "--out", "{tmp}/afile"], 2, r"--out: \S*afile is a file, expected a folder"),
    Mistake(["train", "--out", "{tmp}/afile/sub"], 2, r"--out: cannot write into \S*afile/sub"),
    Mistake(["train", "--out", "/proc/convgrad-out"], 2, r"--out: cannot write into /proc/convgrad-out"),
    Mistake(["train", "--epochs", "0"], 2, r"argument --epochs: expected an integer >= 1, got 0"),
    Mistake(["train", "--lr", "-1"], 2, r"argument --lr: expected a positive number, got -1"),
    Mistake(["train", "--test-fraction", "1.5"], 2, r"argument --test-fraction: expected a number between 0 and 1"),
    Mistake(["train", "--data", "{tmp}/nowhere", "--out", "{tmp}/out"], 2, r"nowhere is not a directory"),
    Mistake(["train", "--resume", "{tmp}/nowhere"], 2, r"--resume: \S*nowhere is not a folder"),
    Mistake(["train", "--resume", "{tmp}"], 2, r"--resume: \S*weights\.npz holds weights only, not the state needed"),
    Mistake(["train", "--resume", "{tmp}/afile"], 2, r"--resume: \S*afile is not a folder"),
    Mistake(["train", "--out", "{tmp}/out"], 2, r"scikit-learn, which is not installed: pip install 'convgrad\[train\]'",
            hide=("sklearn",)),
    # predict: the file is named, allow_pickle never mentioned (checked for every row below)
    Mistake(["predict", "{tmp}/notes.txt", "{tmp}/seven.png"], 2,
            r"notes\.txt is not a convgrad weights file .*the weights come first"),
    Mistake(["predict", "{tmp}/seven.png", "{tmp}/notes.txt"], 2, r"seven\.png is not a convgrad weights file"),
    Mistake(["predict", "{tmp}/missing.npz", "{tmp}/seven.png"], 2, r"cannot read weights file \S*missing\.npz: no such file"),
    Mistake(["predict", "{tmp}/weights.npz", "{tmp}/notes.txt"], 2, r"notes\.txt: unsupported file type '\.txt'"),
    Mistake(["predict", "{tmp}/weights.npz", "{tmp}/seven.png", "--top", "0"], 2, r"argument --top: expected an integer >= 1"),
    # bench: before the (long) benchmark, and before any table
    Mistake(["bench", "--layers", "a,zz"], 2, r"unknown benchmark layer 'zz'"),
    Mistake(["bench", "--repeats", "0"], 2, r"argument --repeats: expected an integer >= 1, got 0"),
    Mistake(["bench", "--input", "1,3,8,8"], 2, r"--input and --weight go together"),
    Mistake(["bench", "--input", "1,3,8,8", "--weight", "4,3,3", "--no-torch"], 2, r"--input: a weight with 1 kernel size"),
    Mistake(["bench", "--no-torch", "--json", "/nonexistent-dir/x.json"], 2, r"--json: cannot write /nonexistent-dir/x\.json"),
    Mistake(["bench", "--no-torch", "--json", "{tmp}"], 2, r"--json: \S+ is a folder, expected a file name"),
    Mistake(["bench", "--layers", "g2"], 2, r"PyTorch is not installed: pip install 'convgrad\[bench\]'", hide=("torch",)),
]


@pytest.fixture(scope="module")
def scratch(tmp_path_factory):
    """A folder with a text file, a picture, a plain file and a convgrad weights file."""
    folder = tmp_path_factory.mktemp("mistakes")
    (folder / "notes.txt").write_text("shopping: milk, eggs\n")
    (folder / "afile").write_text("")
    from convgrad.nn.checkpoint import save_lenet
    from convgrad.nn.models import LeNetConfig, lenet

    config = LeNetConfig()
    save_lenet(folder / "weights.npz", lenet(config, rng=0), config, 16.0)
    pil = pytest.importorskip("PIL.Image")
    seven = np.zeros((16, 16), np.uint8)
    seven[2, 3:13] = 255
    seven[np.arange(3, 14), np.linspace(12, 6, 11).astype(int)] = 255
    pil.fromarray(seven).save(folder / "seven.png")
    return folder


def _hidden(monkeypatch, modules) -> None:
    for name in modules:
        for loaded in [m for m in sys.modules if m == name or m.startswith(name + ".")]:
            monkeypatch.delitem(sys.modules, loaded)
        monkeypatch.setitem(sys.modules, name, None)  # `import name` now raises ModuleNotFoundError


def assert_one_line_error(err: str, command: str, pattern: str) -> str:
    """The stderr of a mistake: no traceback, exactly one error line (matching), the rest usage only."""
    assert "Traceback" not in err, err
    assert "allow_pickle" not in err, err
    lines = [line for line in err.splitlines() if line.strip()]
    errors = [line for line in lines if "error:" in line]
    assert len(errors) == 1, err
    prog = f"convgrad {command}" if command else "convgrad"
    assert errors[0].startswith(f"{prog}: error: "), err
    assert re.search(pattern, errors[0]), f"{pattern!r} not in {errors[0]!r}"
    usage = lines[:lines.index(errors[0])]
    assert not usage or (usage[0].startswith(f"usage: {prog} ") and all(u.startswith(" ") for u in usage[1:])), err
    assert lines[-1] == errors[0], err
    return errors[0]


@pytest.mark.parametrize("mistake", MISTAKES, ids=lambda m: " ".join(m.argv))
def test_a_mistake_is_one_line_and_exit_2(mistake, scratch, monkeypatch, capsys):
    _hidden(monkeypatch, mistake.hide)
    argv = [a.replace("{tmp}", str(scratch)) for a in mistake.argv]
    status = main(argv)
    err = capsys.readouterr().err
    command = argv[0] if argv[0] in COMMANDS else ""
    assert status == mistake.status, err
    assert_one_line_error(err, command, mistake.message)
    assert not (scratch / "out").exists() or not any((scratch / "out").iterdir())  # nothing half-done


def test_every_sub_command_has_rows():
    assert {m.argv[0] for m in MISTAKES} >= {"check", "train", "predict", "bench"}


def test_a_mistake_in_a_real_process_has_no_traceback(scratch):
    """The console entry point itself: the same one line and exit status 2."""
    result = subprocess.run([sys.executable, "-m", "convgrad", "predict", str(scratch / "notes.txt"), str(scratch / "seven.png")],
                            capture_output=True, text=True, env=ENV)
    assert result.returncode == 2
    assert_one_line_error(result.stderr, "predict", r"notes\.txt is not a convgrad weights file")


def test_ctrl_c_in_check_is_one_line_and_exit_130():
    """SIGINT while `convgrad check` works (a large configuration): one line, status 130.

    The child says "ready" once convgrad is imported, so the signal lands in the work, not in
    Python's start-up (a Ctrl-C during the import itself is Python's own, before any convgrad code).
    """
    argv = ["check", "--input", "4,8,64,64", "--weight", "16,8,5,5", "--fd-entries", "200", "--no-torch"]
    code = f"import sys, convgrad.cli; print('ready', flush=True); sys.exit(convgrad.cli.main({argv!r}))"
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV)
    assert proc.stdout.readline() == "ready\n"
    time.sleep(0.5)  # into the work: the references alone take seconds
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 130, err
    assert "Traceback" not in err
    assert [line for line in err.splitlines() if line.strip()] == ["convgrad check: interrupted"]


def test_ctrl_c_before_the_parser_is_built_still_names_the_command(monkeypatch, capsys):
    """A Ctrl-C that lands while the parser is still being built (a loaded machine) names the command."""
    import convgrad.cli as cli

    def interrupted():
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "build_parser", interrupted)
    assert cli.main(["-q", "check", "--input", "1,1,5"]) == 130
    assert capsys.readouterr().err.strip() == "convgrad check: interrupted"
    assert cli.main(["--input", "1,1,5"]) == 130
    assert capsys.readouterr().err.strip() == "convgrad ?: interrupted"
