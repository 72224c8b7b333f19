"""Exceptions that carry a one-line, user-facing message, and the one way file names become text.

File names are bytes on POSIX; Python shows bytes that are not UTF-8 (a Latin-1 ``café.xml``) as lone
surrogates (``'caf\\udce9.xml'``), which cannot be printed, written to UTF-8 CSV/JSON or stored in a pandas 3
string column. :func:`path_text` is the text elvmass writes for a path everywhere (messages, CSV, JSON, the
manifest): the name itself when it is valid UTF-8, else each byte that is not written as ``\\xNN``;
:func:`path_from_text` turns that text back into the path (on POSIX), so a manifest or prediction table naming
such a file still finds it::

    >>> import os
    >>> raw = os.fsdecode(b"ecgs/caf\\xe9.xml")  # what os.listdir gives for a Latin-1 name
    >>> path_text(raw)
    'ecgs/caf\\\\xe9.xml'
    >>> os.fsencode(path_from_text(path_text(raw))) == b"ecgs/caf\\xe9.xml"
    True
    >>> path_text("ecgs/résumé.xml")  # valid UTF-8 names are written as they are
    'ecgs/résumé.xml'

The one name that does not round-trip is a valid UTF-8 name that itself holds a backslash, ``x`` and two hex
digits; :func:`path_from_text` leaves a text alone unless the file it names verbatim does not exist.
"""

import os
import re
from pathlib import Path

_ESCAPED_BYTE = re.compile(r"\\x([0-9a-fA-F]{2})")


def path_text(path) -> str:
    """The path as printable, UTF-8-safe text (bytes that are not UTF-8 as ``\\xNN``; see the module)."""
    if isinstance(path, bytes):
        raw = path
    else:
        text = os.fspath(path) if isinstance(path, os.PathLike) else str(path)
        if isinstance(text, bytes):
            raw = text
        else:
            try:
                text.encode("utf-8")
                return text
            except UnicodeEncodeError:
                raw = text.encode("utf-8", "surrogateescape")
    return raw.decode("utf-8", "backslashreplace")


def path_from_text(text) -> Path:
    """The path that :func:`path_text` wrote as ``text`` (the text itself where it names a file or has no escapes)."""
    text = str(text)
    if os.name != "posix" or "\\x" not in text or Path(text).exists():
        return Path(text)
    raw = _ESCAPED_BYTE.sub(lambda m: chr(int(m.group(1), 16) + 0xDC00) if int(m.group(1), 16) >= 0x80 else m.group(0), text)
    return Path(os.fsdecode(raw.encode("utf-8", "surrogateescape")))


class ElvmassError(Exception):
    """Base class: every elvmass error has a message fit to print as one line."""


class ECGReadError(ElvmassError):
    """An ECG file could not be read; the message names the file and the problem."""

    def __init__(self, path, problem: str):
        self.path = path_text(path)
        # a reader's own message may quote a non-UTF-8 file name: keep it printable and writable too
        self.problem = path_text(str(problem))
        super().__init__(f"{self.path}: {self.problem}")


class ManifestError(ElvmassError):
    """A cohort manifest is unusable as a whole (missing columns, unreadable file)."""


class OutputError(ElvmassError, OSError):
    """An output could not be written (disk full, no permission); the previous output is left as it was.

    Also an :class:`OSError`, so callers that catch write failures as OSError keep working."""

    def __init__(self, path, problem: str, reason: str | None = None):
        self.path = path_text(path)
        self.problem = problem
        self.reason = reason or problem  # the system's words alone ("no space left on device")
        super().__init__(f"{self.path}: {problem}")


class UnusableECGError(ECGReadError):
    """An ECG was read but its signal cannot carry a prediction (no beat, too few beats, pacing
    spikes, excessive noise, a flat or saturated lead); ``flags`` are the blocking quality flags."""

    def __init__(self, path, flags):
        self.flags = tuple(flags)
        super().__init__(path, "unusable for prediction (" + (", ".join(self.flags) or "no usable beat") + ")")


class InputValueError(ElvmassError, ValueError):
    """A value given by the caller (an option, a keyword argument, a request field) is implausible,
    in the wrong unit, or contradicts the file; the message names the value, the range and the unit."""
