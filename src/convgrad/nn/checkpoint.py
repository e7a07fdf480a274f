"""Saving a trained network to ``.npz`` and loading it back.

The file holds the model's ``state_dict`` (one array per name, under ``state/<name>``) and a
JSON string ``meta`` with what is needed to rebuild and use it: the architecture
(:class:`~convgrad.nn.models.LeNetConfig`), the raw pixel value that means 1.0 (16 for the
digits, 255 for 8-bit IDX images), and how it was trained. ``np.load`` reads it without pickle.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from .container import Sequential
from .models import LeNetConfig, lenet

__all__ = ["save_lenet", "load_lenet"]

FORMAT = "convgrad-lenet/1"


def save_lenet(path, model: Sequential, config: LeNetConfig, max_value: float, extra: dict | None = None) -> Path:
    """Write ``model``'s weights and ``meta`` to ``path`` (a ``.npz`` file)."""
    meta = {"format": FORMAT, "config": config.to_dict(), "max_value": float(max_value), **(extra or {})}
    arrays = {f"state/{name}": value for name, value in model.state_dict().items()}
    path = Path(path)
    np.savez(path, meta=np.array(json.dumps(meta)), **arrays)
    return path


def load_lenet(path) -> tuple[Sequential, dict]:
    """The network saved at ``path`` (in eval mode, float32) and its ``meta`` dict."""
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as f:
            if "meta" not in f.files:
                raise ValueError(f"{path} is not a convgrad weights file (no 'meta' entry); write one with `convgrad train`")
            meta = json.loads(str(f["meta"]))
            state = {name[len("state/"):]: f[name] for name in f.files if name.startswith("state/")}
    except (OSError, EOFError) as exc:
        raise ValueError(f"cannot read weights file {path}: {exc}") from None
    if meta.get("format") != FORMAT:
        raise ValueError(f"{path}: unknown weights format {meta.get('format')!r}, expected {FORMAT!r}")
    model = lenet(LeNetConfig.from_dict(meta["config"]), rng=0)
    model.load_state_dict(state)
    return model.eval(), meta
