"""The ECG profile: several hundred measurements of one ECG from its segmentation, as ECG-AI's profile
(Tison et al., Circ Cardiovasc Qual Outcomes 2019: 725 features per ECG from a segmentation network +
HMM) - durations, amplitudes, areas and intervals, per lead and global, summarised over beats.

Every beat is anchored on a global QRS complex of the segmentation (:mod:`elvmass.segment.model`). In
each lead, the beat's P wave, QRS complex and T wave are that lead's own waves (the last P ending up to
350 ms before the global QRS onset, the QRS waves overlapping the global QRS +/- 30 ms, the first T wave
starting after the global QRS and before the next beat); a wave missing in a lead gives NaN durations,
and its amplitudes and areas are then measured in the global wave's window. Levels are relative to the
lead's isoelectric level, the median of the 20 ms before its QRS onset. :data:`LEAD_FEATURES` per lead
and :data:`GLOBAL_FEATURES` are each summarised over beats by their median and SD (:data:`STATS`), so a
profile has ``len(PROFILE_NAMES)`` values (NaN where not measurable). docs/ecg_profile.md is generated
from these tables (:func:`render_doc`).

    >>> len(PROFILE_NAMES), PROFILE_NAMES[0], PROFILE_NAMES[-1]
    (525, 'I_p_ms_median', 'global_t_axis_deg')
"""

from __future__ import annotations

import math

import numpy as np

from elvmass.record import LEADS

#: per-lead features: (name, unit, definition)
LEAD_FEATURES: tuple[tuple[str, str, str], ...] = (
    ("p_ms", "ms", "P wave duration (P onset to P offset) in this lead"),
    ("pr_ms", "ms", "PR interval: P onset to QRS onset in this lead"),
    ("qrs_ms", "ms", "QRS duration (QRS onset to QRS offset) in this lead"),
    ("qt_ms", "ms", "QT interval: QRS onset to T offset in this lead"),
    ("st_ms", "ms", "ST segment: QRS offset (J point) to T onset"),
    ("t_ms", "ms", "T wave duration (T onset to T offset)"),
    ("p_pos_mv", "mV", "largest positive deflection in the P wave"),
    ("p_neg_mv", "mV", "largest negative deflection in the P wave (<= 0)"),
    ("q_mv", "mV", "Q amplitude: lowest level in the QRS before the R peak (<= 0)"),
    ("r_mv", "mV", "R amplitude: highest level in the QRS (>= 0)"),
    ("s_mv", "mV", "S amplitude: lowest level in the QRS after the R peak (<= 0)"),
    ("qrs_pp_mv", "mV", "QRS peak-to-peak amplitude (R minus the lowest QRS level)"),
    ("r_time_ms", "ms", "R peak time: QRS onset to the R peak (intrinsicoid deflection)"),
    ("st_j_mv", "mV", "ST level at the J point (QRS offset)"),
    ("st_j60_mv", "mV", "ST level 60 ms after the J point"),
    ("t_pos_mv", "mV", "largest positive deflection in the T wave"),
    ("t_neg_mv", "mV", "largest negative deflection in the T wave (<= 0)"),
    ("p_area_mvms", "mV.ms", "net area of the P wave"),
    ("qrs_area_mvms", "mV.ms", "net area of the QRS complex"),
    ("qrs_abs_area_mvms", "mV.ms", "absolute (rectified) area of the QRS complex"),
    ("t_area_mvms", "mV.ms", "net area of the T wave"),
)
#: global (multi-lead) features summarised over beats: (name, unit, definition)
GLOBAL_FEATURES: tuple[tuple[str, str, str], ...] = (
    ("p_ms", "ms", "global P wave duration (multi-lead segmentation)"),
    ("pr_ms", "ms", "global PR interval (global P onset to global QRS onset)"),
    ("qrs_ms", "ms", "global QRS duration"),
    ("qt_ms", "ms", "global QT interval (global QRS onset to global T offset)"),
    ("st_ms", "ms", "global ST segment (global QRS offset to global T onset)"),
    ("t_ms", "ms", "global T wave duration"),
    ("rr_ms", "ms", "RR interval to the next beat (global QRS onset to the next one)"),
)
#: single-valued global features: (name, unit, definition)
RECORD_FEATURES: tuple[tuple[str, str, str], ...] = (
    ("n_beats", "count", "number of beats (global QRS complexes) found"),
    ("p_fraction", "fraction", "share of beats with a global P wave before the QRS"),
    ("hr_bpm", "1/min", "heart rate from the median RR interval"),
    ("qtc_bazett_ms", "ms", "median global QT corrected by Bazett (QT / sqrt(RR in s))"),
    ("p_axis_deg", "deg", "frontal P axis: atan2 of the median net P areas in aVF and I"),
    ("qrs_axis_deg", "deg", "frontal QRS axis: atan2 of the median net QRS areas in aVF and I"),
    ("t_axis_deg", "deg", "frontal T axis: atan2 of the median net T areas in aVF and I"),
)
STATS = ("median", "sd")

