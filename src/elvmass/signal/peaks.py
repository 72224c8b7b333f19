"""R peaks: one series shared by all 12 leads.

Detection runs once, on a lead-combined signal (the root-mean-square across leads of the band-passed
ECG), with neurokit2's ``neurokit`` gradient method (Makowski et al., Behav Res Methods 2021). Because
the RMS is positive whatever the sign of each lead's QRS, inverted complexes in some leads (aVR, V1, a
left-axis lead II) cannot hide a beat. Each peak is then moved to the largest RMS value within
+/- ``refine_s``, so every lead is cut at the same sample.

    >>> import numpy as np
    >>> from elvmass.signal import detect_r_peaks
    >>> fs = 500.0
    >>> x = np.zeros((12, 5000), np.float32)
    >>> x[:, 250::500] = 1.0                           # one spike a second in every lead ...
    >>> x[3] *= -1                                       # ... inverted in aVR
    >>> detect_r_peaks(x, fs).tolist()[:3]
    [250, 750, 1250]
"""

from __future__ import annotations

import numpy as np

from elvmass.signal.filters import bandpass_filter

#: the 8 independent leads (I, II, V1..V6); III, aVR, aVL, aVF are linear combinations of I and II.
INDEPENDENT_LEADS = (0, 1, 6, 7, 8, 9, 10, 11)


def combine_leads(filtered_mv: np.ndarray) -> np.ndarray:
    """Root-mean-square across leads at every sample (a (n,) float64 array, in mV)."""
    x = np.asarray(filtered_mv, dtype=np.float64)
    if x.ndim == 1:
        return np.abs(x)
    return np.sqrt(np.einsum("ij,ij->j", x, x) / x.shape[0])


def detect_r_peaks(
    signal_mv: np.ndarray,
    fs_hz: float,
    *,
    filtered: bool = False,
    low_hz: float = 0.5,
    high_hz: float = 40.0,
    refine_s: float = 0.05,
) -> np.ndarray:
    """Sample indices of the R peaks, one series for all leads (int64, increasing).

    ``signal_mv`` is (12, n) or a single lead (n,), in mV. Unless ``filtered=True`` it is band-passed
    first (``low_hz``-``high_hz``). Returns an empty array when no QRS complex is found.
    """
    x = np.asarray(signal_mv)
    if x.ndim not in (1, 2):
        raise ValueError(f"signal_mv must be (n,) or (leads, n), got shape {x.shape}")
    if not filtered:
        x = bandpass_filter(x, fs_hz, low_hz, high_hz)
    combined = combine_leads(x)
    return _peaks_on_combined(combined, fs_hz, refine_s=refine_s)


def _peaks_on_combined(combined: np.ndarray, fs_hz: float, *, refine_s: float = 0.05) -> np.ndarray:
    import warnings

    if combined.size < int(fs_hz) or not np.any(combined > 0):
        return np.zeros(0, dtype=np.int64)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from neurokit2 import ecg_findpeaks

        found = ecg_findpeaks(combined, sampling_rate=int(round(fs_hz)), method="neurokit")["ECG_R_Peaks"]
    peaks = np.asarray(found, dtype=np.int64)
    if peaks.size == 0:
        return peaks
    return refine_peaks(combined, peaks, int(round(refine_s * fs_hz)))


def refine_peaks(combined: np.ndarray, peaks: np.ndarray, half_width: int) -> np.ndarray:
    """Move each peak to the maximum of ``combined`` within +/- ``half_width`` samples (vectorised)."""
    n = combined.size
    if half_width <= 0 or peaks.size == 0:
        return peaks
    offsets = np.arange(-half_width, half_width + 1)
    idx = np.clip(peaks[:, None] + offsets[None, :], 0, n - 1)
    best = idx[np.arange(idx.shape[0]), np.argmax(combined[idx], axis=1)]
    best = np.unique(best)  # two detections refined onto one maximum count once
    return best.astype(np.int64)
