"""External validation and local recalibration of a trained bundle (``elvmass validate``, ``elvmass recalibrate``).

:func:`validate_external` predicts every case of another site's manifest with every model of a bundle
(sex-specific models on their own sex, pooled as ``<name>_sex_specific``), converts echo-derived LV mass
to a CT/MR equivalent (:mod:`elvmass.evaluate.external`), scores MAE, MAPE, bias and the LVH metrics overall
and by sex, evaluates a cross-fitted linear recalibration for each calibration size k
(:mod:`elvmass.evaluate.recalibration`), compares the cohort with the training-cohort summary stored in the
bundle, and writes ``validation.json``, ``predictions.csv``, tables and ``report.html``.

:func:`recalibrate_bundle` fits the linear recalibration on all labelled local cases and writes a new bundle
that carries it (hash-checked), so ``predict`` applies it.

Bad manifest rows (missing ECG files, unknown sex, mass out of range, ...) and unusable ECGs are listed
one line each and skipped; the other cases are scored.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pandas as pd

from elvmass.atomic import atomic_write, atomic_write_text
from elvmass.errors import ElvmassError, ManifestError
from elvmass.evaluate.external import (DISTRIBUTION_SUMMARY_VERSION, SHIFT_SMD_THRESHOLD, LVMConversion, convert_lvm,
                                       distribution_summary, score_block, shift_table)
from elvmass.evaluate.recalibration import MIN_CASES_PER_FIT, LinearCalibration, cross_fitted_recalibration
from elvmass.features import PARAM_INPUTS
from elvmass.jsonable import to_jsonable

DEFAULT_CALIBRATION_SIZES = (25, 50, 100, 200)
DEFAULT_DRAWS = 50
SEX_SUFFIXES = {"_male": "M", "_female": "F"}


class ExternalCohortError(ElvmassError):
    """The external cohort cannot be validated as asked (e.g. no case could be predicted)."""


class ConversionRequiredError(ExternalCohortError):
    """The manifest has echo-derived LV mass and no ``--lvm-conversion`` was given."""


def cohort_distribution(data) -> dict:
    """:func:`~elvmass.evaluate.external.distribution_summary` of a :class:`~elvmass.features.CohortData`: its
    manifest with the ECG parameters the models saw (device, else measured) and its quality flags."""
    df = data.manifest.copy()
    for k in PARAM_INPUTS:
        df[k] = data.measured[k].to_numpy(float)
    return distribution_summary(df, flags=data.flags)


# --------------------------------------------------------------------------------------------------
# the external cohort
# --------------------------------------------------------------------------------------------------


def load_external_cohort(manifest, conversion: LVMConversion | None, *, require_conversion: bool = True,
                         cutoffs: dict | None = None) -> tuple[pd.DataFrame, list[str], dict]:
    """(valid rows with converted LVM and derived LVMI/LVH, one line per bad row, conversion info).

    Every row is checked with the manifest's own validation (:func:`elvmass.cohort.validate_manifest`, ECG
    files must exist); bad rows are reported and skipped. Rows whose ``lvm_source`` is ``echo`` are
    converted with ``conversion`` (the measured mass is kept as ``lvm_measured_g``). With echo rows and no
    conversion, ``require_conversion`` raises :class:`ExternalCohortError` (``none`` must be said).
    """
    from elvmass.cohort import LVHCutoffs, add_derived_columns, read_manifest, resolve_ecg_path, validate_manifest
    from elvmass.cohort.device import fill_device_measurements

    path = Path(manifest)
    df = read_manifest(path)
    if len(df) == 0:
        raise ManifestError(f"{path}: the manifest has no data rows (only a header)")
    base = path.resolve().parent
    checked = validate_manifest(df, base_dir=base, check_files=True)
    by_row: dict[int, list[str]] = {}
    who: dict[int, str | None] = {}
    for p in checked.problems:
        by_row.setdefault(p.row, []).append(p.reason)
        who[p.row] = p.patient_id
    problems = [f"{path}: row {r}{f' (patient {who[r]})' if who[r] else ''}: {'; '.join(rs)} (skipped)"
                for r, rs in sorted(by_row.items())]
    valid = checked.valid.copy()
    if len(valid) == 0:
        raise ManifestError(f"{path}: no valid rows to validate on ({len(problems)} bad row(s))")
    valid["ecg_path"] = [str(resolve_ecg_path(p, base)) for p in valid["ecg_path"]]
    valid = fill_device_measurements(valid, base)
    n_echo = int((valid["lvm_source"] == "echo").sum())
    if n_echo and conversion is None and require_conversion:
        raise ConversionRequiredError(
            f"{path}: {n_echo} row(s) have lvm_source=echo; give --lvm-conversion a,b (lvm_ct = a + b * lvm_echo, from the "
            "conversion study you trust) or --lvm-conversion none to score echo mass as measured (no published "
            "conversion ships with elvmass: docs/external-validation.md)")
    measured = pd.to_numeric(valid["lvm_g"], errors="coerce").to_numpy(float)
    converted, mask = convert_lvm(measured, valid["lvm_source"].tolist(), conversion)
    valid["lvm_measured_g"] = measured
    valid["lvm_g"] = converted
    valid["lvm_converted"] = mask
    c = cutoffs or {"M": 72.0, "F": 55.0}
    out = add_derived_columns(valid, cutoffs=LVHCutoffs(c["M"], c["F"])).reset_index(drop=True)
    info = {"name": "none" if conversion is None else conversion.name,
            "a": None if conversion is None else conversion.a_g, "b": None if conversion is None else conversion.b,
            "citation": None if conversion is None else (conversion.citation or None),
            "n_converted": int(mask.sum()), "n_echo": n_echo,
            "formula": None if conversion is None else f"lvm_ct = {conversion.a_g:g} + {conversion.b:g} * lvm_echo"}
    return out, problems, info


def _sex_of(name: str, bundle) -> str | None:
    return bundle.sexes.get(name)


def predict_cohort(bundle, df: pd.DataFrame, cache_dir, *, apply_recalibration: bool = True
                   ) -> tuple[object, dict[str, np.ndarray], dict[str, str | None]]:
    """(CohortData of the usable rows, model name -> predicted LVM per row (NaN outside a sex-specific
    model's sex), name -> sex served). Sex-specific pairs are pooled as ``<base>_sex_specific``. A bundle's
    own recalibration (``elvmass recalibrate``) is applied as ``predict`` applies it, unless
    ``apply_recalibration`` is False (the raw model outputs, which a new recalibration is fitted on).

    ECGs that cannot be read or give no beat are dropped and listed in ``data.dropped``; ECGs with quality
    flags are kept with their flags, as in the study the model was judged by internally (their rates are
    part of the distribution-shift comparison)."""
    from elvmass.features import cohort_data

    signals = [bundle.signal_config] + [sig for f in bundle.fitted.values() for sig in getattr(f.spec, "signals", ())]
    data = cohort_data(df, signals, cache_dir=cache_dir)
    sex = data.manifest["sex"].to_numpy(object)
    preds: dict[str, np.ndarray] = {}
    sexes: dict[str, str | None] = {}
    for name in bundle.model_names:
        sx = _sex_of(name, bundle)
        rows = np.arange(len(data)) if sx is None else np.flatnonzero(sex == sx)
        p = np.full(len(data), np.nan)
        if len(rows):
            p[rows] = np.asarray(bundle.fitted[name].predict(data, rows), float)
            recal = bundle.recalibration(name) if apply_recalibration else None
            if recal is not None:
                p[rows] = recal.apply(p[rows], sex[rows])
        preds[name] = p
        sexes[name] = sx
    for base in sorted({n[: -len(suf)] for n in preds for suf in SEX_SUFFIXES if n.endswith(suf)}):
        m, f = f"{base}_male", f"{base}_female"
        if m in preds and f in preds and sexes.get(m) == "M" and sexes.get(f) == "F":
            preds[f"{base}_sex_specific"] = np.where(sex == "M", preds[m], np.where(sex == "F", preds[f], np.nan))
            sexes[f"{base}_sex_specific"] = "pooled"
    return data, preds, sexes


def _training_distribution(bundle) -> tuple[dict | None, str | None]:
    tc = bundle.config.get("training_cohort") or {}
    dist = tc.get("distribution")
    if not isinstance(dist, dict) or dist.get("version") != DISTRIBUTION_SUMMARY_VERSION:
        return None, (f"{bundle.path}: the bundle stores no training-cohort distribution summary (it was trained on an "
                      "older cohort schema by an earlier elvmass); distribution shift not compared: retrain it with "
                      "`elvmass train` to compare")
    return dist, None


# --------------------------------------------------------------------------------------------------
# validate
# --------------------------------------------------------------------------------------------------


def validate_external(model_dir, manifest, out_dir, *, conversion: LVMConversion | None = None,
                      require_conversion: bool = True, recalibrate: str = "linear",
                      calibration_sizes=DEFAULT_CALIBRATION_SIZES, n_draws: int = DEFAULT_DRAWS, seed: int = 0,
                      cache_dir=None, log=None) -> dict:
    """Validate a bundle on an external manifest and write the results folder (see the module docstring).

    Returns the ``validation.json`` content; ``problems`` lists every skipped row or ECG (one line each) and
    ``warnings`` what could not be done (e.g. no training-cohort summary in an older bundle)."""
    from elvmass.bundle import load_bundle

    t0 = time.perf_counter()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    if recalibrate not in ("none", "linear"):
        raise ValueError(f"recalibrate must be 'none' or 'linear', got {recalibrate!r}")
    bundle = load_bundle(model_dir)
    cutoffs = bundle.lvh_cutoffs
    df, problems, conv_info = load_external_cohort(manifest, conversion, require_conversion=require_conversion,
                                                   cutoffs=cutoffs)
    if log is not None:
        log(f"external manifest: {len(df)} valid row(s), {len(problems)} bad row(s); LVM conversion "
            f"{conv_info['name']} ({conv_info['n_converted']} echo row(s) converted)")
    n_bad_rows = len(problems)
    cache = Path(cache_dir) if cache_dir is not None else Path(manifest).resolve().parent / ".elvmass-cache"
    data, preds, sexes = predict_cohort(bundle, df, cache)
    problems += [f"{d['ecg_path']}: {d['problem']} (skipped)" for d in data.dropped]
    if len(data) == 0:
        raise ExternalCohortError(f"{manifest}: no case could be predicted ({len(problems)} skipped)")
    m = data.manifest
    y = m["lvm_g"].to_numpy(float)
    sex = m["sex"].to_numpy(object)
    bsa = pd.to_numeric(m["bsa_m2"], errors="coerce").to_numpy(float)
    lvh = m["lvh"].astype("float").to_numpy()
    per_case = {}
    models = {}
    sizes = sorted({int(k) for k in calibration_sizes})
    for name, p in preds.items():
        sx = sexes[name]
        block = {"sex": sx, "uncalibrated": score_block(y, p, sex, bsa, lvh, cutoffs)}
        if recalibrate == "linear":
            rec = {}
            n_ok = int(np.isfinite(p).sum())
            for k in sizes:
                if k >= n_ok - 1:
                    rec[str(k)] = {"skipped": f"only {n_ok} scored case(s): a calibration of {k} leaves too few to score"}
                    continue
                r = cross_fitted_recalibration(y, p, sex, k, n_draws=n_draws, seed=seed, per_sex=sx == "pooled",
                                               bsa=bsa, lvh=lvh, cutoffs=cutoffs)
                per_case[(name, k)] = r.pop("per_case_lvm_g")
                rec[str(k)] = r
            block["recalibrated"] = rec
        models[name] = block
        if log is not None:
            u = block["uncalibrated"]
            log(f"{name}: MAE {u['mae_g']:.1f} g, MAPE {u['mape_pct']:.1f} %, bias {u['bias_g']:+.1f} g (n = {u['n']})")
    ext_dist = cohort_distribution(data)
    train_dist, warning = _training_distribution(bundle)
    warnings = [warning] if warning else []
    if train_dist is not None:
        rows = shift_table(train_dist, ext_dist)
        shift = {"available": True, "threshold_smd": SHIFT_SMD_THRESHOLD, "flagged": [r["variable"] for r in rows if r["flagged"]],
                 "variables": rows, "training": train_dist, "external": ext_dist}
    else:
        shift = {"available": False, "reason": warning, "flagged": [], "variables": [], "external": ext_dist}
    from elvmass import __version__

    results = {
        "n": int(len(data)),
        "n_rows": int(len(df) + n_bad_rows),
        "n_skipped": {"manifest_rows": n_bad_rows, "ecg": len(data.dropped)},
        "problems": problems,
        "warnings": warnings,
        "model": str(model_dir),
        "cohort": str(manifest),
        "lvm_conversion": conv_info,
        "recalibration": {"method": recalibrate, "calibration_sizes": sizes, "n_draws": int(n_draws), "seed": int(seed),
                          "scheme": "cross-fitted: each draw fits on k random external cases and scores only the others; "
                                    "sex-specific models pooled are fitted per sex (draws stratified by sex)"},
        "models": models,
        "shift": shift,
        "training_cohort": {k: v for k, v in (bundle.config.get("training_cohort") or {}).items() if k != "distribution"},
        "bundle_recalibrated": bool(bundle.recalibrations),
        "internal_holdout": {n: {k: e.get("training", {}).get(k) for k in ("calibration_mae_g", "calibration_mape_pct",
                                                                             "n_calibration")}
                             for n, e in bundle.config["models"].items()},
        "elvmass_version": __version__,
    }
    frame = predictions_frame(data, preds, per_case, sizes)
    results["elapsed_s"] = round(time.perf_counter() - t0, 1)
    write_validation_outputs(out_dir, results, frame)
    return to_jsonable(results)


def predictions_frame(data, preds: dict, per_case: dict, sizes) -> pd.DataFrame:
    """One row per scored case: identifiers, measured and converted LVM, every model's uncalibrated LVM and
    LVMI, and per k its mean cross-fitted recalibrated LVM (over the draws that did not use the case)."""
    m = data.manifest
    keep = [c for c in ("patient_id", "ecg_path", "sex", "age_years", "height_cm", "weight_kg", "bsa_m2", "lvm_source",
                        "lvm_measured_g", "lvm_converted", "lvm_g", "lvmi_g_m2", "lvh") if c in m.columns]
    out = m[keep].copy()
    bsa = pd.to_numeric(m["bsa_m2"], errors="coerce").to_numpy(float)
    for name, p in preds.items():
        out[f"{name}_lvm_g"] = np.round(p, 2)
        out[f"{name}_lvmi_g_m2"] = np.round(p / bsa, 2)
        for k in sizes:
            if (name, k) in per_case:
                out[f"{name}_recal_k{k}_lvm_g"] = np.round(per_case[(name, k)], 2)
    return out


def write_validation_outputs(out_dir: Path, results: dict, frame: pd.DataFrame) -> None:
    """validation.json, predictions.csv, table_external.{csv,md}, table_recalibration.{csv,md},
    table_shift.{csv,md} and report.html."""
    from elvmass.report.external import write_external_report, write_external_tables

    atomic_write(out_dir / "predictions.csv", lambda tmp: frame.to_csv(tmp, index=False))
    write_external_tables(results, out_dir)
    write_external_report(results, frame, out_dir / "report.html")
    atomic_write_text(out_dir / "validation.json", json.dumps(to_jsonable(results), indent=2))


# --------------------------------------------------------------------------------------------------
# recalibrate
# --------------------------------------------------------------------------------------------------


def recalibrate_bundle(model_dir, manifest, out_dir, *, conversion: LVMConversion | None = None,
                       require_conversion: bool = True, cache_dir=None, log=None) -> dict:
    """Fit every model's linear recalibration on all labelled cases of a local manifest (a sex-specific
    model on its own sex's cases) and write a new bundle carrying it. Returns a summary with ``problems``."""
    from elvmass.bundle import BundleError, load_bundle, write_recalibrated_bundle

    bundle = load_bundle(model_dir)
    df, problems, conv_info = load_external_cohort(manifest, conversion, require_conversion=require_conversion,
                                                   cutoffs=bundle.lvh_cutoffs)
    cache = Path(cache_dir) if cache_dir is not None else Path(manifest).resolve().parent / ".elvmass-cache"
    data, preds, sexes = predict_cohort(bundle, df, cache, apply_recalibration=False)  # a new line replaces any old one
    problems += [f"{d['ecg_path']}: {d['problem']} (skipped)" for d in data.dropped]
    y = data.manifest["lvm_g"].to_numpy(float)
    cals, fits, warnings = {}, {}, []
    for name in bundle.model_names:
        p = preds[name]
        ok = np.isfinite(p) & np.isfinite(y)
        if ok.sum() < max(MIN_CASES_PER_FIT, 10 if sexes[name] is None else MIN_CASES_PER_FIT):
            raise BundleError(f"{manifest}: only {int(ok.sum())} usable labelled case(s) for model {name!r}; "
                              "recalibration needs at least 10 (3 per sex-specific model)")
        cal = LinearCalibration.fit(y[ok], p[ok])
        if not cal.pooled[1] > 0:  # kept as fitted, but a line that reverses the ranking is said out loud
            warnings.append(f"{name}: the fitted slope is {cal.pooled[1]:.3f} (not positive): the model's output does not "
                            "rank this site's cases; the recalibrated bundle predicts little more than a constant")
        cals[name] = cal
        fits[name] = {"intercept_g": cal.pooled[0], "slope": cal.pooled[1], "n": cal.n, "sex": sexes[name]}
        if log is not None:
            log(f"{name}: lvm = {cal.pooled[0]:.1f} g + {cal.pooled[1]:.3f} x predicted (n = {cal.n})")
    info = {"n_cases": int(len(data)), "cohort": str(manifest), "lvm_conversion": conv_info,
            "scheme": "per model, least squares of true on predicted LVM over all local cases (sex-specific models: "
                      "their own sex)"}
    write_recalibrated_bundle(model_dir, out_dir, cals, info)
    return to_jsonable({"out": str(out_dir), "n": int(len(data)), "problems": problems, "warnings": warnings, "models": fits,
                        "lvm_conversion": conv_info})


__all__ = ["DEFAULT_CALIBRATION_SIZES", "ConversionRequiredError", "ExternalCohortError", "cohort_distribution", "load_external_cohort",
           "predict_cohort", "recalibrate_bundle", "validate_external"]
