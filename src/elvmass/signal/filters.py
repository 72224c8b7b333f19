"""Zero-phase filtering: band-pass (baseline wander and high-frequency noise) and an optional mains notch.

Second-order sections (and their steady-state initial conditions) are designed once per (rate, band) and
cached, so filtering a cohort costs only the filtering itself. The forward-backward pass gives exactly
``scipy.signal.sosfiltfilt``'s result (odd extension of 1 s at each end, steady-state start, float64)
with one working buffer for all leads instead of scipy's chain of copies.

    >>> import numpy as np
    >>> from elvmass.signal import bandpass_filter
    >>> t = np.arange(5000) / 500.0
    >>> drift = 2.0 * np.sin(2 * np.pi * 0.05 * t)          # baseline wander
    >>> tone = np.sin(2 * np.pi * 10.0 * t)                  # in-band content
    >>> y = bandpass_filter(drift + tone, 500.0)
    >>> bool(np.abs(y[500:-500] - tone[500:-500]).max() < 0.05)
    True
"""

from __future__ import annotations

import threading
import warnings
from functools import lru_cache

import numpy as np
from scipy import signal as _sps

#: Butterworth order per pass (doubled by forward-backward filtering).
FILTER_ORDER = 2

#: fewer samples than this cannot be filtered (the forward-backward pass needs a padded edge).
MIN_FILTER_SAMPLES = 8


@lru_cache(maxsize=64)
def _band_sos(fs_hz: float, low_hz: float, high_hz: float, notch_hz: float | None) -> np.ndarray:
    nyq = fs_hz / 2.0
    sections = []
    use_high = high_hz is not None and high_hz < 0.95 * nyq
    use_low = low_hz is not None and low_hz > 0
    if use_low and use_high:
        sections.append(_sps.butter(FILTER_ORDER, [low_hz, high_hz], btype="bandpass", fs=fs_hz, output="sos"))
    elif use_low:
        sections.append(_sps.butter(FILTER_ORDER, low_hz, btype="highpass", fs=fs_hz, output="sos"))
    elif use_high:
        sections.append(_sps.butter(FILTER_ORDER, high_hz, btype="lowpass", fs=fs_hz, output="sos"))
    if notch_hz is not None and notch_hz < nyq:
        b, a = _sps.iirnotch(notch_hz, Q=30.0, fs=fs_hz)
        sections.append(_sps.tf2sos(b, a))
    if not sections:
        return np.zeros((0, 6))
    return np.vstack(sections)


@lru_cache(maxsize=64)
def _band_sos_zi(fs_hz: float, low_hz: float, high_hz: float, notch_hz: float | None) -> tuple[np.ndarray, np.ndarray]:
    """The sections and their unit-step steady-state states (sections, 1, 2); shared, never modified."""
    sos = _band_sos(fs_hz, low_hz, high_hz, notch_hz)
    zi = _sps.sosfilt_zi(sos)[:, None, :] if sos.shape[0] else np.zeros((0, 1, 2))
    return sos, zi


try:  # scipy's in-place section filter (what scipy.signal.sosfilt calls after copying its input)
    from scipy.signal._sosfilt import _sosfilt as _sosfilt_inplace
except ImportError:  # pragma: no cover - a future scipy without it: the public function, with its copies
    _sosfilt_inplace = None

_WORK = threading.local()


def _work_buffer(name: str, shape: tuple[int, int], dtype=np.complex128) -> np.ndarray:
    """A per-thread scratch array reused across calls: filtering a cohort then touches the same memory for
    every ECG instead of mapping fresh pages for each temporary (which costs as much as the filtering
    itself on some systems)."""
    buf = getattr(_WORK, name, None)
    size = shape[0] * shape[1]
    if buf is None or buf.size < size or buf.dtype != dtype:
        buf = np.empty(max(size, 6 * 12000), dtype=dtype)
        setattr(_WORK, name, buf)
    return buf[:size].reshape(shape)


def _sosfilt_rows(sos: np.ndarray, x: np.ndarray, zi: np.ndarray) -> None:
    """Filter every row of the C-contiguous ``x`` in place, starting from states ``zi`` (sections, rows, 2)."""
    if _sosfilt_inplace is not None:
        _sosfilt_inplace(sos, x, np.ascontiguousarray(zi.transpose(1, 0, 2)))
    else:  # pragma: no cover
        x[...], _ = _sps.sosfilt(sos, x, axis=-1, zi=zi)


@lru_cache(maxsize=64)
def _complex_sos(sos_bytes: bytes, shape: tuple[int, int]) -> np.ndarray:
    return np.frombuffer(sos_bytes, dtype=np.float64).reshape(shape).astype(np.complex128)


