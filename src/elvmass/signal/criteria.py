"""Classical ECG voltage criteria for left ventricular hypertrophy, measured on the filtered beat.

Amplitudes are taken against each lead's isoelectric level (the PR segment just before QRS onset):
R = the largest positive deflection within the QRS (onset to J point), S = the largest negative one
(given as a positive depth). All voltages in mV (1 mm = 0.1 mV at standard gain).

=======================  =====================================================  ==================================
criterion                value                                                  positive
=======================  =====================================================  ==================================
Sokolow-Lyon [1]         S(V1) + max(R(V5), R(V6))                              >= 3.5 mV
Cornell voltage [2]      R(aVL) + S(V3)                                         > 2.8 mV men, > 2.0 mV women
Cornell product [3]      (R(aVL) + S(V3) [+ 0.6 mV women]) x QRS duration       >= 244 mV.ms (2440 mm.ms)
Peguero-Lo Presti [4]    deepest S in any lead + S(V4)                          >= 2.8 mV men, >= 2.3 mV women
Romhilt-Estes [5]        points, see below                                      >= 5 (4 = probable LVH)
=======================  =====================================================  ==================================

Romhilt-Estes points, as far as the waveform allows: amplitude (largest R or S in a limb lead >= 2.0 mV,
or S(V1)/S(V2) >= 3.0 mV, or R(V5)/R(V6) >= 3.0 mV) 3; ST-T strain in V5 or V6 (R-dominant QRS, ST
depressed >= 0.05 mV, T opposite to the QRS and >= 0.1 mV deep) 3 (digitalis use is unknown, so 3, not 1);
left atrial abnormality (terminal negative P in V1 >= 0.1 mV deep and >= 40 ms long) 3; left axis
(-90 to -30 degrees) 2; QRS >= 90 ms 1; intrinsicoid deflection (QRS onset to R peak) in V5 or V6 >= 50 ms 1.

Sex-specific calls are ``None`` when sex is unknown (the values are still given; the Cornell product
then without the women's 0.6 mV).

[1] Sokolow M, Lyon TP. Am Heart J 1949;37:161-186.
[2] Casale PN et al. J Am Coll Cardiol 1985;6:572-580.
[3] Molloy TJ et al. J Am Coll Cardiol 1992;20:1180-1186.
[4] Peguero JG et al. J Am Coll Cardiol 2017;69:1694-1703.
[5] Romhilt DW, Estes EH. Am Heart J 1968;75:752-758.

    >>> import numpy as np
    >>> from elvmass.signal import voltage_criteria
    >>> beat = np.zeros((12, 450)); t = np.arange(450)
    >>> beat[6] -= 2.0 * np.exp(-0.5 * ((t - 175) / 5) ** 2)      # S 2.0 mV in V1
    >>> beat[10] += 1.8 * np.exp(-0.5 * ((t - 175) / 5) ** 2)     # R 1.8 mV in V5
    >>> c = voltage_criteria(beat, 500.0, {"p_on": np.nan, "qrs_on": 300.0, "qrs_off": 400.0, "t_off": 700.0}, "M")
    >>> round(c["sokolow_lyon_mv"], 2), c["sokolow_lyon_positive"]
    (3.8, True)
"""

from __future__ import annotations

import math

import numpy as np

from elvmass.record import LEAD_INDEX, LEADS
from elvmass.signal.fiducials import isoelectric_levels

L = LEAD_INDEX
LIMB = [L[n] for n in ("I", "II", "III", "aVR", "aVL", "aVF")]

SOKOLOW_LYON_MV = 3.5
CORNELL_MV = {"M": 2.8, "F": 2.0}
CORNELL_PRODUCT_MV_MS = 244.0
CORNELL_PRODUCT_WOMEN_ADD_MV = 0.6
PEGUERO_MV = {"M": 2.8, "F": 2.3}

CRITERIA_KEYS = (
    "sokolow_lyon_mv",
    "sokolow_lyon_positive",
    "cornell_voltage_mv",
    "cornell_voltage_positive",
    "cornell_product_mv_ms",
    "cornell_product_positive",
    "peguero_lo_presti_mv",
    "peguero_lo_presti_positive",
    "romhilt_estes_points",
    "romhilt_estes_positive",
    "romhilt_estes_probable",
)


def _empty() -> dict:
    return {k: (None if k.endswith(("_positive", "_probable")) else math.nan) for k in CRITERIA_KEYS}


def qrs_amplitudes(beat_mv: np.ndarray, fs_hz: float, fiducials_ms: dict) -> tuple[np.ndarray, np.ndarray]:
    """Per-lead R height and S depth (mV, both >= 0) between QRS onset and offset, against the PR level."""
    x = np.asarray(beat_mv, dtype=np.float64)
    on, off = fiducials_ms.get("qrs_on", math.nan), fiducials_ms.get("qrs_off", math.nan)
    if not (math.isfinite(on) and math.isfinite(off)) or off <= on:
        nan = np.full(x.shape[0], np.nan)
        return nan, nan.copy()
    k = fs_hz / 1000.0
    i0, i1 = int(round(on * k)), int(round(off * k)) + 1
    base = isoelectric_levels(x, fs_hz, on * k)
    qrs = x[:, max(i0, 0) : min(i1, x.shape[1])] - base[:, None]
    return np.maximum(qrs.max(axis=1), 0.0), np.maximum(-qrs.min(axis=1), 0.0)


