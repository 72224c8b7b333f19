"""One call from an ECG record to everything the signal stage knows about it.

On the bundled PTB-XL record 136 (a normal ECG of a 52-year-old man, 500 Hz, no device measurements):

    >>> from elvmass.io import example_ecg_path, read_ecg
    >>> from elvmass.signal import analyze_ecg
    >>> a = analyze_ecg(read_ecg(example_ecg_path()))
    >>> a.view.shape, a.usable, a.flags
    ((12, 225), True, ())
    >>> m = {k: round(v, 1) for k, v in a.measured.items()}
    >>> round(m["hr_bpm"]), m["qrs_ms"], m["pr_ms"], m["qt_ms"], m["r_axis_deg"]
    (67, 72.3, 201.7, 386.3, 55.0)
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from elvmass.median import median_1d
from elvmass.record import LEADS, DeviceMeasurements, ECGRecord, resample_signal
from elvmass.signal.beats import NoBeatError, _choose_beat, complete_beats, median_template, view_and_span
from elvmass.signal.config import SignalConfig
from elvmass.signal.criteria import CRITERIA_KEYS, voltage_criteria
from elvmass.signal.fiducials import (
    DELINEATION_AFTER_S,
    DELINEATION_BEFORE_S,
    FIDUCIAL_NAMES,
    locate_fiducials,
    measure_beat,
    p_wave_absent,
)
from elvmass.signal.filters import MIN_FILTER_SAMPLES, bandpass_filter
from elvmass.signal.p_onset_net import NET_BAND, hybrid_p_onset, network_p_onset
from elvmass.signal.peaks import _peaks_on_combined, combine_leads
from elvmass.signal.quality import assess_quality, blocks_measurements, is_blocking

MEASURED_KEYS = ("qrs_ms", "p_axis_deg", "r_axis_deg", "t_axis_deg", "hr_bpm", "pr_ms", "qt_ms")
SEGMENT_NAMES = ("pr", "qrs", "st_t", "tp")
#: a TP piece shorter than this (the window edge just after T end) is not listed
MIN_TP_MS = 20.0
#: the rate the beat is delineated and measured at, whatever the record's. The delineation's thresholds,
#: smoothing widths and hold times were tuned at 500 Hz (LUDB, PTB-XL), and a median beat aligned on R peaks
#: found at a coarser rate is blurred by their rounding; on LUDB's sinus records (chosen beats) resampled
#: to 100 Hz, QRS onsets within tolerance fell from 96 / 89 % (tuning / report part) to 68 / 75 %, and the
#: PTB-XL sample's 100-Hz files read QRS 11 ms longer than their 500-Hz twins (docs/delineation.md). For the delineation a
#: record at another rate is resampled to this rate and band-passed there, its R peaks refined on it
#: (:func:`at_delineation_rate`); the quality checks and the model's view stay at the record's own rate.
DELINEATION_FS_HZ = 500.0


@dataclass
class ECGAnalysis:
    """What :func:`analyze_ecg` found in one ECG.

    Times: ``r_peaks_s``, ``beat_start_s``, ``beat_end_s`` in s from the start of the recording;
    ``fiducials_ms`` (``p_on, p_off, qrs_on, qrs_off, t_off``) in ms from the beat window's start (NaN where
    not found, with a flag: ``no_p_wave:not_found``, ``no_p_wave:not_locked_to_qrs`` (atrial activity not
    tied to the QRS, as in atrial fibrillation), ``t_off_not_found``; a P onset before the window, as with a
    long PR, is negative, never clamped to the window). ``fs_hz`` is the record's rate; ``beat_mv`` the
    band-passed beat the fiducials, measurements and criteria were taken on (the median beat by default), at
    ``beat_fs_hz`` (:data:`DELINEATION_FS_HZ` whatever the record's rate); ``view`` the model input (12, L) at ``config.out_fs_hz``
    (all NaN when no beat could be cut: a flagged view must not be used silently).
    """

    r_peaks_s: np.ndarray
    beat_start_s: float
    beat_end_s: float
    flags: tuple[str, ...]
    fiducials_ms: dict[str, float]
    measured: dict[str, float]
    criteria: dict
    view: np.ndarray
    fs_hz: float
    beat_mv: np.ndarray | None = None
    config: SignalConfig = field(default_factory=SignalConfig)
    source_path: str | None = None
    sex: str | None = None
    device: dict = field(default_factory=dict)
    view_span_s: tuple[float, float] = (math.nan, math.nan)
    beat_fs_hz: float = DELINEATION_FS_HZ

    @property
    def usable(self) -> bool:
        """False when a blocking flag (no beat, too few beats, pacing, noise, flat or saturated lead) is set."""
        return not any(is_blocking(f) for f in self.flags)

    @property
    def measurable(self) -> bool:
        """False when a flag makes the measurements unreliable: every blocking flag but ``missing_leads``
        (a partial record is not usable by the model, but its intervals are measured on the leads it has)."""
        return not any(blocks_measurements(f) for f in self.flags)

    @property
    def segments_ms(self) -> dict[str, list[tuple[float, float]]]:
        """The paper's saliency segments in ms from the beat window start: PR interval (P onset to QRS
        onset), QRS (onset to J point), ST-T (J point to T end), TP (T end to window end, and window start
        to P onset). Segments with an unknown boundary are empty."""
        f = self.fiducials_ms
        end = (self.beat_end_s - self.beat_start_s) * 1000.0
        p_on, q_on, q_off, t_off = (f[k] for k in ("p_on", "qrs_on", "qrs_off", "t_off"))

        def seg(a: float, b: float) -> list[tuple[float, float]]:
            if math.isfinite(a) and math.isfinite(b) and b > a:
                return [(max(a, 0.0), min(b, end))]
            return []

        return {
            "pr": seg(p_on, q_on),
            "qrs": seg(q_on, q_off),
            "st_t": seg(q_off, t_off),
            "tp": [s for s in seg(t_off, end) + seg(0.0, p_on) if s[1] - s[0] >= MIN_TP_MS],
        }

    def segment_masks(self, length: int | None = None, fs_hz: float | None = None) -> dict[str, np.ndarray]:
        """Boolean masks of the segments over a beat view (default: this analysis's view length and rate)."""
        fs = self.config.out_fs_hz if fs_hz is None else fs_hz
        n = self.view.shape[-1] if length is None else length
        t_ms = np.arange(n) * 1000.0 / fs
        masks = {}
        for name, parts in self.segments_ms.items():
            m = np.zeros(n, dtype=bool)
            for a, b in parts:
                m |= (t_ms >= a) & (t_ms < b)
            masks[name] = m
        return masks

    def completed_measurements(self, device: DeviceMeasurements | None = None) -> DeviceMeasurements:
        """The device's measurements with every missing value filled from this analysis's own."""
        dev = device if device is not None else DeviceMeasurements(**{k: self.device.get(k) for k in DeviceMeasurements.__dataclass_fields__})
        vals = dev.as_dict()
        for key in ("qrs_ms", "p_axis_deg", "r_axis_deg", "t_axis_deg", "hr_bpm", "pr_ms", "qt_ms"):
            mine = self.measured.get(key)
            if vals.get(key) is None and mine is not None and math.isfinite(mine):
                vals[key] = float(mine)
        return DeviceMeasurements(**vals)

    def to_json_dict(self) -> dict:
        """Plain JSON-ready dict (NaN stays NaN; ``print_json_line`` writes it as null).

        ``view``: the configured view (name, rate, samples per lead, and the stretch of the recording it
        shows). ``usable``: False when a blocking flag is set; then ``criteria`` are null, and so is ``measured``
        unless the only blocking flag is ``missing_leads`` (:attr:`measurable`), since numbers from an unusable
        ECG must not be read as findings.
        """
        usable = self.usable
        measurable = self.measurable
        measured = {k: (_r(self.measured.get(k, math.nan), 1) if measurable else math.nan) for k in MEASURED_KEYS}
        criteria = {k: ((_r(v, 3) if isinstance(v, float) else v) if usable else None) for k, v in self.criteria.items()}
        return {
            "path": self.source_path,
            "r_peaks_s": [round(float(t), 4) for t in self.r_peaks_s],
            "beat": {"start_s": _r(self.beat_start_s, 4), "end_s": _r(self.beat_end_s, 4)},
            "flags": list(self.flags),
            "fiducials_ms": {k: _r(self.fiducials_ms[k], 1) for k in FIDUCIAL_NAMES},
            "measured": measured,
            "criteria": criteria,
            "usable": usable,
            "view": {
                "name": self.config.view,
                "fs_hz": self.config.out_fs_hz,
                "n_samples": int(self.view.shape[-1]),
                "start_s": _r(self.view_span_s[0], 4),
                "end_s": _r(self.view_span_s[1], 4),
            },
        }


def _beat_and_delineation_window(filtered, fs, r_peaks, r, config):
    """The beat shown/returned (the chosen window, median or single as configured) and the wider beat the
    fiducials are searched in (``DELINEATION_BEFORE_S`` .. ``DELINEATION_AFTER_S``), with its R index.
    The wider beat falls back to the chosen window when the record is too short for it."""
    nb, na = round(config.beat_before_s * fs), round(config.beat_after_s * fs)
    db, da = round(max(DELINEATION_BEFORE_S, config.beat_before_s) * fs), round(max(DELINEATION_AFTER_S, config.beat_after_s) * fs)
    n = filtered.shape[-1]
    if config.fiducials_from == "median_beat":
        try:
            wide = median_template(filtered, fs, r_peaks, db / fs, da / fs)
        except NoBeatError:
            beat = median_template(filtered, fs, r_peaks, config.beat_before_s, config.beat_after_s)
            return beat, beat, nb
        if complete_beats(r_peaks, n, fs, db / fs, da / fs).size >= max(3, complete_beats(r_peaks, n, fs, nb / fs, na / fs).size - 2):
            return np.ascontiguousarray(wide[:, db - nb : db + na]), wide, db
        beat = median_template(filtered, fs, r_peaks, config.beat_before_s, config.beat_after_s)
        return beat, beat, nb
    beat = filtered[:, r - nb : r + na].astype(np.float64)
    if r - db >= 0 and r + da <= n:
        return beat, filtered[:, r - db : r + da].astype(np.float64), db
    return beat, beat, nb


def band_passed_at_delineation_rate(signal_mv: np.ndarray, fs_hz: float, low_hz: float, high_hz: float,
                                    notch_hz: float | None = None) -> np.ndarray:
    """The raw (12, n) record band-passed at :data:`DELINEATION_FS_HZ`: what the delineation would have seen
    had the cart recorded at that rate (at that rate, just :func:`~elvmass.signal.filters.bandpass_filter`).
    At another rate it is resampled first, each lead's mean taken off (a gap set to it): the polyphase
    resampler pads with zeros, so a lead's offset would otherwise become a transient at the record's edges,
    and the band-pass removes the mean anyway."""
    if abs(fs_hz - DELINEATION_FS_HZ) < 1e-9:
        return bandpass_filter(signal_mv, fs_hz, low_hz, high_hz, notch_hz)
    raw = np.asarray(signal_mv, dtype=np.float64)
    if np.isfinite(raw).all():
        x = raw - raw.mean(axis=-1, keepdims=True)
    else:
        with warnings.catch_warnings():  # a lead with no finite sample: all NaN, filled with 0
            warnings.simplefilter("ignore", RuntimeWarning)
            mean = np.nan_to_num(np.nanmean(raw, axis=-1, keepdims=True))
        x = np.where(np.isfinite(raw), raw - mean, 0.0)
    return bandpass_filter(resample_signal(x, fs_hz, DELINEATION_FS_HZ), DELINEATION_FS_HZ, low_hz, high_hz, notch_hz)


def at_delineation_rate(signal_mv: np.ndarray, filtered_mv: np.ndarray, fs_hz: float, r_peaks: np.ndarray,
                        config: SignalConfig = SignalConfig()) -> tuple[np.ndarray, float, np.ndarray]:
    """The band-passed record and its R peaks at :data:`DELINEATION_FS_HZ`. At that rate, ``filtered_mv`` and
    ``r_peaks`` unchanged; otherwise :func:`band_passed_at_delineation_rate` of the raw ``signal_mv``, and
    each R peak moved to the maximum of the combined leads within ``ceil(500 / fs_hz)`` samples (at 500 Hz) of
    where it maps (one original sample at 100 or 250 Hz, at most two at higher rates), so the median beat's
    beats line up to the finer rate; a beat whose window (``config.beat_before_s`` .. ``beat_after_s``) fits
    in the record at its own rate is kept inside it here. One peak per original peak, in the same order.

        >>> x = np.zeros((12, 2500), dtype=np.float32); x[:, 1000] = 1.0
        >>> up, fs, r = at_delineation_rate(x, x, 250.0, np.array([1001]))
        >>> up.shape, fs, r.tolist()
        ((12, 5000), 500.0, [2000])
    """
    if abs(fs_hz - DELINEATION_FS_HZ) < 1e-9:
        return filtered_mv, fs_hz, r_peaks
    up = band_passed_at_delineation_rate(signal_mv, fs_hz, config.low_hz, config.high_hz, config.notch_hz)
    n_up = up.shape[-1]
    scale = DELINEATION_FS_HZ / fs_hz
    r = np.asarray(r_peaks, dtype=np.int64)
    peaks = np.clip(np.round(r * scale).astype(np.int64), 0, n_up - 1)
    if peaks.size:
        half = max(1, int(math.ceil(scale)))
        combined = combine_leads(up)
        idx = np.clip(peaks[:, None] + np.arange(-half, half + 1)[None, :], 0, n_up - 1)
        peaks = idx[np.arange(idx.shape[0]), np.argmax(combined[idx], axis=1)].astype(np.int64)
        nb, na = round(config.beat_before_s * fs_hz), round(config.beat_after_s * fs_hz)
        nb_up, na_up = round(config.beat_before_s * DELINEATION_FS_HZ), round(config.beat_after_s * DELINEATION_FS_HZ)
        fits = (r - nb >= 0) & (r + na <= np.asarray(filtered_mv).shape[-1])
        if nb_up <= n_up - na_up:
            peaks = np.where(fits, np.clip(peaks, nb_up, n_up - na_up), peaks)
    return up, DELINEATION_FS_HZ, peaks


def _p_and_t_flags(fid, filtered, fs, r_peaks, dl_mv, nd) -> list[str]:
    """``no_p_wave:not_found`` / ``no_p_wave:not_locked_to_qrs`` (AF-like) and ``t_off_not_found``."""
    out = []
    why = p_wave_absent(filtered, fs, r_peaks, dl_mv, nd, fid)
    if why is not None:
        out.append(f"no_p_wave:{why}")
    if math.isfinite(fid["qrs_on"]) and not math.isfinite(fid["t_off"]):
        out.append("t_off_not_found")
    return out


def _hybrid_p_on(record, filtered_d, fs_d, r, nd, fid, config) -> float:
    """The rules' P onset (samples of the delineation beat, R at ``nd``) averaged with the network's on the chosen
    beat (R at ``r`` in ``filtered_d``; :mod:`elvmass.signal.p_onset_net`). The network gets the record
    band-passed its own way (0.5-40 Hz, no notch) when the pipeline's band differs."""
    if not (math.isfinite(fid["p_on"]) and math.isfinite(fid["qrs_on"])):
        return fid["p_on"]
    if (config.low_hz, config.high_hz, config.notch_hz) != NET_BAND:
        filtered_d = band_passed_at_delineation_rate(record.signal_mv, record.fs_hz, *NET_BAND)
    missing = record.missing_leads  # (a partial record: the network's mean P probability is over the leads it has)
    leads = [i for i, name in enumerate(LEADS) if name not in missing] if missing else None
    net_on = network_p_onset(filtered_d, fs_d, r, r + fid["qrs_on"] - nd, leads=leads)
    return hybrid_p_onset(fid["p_on"], net_on + (nd - r), fs_d)


def _r(v, nd: int):
    return round(float(v), nd) if v is not None and math.isfinite(float(v)) else math.nan


#: ``fiducials_fn(record, filtered_mv, fs_hz, r_peaks, delineation_beat_mv, r_index, rr_s, r_sample) -> dict`` of
#: :data:`FIDUCIAL_NAMES` in samples of the delineation beat (``r_index``: its R peak; ``r_sample``: the chosen
#: beat's R peak in ``filtered_mv``; ``filtered_mv``, ``fs_hz`` and ``r_peaks`` are at :data:`DELINEATION_FS_HZ`,
#: ``record`` at its own rate): what :func:`analyze_ecg` calls instead of the
#: rule-based :func:`~elvmass.signal.fiducials.locate_fiducials` when it is given one (a higher layer's
#: delineator, e.g. :func:`elvmass.segment.delineate.segment_fiducials`; the signal layer imports none).
FiducialsFn = Callable[..., dict]


def analyze_ecg(record: ECGRecord, config: SignalConfig = SignalConfig(), rng: np.random.Generator | None = None,
                fiducials_fn: FiducialsFn | None = None) -> ECGAnalysis:
    """Filter, find R peaks, cut the synchronized beat and the configured view, check quality, locate
    fiducials, measure QRS duration and axes, and evaluate the voltage criteria.

    Never raises for a bad signal: problems become ``flags`` (and NaN values), so a flagged ECG is
    reported rather than silently used or dropped. The delineation is the rules' of
    :func:`~elvmass.signal.fiducials.locate_fiducials`, with the P onset ``config.p_onset`` says (by default the
    rules' averaged with a small network's, :mod:`elvmass.signal.p_onset_net`). ``fiducials_fn`` (see
    :data:`FiducialsFn`) replaces all of it; the P-wave checks (``no_p_wave:*``), measurements and criteria that
    follow are the same for either.
    """
    if not isinstance(record, ECGRecord):
        raise TypeError(f"analyze_ecg needs an ECGRecord (see elvmass.read_ecg), got {type(record).__name__}")
    fs = record.fs_hz
    flags = list(record.flags)
    fid_ms = {k: math.nan for k in FIDUCIAL_NAMES}
    measured = {k: math.nan for k in MEASURED_KEYS}
    criteria = {k: (None if k.endswith(("_positive", "_probable")) else math.nan) for k in CRITERIA_KEYS}
    beat_mv = None
    start_s = end_s = math.nan
    if record.signal_mv.shape[-1] < MIN_FILTER_SAMPLES:  # a stub of a record: nothing to filter or cut
        flags += [f for f in ("too_few_beats", "no_beat") if f not in flags]
        return ECGAnalysis(
            r_peaks_s=np.zeros(0), beat_start_s=start_s, beat_end_s=end_s, flags=tuple(flags), fiducials_ms=fid_ms,
            measured=measured, criteria=criteria, view=np.full((12, config.view_length), np.nan, dtype=np.float32),
            fs_hz=fs, config=config, source_path=record.source_path, sex=record.patient.sex,
            device=record.measurements.as_dict(),
        )
    filtered = bandpass_filter(record.signal_mv, fs, config.low_hz, config.high_hz, config.notch_hz)
    r_peaks = _peaks_on_combined(combine_leads(filtered), fs)
    beat, median_corr = _choose_beat(filtered, fs, r_peaks, config.beat_before_s, config.beat_after_s)
    missing = set(record.missing_leads)  # (a partial record's absent leads: flagged missing once, not also flat)
    flags += [f for f in assess_quality(record.signal_mv, filtered, fs, r_peaks, beat_correlation=median_corr,
                                        notch_hz=config.notch_hz)
              if f not in flags and f.partition(":")[2] not in missing]

    view_span = (math.nan, math.nan)
    beat_fs_hz = DELINEATION_FS_HZ
    try:
        view, view_span = view_and_span(filtered, fs, r_peaks, beat, config, rng)
    except NoBeatError:
        view = np.full((12, config.view_length), np.nan, dtype=np.float32)
    if r_peaks.size >= 2:  # as carts report it: 60 / mean RR
        measured["hr_bpm"] = 60.0 / float(np.mean(np.diff(r_peaks)) / fs)
    if beat < 0:
        flags.append("no_beat")
    else:
        # delineation and measurements at DELINEATION_FS_HZ, whatever the record's rate
        filtered_d, fs_d, r_peaks_d = at_delineation_rate(record.signal_mv, filtered, fs, r_peaks, config)
        beat_fs_hz = fs_d
        nb, r_own = round(config.beat_before_s * fs), int(r_peaks[beat])
        start_s = (r_own - nb) / fs  # the beat window (and the view) at the record's rate
        end_s = start_s + config.beat_before_s + config.beat_after_s
        r = int(r_peaks_d[beat])
        # the delineation's R peak, in ms from the window's start (beat_before_s at 500 Hz; at other rates
        # the window starts on a sample of the record's rate, and the R peak was refined at 500 Hz)
        r_ms = (r / fs_d - r_own / fs) * 1000.0 + nb * 1000.0 / fs
        rr_s = median_1d(np.diff(r_peaks_d)) / fs_d if r_peaks_d.size >= 2 else None
        try:
            beat_mv, dl_mv, nd = _beat_and_delineation_window(filtered_d, fs_d, r_peaks_d, r, config)
        except NoBeatError:  # the chosen beat is kept inside the record at 500 Hz, so not expected; never raise
            flags.append("no_beat")
            start_s = end_s = math.nan
        if beat_mv is not None:
            if fiducials_fn is None:
                fid = locate_fiducials(dl_mv, fs_d, nd, rr_s)
                if config.p_onset == "hybrid":
                    fid["p_on"] = _hybrid_p_on(record, filtered_d, fs_d, r, nd, fid, config)
            else:
                found = fiducials_fn(record, filtered_d, fs_d, r_peaks_d, dl_mv, nd, rr_s, r)  # once: it may run a network
                fid = {k: float(found.get(k, math.nan)) for k in FIDUCIAL_NAMES}
            flags += _p_and_t_flags(fid, filtered_d, fs_d, r_peaks_d, dl_mv, nd)
            if any(f.startswith("no_p_wave") for f in flags):
                fid["p_on"] = fid["p_off"] = math.nan
            # fiducials in ms from the beat window's start (a long-PR P onset may be negative: before the window)
            fid_ms = {k: (fid[k] - nd) * 1000.0 / fs_d + r_ms for k in FIDUCIAL_NAMES}
            measured.update(measure_beat(dl_mv, fs_d, fid))
            criteria = voltage_criteria(dl_mv, fs_d, {k: fid[k] * 1000.0 / fs_d for k in FIDUCIAL_NAMES}, record.patient.sex)
    return ECGAnalysis(
        r_peaks_s=r_peaks / fs,
        beat_start_s=float(start_s),
        beat_end_s=float(end_s),
        flags=tuple(flags),
        fiducials_ms=fid_ms,
        measured=measured,
        criteria=criteria,
        view=view,
        fs_hz=fs,
        beat_mv=None if beat_mv is None else beat_mv.astype(np.float32),
        beat_fs_hz=beat_fs_hz,
        config=config,
        view_span_s=(float(view_span[0]), float(view_span[1])),
        source_path=record.source_path,
        sex=record.patient.sex,
        device=record.measurements.as_dict(),
    )
