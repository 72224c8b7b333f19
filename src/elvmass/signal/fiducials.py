"""Fiducial points of one beat from all leads at once, and the measurements that follow from them.

Global fiducials across leads are far more accurate than any one lead's: a lead whose QRS vector is
perpendicular to it shows a late, small onset. The method works on two multi-lead curves of the
band-passed beat, using the 8 independent leads (I, II, V1-V6):

- the *spatial velocity* ``v(t) = sqrt(sum_leads (dx/dt)^2)``: QRS onset is where ``v`` last rises above
  ``QRS_ON_FRACTION`` of its QRS maximum before the QRS, QRS offset (J point) where it first falls below
  ``QRS_OFF_FRACTION`` after it (both held for a few ms, so a notch inside the QRS does not end it);
- the *spatial magnitude* of the deviation from the isoelectric level (the PR segment just before QRS
  onset) ``m(t) = sqrt(sum_leads (x - baseline)^2)``: T offset by the tangent method (the tangent at the
  steepest descent after the T peak crosses the post-T baseline level), P onset likewise on a smoothed
  ``m`` before the QRS, working backwards from the P peak.

Axes follow the device convention: ``atan2(net aVF, net I)`` of the net area in the QRS (R axis), P-wave
(P axis) and ST-T (T axis) windows, in degrees in (-180, 180].

    >>> import numpy as np
    >>> from elvmass.signal.fiducials import frontal_axis_deg
    >>> frontal_axis_deg(net_i=1.0, net_avf=1.0)
    45.0
"""

from __future__ import annotations

import math

import numpy as np

from elvmass.record import LEAD_INDEX

INDEPENDENT = np.array([0, 1, 6, 7, 8, 9, 10, 11])
QRS_ON_FRACTION = 0.05
QRS_OFF_FRACTION = 0.07
HOLD_MS = 8.0
QRS_SEARCH_MS = 150.0
P_MIN_MV = 0.03
T_MIN_MV = 0.05

FIDUCIAL_NAMES = ("p_on", "qrs_on", "qrs_off", "t_off")


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


def locate_fiducials(beat_mv: np.ndarray, fs_hz: float, r_index: int) -> dict[str, float]:
    """P onset, QRS onset, QRS offset and T offset of a (12, W) band-passed beat, as sample indices (float).

    ``r_index`` is the R peak's sample in the beat. A point that cannot be found (no P wave in atrial
    fibrillation, a T wave outside the window) is NaN.
    """
    x = np.asarray(beat_mv, dtype=np.float64)
    n = x.shape[1]
    ms = fs_hz / 1000.0
    out = {name: math.nan for name in FIDUCIAL_NAMES}
    hold = max(1, int(round(HOLD_MS * ms)))
    v = spatial_velocity(x, fs_hz)

    lo = max(1, r_index - int(QRS_SEARCH_MS * ms))
    hi = min(n - 1, r_index + int(QRS_SEARCH_MS * ms))
    if hi - lo < 4:
        return out
    seg = v[lo:hi]
    vmax = float(seg.max())
    if vmax <= 0:
        return out
    strong = np.flatnonzero(seg > 0.3 * vmax) + lo
    first_strong, last_strong = int(strong[0]), int(strong[-1])

    # QRS onset: walking back from the first strong slope, the first run of `hold` samples below threshold
    back = v[lo : first_strong + 1][::-1] < QRS_ON_FRACTION * vmax
    k = _first_run(back, hold)
    qrs_on = first_strong - k if k >= 0 else lo
    # QRS offset (J point): walking forward from the last strong slope
    fwd = v[last_strong:hi] < QRS_OFF_FRACTION * vmax
    k = _first_run(fwd, hold)
    qrs_off = last_strong + k if k >= 0 else hi
    out["qrs_on"], out["qrs_off"] = float(qrs_on), float(qrs_off)

    # isoelectric level of each lead: the PR segment just before QRS onset
    b0, b1 = max(0, qrs_on - int(round(20 * ms))), max(1, qrs_on - int(round(4 * ms)))
    baseline = x[:, b0:b1].mean(axis=1, keepdims=True) if b1 > b0 else x[:, [max(qrs_on - 1, 0)]]
    dev = x[INDEPENDENT] - baseline[INDEPENDENT]
    m = np.sqrt(np.einsum("ij,ij->j", dev, dev))
    m = _moving_average(m, max(1, int(round(0.02 * fs_hz))))

    out["t_off"] = _t_offset(m, fs_hz, qrs_off)
    out["p_on"] = _p_onset(m, fs_hz, qrs_on)
    return out


