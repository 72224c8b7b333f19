"""Fit the generator's beat library to real ECGs: ``python -m elvmass.synth.fit [--shared DIR]``.

For every record of the *fit* part (PTB-XL strat_fold 1-8, LUDB records 1-90; sinus, no complete
BBB, no pacing; see :mod:`elvmass.synth.realdata`) this takes, through elvmass's own reader and
signal pipeline:

- the median beat of the 8 independent leads (I, II, V1-V6), band-passed 0.5-100 Hz, R-aligned,
  -350 .. +550 ms, stored at 250 Hz as int16 microvolts;
- its fiducials (P onset, QRS onset, QRS offset, T offset) from ``elvmass.signal.analyze_ecg``
  and the heart rate;
- the record's noise: the RMS of what is left in the 0.5-40 Hz band after subtracting the median
  beat at every R peak (muscle and electrode noise plus beat-to-beat variation), and the
  baseline wander (SD of the raw signal below 0.5 Hz);
- sex and age from the database, so the generator can draw a template of the right sex and
  about the right age.

Beats with an implausible fiducial set (QRS outside 60-118 ms, QT outside 300-520 ms, T offset at
the window's end) or a flagged/unusable analysis are left out; where the pipeline finds no P onset
(or a PR outside 90-260 ms) the P onset is set 160 ms before QRS onset for the time warp. The result is written to
``src/elvmass/data/synth/beat_library.npz`` (attribution in ``src/elvmass/data/ATTRIBUTION.md``).
The fit is deterministic: the same records give the same file.
"""

from __future__ import annotations

import argparse
import math
import warnings
from pathlib import Path

import numpy as np

LIBRARY_PATH = Path(__file__).resolve().parents[1] / "data" / "synth" / "beat_library.npz"
LIB_FS_HZ = 250.0
BEFORE_S, AFTER_S = 0.35, 0.55
NOMINAL_PR_MS = 160.0
EIGHT = np.array([0, 1, 6, 7, 8, 9, 10, 11])  # I, II, V1..V6 in elvmass lead order


def _one(rec):
    from elvmass.signal import analyze_ecg, bandpass_filter
    from elvmass.signal.beats import median_template
    from elvmass.synth.realdata import read_real

    ecg = read_real(rec)
    fs = ecg.fs_hz
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        a = analyze_ecg(ecg)
    if not a.usable or a.r_peaks_s.size < 5:
        return None
    f = a.fiducials_ms
    if not all(math.isfinite(f[k]) for k in ("qrs_on", "qrs_off", "t_off")):
        return None
    f = dict(f)
    r_ms = BEFORE_S * 1000.0
    pr = f["qrs_on"] - f["p_on"] if math.isfinite(f["p_on"]) else math.nan
    if not (90 <= pr <= 260) or f["p_on"] < 5:
        # P onset not found (or at the window's edge): the warp anchors on a nominal PR of 160 ms
        f["p_on"] = f["qrs_on"] - NOMINAL_PR_MS
    qrs, qt = f["qrs_off"] - f["qrs_on"], f["t_off"] - f["qrs_on"]
    if not (60 <= qrs <= 118 and 300 <= qt <= 520) or f["t_off"] > 880:
        return None
    r_idx = np.rint(a.r_peaks_s * fs).astype(int)
    wide = bandpass_filter(ecg.signal_mv, fs, 0.5, 100.0)
    med = median_template(wide, fs, r_idx, BEFORE_S, AFTER_S)[EIGHT]
    # level: the isoelectric PR segment (20 ms before QRS onset) is zero
    q = int(round(f["qrs_on"] * fs / 1000.0))
    med = med - med[:, max(q - int(0.02 * fs), 0) : q].mean(axis=1, keepdims=True)
    lib = med[:, ::2] if fs == 500.0 else np.stack([np.interp(np.arange(0, BEFORE_S + AFTER_S, 1 / LIB_FS_HZ), np.arange(med.shape[1]) / fs, m) for m in med])
    # noise: in-band residual after the median beat is removed at every complete beat
    band = bandpass_filter(ecg.signal_mv, fs, 0.5, 40.0)[EIGHT].astype(np.float64)
    tmpl40 = median_template(band, fs, r_idx, BEFORE_S, AFTER_S)
    nb, na = round(BEFORE_S * fs), round(AFTER_S * fs)
    res = []
    for r in r_idx:
        if r - nb >= 0 and r + na <= band.shape[1]:
            res.append(band[:, r - nb : r + na] - tmpl40)
    resid = float(np.sqrt(np.median(np.mean(np.square(np.stack(res)), axis=(0, 2)))))
    from scipy.signal import butter, sosfiltfilt

    sos = butter(2, 0.5, btype="lowpass", fs=fs, output="sos")
    raw = np.nan_to_num(ecg.signal_mv[EIGHT].astype(np.float64))
    wander = float(np.median(np.std(sosfiltfilt(sos, raw - raw.mean(axis=1, keepdims=True), axis=1), axis=1)))
    return {
        "beat": np.clip(np.rint(lib * 1000.0), -32767, 32767).astype(np.int16),
        "fid_ms": np.array([f["p_on"], f["qrs_on"], r_ms, f["qrs_off"], f["t_off"]], dtype=np.float32),
        "hr_bpm": float(a.measured["hr_bpm"]),
        "sex": rec.sex or "M",
        "age": rec.age_years if rec.age_years is not None else 60.0,
        "resid_mv": resid,
        "wander_mv": wander,
        "source": f"{rec.source}:{rec.record_id}",
        "sokolow_mv": float(a.criteria.get("sokolow_lyon_mv", math.nan)),
        "cornell_mv": float(a.criteria.get("cornell_voltage_mv", math.nan)),
    }


def fit_library(shared=None, out: Path = LIBRARY_PATH, *, progress=None) -> dict:
    """Build the beat library from the fit part of the real records and write it (npz) to ``out``."""
    from elvmass.synth.realdata import real_records

    recs = real_records(shared, part="fit")
    rows = []
    for i, rec in enumerate(recs):
        row = _one(rec)
        if row is not None:
            rows.append(row)
        if progress is not None:
            progress(i + 1, len(recs))
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(
        out,
        beats_uv=np.stack([r["beat"] for r in rows]),
        fid_ms=np.stack([r["fid_ms"] for r in rows]),
        hr_bpm=np.array([r["hr_bpm"] for r in rows], dtype=np.float32),
        female=np.array([r["sex"] == "F" for r in rows]),
        age_years=np.array([r["age"] for r in rows], dtype=np.float32),
        resid_mv=np.array([r["resid_mv"] for r in rows], dtype=np.float32),
        wander_mv=np.array([r["wander_mv"] for r in rows], dtype=np.float32),
        source=np.array([r["source"] for r in rows]),
        sokolow_mv=np.array([r["sokolow_mv"] for r in rows], dtype=np.float32),
        cornell_mv=np.array([r["cornell_mv"] for r in rows], dtype=np.float32),
        fs_hz=np.float32(LIB_FS_HZ),
        before_s=np.float32(BEFORE_S),
    )
    return {"n_records": len(recs), "n_templates": len(rows), "path": str(out)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shared", default=None, help="the shared real data folder (default ../shared/data)")
    ap.add_argument("--out", default=str(LIBRARY_PATH))
    args = ap.parse_args()
    print(fit_library(args.shared, Path(args.out)))


if __name__ == "__main__":
    main()
