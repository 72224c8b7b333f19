"""Quality flags per ECG. A flagged ECG is reported (its flags travel with its analysis), never silently
used or silently dropped: the caller decides.

Flags (strings; per-lead ones carry the lead name):

- ``no_beat``: no complete beat window could be cut;
- ``too_few_beats``: fewer R peaks than 30 bpm would give (at least 3);
- ``irregular_rr``: RR coefficient of variation > 0.11 (atrial-fibrillation-like; marked sinus
  arrhythmia and frequent ectopy also trip it);
- ``pacing_spikes``: sharp one-sample spikes > 0.25 mV (second difference, in the raw signal) that lead
  at least 3 beats as a pacemaker's stimuli do: spike *events* (spike samples closer than 20 ms are one
  event) 30-400 ms before the next R peak (before the QRS the stimulus starts), at the same lead time
  (within 20 ms of their median: a pacemaker fires at a fixed interval before its complex). A glitch on a
  sharp R apex or QRS upstroke, and a few artefacts at random places, are not pacing;
- ``pacing_not_checked``: the rate is below 400 Hz, where a pacing spike is no sharper than a QRS
  complex (not blocking: the user is told that pacing could not be ruled out from the waveform);
- ``flat_lead:<lead>``: peak-to-peak of the band-passed lead < 0.05 mV;
- ``saturated_lead:<lead>``: >= 2 % of samples sit at the lead's extreme value (clipping);
- ``noisy_lead:<lead>``: noise between 40 and 100 Hz > 0.012 mV RMS (see :func:`high_frequency_noise_mv`);
- ``noise_not_checked``: the rate is too low to hold that band (100 Hz: Nyquist 50 Hz, the band would end
  at 40 Hz; not blocking: the user is told that noise could not be measured, as with pacing);
- ``excessive_noise``: a noisy lead, or beats that disagree in shape (median QRS correlation < 0.7);
- ``mains_interference:<50|60>``: the noisy leads' noise is mostly a mains line: a notch at that frequency
  takes at least half of it away (median over the noisy leads). Not blocking by itself: it says what to
  fix (``elvmass beats --notch-hz 50``, ``SignalConfig(notch_hz=50)``), and with that notch the line is no
  longer counted as noise. Not looked for when a notch is configured.

Thresholds were set on the PTB-XL sample (records 1-200) and LUDB records 1-120, so no real ECG here
checks them independently (the measurements that set them follow). The pacing rule flags PTB-XL's three pacemaker
records (stimulus 90-112 ms before R) and no other of the 200; 8 of LUDB's 10 paced records (stimuli 44-156
ms before R; the rule before 4 Dec 2026, > 0.35 mV and any lead time, flagged 5) and none of its 110
others; none of the genuine vendor files; and of 5,981 generated ECGs (``elvmass synth --n 3000 --seed 7``)
all 30 paced and none of the 5,951 others (the earlier rule flagged 3 of them: sharp generated R apexes
2 ms, and an upstroke notch 18 ms, before R: why the lead must be at least 30 ms, and the same each beat);
the noise threshold sits in a gap of its
records' noisiest-lead values (0.0116-0.0128 mV) and flags 12 of the 200, 10 of which PTB-XL's
annotators marked as noisy (static or burst noise, electrode problems); resampled to 250 Hz, the same
12 are flagged.

    >>> import numpy as np
    >>> from elvmass.signal.quality import assess_quality
    >>> x = np.zeros((12, 5000)); x[:, 250::500] = 1.0
    >>> "flat_lead:I" in assess_quality(x, x, 500.0, np.arange(250, 5000, 500))
    False
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
from scipy.signal import butter, iirnotch, tf2sos

from elvmass.record import LEADS
from elvmass.signal.kernels import lead_checks, sosfilt_abs_rows

RR_CV_IRREGULAR = 0.11
PACING_SPIKE_MV = 0.25
#: pacing: at least this many spike events, each starting PACING_LEAD_MS before the next R peak (before
#: the QRS it starts: a sharp notch on the QRS upstroke or the R apex sits closer to R), all at the same
#: lead (within PACING_LEAD_SPREAD_MS of their median: a pacemaker fires at a fixed interval before the
#: complex it starts); spike samples closer than PACING_EVENT_GAP_MS are one event
PACING_MIN_EVENTS = 3
PACING_LEAD_MS = (30.0, 400.0)
PACING_LEAD_SPREAD_MS = 20.0
PACING_EVENT_GAP_MS = 20.0
PACING_MIN_FS_HZ = 400.0
FLAT_P2P_MV = 0.05
SATURATED_FRACTION = 0.02
NOISE_HF_MV = 0.012
#: mains frequencies looked for in noisy leads, and the share of their noise a notch must remove
MAINS_HZ = (50.0, 60.0)
MAINS_NOISE_SHARE = 0.5
BEAT_CORR_NOISY = 0.7


#: the band the noise is measured in (Hz): above the ECG band-pass, below what 200-Hz recordings still hold
NOISE_BAND_HZ = (40.0, 100.0)


def high_frequency_noise_mv(raw_mv: np.ndarray, fs_hz: float, notch_hz: float | None = None) -> np.ndarray:
    """Per-lead RMS (mV) of the noise between 40 and 100 Hz: band-passed, then scaled by the median
    absolute value (x 1.4826, the RMS of Gaussian noise), so the QRS complexes' own high-frequency
    content (a tenth of the samples) does not count as noise. With ``notch_hz`` (the pipeline's mains
    notch), the mains line the pipeline removes is removed here too: it is not noise the ECG keeps.

    The band is fixed in Hz, so the estimate does not depend on the sampling rate (the earlier estimate,
    the first difference of what the ECG band-pass removed, grew as the rate fell: a genuine 1000-Hz
    DICOM resampled to 250 Hz read as noisy). A scale needs no zero phase: one forward pass, its first
    quarter second (the filter's start-up) left out.

        >>> import numpy as np
        >>> x = np.random.default_rng(0).normal(0.0, 0.05, (12, 5000))   # white noise, 0.05 mV RMS to 250 Hz
        >>> in_band = 0.05 * np.sqrt(60.0 / 250.0)                        # its RMS between 40 and 100 Hz
        >>> est = high_frequency_noise_mv(x, 500.0)
        >>> bool(np.all((0.9 * in_band < est) & (est < 1.1 * in_band)))
        True
    """
    x = np.asarray(raw_mv)
    if x.dtype not in (np.float32, np.float64):
        x = x.astype(np.float64)
    if not noise_band_exists(fs_hz):  # e.g. 100 Hz: nothing above the ECG band to measure
        return np.full(x.shape[0], np.nan)
    sos = _noise_band_sos(float(fs_hz), None if notch_hz is None else float(notch_hz))
    mag = sosfilt_abs_rows(sos, x, int(0.25 * fs_hz))  # |band| of each lead
    if mag.shape[1] == 0:
        return np.zeros(mag.shape[0])
    half = mag.shape[1] // 2
    return 1.4826 * np.partition(mag, half, axis=1)[:, half].astype(np.float64)


def mains_line_hz(raw_mv: np.ndarray, fs_hz: float, noise_mv: np.ndarray | None = None) -> float | None:
    """The mains frequency (50 or 60 Hz) whose notch removes at least ``MAINS_NOISE_SHARE`` of the noise of
    the noisy leads (median over them; ``noise_mv``: :func:`high_frequency_noise_mv` of ``raw_mv``), the
    one removing most when both do; None when neither does or no lead is noisy.

        >>> import numpy as np
        >>> t = np.arange(5000) / 500.0
        >>> x = np.tile(0.05 * np.sin(2 * np.pi * 50.0 * t), (12, 1))   # a 50-Hz line, 0.05 mV, no other noise
        >>> mains_line_hz(x, 500.0), mains_line_hz(np.random.default_rng(0).normal(0, 0.05, (12, 5000)), 500.0)
        (50.0, None)
    """
    hf = high_frequency_noise_mv(raw_mv, fs_hz) if noise_mv is None else np.asarray(noise_mv)
    noisy = np.flatnonzero(np.nan_to_num(hf) > NOISE_HF_MV)
    if noisy.size == 0:
        return None
    low, high = _noise_band_edges(float(fs_hz))
    best, best_left = None, 1.0 - MAINS_NOISE_SHARE
    rows = np.asarray(raw_mv)[noisy]
    for f0 in MAINS_HZ:
        if not low < f0 < high:
            continue
        left = float(np.median(high_frequency_noise_mv(rows, fs_hz, f0) / hf[noisy]))
        if left <= best_left:
            best, best_left = f0, left
    return best


def _noise_band_edges(fs_hz: float) -> tuple[float, float]:
    low, high = NOISE_BAND_HZ
    return low, min(high, 0.4 * fs_hz)


def noise_band_exists(fs_hz: float) -> bool:
    """False at 100 Hz and below, where the band's upper edge (0.4 x the rate) does not clear its lower edge."""
    low, high = _noise_band_edges(float(fs_hz))
    return high > low


@lru_cache(maxsize=16)
def _noise_band_sos(fs_hz: float, notch_hz: float | None = None) -> np.ndarray:
    sos = butter(3, list(_noise_band_edges(fs_hz)), btype="bandpass", fs=fs_hz, output="sos")
    if notch_hz is not None and 0.0 < notch_hz < fs_hz / 2.0:  # the notch of elvmass.signal.filters (Q 30)
        sos = np.vstack([sos, tf2sos(*iirnotch(notch_hz, Q=30.0, fs=fs_hz))])
    return sos


def pacing_events(spike_samples: np.ndarray, r_peaks: np.ndarray, fs_hz: float) -> int:
    """How many spike events lead a beat as a pacemaker's stimuli do: runs of spike samples (gaps under
    ``PACING_EVENT_GAP_MS``) whose first sample is ``PACING_LEAD_MS`` before the next R peak, counted when
    their lead is within ``PACING_LEAD_SPREAD_MS`` of the median lead of all such events (a pacemaker fires
    at a fixed interval before the complex it starts). A spike on a sharp R apex or upstroke, a few
    artefacts at random places, or spikes far from any beat do not count.

    >>> import numpy as np
    >>> r = np.arange(300, 5000, 500)                             # a beat every second at 500 Hz
    >>> pacing_events(np.sort(np.r_[r - 40, r - 39]), r, 500.0)  # a 2-sample stimulus 80 ms before each R
    10
    >>> pacing_events(r + 5, r, 500.0), pacing_events(r - 1, r, 500.0)  # on sharp R apexes: not pacing
    (0, 0)
    >>> pacing_events(r[:3] - np.array([30, 120, 60]), r, 500.0)  # 60, 240, 120 ms before R: no fixed lead
    1
    """
    s = np.asarray(spike_samples, dtype=np.int64)
    rp = np.asarray(r_peaks, dtype=np.int64)
    if s.size == 0 or rp.size == 0:
        return 0
    starts = s[np.r_[True, np.diff(s) >= PACING_EVENT_GAP_MS * fs_hz / 1000.0]]
    nxt = np.searchsorted(rp, starts, side="left")
    ok = nxt < rp.size
    lead_ms = (rp[np.minimum(nxt, rp.size - 1)] - starts) * 1000.0 / fs_hz
    lead_ms = lead_ms[ok & (lead_ms >= PACING_LEAD_MS[0]) & (lead_ms <= PACING_LEAD_MS[1])]
    if lead_ms.size == 0:
        return 0
    return int(np.count_nonzero(np.abs(lead_ms - np.median(lead_ms)) <= PACING_LEAD_SPREAD_MS))


def assess_quality(
    raw_mv: np.ndarray,
    filtered_mv: np.ndarray,
    fs_hz: float,
    r_peaks: np.ndarray,
    *,
    beat_correlation: float | None = None,
    notch_hz: float | None = None,
) -> tuple[str, ...]:
    """Quality flags of one ECG from its raw and band-passed (12, n) signals and R peaks; ``notch_hz`` the
    mains notch the band-passed signal was filtered with (its line is then not counted as noise)."""
    # Arithmetic in float64 as on float64 copies, but without making them: the kernels widen float32
    # samples one at a time, so the flags are the same to the last bit at a fraction of the memory traffic.
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

    # pacing spikes: one-sample spikes, judged at ~500 Hz whatever the rate; below 400 Hz a spike is
    # no sharper than a QRS (PTB-XL at 250 Hz: paced 0.69-0.83 mV, unpaced up to 0.69 mV), so not judged
    if fs_hz < PACING_MIN_FS_HZ:
        flags.append("pacing_not_checked")
    step = max(1, int(round(fs_hz / 500.0)))
    # one compiled pass per signal: spikes (a sample where some lead departs from the mean of its two
    # neighbours by more than PACING_SPIKE_MV), peak-to-peak, and samples within 1 uV of a lead's extremes
    spikes, p2p, n_rail = lead_checks(raw, filt, step, PACING_SPIKE_MV, 1e-6)
    if fs_hz >= PACING_MIN_FS_HZ and pacing_events(spikes, r, fs_hz) >= PACING_MIN_EVENTS:
        flags.append("pacing_spikes")
    at_rail = n_rail / n
    hf = high_frequency_noise_mv(raw, fs_hz, notch_hz)
    if not noise_band_exists(fs_hz):
        flags.append("noise_not_checked")
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
    if noisy and notch_hz is None:
        mains = mains_line_hz(raw, fs_hz, hf)
        if mains is not None:
            flags.append(f"mains_interference:{mains:g}")
    return tuple(flags)


#: flags after which the beat view should not be used without a look (the caller decides).
BLOCKING_FLAGS = ("no_beat", "too_few_beats", "pacing_spikes", "excessive_noise")


def is_blocking(flag: str) -> bool:
    """True for a flag after which the ECG is not used (by ``predict``: the model needs a clean 12-lead beat)."""
    return flag in BLOCKING_FLAGS or flag.startswith(("flat_lead:", "saturated_lead:", "missing_leads:"))


def blocks_measurements(flag: str) -> bool:
    """True for a blocking flag that also makes the measured intervals and axes unreliable: every blocking
    flag but ``missing_leads`` (a partial record's intervals come from the leads it has; its axes are NaN
    where lead I or aVF is missing)."""
    return is_blocking(flag) and not flag.startswith("missing_leads:")
