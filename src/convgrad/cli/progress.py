"""Progress bars that suit where the output goes: on a terminal only (tqdm's ``disable=None``).

In a file, a pipe or a CI log there is no bar at all, so no frames pile up; without tqdm
installed there is none either (it comes with ``convgrad[train]``).
"""

from __future__ import annotations

import contextlib
import sys


def tqdm_class():
    """tqdm's bar class, or ``None`` when tqdm is not installed."""
    try:
        from tqdm import tqdm
    except ImportError:
        return None
    return tqdm


@contextlib.contextmanager
def progress_bar(desc: str, *, unit: str, enabled: bool = True, delay: float = 1.0):
    """A context giving ``update(done, total)``; the bar appears on a terminal once ``delay`` s have passed.

    Short work therefore shows nothing, long work (``convgrad check`` of a large configuration)
    shows how far it is. The bar is removed when the context ends.
    """
    tqdm = tqdm_class() if enabled else None
    if tqdm is None:
        yield lambda done, total: None
        return
    bar = tqdm(desc=desc, unit=unit, file=sys.stderr, disable=None, leave=False, delay=delay, ncols=80)

    def update(done: int, total: int) -> None:
        if bar.total != total:
            bar.total = total
        bar.update(done - bar.n)

    try:
        yield update
    finally:
        bar.close()