def _tangent_end(curve: np.ndarray, peak: int, stop: int, fs_hz: float, floor: float, forward: bool) -> float:
    """Tangent method: where the tangent at the steepest fall from ``peak`` toward ``stop`` reaches ``floor``."""
    if forward:
        part = curve[peak:stop]
        if part.size < 3:
            return math.nan
        slope = np.gradient(part)
        i = int(np.argmin(slope))
        s = slope[i]
        if s >= 0:
            return math.nan
        return peak + i + (floor - part[i]) / s
    part = curve[stop : peak + 1]
    if part.size < 3:
        return math.nan
    slope = np.gradient(part)
    i = int(np.argmax(slope))
    s = slope[i]
    if s <= 0:
        return math.nan
    return stop + i + (floor - part[i]) / s


def _t_offset(m: np.ndarray, fs_hz: float, qrs_off: int) -> float:
    ms = fs_hz / 1000.0
    n = m.size
    start = qrs_off + int(round(60 * ms))
    stop = min(n, qrs_off + int(round(550 * ms)))
    if stop - start < int(round(80 * ms)):
        return math.nan
    t_peak = start + int(np.argmax(m[start:stop]))
    if m[t_peak] < T_MIN_MV:
        return math.nan
    after = m[t_peak:stop]
    floor = float(after.min())
    end = _tangent_end(m, t_peak, stop, fs_hz, floor, forward=True)
    if not math.isfinite(end):
        return math.nan
    return float(min(max(end, t_peak), stop - 1))


def _p_onset(m: np.ndarray, fs_hz: float, qrs_on: int) -> float:
    ms = fs_hz / 1000.0
    stop = qrs_on - int(round(30 * ms))
    start = max(0, qrs_on - int(round(350 * ms)))
    if stop - start < int(round(60 * ms)):
        return math.nan
    p_peak = start + int(np.argmax(m[start:stop]))
    if m[p_peak] < P_MIN_MV or p_peak - start < int(round(10 * ms)):
        return math.nan
    floor = float(m[start:p_peak].min())
    on = _tangent_end(m, p_peak, start, fs_hz, floor, forward=False)
    if not math.isfinite(on):
        return math.nan
    return float(min(max(on, start), p_peak))


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
    """QRS duration and frontal P, R and T axes (plus PR and QT) from a beat and its fiducials (samples)."""
    x = np.asarray(beat_mv, dtype=np.float64)
    to_ms = 1000.0 / fs_hz
    p_on, q_on, q_off, t_off = (fid[k] for k in FIDUCIAL_NAMES)
    base = isoelectric_levels(x, fs_hz, q_on)
    i_lead, avf = LEAD_INDEX["I"], LEAD_INDEX["aVF"]

    def axis(a: float, b: float) -> float:
        return frontal_axis_deg(_net_area(x, i_lead, a, b, base[i_lead]), _net_area(x, avf, a, b, base[avf]))

    p_end = q_on - 10.0 * fs_hz / 1000.0 if math.isfinite(q_on) else math.nan
    return {
        "qrs_ms": (q_off - q_on) * to_ms,
        "pr_ms": (q_on - p_on) * to_ms,
        "qt_ms": (t_off - q_on) * to_ms,
        "p_axis_deg": axis(p_on, p_end),
        "r_axis_deg": axis(q_on, q_off),
        "t_axis_deg": axis(q_off, t_off),
    }
