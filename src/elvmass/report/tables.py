"""Study tables as CSV and Markdown, laid out like the eLVMass-Net paper's tables.

* performance: one row per model and population (all / male / female): n, MAE (g) and
  MAPE (%) as mean ± SD across folds;
* LVH: one row per model and population: c-statistic, accuracy, sensitivity, specificity,
  PPV, F1 (pooled out-of-fold predictions);
* comparisons: model a vs model b, metric, population, values, test and p value.

The demographics-only comparator is a row of every table.

    >>> res = {"models": {"demographics": {"n": 10, "mae_g": {"mean": 20.0, "sd": 2.0}, "mape_pct": {"mean": 15.0, "sd": 1.0},
    ...        "lvh": {"c_statistic": 0.7}, "by_sex": {}}}, "comparisons": []}
    >>> performance_table(res).iloc[0]["MAE (g)"]
    '20.0 ± 2.0'
"""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
from elvmass.atomic import atomic_write_text

MODEL_LABELS = {
    "elvmassnet": "eLVMass-Net",
    "elvmassnet_male": "eLVMass-Net (male model)",
    "elvmassnet_female": "eLVMass-Net (female model)",
    "elvmassnet_sex_specific": "eLVMass-Net (sex-specific models)",
    "demographics": "Demographics only (gradient boosting)",
}
METRIC_LABELS = {"mae_g": "MAE (g)", "mape_pct": "MAPE (%)", "c_statistic": "c-statistic (LVH)"}
POPULATIONS = (("all", None), ("male", "M"), ("female", "F"))


def _pm(block: dict | None, digits: int = 1) -> str:
    if not block or block.get("mean") is None or (isinstance(block.get("mean"), float) and math.isnan(block["mean"])):
        return "–"
    sd = block.get("sd")
    sd_txt = "–" if sd is None or (isinstance(sd, float) and math.isnan(sd)) else f"{sd:.{digits}f}"
    return f"{block['mean']:.{digits}f} ± {sd_txt}"


def _num(x, digits=3) -> str:
    return "–" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.{digits}f}"


def _populations(model: dict):
    single_sex = sum(1 for k in ("M", "F") if model.get("by_sex", {}).get(k, {}).get("n", 0)) == 1
    for label, key in POPULATIONS:
        if single_sex and key is None:
            continue  # a one-sex model: its "all" row would repeat its own sex's row
        block = model if key is None else model.get("by_sex", {}).get(key)
        if block and block.get("n", 1):
            yield label, block


def performance_table(results: dict) -> pd.DataFrame:
    rows = []
    for name, model in results["models"].items():
        for pop, block in _populations(model):
            rows.append({"Model": MODEL_LABELS.get(name, name), "Population": pop, "n": block.get("n"),
                         "MAE (g)": _pm(block.get("mae_g")), "MAPE (%)": _pm(block.get("mape_pct"))})
    return pd.DataFrame(rows)


def lvh_table(results: dict) -> pd.DataFrame:
    rows = []
    for name, model in results["models"].items():
        for pop, block in _populations(model):
            lvh = block.get("lvh", {})
            rows.append({"Model": MODEL_LABELS.get(name, name), "Population": pop,
                         "c-statistic": _num(lvh.get("c_statistic")), "Accuracy": _num(lvh.get("accuracy")),
                         "Sensitivity": _num(lvh.get("sensitivity")), "Specificity": _num(lvh.get("specificity")),
                         "PPV": _num(lvh.get("ppv")), "F1": _num(lvh.get("f1"))})
    return pd.DataFrame(rows)


def comparisons_table(results: dict) -> pd.DataFrame:
    rows = []
    for c in results.get("comparisons", []):
        p = c.get("p_value")
        rows.append({"Model A": MODEL_LABELS.get(c["a"], c["a"]), "Model B": MODEL_LABELS.get(c["b"], c["b"]),
                     "Metric": METRIC_LABELS.get(c["metric"], c["metric"]),
                     "Population": {"M": "male", "F": "female"}.get(c.get("subset", "all"), c.get("subset", "all")),
                     "A": _num(c.get("a_value")), "B": _num(c.get("b_value")), "Test": c.get("test", ""),
                     "p value": "–" if p is None or (isinstance(p, float) and math.isnan(p)) else
                     ("<0.001" if p < 0.001 else f"{p:.3f}")})
    return pd.DataFrame(rows)


def to_markdown(df: pd.DataFrame, title: str | None = None) -> str:
    """A GitHub-flavoured Markdown table (no extra dependency)."""
    lines = [f"### {title}", ""] if title else []
    cols = [str(c) for c in df.columns]
    lines.append("| " + " | ".join(cols) + " |")
    lines.append("|" + "|".join("---" for _ in cols) + "|")
    for _, row in df.iterrows():
        lines.append("| " + " | ".join("" if v is None else str(v) for v in row.tolist()) + " |")
    return "\n".join(lines) + "\n"


def intervals_table(results: dict) -> pd.DataFrame:
    """Coverage and mean width of the out-of-fold conformal intervals, per model and level: overall, by
    sex and by true-LVM tertile; the plain absolute-residual score beside the normalised one; and the
    LVH probability's Brier score and expected calibration error."""
    rows = []
    for name, m in results.get("models", {}).items():
        iv = m.get("intervals")
        if not iv:
            continue
        variants = [(f"{float(level):.0%} normalised", block) for level, block in iv["levels"].items()]
        variants.append(("90% absolute", iv["absolute_score"]))
        for label, b in variants:
            row = {"model": MODEL_LABELS.get(name, name), "interval": label, "coverage": _num(b["coverage"], 3),
                   "width (g)": _num(b["mean_width_g"], 1)}
            for s in ("M", "F"):
                row[f"coverage {s}"] = _num(b.get("by_sex", {}).get(s, {}).get("coverage"), 3)
            for t in ("low", "middle", "high"):
                g = b.get("by_group", {}).get(t, {})
                row[f"{t} LVM: coverage"] = _num(g.get("coverage"), 3)
                row[f"{t} LVM: width (g)"] = _num(g.get("mean_width_g"), 1)
            rows.append(row)
        p = iv.get("lvh_probability", {})
        rows.append({"model": MODEL_LABELS.get(name, name), "interval": "LVH probability",
                     "coverage": f"Brier {_num(p.get('brier'), 3)}", "width (g)": f"ECE {_num(p.get('ece'), 3)}"})
    return pd.DataFrame(rows)


TABLES = {
    "table_performance": ("LV mass estimation (mean ± SD across folds)", performance_table),
    "table_lvh": ("LVH classification from predicted LVMI (pooled out-of-fold)", lvh_table),
    "table_comparisons": ("Model comparisons", comparisons_table),
    "table_intervals": ("Out-of-fold conformal prediction intervals (coverage, mean width) and LVH probability", intervals_table),
}


def write_tables(results: dict, out_dir) -> dict[str, pd.DataFrame]:
    """Write every table as ``NAME.csv`` and ``NAME.md`` into ``out_dir``; returns the frames."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    frames = {}
    for name, (title, fn) in TABLES.items():
        df = fn(results)
        atomic_write_text(out_dir / f"{name}.csv", df.to_csv(index=False))
        atomic_write_text(out_dir / f"{name}.md", to_markdown(df, title))
        frames[name] = df
    return frames
