"""The experiments report: one self-contained HTML file with every experiment table (as laid out
in the paper) and the study figures of the reference model (scatter, Bland–Altman, LVH ROC by
sex, LVM distribution, learning curves), reusing :mod:`elvmass.report.figures`.

    >>> import pandas as pd
    >>> html = render_experiments_report({"n": 3, "config": {"preset": {"name": "quick"}}},
    ...                                  {"1a": ("Table 1(a)", pd.DataFrame({"Input view": ["Single beat"]}))})
    >>> "<h2>Table 1(a)</h2>" in html
    True
"""

from __future__ import annotations

import html
from pathlib import Path

import pandas as pd

from elvmass.atomic import atomic_write_text
from elvmass.report import figures
from elvmass.report.html import _CSS, _img, _table_html


def render_experiments_report(results: dict, tables: dict[str, tuple[str, pd.DataFrame]],
                              predictions: pd.DataFrame | None = None, histories: dict | None = None,
                              reference: str = "elvmassnet") -> str:
    """The report as an HTML string; ``tables``: key -> (title, frame) or (title, frame, notes, images)
    with notes (lines under the table) and images ((caption, PNG path or bytes), e.g. Figure 4)."""
    cfg = results.get("config", {})
    preset = cfg.get("preset", {})
    coh = results.get("cohort", {})
    tasks = results.get("tasks", [])
    reused = sum(1 for t in tasks if t.get("reused"))
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'><title>elvmass experiments report</title>",
        f"<style>{_CSS}</style></head><body>",
        "<h1>eLVMass-Net experiments</h1>",
        f"<p>{results.get('n', '?')} ECG–LVM pairs (male {coh.get('by_sex', {}).get('M', {}).get('n', '?')}, "
        f"female {coh.get('by_sex', {}).get('F', {}).get('n', '?')}); preset "
        f"<b>{html.escape(str(preset.get('name', '?')))}</b>, {preset.get('n_folds', 5)}-fold cross-validation "
        "(folds by sorting on LVM, every fifth patient; the same test folds for every model, sex-specific "
        f"models tested on their sex's part of each fold); {len(tasks)} (model, fold) tasks, {reused} reused "
        f"from an earlier run; run time {results.get('elapsed_s', 0):.0f} s.</p>",
        "<p class='note'>MAE and MAPE: mean ± SD across folds; p: paired t-test across folds against the "
        "eLVMass-Net reference row (—); c-statistic: pooled out-of-fold predictions, DeLong's test.</p>",
    ]
    for key, (title, frame, *more) in tables.items():
        parts += [f"<h2>{html.escape(title)}</h2>", _table_html(frame)]
        notes, images = (list(more) + [[], []])[:2]
        parts += [f"<p class='note'>{html.escape(n)}</p>" for n in notes]
        for caption, png in images:
            data = png if isinstance(png, bytes) else Path(png).read_bytes()
            parts += [f"<h3>{html.escape(caption)}</h3>", _img(data, caption)]
    if predictions is not None and f"{reference}_lvm_g" in predictions.columns:
        parts += [
            "<h2>Reference model: predicted vs true LVM</h2>", _img(figures.scatter_figure(predictions, [reference]), "scatter"),
            "<h2>Reference model: Bland–Altman</h2>", _img(figures.bland_altman_figure(predictions, [reference]), "Bland-Altman"),
            "<h2>Reference model: LVH ROC by sex</h2>", _img(figures.roc_figure(predictions, [reference]), "ROC"),
            "<h2>LVM distribution by sex</h2>", _img(figures.distribution_figure(predictions), "distribution"),
        ]
    if histories:
        parts += ["<h2>Reference model: learning curves</h2>", _img(figures.learning_curves_figure(histories), "learning curves")]
    parts.append("<p class='note'>Every number and configuration in experiments.json; out-of-fold predictions in "
                 "predictions.csv.</p></body></html>")
    return "\n".join(parts)


def write_experiments_report(results: dict, tables: dict, predictions, histories, path, *, reference="elvmassnet") -> Path:
    """Write :func:`render_experiments_report` atomically to ``path``."""
    return atomic_write_text(Path(path), render_experiments_report(results, tables, predictions, histories, reference))
