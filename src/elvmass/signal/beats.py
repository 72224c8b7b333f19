"""Model input views, synchronized across the 12 leads (every lead cut at the same sample indices).

- ``single_beat``: the beat nearest the middle of the recording (preferring beats shaped like the
  record's typical beat, so an ectopic beat is passed over), a fixed window around its R peak;
- ``full``: the whole recording, cut or zero-padded to ``config.full_s``;
- ``random_crop``: a crop of random length and position, zero-padded to ``config.crop_max_s``;
- ``median_beat``: the sample-wise median of all R-aligned beats (less noise than one beat).

Views are sampled at ``config.out_fs_hz`` by linear interpolation of the band-passed signal (already
band-limited to ``high_hz``, so no further anti-aliasing is needed), which keeps the R peak on the same
output sample whatever the input rate.

    >>> import numpy as np
    >>> from elvmass.record import ECGRecord
    >>> from elvmass.signal import SignalConfig, extract_view
    >>> x = np.zeros((12, 5000), np.float32); x[:, 250::500] = 1.0
    >>> view = extract_view(ECGRecord(x, 500.0), SignalConfig())
    >>> view.shape, int(np.argmax(view[0]))
    ((12, 225), 88)
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np

from elvmass.errors import ElvmassError
from elvmass.median import median_1d
from elvmass.record import ECGRecord
from elvmass.signal.config import SignalConfig
from elvmass.signal.filters import bandpass_filter
from elvmass.signal.peaks import detect_r_peaks

#: correlation with the record's median QRS above which a beat counts as typical when choosing one.
TYPICAL_BEAT_CORR = 0.9


class NoBeatError(ElvmassError, ValueError):
    """No complete beat window could be cut from the record."""


def beat_window_bounds(r_peak: int, fs_hz: float, before_s: float, after_s: float) -> tuple[int, int]:
    """[start, end) sample indices of the beat window around an R peak at the record's rate."""
    return int(r_peak - round(before_s * fs_hz)), int(r_peak + round(after_s * fs_hz))


def complete_beats(r_peaks: np.ndarray, n_samples: int, fs_hz: float, before_s: float, after_s: float) -> np.ndarray:
    """Indices into ``r_peaks`` of the beats whose whole window lies inside the record."""
    r = np.asarray(r_peaks, dtype=np.int64)
    nb, na = round(before_s * fs_hz), round(after_s * fs_hz)
    return np.flatnonzero((r - nb >= 0) & (r + na <= n_samples))


#: up to this many beats the median is taken with a comparator network, beyond it by sorting.
NETWORK_MAX_BEATS = 20


