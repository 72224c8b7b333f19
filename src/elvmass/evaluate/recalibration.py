"""Linear recalibration of predicted LV mass on a few labelled local cases, and its cross-fitted evaluation:
pure functions on arrays.

A model taken to another hospital is often off by a roughly linear amount (another imaging modality,
another population, another ECG cart). Recalibration fits ``true ≈ intercept + slope · predicted`` on k
labelled local cases (per sex when the model is sex-specific) and applies it to every other case.

How many local cases are enough is read from :func:`cross_fitted_recalibration`: for each k, repeated
seeded random draws of k calibration cases; each draw's calibration scores only the cases *not* drawn,
so no case is ever scored by a calibration it was part of (by construction: the scored set is the
complement of the drawn set). Mean and SD across draws are reported.

    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> y = rng.uniform(80, 200, 400); pred = 0.8 * y + 10 + rng.normal(0, 5, 400)
    >>> cal = LinearCalibration.fit(y[:50], pred[:50])
    >>> round(cal.pooled[1], 1)  # slope of true on predicted: about 1 / 0.8
    1.2
    >>> res = cross_fitted_recalibration(y, pred, None, 50, n_draws=5, seed=0)
    >>> res["mae_g"]["mean"] < float(np.mean(np.abs(y - pred)))
    True
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from elvmass.evaluate.metrics import lvh_metrics, mae_g, mape_pct, mean_sd

SEXES = ("M", "F")
#: fewer cases than this for one sex: that sex uses the pooled fit
MIN_CASES_PER_FIT = 3


def fit_line(y_true, y_pred) -> tuple[float, float]:
    """(intercept, slope) of the least-squares line of ``y_true`` on ``y_pred`` (finite pairs only).

    With fewer than :data:`MIN_CASES_PER_FIT` pairs or no spread in the predictions, only the mean offset
    is fitted (slope 1).

    >>> [round(v, 6) for v in fit_line([110., 130., 150.], [100., 110., 120.])]
    [-90.0, 2.0]
    >>> fit_line([110.], [100.])
    (10.0, 1.0)
    """
    y, p = np.asarray(y_true, float), np.asarray(y_pred, float)
    ok = np.isfinite(y) & np.isfinite(p)
    y, p = y[ok], p[ok]
    if len(y) == 0:
        return 0.0, 1.0
    if len(y) < MIN_CASES_PER_FIT or float(np.var(p)) <= 1e-12:
        return float(np.mean(y - p)), 1.0
    slope = float(np.cov(p, y, ddof=0)[0, 1] / np.var(p))
    return float(np.mean(y) - slope * np.mean(p)), slope


@dataclass(frozen=True)
class LinearCalibration:
    """``lvm = intercept + slope · predicted``: pooled, and per sex where ``by_sex`` has an entry."""

    pooled: tuple[float, float] = (0.0, 1.0)
    by_sex: dict = field(default_factory=dict)  # "M"/"F" -> (intercept, slope)
    n: int = 0
    n_by_sex: dict = field(default_factory=dict)

    @classmethod
    def fit(cls, y_true, y_pred, sex=None, *, per_sex: bool = False) -> "LinearCalibration":
        """Fit on labelled cases; ``per_sex`` fits each sex on its own cases (pooled fit for a sex with
        fewer than :data:`MIN_CASES_PER_FIT`)."""
        y, p = np.asarray(y_true, float), np.asarray(y_pred, float)
        pooled = fit_line(y, p)
        by_sex, n_by = {}, {}
        if per_sex and sex is not None:
            s = np.asarray(sex, dtype=object)
            for sx in SEXES:
                sel = (s == sx) & np.isfinite(y) & np.isfinite(p)
                n_by[sx] = int(sel.sum())
                if sel.sum() >= MIN_CASES_PER_FIT:
                    by_sex[sx] = fit_line(y[sel], p[sel])
        return cls(pooled, by_sex, int((np.isfinite(y) & np.isfinite(p)).sum()), n_by)

    def apply(self, y_pred, sex=None) -> np.ndarray:
        """Recalibrated masses for predictions (and their sexes when fitted per sex)."""
        p = np.asarray(y_pred, float)
        a = np.full(p.shape, self.pooled[0])
        b = np.full(p.shape, self.pooled[1])
        if self.by_sex and sex is not None:
            s = np.asarray(sex, dtype=object)
            for sx, (ai, bi) in self.by_sex.items():
                a[s == sx], b[s == sx] = ai, bi
        return a + b * p

    def to_dict(self) -> dict:
        return {"method": "linear", "intercept_g": self.pooled[0], "slope": self.pooled[1], "n": self.n,
                "by_sex": {s: {"intercept_g": v[0], "slope": v[1], "n": self.n_by_sex.get(s)} for s, v in self.by_sex.items()}}

    @classmethod
    def from_dict(cls, d: dict) -> "LinearCalibration":
        """Inverse of :meth:`to_dict`; raises ValueError on a malformed entry."""
        if d.get("method") != "linear":
            raise ValueError(f"unknown recalibration method {d.get('method')!r}")

        def pair(e):
            a, b = float(e["intercept_g"]), float(e["slope"])
            if not (math.isfinite(a) and math.isfinite(b)):
                raise ValueError("intercept and slope must be finite numbers")
            return a, b

        by = {str(s): pair(e) for s, e in (d.get("by_sex") or {}).items()}
        if set(by) - set(SEXES):
            raise ValueError(f"by_sex keys must be M or F, got {sorted(by)}")
        return cls(pair(d), by, int(d.get("n", 0)), {s: e.get("n") for s, e in (d.get("by_sex") or {}).items()})


def calibration_draws(n: int, k: int, n_draws: int, seed: int, strata=None) -> list[np.ndarray]:
    """``n_draws`` seeded random draws of ``k`` case indices out of ``n`` (sorted). With ``strata`` (e.g. sex)
    each draw takes every stratum in proportion (at least :data:`MIN_CASES_PER_FIT` per stratum where it has
    that many), so a per-sex fit always has cases.

    >>> draws = calibration_draws(6, 2, 3, seed=1)
    >>> [len(set(d.tolist())) for d in draws], all(0 <= i < 6 for d in draws for i in d)
    ([2, 2, 2], True)
    >>> [d.tolist() for d in calibration_draws(6, 2, 3, seed=1)] == [d.tolist() for d in draws]  # seeded
    True
    """
    if not 0 < k < n:
        raise ValueError(f"a calibration of {k} cases needs more than {k} cases to score (got {n})")
    rng = np.random.default_rng([int(seed), int(k)])
    out = []
    if strata is None:
        for _ in range(n_draws):
            out.append(np.sort(rng.choice(n, size=k, replace=False)))
        return out
    s = np.asarray(strata, dtype=object)
    groups = [np.flatnonzero(s == g) for g in dict.fromkeys(s.tolist())]
    sizes = [max(min(MIN_CASES_PER_FIT, len(g)), int(round(k * len(g) / n))) for g in groups]
    while sum(sizes) > k:  # rounding up per stratum may overshoot: take from the largest
        sizes[int(np.argmax(sizes))] -= 1
    while sum(sizes) < k:
        room = [len(g) - z for g, z in zip(groups, sizes)]
        sizes[int(np.argmax(room))] += 1
    for _ in range(n_draws):
        out.append(np.sort(np.concatenate([rng.choice(g, size=z, replace=False) for g, z in zip(groups, sizes) if z])))
    return out


def recalibrated_scores(y, pred, sex, bsa, lvh, cutoffs, rows) -> dict:
    """MAE, MAPE and LVH c-statistic of ``pred`` on ``rows`` (the metrics of :mod:`elvmass.evaluate.metrics`)."""
    y, pred = np.asarray(y, float)[rows], np.asarray(pred, float)[rows]
    out = {"mae_g": mae_g(y, pred), "mape_pct": mape_pct(y, pred), "c_statistic": math.nan}
    if bsa is not None and lvh is not None:
        sx = np.asarray(sex, dtype=object)[rows]
        out["c_statistic"] = lvh_metrics(np.asarray(lvh, float)[rows], pred / np.asarray(bsa, float)[rows], sx,
                                         cutoffs)["c_statistic"]
    return out


def _mean_sd(values) -> dict:
    m = mean_sd(values)  # across draws (the helper names them folds)
    return {"mean": m["mean"], "sd": m["sd"], "n_draws": int(np.isfinite(m["folds"]).sum())}


def cross_fitted_recalibration(y, pred, sex, k: int, *, n_draws: int = 50, seed: int = 0, per_sex: bool = False,
                               bsa=None, lvh=None, cutoffs=None, keep_draws: bool = False) -> dict:
    """Cross-fitted evaluation of a linear recalibration on ``k`` local cases.

    Each of ``n_draws`` seeded draws fits :class:`LinearCalibration` on its ``k`` cases (per sex with
    ``per_sex``; draws stratified by sex then) and scores only the other cases. Returns ``mae_g``,
    ``mape_pct`` and ``c_statistic`` as ``{mean, sd, n_draws}`` across draws, the per-case mean
    recalibrated mass over the draws that did not use the case (``per_case_lvm_g``, NaN for a case that
    every draw used) and, with ``keep_draws``, every draw's ``calibration_rows`` and ``scored_rows``.
    """
    y, pred = np.asarray(y, float), np.asarray(pred, float)
    ok = np.flatnonzero(np.isfinite(y) & np.isfinite(pred))
    n = len(ok)
    sex_ok = None if sex is None else np.asarray(sex, dtype=object)[ok]
    draws = calibration_draws(n, k, n_draws, seed, strata=sex_ok if per_sex else None)
    cutoffs = cutoffs or {"M": 72.0, "F": 55.0}
    metrics = {"mae_g": [], "mape_pct": [], "c_statistic": []}
    total = np.zeros(len(y))
    count = np.zeros(len(y))
    kept = []
    for d in draws:
        cal_rows = ok[d]
        scored = np.setdiff1d(ok, cal_rows, assume_unique=True)
        cal = LinearCalibration.fit(y[cal_rows], pred[cal_rows], None if sex is None else np.asarray(sex, object)[cal_rows],
                                    per_sex=per_sex)
        new = cal.apply(pred, sex)
        for key, v in recalibrated_scores(y, new, sex, bsa, lvh, cutoffs, scored).items():
            metrics[key].append(v)
        total[scored] += new[scored]
        count[scored] += 1
        if keep_draws:
            kept.append({"calibration_rows": cal_rows, "scored_rows": scored, "calibration": cal})
    with np.errstate(invalid="ignore", divide="ignore"):
        per_case = np.where(count > 0, total / np.maximum(count, 1), np.nan)
    out = {"k": int(k), "n_scored_per_draw": int(n - k), "per_sex": bool(per_sex),
           **{key: _mean_sd(v) for key, v in metrics.items()}, "per_case_lvm_g": per_case}
    if keep_draws:
        out["draws"] = kept
    return out


__all__ = ["LinearCalibration", "calibration_draws", "cross_fitted_recalibration", "fit_line", "recalibrated_scores"]
