"""Quality flags per ECG. A flagged ECG is reported (its flags travel with its analysis), never silently
used or silently dropped: the caller decides.

Flags (strings; per-lead ones carry the lead name):

- ``no_beat``: no complete beat window could be cut;
- ``too_few_beats``: fewer R peaks than 30 bpm would give (at least 3);
- ``irregular_rr``: RR coefficient of variation > 0.11 (atrial-fibrillation-like; marked sinus
  arrhythmia and frequent ectopy also trip it);
- ``pacing_spikes``: at least 5 sharp one-sample spikes > 0.35 mV (second-difference) in the raw signal;
- ``flat_lead:<lead>``: peak-to-peak of the band-passed lead < 0.05 mV;
- ``saturated_lead:<lead>``: >= 2 % of samples sit at the lead's extreme value (clipping);
- ``noisy_lead:<lead>``: high-frequency (> ``high_hz``) noise > 0.01 mV RMS;
- ``excessive_noise``: a noisy lead, or beats that disagree in shape (median QRS correlation < 0.7).

Thresholds were set on the PTB-XL sample (records 1-200): the pacing threshold separates its three
pacemaker records (>= 0.44 mV) from all others (<= 0.27 mV).

    >>> import numpy as np
    >>> from elvmass.signal.quality import assess_quality
    >>> x = np.zeros((12, 5000)); x[:, 250::500] = 1.0
    >>> "flat_lead:I" in assess_quality(x, x, 500.0, np.arange(250, 5000, 500))
    False
"""

from __future__ import annotations

import numpy as np

from elvmass.record import LEADS

RR_CV_IRREGULAR = 0.11
PACING_SPIKE_MV = 0.35
PACING_MIN_SPIKES = 5
FLAT_P2P_MV = 0.05
SATURATED_FRACTION = 0.02
NOISE_HF_MV = 0.01
BEAT_CORR_NOISY = 0.7


def assess_quality(
    raw_mv: np.ndarray,
    filtered_mv: np.ndarray,
    fs_hz: float,
    r_peaks: np.ndarray,
    *,
    beat_correlation: float | None = None,
) -> tuple[str, ...]:
    """Quality flags of one ECG from its raw and band-passed (12, n) signals and R peaks."""
    # Arithmetic in float64 as on float64 copies, but without making them: each ufunc below widens its
    # float32 inputs on the fly, so the flags are the same to the last bit at a fraction of the memory traffic.
    raw = np.asarray(raw_mv)
    filt = np.asarray(filtered_mv)
    if raw.dtype not in (np.float32, np.float64) or not np.isfinite(raw.sum(dtype=np.float64)):
        raw = np.asarray(raw, dtype=np.float64)
        raw = np.where(np.isfinite(raw), raw, 0.0)
    n = raw.shape[1]
    flags: list[str] = []
    duration_s = n / fs_hz
    r = np.asarray(r_peaks)
    if r.size < max(3, int(duration_s * 0.5)):
        flags.append("too_few_beats")
    if r.size >= 4:
        rr = np.diff(r) / fs_hz
        if rr.std() / rr.mean() > RR_CV_IRREGULAR:
            flags.append("irregular_rr")

    # pacing spikes: one-sample spikes, judged at ~500 Hz whatever the rate
    step = max(1, int(round(fs_hz / 500.0)))
    xs = raw[:, ::step]
    t = np.add(xs[:, :-2], xs[:, 2:], dtype=np.float64)
    t *= 0.5
    np.subtract(xs[:, 1:-1], t, out=t, dtype=np.float64)
    spike = np.abs(t, out=t).max(axis=0)
    if np.count_nonzero(spike > PACING_SPIKE_MV) >= PACING_MIN_SPIKES:
        flags.append("pacing_spikes")

    p2p = filt.max(axis=1).astype(np.float64) - filt.min(axis=1).astype(np.float64)
    hi = raw.max(axis=1, keepdims=True).astype(np.float64)
    lo = raw.min(axis=1, keepdims=True).astype(np.float64)
    at_rail = np.maximum(
        np.count_nonzero(raw >= hi - 1e-6, axis=1), np.count_nonzero(raw <= lo + 1e-6, axis=1)
    ) / n
    # what the band-pass removed, differenced: wander cancels, HF noise stays
    removed = np.subtract(raw, filt, dtype=np.float64)
    resid = np.subtract(removed[:, 1:], removed[:, :-1])
    resid -= resid.mean(axis=1, keepdims=True)
    hf = 1.2533 * np.abs(resid, out=resid).mean(axis=1) / np.sqrt(2.0)  # Gaussian-equivalent RMS from the mean |deviation|
    noisy = False
    for i, name in enumerate(LEADS):
        if p2p[i] < FLAT_P2P_MV:
            flags.append(f"flat_lead:{name}")
            continue
        if at_rail[i] >= SATURATED_FRACTION:
            flags.append(f"saturated_lead:{name}")
        if hf[i] > NOISE_HF_MV:
            flags.append(f"noisy_lead:{name}")
            noisy = True
    if noisy or (beat_correlation is not None and beat_correlation < BEAT_CORR_NOISY):
        flags.append("excessive_noise")
    return tuple(flags)


#: flags after which the beat view should not be used without a look (the caller decides).
BLOCKING_FLAGS = ("no_beat", "too_few_beats", "pacing_spikes", "excessive_noise")


def is_blocking(flag: str) -> bool:
    return flag in BLOCKING_FLAGS or flag.startswith(("flat_lead:", "saturated_lead:"))
