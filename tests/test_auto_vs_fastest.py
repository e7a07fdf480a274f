"""benchmarks/auto_vs_fastest.py: the training networks' convolutions it finds, and its summary arithmetic."""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "auto_vs_fastest.py"


@pytest.fixture(scope="module")
def avf():
    spec = importlib.util.spec_from_file_location("auto_vs_fastest", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_finds_each_distinct_convolution_once_with_its_users(avf):
    convs = avf.distinct_convolutions(["cnn1d", "resnet8"])
    names = [c["name"] for c in convs]
    assert len(names) == len(set(names)) == 3 + 8  # ResNet-8's two 16->16 convolutions of block 1 are one
    assert names[:3] == ["N128 1->32 40 k5 s2 p2", "N128 32->32 20 k3 s2 p1", "N128 32->32 10 k3 s2 p1"]
    twice = next(c for c in convs if c["name"] == "N64 16->16 32x32 k3x3 s1,1 p1,1")
    assert twice["used_by"] == ["resnet8#2", "resnet8#3"]
    projection = next(c for c in convs if c["used_by"] == ["resnet8#6"])
    assert projection["weight_shape"] == (32, 16, 1, 1) and projection["stride"] == (2, 2)


def test_measure_records_auto_and_the_fastest_of_the_candidates(avf):
    from convgrad import algorithms
    from convgrad.spec import conv_spec

    conv = avf.distinct_convolutions(["cnn1d"])[2]
    rows = avf.measure([conv], ["float64"], repeats=1, prune=0, progress=lambda *_: None)
    assert [r["op"] for r in rows] == list(avf.OPS)
    spec = conv_spec(conv["input_shape"], conv["weight_shape"], conv["stride"], conv["padding"])
    for r in rows:
        names = algorithms.candidates(spec, r["op"], 8)
        assert sorted(r["seconds"]) == sorted(names) and r["auto"] in names
        assert r["seconds"][r["fastest"]] == min(r["seconds"].values())
        assert r["ratio"] == r["seconds"][r["auto"]] / r["seconds"][r["fastest"]] >= 1


def test_summary_counts_misses_and_their_geometric_mean(avf):
    def row(auto, fastest, ratio, dtype="float32"):
        return dict(conv="c", op="forward", dtype=dtype, auto=auto, fastest=fastest, ratio=ratio,
                    fastest_by_min=fastest, ratio_by_min=ratio)

    rows = [row("gemm", "gemm", 1.0), row("gemm", "tapgemm", 1.05), row("rowgemm", "gemm", 2.0, "float64"),
            row("rowgemm", "gemm", 1.5, "float64")]
    s = avf.summarise(rows)
    assert (s["operations"], s["misses"], s["misses_beyond_noise"]) == (4, 3, 2)
    assert math.isclose(s["geomean_ratio"], (1.05 * 2.0 * 1.5) ** 0.25)
    assert math.isclose(s["geomean_ratio_of_misses"], (1.05 * 2.0 * 1.5) ** (1 / 3))
    assert s["worst"]["ratio"] == 2.0 and s["worst"]["auto"] == "rowgemm"
    assert s["by_dtype"]["float64"]["misses"] == 2 and s["miss_pairs"] == {"rowgemm -> gemm": [2.0, 1.5]}
