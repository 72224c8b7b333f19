"""Compiled inner loops of the signal chain (numba): the recursive filter sections and the per-lead sums
of the quality checks, with every lead of a record handled at once.

The recursion of an IIR filter runs sample after sample, so on its own a lead keeps the processor waiting
on the previous sample. Here the samples are laid out time-major (``(n, leads)``) and each filter section
runs over the whole record with the leads as the innermost loop: one step advances every lead, which the
compiler turns into vector instructions. Each value goes through the same float64 operations, in the same
order, as in scipy's section filter (``scipy.signal.sosfilt``, direct form II transposed), so the results
are scipy's to the bit; ``tests/test_signal_exact_fast_paths.py`` checks that on real ECGs.

==========================  ==========================================================  ==================
kernel                      what it computes                                             same bits as
==========================  ==========================================================  ==================
:func:`sosfiltfilt_rows`    zero-phase filter with odd extension (leads, n) -> float32   ``sosfiltfilt``
:func:`sosfilt_abs_rows`    one forward pass from a zero state, then ``abs``              ``abs(sosfilt)``
:func:`lead_checks`         pacing-spike count, peak-to-peak, samples at the rails       NumPy's reductions
==========================  ==========================================================  ==================

On this project's 2-core machine, for a 12-lead, 10-s, 500-Hz record: the band-pass filter 0.2 ms (scipy's
sections, two leads at a time as one complex signal: 0.8 ms), the noise estimate of the quality checks
0.26 ms (0.49), the spike, flat-lead and clipping sums 0.07 ms (about 0.3 with NumPy).

    >>> import numpy as np
    >>> from scipy import signal
    >>> sos = signal.butter(2, [0.5, 40.0], btype="bandpass", fs=500.0, output="sos")
    >>> x = np.random.default_rng(0).normal(size=(3, 2000))
    >>> y = sosfiltfilt_rows(sos, signal.sosfilt_zi(sos), x, 500)
    >>> bool(np.array_equal(y, signal.sosfiltfilt(sos, x, padlen=500).astype(np.float32)))
    True

Compiled code is cached next to this file (or in numba's user cache when that folder is read-only), so
a new process (a Dask worker) loads it instead of compiling it again.
"""

from __future__ import annotations

import numpy as np

try:
    import numba
except ImportError as exc:  # pragma: no cover - numba is a dependency (pyproject.toml)
    raise ImportError("elvmass needs numba for its signal kernels: pip install numba") from exc


def _jit(fn):
    try:
        return numba.njit(cache=True)(fn)
    except RuntimeError:  # pragma: no cover - nowhere to cache: compile in every process
        return numba.njit(fn)


@_jit
def _sections(sos, y, z0, z1, backward):
    """Filter the time-major ``y`` (m, rows) in place, section by section, forward in time or (the second
    pass of a zero-phase filter) backward, from the states ``z0``/``z1`` (sections, rows), which are
    overwritten."""
    m, rows = y.shape
    first, stop, step = (m - 1, -1, -1) if backward else (0, m, 1)
    for s in range(sos.shape[0]):
        b0, b1, b2, a1, a2 = sos[s, 0], sos[s, 1], sos[s, 2], sos[s, 4], sos[s, 5]
        za = z0[s]
        zb = z1[s]
        for t in range(first, stop, step):
            for r in range(rows):
                xc = y[t, r]
                yc = b0 * xc + za[r]
                za[r] = b1 * xc - a1 * yc + zb[r]
                zb[r] = b2 * xc - a2 * yc
                y[t, r] = yc


@_jit
def _filtfilt(sos, zi, x, padlen):
    rows, n = x.shape
    m = n + 2 * padlen
    ext = np.empty((m, rows))
    for t in range(n):  # the record, time-major, in float64
        for r in range(rows):
            ext[padlen + t, r] = x[r, t]
    for k in range(padlen):  # odd extension: 2 x[0] - x[padlen - k] before, 2 x[-1] - x[-2 - k] after
        for r in range(rows):
            ext[k, r] = 2.0 * ext[padlen, r] - ext[2 * padlen - k, r]
            ext[padlen + n + k, r] = 2.0 * ext[padlen + n - 1, r] - ext[padlen + n - 2 - k, r]
    ns = sos.shape[0]
    z0 = np.empty((ns, rows))
    z1 = np.empty((ns, rows))
    for s in range(ns):  # steady-state start at the first sample (scipy: zi * x0)
        for r in range(rows):
            z0[s, r] = zi[s, 0] * ext[0, r]
            z1[s, r] = zi[s, 1] * ext[0, r]
    _sections(sos, ext, z0, z1, False)
    for s in range(ns):  # and for the backward pass at the forward pass's last sample
        for r in range(rows):
            z0[s, r] = zi[s, 0] * ext[m - 1, r]
            z1[s, r] = zi[s, 1] * ext[m - 1, r]
    _sections(sos, ext, z0, z1, True)
    out = np.empty((rows, n), dtype=np.float32)
    for r in range(rows):
        for t in range(n):
            out[r, t] = np.float32(ext[padlen + t, r])
    return out


