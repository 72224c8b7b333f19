"""Can a classifier tell the built-in synthetic ECGs from real ones? (issue #15)

    python benchmarks/synth_realism.py --n 300 --out /tmp/realism [--profile internal] [--seed 0] [--part holdout]

A classifier two-sample test (Lopez-Paz & Oquab, ICLR 2017): pool N synthetic ECGs (the first
in-window, eligible ECG of each patient, read back from the written MUSE files) with the real ECGs
of the held-out part (``--part holdout``: PTB-XL strat_fold 9-10 and LUDB records 91-120, sinus,
no complete BBB, no pacing; see ``elvmass.synth.realdata``), put both through the same reader
(``elvmass.io.read_ecg``) and signal pipeline (``elvmass.signal.analyze_ecg``: 0.5-40 Hz band-pass,
the single beat nearest the middle, median-beat fiducials), and ask three classifiers, by 5-fold
stratified cross-validation, which is which:

(a) logistic regression on the single beat, 12 leads, each lead z-normalised, at 50 Hz (45 samples
    per lead);
(b) gradient boosting (scikit-learn HistGradientBoosting) on the eleven measured parameters: QRS,
    PR, QT, HR, P/R/T axes, Sokolow-Lyon, Cornell, Peguero-Lo Presti, number of quality flags;
(c) a small 1-D CNN (two conv layers) on the same beats.

Each AUC comes with a 95 % bootstrap interval over the out-of-fold scores (1,000 resamples). An AUC
of 0.5 means indistinguishable. The real set is unbalanced against the synthetic one, so classes
are weighted. Also written: the parameters and beat regions that separate most (single-feature
AUCs; the logistic weights per lead and time), a figure of every parameter's distribution synthetic
vs real, and the cart-measured parameters (QRS, QT, HR, R and T axes, as written into the MUSE
files) by sex and age decade against the 10,646 GE MUSE measurements of the Chapman-Shaoxing table
(Zheng et al., Sci Data 2020; sinus rhythms, no bundle branch block).

Exits 1 when AUC (a) > 0.80 or AUC (b) > 0.75 (the issue's targets), 0 otherwise.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

PARAMS = ("qrs_ms", "pr_ms", "qt_ms", "hr_bpm", "p_axis_deg", "r_axis_deg", "t_axis_deg",
          "sokolow_lyon_mv", "cornell_voltage_mv", "peguero_lo_presti_mv", "n_flags")
AUC_A_MAX, AUC_B_MAX = 0.80, 0.75
DOWN = 5  # 250 Hz view -> 50 Hz


def _analyse(record):
    from elvmass.signal import analyze_ecg

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        a = analyze_ecg(record)
    beat = a.view.astype(np.float64)
    n = beat.shape[1] // DOWN * DOWN
    beat50 = beat[:, :n].reshape(12, -1, DOWN).mean(axis=2)
    row = {k: a.measured.get(k, math.nan) for k in PARAMS[:7]}
    row.update({k: a.criteria.get(k, math.nan) for k in PARAMS[7:10]})
    row["n_flags"] = len(a.flags)
    row["usable"] = a.usable
    return beat50, row


def real_set(part: str, shared=None):
    from elvmass.synth.realdata import read_real, real_records

    beats, rows = [], []
    for rec in real_records(shared, part=None if part == "all" else part):
        b, row = _analyse(read_real(rec))
        row.update(source=rec.source, record_id=rec.record_id, sex=rec.sex, age_years=rec.age_years)
        beats.append(b)
        rows.append(row)
    return np.stack(beats), pd.DataFrame(rows)


def synthetic_set(n: int, seed: int, profile: str, out_dir: Path):
    from elvmass.io import read_ecg
    from elvmass.synth import SynthConfig, generate_cohort

    t0 = time.perf_counter()
    out = generate_cohort(SynthConfig(n=n, seed=seed, profile=profile), out_dir)
    t_gen = time.perf_counter() - t0
    t = out.truth.copy()
    t["abs_days"] = t.days_from_imaging.abs()
    first = t[t.eligible_ecg].sort_values(["patient_id", "abs_days"]).drop_duplicates("patient_id")
    beats, rows = [], []
    for tr in first.itertuples():
        b, row = _analyse(read_ecg(out_dir / tr.ecg_file))
        row.update(source="synthetic", record_id=tr.patient_id, sex=tr.sex, age_years=tr.age_years)
        beats.append(b)
        rows.append(row)
    return np.stack(beats), pd.DataFrame(rows), first, t_gen


def _znorm(beats: np.ndarray) -> np.ndarray:
    mu = beats.mean(axis=2, keepdims=True)
    sd = beats.std(axis=2, keepdims=True)
    return np.nan_to_num((beats - mu) / np.where(sd > 1e-9, sd, 1.0))


def _auc(y, s) -> float:
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(y, s))


def _boot(y, s, n_boot=1000, seed=0) -> tuple[float, float]:
    rng = np.random.default_rng(seed)
    vals = []
    idx = np.arange(len(y))
    for _ in range(n_boot):
        b = rng.choice(idx, len(idx))
        if y[b].min() == y[b].max():
            continue
        vals.append(_auc(y[b], s[b]))
    return float(np.percentile(vals, 2.5)), float(np.percentile(vals, 97.5))


def _folds(y, seed=0):
    from sklearn.model_selection import StratifiedKFold

    return list(StratifiedKFold(5, shuffle=True, random_state=seed).split(np.zeros(len(y)), y))


def cv_logistic(X, y, folds):
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    s = np.zeros(len(y))
    for tr, te in folds:
        m = make_pipeline(StandardScaler(), LogisticRegression(C=0.05, max_iter=2000, class_weight="balanced"))
        m.fit(X[tr], y[tr])
        s[te] = m.predict_proba(X[te])[:, 1]
    full = make_pipeline(StandardScaler(), LogisticRegression(C=0.05, max_iter=2000, class_weight="balanced")).fit(X, y)
    w = full[-1].coef_[0] / full[0].scale_
    return s, w


def cv_boosting(X, y, folds):
    from sklearn.ensemble import HistGradientBoostingClassifier

    s = np.zeros(len(y))
    for tr, te in folds:
        m = HistGradientBoostingClassifier(max_iter=150, learning_rate=0.05, max_leaf_nodes=15, class_weight="balanced", random_state=0)
        m.fit(X[tr], y[tr])
        s[te] = m.predict_proba(X[te])[:, 1]
    return s


def cv_cnn(X, y, folds, epochs=40, seed=0):
    import torch
    from torch import nn

    torch.set_num_threads(1)
    s = np.zeros(len(y))
    for k, (tr, te) in enumerate(folds):
        torch.manual_seed(seed + k)
        net = nn.Sequential(
            nn.Conv1d(12, 16, 5, padding=2), nn.ReLU(), nn.MaxPool1d(2),
            nn.Conv1d(16, 32, 5, padding=2), nn.ReLU(), nn.AdaptiveAvgPool1d(1), nn.Flatten(), nn.Dropout(0.3), nn.Linear(32, 1),
        )
        xt = torch.tensor(X[tr], dtype=torch.float32)
        yt = torch.tensor(y[tr], dtype=torch.float32)
        pos = float(yt.mean())
        lossf = nn.BCEWithLogitsLoss(pos_weight=torch.tensor((1 - pos) / max(pos, 1e-6)))
        opt = torch.optim.Adam(net.parameters(), lr=3e-3, weight_decay=1e-3)
        g = torch.Generator().manual_seed(seed + k)
        for _ in range(epochs):
            net.train()
            for b in torch.randperm(len(tr), generator=g).split(32):
                opt.zero_grad()
                lossf(net(xt[b]).squeeze(1), yt[b]).backward()
                opt.step()
        net.eval()
        with torch.no_grad():
            s[te] = torch.sigmoid(net(torch.tensor(X[te], dtype=torch.float32)).squeeze(1)).numpy()
    return s


def chapman_comparison(synth_truth: pd.DataFrame, shared) -> dict:
    """Cart-measured parameters by sex and age decade: synthetic device values vs Chapman GE MUSE."""
    ch = pd.read_csv(Path(shared) / "chapman" / "Diagnostics.csv")
    ch = ch[ch.Rhythm.isin(["SR", "SB", "ST", "SA"]) & ~ch.Beat.fillna("").str.contains("BBB|PACE")]
    ch = ch.assign(sex=ch.Gender.map({"MALE": "M", "FEMALE": "F"}), decade=(ch.PatientAge // 10 * 10).clip(30, 80))
    cols = {"qrs_ms": "QRSDuration", "qt_ms": "QTInterval", "hr_bpm": "VentricularRate", "r_axis_deg": "RAxis", "t_axis_deg": "TAxis"}
    sy = synth_truth.assign(decade=(synth_truth.age_years // 10 * 10).clip(30, 80))
    out: dict = {"chapman_n": int(len(ch)), "synthetic_n": int(len(sy)), "by_sex_decade": {}, "smd_overall": {}}
    for key, ccol in cols.items():
        a, b = sy[f"device_{key}"].astype(float), ch[ccol].astype(float)
        out["smd_overall"][key] = round(float((a.mean() - b.mean()) / math.sqrt((a.var() + b.var()) / 2)), 3)
    for (sex, dec), g in sy.groupby(["sex", "decade"]):
        c = ch[(ch.sex == sex) & (ch.decade == dec)]
        if len(g) < 5 or len(c) < 20:
            continue
        cell = {"n_synthetic": int(len(g)), "n_chapman": int(len(c))}
        for key, ccol in cols.items():
            a, b = g[f"device_{key}"].astype(float), c[ccol].astype(float)
            cell[key] = {"synthetic_median": round(float(a.median()), 1), "chapman_median": round(float(b.median()), 1),
                         "synthetic_iqr": round(float(a.quantile(0.75) - a.quantile(0.25)), 1),
                         "chapman_iqr": round(float(b.quantile(0.75) - b.quantile(0.25)), 1)}
        out["by_sex_decade"][f"{sex}{int(dec)}"] = cell
    return out


def _figures(out: Path, params: pd.DataFrame, y: np.ndarray, w: np.ndarray, beats_real: np.ndarray) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from elvmass.record import LEADS as LEAD_NAMES

    fig, axes = plt.subplots(3, 4, figsize=(14, 9))
    for ax, key in zip(axes.flat, PARAMS):
        v = params[key].astype(float)
        lo, hi = np.nanpercentile(v, [1, 99])
        bins = np.linspace(lo, hi + 1e-9, 30)
        ax.hist(v[y == 0].dropna(), bins=bins, density=True, alpha=0.5, label="real")
        ax.hist(v[y == 1].dropna(), bins=bins, density=True, alpha=0.5, label="synthetic")
        ax.set_title(key)
    axes.flat[-1].axis("off")
    axes.flat[0].legend()
    fig.tight_layout()
    fig.savefig(out / "parameters.png", dpi=80)
    plt.close(fig)
    wl = w.reshape(12, -1)
    mean_beat = beats_real.mean(axis=0)
    fig, axes = plt.subplots(3, 4, figsize=(14, 8), sharex=True)
    t = np.arange(wl.shape[1]) * 1000.0 / 50.0 - 350.0
    for i, ax in enumerate(axes.flat):
        ax.plot(t, mean_beat[i] / (np.abs(mean_beat[i]).max() + 1e-9), color="k", lw=1)
        ax.bar(t, wl[i] / (np.abs(wl).max() + 1e-12), width=15, color="tab:red", alpha=0.6)
        ax.set_title(LEAD_NAMES[i])
    fig.suptitle("logistic weights (red, synthetic +) on the mean real beat (black), ms from R")
    fig.tight_layout()
    fig.savefig(out / "beat_weights.png", dpi=80)
    plt.close(fig)
    return ["parameters.png", "beat_weights.png"]


def run(n: int, seed: int, profile: str, part: str, out: Path, shared=None, cnn_epochs: int = 40) -> dict:
    from elvmass.synth.realdata import DEFAULT_SHARED

    shared = Path(shared) if shared is not None else DEFAULT_SHARED
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    cache = out / f"real_{part}.npz"
    if cache.exists():  # the real side does not change between runs: reuse it
        z = np.load(cache, allow_pickle=False)
        rb, rp = z["beats"], pd.read_csv(out / f"real_{part}.csv")
    else:
        rb, rp = real_set(part, shared)
        np.savez(cache, beats=rb)
        rp.to_csv(out / f"real_{part}.csv", index=False)
    with tempfile.TemporaryDirectory() as tmp:
        sb, sp, first, t_gen = synthetic_set(n, seed, profile, Path(tmp))
    beats = np.concatenate([rb, sb])
    params = pd.concat([rp, sp], ignore_index=True)
    y = np.r_[np.zeros(len(rb)), np.ones(len(sb))].astype(int)
    folds = _folds(y, seed)
    Z = _znorm(beats)
    Xa = Z.reshape(len(Z), -1)
    Xb = params[list(PARAMS)].astype(float).to_numpy()
    sa, w = cv_logistic(Xa, y, folds)
    sb_ = cv_boosting(Xb, y, folds)
    sc = cv_cnn(Z, y, folds, epochs=cnn_epochs, seed=seed)
    res: dict = {"n_real": int(len(rb)), "n_synthetic": int(len(sb)), "part": part, "profile": profile, "seed": seed,
                 "real_sources": params[y == 0].source.value_counts().to_dict()}
    for name, s in (("a_logistic_beat", sa), ("b_boosting_parameters", sb_), ("c_cnn_beat", sc)):
        lo, hi = _boot(y, s)
        res[name] = {"auc": round(_auc(y, s), 3), "ci95": [round(lo, 3), round(hi, 3)]}
    single = {}
    for i, key in enumerate(PARAMS):
        v = Xb[:, i]
        ok = np.isfinite(v)
        single[key] = round(_auc(y[ok], v[ok]), 3) if ok.sum() > 10 and len(set(y[ok])) == 2 else math.nan
    res["single_parameter_auc"] = dict(sorted(single.items(), key=lambda kv: -abs((kv[1] if kv[1] == kv[1] else 0.5) - 0.5)))
    from elvmass.record import LEADS as LEAD_NAMES

    wl = np.abs(w.reshape(12, -1))
    top = np.argsort(wl.ravel())[::-1][:8]
    res["top_beat_regions"] = [f"{LEAD_NAMES[i // wl.shape[1]]} {int((i % wl.shape[1]) * 20 - 350)} ms" for i in top]
    res["lead_weight_share"] = {LEAD_NAMES[i]: round(float(wl[i].sum() / wl.sum()), 3) for i in range(12)}
    res["parameter_medians"] = {
        key: {"real": round(float(np.nanmedian(Xb[y == 0, i])), 1), "synthetic": round(float(np.nanmedian(Xb[y == 1, i])), 1)}
        for i, key in enumerate(PARAMS)
    }
    res["chapman"] = chapman_comparison(first, shared)
    res["figures"] = _figures(out, params, y, w, rb)
    res["generation_s"] = round(t_gen, 1)
    res["total_s"] = round(time.perf_counter() - t0, 1)
    res["pass"] = bool(res["a_logistic_beat"]["auc"] <= AUC_A_MAX and res["b_boosting_parameters"]["auc"] <= AUC_B_MAX)
    (out / "realism.json").write_text(json.dumps(res, indent=2, default=float) + "\n")
    params.assign(label=y).to_csv(out / "parameters.csv", index=False)
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=300, help="synthetic patients (eligible)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--profile", default="internal", choices=["internal", "external"])
    ap.add_argument("--part", default="holdout", choices=["holdout", "fit", "all"], help="which real records to compare with")
    ap.add_argument("--cnn-epochs", type=int, default=40)
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    res = run(args.n, args.seed, args.profile, args.part, Path(args.out), cnn_epochs=args.cnn_epochs)
    for name in ("a_logistic_beat", "b_boosting_parameters", "c_cnn_beat"):
        r = res[name]
        print(f"{name:<24} AUC {r['auc']:.3f}  [{r['ci95'][0]:.3f}, {r['ci95'][1]:.3f}]")
    print(f"real {res['n_real']} ({res['real_sources']}), synthetic {res['n_synthetic']}; total {res['total_s']} s")
    print("single-parameter AUC:", res["single_parameter_auc"])
    print("medians real/synthetic:", {k: (v["real"], v["synthetic"]) for k, v in res["parameter_medians"].items()})
    print("beat regions that separate most:", ", ".join(res["top_beat_regions"]))
    print("Chapman SMD (synthetic device vs GE MUSE):", res["chapman"]["smd_overall"])
    print("PASS" if res["pass"] else f"FAIL: targets (a) <= {AUC_A_MAX}, (b) <= {AUC_B_MAX}")
    sys.exit(0 if res["pass"] else 1)


if __name__ == "__main__":
    main()
