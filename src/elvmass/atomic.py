"""Atomic file writes: a reader sees the old file or the new one, never half of either.

Every output elvmass writes (manifests, tables, reports, figures, model bundles, cache entries,
synthetic ECGs) goes through :func:`atomic_write`: the content is written to a temporary file in
the destination folder, then moved over the destination with ``os.replace``. A crash or a bad
input mid-way leaves the previous file untouched and no temporary behind.

    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "out" / "hello.txt"
    >>> atomic_write_text(p, "hi\\n").read_text()
    'hi\\n'
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path


def atomic_write(path, write: Callable[[Path], object]) -> Path:
    """Call ``write(tmp_path)`` to produce the content, then move it to ``path`` (folders created).

    The temporary file keeps ``path``'s suffix, so writers that pick a format by extension
    (pandas, numpy, matplotlib) behave as they would on ``path`` itself.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=path.suffix, dir=path.parent)
    os.close(fd)
    try:
        write(Path(tmp))
        os.chmod(tmp, 0o644)  # mkstemp makes 0600; outputs are ordinary files
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def atomic_write_text(path, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    return atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def atomic_write_bytes(path, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically."""
    return atomic_write(path, lambda tmp: tmp.write_bytes(data))


def save_figure(fig, path, *, dpi: int = 100) -> Path:
    """Save a matplotlib figure atomically (format from the suffix, PNG if none) and close it."""
    import matplotlib.pyplot as plt

    path = Path(path)
    fmt = path.suffix.lstrip(".").lower() or "png"
    try:
        return atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=dpi, format=fmt))
    finally:
        plt.close(fig)
