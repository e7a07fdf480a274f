"""What a user notices about the package itself: `convgrad.nn` after `import convgrad`, the licence."""

import os
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_import_convgrad_gives_nn_as_import_torch_gives_torch_nn():
    # a fresh process: this test session may have imported convgrad.nn already
    code = "import convgrad; print(convgrad.nn.Conv2d.__name__, 'nn' in convgrad.__all__)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={**os.environ, "PYTHONPATH": str(ROOT / "src")}).stdout
    assert out.split() == ["Conv2d", "True"]


def test_license_file_is_the_mit_licence_pyproject_declares():
    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["license"]["text"]
    text = (ROOT / "LICENSE").read_text()
    assert declared == "MIT"
    assert text.startswith("MIT License") and "Copyright (c) 2026 the convgrad authors" in text
    assert "THE SOFTWARE IS PROVIDED \"AS IS\"" in text


def test_import_convgrad_leaves_scipy_for_the_fft_algorithm_to_import():
    """SciPy is most of the import time; only the fft algorithm needs it, on its first use."""
    import subprocess
    import sys

    code = ("import sys, numpy as np, convgrad; before = 'scipy' in sys.modules; "
            "convgrad.conv1d(np.ones((1, 1, 40)), np.ones((1, 1, 31)), algorithm='fft'); "
            "print(before, 'scipy.fft' in sys.modules or convgrad.algorithms.fft.BACKEND == 'numpy')")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["False", "True"]
