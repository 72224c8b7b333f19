"""Study figures (matplotlib, Agg backend, returned as PNG bytes).

* :func:`scatter_figure`: predicted vs true LVM per model, identity line;
* :func:`bland_altman_figure`: difference vs mean with bias and 95 % limits of agreement;
* :func:`roc_figure`: LVH ROC curves of predicted LVMI, by sex;
* :func:`distribution_figure`: LVM histograms by sex;
* :func:`learning_curves_figure`: training and validation MAE per epoch, every fold.
"""

from __future__ import annotations

import io

import numpy as np
import pandas as pd


def _plt():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def _png(fig) -> bytes:
    buf = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    _plt().close(fig)
    return buf.getvalue()


def _model_columns(pred: pd.DataFrame) -> list[str]:
    return [c[: -len("_lvm_g")] for c in pred.columns if c.endswith("_lvm_g") and c != "lvm_g"]


def scatter_figure(pred: pd.DataFrame, models: list[str] | None = None) -> bytes:
    plt = _plt()
    models = models or _model_columns(pred)
    fig, axes = plt.subplots(1, len(models), figsize=(3.6 * len(models), 3.6), squeeze=False)
    y = pred["lvm_g"].to_numpy(float)
    lo, hi = np.nanmin(y), np.nanmax(y)
    for ax, m in zip(axes[0], models):
        p = pred[f"{m}_lvm_g"].to_numpy(float)
        for sex, color in (("M", "tab:blue"), ("F", "tab:red")):
            sel = (pred["sex"] == sex).to_numpy() & np.isfinite(p)
            ax.scatter(y[sel], p[sel], s=6, alpha=0.5, color=color, label=sex)
        ax.plot([lo, hi], [lo, hi], "k--", lw=1)
        ax.set_title(m, fontsize=9)
        ax.set_xlabel("true LVM (g)")
        ax.set_ylabel("predicted LVM (g)")
        ax.legend(fontsize=7)
    return _png(fig)


def bland_altman_figure(pred: pd.DataFrame, models: list[str] | None = None) -> bytes:
    plt = _plt()
    models = models or _model_columns(pred)
    fig, axes = plt.subplots(1, len(models), figsize=(3.6 * len(models), 3.4), squeeze=False)
    y = pred["lvm_g"].to_numpy(float)
    for ax, m in zip(axes[0], models):
        p = pred[f"{m}_lvm_g"].to_numpy(float)
        ok = np.isfinite(p) & np.isfinite(y)
        mean, diff = (p[ok] + y[ok]) / 2, p[ok] - y[ok]
        bias, sd = float(diff.mean()), float(diff.std(ddof=1)) if ok.sum() > 1 else 0.0
        ax.scatter(mean, diff, s=5, alpha=0.5)
        for v, style in ((bias, "-"), (bias + 1.96 * sd, "--"), (bias - 1.96 * sd, "--")):
            ax.axhline(v, color="k", ls=style, lw=1)
        ax.set_title(f"{m}\nbias {bias:.1f} g, LoA ±{1.96 * sd:.1f} g", fontsize=9)
        ax.set_xlabel("mean of predicted and true (g)")
        ax.set_ylabel("predicted − true (g)")
    return _png(fig)


def _roc(y: np.ndarray, s: np.ndarray):
    """(false-positive rate, true-positive rate), one point per distinct score (tied cases enter together,
    so the curve's trapezoid area is the c-statistic with ties counted one half)."""
    order = np.argsort(-s, kind="mergesort")
    y, s = y[order], s[order]
    last_of_tie = np.r_[np.flatnonzero(np.diff(s)), len(s) - 1]
    tps = np.concatenate([[0], np.cumsum(y)[last_of_tie]])
    fps = np.concatenate([[0], np.cumsum(~y)[last_of_tie]])
    return fps / max(1, (~y).sum()), tps / max(1, y.sum())


def roc_figure(pred: pd.DataFrame, models: list[str] | None = None) -> bytes:
    from elvmass.evaluate.metrics import roc_auc

    plt = _plt()
    models = models or _model_columns(pred)
    fig, axes = plt.subplots(1, 2, figsize=(8, 3.8), squeeze=False)
    truth = pred["lvh"].astype("float").to_numpy()
    for ax, (sex, label) in zip(axes[0], (("M", "male"), ("F", "female"))):
        for m in models:
            s = pred[f"{m}_lvmi_g_m2"].to_numpy(float)
            sel = (pred["sex"] == sex).to_numpy() & np.isfinite(s) & np.isfinite(truth)
            if sel.sum() < 2 or truth[sel].min() == truth[sel].max():
                continue
            fpr, tpr = _roc(truth[sel].astype(bool), s[sel])
            ax.plot(fpr, tpr, lw=1.3, label=f"{m} (AUC {roc_auc(truth[sel].astype(bool), s[sel]):.2f})")
        ax.plot([0, 1], [0, 1], "k:", lw=1)
        ax.set_title(f"LVH from predicted LVMI, {label}", fontsize=9)
        ax.set_xlabel("1 − specificity")
        ax.set_ylabel("sensitivity")
        ax.legend(fontsize=6, loc="lower right")
    return _png(fig)


