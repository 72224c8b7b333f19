"""The model card written into every bundle (``model_card.md``, hash-checked; ``elvmass model-info``).

After Mitchell et al., "Model Cards for Model Reporting" (FAT* 2019): intended use, training data,
performance with its uncertainty, exclusions, known limits and versions, in plain Markdown.
"""

from __future__ import annotations

import datetime as dt
import platform

import pandas as pd

from elvmass.cohort import EXCLUSION_RULES
from elvmass.cohort.provenance import looks_synthetic


def _fmt(v, digits=1) -> str:
    return "–" if v is None else f"{v:.{digits}f}"


def model_card(trained: dict, sexes: dict, *, cohort: dict, calibrations: dict, train_config: dict,
               manifest: pd.DataFrame | None = None, study_results: dict | None = None) -> str:
    """The Markdown text of a bundle's model card."""
    import sklearn
    import torch

    from elvmass import __version__

    synthetic = looks_synthetic(manifest)
    sources = sorted(set(manifest["lvm_source"].dropna().astype(str))) if manifest is not None and "lvm_source" in manifest else []
    lines = [
        "# Model card: elvmass LV mass model",
        "",
        f"Created {dt.datetime.now(dt.timezone.utc):%Y-%m-%d} with elvmass {__version__} (preset "
        f"`{train_config.get('preset', {}).get('name', '?')}`).",
        "",
        "## Intended use",
        "Estimate imaging-derived left ventricular mass (LVM, grams), LVM indexed to body surface area and left "
        "ventricular hypertrophy (LVMI > 72 g/m² men, > 55 g/m² women) from a resting 10-s 12-lead ECG plus age, sex, "
        "height and weight, in adults like the training cohort. A research and triage aid: it does not replace "
        "echocardiography, CT or MR, and it must be validated (and usually recalibrated) on each new site's own "
        "labelled cases before any use (`elvmass validate`).",
        "",
        "## Training cohort",
        f"- {cohort.get('n', '?')} ECG–LVM pairs: {cohort.get('by_sex', {}).get('M', {}).get('n', '?')} men, "
        f"{cohort.get('by_sex', {}).get('F', {}).get('n', '?')} women; LVM source: {', '.join(sources) or 'unknown'}.",
    ]
    for s, label in (("M", "men"), ("F", "women")):
        b = cohort.get("by_sex", {}).get(s, {})
        lvm = b.get("lvm_g", {})
        lines.append(f"- LVM in {label}: {_fmt(lvm.get('mean'))} ± {_fmt(lvm.get('sd'))} g; "
                     f"LVH {_fmt(b.get('lvh_pct'))} %; age {_fmt(b.get('age_years', {}).get('mean'))} years.")
    if synthetic:
        lines += ["- **Synthetic training data**: this cohort is elvmass's built-in synthetic cohort "
                  "(`elvmass synth`). The model shows that the pipeline works; its numbers say nothing about "
                  "patients. Do not use it on patients."]
    lines += ["", "## Models in this bundle", "",
              "| model | family | serves | training / validation / calibration cases | best epoch | validation MAE (g) |",
              "|---|---|---|---|---|---|"]
    for name, fitted in sorted(trained.items()):
        info = getattr(fitted, "info", {}) or {}
        serves = {"M": "men", "F": "women"}.get(sexes.get(name), "both sexes")
        lines.append(f"| {name} | {fitted.spec.family} | {serves} | {info.get('n_train', '–')} / {info.get('n_val', '–')} / "
                     f"{info.get('n_calibration', 0)} | {info.get('best_epoch', '–')} | {info.get('val_mae_g', '–')} |")
    lines += ["", "## Uncertainty"]
    if calibrations:
        lines.append("Each estimate carries a split-conformal prediction interval (default 90 %), calibrated on "
                     "held-out patients the model never trained on, separately for men and women (Mondrian), with "
                     "a score relative to the predicted mass (wider intervals for larger hearts), and an LVH "
                     "probability from the same predictive distribution.")
        for name, c in sorted(calibrations.items()):
            lines.append(f"- {name}: calibration cases {c.get('n')}")
    else:
        lines.append("No calibration rows were held out: `predict` gives no intervals for this bundle.")
    if study_results:
        lines += ["", "## Cross-validated performance (the study on this cohort)", "",
                  "| model | MAE (g) | MAPE (%) | LVH c-statistic | 90 % interval coverage (men / women) | mean width (g) |",
                  "|---|---|---|---|---|---|"]
        for name, m in study_results.get("models", {}).items():
            iv = (m.get("intervals") or {}).get("levels", {}).get("0.9", {})
            cov = iv.get("coverage")
            by = iv.get("by_sex", {})
            lines.append(f"| {name} | {_fmt(m['mae_g']['mean'])} ± {_fmt(m['mae_g']['sd'])} | "
                         f"{_fmt(m['mape_pct']['mean'])} ± {_fmt(m['mape_pct']['sd'])} | "
                         f"{_fmt(m['lvh'].get('c_statistic'), 3)} | {_fmt(cov, 3)} ({_fmt(by.get('M', {}).get('coverage'), 3)} / "
                         f"{_fmt(by.get('F', {}).get('coverage'), 3)}) | {_fmt(iv.get('mean_width_g'))} |")
    lines += ["", "## Exclusions (outside the training population)",
              "ECGs of these kinds were excluded from training; `predict` flags them as `outside_training_population`:", ""]
    lines += [f"- {r.label}" for r in EXCLUSION_RULES]
    lines += ["", "## Known limits",
              "- Trained on one cohort; performance moves with the population, the ECG cart and the imaging modality "
              "(the paper's external validation: MAE 14.3 g internally, 29.2 g at another hospital before "
              "recalibration).",
              "- Paced rhythm, bundle branch block and atrial fibrillation were excluded; estimates for them are "
              "extrapolations.",
              "- Height and weight are needed for LVMI and the LVH call; when missing they are imputed for the mass "
              "estimate only and no LVH call is made.",
              "", "## Versions",
              f"- elvmass {__version__}, torch {torch.__version__}, scikit-learn {sklearn.__version__}, "
              f"pandas {pd.__version__}, Python {platform.python_version()}"]
    return "\n".join(lines) + "\n"
