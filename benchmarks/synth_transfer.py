"""Does a model trained only on the built-in synthetic cohort rank real LVH? (issue #15, the transfer figure)

    python benchmarks/synth_transfer.py --model BUNDLE_DIR --out /tmp/transfer [--min-auc 0.5]

A fidelity signal for the synthetic generator, not a target to tune it against. The bundle (trained
with ``elvmass train`` on the default synthetic cohort: ``elvmass synth`` -> ``elvmass cohort build``
-> ``elvmass train``) predicts every record of the PTB-XL sample (``../shared/data/ptbxl-sample``,
records 1-200, 500 Hz; demographics from ``ptbxl_database.csv`` through the WFDB reader). The label
is PTB-XL's cardiologist statement ``LVH`` (read from the ECG by cardiologists, not measured by
imaging; Wagner et al., Sci Data 2020). Scores compared on the same records:

- the bundle's predicted LVM (g), and LVMI (g/m², records with height and weight);
- Sokolow-Lyon (mV) and Cornell voltage (mV), measured by elvmass's own signal pipeline
  (``elvmass.signal.analyze_ecg``) on the same band-passed beat.

Records ``predict`` refuses (pacing, excessive noise, too few beats) are left out and counted; the
criteria AUCs use the same records, so the comparison is paired. Each AUC has a 95 % bootstrap
interval (1,000 resamples of records). Writes ``transfer.json`` and ``transfer.png`` (ROC curves).

Exits 1 when the predicted-LVM AUC is not above ``--min-auc`` (default 0.5: a model that ranks real
LVH no better than chance has learnt nothing that transfers), 0 otherwise.
"""

from __future__ import annotations

import argparse
import ast
import json
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

PTBXL = Path(__file__).resolve().parents[2] / "shared" / "data" / "ptbxl-sample"


def _auc(y, s) -> float:
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(y, s))


def _boot(y, s, n_boot=1000, seed=0) -> list[float]:
    rng = np.random.default_rng(seed)
    idx = np.arange(len(y))
    vals = []
    for _ in range(n_boot):
        b = rng.choice(idx, len(idx))
        if y[b].min() != y[b].max():
            vals.append(_auc(y[b], s[b]))
    return [round(float(np.percentile(vals, 2.5)), 3), round(float(np.percentile(vals, 97.5)), 3)]


def ptbxl_labels(ptbxl: Path) -> pd.DataFrame:
    """ecg_id -> LVH statement (1/0) and pacemaker, from ``ptbxl_database.csv``."""
    db = pd.read_csv(ptbxl / "ptbxl_database.csv", index_col="ecg_id")
    codes = db["scp_codes"].map(ast.literal_eval)
    return pd.DataFrame({"lvh": codes.map(lambda c: int("LVH" in c)),
                         "path": [str(ptbxl / f) for f in db["filename_hr"]]}, index=db.index)


def run(model_dir: Path, out: Path, ptbxl: Path = PTBXL) -> dict:
    from elvmass.bundle import load_bundle
    from elvmass.io import read_ecg
    from elvmass.predict import predict_files
    from elvmass.signal.analysis import analyze_ecg

    t0 = time.perf_counter()
    labels = ptbxl_labels(ptbxl)
    bundle = load_bundle(model_dir)
    preds, errors = predict_files(bundle, list(labels["path"]))
    by_path = {str(Path(p.path).with_suffix("")) if Path(p.path).suffix else p.path: p for p in preds}
    rows = []
    for ecg_id, r in labels.iterrows():
        p = by_path.get(r["path"]) or by_path.get(r["path"] + ".hea")
        if p is None:
            continue
        a = analyze_ecg(read_ecg(r["path"]))
        rows.append({"ecg_id": ecg_id, "lvh": r["lvh"], "lvm_g": p.lvm_g, "lvmi_g_m2": p.lvmi_g_m2,
                     "sokolow_lyon_mv": a.criteria.get("sokolow_lyon_mv"),
                     "cornell_voltage_mv": a.criteria.get("cornell_voltage_mv")})
    d = pd.DataFrame(rows)
    y = d["lvh"].to_numpy()
    res: dict = {"model": str(model_dir), "n_records": int(len(labels)), "n_scored": int(len(d)),
                 "n_refused": int(len(labels) - len(d)), "n_lvh": int(y.sum()),
                 "refused": [str(e) for e in errors], "auc": {}}
    curves = {}
    for col in ("lvm_g", "lvmi_g_m2", "sokolow_lyon_mv", "cornell_voltage_mv"):
        m = d[col].notna().to_numpy()
        s = d.loc[m, col].to_numpy(dtype=float)
        if y[m].sum() < 5 or (1 - y[m]).sum() < 5:  # too few of either class for an AUC worth reporting
            res["auc"][col] = {"auc": None, "n": int(m.sum()), "n_lvh": int(y[m].sum())}
            continue
        res["auc"][col] = {"auc": round(_auc(y[m], s), 3), "ci95": _boot(y[m], s), "n": int(m.sum()),
                           "n_lvh": int(y[m].sum())}
        curves[col] = (y[m], s)
    res["total_s"] = round(time.perf_counter() - t0, 1)
    out.mkdir(parents=True, exist_ok=True)
    d.to_csv(out / "transfer_scores.csv", index=False)
    _figure(curves, res, out / "transfer.png")
    (out / "transfer.json").write_text(json.dumps(res, indent=2) + "\n")
    return res


def _figure(curves: dict, res: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.metrics import roc_curve

    names = {"lvm_g": "predicted LVM", "lvmi_g_m2": "predicted LVMI", "sokolow_lyon_mv": "Sokolow-Lyon",
             "cornell_voltage_mv": "Cornell voltage"}
    fig, ax = plt.subplots(figsize=(5, 5))
    for col, (y, s) in curves.items():
        fpr, tpr, _ = roc_curve(y, s)
        a = res["auc"][col]
        ax.plot(fpr, tpr, label=f"{names[col]}: AUC {a['auc']:.2f} [{a['ci95'][0]:.2f}, {a['ci95'][1]:.2f}]")
    ax.plot([0, 1], [0, 1], ":", color="grey")
    ax.set(xlabel="1 - specificity", ylabel="sensitivity",
           title=f"PTB-XL LVH statement (n={res['n_scored']}, {res['n_lvh']} LVH)\nmodel trained on synthetic ECGs only")
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", required=True, help="bundle folder from `elvmass train`")
    ap.add_argument("--out", required=True)
    ap.add_argument("--min-auc", type=float, default=0.5, help="exit 1 unless the predicted-LVM AUC is above this")
    args = ap.parse_args()
    res = run(Path(args.model), Path(args.out))
    for col, a in res["auc"].items():
        if a["auc"] is None:
            print(f"{col:<20} too few records ({a['n']}, {a['n_lvh']} LVH) for an AUC")
            continue
        print(f"{col:<20} AUC {a['auc']:.3f}  [{a['ci95'][0]:.3f}, {a['ci95'][1]:.3f}]  n={a['n']} ({a['n_lvh']} LVH)")
    print(f"scored {res['n_scored']} of {res['n_records']} PTB-XL records ({res['n_refused']} refused); {res['total_s']} s")
    ok = (res["auc"].get("lvm_g", {}).get("auc") or 0.0) > args.min_auc
    print("PASS" if ok else f"FAIL: predicted-LVM AUC not above {args.min_auc}")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