def distribution_figure(pred: pd.DataFrame) -> bytes:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(5, 3.4))
    bins = np.linspace(np.nanmin(pred["lvm_g"]), np.nanmax(pred["lvm_g"]), 30)
    for sex, color, label in (("M", "tab:blue", "male"), ("F", "tab:red", "female")):
        v = pred.loc[pred["sex"] == sex, "lvm_g"].to_numpy(float)
        ax.hist(v, bins=bins, alpha=0.5, color=color, label=f"{label} (n={len(v)}, mean {np.nanmean(v):.0f} g)")
    ax.set_xlabel("imaging LVM (g)")
    ax.set_ylabel("patients")
    ax.legend(fontsize=7)
    return _png(fig)


def learning_curves_figure(histories: dict[str, list[list[dict]]]) -> bytes:
    plt = _plt()
    names = list(histories)
    fig, axes = plt.subplots(1, max(1, len(names)), figsize=(3.8 * max(1, len(names)), 3.2), squeeze=False)
    for ax, name in zip(axes[0], names):
        for k, hist in enumerate(histories[name]):
            ep = [h["epoch"] for h in hist]
            line, = ax.plot(ep, [h["val_mae_g"] for h in hist], lw=1.2, label=f"fold {k + 1} val")
            ax.plot(ep, [h["train_mae_g"] for h in hist], lw=0.8, ls="--", color=line.get_color())
        ax.set_title(f"{name} (dashed: training)", fontsize=9)
        ax.set_xlabel("epoch")
        ax.set_ylabel("MAE (g)")
        ax.legend(fontsize=6)
    return _png(fig)


def reliability_figure(results: dict) -> bytes:
    """Reliability diagram of every model's out-of-fold LVH probability (observed frequency against
    mean predicted probability per bin; the diagonal is perfect calibration)."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(4.2, 4.2))
    ax.plot([0, 1], [0, 1], "k--", lw=1)
    for name, m in results.get("models", {}).items():
        p = (m.get("intervals") or {}).get("lvh_probability") or {}
        bins = p.get("bins") or []
        if bins:
            ax.plot([b["mean_probability"] for b in bins], [b["observed"] for b in bins], "o-", ms=3,
                    label=f"{name} (Brier {p['brier']:.3f}, ECE {p['ece']:.3f})")
    ax.set_xlabel("predicted LVH probability")
    ax.set_ylabel("observed LVH frequency")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.legend(fontsize=6)
    return _png(fig)


def cohort_shift_figure(pred: pd.DataFrame, training_histogram: dict | None) -> bytes:
    """The paper's Figure 3: true-LVM distribution of the external cohort beside the training cohort's, by
    sex, as densities (the training side from the LVM histogram stored in the bundle)."""
    plt = _plt()
    fig, axes = plt.subplots(1, 2, figsize=(8.5, 3.4), squeeze=False)
    edges = np.asarray((training_histogram or {}).get("edges_g") or np.arange(30, 610, 10), float)
    for ax, (sex, label) in zip(axes[0], (("M", "male"), ("F", "female"))):
        v = pred.loc[pred["sex"] == sex, "lvm_g"].to_numpy(float)
        v = v[np.isfinite(v)]
        if v.size:
            ax.hist(v, bins=edges, density=True, alpha=0.45, color="tab:orange",
                    label=f"external (n={v.size}, mean {v.mean():.0f} g)")
        counts = np.asarray(((training_histogram or {}).get("counts") or {}).get(sex) or [], float)
        if counts.size == len(edges) - 1 and counts.sum() > 0:
            dens = counts / (counts.sum() * np.diff(edges))
            centres = (edges[:-1] + edges[1:]) / 2
            mean = float((centres * counts).sum() / counts.sum())
            ax.step(edges[:-1], dens, where="post", color="k", lw=1.3,
                    label=f"training (n={int(counts.sum())}, mean {mean:.0f} g)")
        ax.set_title(f"true LVM, {label}", fontsize=9)
        ax.set_xlabel("LVM (g; echo rows converted)")
        ax.set_ylabel("density")
        ax.set_xlim(30, max(300.0, float(np.nanmax(v)) + 10 if v.size else 300.0))
        ax.legend(fontsize=7)
    return _png(fig)


def recalibration_curve_figure(results: dict) -> bytes:
    """MAE after recalibration against the number of local cases k (mean ± SD across draws), the
    uncalibrated MAE as a dashed line, per model."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(5.2, 3.6))
    for name, m in results.get("models", {}).items():
        rec = {int(k): v for k, v in (m.get("recalibrated") or {}).items() if "mae_g" in v}
        if not rec:
            continue
        ks = sorted(rec)
        mean = [rec[k]["mae_g"]["mean"] for k in ks]
        sd = [rec[k]["mae_g"]["sd"] or 0.0 for k in ks]
        line = ax.errorbar(ks, mean, yerr=sd, marker="o", ms=3, capsize=2, lw=1.2, label=name)
        ax.axhline(m["uncalibrated"]["mae_g"], color=line[0].get_color(), ls="--", lw=0.8)
    ax.set_xlabel("local labelled cases k")
    ax.set_ylabel("MAE on the other cases (g)")
    ax.set_title("recalibration (dashed: uncalibrated)", fontsize=9)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=6)
    return _png(fig)
