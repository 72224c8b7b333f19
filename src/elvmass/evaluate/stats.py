"""Statistical comparisons between models.

* :func:`paired_fold_test`: the paper's fold-level comparison, a two-sided paired t-test on the
  per-fold metric (e.g. the five per-fold MAEs of two models evaluated on the same folds).
* :func:`delong_test`: DeLong, DeLong & Clarke-Pearson (1988) test for two correlated ROC AUCs
  on the same cases, computed with the fast algorithm of Sun & Xu, "Fast implementation of
  DeLong's algorithm for comparing the areas under correlated receiver operating
  characteristic curves", IEEE Signal Processing Letters 21(11):1389-1393 (2014).

    >>> import numpy as np
    >>> round(paired_fold_test([10, 11, 12, 10, 11], [12, 13, 13, 12, 14])["p_value"], 4)
    0.0032
"""

from __future__ import annotations

import math

import numpy as np
from scipy import stats


def paired_fold_test(a_folds, b_folds) -> dict[str, float]:
    """Two-sided paired t-test of per-fold values of model a against model b.

    Returns mean difference (a - b), t statistic and p value (NaN with fewer than 2 pairs or
    when all differences are identical).
    """
    a, b = np.asarray(a_folds, float), np.asarray(b_folds, float)
    if a.shape != b.shape:
        raise ValueError(f"paired test needs the same folds for both models, got {a.shape} and {b.shape}")
    ok = np.isfinite(a) & np.isfinite(b)
    d = a[ok] - b[ok]
    if d.size < 2 or np.allclose(d, d[0]):
        return {"mean_diff": float(d.mean()) if d.size else math.nan, "t": math.nan, "p_value": math.nan}
    res = stats.ttest_rel(a[ok], b[ok])
    return {"mean_diff": float(d.mean()), "t": float(res.statistic), "p_value": float(res.pvalue)}


def _midrank(x: np.ndarray) -> np.ndarray:
    """Mid-ranks (1-based, ties averaged), as in Sun & Xu's Algorithm."""
    order = np.argsort(x, kind="mergesort")
    z = x[order]
    n = len(x)
    t = np.zeros(n, float)
    i = 0
    while i < n:
        j = i
        while j < n and z[j] == z[i]:
            j += 1
        t[i:j] = 0.5 * (i + j - 1) + 1
        i = j
    out = np.empty(n, float)
    out[order] = t
    return out


def _fast_delong(scores_pos_first: np.ndarray, m: int) -> tuple[np.ndarray, np.ndarray]:
    """AUCs and their covariance for k score vectors (k, m + n), positives in the first m columns."""
    n = scores_pos_first.shape[1] - m
    k = scores_pos_first.shape[0]
    pos, neg = scores_pos_first[:, :m], scores_pos_first[:, m:]
    tx = np.empty((k, m))
    ty = np.empty((k, n))
    tz = np.empty((k, m + n))
    for r in range(k):
        tx[r] = _midrank(pos[r])
        ty[r] = _midrank(neg[r])
        tz[r] = _midrank(scores_pos_first[r])
    aucs = tz[:, :m].sum(axis=1) / m / n - (m + 1.0) / 2.0 / n
    v01 = (tz[:, :m] - tx) / n
    v10 = 1.0 - (tz[:, m:] - ty) / m
    sx = np.atleast_2d(np.cov(v01))
    sy = np.atleast_2d(np.cov(v10))
    return aucs, sx / m + sy / n


def delong_test(y_true, score_a, score_b) -> dict[str, float]:
    """Compare the AUCs of two scores on the same cases (two-sided DeLong test).

    >>> import numpy as np
    >>> y = np.array([0, 0, 0, 1, 1, 1, 0, 1])
    >>> r = delong_test(y, np.array([.1, .2, .3, .8, .9, .7, .4, .6]), np.array([.5, .2, .6, .4, .9, .3, .1, .8]))
    >>> round(r["auc_a"], 3), round(r["auc_b"], 3)
    (1.0, 0.75)
    """
    y = np.asarray(y_true, float)
    a, b = np.asarray(score_a, float), np.asarray(score_b, float)
    ok = np.isfinite(y) & np.isfinite(a) & np.isfinite(b)
    y, a, b = y[ok].astype(bool), a[ok], b[ok]
    m, n = int(y.sum()), int((~y).sum())
    if m < 2 or n < 2:
        return {"auc_a": math.nan, "auc_b": math.nan, "z": math.nan, "p_value": math.nan}
    order = np.concatenate([np.flatnonzero(y), np.flatnonzero(~y)])
    aucs, cov = _fast_delong(np.vstack([a[order], b[order]]), m)
    var = cov[0, 0] + cov[1, 1] - 2 * cov[0, 1]
    diff = aucs[0] - aucs[1]
    if var <= 0:
        z = 0.0 if diff == 0 else math.copysign(math.inf, diff)
    else:
        z = diff / math.sqrt(var)
    p = float(2 * stats.norm.sf(abs(z))) if math.isfinite(z) else 0.0
    return {"auc_a": float(aucs[0]), "auc_b": float(aucs[1]), "z": float(z), "p_value": p}
