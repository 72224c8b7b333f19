"""The cross-validated study of the eLVMass-Net paper, end to end: which models, the protocol
(:mod:`elvmass.experiments.protocol`), the summary, the comparisons and the results folder.

:func:`run_study` takes a cohort manifest and writes a results folder:

* ``results.json``: cohort size, the full configuration, per-model MAE / MAPE (mean, SD and
  per fold), LVH classification (overall and by sex) and the statistical comparisons;
* ``predictions.csv``: the out-of-fold prediction of every model for every case;
* ``table_performance.{csv,md}``, ``table_lvh.{csv,md}``, ``table_comparisons.{csv,md}``;
* ``report.html`` with the figures, and ``config.json``.

Protocol (Pan et al. 2025): five folds by sorting on LVM and taking every fifth patient
(:func:`elvmass.evaluate.splits.make_splits`); in each iteration one fold is the test set,
~10 % of the rest the validation set for early stopping; normalisation and imputation are
fitted on the training rows only. Models:

* ``elvmassnet``: one model for both sexes;
* ``elvmassnet_male`` / ``elvmassnet_female`` (``sex_specific=True``): trained and tested on one
  sex with the same folds, plus ``elvmassnet_sex_specific``, their predictions pooled;
* ``demographics``: gradient boosting on age, sex, height, weight, BMI, BSA (what the ECG
  has to beat), fitted on the training + validation rows of each fold.

Any other registered model (``models=`` / ``elvmass study --models``, see
:func:`elvmass.models.registry.model_recipes`) runs in the same protocol beside them.

Comparisons: per-fold MAE / MAPE with a paired t-test across folds (the paper's fold-level
test) and c-statistics with DeLong's test on the pooled out-of-fold predictions; every model is
compared with the reference (the first model) and with the demographics baseline, sex-restricted
models on their own sex.
"""

from __future__ import annotations

import dataclasses
import json
import time
from dataclasses import dataclass
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from elvmass.atomic import atomic_write, atomic_write_text
from elvmass.evaluate.metrics import lvh_metrics, lvh_score, mae_g, mape_pct, mean_sd
from elvmass.evaluate import conformal
from elvmass.evaluate.stats import delong_test, paired_fold_test
from elvmass.experiments.protocol import ModelEntry, ProtocolResult, run_protocol
from elvmass.features import CohortData, cohort_data
from elvmass.jsonable import to_jsonable
from elvmass.models.demographics import DemographicsConfig, DemographicsSpec
from elvmass.models.elvmassnet import ElvmassNetConfig
from elvmass.models.elvmassnet_spec import ElvmassNetSpec
from elvmass.training import TrainConfig

REFERENCE = "elvmassnet"
BASELINE = "demographics"
SEX_SUFFIX = {"M": "male", "F": "female"}


@dataclass(frozen=True)
class StudyPreset:
    """Everything that defines a study run (saved into ``results.json`` / ``config.json``)."""

    name: str
    signal: object  # elvmass.signal.SignalConfig
    net: ElvmassNetConfig
    train: TrainConfig
    demographics: DemographicsConfig = DemographicsConfig()
    n_folds: int = 5
    val_fraction: float = 0.1
    seed: int = 0

    def to_dict(self) -> dict:
        return {
            "name": self.name,
            "signal": self.signal.to_dict(),
            "net": self.net.to_dict(),
            "train": self.train.to_dict(),
            "demographics": dataclasses.asdict(self.demographics),
            "n_folds": self.n_folds,
            "val_fraction": self.val_fraction,
            "seed": self.seed,
        }

    def with_progress(self, progress: bool) -> "StudyPreset":
        return dataclasses.replace(self, train=dataclasses.replace(self.train, progress=progress))

    def net_spec(self, name: str = REFERENCE) -> ElvmassNetSpec:
        """The preset's eLVMass-Net as a model spec."""
        return ElvmassNetSpec(name=name, seed=self.seed, signal=self.signal, net=self.net, train=self.train)

    def entries(self, *, sex_specific: bool = False, models: Sequence[str] = ()) -> tuple[list[ModelEntry], dict]:
        """The study's models and pools: the reference eLVMass-Net, its male and female models
        (``sex_specific``), every extra model named in ``models`` (registered recipes, built for this
        preset) and the demographics baseline last."""
        from elvmass.models.registry import build_models

        ref = self.net_spec()
        entries = [ModelEntry(ref)]
        pools = {}
        if sex_specific:
            sexed = [ModelEntry(ref, sex=s, name_override=f"{REFERENCE}_{SEX_SUFFIX[s]}") for s in ("M", "F")]
            entries += sexed
            pools[f"{REFERENCE}_sex_specific"] = [e.name for e in sexed]
        for spec in build_models(models, self):
            if spec.name not in (REFERENCE, BASELINE):
                entries.append(ModelEntry(spec))
        entries.append(ModelEntry(DemographicsSpec(name=BASELINE, seed=self.seed, config=self.demographics)))
        return entries, pools


