"""Coverage of the cross-conformal intervals on a study's out-of-fold predictions.

    python benchmarks/conformal_coverage.py demo-out/study            # the demo's study folder
    python benchmarks/conformal_coverage.py STUDY_DIR --models elvmassnet,demographics

Reads ``predictions.csv`` (true LVM, sex, BSA, fold, every model's out-of-fold LVM) and recomputes the
intervals with :mod:`elvmass.evaluate.conformal` — the same function the study uses — at 80/90/95 %,
normalised and absolute scores: coverage overall, by sex, by true-LVM tertile, mean width, and the LVH
probability's Brier score and ECE. Target (exit status 1 when missed): 90 % coverage between 88 % and
92 % overall and for each sex, for every model, and the reference model's LVH-probability Brier score
below the demographics comparator's.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import pandas as pd

from elvmass.evaluate import conformal


def measure(pred: pd.DataFrame, models: list[str]) -> dict:
    y = pred["lvm_g"].to_numpy(float)
    sex = pred["sex"].to_numpy(object)
    bsa = pred["bsa_m2"].to_numpy(float)
    folds = pred["fold"].to_numpy(int)
    lvh = pred["lvh"].map({True: 1.0, False: 0.0, "True": 1.0, "False": 0.0}).to_numpy(float)
    tert, cuts = conformal.lvm_tertiles(y)
    out = {"n": int(len(pred)), "tertile_cutoffs_g": cuts, "models": {}}
    for m in models:
        p = pred[f"{m}_lvm_g"].to_numpy(float)
        res = {}
        for level in conformal.REPORTED_LEVELS:
            iv = conformal.cross_conformal(y, p, sex, folds, level, "normalised", bsa, {"M": 72.0, "F": 55.0})
            res[f"normalised_{level}"] = conformal.coverage_summary(y, iv["low"], iv["high"], sex, tert)
            if level == conformal.DEFAULT_LEVEL:
                res["lvh_probability"] = conformal.probability_calibration(lvh, iv["lvh_probability"])
        iv = conformal.cross_conformal(y, p, sex, folds, conformal.DEFAULT_LEVEL, "absolute")
        res["absolute_0.9"] = conformal.coverage_summary(y, iv["low"], iv["high"], sex, tert)
        out["models"][m] = res
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("study_dir", type=Path)
    ap.add_argument("--models", default="elvmassnet,demographics")
    ap.add_argument("--json", type=Path, help="also write the numbers here")
    args = ap.parse_args(argv)
    pred = pd.read_csv(args.study_dir / "predictions.csv", dtype={"patient_id": str})
    models = [m for m in args.models.split(",") if f"{m}_lvm_g" in pred.columns]
    res = measure(pred, models)
    ok = True
    print(f"{res['n']} cases; true-LVM tertile cut-offs {res['tertile_cutoffs_g'][0]:.0f} / {res['tertile_cutoffs_g'][1]:.0f} g")
    for m, r in res["models"].items():
        for key in ("normalised_0.8", "normalised_0.9", "normalised_0.95", "absolute_0.9"):
            b = r[key]
            tt = " ".join(f"{t} {b['by_group'][t]['coverage']:.3f}/{b['by_group'][t]['mean_width_g']:.0f} g"
                          for t in ("low", "middle", "high"))
            print(f"{m:>14} {key:>16}: coverage {b['coverage']:.3f} (M {b['by_sex']['M']['coverage']:.3f}, "
                  f"F {b['by_sex']['F']['coverage']:.3f}), width {b['mean_width_g']:.1f} g; tertiles {tt}")
        pb = r["lvh_probability"]
        print(f"{m:>14}  LVH probability: Brier {pb['brier']:.4f}, ECE {pb['ece']:.4f}")
        b = r["normalised_0.9"]
        for cov in (b["coverage"], b["by_sex"]["M"]["coverage"], b["by_sex"]["F"]["coverage"]):
            ok &= 0.88 <= cov <= 0.92
    if "elvmassnet" in res["models"] and "demographics" in res["models"]:
        ok &= res["models"]["elvmassnet"]["lvh_probability"]["brier"] < res["models"]["demographics"]["lvh_probability"]["brier"]
    if args.json:
        args.json.write_text(json.dumps(res, indent=2, default=float))
    print("target met" if ok else "TARGET MISSED: 90 % coverage outside 88-92 % or Brier not better than demographics")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
