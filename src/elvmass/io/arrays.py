"""Plain arrays of ECG samples in millivolts: NumPy ``.npy`` and ``.csv`` files.

Arrays store no sampling rate, so one must be given (``fs_hz``; ``--fs-hz`` on the
command line). A ``.npy`` holds a (12, n) or (n, 12) array in the standard lead order.
A ``.csv`` has one column per lead and one row per sample; a header row of lead names
(any order, e.g. ``I,II,III,aVR,...``) is used when present, otherwise the standard order
is assumed. Fewer columns are fine when the missing limb leads can be derived (8 leads:
I, II, V1-V6)::

    >>> import numpy as np, tempfile, os
    >>> from elvmass.io.arrays import read_array_ecg
    >>> path = os.path.join(tempfile.mkdtemp(), "ecg.npy")
    >>> np.save(path, np.zeros((12, 5000), np.float32))
    >>> read_array_ecg(path, fs_hz=500).duration_s
    10.0
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

import numpy as np

from elvmass.errors import ECGReadError
from elvmass.io._assemble import assemble_record, canonical_lead_name, check_sampling_rate
from elvmass.record import LEADS, ECGRecord

_ORDER_8 = ("I", "II", "V1", "V2", "V3", "V4", "V5", "V6")


def _default_names(n_leads: int, path) -> tuple[str, ...]:
    if n_leads == 12:
        return LEADS
    if n_leads == 8:
        return _ORDER_8
    raise ECGReadError(path, f"array has {n_leads} leads without names; expected 12 (standard order) or 8 (I, II, V1-V6)")


def _orient(array: np.ndarray, path) -> np.ndarray:
    """(leads, samples) from a (12|8, n) or (n, 12|8) array."""
    if array.ndim != 2:
        raise ECGReadError(path, f"array must be 2-D (leads x samples), got shape {array.shape}")
    rows, cols = array.shape
    if rows in (8, 12) and cols not in (8, 12):
        return array
    if cols in (8, 12) and rows not in (8, 12):
        return array.T
    if rows in (8, 12) and cols in (8, 12):
        raise ECGReadError(path, f"array shape {array.shape} is ambiguous and far too short to be an ECG")
    raise ECGReadError(path, f"array shape {array.shape} has no axis of 12 (or 8) leads")


def _read_npy(path: Path) -> tuple[list[str], np.ndarray]:
    try:
        array = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        raise ECGReadError(path, f"corrupt or truncated .npy file ({' '.join(str(exc).split())[:120]})") from None
    if not isinstance(array, np.ndarray) or not np.issubdtype(array.dtype, np.number):
        raise ECGReadError(path, f".npy holds {getattr(array, 'dtype', type(array))}, not numbers")
    array = _orient(np.asarray(array, dtype=np.float64), path)
    return list(_default_names(array.shape[0], path)), array


def _read_csv(path: Path) -> tuple[list[str], np.ndarray]:
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (UnicodeDecodeError, OSError) as exc:
        raise ECGReadError(path, f"not a text CSV file ({type(exc).__name__})") from None
    rows = [r for r in csv.reader(io.StringIO(text)) if r and any(c.strip() for c in r)]
    if not rows:
        raise ECGReadError(path, "the CSV file is empty")
    header = None
    if all(canonical_lead_name(c) is not None for c in rows[0] if c.strip()):
        header = [c.strip() for c in rows[0]]
        rows = rows[1:]
    width = len(header) if header else len(rows[0]) if rows else 0
    try:
        values = np.array([[float(c) if c.strip() else np.nan for c in r] for r in rows], dtype=np.float64)
    except ValueError:
        raise ECGReadError(path, "the CSV holds non-numeric values (or a header row that is not lead names)") from None
    if values.ndim != 2 or values.size == 0 or values.shape[1] != width:
        raise ECGReadError(path, "the CSV rows have unequal numbers of columns or no samples")
    if header:
        return header, values.T
    return list(_default_names(values.shape[1], path)), values.T


def read_array_ecg(path, *, fs_hz: float | None, fmt: str | None = None, partial_leads: bool = False) -> ECGRecord:
    """Read a NumPy (``fmt="npy"``) or CSV (``"csv"``) array of samples in mV at the stated rate ``fs_hz``.

    Without ``fmt`` a file is NumPy when it starts with NumPy's magic bytes or ends in ``.npy``, else CSV.
    """
    path = Path(path)
    if fs_hz is None:
        raise ECGReadError(path, "array files store no sampling rate: give fs_hz (on the command line --fs-hz)")
    fs = check_sampling_rate(path, fs_hz)
    if fmt is None:
        fmt = "npy" if path.suffix.lower() == ".npy" or _has_npy_magic(path) else "csv"
    if fmt not in ("npy", "csv"):
        raise ECGReadError(path, f"internal: {fmt!r} is not an array format")
    names, array = _read_npy(path) if fmt == "npy" else _read_csv(path)
    return assemble_record(path, list(zip(names, array)), [fs] * len(names), source_format=fmt,
                           partial_leads=partial_leads)


def _has_npy_magic(path: Path) -> bool:
    try:
        with open(path, "rb") as fh:
            return fh.read(6) == b"\x93NUMPY"
    except OSError:
        return False