def make_preset(name: str = "paper", *, inputs: str = "all", seed: int = 0, **train_overrides) -> StudyPreset:
    """A named preset: ``quick`` (tiny model, few epochs: tests, smoke runs) or ``paper``
    (the paper's single-beat, electrically grouped TCN, sized to train on a 2-core CPU).

    ``inputs`` picks the paper's input combination (``ecg``, ``ecg+params``,
    ``ecg+demographics``, ``all``).
    """
    from elvmass.signal.config import SignalConfig
    from elvmass.signal.leads import LEAD_GROUPS

    if name == "quick":
        signal = SignalConfig(view="single_beat", out_fs_hz=100.0, lead_grouping="electrical", seed=seed)
        net_kw = dict(channels=(8, 8, 8), kernel_size=5, stride=1, ecg_embed_dim=16, scalar_hidden=8, head_hidden=(16,),
                      dropout=0.0, head_dropout=0.0)
        train = TrainConfig(epochs=12, batch_size=32, lr=3e-3, patience=6, seed=seed)
    elif name == "paper":
        # 125 Hz: the beat is band-passed to 40 Hz, so its Nyquist of 62.5 Hz keeps the whole band; half the
        # samples of 250 Hz train 1.98x faster, and on the demo manifest the MAE moved 10.59 -> 10.65 g
        # (benchmarks/train_accuracy_ab.py; README, "Training code and schedule"). Kernel 3, not 5: four
        # levels still see 122 input samples (0.98 s, the whole 0.9-s beat), an epoch takes 18 % less
        # time, and the MAE moved 10.61 -> 10.55 g on the same manifest. 18 epochs, not 25: 28 % fewer epochs,
        # MAE 10.55 -> 10.65 g (the code before issue 18: 10.77 g)
        signal = SignalConfig(view="single_beat", out_fs_hz=125.0, lead_grouping="electrical", seed=seed)
        net_kw = dict(channels=(32, 32, 32, 32), kernel_size=3, stride=2, ecg_embed_dim=64, scalar_hidden=16,
                      head_hidden=(64,), dropout=0.1, head_dropout=0.1)
        train = TrainConfig(epochs=18, batch_size=64, lr=2e-3, patience=6, seed=seed)
    else:
        raise ValueError(f"unknown preset {name!r}; choose 'quick' or 'paper'")
    groups = tuple(tuple(g) for g in LEAD_GROUPS[signal.lead_grouping])
    net = ElvmassNetConfig.for_inputs(inputs, lead_groups=groups, seed=seed, **net_kw)
    if train_overrides:
        train = dataclasses.replace(train, **train_overrides)
    return StudyPreset(name, signal, net, train, DemographicsConfig(seed=seed), seed=seed)


#: what the protocol returns (kept under its study name)
StudyResult = ProtocolResult


# --------------------------------------------------------------------------------------------------
# summarising
# --------------------------------------------------------------------------------------------------


def _fold_metric(fn, y, pred, folds, mask, n_folds):
    return [fn(y[(folds == k) & mask], pred[(folds == k) & mask]) for k in range(n_folds)]


