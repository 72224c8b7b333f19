"""Wave delineation on held-out LUDB records: elvmass's segmentation model against the cardiologists,
side by side with neurokit2's ``ecg_delineate(method="dwt")`` and elvmass's rule-based fiducials, in the
same run on the same records.

Data: LUDB v1.0.1 (Kalyakulina et al., IEEE Access 8:186181, 2020; ODC-By 1.0) in ``../shared/data/ludb``;
the 24 held-out records (numbers divisible by 5, :data:`elvmass.segment.ludb.HELD_OUT`) the shipped
model never saw. Scoring (:mod:`elvmass.segment.score`): per lead and boundary (P on/off, QRS on/off,
T off) every annotated boundary is matched to the nearest detection of its kind within 150 ms, inside
the lead's annotated span; sensitivity, PPV, mean +/- SD of the error (detected - annotated) and MAE in ms.

- ``segment``: the shipped model (or ``--model DIR``), per-lead Viterbi-decoded waves.
- ``neurokit2_dwt``: each lead band-passed as elvmass does (0.5-40 Hz), R peaks from elvmass's
  multi-lead detector (the same for all leads, so the comparison is of delineation, not of beat
  detection), then ``nk.ecg_delineate(lead, rpeaks, sampling_rate, method="dwt")``.
- ``rule_based``: :func:`elvmass.signal.analyze_ecg`'s global fiducials (P on, QRS on/off, T off, on the
  median beat; no P offset) placed at every R peak with their offsets from the R peak, the same in every lead.

Targets (exit status 1 when missed): the segmentation model's QRS onset and offset sensitivity >= 0.95
and MAE <= 10 ms.

Run:  python benchmarks/bench_segment.py [--records 5,10,...] [--model DIR] [--json out.json] [--no-peers]
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
import warnings
from pathlib import Path

import numpy as np

from elvmass.segment.ludb import HELD_OUT, read_ludb_record
from elvmass.segment.model import load_segmenter
from elvmass.segment.score import BOUNDARIES, score_records, segmenter_detector

LUDB = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "ludb"
TARGETS = {"qrs_on": (0.95, 10.0), "qrs_off": (0.95, 10.0)}


def neurokit_detector(rec):
    import neurokit2 as nk

    from elvmass.signal import bandpass_filter, detect_r_peaks

    fs = rec.fs_hz
    filtered = bandpass_filter(rec.signal_mv, fs, 0.5, 40.0, None)
    rpeaks = detect_r_peaks(rec.signal_mv, fs)
    keys = {"p_on": "ECG_P_Onsets", "p_off": "ECG_P_Offsets", "qrs_on": "ECG_R_Onsets", "qrs_off": "ECG_R_Offsets",
            "t_off": "ECG_T_Offsets"}
    out = []
    for lead in range(12):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                _, waves = nk.ecg_delineate(filtered[lead].astype(float), rpeaks, sampling_rate=int(fs), method="dwt")
        except Exception:  # noqa: BLE001 - a lead neurokit cannot delineate gives no boundaries
            out.append({k: [] for k in BOUNDARIES})
            continue
        found = {}
        for k, nk_key in keys.items():
            v = np.asarray(waves.get(nk_key, []), dtype=float)
            found[k] = list(v[np.isfinite(v)] / fs)
        out.append(found)
    return out


def rule_based_detector(rec):
    from elvmass.record import ECGRecord
    from elvmass.signal import analyze_ecg

    a = analyze_ecg(ECGRecord(rec.signal_mv, rec.fs_hz))
    found = {k: [] for k in BOUNDARIES}
    if math.isfinite(a.beat_start_s):
        r_chosen = a.beat_start_s + a.config.beat_before_s
        for key, fid in (("p_on", "p_on"), ("qrs_on", "qrs_on"), ("qrs_off", "qrs_off"), ("t_off", "t_off")):
            v = a.fiducials_ms[fid]
            if math.isfinite(v):
                d = a.beat_start_s + v / 1000.0 - r_chosen
                found[key] = [float(r + d) for r in a.r_peaks_s]
    return [found] * 12


def run(records, model_dir=None, peers=True) -> dict:
    recs = [read_ludb_record(LUDB, n) for n in records]
    methods = {"segment": segmenter_detector(load_segmenter(model_dir))}
    if peers:
        methods["neurokit2_dwt"] = neurokit_detector
        methods["rule_based"] = rule_based_detector
    out = {"records": list(records), "methods": {}, "seconds": {}}
    for name, detect in methods.items():
        t0 = time.perf_counter()
        scores = score_records(recs, detect)
        out["seconds"][name] = round(time.perf_counter() - t0, 2)
        out["methods"][name] = {k: s.as_dict() for k, s in scores.items()}
    return out


def _f(v, nd=3):
    return "-" if v is None or not math.isfinite(v) else f"{v:.{nd}f}"


def print_table(res: dict) -> None:
    names = list(res["methods"])
    print(f"LUDB held-out records {res['records'][0]}..{res['records'][-1]} ({len(res['records'])} records, all annotated leads)")
    print(f"{'boundary':9} {'method':14} {'sens':>6} {'PPV':>6} {'mean':>7} {'SD':>6} {'MAE':>6} {'n_true':>7}")
    for k in BOUNDARIES:
        for name in names:
            s = res["methods"][name][k]
            print(f"{k:9} {name:14} {_f(s['sensitivity'])} {_f(s['ppv'])} {_f(s['mean_ms'], 1):>7} {_f(s['sd_ms'], 1):>6} "
                  f"{_f(s['mae_ms'], 1):>6} {s['n_true']:>7}")
    print("seconds per method (this run, shared machine): " + ", ".join(f"{n} {t}" for n, t in res["seconds"].items()))


def check_targets(res: dict) -> list[str]:
    missed = []
    for k, (min_sens, max_mae) in TARGETS.items():
        s = res["methods"]["segment"][k]
        if not (s["sensitivity"] >= min_sens):
            missed.append(f"{k} sensitivity {s['sensitivity']:.3f} < {min_sens}")
        if not (s["mae_ms"] <= max_mae):
            missed.append(f"{k} MAE {s['mae_ms']:.1f} ms > {max_mae}")
    return missed


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--records", default=",".join(map(str, HELD_OUT)))
    ap.add_argument("--model", default=None, help="a model folder from `elvmass segment train` (default: the shipped one)")
    ap.add_argument("--json", default=None)
    ap.add_argument("--no-peers", action="store_true", help="score only the segmentation model")
    args = ap.parse_args(argv)
    records = [int(r) for r in args.records.split(",") if r]
    res = run(records, args.model, peers=not args.no_peers)
    print_table(res)
    missed = check_targets(res)
    res["targets_missed"] = missed
    if args.json:
        Path(args.json).write_text(json.dumps(res, indent=1, default=float) + "\n")
    for m in missed:
        print("TARGET MISSED:", m)
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
