"""Predict LV mass, LVMI and LVH for new ECG files with a trained bundle.

For each file: read it (:func:`elvmass.read_ecg`), analyse it with the bundle's own signal
configuration (:func:`elvmass.signal.analyze_ecg`), take age / sex / height / weight from the
file unless given explicitly, take QRS duration and axes from the ECG machine's measurements
(else measured from the signal), impute what is missing with the training cohort's medians,
and run the model of the patient's sex (the non-sex-specific model when sex is unknown).

Every prediction carries ``flags``: signal quality flags from the analysis plus
``imputed:<input>`` for every imputed input, ``sex_unknown``, ``no_bsa`` (no height or
weight in the file or flags: no LVMI and no LVH call) and ``outside_training_population:<rule>``
for an ECG that cohort building excludes (paced, bundle branch block, AF, QRS >= 120 ms). A file that cannot be read is returned
as an :class:`~elvmass.errors.ECGReadError` and the others are still predicted.

    >>> from elvmass.bundle import load_bundle            # doctest: +SKIP
    >>> preds, errors = predict_files(load_bundle("model"), ["muse_ecg1.xml"])  # doctest: +SKIP
    >>> preds[0].lvm_g                                       # doctest: +SKIP
    142.3
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from elvmass.cohort import bsa_m2, classify_exclusion
from elvmass.errors import ECGReadError, ElvmassError
from elvmass.features import PARAM_INPUTS, plausible_param, record_data
from elvmass.record import ECGRecord


@dataclass
class Prediction:
    """One file's result. ``lvmi_g_m2`` and ``lvh`` are None when height or weight is unknown."""

    path: str
    lvm_g: float
    lvmi_g_m2: float | None
    lvh: bool | None
    model: str
    flags: list[str] = field(default_factory=list)
    age_years: float | None = None
    sex: str | None = None
    height_cm: float | None = None
    weight_kg: float | None = None
    bsa_m2: float | None = None

    def to_dict(self) -> dict:
        """The ``--json`` line: path, lvm_g, lvmi_g_m2, lvh, model, flags (plus the inputs used)."""
        return {
            "path": self.path,
            "lvm_g": round(self.lvm_g, 1),
            "lvmi_g_m2": None if self.lvmi_g_m2 is None else round(self.lvmi_g_m2, 1),
            "lvh": self.lvh,
            "model": self.model,
            "flags": list(self.flags),
            "age_years": self.age_years,
            "sex": self.sex,
            "height_cm": self.height_cm,
            "weight_kg": self.weight_kg,
        }


def _num(v) -> float | None:
    try:
        x = float(v)
    except (TypeError, ValueError):
        return None
    return x if math.isfinite(x) else None


def predict_record(bundle, record: ECGRecord, *, path: str | None = None, age_years=None, sex=None,
                   height_cm=None, weight_kg=None) -> Prediction:
    """Predict one ECG record. Explicit demographics override the file's."""
    from elvmass.signal.analysis import analyze_ecg

    path = path or record.source_path or "<record>"
    p = record.patient
    age = _num(age_years) if age_years is not None else _num(p.age_years)
    sx = sex if sex is not None else p.sex
    if sx is not None and sx not in ("M", "F"):
        raise ValueError(f"sex must be 'M' or 'F', got {sx!r}")
    h = _num(height_cm) if height_cm is not None else _num(p.height_cm)
    w = _num(weight_kg) if weight_kg is not None else _num(p.weight_kg)
    analysis = analyze_ecg(record, bundle.signal_config)
    flags = list(analysis.flags)
    view = np.asarray(analysis.view, np.float32)
    if view.shape[0] != 12 or not np.isfinite(view).all():
        raise ECGReadError(path, "no usable beat for the model (" + (", ".join(flags) or "view not finite") + ")")
    dev = record.measurements.as_dict()
    params = {}
    for k in PARAM_INPUTS:
        v = dev.get(k)
        if not plausible_param(k, v):
            v = analysis.measured.get(k)
            if plausible_param(k, v):
                flags.append(f"measured:{k}")
            else:
                v = None
        params[k] = v
    row = pd.DataFrame([{"age_years": age, "sex": sx, "height_cm": h, "weight_kg": w, **params}])
    name = bundle.model_for_sex(sx)
    if sx is None:
        flags.append("sex_unknown")
    # an ECG the cohort builder would have excluded (paced, BBB, AF, wide QRS) lies outside what
    # the model was trained on: still predicted, but said so
    excluded = classify_exclusion(record.statements, record.measurements.qrs_ms, sx or "M")
    if excluded is not None:
        flags.append(f"outside_training_population:{excluded[0]}")
    fitted = bundle.fitted[name]
    data = record_data([record], row, analyses={bundle.signal_config: [analysis]})
    if hasattr(fitted, "imputed"):
        flags += [f"imputed:{k}" for k in fitted.imputed(data, [0])[0]]
    lvm = float(fitted.predict(data, np.array([0]))[0])
    bsa = float(bsa_m2(h, w)) if (h and w and h > 0 and w > 0) else None
    lvmi = lvm / bsa if bsa else None
    lvh = None
    if lvmi is not None and sx in ("M", "F"):
        lvh = bool(lvmi > bundle.lvh_cutoffs[sx])
    if bsa is None:
        flags.append("no_bsa")
    return Prediction(path, lvm, lvmi, lvh, name, flags, age, sx, h, w, bsa)


def predict_files(bundle, paths, *, age_years=None, sex=None, height_cm=None, weight_kg=None,
                  progress=None) -> tuple[list[Prediction], list[ECGReadError]]:
    """Predict every file; unreadable or unusable files come back as errors, the rest are predicted.

    ``progress(i, n)`` is called after each file.
    """
    from elvmass import read_ecg

    paths = [Path(p) for p in paths]
    preds: list[Prediction] = []
    errors: list[ECGReadError] = []
    for i, p in enumerate(paths):
        try:
            rec = read_ecg(p)
            preds.append(predict_record(bundle, rec, path=str(p), age_years=age_years, sex=sex,
                                        height_cm=height_cm, weight_kg=weight_kg))
        except ECGReadError as exc:
            errors.append(exc)
        except (ElvmassError, ValueError) as exc:
            errors.append(ECGReadError(p, str(exc)))
        if progress is not None:
            progress(i + 1, len(paths))
    return preds, errors


def predictions_to_frame(preds: list[Prediction]) -> pd.DataFrame:
    rows = []
    for p in preds:
        d = p.to_dict()
        d["flags"] = ";".join(d["flags"])
        rows.append(d)
    return pd.DataFrame(rows, columns=["path", "lvm_g", "lvmi_g_m2", "lvh", "model", "flags", "age_years", "sex",
                                       "height_cm", "weight_kg"])