def sosfiltfilt_rows(sos: np.ndarray, zi: np.ndarray, x: np.ndarray, padlen: int) -> np.ndarray:
    """``scipy.signal.sosfiltfilt(sos, x, axis=-1, padtype="odd", padlen=padlen)`` of (rows, n) ``x``
    (float32 or float64), returned as float32: the float32 cast of scipy's float64 result, bit for bit.
    ``zi`` is ``scipy.signal.sosfilt_zi(sos)`` (sections, 2); ``0 <= padlen < n``."""
    x = np.ascontiguousarray(x)
    if x.ndim != 2 or not 0 <= padlen < max(x.shape[1], 1):
        raise ValueError(f"need (rows, n) with 0 <= padlen < n, got shape {x.shape} and padlen {padlen}")
    return _filtfilt(np.ascontiguousarray(sos, dtype=np.float64), np.ascontiguousarray(zi, dtype=np.float64).reshape(-1, 2),
                     x, int(padlen))


@_jit
def _sosfilt_abs(sos, x, skip):
    rows, n = x.shape
    y = np.empty((n, rows))
    for t in range(n):
        for r in range(rows):
            y[t, r] = x[r, t]
    ns = sos.shape[0]
    z0 = np.zeros((ns, rows))
    z1 = np.zeros((ns, rows))
    _sections(sos, y, z0, z1, False)
    out = np.empty((rows, n - skip))
    for r in range(rows):
        for t in range(skip, n):
            out[r, t - skip] = abs(y[t, r])
    return out


def sosfilt_abs_rows(sos: np.ndarray, x: np.ndarray, skip: int = 0) -> np.ndarray:
    """``np.abs(scipy.signal.sosfilt(sos, x, axis=-1)[:, skip:])`` of (rows, n) ``x``: one forward pass
    from a zero state, float64 (rows, n - skip), bit for bit."""
    x = np.ascontiguousarray(x)
    if x.ndim != 2:
        raise ValueError(f"need (rows, n), got shape {x.shape}")
    return _sosfilt_abs(np.ascontiguousarray(sos, dtype=np.float64), x, int(min(max(skip, 0), x.shape[1])))


@_jit
def _spike_samples(xs, spike_mv):
    rows, m = xs.shape
    worst = np.zeros(max(m - 2, 0))  # per sample: the largest departure over the leads
    for r in range(rows):
        x = xs[r]
        for j in range(m - 2):
            d = abs(np.float64(x[j + 1]) - (np.float64(x[j]) + np.float64(x[j + 2])) * 0.5)
            worst[j] = d if d > worst[j] else worst[j]
    spikes = 0
    for j in range(m - 2):
        spikes += 1 if worst[j] > spike_mv else 0
    out = np.empty(spikes, dtype=np.int64)
    k = 0
    for j in range(m - 2):
        if worst[j] > spike_mv:
            out[k] = j + 1  # the middle sample of the three
            k += 1
    return out


@_jit
def _rail_counts(raw, hi, lo, rail_mv):
    rows, n = raw.shape
    rail = np.empty(rows, dtype=np.int64)
    for r in range(rows):
        x = raw[r]
        top = hi[r] - rail_mv
        bottom = lo[r] + rail_mv
        n_hi = 0
        n_lo = 0
        for t in range(n):
            v = np.float64(x[t])
            n_hi += 1 if v >= top else 0
            n_lo += 1 if v <= bottom else 0
        rail[r] = max(n_hi, n_lo)
    return rail


def lead_checks(raw_mv: np.ndarray, filtered_mv: np.ndarray, step: int, spike_mv: float,
                rail_mv: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The per-lead sums of :func:`elvmass.signal.quality.assess_quality`, without NumPy's float64
    temporaries (``raw_mv`` finite, both (leads, n)): the samples (indices into ``raw_mv``, ascending) of
    ``raw_mv[:, ::step]`` where some lead departs from the mean of its two neighbours by more than
    ``spike_mv`` (a pacing spike), each lead's
    peak-to-peak of ``filtered_mv``, and each lead's count of samples within ``rail_mv`` of its own maximum
    or of its minimum, whichever is larger (clipping). Float64 arithmetic as NumPy's on widened inputs."""
    raw = np.ascontiguousarray(raw_mv)
    filt = np.ascontiguousarray(filtered_mv)
    if raw.ndim != 2 or filt.shape[0] != raw.shape[0] or raw.shape[1] == 0 or filt.shape[1] == 0:
        raise ValueError(f"need (leads, n) signals with the same leads, got {raw.shape} and {filt.shape}")
    xs = raw if step == 1 else np.ascontiguousarray(raw[:, ::step])
    spikes = _spike_samples(xs, float(spike_mv)) * step
    p2p = filt.max(axis=1).astype(np.float64) - filt.min(axis=1).astype(np.float64)  # NumPy's SIMD extremes
    hi, lo = raw.max(axis=1).astype(np.float64), raw.min(axis=1).astype(np.float64)
    return spikes, p2p, _rail_counts(raw, hi, lo, float(rail_mv))


def warm_up() -> None:
    """Compile (or load from the cache) every kernel for float32 and float64 input, so that processes
    forked from this one (archive workers, see :mod:`elvmass.archive_worker`) start with them ready."""
    from scipy.signal import butter, sosfilt_zi

    sos = butter(2, [0.5, 40.0], btype="bandpass", fs=500.0, output="sos")
    for dtype in (np.float32, np.float64):
        x = np.zeros((2, 64), dtype=dtype)
        sosfiltfilt_rows(sos, sosfilt_zi(sos), x, 16)
        sosfilt_abs_rows(sos, x, 4)
        lead_checks(x, x.astype(np.float32), 1, 1.0, 1e-6)
        lead_checks(x, x.astype(np.float32), 2, 1.0, 1e-6)


__all__ = ["lead_checks", "sosfilt_abs_rows", "sosfiltfilt_rows", "warm_up"]
