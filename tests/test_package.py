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