@lru_cache(maxsize=None)
def _median_network(k: int) -> tuple[tuple[int, int], ...]:
    """Comparators (i, j) of Batcher's merge-exchange sorting network for k inputs (Knuth, TAOCP 5.2.2,
    Algorithm M), keeping only those the middle output(s) depend on."""
    pairs = []
    t = (k - 1).bit_length()
    p = 1 << (t - 1) if t else 0
    while p > 0:
        q, r, d = 1 << (t - 1), 0, p
        while d > 0:
            pairs += [(i, i + d) for i in range(k - d) if (i & p) == r]
            d, q, r = q - p, q >> 1, p
        p >>= 1
    needed = {k // 2, (k - 1) // 2}
    kept = []
    for i, j in reversed(pairs):
        if i in needed or j in needed:
            kept.append((i, j))
            needed |= {i, j}
    return tuple(reversed(kept))


def median_beats(a: np.ndarray) -> np.ndarray:
    """``np.median(a, axis=0)`` over the first (beat) axis, for finite values.

    For the few to twenty beats of a resting ECG the beats go through a comparator network, each
    comparator one vectorised minimum/maximum over all samples of two beats, which is several times
    faster than numpy's per-sample partition; more beats are sorted. Both give exactly numpy's numbers
    (the middle value, or the mean of the two middle values in ``a``'s dtype).

    >>> median_beats(np.array([[3.0, 1.0], [1.0, 1.0], [2.0, 5.0], [10.0, 7.0]])).tolist()
    [2.5, 3.0]
    """
    a = np.asarray(a)
    k = a.shape[0]
    if k == 0 or a.dtype.kind != "f" or not np.isfinite(a).all():
        return np.median(a, axis=0)
    if k <= NETWORK_MAX_BEATS:
        rows = list(a)
        for i, j in _median_network(k):
            rows[i], rows[j] = np.minimum(rows[i], rows[j]), np.maximum(rows[i], rows[j])
        lo, hi = rows[(k - 1) // 2], rows[k // 2]
    else:
        s = np.sort(np.moveaxis(a, 0, -1), axis=-1)
        lo, hi = s[..., (k - 1) // 2], s[..., k // 2]
    if k % 2:
        return np.array(hi, copy=True)
    return (lo + hi) / a.dtype.type(2)


def beat_correlations(filtered_mv: np.ndarray, fs_hz: float, r_peaks: np.ndarray, beats: np.ndarray) -> np.ndarray:
    """Correlation of each listed beat's QRS (R +/- 100 ms, all leads) with their median QRS."""
    x = np.asarray(filtered_mv)
    r = np.asarray(r_peaks, dtype=np.int64)[beats]
    half = int(round(0.1 * fs_hz))
    idx = np.clip(r[:, None] + np.arange(-half, half + 1)[None, :], 0, x.shape[-1] - 1)  # (beats, w)
    qrs = x[:, idx].transpose(1, 0, 2).reshape(r.size, -1).astype(np.float64)  # beats x (leads*w)
    template = median_beats(qrs)
    qrs_c = qrs - qrs.mean(axis=1, keepdims=True)
    tpl_c = template - template.mean()
    denom = np.linalg.norm(qrs_c, axis=1) * np.linalg.norm(tpl_c) + 1e-12
    return qrs_c @ tpl_c / denom


def choose_beat(
    filtered_mv: np.ndarray,
    fs_hz: float,
    r_peaks: np.ndarray,
    before_s: float = 0.35,
    after_s: float = 0.55,
) -> int:
    """Index into ``r_peaks`` of the beat to use (nearest the middle among typical beats), or -1.

    A beat is typical when its QRS (R +/- 100 ms, all leads) correlates >= 0.9 with the median QRS of the
    complete beats; when fewer than 3 beats are complete or none is typical, the nearest complete beat
    to the middle is taken.
    """
    return _choose_beat(filtered_mv, fs_hz, r_peaks, before_s, after_s)[0]


def _choose_beat(filtered_mv, fs_hz, r_peaks, before_s, after_s) -> tuple[int, float | None]:
    x = np.asarray(filtered_mv)
    n = x.shape[-1]
    cand = complete_beats(r_peaks, n, fs_hz, before_s, after_s)
    if cand.size == 0:
        return -1, None
    r = np.asarray(r_peaks, dtype=np.int64)[cand]
    order = np.argsort(np.abs(r - n / 2.0), kind="stable")
    median_corr = None
    if cand.size >= 3:
        corr = beat_correlations(x, fs_hz, r_peaks, cand)
        median_corr = median_1d(corr)
        typical = corr >= TYPICAL_BEAT_CORR
        if typical.any():
            order = order[typical[order]]
    return int(cand[order[0]]), median_corr


def _sample_at(x: np.ndarray, positions: np.ndarray) -> np.ndarray:
    """Linear interpolation of (leads, n) at fractional sample positions (any shape); outside -> 0."""
    n = x.shape[-1]
    pos = np.asarray(positions, dtype=np.float64)
    inside = (pos >= 0) & (pos <= n - 1)
    p = np.clip(pos, 0, n - 1)
    i0 = np.minimum(np.floor(p).astype(np.int64), n - 2) if n > 1 else np.zeros_like(p, dtype=np.int64)
    frac = p - i0
    i1 = np.minimum(i0 + 1, n - 1)
    out = x[:, i0] * (1.0 - frac) + x[:, i1] * frac
    return np.where(inside, out, 0.0)


def beat_positions(r_peak: float, fs_hz: float, config: SignalConfig) -> np.ndarray:
    """Fractional input-sample positions of the L output samples of a beat view around ``r_peak``."""
    k = np.arange(-config.beat_samples_before, config.beat_samples_after)
    return r_peak + k * (fs_hz / config.out_fs_hz)


def median_template(
    filtered_mv: np.ndarray, fs_hz: float, r_peaks: np.ndarray, before_s: float, after_s: float
) -> np.ndarray:
    """The median of all complete R-aligned beats at the record's own rate, (12, W) in the signal's dtype."""
    x = np.asarray(filtered_mv)
    cand = complete_beats(r_peaks, x.shape[-1], fs_hz, before_s, after_s)
    if cand.size == 0:
        raise NoBeatError("no complete beat window in the record (too short, or no R peak found)")
    nb, na = round(before_s * fs_hz), round(after_s * fs_hz)
    idx = np.asarray(r_peaks, dtype=np.int64)[cand][:, None] + np.arange(-nb, na)[None, :]  # (beats, W)
    return median_beats(x[:, idx].transpose(1, 0, 2))


def median_beat(filtered_mv: np.ndarray, fs_hz: float, r_peaks: np.ndarray, config: SignalConfig) -> np.ndarray:
    """The sample-wise median of all complete R-aligned beats, (12, L) at ``config.out_fs_hz``."""
    x = np.asarray(filtered_mv)
    cand = complete_beats(r_peaks, x.shape[-1], fs_hz, config.beat_before_s, config.beat_after_s)
    if cand.size == 0:
        raise NoBeatError("no complete beat window in the record (too short, or no R peak found)")
    pos = np.stack([beat_positions(float(r), fs_hz, config) for r in np.asarray(r_peaks)[cand]])  # (B, L)
    beats = _sample_at(x, pos)  # (12, B, L)
    return np.median(beats, axis=1).astype(np.float32)


def view_from_filtered(
    filtered_mv: np.ndarray,
    fs_hz: float,
    r_peaks: np.ndarray,
    beat_index: int,
    config: SignalConfig,
    rng: np.random.Generator | None = None,
) -> np.ndarray:
    """The configured view from an already band-passed (12, n) signal and its R peaks."""
    return view_and_span(filtered_mv, fs_hz, r_peaks, beat_index, config, rng)[0]


def view_and_span(
    filtered_mv: np.ndarray,
    fs_hz: float,
    r_peaks: np.ndarray,
    beat_index: int,
    config: SignalConfig,
    rng: np.random.Generator | None = None,
) -> tuple[np.ndarray, tuple[float, float]]:
    """The view and the stretch of the recording it shows, (start_s, end_s) from the recording's start
    (for ``median_beat`` the window around the chosen beat, or NaN without one)."""
    x = np.asarray(filtered_mv)
    n = x.shape[-1]
    step = fs_hz / config.out_fs_hz
    if config.view == "single_beat":
        if beat_index < 0:
            raise NoBeatError("no complete beat window in the record (too short, or no R peak found)")
        r = float(r_peaks[beat_index])
        out = _sample_at(x, beat_positions(r, fs_hz, config))
        span = (r / fs_hz - config.beat_before_s, r / fs_hz + config.beat_after_s)
    elif config.view == "median_beat":
        out = median_beat(x, fs_hz, r_peaks, config)
        span = (math.nan, math.nan)
        if beat_index >= 0:
            r = float(r_peaks[beat_index])
            span = (r / fs_hz - config.beat_before_s, r / fs_hz + config.beat_after_s)
    elif config.view == "full":
        out = _sample_at(x, np.arange(config.view_length) * step)
        span = (0.0, min(n / fs_hz, config.full_s))
    else:  # random_crop
        rng = rng if rng is not None else np.random.default_rng(config.seed)
        duration_s = n / fs_hz
        max_len_s = min(config.crop_max_s, duration_s)
        min_len_s = min(config.crop_min_s, max_len_s)
        length_s = float(rng.uniform(min_len_s, max_len_s))
        start_s = float(rng.uniform(0.0, max(duration_s - length_s, 0.0)))
        k = np.arange(config.view_length)
        pos = start_s * fs_hz + k * step
        keep = k < int(round(length_s * config.out_fs_hz))
        out = np.where(keep, _sample_at(x, pos), 0.0)
        span = (start_s, start_s + length_s)
    return np.ascontiguousarray(out, dtype=np.float32), span


def extract_view(record: ECGRecord, config: SignalConfig = SignalConfig(), rng: np.random.Generator | None = None) -> np.ndarray:
    """The model input view of one record: float32 (12, ``config.view_length``), mV, band-passed.

    Raises :class:`NoBeatError` for a beat view when no complete beat can be cut.
    """
    filtered = bandpass_filter(record.signal_mv, record.fs_hz, config.low_hz, config.high_hz, config.notch_hz)
    r_peaks = detect_r_peaks(filtered, record.fs_hz, filtered=True)
    beat = -1
    if config.view == "single_beat":
        beat = choose_beat(filtered, record.fs_hz, r_peaks, config.beat_before_s, config.beat_after_s)
    return view_from_filtered(filtered, record.fs_hz, r_peaks, beat, config, rng)