def _block(df, y, pred, folds, mask, n_folds) -> dict:
    bsa = pd.to_numeric(df["bsa_m2"], errors="coerce").to_numpy(float)
    lvh = df["lvh"].astype("float").to_numpy() if "lvh" in df.columns else np.full(len(df), np.nan)
    m = mask & np.isfinite(pred)
    return {
        "n": int(m.sum()),
        "mae_g": mean_sd(_fold_metric(mae_g, y, pred, folds, m, n_folds)),
        "mape_pct": mean_sd(_fold_metric(mape_pct, y, pred, folds, m, n_folds)),
        "lvh": lvh_metrics(lvh[m], (pred / bsa)[m], df["sex"].to_numpy(object)[m]),
    }


def summarise(result: StudyResult, n_folds: int) -> dict:
    """Per-model metrics: overall and ``by_sex`` (``M``, ``F``)."""
    df = result.manifest
    y = df["lvm_g"].to_numpy(float)
    sex = df["sex"].to_numpy(object)
    models = {}
    for name, pred in result.predictions.items():
        block = _block(df, y, pred, result.folds, np.ones(len(df), bool), n_folds)
        block["by_sex"] = {s: _block(df, y, pred, result.folds, sex == s, n_folds) for s in ("M", "F")}
        models[name] = block
    return models


def comparison_pairs(result: StudyResult, reference: str = REFERENCE, baseline: str = BASELINE) -> list[tuple]:
    """(a, b, subset) of every comparison: the reference against the baseline; each pooled model,
    then each sex-restricted model (on its sex), then every other model, against the reference and
    the baseline."""
    names = list(result.predictions)
    if reference not in names or baseline not in names:
        return []
    sex_of = result.sexes
    pooled = [n for n in names if n not in result.splits]
    sexed = [n for n in names if sex_of.get(n)]
    others = [n for n in names if n not in pooled and n not in sexed and n not in (reference, baseline)]
    pairs: list[tuple[str, str, str | None]] = [(reference, baseline, None)]
    for p in pooled:
        pairs += [(p, reference, None), (p, baseline, None)]
    pairs += [(n, reference, sex_of[n]) for n in sexed] + [(n, baseline, sex_of[n]) for n in sexed]
    pairs += [(n, reference, None) for n in others] + [(n, baseline, None) for n in others]
    return pairs


def out_of_fold_intervals(result: StudyResult, cutoffs: dict[str, float] | None = None) -> dict[str, dict]:
    """Cross-conformal intervals of every model (normalised score, Mondrian by sex) at each reported
    level, the plain absolute-residual score at the default level for comparison, and the LVH
    probability: per model ``{level: {"low", "high"}, "absolute": {...}, "lvh_probability"}``."""
    df = result.manifest
    cutoffs = cutoffs or {"M": 72.0, "F": 55.0}
    y = df["lvm_g"].to_numpy(float)
    sex = df["sex"].to_numpy(object)
    bsa = pd.to_numeric(df["bsa_m2"], errors="coerce").to_numpy(float)
    out = {}
    for name, pred in result.predictions.items():
        if not np.isfinite(pred).any() or np.nanmin(pred) <= 0:
            continue  # a model with non-positive masses cannot use the normalised score
        per = {}
        for level in conformal.REPORTED_LEVELS:
            per[level] = conformal.cross_conformal(y, pred, sex, result.folds, level, "normalised", bsa, cutoffs)
        per["absolute"] = conformal.cross_conformal(y, pred, sex, result.folds, conformal.DEFAULT_LEVEL, "absolute")
        per["lvh_probability"] = per[conformal.DEFAULT_LEVEL]["lvh_probability"]
        out[name] = per
    return out


