"""Conformal prediction intervals for LV mass and the LVH probability they imply: pure functions on arrays.

=====================  ===========================================================================
score                  what it is
=====================  ===========================================================================
``normalised``         signed relative residual ``(y - ŷ) / ŷ`` (MAPIE's ``GammaConformityScore``):
                       intervals ``[ŷ (1 + q_lo), ŷ (1 + q_hi)]`` widen with the predicted mass, where
                       the model's absolute errors are larger (the default)
``absolute``           signed residual ``y - ŷ`` with symmetric quantile of ``|y - ŷ|`` (MAPIE's
                       ``AbsoluteConformityScore``): the same width for every patient
=====================  ===========================================================================

Calibration is *Mondrian by sex*: men and women get their own quantiles, so coverage holds for each
sex separately, not only on average (Vovk et al., *Algorithmic Learning in a Random World*, 2005;
Boström & Johansson 2020). Two ways to get calibration scores:

* **split conformal** (:func:`calibrate`): scores of held-out calibration rows that the model never
  trained on (``elvmass train`` holds out about 10 % of the cohort);
* **cross-conformal** (:func:`cross_conformal`): inside the study, each case's interval uses the
  out-of-fold scores of the *other* folds only, so a case's own residual never calibrates it.

The quantile is the finite-sample one, the ⌈(n + 1)(1 − α/2)⌉-th smallest score for the upper end
(and the ⌊(n + 1) α/2⌋-th for the lower end of a signed score), as MAPIE computes it; with too few
scores for a level the interval is infinite rather than made up.

The **LVH probability** is the share of the conformal predictive distribution
``ŷ (1 + s_j)`` (or ``ŷ + s_j``), over the calibration scores ``s_j`` of the patient's sex, that lies
above the sex-specific LVMI cut-off times the patient's BSA (Vovk et al. 2017, conformal predictive
distributions).

    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> y_hat = rng.uniform(80, 200, 2000); y = y_hat * (1 + rng.normal(0, 0.1, 2000)); sex = np.array(["M", "F"] * 1000)
    >>> cal = calibrate(y[:1000], y_hat[:1000], sex[:1000])
    >>> lo, hi = cal.interval(y_hat[1000:], sex[1000:], 0.9)
    >>> 0.87 <= float(np.mean((y[1000:] >= lo) & (y[1000:] <= hi))) <= 0.93  # 90 % within binomial error
    True
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

SCORES = ("normalised", "absolute")
DEFAULT_LEVEL = 0.9
REPORTED_LEVELS = (0.8, 0.9, 0.95)
SEXES = ("M", "F")


def signed_scores(y_g, y_hat_g, score: str = "normalised") -> np.ndarray:
    """Signed conformity scores of observed ``y_g`` given predictions ``y_hat_g``."""
    y, p = np.asarray(y_g, float), np.asarray(y_hat_g, float)
    if score == "normalised":
        if np.any(p <= 0):
            raise ValueError("the normalised score needs positive predictions (got a non-positive LV mass)")
        return (y - p) / p
    if score == "absolute":
        return y - p
    raise ValueError(f"score must be one of {SCORES}, got {score!r}")


def _from_scores(y_hat_g, s, score: str) -> np.ndarray:
    p = np.asarray(y_hat_g, float)
    return p * (1.0 + s) if score == "normalised" else p + s


def conformal_quantiles(scores, level: float, score: str = "normalised") -> tuple[float, float]:
    """(lower, upper) score quantiles for a central interval at ``level`` from calibration ``scores``.

    The normalised score is asymmetric (lower and upper ends from the signed scores at α/2 and
    1 − α/2); the absolute score is symmetric (± the (1 − α) quantile of ``|s|``). Too few scores
    give an infinite end.
    """
    if not 0 < level < 1:
        raise ValueError(f"level must be between 0 and 1, got {level}")
    s = np.sort(np.asarray(scores, float)[np.isfinite(scores)])
    n = len(s)
    alpha = 1.0 - level
    if score == "absolute":
        a = np.sort(np.abs(s))
        k = math.ceil((n + 1) * (1 - alpha))
        q = a[k - 1] if 1 <= k <= n else math.inf
        return -q, q
    k_hi = math.ceil((n + 1) * (1 - alpha / 2))
    k_lo = math.floor((n + 1) * (alpha / 2))
    hi = s[k_hi - 1] if 1 <= k_hi <= n else math.inf
    lo = s[k_lo - 1] if 1 <= k_lo <= n else -math.inf
    return float(lo), float(hi)


@dataclass
class Calibration:
    """Calibration scores per sex (Mondrian), with the score they are of. JSON-able via ``to_dict``."""

    score: str = "normalised"
    scores_by_sex: dict[str, np.ndarray] = field(default_factory=dict)

    def _scores(self, sex) -> np.ndarray:
        if sex in self.scores_by_sex and len(self.scores_by_sex[sex]):
            return self.scores_by_sex[sex]
        # a patient of unknown sex: the pooled scores of both sexes
        return np.concatenate([np.asarray(v, float) for v in self.scores_by_sex.values()]) if self.scores_by_sex else np.zeros(0)

    def interval(self, y_hat_g, sex, level: float = DEFAULT_LEVEL) -> tuple[np.ndarray, np.ndarray]:
        """(low, high) in grams for each prediction, using the calibration scores of its sex."""
        p = np.atleast_1d(np.asarray(y_hat_g, float))
        sx = np.broadcast_to(np.asarray(sex, dtype=object), p.shape)
        lo, hi = np.full(p.shape, np.nan), np.full(p.shape, np.nan)
        for key in set(sx.tolist()):
            m = sx == key
            q_lo, q_hi = conformal_quantiles(self._scores(key), level, self.score)
            lo[m] = _from_scores(p[m], q_lo, self.score)
            hi[m] = _from_scores(p[m], q_hi, self.score)
        # the interval always contains the point estimate (scores of a decent model straddle 0)
        return np.minimum(lo, p), np.maximum(hi, p)

    def exceedance_probability(self, y_hat_g, sex, threshold_g) -> np.ndarray:
        """P(true mass > threshold) under the conformal predictive distribution of each case."""
        p = np.atleast_1d(np.asarray(y_hat_g, float))
        sx = np.broadcast_to(np.asarray(sex, dtype=object), p.shape)
        thr = np.broadcast_to(np.asarray(threshold_g, float), p.shape)
        out = np.full(p.shape, np.nan)
        for i in range(len(p)):
            s = self._scores(sx[i])
            if len(s) and np.isfinite(p[i]) and np.isfinite(thr[i]):
                out[i] = float(np.mean(_from_scores(p[i], s, self.score) > thr[i]))
        return out

    @property
    def n(self) -> dict[str, int]:
        return {k: int(len(v)) for k, v in self.scores_by_sex.items()}

    def to_dict(self) -> dict:
        return {"score": self.score, "scores_by_sex": {k: [round(float(x), 6) for x in np.sort(v)]
                                                       for k, v in self.scores_by_sex.items()}}

    @classmethod
    def from_dict(cls, d: dict) -> "Calibration":
        if d.get("score") not in SCORES:
            raise ValueError(f"unknown conformal score {d.get('score')!r}")
        return cls(d["score"], {str(k): np.asarray(v, float) for k, v in d["scores_by_sex"].items()})


def calibrate(y_g, y_hat_g, sex, score: str = "normalised") -> Calibration:
    """Split-conformal calibration from held-out rows: their scores, per sex."""
    s = signed_scores(y_g, y_hat_g, score)
    sx = np.asarray(sex, dtype=object)
    ok = np.isfinite(s)
    return Calibration(score, {k: s[ok & (sx == k)] for k in SEXES if np.any(ok & (sx == k))})


def lvh_probability(cal: Calibration, y_hat_g, sex, bsa_m2, cutoffs: dict[str, float]) -> np.ndarray:
    """P(LVMI above the sex's cut-off) = P(LVM > cut-off × BSA) under the predictive distribution;
    NaN where sex or BSA is unknown."""
    bsa = np.atleast_1d(np.asarray(bsa_m2, float))
    sx = np.broadcast_to(np.asarray(sex, dtype=object), bsa.shape)
    thr = np.array([cutoffs.get(s, np.nan) if s in SEXES else np.nan for s in sx]) * bsa
    return cal.exceedance_probability(y_hat_g, sx, thr)


def cross_conformal(y_g, y_hat_g, sex, folds, level: float = DEFAULT_LEVEL, score: str = "normalised",
                    bsa_m2=None, cutoffs: dict[str, float] | None = None) -> dict:
    """Cross-conformal intervals from out-of-fold predictions: each case is calibrated by the scores of
    the cases in the other folds (of its sex). Returns ``low``, ``high`` (g) and, with ``bsa_m2`` and
    ``cutoffs``, ``lvh_probability``; NaN where the case has no prediction."""
    y, p = np.asarray(y_g, float), np.asarray(y_hat_g, float)
    sx, fo = np.asarray(sex, dtype=object), np.asarray(folds)
    lo, hi, prob = np.full(len(p), np.nan), np.full(len(p), np.nan), np.full(len(p), np.nan)
    ok = np.isfinite(p) & np.isfinite(y)
    for k in np.unique(fo[ok]):
        test = ok & (fo == k)
        cal = calibrate(y[ok & (fo != k)], p[ok & (fo != k)], sx[ok & (fo != k)], score)
        lo[test], hi[test] = cal.interval(p[test], sx[test], level)
        if bsa_m2 is not None and cutoffs is not None:
            prob[test] = lvh_probability(cal, p[test], sx[test], np.asarray(bsa_m2, float)[test], cutoffs)
    out = {"low": lo, "high": hi}
    if bsa_m2 is not None and cutoffs is not None:
        out["lvh_probability"] = prob
    return out


def coverage_summary(y_g, low, high, sex=None, groups: dict[str, np.ndarray] | None = None) -> dict:
    """Coverage and mean width overall, by sex and by any named row groups (e.g. LVM tertiles)."""
    y, lo, hi = np.asarray(y_g, float), np.asarray(low, float), np.asarray(high, float)
    ok = np.isfinite(y) & np.isfinite(lo) & np.isfinite(hi)

    def block(m):
        m = m & ok
        if not m.any():
            return {"n": 0, "coverage": None, "mean_width_g": None}
        inside = (y[m] >= lo[m]) & (y[m] <= hi[m])
        return {"n": int(m.sum()), "coverage": float(inside.mean()), "mean_width_g": float(np.mean(hi[m] - lo[m]))}

    out = block(np.ones(len(y), bool))
    if sex is not None:
        sx = np.asarray(sex, dtype=object)
        out["by_sex"] = {s: block(sx == s) for s in SEXES}
    for name, m in (groups or {}).items():
        out.setdefault("by_group", {})[name] = block(np.asarray(m, bool))
    return out


def lvm_tertiles(y_g) -> tuple[dict[str, np.ndarray], tuple[float, float]]:
    """Masks of the low / middle / high tertile of true LVM and the two cut-offs (g)."""
    y = np.asarray(y_g, float)
    c1, c2 = np.nanquantile(y, [1 / 3, 2 / 3])
    return {"low": y <= c1, "middle": (y > c1) & (y <= c2), "high": y > c2}, (float(c1), float(c2))


def probability_calibration(outcome, probability, n_bins: int = 10) -> dict:
    """Brier score, expected calibration error (equal-width bins, weighted by count) and the
    reliability diagram's bins (mean predicted probability vs observed frequency)."""
    o = np.asarray(outcome, float)
    p = np.asarray(probability, float)
    ok = np.isfinite(o) & np.isfinite(p)
    o, p = o[ok], p[ok]
    if not len(o):
        return {"n": 0, "brier": None, "ece": None, "bins": []}
    edges = np.linspace(0, 1, n_bins + 1)
    idx = np.clip(np.digitize(p, edges[1:-1]), 0, n_bins - 1)
    bins, ece = [], 0.0
    for b in range(n_bins):
        m = idx == b
        if m.any():
            bins.append({"lo": float(edges[b]), "hi": float(edges[b + 1]), "n": int(m.sum()),
                         "mean_probability": float(p[m].mean()), "observed": float(o[m].mean())})
            ece += m.mean() * abs(p[m].mean() - o[m].mean())
    return {"n": int(len(o)), "brier": float(np.mean((p - o) ** 2)), "ece": float(ece), "bins": bins}
