"""Fiducial points of one beat from all leads at once, and the measurements that follow from them.

Global fiducials across leads are far more accurate than any one lead's: a lead whose QRS vector is
perpendicular to it shows a late, small onset. Everything works on the band-passed median beat, on
multi-lead curves of the 8 independent leads (I, II, V1-V6) or, for QRS onset, on the per-lead onsets of
the clearly deflecting leads combined into one, in a *delineation window* wider than the
model's beat window (``DELINEATION_BEFORE_S`` .. ``DELINEATION_AFTER_S`` around the R peak) so a P wave
far before the QRS (first-degree AV block) is still inside it; every search is bounded by the RR interval
so it never runs into the neighbouring beat.

===========  ==========================================================================================
boundary     method
===========  ==========================================================================================
QRS on       the weighted mean (``QRS_ON_SLOPE_WEIGHT``) of two onsets that err nearly independently:
             the *slope onset*, per lead where the lead's own slope ``|dx/dt|`` last rises above
             ``QRS_ON_FRACTION`` of its QRS maximum (held ``HOLD_MS``), over the 12 leads whose steepest
             QRS slope is at least ``QRS_LEAD_MIN_FRACTION`` of the steepest lead's, taking the
             ``QRS_ON_QUANTILE`` quantile of those onsets (where the earliest third of the clearly
             deflecting leads have started, as cardiologists mark it looking at all leads); and the
             *magnitude knee*, the trapezium rule on the spatial magnitude from its steepest rise into
             the QRS, less its mean lag ``QRS_KNEE_LAG_MS``
QRS off      *spatial velocity* ``v(t) = sqrt(sum_leads (dx/dt)^2)``: the J point where ``v`` first falls
             below ``QRS_OFF_FRACTION`` of its QRS maximum after the last sample above
             ``QRS_TERMINAL_FRACTION`` (so a slower terminal R' of a bundle branch block is inside the
             QRS), held ``HOLD_MS`` (a notch inside the QRS does not end it)
T off        trapezium-area method (Vazquez-Seisdedos et al., IEEE TBME 58:2867, 2011) on the *spatial
             magnitude* ``m(t) = sqrt(sum_leads (x - baseline)^2)`` (smoothed ``T_SMOOTH_MS``): from the
             steepest descent after the T peak (``xm``) to ``xr`` = ``xm`` + ``T_REACH_MS``, the point that
             maximises the trapezium area; searched up to ``T_SEARCH_RR_FRACTION`` of RR after R, so it
             never runs into the next beat (not found there: NaN)
P on/off     the same trapezium rule on ``m`` (smoothed ``P_SMOOTH_MS``) each side of the most prominent
             hump between the previous beat's T end and the QRS onset (at most ``P_SEARCH_MS`` before it:
             long PR), prominence >= ``P_MIN_MV``. ``m`` >= 0, so either polarity and biphasic P waves work
P absent     :func:`p_wave_absent`: no hump (``not_found``), or the beats disagree on it
             (``not_locked_to_qrs``, atrial fibrillation): the median correlation of each beat's detrended
             P segment with the median beat's is below ``P_CONSISTENCY_MIN``, or below
             ``P_CONSISTENCY_IRREGULAR`` when successive RR intervals differ (> ``P_IRREGULAR_DRR``)
===========  ==========================================================================================

Axes follow the device convention: ``atan2(net aVF, net I)`` of the net area in the QRS (R axis), the
delineated P wave (P axis) and ST-T (T axis) windows, in degrees in (-180, 180].

    >>> import numpy as np
    >>> from elvmass.signal.fiducials import frontal_axis_deg
    >>> frontal_axis_deg(net_i=1.0, net_avf=1.0)
    45.0
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
from scipy.signal import find_peaks

from elvmass.median import median_1d
from elvmass.record import LEAD_INDEX

INDEPENDENT = np.array([0, 1, 6, 7, 8, 9, 10, 11])
QRS_ON_FRACTION = 0.03
QRS_OFF_FRACTION = 0.10
#: the QRS's strong slopes: the onset is searched back from the first sample of ``v`` above
#: ``QRS_STRONG_FRACTION`` of its maximum
QRS_STRONG_FRACTION = 0.3
#: the offset is searched forward from the last sample above ``QRS_TERMINAL_FRACTION`` (1.5 x the offset
#: threshold): a terminal wave slower than the main deflections (the R' of a right bundle branch block,
#: after a dip of ``v`` between R and R') is part of the QRS, not past its end
QRS_TERMINAL_FRACTION = 0.15
#: QRS onset per lead: the leads whose steepest QRS slope is at least this fraction of the steepest lead's
#: (a lead seeing the QRS edge-on starts late and small) ...
QRS_LEAD_MIN_FRACTION = 0.5
#: ... and the quantile of their onsets taken as the global onset (the earliest lead alone would follow
#: one noisy lead). Both chosen on the tuning part of LUDB (odd records), in the middle of a plateau:
#: fractions 0.4-0.6 and quantiles 0.3-0.35 give 92-94 % of QRS onsets within tolerance there, the
#: median (0.5) 82 %, the spatial velocity 84 % (docs/delineation.md)
QRS_ON_QUANTILE = 0.3
#: QRS onset is a weighted mean of two estimates whose errors are nearly independent (their correlation
#: on the tuning part is 0.15): the per-lead *slope* onset above (weight ``QRS_ON_SLOPE_WEIGHT``) and the
#: *knee* where the spatial magnitude (smoothed ``QRS_KNEE_SMOOTH_MS``) turns up into the QRS, by the
#: trapezium rule from its steepest rise before R with the far point ``QRS_KNEE_REACH_MS`` back, moved
#: earlier by its mean lag behind the annotated onset on the tuning part (``QRS_KNEE_LAG_MS``). Chosen on
#: the tuning part from a plateau (docs/delineation.md): smoothing 4-20 ms x reach 20-50 ms x weight
#: 0.6-0.8 give 92-96 % of onsets within tolerance, leave-one-out over the lag (the slope onset alone 92 %)
QRS_ON_SLOPE_WEIGHT = 0.7
QRS_KNEE_SMOOTH_MS = 8.0
QRS_KNEE_REACH_MS = 40.0
QRS_KNEE_LAG_MS = 14.6
HOLD_MS = 8.0
QRS_ON_REACH_MS = 50.0
QRS_SEARCH_MS = 150.0
P_MIN_MV = 0.025
T_MIN_MV = 0.05
#: Thresholds tuned on LUDB's odd-numbered records and the PTB-XL sample; the even-numbered LUDB records are
#: the held-out report part of benchmarks/bench_delineation.py (see docs/delineation.md).
#: window of the median beat the fiducials are searched in (s before / after the R peak)
DELINEATION_BEFORE_S = 0.6
DELINEATION_AFTER_S = 0.7
#: T end is searched up to this fraction of RR after the R peak (never into the next beat)
T_SEARCH_RR_FRACTION = 0.75
T_SEARCH_MAX_MS = 650.0
#: P is searched at most this long before QRS onset
P_SEARCH_MS = 480.0
#: P onset is looked for at most this long before the P peak
P_MAX_HALF_MS = 120.0
P_CONSISTENCY_MIN = 0.75
#: with irregular RR (median |successive RR difference| / mean RR above P_IRREGULAR_DRR), a P wave needs
#: this consistency across beats
P_IRREGULAR_DRR = 0.1
P_CONSISTENCY_IRREGULAR = 0.88
#: trapezium far point: at most this far past the steepest descent of T / slope of P
T_REACH_MS = 80.0
P_ON_REACH_MS = 60.0
P_OFF_REACH_MS = 40.0
#: smoothing of the spatial magnitude for T / P (ms)
T_SMOOTH_MS = 20.0
P_SMOOTH_MS = 8.0

FIDUCIAL_NAMES = ("p_on", "p_off", "qrs_on", "qrs_off", "t_off")


def _moving_average(x: np.ndarray, width: int) -> np.ndarray:
    if width <= 1:
        return x
    kernel = np.ones(width) / width
    return np.convolve(x, kernel, mode="same")


def _first_run(mask: np.ndarray, hold: int) -> int:
    """Index of the first True that starts a run of at least ``hold`` Trues (or -1)."""
    if mask.size == 0:
        return -1
    if hold <= 1:
        hits = np.flatnonzero(mask)
        return int(hits[0]) if hits.size else -1
    c = np.convolve(mask.astype(np.int32), np.ones(hold, dtype=np.int32), mode="valid")
    hits = np.flatnonzero(c >= hold)
    return int(hits[0]) if hits.size else -1


def spatial_velocity(beat_mv: np.ndarray, fs_hz: float) -> np.ndarray:
    """sqrt(sum over the 8 independent leads of the squared derivative), mV/s, smoothed over ~8 ms."""
    x = np.asarray(beat_mv, dtype=np.float64)[INDEPENDENT]
    d = np.gradient(x, axis=1) * fs_hz
    v = np.sqrt(np.einsum("ij,ij->j", d, d))
    return _moving_average(v, max(1, int(round(0.008 * fs_hz))))


def trapezium_end(curve: np.ndarray, xm: int, xr: int) -> float:
    """Vazquez-Seisdedos trapezium rule: the ``xi`` between ``xm`` (steepest fall) and ``xr`` (a point
    where the wave is surely over) that maximises ``(curve[xm] - curve[xi]) * |2 xr - xi - xm| / 2``.
    Works either way (``xr < xm`` for an onset). NaN for an empty range.

    >>> c = np.r_[np.linspace(1, 0, 11), np.zeros(10)]
    >>> trapezium_end(c, 2, 20)
    10.0
    """
    if xr == xm:
        return math.nan
    step = 1 if xr > xm else -1
    idx = np.arange(xm, xr + step, step)
    area = (curve[xm] - curve[idx]) * np.abs(2 * xr - idx - xm)
    return float(idx[int(np.argmax(area))])


def _wave_bounds(m: np.ndarray, lo: int, hi: int, peak: int, reach: int | None = None,
                 reach_on: int | None = None) -> tuple[float, float]:
    """Onset and offset of the wave peaking at ``peak`` in ``m[lo:hi]``, by the trapezium rule each side;
    ``reach`` (samples) limits how far past the steepest slope the far point ``xr`` is put."""
    slope = np.gradient(m)
    if peak - lo >= 2:
        xm_on = lo + int(np.argmax(slope[lo:peak]))
        r_on = reach if reach_on is None else reach_on
        xr = lo if r_on is None else max(lo, xm_on - r_on)
        on = trapezium_end(m, xm_on, xr)
    else:
        on = math.nan
    if hi - peak >= 3:
        xm_off = peak + int(np.argmin(slope[peak:hi]))
        xr = hi - 1 if reach is None else min(hi - 1, xm_off + reach)
        off = trapezium_end(m, xm_off, xr)
    else:
        off = math.nan
    return on, off


def _quantile(v: list[float], q: float) -> float:
    """``np.quantile(v, q)`` (linear) of a short sorted list, with NumPy's interpolation arithmetic."""
    h = (len(v) - 1) * q
    i = min(int(math.floor(h)), len(v) - 1)
    t = h - i
    a, b = float(v[i]), float(v[min(i + 1, len(v) - 1)])
    return a + (b - a) * t if t < 0.5 else b - (b - a) * (1 - t)


