"""Run the benchmark: every layer timed against PyTorch, GEMM peak and memory, into one record.

The record is a plain dict (it is what ``convgrad bench --json`` writes); :mod:`.report` turns
it into the table.
"""

from __future__ import annotations

import datetime
import math
import os
import platform
from typing import Iterable

import numpy as np

from .. import algorithms, blas, native_last
from .layers import Layer
from .memory import peak_memory
from .timing import OPERATIONS, gemm_peak, median, time_layer

__all__ = ["run_benchmark", "machine", "geometric_mean"]


def machine() -> dict:
    """What the numbers were measured on."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    info = {
        "cpu": cpu,
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "blas": os.path.basename(blas.library() or "numpy matmul fallback"),
    }
    try:
        import torch

        info["torch"] = torch.__version__
    except ImportError:
        info["torch"] = None
    try:
        info["load_average"] = os.getloadavg()
    except OSError:
        pass
    return info


def geometric_mean(values: Iterable[float]) -> float | None:
    values = [v for v in values if v is not None and v > 0]
    if not values:
        return None
    return math.exp(sum(math.log(v) for v in values) / len(values))


def _choices(layer: Layer, algorithm: str, itemsize: int = 4, data_format: str = "channels_first") -> dict[str, str]:
    """What computed each operation: auto's pick (channels last: the native one, if any), measure's
    (after the timed runs) or the name given."""
    spec = layer.spec()
    ops = ("forward", "grad_input", "grad_weight")
    if algorithm in algorithms.CHOOSERS:
        picks = {op: algorithms.resolve(algorithm, spec, op, itemsize).name for op in ops}
        if algorithm == "auto" and data_format == "channels_last":
            for group in (("forward",), ("grad_input", "grad_weight")):
                picks.update({op: alg.name for op, alg in (native_last.choose_all(spec, group, itemsize) or {}).items()})
        return picks
    return {op: algorithm for op in ops}


def run_benchmark(
    layers: list[Layer],
    *,
    repeats: int = 5,
    warmup: int = 1,
    threads: int = 2,
    algorithm: str = "auto",
    with_torch: bool = True,
    memory: bool = True,
    workspace_limit: int | None = None,
    progress=None,
    data_format: str = "channels_first",
    dtype: str = "float32",
) -> dict:
    """Time, and optionally measure the memory of, every layer in ``dtype``; return the record."""
    from .. import runtime

    record = {
        "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "machine": machine(),
        "settings": {
            "threads": threads,
            "dtype": dtype,
            "repeats": repeats,
            "warmup": warmup,
            "algorithm": algorithm,
            "with_torch": with_torch,
            "data_format": data_format,
            "workspace_limit": workspace_limit if workspace_limit is not None else runtime.get_workspace_limit(),
        },
        "gemm_peak_samples": [],
        "layers": [],
    }
    limit = {} if workspace_limit is None else {"workspace_limit": workspace_limit}
    for lay in layers:
        record["gemm_peak_samples"].append(gemm_peak(threads))
        with runtime.settings(**limit):
            times = time_layer(lay, repeats=repeats, warmup=warmup, threads=threads, algorithm=algorithm,
                               with_torch=with_torch, data_format=data_format, dtype=dtype)
        with runtime.settings(num_threads=threads, **limit):
            choices = _choices(lay, algorithm, np.dtype(dtype).itemsize, data_format)
        entry = {
            "name": lay.name,
            "description": lay.description,
            "flops": {op: lay.flops(op) for op in OPERATIONS},
            "algorithms": choices,
            "times": times,
            "median": {lib: {op: median(t) for op, t in ops.items()} for lib, ops in times.items()},
        }
        if memory:
            entry["peak_memory"] = {
                lib: peak_memory(lay, lib, threads, algorithm, workspace_limit, data_format=data_format, dtype=dtype)
                for lib in times
            }
        record["layers"].append(entry)
        if progress is not None:
            progress(entry)
    record["gemm_peak_samples"].append(gemm_peak(threads))
    record["gemm_peak"] = median(record["gemm_peak_samples"])
    summarize(record)
    return record


def summarize(record: dict) -> dict:
    """Add ratios, GFLOP/s, fractions of the GEMM peak and the geometric means to ``record``."""
    peak = record["gemm_peak"]
    for entry in record["layers"]:
        med = entry["median"]
        entry["gflops"] = {lib: {op: entry["flops"][op] / t / 1e9 for op, t in ops.items()} for lib, ops in med.items()}
        entry["fraction_of_peak"] = {lib: {op: g / peak for op, g in ops.items()} for lib, ops in entry["gflops"].items()}
        if "torch" in med:
            entry["ratio"] = {op: med["convgrad"][op] / med["torch"][op] for op in OPERATIONS}
    if all("ratio" in e for e in record["layers"]):
        record["geomean_ratio"] = {
            op: geometric_mean(e["ratio"][op] for e in record["layers"]) for op in OPERATIONS
        }
        record["worst_ratio"] = {
            op: max(((e["ratio"][op], e["name"]) for e in record["layers"]), default=(None, None)) for op in OPERATIONS
        }
    return record
