"""The command line: ``convgrad check``."""

import json
import subprocess
import sys

from convgrad.cli import main


def test_check_default_configuration_is_the_seed_layer(capsys):
    assert main(["check"]) == 0
    out = capsys.readouterr().out
    assert "input (5, 100, 100), weight (10, 5, 5, 5)" in out
    for quantity, shape in [("output", "(10, 96, 96)"), ("grad_input", "(5, 100, 100)"),
                            ("grad_weight", "(10, 5, 5, 5)"), ("grad_bias", "(10,)")]:
        line = next(line for line in out.splitlines() if line.startswith(quantity))
        assert shape in line
    assert "OK: every error within 1e-08" in out


def test_check_json_reports_small_errors_for_every_quantity(capsys):
    argv = ["check", "--input", "2,4,9,8", "--weight", "6,2,3,2", "--stride", "2,3", "--padding", "1:0,2",
            "--dilation", "2,1", "--groups", "2", "--padding-mode", "reflect", "--json"]
    assert main(argv) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["ok"] is True
    rows = {r["quantity"]: r for r in report["rows"]}
    assert set(rows) == {"output", "grad_input", "grad_weight", "grad_bias"}
    assert rows["grad_input"]["shape"] == [2, 4, 9, 8]
    for r in rows.values():
        assert r["vs_direct"] < 1e-12
        assert r["vs_torch"] is not None and r["vs_torch"] < 1e-12
    assert rows["grad_weight"]["vs_fd_direction"] < 1e-8


def test_check_transposed_4d_and_float32(capsys):
    assert main(["check", "--input", "1,2,3,3,3,3", "--weight", "2,2,2,2,2,2", "--transposed", "--stride", "2",
                 "--output-padding", "1", "--fd-entries", "2"]) == 0
    out = capsys.readouterr().out
    assert "conv_transpose" in out and "(1, 2, 7, 7, 7, 7)" in out
    assert main(["check", "--input", "2,3,8,8", "--weight", "4,3,3,3", "--dtype", "float32", "--no-torch"]) == 0
    assert "float32" in capsys.readouterr().out


def test_check_bad_configuration_exits_2_with_the_reason(capsys):
    assert main(["check", "--input", "1,3,8,8", "--weight", "4,2,3,3"]) == 2
    err = capsys.readouterr().err
    assert "weight.shape[1]" in err and "Traceback" not in err
    assert main(["check", "--stride", "two"]) == 2


def test_console_entry_point_runs():
    out = subprocess.run([sys.executable, "-m", "convgrad", "check", "--input", "1,1,4,4", "--weight", "1,1,2,2",
                          "--no-torch"], capture_output=True, text=True, check=True).stdout
    assert "grad_weight" in out and "OK" in out


def test_check_progress_reaches_its_total_and_notes_say_why_a_column_is_empty(capsys):
    from convgrad.checking import check_configuration, format_report

    calls = []
    report = check_configuration((1, 2, 6, 6), (3, 2, 3, 3), fd_entries=3, torch_check=False,
                                 progress=lambda done, total: calls.append((done, total)))
    dones = [d for d, _ in calls]
    assert dones == sorted(dones) and calls[-1][0] == calls[-1][1] and len(calls) > 10
    assert "- vs PyTorch: not compared" in format_report(report)
    assert main(["check", "--input", "1,2,6,6", "--weight", "3,2,3,3", "--dtype", "float16"]) == 0
    captured = capsys.readouterr()
    assert "- vs PyTorch: not compared for float16" in captured.out
    assert captured.err == ""  # no progress bar when stderr is not a terminal