def _qrs_onset_across_leads(x: np.ndarray, fs_hz: float, lo: int, hi: int, hold: int) -> float:
    """The ``QRS_ON_QUANTILE`` quantile of the per-lead QRS onsets (samples) of the leads that deflect
    clearly, all leads at once.

    Per lead, on its slope ``|dx/dt|`` smoothed over ~8 ms as the spatial velocity is: the last sample
    before the first one above ``QRS_STRONG_FRACTION`` of the lead's maximum in [lo, hi) that ends a run of
    ``hold`` samples below ``QRS_ON_FRACTION`` of it, looking back at most ``QRS_ON_REACH_MS``; where the
    slope never drops that low (a P wave merging into the QRS), the slowest point there."""
    ms = fs_hz / 1000.0
    width = max(1, int(round(0.008 * fs_hz)))
    margin = width + 1  # the slopes inside [lo, hi) as on the whole beat
    a, b = max(0, lo - margin), min(x.shape[1], hi + margin)
    slope = np.abs(np.gradient(x[:, a:b], axis=1)) * fs_hz
    if width > 1:  # np.convolve(.., ones(width) / width, "same") of each lead, as a running sum
        left = width - (width - 1) // 2
        c = np.zeros((slope.shape[0], slope.shape[1] + width))
        np.cumsum(slope, axis=1, out=c[:, left : left + slope.shape[1]])
        c[:, left + slope.shape[1] :] = c[:, left + slope.shape[1] - 1 : left + slope.shape[1]]
        slope = (c[:, width:] - c[:, :-width]) / width
    seg = slope[:, lo - a : hi - a]
    peak = seg.max(axis=1)
    if not peak.max() > 0:
        return math.nan
    leads = np.flatnonzero(peak >= QRS_LEAD_MIN_FRACTION * peak.max())
    seg, peak = seg[leads], peak[leads, None]
    n = seg.shape[1]
    first_strong = np.argmax(seg > QRS_STRONG_FRACTION * peak, axis=1)
    lo_on = np.maximum(0, first_strong - int(round(QRS_ON_REACH_MS * ms)))
    below = np.cumsum(seg < QRS_ON_FRACTION * peak, axis=1)  # run of `hold` below-threshold samples ending at j
    ends_run = below.copy()
    ends_run[:, hold:] -= below[:, :-hold]
    ends_run = ends_run >= hold
    j = np.arange(n)
    ok = ends_run & (j <= first_strong[:, None]) & (j - hold + 1 >= lo_on[:, None])
    last = n - 1 - np.argmax(ok[:, ::-1], axis=1)
    onsets = np.where(ok.any(axis=1), last, -1)
    for i in np.flatnonzero(onsets < 0):  # never low enough: the slowest point of the look-back
        onsets[i] = lo_on[i] + int(np.argmin(seg[i, lo_on[i] : first_strong[i] + 1]))
    return _quantile(sorted((onsets + lo).tolist()), QRS_ON_QUANTILE)