def interval_summary(result: StudyResult, intervals: dict[str, dict]) -> dict[str, dict]:
    """Coverage (overall, by sex, by LVM tertile) and mean width of every model's intervals, the
    absolute-score comparison, and the LVH probability's calibration (Brier score, ECE, reliability bins)."""
    df = result.manifest
    y = df["lvm_g"].to_numpy(float)
    sex = df["sex"].to_numpy(object)
    tertiles, cuts = conformal.lvm_tertiles(y)
    lvh = df["lvh"].astype("float").to_numpy() if "lvh" in df.columns else np.full(len(df), np.nan)
    out = {}
    for name, per in intervals.items():
        block = {"score": "normalised", "method": "cross-conformal (out-of-fold scores of the other folds), Mondrian by sex",
                 "tertile_cutoffs_g": list(cuts), "levels": {}}
        for level in conformal.REPORTED_LEVELS:
            block["levels"][str(level)] = conformal.coverage_summary(y, per[level]["low"], per[level]["high"], sex, tertiles)
        block["absolute_score"] = conformal.coverage_summary(y, per["absolute"]["low"], per["absolute"]["high"], sex,
                                                              tertiles)
        block["lvh_probability"] = conformal.probability_calibration(lvh, per["lvh_probability"])
        out[name] = block
    return out


def compare(result: StudyResult, models: dict, n_folds: int) -> list[dict]:
    """Paired fold-level tests on MAE / MAPE and DeLong's test on c-statistics."""
    df = result.manifest
    sex = df["sex"].to_numpy(object)
    bsa = pd.to_numeric(df["bsa_m2"], errors="coerce").to_numpy(float)
    lvh = df["lvh"].astype("float").to_numpy()
    pairs = comparison_pairs(result)
    out = []
    for a, b, s in pairs:
        ma = models[a] if s is None else models[a]["by_sex"][s]
        mb = models[b] if s is None else models[b]["by_sex"][s]
        subset = "all" if s is None else s
        for metric in ("mae_g", "mape_pct"):
            t = paired_fold_test(ma[metric]["folds"], mb[metric]["folds"])
            out.append({"a": a, "b": b, "metric": metric, "subset": subset, "test": "paired t-test across folds",
                        "a_value": ma[metric]["mean"], "b_value": mb[metric]["mean"], "p_value": t["p_value"]})
        mask = np.ones(len(df), bool) if s is None else sex == s
        pa, pb = result.predictions[a], result.predictions[b]
        ok = mask & np.isfinite(pa) & np.isfinite(pb)
        d = delong_test(lvh[ok], lvh_score((pa / bsa)[ok], sex[ok]), lvh_score((pb / bsa)[ok], sex[ok]))
        out.append({"a": a, "b": b, "metric": "c_statistic", "subset": subset, "test": "DeLong",
                    "a_value": d["auc_a"], "b_value": d["auc_b"], "p_value": d["p_value"]})
    return out


def predictions_frame(result: StudyResult, intervals: dict[str, dict] | None = None) -> pd.DataFrame:
    """One row per case: identifiers, truth, fold and every model's out-of-fold LVM, LVMI and LVH call
    (and, with ``intervals``, its 90 % interval ``_lvm_g_low``/``_lvm_g_high`` and ``_lvh_probability``)."""
    df = result.manifest
    keep = [c for c in ("patient_id", "ecg_path", "sex", "age_years", "height_cm", "weight_kg", "bsa_m2", "lvm_g",
                        "lvmi_g_m2", "lvh") if c in df.columns]
    out = df[keep].copy()
    out.insert(0, "fold", result.folds)
    bsa = pd.to_numeric(df["bsa_m2"], errors="coerce").to_numpy(float)
    for name, pred in result.predictions.items():
        out[f"{name}_lvm_g"] = np.round(pred, 2)
        out[f"{name}_lvmi_g_m2"] = np.round(pred / bsa, 2)
        score = lvh_score(pred / bsa, df["sex"].to_numpy(object))
        out[f"{name}_lvh"] = pd.array([None if not np.isfinite(v) else bool(v > 1.0) for v in score], dtype="boolean")
        if intervals and name in intervals:
            iv = intervals[name][conformal.DEFAULT_LEVEL]
            out[f"{name}_lvm_g_low"] = np.round(iv["low"], 2)
            out[f"{name}_lvm_g_high"] = np.round(iv["high"], 2)
            out[f"{name}_lvh_probability"] = np.round(intervals[name]["lvh_probability"], 4)
    return out


