"""The speed benchmark of issue 3: convgrad against PyTorch's CPU kernels on ten real layers.

``convgrad bench`` (see :mod:`convgrad.cli.bench`) is the entry point; :func:`run_benchmark`
returns the whole record as a dict, :func:`format_table` prints it. The benchmark is not a test:
tests check correctness, the benchmark reports speed (and peak memory).
"""

from .layers import LAYERS, Layer, layer
from .report import format_table
from .run import geometric_mean, run_benchmark

__all__ = ["LAYERS", "Layer", "layer", "format_table", "geometric_mean", "run_benchmark"]