def _qrs_onset_knee(x: np.ndarray, fs_hz: float, slope_on: float, r_index: int, lo: int) -> float:
    """Where the spatial magnitude (relative to the PR level before ``slope_on``) turns up into the QRS:
    the trapezium rule from its steepest rise between ``slope_on`` and the R peak back to
    ``QRS_KNEE_REACH_MS`` before it (not before ``lo``). An amplitude criterion, where the slope onset is a
    slope one, so the two err differently. NaN when there is no rise to look back from."""
    a = int(round(slope_on)) if math.isfinite(slope_on) else -1
    if not 1 <= a < r_index:
        return math.nan
    m = spatial_magnitude(x, fs_hz, slope_on, QRS_KNEE_SMOOTH_MS)
    xm = a + int(np.argmax(np.gradient(m[a - 1 : r_index + 2])[1:-1]))
    return trapezium_end(m, xm, max(lo, xm - int(round(QRS_KNEE_REACH_MS * fs_hz / 1000.0))))


def qrs_bounds(beat_mv: np.ndarray, fs_hz: float, r_index: int) -> tuple[float, float]:
    """QRS onset (the weighted mean of the per-lead slope onset, :func:`_qrs_onset_across_leads`, and the
    magnitude knee, :func:`_qrs_onset_knee`) and offset (from the spatial velocity), in samples, of a
    (12, W) band-passed beat."""
    x = np.asarray(beat_mv, dtype=np.float64)
    n = x.shape[1]
    ms = fs_hz / 1000.0
    hold = max(1, int(round(HOLD_MS * ms)))
    lo = max(1, r_index - int(QRS_SEARCH_MS * ms))
    hi = min(n - 1, r_index + int(QRS_SEARCH_MS * ms))
    if hi - lo < 4:
        return math.nan, math.nan
    v = spatial_velocity(x, fs_hz)
    seg = v[lo:hi]
    vmax = float(seg.max())
    if vmax <= 0:
        return math.nan, math.nan
    last_strong = int(np.flatnonzero(seg > QRS_TERMINAL_FRACTION * vmax)[-1]) + lo
    qrs_on = _qrs_onset_across_leads(x, fs_hz, lo, hi, hold)
    knee = _qrs_onset_knee(x, fs_hz, qrs_on, r_index, lo)
    if math.isfinite(knee):
        qrs_on = QRS_ON_SLOPE_WEIGHT * qrs_on + (1.0 - QRS_ON_SLOPE_WEIGHT) * (knee - QRS_KNEE_LAG_MS * ms)
    fwd = v[last_strong:hi] < QRS_OFF_FRACTION * vmax
    k = _first_run(fwd, hold)
    qrs_off = last_strong + k if k >= 0 else last_strong + int(np.argmin(v[last_strong:hi]))
    return float(qrs_on), float(qrs_off)