# --------------------------------------------------------------------------------------------------
# the whole study
# --------------------------------------------------------------------------------------------------


def load_study_manifest(manifest) -> tuple[pd.DataFrame, int]:
    """A manifest path or DataFrame -> (valid rows with derived columns, number of rows dropped)."""
    from elvmass.cohort import add_derived_columns, load_manifest, read_manifest, validate_manifest

    if isinstance(manifest, (str, Path)):
        n_all = len(read_manifest(manifest))
        df = load_manifest(manifest, on_problem="drop", fill_from_ecg=True)
        return df.reset_index(drop=True), n_all - len(df)
    checked = validate_manifest(manifest, check_files=False)
    df = add_derived_columns(checked.valid)
    return df.reset_index(drop=True), len(manifest) - len(df)


def run_study(
    manifest,
    out_dir,
    preset: str | StudyPreset = "paper",
    *,
    sex_specific: bool = False,
    models: Sequence[str] = (),
    cache_dir=None,
    progress: bool = True,
    log=None,
    runner=None,
    device: str = "cpu",
    saliency: bool = False,
) -> dict:
    """Run the whole protocol on a manifest (path or DataFrame) and write the results folder.

    ``saliency``: also explain every network fold model on its own test cases and write
    ``table_3.{csv,md}``, ``figure_4.png`` and ``saliency_cases.csv`` (:mod:`elvmass.explain`; needs the serial runner).

    ``models``: extra registered models to run beside eLVMass-Net and the demographics baseline
    (e.g. ``["lvm_ai", "ecg_ai"]``); ``runner`` executes the (model, fold) tasks (serial by default,
    see :mod:`elvmass.experiments.protocol`).

    Returns the ``results.json`` content. ``cache_dir`` (default :func:`default_cache_dir`) keeps the
    preprocessed ECG views so a second study on the same files skips the signal work.
    """
    t0 = time.perf_counter()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    if isinstance(preset, str):
        preset = make_preset(preset)
    preset = preset.with_progress(progress)
    df, n_invalid = load_study_manifest(manifest)
    if log is not None:
        log(f"manifest: {len(df)} valid rows ({n_invalid} dropped by validation)")
    entries, pools = preset.entries(sex_specific=sex_specific, models=models)
    features = study_data(df, [e.spec for e in entries],
                          cache_dir if cache_dir is not None else default_cache_dir(manifest, out_dir))
    if log is not None:
        log(f"ECG views: {len(features.manifest)} usable, {len(features.dropped)} dropped")
    fold_models = None
    if saliency:  # the fold models reach the saliency through the serial runner's on_fitted hook
        import functools

        from elvmass.experiments.protocol import serial_runner
        from elvmass.explain import FoldModels

        if runner is not None:
            raise ValueError("saliency needs the serial runner (the fold models stay in this process)")
        fold_models = FoldModels()
        runner = functools.partial(serial_runner, on_fitted=fold_models.on_fitted)
    result = run_protocol(features, entries, n_folds=preset.n_folds, val_fraction=preset.val_fraction, pools=pools,
                          runner=runner, device=device, progress=preset.train.progress, log=log)
    saliency_s, saliency_report = None, None
    if fold_models is not None:
        from elvmass.explain import figure_4, fold_saliency, saliency_table, table_3_display, write_table_3

        t_sal = time.perf_counter()
        cases = fold_saliency(features, fold_models)
        atomic_write_text(out_dir / "saliency_cases.csv", cases.round(3).to_csv(index=False))
        table = saliency_table(cases, seed=preset.seed)
        write_table_3(table, out_dir)
        png = figure_4(features, fold_models, cases, out_dir / "figure_4.png") if len(cases) else None
        saliency_s = round(time.perf_counter() - t_sal, 1)
        display, notes = table_3_display(table)
        saliency_report = {"table": display, "notes": notes, "figure": png, "method": "gradient",
                           "n_cases": int(len(cases)), "seed": preset.seed}
        if log is not None:
            log(f"saliency: {len(cases)} out-of-fold cases in {saliency_s} s -> table_3.csv, table_3.md"
                + (", figure_4.png" if png is not None else ""))
    models = summarise(result, preset.n_folds)
    comparisons = compare(result, models, preset.n_folds)
    intervals = out_of_fold_intervals(result)
    for name, block in interval_summary(result, intervals).items():
        models[name]["intervals"] = block
    from elvmass import __version__

    results = {
        "n": int(len(features.manifest)),
        "n_dropped": {"manifest_validation": int(n_invalid), "ecg": len(features.dropped)},
        "dropped_ecgs": features.dropped[:100],
        "config": {"preset": preset.to_dict(), "sex_specific": bool(sex_specific), "elvmass_version": __version__,
                   **({"models": [e.spec.to_dict() | {"sex": e.sex, "name": e.name} for e in entries[1:-1]
                                  if e.spec.family != "elvmassnet"]} if models else {})},
        "cohort": cohort_summary(features.manifest),
        "models": models,
        "comparisons": comparisons,
        "elapsed_s": round(time.perf_counter() - t0, 1),  # the whole protocol; the report below states it too
        **({"saliency_s": saliency_s} if saliency_s is not None else {}),
    }
    write_outputs(out_dir, results, result, intervals, saliency=saliency_report)
    atomic_write_text(out_dir / "results.json", json.dumps(to_jsonable(results), indent=2))
    return to_jsonable(results)


