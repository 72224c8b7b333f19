"""External validation, the pure part: LV-mass conversion by imaging source, agreement metrics of one model
on another site's cohort, and the distribution shift between two cohorts (functions on arrays and frames).

**Conversion.** A site whose LV mass comes from echocardiography reports more mass than CT/MR would
(M-mode/2-D linear formulas over-estimate CMR mass by about 5–25 %). Before scoring, rows whose
``lvm_source`` is ``echo`` are mapped to a CT/MR-equivalent mass ``lvm_ct = a + b · lvm_echo``
(:func:`convert_lvm`); CT and MR rows are left as measured. No published echo→CMR conversion whose
coefficients could be confirmed ships with elvmass (:data:`PUBLISHED_CONVERSIONS` is empty; see
``docs/external-validation.md``), so the user gives ``a,b`` from the conversion study they trust.

**Shift.** :func:`distribution_summary` condenses a cohort (age, sex mix, height, weight, BSA, LVM,
LVMI, the ECG machine's QRS duration and axes, the rate of every signal-quality flag, an LVM
histogram by sex); ``elvmass train`` stores it in the bundle. :func:`shift_table` compares two
summaries by the standardised mean difference (SMD; for proportions the same with the binomial SD)
and flags |SMD| > 0.5, a "medium" difference (Cohen 1988; Austin 2009 uses 0.1 for balance, which
any real external cohort exceeds).

    >>> import numpy as np
    >>> conv = parse_conversion("-5,0.9")
    >>> out, done = convert_lvm([150., 150., 150.], ["ct", "echo", "mr"], conv)
    >>> out.tolist(), done.tolist()
    ([150.0, 130.0, 150.0], [False, True, False])
    >>> round(smd(100., 10., 110., 10.), 2)
    1.0
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from elvmass.evaluate.metrics import lvh_metrics, mae_g, mape_pct

DISTRIBUTION_SUMMARY_VERSION = 1
SHIFT_SMD_THRESHOLD = 0.5
CONTINUOUS_VARIABLES = ("age_years", "height_cm", "weight_kg", "bsa_m2", "lvm_g", "lvmi_g_m2", "qrs_ms",
                        "p_axis_deg", "r_axis_deg", "t_axis_deg")
QUANTILES = (0.05, 0.25, 0.5, 0.75, 0.95)
LVM_BIN_EDGES_G = tuple(float(x) for x in range(30, 610, 10))  # the manifest's 30–600 g in 10 g bins


@dataclass(frozen=True)
class LVMConversion:
    """``lvm_ct = a_g + b · lvm_echo`` for rows measured by echocardiography."""

    name: str
    a_g: float
    b: float
    citation: str = ""

    def to_dict(self) -> dict:
        return {"name": self.name, "a": self.a_g, "b": self.b, "citation": self.citation or None}


#: Named echo→CT/MR conversions shipped with elvmass. Empty: no published conversion could be confirmed with
#: its coefficients (docs/external-validation.md); give ``a,b`` (``--lvm-conversion a,b``).
PUBLISHED_CONVERSIONS: dict[str, LVMConversion] = {}


def parse_conversion(text: str | None) -> LVMConversion | None:
    """``none`` (or empty) -> None (echo mass scored as measured); ``a,b`` -> a user conversion; a name ->
    the shipped conversion of that name. Raises ValueError with what is accepted.

    >>> parse_conversion("none") is None
    True
    >>> parse_conversion("3.5, 0.92")
    LVMConversion(name='user', a_g=3.5, b=0.92, citation='')
    >>> parse_conversion("devereux")
    Traceback (most recent call last):
    ...
    ValueError: unknown LV-mass conversion 'devereux': no named conversion ships with elvmass (none could be confirmed); give a,b for lvm_ct = a + b * lvm_echo, or none
    """
    t = (text or "").strip()
    if t.lower() in ("", "none"):
        return None
    if "," in t:
        parts = [p.strip() for p in t.split(",")]
        try:
            a, b = (float(p) for p in parts)
        except ValueError:
            raise ValueError(f"LV-mass conversion {text!r}: expected two numbers a,b (lvm_ct = a + b * lvm_echo)") from None
        if not (math.isfinite(a) and math.isfinite(b)) or not 0.3 <= b <= 3.0:
            raise ValueError(f"LV-mass conversion {text!r}: a must be finite and b between 0.3 and 3 "
                             "(a slope outside that is not a mass conversion)")
        return LVMConversion("user", a, b)
    if t in PUBLISHED_CONVERSIONS:
        return PUBLISHED_CONVERSIONS[t]
    names = ", ".join(sorted(PUBLISHED_CONVERSIONS)) or "no named conversion ships with elvmass (none could be confirmed)"
    raise ValueError(f"unknown LV-mass conversion {t!r}: {names}; give a,b for lvm_ct = a + b * lvm_echo, or none")


def convert_lvm(lvm_g, source, conversion: LVMConversion | None) -> tuple[np.ndarray, np.ndarray]:
    """(converted masses, mask of the rows converted): only rows whose source is ``echo`` are converted."""
    lvm = np.asarray(lvm_g, float).copy()
    echo = np.asarray([str(s).lower() == "echo" for s in source], bool)
    if conversion is None:
        return lvm, np.zeros(len(lvm), bool)
    lvm[echo] = conversion.a_g + conversion.b * lvm[echo]
    return lvm, echo


def agreement(y_true, y_pred) -> dict:
    """Bland–Altman agreement of predicted against true: bias (predicted − true), SD of the differences and
    the 95 % limits of agreement.

    >>> agreement([100., 120.], [110., 126.])
    {'n': 2, 'bias_g': 8.0, 'sd_g': 2.8284271247461903, 'loa_low_g': 2.456, 'loa_high_g': 13.544}
    """
    y, p = np.asarray(y_true, float), np.asarray(y_pred, float)
    ok = np.isfinite(y) & np.isfinite(p)
    d = p[ok] - y[ok]
    if d.size == 0:
        return {"n": 0, "bias_g": math.nan, "sd_g": math.nan, "loa_low_g": math.nan, "loa_high_g": math.nan}
    bias = float(d.mean())
    sd = float(d.std(ddof=1)) if d.size > 1 else math.nan
    return {"n": int(d.size), "bias_g": bias, "sd_g": sd, "loa_low_g": round(bias - 1.96 * sd, 3),
            "loa_high_g": round(bias + 1.96 * sd, 3)}


def score_block(y_true, y_pred, sex, bsa_m2, lvh, cutoffs: dict | None = None, *, by_sex: bool = True) -> dict:
    """MAE, MAPE, bias (Bland–Altman) and the LVH metrics of predicted LVMI (as the study), overall and by sex."""
    y, p = np.asarray(y_true, float), np.asarray(y_pred, float)
    sex = np.asarray(sex, dtype=object)
    bsa = np.asarray(bsa_m2, float)
    lvh = np.asarray(lvh, float)
    cutoffs = cutoffs or {"M": 72.0, "F": 55.0}
    ok = np.isfinite(y) & np.isfinite(p)
    ag = agreement(y[ok], p[ok])
    out = {"n": int(ok.sum()), "mae_g": mae_g(y[ok], p[ok]), "mape_pct": mape_pct(y[ok], p[ok]), "bias_g": ag["bias_g"],
           "agreement": ag, "lvh": lvh_metrics(lvh[ok], p[ok] / bsa[ok], sex[ok], cutoffs)}
    if by_sex:
        out["by_sex"] = {s: score_block(y[sex == s], p[sex == s], sex[sex == s], bsa[sex == s], lvh[sex == s], cutoffs,
                                        by_sex=False) for s in ("M", "F")}
    return out


# --------------------------------------------------------------------------------------------------
# distribution shift
# --------------------------------------------------------------------------------------------------


def _num_stats(v: np.ndarray) -> dict:
    v = v[np.isfinite(v)]
    if v.size == 0:
        return {"n": 0, "mean": None, "sd": None, "quantiles": None}
    return {"n": int(v.size), "mean": float(v.mean()), "sd": float(v.std(ddof=1)) if v.size > 1 else 0.0,
            "quantiles": {str(q): float(np.quantile(v, q)) for q in QUANTILES}}


def distribution_summary(df: pd.DataFrame, flags=None) -> dict:
    """A cohort condensed for shift comparison (JSON-able): per continuous variable n, mean, SD and quantiles;
    the share of men; the share of rows with each signal-quality flag family (``flags``: one tuple of flags
    per row); the LVM histogram by sex (10 g bins over 30–600 g); the LVM sources.

    >>> d = distribution_summary(pd.DataFrame({"sex": ["M", "F"], "lvm_g": [150., 100.], "age_years": [50., 60.]}),
    ...                          flags=[("noisy_lead:V1",), ()])
    >>> d["male_fraction"], d["flag_rates"], d["variables"]["lvm_g"]["mean"]
    (0.5, {'noisy_lead': 0.5}, 125.0)
    """
    n = len(df)
    out: dict = {"version": DISTRIBUTION_SUMMARY_VERSION, "n": int(n), "variables": {}}
    for c in CONTINUOUS_VARIABLES:
        if c in df.columns:
            out["variables"][c] = _num_stats(pd.to_numeric(df[c], errors="coerce").to_numpy(float))
    sex = df["sex"].to_numpy(object) if "sex" in df.columns else np.full(n, None, object)
    known = np.isin(sex, ["M", "F"])
    out["male_fraction"] = float(np.mean(sex[known] == "M")) if known.any() else None
    rates: dict[str, float] = {}
    if flags is not None and n:
        fams = [{str(f).partition(":")[0] for f in row} for row in flags]
        for fam in sorted(set().union(*fams)) if fams else []:
            rates[fam] = float(np.mean([fam in row for row in fams]))
    out["flag_rates"] = rates
    if "lvm_g" in df.columns:
        y = pd.to_numeric(df["lvm_g"], errors="coerce").to_numpy(float)
        out["lvm_histogram"] = {"edges_g": list(LVM_BIN_EDGES_G), "counts": {
            s: np.histogram(y[(sex == s) & np.isfinite(y)], bins=LVM_BIN_EDGES_G)[0].astype(int).tolist() for s in ("M", "F")}}
    if "lvm_source" in df.columns:
        out["lvm_source"] = {str(k): int(v) for k, v in df["lvm_source"].value_counts().items()}
    return out


def smd(mean_a, sd_a, mean_b, sd_b) -> float:
    """Standardised mean difference (b − a) / sqrt((sd_a² + sd_b²) / 2); NaN when undefined."""
    try:
        pooled = math.sqrt((float(sd_a) ** 2 + float(sd_b) ** 2) / 2.0)
        return (float(mean_b) - float(mean_a)) / pooled if pooled > 0 else math.nan
    except (TypeError, ValueError):
        return math.nan


def _prop_smd(p_a, p_b) -> float:
    if p_a is None or p_b is None:
        return math.nan
    return smd(p_a, math.sqrt(p_a * (1 - p_a)), p_b, math.sqrt(p_b * (1 - p_b)))


def shift_table(training: dict, external: dict, threshold: float = SHIFT_SMD_THRESHOLD) -> list[dict]:
    """One row per variable both summaries hold: training and external mean (SD) or share, the SMD (external
    minus training) and ``flagged`` when |SMD| > ``threshold``.

    >>> t = {"variables": {"lvm_g": {"mean": 110., "sd": 25.}}, "male_fraction": 0.6, "flag_rates": {}}
    >>> e = {"variables": {"lvm_g": {"mean": 140., "sd": 35.}}, "male_fraction": 0.55, "flag_rates": {"noisy_lead": 0.1}}
    >>> [(r["variable"], round(r["smd"], 2), r["flagged"]) for r in shift_table(t, e)]
    [('lvm_g', 0.99, True), ('male_fraction', -0.1, False), ('flag:noisy_lead', 0.47, False)]
    """
    rows = []
    tv, ev = training.get("variables", {}), external.get("variables", {})
    for name in CONTINUOUS_VARIABLES:
        a, b = tv.get(name), ev.get(name)
        if not a or not b or a.get("mean") is None or b.get("mean") is None:
            continue
        d = smd(a["mean"], a["sd"], b["mean"], b["sd"])
        rows.append({"variable": name, "kind": "mean (SD)", "training_mean": a["mean"], "training_sd": a["sd"],
                     "external_mean": b["mean"], "external_sd": b["sd"], "smd": d,
                     "flagged": bool(math.isfinite(d) and abs(d) > threshold)})
    props = [("male_fraction", training.get("male_fraction"), external.get("male_fraction"))]
    tf, ef = training.get("flag_rates", {}) or {}, external.get("flag_rates", {}) or {}
    props += [(f"flag:{f}", tf.get(f, 0.0), ef.get(f, 0.0)) for f in sorted(set(tf) | set(ef))]
    for name, pa, pb in props:
        d = _prop_smd(pa, pb)
        rows.append({"variable": name, "kind": "share", "training_mean": pa, "training_sd": None, "external_mean": pb,
                     "external_sd": None, "smd": d, "flagged": bool(math.isfinite(d) and abs(d) > threshold)})
    return rows


__all__ = ["DISTRIBUTION_SUMMARY_VERSION", "LVMConversion", "PUBLISHED_CONVERSIONS", "SHIFT_SMD_THRESHOLD", "agreement",
           "convert_lvm", "distribution_summary", "parse_conversion", "score_block", "shift_table", "smd"]