def spatial_magnitude(beat_mv: np.ndarray, fs_hz: float, qrs_on: float, smooth_ms: float = 20.0) -> np.ndarray:
    """sqrt(sum over the 8 independent leads of the squared deviation from the PR level), smoothed."""
    x = np.asarray(beat_mv, dtype=np.float64)
    baseline = isoelectric_levels(x, fs_hz, qrs_on)
    dev = x[INDEPENDENT] - baseline[INDEPENDENT, None]
    m = np.sqrt(np.einsum("ij,ij->j", dev, dev))
    return _moving_average(m, max(1, int(round(smooth_ms * fs_hz / 1000.0))))


def locate_fiducials(beat_mv: np.ndarray, fs_hz: float, r_index: int, rr_s: float | None = None) -> dict[str, float]:
    """P onset/offset, QRS onset/offset and T offset of a (12, W) band-passed beat, as sample indices (float).

    ``r_index`` is the R peak's sample in the beat; ``rr_s`` the record's RR interval (bounds the T and P
    searches so they stay inside this beat; without it the searches use the window). A point that cannot
    be found (no P wave, a T wave past the search) is NaN, never a window edge.
    """
    x = np.asarray(beat_mv, dtype=np.float64)
    n = x.shape[1]
    ms = fs_hz / 1000.0
    out = {name: math.nan for name in FIDUCIAL_NAMES}
    qrs_on, qrs_off = qrs_bounds(x, fs_hz, r_index)
    if not math.isfinite(qrs_on):
        return out
    out["qrs_on"], out["qrs_off"] = qrs_on, qrs_off
    q_on, q_off = int(qrs_on), int(qrs_off)
    m = spatial_magnitude(x, fs_hz, qrs_on, T_SMOOTH_MS)

    # T: from 60 ms after the J point to a fraction of RR after R (the next beat's P/QRS stays outside)
    t_stop_ms = T_SEARCH_MAX_MS if rr_s is None else min(T_SEARCH_MAX_MS, T_SEARCH_RR_FRACTION * rr_s * 1000.0)
    t_start = q_off + int(round(60 * ms))
    t_stop = min(n, r_index + int(round(t_stop_ms * ms)))
    if t_stop - t_start >= int(round(80 * ms)):
        t_peak = t_start + int(np.argmax(m[t_start:t_stop]))
        if m[t_peak] >= T_MIN_MV and t_stop - t_peak >= 3:
            _, t_off = _wave_bounds(m, t_start, t_stop, t_peak, int(round(T_REACH_MS * ms)))
            if math.isfinite(t_off) and t_off < t_stop - 1:
                out["t_off"] = t_off

    # P: between the previous beat's T end (this beat's T end one RR earlier) and the QRS onset
    p_lo = q_on - int(round(P_SEARCH_MS * ms))
    if rr_s is not None and math.isfinite(out["t_off"]):
        p_lo = max(p_lo, int(out["t_off"] - rr_s * fs_hz) + int(round(20 * ms)))
    elif rr_s is not None:
        p_lo = max(p_lo, r_index - int(round(0.6 * rr_s * fs_hz)))
    p_lo = max(0, p_lo)
    p_hi = q_on - int(round(10 * ms))
    if p_hi - p_lo >= int(round(60 * ms)):
        m = spatial_magnitude(x, fs_hz, qrs_on, P_SMOOTH_MS)
        # the P wave is the most prominent hump between the previous T wave and the QRS (a T-wave tail or
        # a U wave at the search start is higher in level but has little prominence)
        peaks, props = find_peaks(m[p_lo:p_hi], prominence=P_MIN_MV)
        if peaks.size:
            p_peak = p_lo + int(peaks[int(np.argmax(props["prominences"]))])
            lo = max(p_lo, p_peak - int(round(P_MAX_HALF_MS * ms)))
            on, off = _wave_bounds(m, lo, p_hi, p_peak, int(round(P_OFF_REACH_MS * ms)), int(round(P_ON_REACH_MS * ms)))
            if math.isfinite(on) and math.isfinite(off) and off - on >= 30 * ms:
                out["p_on"], out["p_off"] = on, off
    return out


