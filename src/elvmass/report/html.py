"""A self-contained HTML study report: tables plus figures embedded as base64 PNGs.

One file, no external assets, so it can be mailed or archived with the results folder.
"""

from __future__ import annotations

import base64
import html
from pathlib import Path

import pandas as pd

from elvmass.atomic import atomic_write_text
from elvmass.report import figures
from elvmass.report.tables import comparisons_table, intervals_table, lvh_table, performance_table

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,sans-serif;max-width:1200px;margin:2em auto;padding:0 1em;color:#222}
table{border-collapse:collapse;margin:0.5em 0 1.5em;font-size:0.9em}
th,td{border:1px solid #ccc;padding:3px 8px;text-align:right}
th{background:#f0f0f0} td:first-child,td:nth-child(2){text-align:left}
img{max-width:100%;margin:0.5em 0 1.5em}
.note{color:#555;font-size:0.9em}
"""


def _table_html(df: pd.DataFrame) -> str:
    return df.to_html(index=False, border=0, escape=True, na_rep="–")


def _img(png: bytes, alt: str) -> str:
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{base64.b64encode(png).decode()}">'


def _saliency_html(saliency: dict) -> list[str]:
    parts = ["<h2>Table 3. Saliency by ECG segment, lead group and LVM tertile</h2>",
             f"<p class='note'>{html.escape(str(saliency.get('method', 'gradient')))} saliency of each fold model on its "
             f"own test cases ({saliency.get('n_cases', '?')} model x case pairs); each cell the mean % of an ECG's "
             "total saliency; LL limb leads, PL precordial leads; 'not found': ECGs per tertile whose segment "
             "boundaries could not be found (that share is counted in no segment). The 5-per-tertile rows are "
             f"drawn with seed {saliency.get('seed', 0)}.</p>",
             _table_html(saliency["table"])]
    parts += [f"<p class='note'>{html.escape(n)}</p>" for n in saliency.get("notes", [])]
    fig = saliency.get("figure")
    if fig is not None:
        parts += ["<h2>Figure 4. Saliency in men (top) and women (bottom), low / middle / high LVM</h2>",
                  _img(Path(fig).read_bytes() if not isinstance(fig, bytes) else fig, "Figure 4")]
    return parts


def render_report(results: dict, predictions: pd.DataFrame, histories: dict, saliency: dict | None = None) -> str:
    """The report as an HTML string; ``saliency`` (``table``: Table 3 as a frame, ``notes``, ``figure``:
    Figure 4's PNG path or bytes, ``method``, ``n_cases``, ``seed``) adds Table 3 and Figure 4."""
    cfg = results.get("config", {})
    preset = cfg.get("preset", {})
    coh = results.get("cohort", {})
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'><title>elvmass study report</title>",
        f"<style>{_CSS}</style></head><body>",
        "<h1>eLVMass-Net study report</h1>",
        f"<p>{results.get('n', '?')} ECG–LVM pairs "
        f"(male {coh.get('by_sex', {}).get('M', {}).get('n', '?')}, female {coh.get('by_sex', {}).get('F', {}).get('n', '?')}); "
        f"preset <b>{html.escape(str(preset.get('name', '?')))}</b>, {preset.get('n_folds', 5)}-fold cross-validation "
        "(folds by sorting on LVM, every fifth patient); elvmass "
        f"{html.escape(str(cfg.get('elvmass_version', '?')))}; run time {results.get('elapsed_s', 0):.0f} s.</p>",
        "<p class='note'>The demographics-only comparator (gradient boosting on age, sex, height, weight, BMI, BSA) "
        "shows how much the ECG adds beyond body size and sex.</p>",
        "<h2>LV mass estimation</h2>", _table_html(performance_table(results)),
        "<h2>LVH classification</h2>", _table_html(lvh_table(results)),
        "<h2>Comparisons</h2>", _table_html(comparisons_table(results)),
        "<h2>Prediction intervals and LVH probability</h2>",
        "<p class='note'>Cross-conformal intervals from out-of-fold residuals: each case is calibrated by the other "
        "folds' cases of its sex (Mondrian). The normalised score scales the residual by the predicted mass, so "
        "intervals widen for large hearts; the absolute score gives every patient the same width.</p>",
        _table_html(intervals_table(results)),
        _img(figures.reliability_figure(results), "reliability diagram"),
        "<h2>Predicted vs true LVM</h2>", _img(figures.scatter_figure(predictions), "scatter"),
        "<h2>Bland–Altman</h2>", _img(figures.bland_altman_figure(predictions), "Bland-Altman"),
        "<h2>LVH ROC by sex</h2>", _img(figures.roc_figure(predictions), "ROC"),
        "<h2>LVM distribution by sex</h2>", _img(figures.distribution_figure(predictions), "distribution"),
    ]
    if histories:
        parts += ["<h2>Learning curves</h2>", _img(figures.learning_curves_figure(histories), "learning curves")]
    if saliency:
        parts += _saliency_html(saliency)
    dropped = results.get("n_dropped", {})
    parts.append(f"<p class='note'>Rows dropped: {html.escape(str(dropped))}. Full configuration in config.json; "
                 "out-of-fold predictions in predictions.csv.</p></body></html>")
    return "\n".join(parts)


def write_report(results: dict, predictions: pd.DataFrame, histories: dict, path, *, saliency: dict | None = None) -> Path:
    """Write :func:`render_report` atomically to ``path``."""
    path = Path(path)
    text = render_report(results, predictions, histories, saliency)
    return atomic_write_text(path, text)
