"""Saving a trained network to ``.npz`` and loading it back.

The file holds the model's ``state_dict`` (one array per name, under ``state/<name>``) and a
JSON string ``meta`` with what is needed to rebuild and use it: the architecture
(:class:`~convgrad.nn.models.LeNetConfig`, or :class:`~convgrad.nn.models.CNN1dConfig` for the
1-D CNN), the raw pixel value that means 1.0 (16 for the
digits, 255 for 8-bit IDX images), and how it was trained. ``np.load`` reads it without pickle.

A file written during training also holds what continuing the run needs (``convgrad train
--resume``): the optimizer's state under ``optimizer/<name>`` and, in ``meta["resume"]``, the
epochs done, the random generator's state and the history so far. Every file is written
atomically (a temporary file, then a rename): it is always either the previous or the new one.
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import numpy as np

from ..atomic import atomic_path
from .container import Sequential
from .models import CNN1dConfig, LeNetConfig, build_model, config_from_dict

__all__ = ["save_lenet", "load_lenet", "load_checkpoint"]

FORMAT = "convgrad-lenet/1"
EXPECTED = "the weights.npz file `convgrad train` writes"


def save_lenet(path, model: Sequential, config: "LeNetConfig | CNN1dConfig", max_value: float, extra: dict | None = None,
               optimizer_state: dict[str, np.ndarray] | None = None) -> Path:
    """Write ``model``'s weights and ``meta`` to ``path`` (a ``.npz`` file), atomically.

    ``optimizer_state`` (an optimizer's ``state_dict()``) is stored too, for resuming a run.
    """
    meta = {"format": FORMAT, "config": config.to_dict(), "max_value": float(max_value), **(extra or {})}
    arrays = {f"state/{name}": value for name, value in model.state_dict().items()}
    arrays.update({f"optimizer/{name}": value for name, value in (optimizer_state or {}).items()})
    path = Path(path)
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        np.savez(f, meta=np.array(json.dumps(meta)), **arrays)
    return path


def _read(path: Path) -> tuple[dict, dict[str, np.ndarray]]:
    """``(meta, arrays)`` of a convgrad weights file; ValueError naming the file otherwise."""
    if not path.is_file():
        raise ValueError(f"cannot read weights file {path}: no such file (expected {EXPECTED})")
    try:
        with np.load(path, allow_pickle=False) as f:
            if not isinstance(f, np.lib.npyio.NpzFile) or "meta" not in f.files:
                raise ValueError(f"{path} is not a convgrad weights file (no 'meta' entry); expected {EXPECTED}")
            meta = json.loads(str(f["meta"]))
            arrays = {name: f[name] for name in f.files if name != "meta"}
    except ValueError as exc:
        if "convgrad weights file" in str(exc):
            raise
        # np.load's own message about a non-array file suggests allow_pickle: never pass that on
        raise ValueError(f"{path} is not a convgrad weights file (not an .npz archive of arrays); expected {EXPECTED}") from None
    except (OSError, EOFError, zipfile.BadZipFile, KeyError) as exc:
        raise ValueError(f"cannot read weights file {path}: {exc}; expected {EXPECTED}") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        found = meta.get("format") if isinstance(meta, dict) else None
        raise ValueError(f"{path}: unknown weights format {found!r}, expected {FORMAT!r} ({EXPECTED})")
    return meta, arrays


def load_lenet(path) -> tuple[Sequential, dict]:
    """The network saved at ``path`` (in eval mode, float32) and its ``meta`` dict."""
    model, meta, _ = load_checkpoint(path)
    return model.eval(), meta


def load_checkpoint(path) -> tuple[Sequential, dict, dict[str, np.ndarray]]:
    """``(model, meta, optimizer_state)`` from ``path``; ``optimizer_state`` is empty for a file without one."""
    path = Path(path)
    meta, arrays = _read(path)
    model = build_model(config_from_dict(meta["config"]), rng=0)
    model.load_state_dict({k[len("state/"):]: v for k, v in arrays.items() if k.startswith("state/")})
    optimizer_state = {k[len("optimizer/"):]: v for k, v in arrays.items() if k.startswith("optimizer/")}
    return model, meta, optimizer_state