@lru_cache(maxsize=512)
def _line_basis(w: int) -> tuple[np.ndarray, np.ndarray]:
    """A straight line over ``w`` samples: its basis (2, w) and the least-squares projection (2, w) onto it
    (the same few widths recur from ECG to ECG, so each is computed once)."""
    t = np.linspace(-1.0, 1.0, w)
    basis = np.stack([np.ones(w), t])
    proj = np.linalg.pinv(basis.T)
    basis.flags.writeable = proj.flags.writeable = False
    return basis, proj


def p_wave_consistency(filtered_mv: np.ndarray, r_peaks: np.ndarray, template: np.ndarray, r_index: int,
                       p_on: float, p_off: float) -> float:
    """Median over beats of the correlation between each beat's P segment (8 leads, relative to its R
    peak) and the median beat's. Near 1 when every beat has the P wave; low when the atrial activity is
    not locked to the QRS (atrial fibrillation). NaN with fewer than 3 beats."""
    if not (math.isfinite(p_on) and math.isfinite(p_off)):
        return math.nan
    x = np.asarray(filtered_mv)
    a, b = int(round(p_on)) - r_index, int(round(p_off)) - r_index
    r = np.asarray(r_peaks, dtype=np.int64)
    r = r[(r + a >= 0) & (r + b < x.shape[-1])]
    if r.size < 3 or b - a < 3:
        return math.nan
    idx = r[:, None] + np.arange(a, b + 1)[None, :]
    seg = x[INDEPENDENT][:, idx].transpose(1, 0, 2).astype(np.float64)  # (beats, 8, w)
    # remove each lead's straight line through the segment: a T-wave tail or a QRS upstroke in it is a
    # slope every beat shares, not evidence of a P wave
    basis, proj = _line_basis(b - a + 1)
    seg = seg - np.einsum("bik,kw->biw", np.einsum("biw,kw->bik", seg, proj), basis)
    tpl = np.asarray(template, dtype=np.float64)[INDEPENDENT, r_index + a : r_index + b + 1]
    tpl = tpl - (tpl @ proj.T) @ basis
    num = np.einsum("bij,ij->b", seg, tpl)
    den = np.sqrt(np.einsum("bij,bij->b", seg, seg) * np.einsum("ij,ij->", tpl, tpl)) + 1e-12
    return median_1d(num / den)


