"""The final models: fitted on the whole cohort (about 10 % held out for early stopping) and saved as
a model bundle (:mod:`elvmass.bundle`) that ``predict`` and ``serve`` use.

The same model entries as the study (:meth:`elvmass.experiments.study.StudyPreset.entries`): the
eLVMass-Net for both sexes and, with ``sex_specific``, one per sex; extra registered models with
``models=``. Models that cannot be stored without pickling (the demographics comparator) are left out.

With ``calibration_fraction`` > 0 (default 0.1) that share of the training patients (every n-th in LVM
order, disjoint from the validation rows) is held out from fitting and calibrates split-conformal
prediction intervals (:mod:`elvmass.evaluate.conformal`), stored in the bundle; ``predict`` then gives
``lvm_g_low``/``lvm_g_high`` and an LVH probability; their MAE and MAPE are kept as an internal held-out error.
A ``model_card.md`` is written into every bundle, and the training cohort's distribution summary
(:func:`elvmass.experiments.external.cohort_distribution`) that ``elvmass validate`` compares external cohorts with.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from elvmass.bundle import BundleError, save_bundle
from elvmass.evaluate import conformal
from elvmass.evaluate.metrics import mae_g, mape_pct
from elvmass.evaluate.splits import Split, hold_out_patients, train_val_split
from elvmass.experiments.external import cohort_distribution
from elvmass.experiments.study import cohort_summary, default_cache_dir, load_study_manifest, make_preset, study_data


def train_bundle(manifest, out_dir, preset="paper", *, sex_specific: bool = True, models: Sequence[str] = (),
                 cache_dir=None, progress: bool = True, log=None, device: str = "cpu",
                 calibration_fraction: float = 0.1, study_results: dict | None = None) -> Path:
    """Fit the final models on the whole cohort and save them as a bundle in ``out_dir``.

    ``study_results`` (a study's ``results.json`` on the same cohort) puts its cross-validated
    performance and interval coverage into the model card."""
    from elvmass.experiments.model_card import model_card
    t0 = time.perf_counter()
    out_dir = Path(out_dir)
    if isinstance(preset, str):
        preset = make_preset(preset)
    preset = preset.with_progress(progress)
    df, n_invalid = load_study_manifest(manifest)
    entries, _ = preset.entries(sex_specific=sex_specific, models=models)
    entries = [e for e in entries if e.spec.bundleable]
    data = study_data(df, [e.spec for e in entries], cache_dir if cache_dir is not None else default_cache_dir(manifest, out_dir))
    if len(data.manifest) < 20:
        raise BundleError(f"only {len(data.manifest)} usable ECG-LVM pairs; need at least 20 to train")
    trained, sexes, calibrations = {}, {}, {}
    y_g = data.lvm_g
    sex_all = data.manifest["sex"].to_numpy(object)
    for e in entries:
        tr, va = train_val_split(data.manifest, preset.val_fraction, sex=e.sex)
        cal = tr[:0]
        if calibration_fraction > 0:
            tr, cal = hold_out_patients(data.manifest, tr, calibration_fraction)
        if len(tr) < 10 or len(va) < 2:
            if log is not None:
                log(f"{e.name}: skipped, too few cases ({len(tr)} train, {len(va)} validation)")
            continue
        fitted = e.spec.fit(data, Split(-1, tr, va, va[:0]), device=device, progress=progress, label=f"{e.name} final")
        trained[e.name] = fitted
        sexes[e.name] = e.sex
        if len(cal) >= 10:
            pred = np.asarray(fitted.predict(data, cal), float)
            # the held-out calibration patients are never fitted on: their error is an internal held-out MAE
            fitted.info["calibration_mae_g"] = round(mae_g(y_g[cal], pred), 3)
            fitted.info["calibration_mape_pct"] = round(mape_pct(y_g[cal], pred), 3)
            if np.all(pred > 0):
                c = conformal.calibrate(y_g[cal], pred, sex_all[cal], "normalised")
                calibrations[e.name] = {**c.to_dict(), "level": conformal.DEFAULT_LEVEL, "n": c.n,
                                        "method": "split conformal on held-out calibration patients, Mondrian by sex"}
                fitted.info["n_calibration"] = int(len(cal))
        if log is not None:
            info = getattr(fitted, "info", {}) or {}
            extra = (f", best epoch {info['best_epoch']}, val MAE {info['val_mae_g']:.1f} g ({info.get('elapsed_s', 0):.0f} s)"
                     if "best_epoch" in info else "")
            log(f"{e.name}: {len(tr)} train / {len(va)} validation{extra}")
    if not trained:
        raise BundleError("no model could be trained (too few cases for every model)")
    train_config = {"preset": preset.to_dict(), "n_dropped_ecgs": len(data.dropped), "n_dropped_rows": int(n_invalid),
                    "calibration_fraction": calibration_fraction, "elapsed_s": round(time.perf_counter() - t0, 1)}
    cohort = cohort_summary(data.manifest)
    # what `elvmass validate` compares an external cohort with (distribution shift, the LVM histogram by sex)
    cohort["distribution"] = cohort_distribution(data)
    card = model_card(trained, sexes, cohort=cohort, calibrations=calibrations, train_config=train_config,
                      manifest=data.manifest, study_results=study_results)
    return save_bundle(out_dir, signal_config=preset.signal, models=trained, sexes=sexes, cohort=cohort,
                       train_config=train_config, extra={"conformal": calibrations}, files={"model_card.md": card})