PROFILE_NAMES: tuple[str, ...] = (
    tuple(f"{lead}_{f}_{s}" for lead in LEADS for f, _, _ in LEAD_FEATURES for s in STATS)
    + tuple(f"global_{f}_{s}" for f, _, _ in GLOBAL_FEATURES for s in STATS)
    + tuple(f"global_{f}" for f, _, _ in RECORD_FEATURES)
)

P_SEARCH_S = 0.35
QRS_MARGIN_S = 0.03
T_SEARCH_S = 0.45
BASELINE_S = 0.02


def _nan() -> float:
    return math.nan


def _wave_in(waves, kind: str, lo: float, hi: float, *, last: bool = False, by: str = "offset_s"):
    hits = [w for w in waves if w.wave == kind and lo <= getattr(w, by) <= hi]
    if not hits:
        return None
    return hits[-1] if last else hits[0]


def _summarise(values: list[float]) -> tuple[float, float]:
    v = np.asarray([x for x in values if math.isfinite(x)], dtype=float)
    if v.size == 0:
        return math.nan, math.nan
    return float(np.median(v)), (float(np.std(v, ddof=1)) if v.size > 1 else math.nan)


def ecg_profile(signal_mv: np.ndarray, fs_hz: float, segmentation) -> dict[str, float]:
    """The profile (:data:`PROFILE_NAMES` -> value) of a (12, n) band-passed ECG and its segmentation."""
    x = np.asarray(signal_mv, dtype=np.float64)
    n = x.shape[1]
    dt_ms = 1000.0 / fs_hz
    waves = segmentation.waves
    qrs = [w for w in waves if w.wave == "QRS"]
    lead_vals = {(k, f): [] for k in range(12) for f, _, _ in LEAD_FEATURES}
    glob_vals = {f: [] for f, _, _ in GLOBAL_FEATURES}
    n_with_p = 0

    def idx(t: float) -> int:
        return int(min(max(round(t * fs_hz), 0), n - 1))

    for b, gq in enumerate(qrs):
        prev_off = qrs[b - 1].offset_s if b else -math.inf
        next_on = qrs[b + 1].onset_s if b + 1 < len(qrs) else math.inf
        gp = _wave_in(waves, "P", max(gq.onset_s - P_SEARCH_S, prev_off), gq.onset_s + 0.01, last=True)
        gt = _wave_in(waves, "T", gq.offset_s - 0.02, min(gq.offset_s + T_SEARCH_S, next_on), by="onset_s")
        n_with_p += gp is not None
        g = glob_vals
        g["qrs_ms"].append(gq.duration_ms)
        g["p_ms"].append(gp.duration_ms if gp else math.nan)
        g["pr_ms"].append((gq.onset_s - gp.onset_s) * 1000 if gp else math.nan)
        g["qt_ms"].append((gt.offset_s - gq.onset_s) * 1000 if gt else math.nan)
        g["st_ms"].append((gt.onset_s - gq.offset_s) * 1000 if gt else math.nan)
        g["t_ms"].append(gt.duration_ms if gt else math.nan)
        g["rr_ms"].append((next_on - gq.onset_s) * 1000 if math.isfinite(next_on) else math.nan)
        for k in range(12):
            lw = segmentation.lead_waves[k]
            lq = [w for w in lw if w.wave == "QRS" and w.onset_s <= gq.offset_s + QRS_MARGIN_S and w.offset_s >= gq.onset_s - QRS_MARGIN_S]
            q_on = min(w.onset_s for w in lq) if lq else None
            q_off = max(w.offset_s for w in lq) if lq else None
            lp = _wave_in(lw, "P", max(gq.onset_s - P_SEARCH_S, prev_off), (q_on or gq.onset_s) + 0.01, last=True)
            lt = _wave_in(lw, "T", (q_off or gq.offset_s) - 0.02, min(gq.offset_s + T_SEARCH_S, next_on), by="onset_s")
            v = {f: math.nan for f, _, _ in LEAD_FEATURES}
            on_ref = q_on if q_on is not None else gq.onset_s
            base = float(np.median(x[k, idx(on_ref - BASELINE_S) : idx(on_ref) + 1]))
            y = x[k] - base
            if lq:
                v["qrs_ms"] = (q_off - q_on) * 1000
            if lp:
                v["p_ms"] = lp.duration_ms
                if lq:
                    v["pr_ms"] = (q_on - lp.onset_s) * 1000
            if lt:
                v["t_ms"] = lt.duration_ms
                if lq:
                    v["qt_ms"] = (lt.offset_s - q_on) * 1000
                    v["st_ms"] = (lt.onset_s - q_off) * 1000
            # amplitudes and areas: the lead's own wave, else the global wave's window
            qa, qb = (q_on, q_off) if lq else (gq.onset_s, gq.offset_s)
            seg = y[idx(qa) : idx(qb) + 1]
            if seg.size:
                r = int(np.argmax(seg))
                v["r_mv"] = max(float(seg[r]), 0.0)
                v["q_mv"] = min(float(seg[: r + 1].min()), 0.0)
                v["s_mv"] = min(float(seg[r:].min()), 0.0)
                v["qrs_pp_mv"] = float(seg.max() - seg.min())
                v["r_time_ms"] = r * dt_ms
                v["qrs_area_mvms"] = float(seg.sum() * dt_ms)
                v["qrs_abs_area_mvms"] = float(np.abs(seg).sum() * dt_ms)
                v["st_j_mv"] = float(y[idx(qb)])
                if qb + 0.06 < n / fs_hz:
                    v["st_j60_mv"] = float(y[idx(qb + 0.06)])
            pw = lp or gp
            if pw is not None:
                sp = y[idx(pw.onset_s) : idx(pw.offset_s) + 1]
                v["p_pos_mv"], v["p_neg_mv"] = max(float(sp.max()), 0.0), min(float(sp.min()), 0.0)
                v["p_area_mvms"] = float(sp.sum() * dt_ms)
            tw = lt or gt
            if tw is not None:
                st = y[idx(tw.onset_s) : idx(tw.offset_s) + 1]
                v["t_pos_mv"], v["t_neg_mv"] = max(float(st.max()), 0.0), min(float(st.min()), 0.0)
                v["t_area_mvms"] = float(st.sum() * dt_ms)
            for f in v:
                lead_vals[(k, f)].append(v[f])
    out: dict[str, float] = {}
    for k, lead in enumerate(LEADS):
        for f, _, _ in LEAD_FEATURES:
            out[f"{lead}_{f}_median"], out[f"{lead}_{f}_sd"] = _summarise(lead_vals[(k, f)])
    for f, _, _ in GLOBAL_FEATURES:
        out[f"global_{f}_median"], out[f"global_{f}_sd"] = _summarise(glob_vals[f])
    rr = out["global_rr_ms_median"]
    out["global_n_beats"] = float(len(qrs))
    out["global_p_fraction"] = n_with_p / len(qrs) if qrs else math.nan
    out["global_hr_bpm"] = 60000.0 / rr if math.isfinite(rr) and rr > 0 else math.nan
    qt = out["global_qt_ms_median"]
    out["global_qtc_bazett_ms"] = qt / math.sqrt(rr / 1000.0) if math.isfinite(qt) and math.isfinite(rr) and rr > 0 else math.nan
    for wave, area in (("p", "p_area_mvms"), ("qrs", "qrs_area_mvms"), ("t", "t_area_mvms")):
        a_i, a_f = out[f"I_{area}_median"], out[f"aVF_{area}_median"]
        ok = math.isfinite(a_i) and math.isfinite(a_f) and (a_i or a_f)
        out[f"global_{wave}_axis_deg"] = math.degrees(math.atan2(a_f, a_i)) if ok else math.nan
    assert tuple(out) == PROFILE_NAMES
    return out