def filtfilt_sos(sos: np.ndarray, zi: np.ndarray, x: np.ndarray, padlen: int) -> np.ndarray:
    """``scipy.signal.sosfiltfilt(sos, x, axis=-1, padtype="odd", padlen=padlen)`` on (leads, n), returned as
    float32: bit for bit the float32 cast of scipy's float64 result.

    Leads travel in pairs as the real and imaginary parts of one complex signal: with real coefficients
    each part is filtered exactly as on its own (every product with a zero imaginary part is exact), and
    the two interleaved recursions keep the processor busy where one leaves it waiting on the previous
    sample - a third less time for the recursive filter, which dominates. Scratch buffers are reused.
    """
    rows, n = x.shape
    pairs = (rows + 1) // 2
    m = n + 2 * padlen
    ext = _work_buffer("ext", (pairs, m))
    parts = ext.view(np.float64).reshape(pairs, m, 2)
    mid = parts[:, padlen : padlen + n]
    mid[:, :, 0] = x[:pairs]
    mid[:rows - pairs, :, 1] = x[pairs:]  # float64 copy of the input (exact for float32 input)
    if rows % 2:
        mid[-1, :, 1] = 0.0
    if padlen:
        # odd extension: 2*x[0] - x[padlen:0:-1] before, 2*x[-1] - x[-2:-padlen-2:-1] after
        c = ext[:, padlen : padlen + n]
        np.subtract(2 * c[:, :1], c[:, padlen:0:-1], out=ext[:, :padlen])
        np.subtract(2 * c[:, -1:], c[:, -2 : -padlen - 2 : -1], out=ext[:, padlen + n :])
    csos = _complex_sos(np.ascontiguousarray(sos, dtype=np.float64).tobytes(), sos.shape)
    _sosfilt_rows(csos, ext, zi * ext[:, :1])
    back = _work_buffer("back", (pairs, m))
    back[...] = ext[:, ::-1]
    _sosfilt_rows(csos, back, zi * back[:, :1])
    out = np.empty((rows, n), dtype=np.float32)
    kept = back[:, m - padlen - 1 : padlen - 1 if padlen else None : -1]  # the record, forward in time
    out[:pairs] = kept.real
    out[pairs:] = kept.imag[: rows - pairs]
    return out


def bandpass_filter(
    signal_mv: np.ndarray,
    fs_hz: float,
    low_hz: float = 0.5,
    high_hz: float = 40.0,
    notch_hz: float | None = None,
) -> np.ndarray:
    """Zero-phase Butterworth band-pass (and optional notch) along the last axis; returns float32.

    Works on one lead (n,) or many (leads, n). NaN samples (gaps in a file) are set to the lead's
    median before filtering so they cannot spread along the lead. A ``high_hz`` at or above ~95 % of
    Nyquist is skipped (high-pass only).
    """
    x = np.asarray(signal_mv)
    if x.ndim not in (1, 2):
        raise ValueError(f"signal_mv must be (n,) or (leads, n), got shape {x.shape}")
    if fs_hz <= 0:
        raise ValueError(f"fs_hz must be positive, got {fs_hz}")
    if not (0.0 <= low_hz < high_hz):
        raise ValueError(f"need 0 <= low_hz < high_hz, got {low_hz}, {high_hz}")
    if x.dtype not in (np.float32, np.float64):
        x = x.astype(np.float64)
    if not np.isfinite(x).all():
        x = x.astype(np.float64)
        with warnings.catch_warnings():  # a lead with no finite sample at all is filled with 0 (flagged flat later)
            warnings.simplefilter("ignore", RuntimeWarning)
            med = np.nanmedian(np.where(np.isfinite(x), x, np.nan), axis=-1, keepdims=True)
        med = np.nan_to_num(med)
        x = np.where(np.isfinite(x), x, np.broadcast_to(med, x.shape))
    sos, zi = _band_sos_zi(float(fs_hz), float(low_hz), float(high_hz), None if notch_hz is None else float(notch_hz))
    if sos.shape[0] == 0:
        return x.astype(np.float32)
    n = x.shape[-1]
    if n < MIN_FILTER_SAMPLES:
        raise ValueError(f"signal too short to filter ({n} samples)")
    # odd extension of up to 1 s at each end keeps the 0.5 Hz high-pass transient out of the record
    padlen = min(int(fs_hz), n - 1)
    return filtfilt_sos(sos, zi, x.reshape(-1, n), padlen).reshape(x.shape)