def p_wave_absent(filtered_mv: np.ndarray, fs_hz: float, r_peaks: np.ndarray, template: np.ndarray, r_index: int,
                  fid: dict[str, float]) -> str | None:
    """Why the record has no P wave (``"not_found"``, ``"not_locked_to_qrs"``), or None when it has one.

    Not locked: the beats disagree on the P segment (:func:`p_wave_consistency` below
    ``P_CONSISTENCY_MIN``), or the rhythm is irregular (median |successive RR difference| over the mean RR
    above ``P_IRREGULAR_DRR``, as in atrial fibrillation) and the consistency is below
    ``P_CONSISTENCY_IRREGULAR`` (a sinus arrhythmia keeps P waves that all look alike).
    """
    if not (math.isfinite(fid.get("p_on", math.nan)) and math.isfinite(fid.get("p_off", math.nan))):
        return "not_found"
    c = p_wave_consistency(filtered_mv, r_peaks, template, r_index, fid["p_on"], fid["p_off"])
    if not math.isfinite(c):
        return None
    rr = np.diff(np.asarray(r_peaks, dtype=np.float64))
    drr = median_1d(np.abs(np.diff(rr))) / float(rr.mean()) if rr.size >= 3 else 0.0
    if c < P_CONSISTENCY_MIN or (drr > P_IRREGULAR_DRR and c < P_CONSISTENCY_IRREGULAR):
        return "not_locked_to_qrs"
    return None


