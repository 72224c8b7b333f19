"""The external-validation report (``elvmass validate``): tables as CSV and Markdown, and one self-contained
HTML page with predicted vs true, Bland–Altman, the LVM distribution of the external cohort beside the training
cohort's (the paper's Figure 3), the recalibration curve and the distribution-shift table.

    >>> res = {"models": {"elvmassnet": {"sex": None, "uncalibrated": {"n": 5, "mae_g": 20.0, "mape_pct": 15.0,
    ...        "bias_g": 8.0, "lvh": {"c_statistic": 0.7}, "by_sex": {}}}}}
    >>> external_table(res).iloc[0]["MAE (g)"]
    '20.0'
"""

from __future__ import annotations

import html
from pathlib import Path

import pandas as pd

from elvmass.atomic import atomic_write_text
from elvmass.report import figures
from elvmass.report.html import _CSS, _img, _table_html
from elvmass.report.tables import MODEL_LABELS, _num, _pm, to_markdown


def external_table(results: dict) -> pd.DataFrame:
    """One row per model and population: n, MAE, MAPE, bias and the LVH metrics, uncalibrated."""
    rows = []
    for name, m in results.get("models", {}).items():
        u = m["uncalibrated"]
        pops = [("all", u)] + [(lab, u.get("by_sex", {}).get(s)) for lab, s in (("male", "M"), ("female", "F"))]
        for label, b in pops:
            if not b or not b.get("n"):
                continue
            lvh = b.get("lvh", {})
            rows.append({"model": MODEL_LABELS.get(name, name), "population": label, "n": b["n"],
                         "MAE (g)": _num(b.get("mae_g"), 1), "MAPE (%)": _num(b.get("mape_pct"), 1),
                         "bias (g)": _num(b.get("bias_g"), 1), "c-statistic": _num(lvh.get("c_statistic")),
                         "sensitivity": _num(lvh.get("sensitivity")), "specificity": _num(lvh.get("specificity")),
                         "PPV": _num(lvh.get("ppv"))})
    return pd.DataFrame(rows)


def recalibration_table(results: dict) -> pd.DataFrame:
    """Per model and k: MAE, MAPE and c-statistic after cross-fitted recalibration (mean ± SD across draws)
    beside the uncalibrated numbers (k = 0)."""
    rows = []
    for name, m in results.get("models", {}).items():
        u = m["uncalibrated"]
        rows.append({"model": MODEL_LABELS.get(name, name), "k": 0, "MAE (g)": _num(u["mae_g"], 1),
                     "MAPE (%)": _num(u["mape_pct"], 1), "c-statistic": _num(u["lvh"].get("c_statistic")), "draws": "–"})
        for k, r in (m.get("recalibrated") or {}).items():
            if "mae_g" not in r:
                rows.append({"model": MODEL_LABELS.get(name, name), "k": int(k), "MAE (g)": r.get("skipped", "–"),
                             "MAPE (%)": "–", "c-statistic": "–", "draws": "–"})
                continue
            rows.append({"model": MODEL_LABELS.get(name, name), "k": int(k), "MAE (g)": _pm(r["mae_g"]),
                         "MAPE (%)": _pm(r["mape_pct"]), "c-statistic": _pm(r["c_statistic"], 3),
                         "draws": r["mae_g"]["n_draws"]})
    return pd.DataFrame(rows)


def shift_frame(results: dict) -> pd.DataFrame:
    """The distribution-shift table: training vs external per variable, SMD, flagged."""
    rows = []
    for r in (results.get("shift") or {}).get("variables", []):
        if r["kind"] == "share":
            tr, ex = _num(r["training_mean"], 3), _num(r["external_mean"], 3)
        else:
            tr = f"{_num(r['training_mean'], 1)} ({_num(r['training_sd'], 1)})"
            ex = f"{_num(r['external_mean'], 1)} ({_num(r['external_sd'], 1)})"
        rows.append({"variable": r["variable"], "training": tr, "external": ex, "SMD": _num(r["smd"], 2),
                     "flagged": "yes" if r["flagged"] else ""})
    return pd.DataFrame(rows, columns=["variable", "training", "external", "SMD", "flagged"])


