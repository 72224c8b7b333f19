"""Atomic outputs: a reader (or the next run) sees the old output or the new one, never half of either.

=================================  ==============================================================================
what                               how
=================================  ==============================================================================
one file: :func:`atomic_write`     written to a temporary file in the destination folder, then moved over the
                                   destination with ``os.replace``; a failure removes the temporary
files that belong together:        inside ``with atomic_group():`` every :func:`atomic_write` keeps its temporary
:func:`atomic_group`               file and all are moved into place together at the end (``cohort build``:
                                   manifest, flow table and excluded list), or none is
a results folder: :func:`atomic_dir`  the command writes into a hidden sibling folder (``.NAME.tmp-*``); at the end
                                   it is swapped in with one ``renameat2(RENAME_EXCHANGE)`` (Linux; elsewhere two
                                   renames) and the previous folder is deleted only after the swap
=================================  ==============================================================================

While an atomic output is being produced, SIGTERM is turned into an exception (``SystemExit(143)``) so that
clean-up runs as it does for Ctrl-C (SIGINT, ``KeyboardInterrupt``) and for any crash; the final moves run with
SIGINT and SIGTERM blocked, so an interrupt lands before them (old output kept) or after them (new output
complete). Only a hard kill (SIGKILL, power loss) in the few microseconds between two renames of the fallback
swap can leave the previous folder under its hidden name (``.NAME.old-*``); the next :func:`atomic_dir` on the
same folder puts it back. A write that fails (disk full, no permission) raises :class:`~elvmass.errors.OutputError`
(also an ``OSError``) naming the destination and saying the previous output is unchanged.

    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "out" / "hello.txt"
    >>> atomic_write_text(p, "hi\\n").read_text()
    'hi\\n'
    >>> with atomic_dir(p.parent / "results") as tmp:
    ...     _ = (tmp / "a.txt").write_text("new")
    >>> sorted(x.name for x in (p.parent / "results").iterdir())
    ['a.txt']
"""

from __future__ import annotations

import contextlib
import contextvars
import errno
import os
import shutil
import signal
import tempfile
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

from elvmass.errors import OutputError

_GROUP: contextvars.ContextVar[list | None] = contextvars.ContextVar("elvmass_atomic_group", default=None)


def _write_failed(path: Path, exc: OSError) -> OutputError:
    reason = exc.strerror or str(exc) or type(exc).__name__
    if exc.errno == errno.ENOSPC:
        reason = "no space left on device"
    return OutputError(path, f"cannot write ({reason}); the previous output is unchanged", reason)


def atomic_write(path, write: Callable[[Path], object]) -> Path:
    """Call ``write(tmp_path)`` to produce the content, then move it to ``path`` (folders created).

    The temporary file keeps ``path``'s suffix, so writers that pick a format by extension
    (pandas, numpy, matplotlib) behave as they would on ``path`` itself. Inside :func:`atomic_group`
    the move waits for the end of the group. An ``OSError`` while writing becomes
    :class:`~elvmass.errors.OutputError`.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=path.suffix, dir=path.parent)
        os.close(fd)
    except OutputError:
        raise
    except OSError as exc:
        raise _write_failed(path, exc) from None
    group = _GROUP.get()
    try:
        write(Path(tmp))
        os.chmod(tmp, 0o644)  # mkstemp makes 0600; outputs are ordinary files
        if group is not None:
            group.append((tmp, path))
        else:
            os.replace(tmp, path)
    except BaseException as exc:
        if os.path.exists(tmp):
            os.unlink(tmp)
        if isinstance(exc, OSError) and not isinstance(exc, OutputError):
            raise _write_failed(path, exc) from None
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


# --- signals -------------------------------------------------------------------------------------------
def _raise_on_sigterm(signum, frame):  # noqa: ARG001
    raise SystemExit(128 + signal.SIGTERM)


@contextlib.contextmanager
def _sigterm_as_exit() -> Iterator[None]:
    """SIGTERM raises SystemExit(143) (so ``finally`` blocks run), in the main thread; elsewhere nothing."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.getsignal(signal.SIGTERM)
    if previous not in (signal.SIG_DFL, None):  # somebody else handles it already: leave theirs
        yield
        return
    signal.signal(signal.SIGTERM, _raise_on_sigterm)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@contextlib.contextmanager
