"""The classical ECG voltage criteria as comparators: each one an LVH classifier, and ``criteria_linear``,
a linear regression of LV mass on two of them and the demographics (the clinician's baseline regressor).

=====================  ===========================  =====================================================
classifier             continuous value             positive (its own published cut-off)
=====================  ===========================  =====================================================
``sokolow_lyon``       ``sokolow_lyon_mv``          >= 3.5 mV
``cornell_voltage``    ``cornell_voltage_mv``       > 2.8 mV men, > 2.0 mV women
``cornell_product``    ``cornell_product_mv_ms``    >= 244 mV.ms (the women's 0.6 mV is in the value)
``peguero_lo_presti``  ``peguero_lo_presti_mv``     >= 2.8 mV men, >= 2.3 mV women
``romhilt_estes``      ``romhilt_estes_points``     >= 5 points
=====================  ===========================  =====================================================

Values are those of :func:`elvmass.signal.voltage_criteria` (median beat, references there); the cut-offs
are that module's constants, applied here to the continuous value (:func:`criterion_positive`), so a
call can be made for any value - e.g. a new cut-off. :func:`lvh_metrics` gives sensitivity, specificity,
PPV and F1 of the calls and the c-statistic (ROC AUC) of the continuous value against an LVH label
(LV mass index above the cohort's sex-specific cut-off: the manifest's ``lvh`` column) - Table S2's rows.

``criteria_linear`` (:class:`CriteriaLinearSpec`): ordinary least squares of LV mass (g) on Sokolow-Lyon
(mV), Cornell voltage (mV), age, sex, height, weight and BMI, fitted on the training and validation rows of
a split; missing inputs are filled with the training medians. Stored in bundles as its coefficients.

    >>> criterion_positive("sokolow_lyon", 3.6, "M"), criterion_positive("cornell_voltage", 2.2, "F")
    (True, True)
    >>> criterion_positive("cornell_voltage", 2.2, None) is None
    True
    >>> m = lvh_metrics(np.array([1.0, 2.0, 3.0, 4.0]), np.array([False, False, True, True]), np.array([0, 1, 1, 1]))
    >>> round(m["sensitivity"], 3), m["specificity"], m["c_statistic"]
    (0.667, 1.0, 1.0)
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from elvmass.features import scalar_column
from elvmass.models.base import FittedModel, ModelSpec, register
from elvmass.signal import criteria as vc
from elvmass.signal.config import SignalConfig

#: classifier name -> (value key in the criteria dict, unit)
CRITERIA: dict[str, tuple[str, str]] = {
    "sokolow_lyon": ("sokolow_lyon_mv", "mV"),
    "cornell_voltage": ("cornell_voltage_mv", "mV"),
    "cornell_product": ("cornell_product_mv_ms", "mV.ms"),
    "peguero_lo_presti": ("peguero_lo_presti_mv", "mV"),
    "romhilt_estes": ("romhilt_estes_points", "points"),
}
ROMHILT_ESTES_POSITIVE_POINTS = 5
LINEAR_INPUTS = ("sokolow_lyon_mv", "cornell_voltage_mv", "age_years", "sex_male", "height_cm", "weight_kg", "bmi")


def criterion_positive(name: str, value, sex: str | None):
    """The call of criterion ``name`` for a continuous ``value`` (None when sex-specific and sex unknown,
    or the value is missing)."""
    if value is None or not math.isfinite(float(value)):
        return None
    v = float(value)
    if name == "sokolow_lyon":
        return v >= vc.SOKOLOW_LYON_MV
    if name == "romhilt_estes":
        return v >= ROMHILT_ESTES_POSITIVE_POINTS
    if sex not in ("M", "F"):  # the Cornell product's value itself depends on sex (+0.6 mV in women)
        return None
    if name == "cornell_product":
        return v >= vc.CORNELL_PRODUCT_MV_MS
    if name == "cornell_voltage":
        return v > vc.CORNELL_MV[sex]
    if name == "peguero_lo_presti":
        return v >= vc.PEGUERO_MV[sex]
    raise ValueError(f"unknown criterion {name!r}; known: {', '.join(CRITERIA)}")


def criterion_cutoff_text(name: str) -> str:
    """The published cut-off of criterion ``name`` as text (from the constants the calls use).

    >>> criterion_cutoff_text("cornell_voltage")
    '> 2.8 mV (men), > 2.0 mV (women)'
    """
    if name == "sokolow_lyon":
        return f">= {vc.SOKOLOW_LYON_MV} mV"
    if name == "romhilt_estes":
        return f">= {ROMHILT_ESTES_POSITIVE_POINTS} points"
    if name == "cornell_product":
        return f">= {vc.CORNELL_PRODUCT_MV_MS:g} mV.ms"
    if name == "cornell_voltage":
        return f"> {vc.CORNELL_MV['M']} mV (men), > {vc.CORNELL_MV['F']} mV (women)"
    if name == "peguero_lo_presti":
        return f">= {vc.PEGUERO_MV['M']} mV (men), >= {vc.PEGUERO_MV['F']} mV (women)"
    raise ValueError(f"unknown criterion {name!r}; known: {', '.join(CRITERIA)}")


@dataclass(frozen=True)
class CriterionClassifier:
    """One voltage criterion as an LVH classifier over analyses (:class:`~elvmass.signal.ECGAnalysis`)."""

    name: str

    def __post_init__(self) -> None:
        if self.name not in CRITERIA:
            raise ValueError(f"unknown criterion {self.name!r}; known: {', '.join(CRITERIA)}")

    def values(self, criteria_dicts) -> np.ndarray:
        key = CRITERIA[self.name][0]
        return np.array([float(c.get(key)) if c.get(key) is not None else math.nan for c in criteria_dicts])

    def calls(self, criteria_dicts, sexes) -> list:
        return [criterion_positive(self.name, v, s) for v, s in zip(self.values(criteria_dicts), sexes)]


def c_statistic(score: np.ndarray, label: np.ndarray) -> float:
    """Probability that a random positive scores above a random negative (ties count half)."""
    from scipy.stats import rankdata

    s, y = np.asarray(score, float), np.asarray(label, bool)
    ok = np.isfinite(s)
    s, y = s[ok], y[ok]
    n1, n0 = int(y.sum()), int((~y).sum())
    if n1 == 0 or n0 == 0:
        return math.nan
    r = rankdata(s)
    return float((r[y].sum() - n1 * (n1 + 1) / 2) / (n1 * n0))


def lvh_metrics(values, calls, lvh) -> dict:
    """Sensitivity, specificity, PPV, F1 of ``calls`` (None = no call, left out) and the c-statistic of
    ``values`` against the LVH label ``lvh``."""
    lvh = np.asarray(lvh, dtype=float)
    calls = np.array([math.nan if c is None else float(c) for c in calls])
    ok = np.isfinite(calls) & np.isfinite(lvh)
    c, y = calls[ok] > 0.5, lvh[ok] > 0.5
    tp, fp, fn, tn = int((c & y).sum()), int((c & ~y).sum()), int((~c & y).sum()), int((~c & ~y).sum())

    def ratio(a, b):
        return a / b if b else math.nan

    sens, ppv = ratio(tp, tp + fn), ratio(tp, tp + fp)
    f1 = 2 * sens * ppv / (sens + ppv) if math.isfinite(sens) and math.isfinite(ppv) and sens + ppv > 0 else math.nan
    fin = np.isfinite(lvh)
    return {"accuracy": ratio(tp + tn, tp + fp + fn + tn), "sensitivity": sens, "specificity": ratio(tn, tn + fp),
            "ppv": ppv, "f1": f1,
            "c_statistic": c_statistic(np.asarray(values, float)[fin], lvh[fin] > 0.5), "n": int(ok.sum())}


def criteria_lvh_table(data, rows=None, signal: SignalConfig = SignalConfig()) -> list[dict]:
    """One row per criterion: its LVH metrics on ``rows`` of ``data`` (all rows by default)."""
    import pandas as pd

    analyses = data.analyses(signal)
    rows = np.arange(len(analyses)) if rows is None else np.asarray(rows, dtype=int)
    crit = [analyses[i].criteria for i in rows]
    sexes = [data.manifest["sex"].iloc[i] if "sex" in data.manifest.columns else None for i in rows]
    lvh = pd.to_numeric(data.manifest["lvh"], errors="coerce").to_numpy(float)[rows] if "lvh" in data.manifest.columns \
        else np.full(len(rows), np.nan)
    out = []
    for name in CRITERIA:
        clf = CriterionClassifier(name)
        out.append({"criterion": name, **lvh_metrics(clf.values(crit), clf.calls(crit, sexes), lvh)})
    return out


def linear_inputs(data, signal: SignalConfig) -> np.ndarray:
    """(N, 7) inputs of ``criteria_linear`` (NaN where missing)."""
    sc = data.scalars
    analyses = data.analyses(signal)
    cols = []
    for name in LINEAR_INPUTS:
        if name in ("sokolow_lyon_mv", "cornell_voltage_mv"):
            cols.append([float(a.criteria.get(name)) if a.criteria.get(name) is not None else math.nan for a in analyses])
        else:
            cols.append(scalar_column(sc, name))
    return np.asarray(cols, dtype=float).T


@register
@dataclass(frozen=True)
class CriteriaLinearSpec(ModelSpec):
    """LV mass by least squares on Sokolow-Lyon, Cornell voltage and the demographics."""

    family = "criteria_linear"
    signal: SignalConfig = field(default_factory=SignalConfig)

    @property
    def signals(self) -> tuple:
        return (self.signal,)

    def fit(self, data, split, *, device: str = "cpu", progress: bool = False, label: str = "") -> "FittedCriteriaLinear":
        rows = np.concatenate([split.train, split.val])
        x = linear_inputs(data, self.signal)[rows]
        y = data.lvm_g[rows]
        ok = np.isfinite(y)
        medians = np.array([np.nanmedian(c) if np.isfinite(c).any() else 0.0 for c in x[ok].T])
        xf = np.where(np.isfinite(x), x, medians)[ok]
        design = np.column_stack([np.ones(len(xf)), xf])
        coef, *_ = np.linalg.lstsq(design, y[ok], rcond=None)
        return FittedCriteriaLinear(self, coef, medians, {"n_train": int(ok.sum())})

    @classmethod
    def _field_from_plain(cls, name, value):
        if name == "signal":
            return value if isinstance(value, SignalConfig) else SignalConfig.from_dict(value)
        return super()._field_from_plain(name, value)

    @classmethod
    def load_fitted(cls, spec, arrays, meta) -> "FittedCriteriaLinear":
        return FittedCriteriaLinear(spec, np.asarray(arrays["coef"], float), np.asarray(arrays["medians"], float),
                                    dict(meta.get("info", {})))


class FittedCriteriaLinear(FittedModel):
    def __init__(self, spec: CriteriaLinearSpec, coef: np.ndarray, medians: np.ndarray, info=None) -> None:
        self.spec, self.coef, self.medians = spec, coef, medians
        self.history, self.info = [], dict(info or {})

    @property
    def coefficients(self) -> dict[str, float]:
        return {"intercept": float(self.coef[0]), **{n: float(c) for n, c in zip(LINEAR_INPUTS, self.coef[1:])}}

    def predict(self, data, rows) -> np.ndarray:
        x = linear_inputs(data, self.spec.signal)[np.asarray(rows, dtype=int)]
        x = np.where(np.isfinite(x), x, self.medians)
        return self.coef[0] + x @ self.coef[1:]

    def state(self):
        return {"coef": self.coef.astype(np.float64), "medians": self.medians.astype(np.float64)}, {"info": self.info,
                                                                                                   "inputs": list(LINEAR_INPUTS)}


def _register_recipes() -> None:
    from elvmass.models.registry import register_recipe

    @register_recipe("criteria_linear")
    def recipe(preset):
        return CriteriaLinearSpec(name="criteria_linear", seed=preset.seed, signal=preset.signal)


_register_recipes()