def default_cache_dir(manifest, out_dir) -> Path:
    """Where preprocessed ECG views are kept unless the user says: beside the manifest, so that
    ``study`` and ``train`` on one cohort share it (entries are keyed by file content and signal
    config, so sharing is safe) and a model bundle folder holds only the model; ``OUT_DIR/.cache``
    when the manifest is a DataFrame."""
    if isinstance(manifest, (str, Path)):
        return Path(manifest).resolve().parent / ".elvmass-cache"
    return Path(out_dir) / ".cache"


def study_data(df: pd.DataFrame, specs, cache_dir) -> CohortData:
    """The cohort's model inputs for every signal view the specs need (the first spec's view is the
    reference whose quality flags and measured parameters the rows carry)."""
    from elvmass.signal.config import SignalConfig

    signals = [sig for spec in specs for sig in spec.signals] or [SignalConfig()]
    return cohort_data(df, signals, cache_dir=cache_dir)


def cohort_summary(df: pd.DataFrame) -> dict:
    """Counts and mean (SD) of the main variables, overall and by sex (the paper's Table 1)."""
    def stats(d):
        res = {"n": int(len(d))}
        for c in ("age_years", "height_cm", "weight_kg", "bsa_m2", "lvm_g", "lvmi_g_m2"):
            if c in d.columns:
                v = pd.to_numeric(d[c], errors="coerce")
                res[c] = {"mean": float(v.mean()), "sd": float(v.std())}
        if "lvh" in d.columns:
            res["lvh_pct"] = float(d["lvh"].astype(float).mean() * 100)
        return res

    out = stats(df)
    out["by_sex"] = {s: stats(df[df["sex"] == s]) for s in ("M", "F")}
    return out


def write_outputs(out_dir: Path, results: dict, result: StudyResult, intervals: dict | None = None, *,
                  saliency: dict | None = None) -> None:
    """predictions.csv, tables (CSV + Markdown), config.json, learning curves and report.html (with
    Table 3 and Figure 4 when ``saliency`` holds them, see :func:`elvmass.report.html.render_report`)."""
    from elvmass.report.html import write_report
    from elvmass.report.tables import write_tables

    pred = predictions_frame(result, intervals)
    atomic_write(out_dir / "predictions.csv", lambda tmp: pred.to_csv(tmp, index=False))
    atomic_write_text(out_dir / "config.json", json.dumps(to_jsonable(results["config"]), indent=2))
    atomic_write_text(out_dir / "learning_curves.json", json.dumps(to_jsonable(result.histories)))
    write_tables(results, out_dir)
    write_report(results, pred, result.histories, out_dir / "report.html", saliency=saliency)
