"""Does the delineation depend on the sampling rate? The same real ECGs at other rates, against the same
annotations and against themselves at 500 Hz.

The delineation's thresholds, smoothing widths and hold times were tuned at 500 Hz, so ``analyze_ecg``
delineates and measures every record at ``DELINEATION_FS_HZ`` (500 Hz) whatever its own rate
(``elvmass.signal.analysis.at_delineation_rate``). This benchmark shows what that buys on real files:

- **LUDB** (``../shared/data/ludb``, 500 Hz, cardiologist annotations): every sinus record (no pacemaker)
  resampled to each of ``--rates`` (polyphase, ``ECGRecord.resampled``) and analysed as a file
  at that rate would be. Per rate and part (tuning = odd record numbers, report = even; nothing here is
  tuned, on either): the chosen beat's boundaries within the CSE tolerance (as in bench_delineation.py),
  their mean +/- SD error (a boundary more than 150 ms off counts as not found, as there), and the mean
  |shift| of each boundary from the same record analysed at 500 Hz (where both chose the same beat). ``--before`` delineates at the record's own rate instead (the behaviour before the fixed rate),
  for comparison.
- **PTB-XL twins** (``../shared/data/ptbxl-sample``): each record's 100-Hz file (``records100``) against
  its 500-Hz file (``records500``), the same ECG as PhysioNet ships it at both rates: median and mean |.|
  of the differences in QRS duration, PR, QT and the P, R and T axes.

``--check`` exits 1 unless, at every rate of at least 250 Hz, no boundary's share within tolerance is more
than 5 points below the same part's at 500 Hz and no boundary's mean shift exceeds 2 ms, and the
PTB-XL twins' median QRS and QT differences are within 3 ms.

Run:  python benchmarks/bench_rate.py [--rates 100 250 360 500 1000] [--before] [--check] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_delineation as bd  # noqa: E402

from elvmass import read_ecg  # noqa: E402
from elvmass.signal import SignalConfig, analyze_ecg  # noqa: E402
from elvmass.signal import analysis as analysis_mod  # noqa: E402
from elvmass.signal.ludb_reference import BOUNDARIES, CSE_TOLERANCE_MS, read_ludb_beats  # noqa: E402

PTBXL = bd.DATA / "ptbxl-sample"
TWIN_KEYS = ("qrs_ms", "pr_ms", "qt_ms", "p_axis_deg", "r_axis_deg", "t_axis_deg")
MAX_SHARE_DROP = 5.0
MAX_SHIFT_MS = 2.0
MAX_TWIN_MEDIAN_MS = 3.0


def chosen_beat(a, beats: list[dict]) -> tuple[float, dict, dict] | None:
    """(the chosen beat's R peak, about; its boundaries; the annotated beat's boundaries), all in ms from the
    start of the recording, or None when no beat was cut or the beat is not annotated."""
    if not math.isfinite(a.beat_start_s):
        return None
    r_ms = (a.beat_start_s + a.config.beat_before_s) * 1000.0  # within a sample of the record's rate
    got = {k: a.beat_start_s * 1000.0 + a.fiducials_ms[k] for k in BOUNDARIES}
    ref = bd.match(beats, r_ms * bd.FS / 1000.0)
    return None if ref is None else (r_ms, got, {k: ref[k] * 1000.0 / bd.FS for k in BOUNDARIES})


def ludb_table(rates: list[float]) -> dict:
    rhythms, paced = bd.ludb_rhythms(), bd.ludb_paced()
    recs = [r for r in sorted(rhythms) if bd.rhythm_group(r, rhythms, paced) == "sinus"]
    found: dict[float, dict[int, tuple]] = {fs: {} for fs in rates}
    for rec in recs:
        path = bd.LUDB / "data" / f"{rec}.hea"
        record = read_ecg(path)
        beats = read_ludb_beats(path.with_suffix(""))
        for fs in rates:
            got = chosen_beat(analyze_ecg(record if fs == record.fs_hz else record.resampled(fs), SignalConfig()), beats)
            if got is not None:
                found[fs][rec] = got
    out = {}
    for fs in rates:
        for part in ("tune", "report"):
            rows = {}
            for k in BOUNDARIES:
                errs, shifts, n = [], [], 0
                for rec, (r_ms, got, ref) in found[fs].items():
                    if bd.part_of(rec) != part or not math.isfinite(ref[k]):
                        continue
                    n += 1
                    if math.isfinite(got[k]) and abs(got[k] - ref[k]) <= bd.MATCH_MS:  # further off: not found
                        errs.append(got[k] - ref[k])
                    base = found.get(500.0, {}).get(rec)
                    # the same beat chosen at both rates: how far the boundary moved
                    if base is not None and abs(base[0] - r_ms) < 50.0 and math.isfinite(got[k]) and math.isfinite(base[1][k]):
                        shifts.append(abs(got[k] - base[1][k]))
                e = np.asarray(errs)
                rows[k] = {
                    "n": n,
                    "within_pct": round(100.0 * float(np.sum(np.abs(e) <= CSE_TOLERANCE_MS[k])) / n, 1) if n else math.nan,
                    "mean_ms": round(float(e.mean()), 1) if e.size else math.nan,
                    "sd_ms": round(float(e.std()), 1) if e.size else math.nan,
                    "mean_shift_ms": round(float(np.mean(shifts)), 2) if shifts else math.nan,
                    "n_shift": len(shifts),
                }
            out[f"{fs:g}/{part}"] = rows
    return out


def ptbxl_twins() -> dict:
    diffs = {k: [] for k in TWIN_KEYS}
    n = 0
    for hi in sorted((PTBXL / "records500").rglob("*_hr.hea")):
        lo = PTBXL / "records100" / hi.relative_to(PTBXL / "records500").parent / hi.name.replace("_hr.hea", "_lr.hea")
        if not lo.exists():
            continue
        a_hi, a_lo = analyze_ecg(read_ecg(hi)), analyze_ecg(read_ecg(lo))
        n += 1
        for k in TWIN_KEYS:
            d = a_lo.measured.get(k, math.nan) - a_hi.measured.get(k, math.nan)
            if math.isfinite(d):
                diffs[k].append(d)
    return {"n_pairs": n, **{k: {"n": len(v), "median": round(float(np.median(v)), 1), "mean_abs": round(float(np.mean(np.abs(v))), 1),
                                 "p95_abs": round(float(np.percentile(np.abs(v), 95)), 1)} for k, v in diffs.items() if v}}


def check(ludb: dict, twins: dict, rates: list[float]) -> list[str]:
    misses = []
    for fs in rates:
        if fs < 250.0 or fs == 500.0 or 500.0 not in rates:
            continue
        for part in ("tune", "report"):
            for k in BOUNDARIES:
                row, base = ludb[f"{fs:g}/{part}"][k], ludb[f"500/{part}"][k]
                if row["within_pct"] < base["within_pct"] - MAX_SHARE_DROP:
                    misses.append(f"{fs:g} Hz {part} {k}: {row['within_pct']} % within tolerance vs {base['within_pct']} % at 500 Hz")
                if row["mean_shift_ms"] > MAX_SHIFT_MS:
                    misses.append(f"{fs:g} Hz {part} {k}: mean shift {row['mean_shift_ms']} ms from 500 Hz")
    for k in ("qrs_ms", "qt_ms"):
        if abs(twins[k]["median"]) > MAX_TWIN_MEDIAN_MS:
            misses.append(f"PTB-XL 100 vs 500 Hz: median {k} difference {twins[k]['median']} ms")
    return misses


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rates", type=float, nargs="+", default=[100.0, 250.0, 360.0, 500.0, 1000.0])
    ap.add_argument("--before", action="store_true",
                    help="delineate at each record's own rate (the behaviour before DELINEATION_FS_HZ), for comparison")
    ap.add_argument("--check", action="store_true", help="exit 1 when a rate moves the delineation (see the module text)")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args(argv)
    if args.before:  # the delineation at the record's rate: the R peaks and band-passed record as they are
        analysis_mod.at_delineation_rate = lambda signal_mv, filtered_mv, fs_hz, r_peaks, config=None: (filtered_mv, fs_hz, r_peaks)
    rates = sorted(set(args.rates))
    ludb = ludb_table(rates)
    twins = ptbxl_twins()
    mode = "at each record's own rate (--before)" if args.before else f"at {analysis_mod.DELINEATION_FS_HZ:g} Hz whatever the rate"
    print(f"Delineation {mode}. LUDB sinus records resampled; chosen beat; tuning = odd, report = even records "
          "(nothing here tuned on either); CSE tolerances")
    print(f"{'rate / part':<14}" + "".join(f"{k:>28}" for k in BOUNDARIES))
    print(f"{'':<14}" + "".join(f"{'% within, mean+-SD, shift':>28}" for _ in BOUNDARIES))
    for key, rows in ludb.items():
        fs, part = key.split("/")
        cells = [f"{r['within_pct']:5.1f} {r['mean_ms']:+5.1f}+-{r['sd_ms']:4.1f} {r['mean_shift_ms']:5.2f}" for r in rows.values()]
        print(f"{fs + ' Hz ' + part:<14}" + "".join(f"{c:>28}" for c in cells))
    print(f"PTB-XL twins, 100-Hz file minus 500-Hz file ({twins['n_pairs']} ECGs): median / mean |d| / 95th pct |d|")
    for k in TWIN_KEYS:
        if k in twins:
            t = twins[k]
            print(f"  {k:<12} {t['median']:+6.1f} {t['mean_abs']:6.1f} {t['p95_abs']:6.1f}   (n={t['n']})")
    misses = check(ludb, twins, rates)
    print("check: " + ("met" if not misses else "MISSED: " + "; ".join(misses)))
    if args.json:
        args.json.write_text(json.dumps({"mode": mode, "ludb": ludb, "ptbxl_twins": twins, "misses": misses}, indent=1))
    return 1 if (args.check and misses) else 0


if __name__ == "__main__":
    raise SystemExit(main())
