"""The benchmark command runs end to end on a tiny layer and writes a valid record (not a timed test)."""

import json

import pytest

from convgrad.bench import LAYERS, geometric_mean
from convgrad.bench.report import format_table
from convgrad.cli import main


@pytest.mark.slow  # over 10 s on the shared 2-core machine
def test_bench_command_on_a_tiny_layer_emits_valid_json(capsys):
    status = main(["bench", "--input", "2,3,9,8", "--weight", "4,3,3,3", "--padding", "1", "--stride", "2",
                   "--repeats", "2", "--warmup", "0", "--threads", "1", "--json", "-"])
    assert status == 0
    captured = capsys.readouterr()
    record = json.loads(captured.out)
    (entry,) = record["layers"]
    assert entry["name"] == "custom"
    assert entry["flops"]["forward"] == 2 * 2 * 4 * (5 * 4) * 3 * 9
    assert set(entry["times"]) == {"convgrad", "torch"}
    for lib in ("convgrad", "torch"):
        for op in ("forward", "backward", "both"):
            assert len(entry["times"][lib][op]) == 2
            assert all(t > 0 for t in entry["times"][lib][op])
        # measured (None when it could not be): an int number of bytes; a layer this small may need no new page
        assert isinstance(entry["peak_memory"][lib], int) and entry["peak_memory"][lib] >= 0
    assert entry["ratio"]["both"] == pytest.approx(entry["median"]["convgrad"]["both"] / entry["median"]["torch"]["both"])
    assert record["geomean_ratio"]["both"] == pytest.approx(entry["ratio"]["both"])
    assert record["gemm_peak"] > 0
    assert set(entry["algorithms"]) == {"forward", "grad_input", "grad_weight"}
    # the table went to stderr, its last line is the geometric mean
    assert captured.err.strip().splitlines()[-1].startswith("| **geometric mean**")


def test_bench_rejects_unknown_layer_and_bad_repeats(capsys):
    assert main(["bench", "--layers", "a,zz", "--no-memory"]) == 2
    assert "unknown benchmark layer 'zz'" in capsys.readouterr().err
    assert main(["bench", "--layers", "g2", "--repeats", "0"]) == 2


def test_the_ten_layers_of_the_issue():
    assert list(LAYERS) == ["a", "b", "c", "d", "e", "f", "g1", "g2", "h", "i"]
    a = LAYERS["a"]
    assert a.output_shape == (32, 64, 56, 56)
    assert a.flops("both") == 3 * 2 * 32 * 64 * 56 * 56 * 64 * 9
    assert LAYERS["b"].output_shape == (32, 256, 14, 14)
    assert LAYERS["d"].output_shape == (16, 64, 112, 112)
    assert LAYERS["e"].weight_shape == (128, 1, 3, 3)
    assert LAYERS["e"].forward_flops == 2 * 32 * 128 * 56 * 56 * 9
    assert LAYERS["f"].output_shape == (16, 64, 64, 64)
    assert LAYERS["g2"].output_shape == (64, 16, 10, 10)
    assert LAYERS["h"].output_shape == (16, 64, 16000)
    assert LAYERS["i"].output_shape == (4, 32, 32, 32, 32)


def test_geometric_mean_and_table_last_line():
    assert geometric_mean([2.0, 0.5]) == pytest.approx(1.0)
    assert geometric_mean([1.0, 4.0, 2.0]) == pytest.approx(2.0)
    assert geometric_mean([]) is None
    entry = {
        "name": "a", "median": {"convgrad": {"forward": 1.0, "backward": 2.0, "both": 3.0},
                                "torch": {"forward": 2.0, "backward": 2.0, "both": 4.0}},
        "ratio": {"forward": 0.5, "backward": 1.0, "both": 0.75},
        "gflops": {"convgrad": {"both": 10.0}, "torch": {"both": 7.5}},
        "fraction_of_peak": {"convgrad": {"both": 0.1}, "torch": {"both": 0.075}},
        "peak_memory": {"convgrad": 2**20, "torch": 2 * 2**20},
        "algorithms": {"forward": "x", "grad_input": "y", "grad_weight": "x"},
    }
    record = {"date": "today", "machine": {"cpu": "cpu", "cpus": 2, "numpy": "2", "blas": "b", "torch": "t"},
              "settings": {"threads": 2, "repeats": 5, "workspace_limit": 2**25}, "gemm_peak": 100.0,
              "layers": [entry], "geomean_ratio": {"forward": 0.5, "backward": 1.0, "both": 0.75},
              "worst_ratio": {"both": (0.75, "a")}}
    lines = format_table(record).splitlines()
    assert "| a | 1000 / 2000 | 0.50 |" in lines[-2]
    assert "x/y/x" in lines[-2] and "1 / 2" in lines[-2]
    assert lines[-1].startswith("| **geometric mean** | | **0.50** | | **1.00** | | **0.75** |")
    assert "float32 GEMM peak 100 GFLOP/s" in lines[0] and "workspace limit 32 MiB" in lines[0]


def test_bench_prints_one_table_and_accepts_an_unbatched_input(capsys):
    """One table (not a row-by-row copy with `nan` first), no 'PyTorch None' under --no-torch."""
    status = main(["bench", "--input", "3,9,8", "--weight", "4,3,3,3", "--repeats", "1", "--warmup", "0",
                   "--threads", "1", "--no-torch", "--no-memory"])
    assert status == 0
    captured = capsys.readouterr()
    assert captured.out.count("| layer |") == 1
    assert "nan" not in captured.out and "None" not in captured.out
    assert "convgrad alone (no PyTorch)" in captured.out
    assert captured.err == ""  # no progress bar off a terminal


@pytest.mark.slow  # imports PyTorch and times two dtypes: ~10 s on the loaded 2-core machine
def test_bench_layers_in_both_dtypes(capsys, monkeypatch):
    import convgrad.bench.run as run

    monkeypatch.setattr(run, "gemm_peak", lambda threads: 1.0)  # the 2048² product is not what this checks
    status = main(["bench", "--input", "2,3,6,6", "--weight", "4,3,3,3", "--repeats", "1", "--warmup", "0",
                   "--threads", "1", "--no-memory", "--dtypes", "float32,float64", "--json", "-"])
    assert status == 0
    captured = capsys.readouterr()
    records = json.loads(captured.out)
    assert [r["settings"]["dtype"] for r in records] == ["float32", "float64"]
    assert all(set(r["layers"][0]["ratio"]) == {"forward", "backward", "both"} for r in records)
    assert " · float64 · " in captured.err
    assert captured.err.strip().splitlines()[-1].startswith(
        "forward+backward geometric mean of the ratio convgrad/PyTorch: float32 ")
    assert main(["bench", "--layers", "g2", "--dtype", "float16"]) == 2
    assert "--dtypes: expected float32 and/or float64, got 'float16'" in capsys.readouterr().err