def voltage_criteria(beat_mv: np.ndarray, fs_hz: float, fiducials_ms: dict, sex: str | None) -> dict:
    """The voltage criteria of one beat: each value and its positive call (see the module docstring).

    ``beat_mv`` is the band-passed (12, W) beat in mV, ``fiducials_ms`` its ``p_on, qrs_on, qrs_off, t_off``
    in ms from the beat's first sample, ``sex`` ``'M'``, ``'F'`` or ``None``.
    """
    x = np.asarray(beat_mv, dtype=np.float64)
    if x.ndim != 2 or x.shape[0] != 12:
        raise ValueError(f"beat_mv must be (12, W) in standard lead order, got shape {x.shape}")
    if sex not in ("M", "F", None):
        raise ValueError(f"sex must be 'M', 'F' or None, got {sex!r}")
    out = _empty()
    r, s = qrs_amplitudes(x, fs_hz, fiducials_ms)
    if not np.isfinite(r).all():
        return out
    qrs_ms = float(fiducials_ms["qrs_off"] - fiducials_ms["qrs_on"])

    sok = s[L["V1"]] + max(r[L["V5"]], r[L["V6"]])
    out["sokolow_lyon_mv"] = float(sok)
    out["sokolow_lyon_positive"] = bool(sok >= SOKOLOW_LYON_MV)

    cornell = r[L["aVL"]] + s[L["V3"]]
    out["cornell_voltage_mv"] = float(cornell)
    product = (cornell + (CORNELL_PRODUCT_WOMEN_ADD_MV if sex == "F" else 0.0)) * qrs_ms
    out["cornell_product_mv_ms"] = float(product)
    peg = float(s.max() + s[L["V4"]])
    out["peguero_lo_presti_mv"] = peg
    if sex is not None:
        out["cornell_voltage_positive"] = bool(cornell > CORNELL_MV[sex])
        out["cornell_product_positive"] = bool(product >= CORNELL_PRODUCT_MV_MS)
        out["peguero_lo_presti_positive"] = bool(peg >= PEGUERO_MV[sex])

    points = romhilt_estes_points(x, fs_hz, fiducials_ms, r, s)
    out["romhilt_estes_points"] = int(sum(points.values()))
    out["romhilt_estes_positive"] = bool(out["romhilt_estes_points"] >= 5)
    out["romhilt_estes_probable"] = bool(out["romhilt_estes_points"] >= 4)
    return out


def romhilt_estes_points(
    beat_mv: np.ndarray, fs_hz: float, fiducials_ms: dict, r_mv: np.ndarray, s_mv: np.ndarray
) -> dict[str, int]:
    """The Romhilt-Estes point items measurable from the waveform, each with its points (0 if absent)."""
    x = np.asarray(beat_mv, dtype=np.float64)
    k = fs_hz / 1000.0
    on, off, p_on, t_off = (float(fiducials_ms.get(n, math.nan)) for n in ("qrs_on", "qrs_off", "p_on", "t_off"))
    base = isoelectric_levels(x, fs_hz, on * k)
    pts = {"amplitude": 0, "st_t_strain": 0, "left_atrial": 0, "left_axis": 0, "qrs_duration": 0, "intrinsicoid": 0}

    limb_max = max(float(np.max(r_mv[LIMB])), float(np.max(s_mv[LIMB])))
    if limb_max >= 2.0 or max(s_mv[L["V1"]], s_mv[L["V2"]]) >= 3.0 or max(r_mv[L["V5"]], r_mv[L["V6"]]) >= 3.0:
        pts["amplitude"] = 3

    n = x.shape[1]
    j = int(round(off * k))
    st0, st1 = j + int(round(20 * k)), j + int(round(60 * k))
    t_end = int(round(t_off * k)) if math.isfinite(t_off) else min(n, j + int(round(350 * k)))
    t0 = st1
    if st1 < n and t_end > t0:
        for name in ("V5", "V6"):
            i = L[name]
            if r_mv[i] <= s_mv[i]:
                continue
            st = float(np.mean(x[i, st0:st1]) - base[i])
            tw = x[i, t0:min(t_end, n)] - base[i]
            t_ext = float(tw[np.argmax(np.abs(tw))]) if tw.size else 0.0
            if st <= -0.05 and t_ext <= -0.1:
                pts["st_t_strain"] = 3
                break

    if math.isfinite(p_on):
        i = L["V1"]
        p0, p1 = int(round(p_on * k)), int(round(on * k)) - int(round(10 * k))
        if p1 - p0 > int(round(40 * k)):
            pw = x[i, p0:p1] - base[i]
            neg = pw < 0
            # the terminal negative run: the last run of negative samples, ending at most 20 ms before p1
            if neg.any():
                last = int(np.flatnonzero(neg)[-1])
                first = last
                while first > 0 and neg[first - 1]:
                    first -= 1
                dur_ms = (last - first + 1) / k
                depth = float(-pw[first : last + 1].min())
                if dur_ms >= 40.0 and depth >= 0.1 and (pw.size - 1 - last) <= int(round(20 * k)):
                    pts["left_atrial"] = 3

    i_lead, avf = L["I"], L["aVF"]
    a, b = int(round(on * k)), int(round(off * k))
    net_i = float(np.sum(x[i_lead, a:b] - base[i_lead]))
    net_f = float(np.sum(x[avf, a:b] - base[avf]))
    if net_i != 0 or net_f != 0:
        axis = math.degrees(math.atan2(net_f, net_i))
        if -90.0 <= axis <= -30.0:
            pts["left_axis"] = 2

    if off - on >= 90.0:
        pts["qrs_duration"] = 1

    for name in ("V5", "V6"):
        i = L[name]
        seg = x[i, a : b + 1] - base[i]
        if seg.size and r_mv[i] > 0.1 and int(np.argmax(seg)) / k >= 50.0:
            pts["intrinsicoid"] = 1
            break
    return pts


__all__ = ["CRITERIA_KEYS", "LEADS", "qrs_amplitudes", "romhilt_estes_points", "voltage_criteria"]
