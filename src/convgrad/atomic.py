"""Writing a file so that it is always whole: a temporary file beside it, then a rename.

A reader (or a run interrupted at any moment) sees either the previous complete file or the
new complete file, never a half-written one: ``os.replace`` within one folder is atomic.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path


@contextlib.contextmanager
def atomic_path(path):
    """A context giving a temporary path beside ``path`` that replaces ``path`` when the block succeeds.

    The temporary name keeps ``path``'s suffix (so writers that choose a format from the suffix,
    like matplotlib's ``savefig``, still do); on any exception, Ctrl-C included, it is removed
    and ``path`` is left as it was.

    >>> import tempfile
    >>> target = Path(tempfile.mkdtemp()) / "result.txt"
    >>> with atomic_path(target) as tmp:
    ...     _ = tmp.write_text("complete")
    >>> target.read_text(), sorted(p.name for p in target.parent.iterdir())
    ('complete', ['result.txt'])
    """
    path = Path(path)
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.partial{path.suffix}")
    try:
        yield tmp
        with open(tmp, "rb+") as f:  # on disk before the rename, so a crash cannot leave an empty file
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


def check_writable_folder(path, flag: str) -> Path:
    """Create the folder ``path`` if needed and prove it writable; ValueError naming ``flag`` otherwise.

    Meant to run *before* long work, so that a bad output folder is found in a second, not after
    the work is done.
    """
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise ValueError(f"{flag}: {path} is a file, expected a folder (it would hold the results)")
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / f".convgrad-write-test.{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise ValueError(f"{flag}: cannot write into {path}: {exc.strerror or exc}") from None
    return path