def _signals_blocked() -> Iterator[None]:
    """SIGINT and SIGTERM held back (delivered after the block) around the final renames."""
    if not hasattr(signal, "pthread_sigmask"):
        yield
        return
    old = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


# --- groups of files -----------------------------------------------------------------------------------
@contextlib.contextmanager
def atomic_group() -> Iterator[None]:
    """Every :func:`atomic_write` inside lands at the end, all together, or none does (see the module).

    Content written in the group cannot be read back from its final path before the group ends."""
    if _GROUP.get() is not None:  # nested: the outer group commits
        yield
        return
    pending: list[tuple[str, Path]] = []
    token = _GROUP.set(pending)
    try:
        with _sigterm_as_exit():
            yield
            with _signals_blocked():
                for tmp, path in pending:
                    os.replace(tmp, path)
                pending.clear()
    finally:
        _GROUP.reset(token)
        for tmp, _ in pending:
            with contextlib.suppress(OSError):
                os.unlink(tmp)


# --- folders -------------------------------------------------------------------------------------------
_RENAME_EXCHANGE = 2
_AT_FDCWD = -100


def _exchange(a: Path, b: Path) -> bool:
    """Swap two paths in one system call (Linux renameat2); False where not available."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        fn = libc.renameat2
    except (OSError, AttributeError):
        return False
    fn.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    rc = fn(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE)
    return rc == 0


def _recover(out: Path) -> None:
    """Put back a previous folder that a hard kill left under its hidden name mid-swap."""
    if out.exists():
        return
    leftovers = sorted(out.parent.glob(f".{out.name}.old-*"), key=lambda p: p.stat().st_mtime)
    if leftovers:
        os.rename(leftovers[-1], out)


def _carry_over(old: Path, new: Path) -> None:
    """Hard-link (copy where links fail) the entries of ``old`` that ``new`` does not have, top level only."""
    for entry in old.iterdir():
        target = new / entry.name
        if target.exists() or target.is_symlink():
            continue
        try:
            if entry.is_dir() and not entry.is_symlink():
                shutil.copytree(entry, target, symlinks=True, copy_function=os.link)
            else:
                os.link(entry, target, follow_symlinks=False)
        except OSError:
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(target, ignore_errors=True)
                shutil.copytree(entry, target, symlinks=True)
            else:
                shutil.copy2(entry, target, follow_symlinks=False)


@contextlib.contextmanager
def atomic_dir(out, *, keep_others: bool = False) -> Iterator[Path]:
    """Yield a fresh hidden folder beside ``out`` to write the whole output into; swap it in at the end.

    On success ``out`` is exactly what was written (with ``keep_others``, also the top-level entries of
    the previous ``out`` that this run did not write, e.g. a manifest the user built inside a synthetic
    cohort folder). On any exception, Ctrl-C or SIGTERM the previous ``out`` is untouched and the
    temporary folder removed. Paths written inside refer to the temporary folder: store relative ones.
    """
    out = Path(out)
    try:
        if out.exists() and not out.is_dir():
            raise OutputError(out, "exists and is not a folder")
        out.parent.mkdir(parents=True, exist_ok=True)
        _recover(out)
        tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
        os.chmod(tmp, 0o755)
    except OutputError:
        raise
    except OSError as exc:
        raise _write_failed(out, exc) from None
    try:
        with _sigterm_as_exit():
            yield tmp
            if keep_others and out.is_dir():
                _carry_over(out, tmp)
            with _signals_blocked():
                if not out.exists():
                    os.rename(tmp, out)
                elif _exchange(tmp, out):
                    pass  # tmp now holds the previous output
                else:
                    old = Path(tempfile.mkdtemp(prefix=f".{out.name}.old-", dir=out.parent))
                    os.rmdir(old)
                    os.rename(out, old)
                    os.rename(tmp, out)
                    tmp = old
        shutil.rmtree(tmp, ignore_errors=True)
    except BaseException as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        if isinstance(exc, OSError) and not isinstance(exc, OutputError):
            raise _write_failed(out, exc) from None
        raise