def frontal_axis_deg(net_i: float, net_avf: float) -> float:
    """Frontal-plane axis from net deflections in leads I and aVF, degrees in (-180, 180]."""
    if not (math.isfinite(net_i) and math.isfinite(net_avf)) or (net_i == 0 and net_avf == 0):
        return math.nan
    a = math.degrees(math.atan2(net_avf, net_i))
    return 180.0 if a == -180.0 else round(a, 1)


def _net_area(x: np.ndarray, lead: int, a: float, b: float, baseline: float) -> float:
    if not (math.isfinite(a) and math.isfinite(b)):
        return math.nan
    i0, i1 = int(round(a)), int(round(b))
    if i1 <= i0:
        return math.nan
    return float(np.sum(x[lead, i0:i1] - baseline))


def isoelectric_levels(beat_mv: np.ndarray, fs_hz: float, qrs_on: float) -> np.ndarray:
    """Each lead's isoelectric level (mV): mean of the PR segment 20-4 ms before QRS onset."""
    x = np.asarray(beat_mv, dtype=np.float64)
    ms = fs_hz / 1000.0
    if not math.isfinite(qrs_on):
        return np.median(x, axis=1)
    q = int(round(qrs_on))
    b0, b1 = max(0, q - int(round(20 * ms))), max(1, q - int(round(4 * ms)))
    if b1 <= b0:
        return x[:, max(q - 1, 0)].copy()
    return x[:, b0:b1].mean(axis=1)


def measure_beat(beat_mv: np.ndarray, fs_hz: float, fid: dict[str, float]) -> dict[str, float]:
    """QRS duration and frontal P, R and T axes (plus PR and QT) from a beat and its fiducials (samples).

    The P axis is the net area of I and aVF over the delineated P wave (P onset to P offset), each lead
    relative to its isoelectric (PR-segment) level, like the QRS and T axes; NaN without a P wave.
    """
    x = np.asarray(beat_mv, dtype=np.float64)
    to_ms = 1000.0 / fs_hz
    p_on, p_off, q_on, q_off, t_off = (fid.get(k, math.nan) for k in FIDUCIAL_NAMES)
    base = isoelectric_levels(x, fs_hz, q_on)
    i_lead, avf = LEAD_INDEX["I"], LEAD_INDEX["aVF"]

    def axis(a: float, b: float, ref: np.ndarray) -> float:
        return frontal_axis_deg(_net_area(x, i_lead, a, b, ref[i_lead]), _net_area(x, avf, a, b, ref[avf]))

    p_axis = axis(p_on, p_off, base) if math.isfinite(p_on) and math.isfinite(p_off) else math.nan
    return {
        "qrs_ms": (q_off - q_on) * to_ms,
        "pr_ms": (q_on - p_on) * to_ms,
        "qt_ms": (t_off - q_on) * to_ms,
        "p_axis_deg": p_axis,
        "r_axis_deg": axis(q_on, q_off, base),
        "t_axis_deg": axis(q_off, t_off, base),
    }
