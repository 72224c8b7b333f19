"""Regression and LVH-classification metrics of the eLVMass-Net study.

* LV mass: MAE (g) and MAPE (%).
* LVH: predicted LVMI (predicted LVM / BSA) against the true LVH label, with sex-specific
  cut-offs; accuracy, sensitivity, specificity, PPV, F1 and the c-statistic (AUC).

The c-statistic is the AUC of predicted LVMI. Across both sexes the cut-offs differ, so the
pooled AUC ranks cases by predicted LVMI divided by their own sex's cut-off (within one sex
this is the same ranking as LVMI itself).

    >>> import numpy as np
    >>> mae_g(np.array([100., 120.]), np.array([110., 110.]))
    10.0
    >>> round(mape_pct(np.array([100., 200.]), np.array([110., 180.])), 1)
    10.0
"""

from __future__ import annotations

import math

import numpy as np

DEFAULT_CUTOFFS_G_M2 = {"M": 72.0, "F": 55.0}


def mae_g(y_true, y_pred) -> float:
    """Mean absolute error in grams (NaN pairs ignored)."""
    y_true, y_pred = np.asarray(y_true, float), np.asarray(y_pred, float)
    ok = np.isfinite(y_true) & np.isfinite(y_pred)
    return float(np.mean(np.abs(y_true[ok] - y_pred[ok]))) if ok.any() else math.nan


def mape_pct(y_true, y_pred) -> float:
    """Mean absolute percentage error (%), relative to the true value."""
    y_true, y_pred = np.asarray(y_true, float), np.asarray(y_pred, float)
    ok = np.isfinite(y_true) & np.isfinite(y_pred) & (y_true != 0)
    return float(np.mean(np.abs(y_true[ok] - y_pred[ok]) / np.abs(y_true[ok])) * 100) if ok.any() else math.nan


def roc_auc(y_true, score) -> float:
    """Area under the ROC curve (Mann-Whitney statistic, ties count one half)."""
    y_true = np.asarray(y_true).astype(bool)
    score = np.asarray(score, float)
    ok = np.isfinite(score)
    y_true, score = y_true[ok], score[ok]
    n1, n0 = int(y_true.sum()), int((~y_true).sum())
    if n1 == 0 or n0 == 0:
        return math.nan
    from scipy.stats import rankdata

    ranks = rankdata(score)
    return float((ranks[y_true].sum() - n1 * (n1 + 1) / 2) / (n1 * n0))


def lvh_score(pred_lvmi_g_m2, sex, cutoffs: dict[str, float] = DEFAULT_CUTOFFS_G_M2) -> np.ndarray:
    """Predicted LVMI divided by the sex-specific cut-off (> 1 means LVH)."""
    pred = np.asarray(pred_lvmi_g_m2, float)
    sex = np.asarray(sex, dtype=object)
    cut = np.array([cutoffs.get(str(s), math.nan) for s in sex], float)
    return pred / cut


def lvh_metrics(true_lvh, pred_lvmi_g_m2, sex, cutoffs: dict[str, float] = DEFAULT_CUTOFFS_G_M2) -> dict[str, float]:
    """LVH classification from predicted LVMI: accuracy, sensitivity, specificity, PPV, F1, c-statistic.

    >>> m = lvh_metrics([True, False, True, False], [80., 60., 60., 50.], ["M", "M", "F", "F"])
    >>> m["accuracy"], m["sensitivity"], m["specificity"], m["c_statistic"]
    (1.0, 1.0, 1.0, 1.0)
    """
    true = np.asarray(true_lvh, dtype=float)
    score = lvh_score(pred_lvmi_g_m2, sex, cutoffs)
    ok = np.isfinite(true) & np.isfinite(score)
    t = true[ok].astype(bool)
    p = score[ok] > 1.0  # strictly above the cut-off, as elvmass.cohort.is_lvh
    tp, tn = int((t & p).sum()), int((~t & ~p).sum())
    fp, fn = int((~t & p).sum()), int((t & ~p).sum())

    def div(a, b):
        return a / b if b else math.nan

    sens, ppv = div(tp, tp + fn), div(tp, tp + fp)
    f1 = div(2 * sens * ppv, sens + ppv) if not (math.isnan(sens) or math.isnan(ppv)) else math.nan
    return {
        "n": int(ok.sum()),
        "n_lvh": int(t.sum()),
        "c_statistic": roc_auc(t, score[ok]),
        "accuracy": div(tp + tn, len(t)),
        "sensitivity": sens,
        "specificity": div(tn, tn + fp),
        "ppv": ppv,
        "f1": f1,
    }


def mean_sd(values) -> dict[str, float]:
    """Mean and sample SD (ddof=1) of per-fold values, plus the values themselves."""
    v = np.asarray([x for x in values], float)
    fin = v[np.isfinite(v)]
    return {
        "mean": float(fin.mean()) if fin.size else math.nan,
        "sd": float(fin.std(ddof=1)) if fin.size > 1 else math.nan,
        "folds": [float(x) for x in v],
    }
