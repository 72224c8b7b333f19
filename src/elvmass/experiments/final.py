"""The final models: fitted on the whole cohort (about 10 % held out for early stopping) and saved as
a model bundle (:mod:`elvmass.bundle`) that ``predict`` and ``serve`` use.

The same model entries as the study (:meth:`elvmass.experiments.study.StudyPreset.entries`): the
eLVMass-Net for both sexes and, with ``sex_specific``, one per sex; extra registered models with
``models=``. Models that cannot be stored without pickling (the demographics comparator) are left out.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path

from elvmass.bundle import BundleError, save_bundle
from elvmass.evaluate.splits import Split, train_val_split
from elvmass.experiments.study import cohort_summary, default_cache_dir, load_study_manifest, make_preset, study_data


def train_bundle(manifest, out_dir, preset="paper", *, sex_specific: bool = True, models: Sequence[str] = (),
                 cache_dir=None, progress: bool = True, log=None, device: str = "cpu") -> Path:
    """Fit the final models on the whole cohort and save them as a bundle in ``out_dir``."""
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
    trained, sexes = {}, {}
    for e in entries:
        tr, va = train_val_split(data.manifest, preset.val_fraction, sex=e.sex)
        if len(tr) < 10 or len(va) < 2:
            if log is not None:
                log(f"{e.name}: skipped, too few cases ({len(tr)} train, {len(va)} validation)")
            continue
        fitted = e.spec.fit(data, Split(-1, tr, va, va[:0]), device=device, progress=progress, label=f"{e.name} final")
        trained[e.name] = fitted
        sexes[e.name] = e.sex
        if log is not None:
            info = getattr(fitted, "info", {}) or {}
            extra = (f", best epoch {info['best_epoch']}, val MAE {info['val_mae_g']:.1f} g ({info.get('elapsed_s', 0):.0f} s)"
                     if "best_epoch" in info else "")
            log(f"{e.name}: {len(tr)} train / {len(va)} validation{extra}")
    return save_bundle(out_dir, signal_config=preset.signal, models=trained, sexes=sexes,
                       cohort=cohort_summary(data.manifest),
                       train_config={"preset": preset.to_dict(), "n_dropped_ecgs": len(data.dropped),
                                     "n_dropped_rows": int(n_invalid), "elapsed_s": round(time.perf_counter() - t0, 1)})