TABLES = {
    "table_external": ("External validation, uncalibrated", external_table),
    "table_recalibration": ("Cross-fitted linear recalibration on k local cases (mean ± SD across draws)", recalibration_table),
    "table_shift": ("Distribution shift: training vs external cohort (standardised mean difference)", shift_frame),
}


def write_external_tables(results: dict, out_dir) -> dict[str, pd.DataFrame]:
    out_dir = Path(out_dir)
    frames = {}
    for name, (title, fn) in TABLES.items():
        df = fn(results)
        atomic_write_text(out_dir / f"{name}.csv", df.to_csv(index=False))
        atomic_write_text(out_dir / f"{name}.md", to_markdown(df, title))
        frames[name] = df
    return frames


def _conversion_text(conv: dict) -> str:
    if conv.get("name") == "none":
        extra = (f" {conv.get('n_echo')} echo row(s) were scored as measured (echo over-estimates CT/MR mass)."
                 if conv.get("n_echo") else "")
        return "No LV-mass conversion." + extra
    cite = f" ({html.escape(str(conv['citation']))})" if conv.get("citation") else ""
    return (f"LV-mass conversion <b>{html.escape(str(conv['name']))}</b>{cite}: {html.escape(str(conv.get('formula')))}, "
            f"applied to the {conv.get('n_converted', 0)} echo row(s) only; CT and MR rows as measured.")


def render_external_report(results: dict, pred: pd.DataFrame) -> str:
    shift = results.get("shift") or {}
    main = [n for n in results.get("models", {}) if not n.endswith(("_male", "_female"))]
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'><title>elvmass external validation</title>",
        f"<style>{_CSS}</style></head><body>",
        "<h1>External validation</h1>",
        f"<p>Bundle <code>{html.escape(str(results.get('model')))}</code> on <code>{html.escape(str(results.get('cohort')))}</code>: "
        f"{results.get('n')} case(s) scored of {results.get('n_rows')} manifest row(s) "
        f"({html.escape(str(results.get('n_skipped')))} skipped); run time {results.get('elapsed_s', 0):.0f} s.</p>",
        f"<p>{_conversion_text(results.get('lvm_conversion', {}))}</p>",
        "<h2>Uncalibrated performance</h2>", _table_html(external_table(results)),
        "<h2>Recalibration on k local cases</h2>",
        "<p class='note'>Cross-fitted: for each k, repeated seeded draws of k external cases fit "
        "lvm = intercept + slope · predicted (per sex for the pooled sex-specific models); each draw scores only "
        "the cases it did not use. Mean ± SD across draws.</p>",
        _table_html(recalibration_table(results)),
        _img(figures.recalibration_curve_figure(results), "recalibration curve")
        if (results.get("recalibration") or {}).get("method") == "linear" else "",
        "<h2>Predicted vs true LVM</h2>", _img(figures.scatter_figure(pred, main), "scatter"),
        "<h2>Bland–Altman</h2>", _img(figures.bland_altman_figure(pred, main), "Bland-Altman"),
        "<h2>LVM distribution: external vs training (Figure 3)</h2>",
        _img(figures.cohort_shift_figure(pred, (shift.get("training") or {}).get("lvm_histogram")), "LVM distribution"),
        "<h2>Distribution shift</h2>",
    ]
    if shift.get("available"):
        flagged = ", ".join(shift.get("flagged") or []) or "none"
        parts += [f"<p>Variables whose standardised mean difference exceeds {shift.get('threshold_smd')}: "
                  f"<b>{html.escape(flagged)}</b>.</p>", _table_html(shift_frame(results))]
    else:
        parts.append(f"<p class='note'>{html.escape(str(shift.get('reason')))}</p>")
    probs = results.get("problems") or []
    if probs:
        parts += ["<h2>Skipped</h2>", "<ul>" + "".join(f"<li>{html.escape(p)}</li>" for p in probs[:200]) + "</ul>"]
    parts.append("</body></html>")
    return "\n".join(parts)


def write_external_report(results: dict, pred: pd.DataFrame, path) -> Path:
    return atomic_write_text(Path(path), render_external_report(results, pred))