def profile_matrix(views: np.ndarray, fs_hz: float, segmenter, progress=None) -> np.ndarray:
    """(N, len(PROFILE_NAMES)) profiles of (N, 12, L) band-passed views at ``fs_hz``."""
    out = np.full((len(views), len(PROFILE_NAMES)), np.nan)
    for i, v in enumerate(views):
        seg = segmenter.segment_signal(v, fs_hz)
        prof = ecg_profile(v, fs_hz, seg)
        out[i] = [prof[name] for name in PROFILE_NAMES]
        if progress is not None:
            progress(i + 1, len(views))
    return out


def render_doc() -> str:
    """docs/ecg_profile.md, generated from the feature tables (a test checks the file is up to date)."""
    lines = [
        "# The ECG profile (ECG-AI's input)",
        "",
        "<!-- generated by `python -m elvmass.segment.profile > docs/ecg_profile.md`; do not edit by hand -->",
        "",
        "Built by `elvmass.segment.profile.ecg_profile` from the segmentation model's waves",
        "(`elvmass segment`, trained on LUDB) on the band-passed 10-s ECG, after the profile of ECG-AI",
        "(Tison et al., *Circ Cardiovasc Qual Outcomes* 2019; 725 features). Beats are anchored on the global",
        "QRS complexes; in each lead the beat's own P, QRS and T waves are used (a wave the lead lacks gives",
        "NaN durations, and its amplitudes and areas are measured in the global wave's window). Levels are",
        "relative to the median of the 20 ms before the lead's QRS onset.",
        "",
        f"**{len(PROFILE_NAMES)} features**: {len(LEAD_FEATURES)} per lead x 12 leads x {len(STATS)} statistics "
        f"({', '.join(STATS)} over beats), {len(GLOBAL_FEATURES)} global x {len(STATS)}, and "
        f"{len(RECORD_FEATURES)} single global values.",
        "",
        "## Per-lead features",
        "",
        "Named `<lead>_<feature>_<stat>`, lead one of " + ", ".join(f"`{x}`" for x in LEADS) + ", stat `median` or `sd`.",
        "",
        "| feature | unit | definition |",
        "|---|---|---|",
    ]
    lines += [f"| `{f}` | {u} | {d} |" for f, u, d in LEAD_FEATURES]
    lines += ["", "## Global features over beats", "", "Named `global_<feature>_<stat>`.", "",
              "| feature | unit | definition |", "|---|---|---|"]
    lines += [f"| `{f}` | {u} | {d} |" for f, u, d in GLOBAL_FEATURES]
    lines += ["", "## Single global values", "", "Named `global_<feature>`.", "", "| feature | unit | definition |", "|---|---|---|"]
    lines += [f"| `{f}` | {u} | {d} |" for f, u, d in RECORD_FEATURES]
    lines += ["", "## Every feature, in the order of the profile vector", "", "```"]
    lines += [" ".join(PROFILE_NAMES[i : i + 6]) for i in range(0, len(PROFILE_NAMES), 6)]
    lines += ["```", ""]
    return "\n".join(lines)


if __name__ == "__main__":  # pragma: no cover
    print(render_doc(), end="")
