"""Predict LV mass, LVMI and LVH for new ECG files with a trained bundle.

For each file: read it (:func:`elvmass.read_ecg`), analyse it with the bundle's own signal
configuration (:func:`elvmass.signal.analyze_ecg`), take age / sex / height / weight from the
file unless given explicitly, take QRS duration and axes from the ECG machine's measurements
(else measured from the signal), impute what is missing with the training cohort's medians,
and run the model of the patient's sex (the non-sex-specific model when sex is unknown).

What is checked, and what happens (one policy for the Python API, the CLI and the service):

=============================================  ==================================================
input                                          result
=============================================  ==================================================
file unreadable                                :class:`~elvmass.errors.ECGReadError`
ECG unusable (``analysis.usable`` is False:    :class:`~elvmass.errors.UnusableECGError` (an
no beat, too few beats, pacing spikes,         ``ECGReadError``): refused, no mass; the CLI skips
excessive noise, flat or saturated lead)       it, names it on stderr and exits 1
demographics given by the caller outside the   :class:`~elvmass.errors.InputValueError` before any
manifest's ranges (age 18–110 y, height        file is read (CLI exit 2); the message names the
120–220 cm, weight 30–250 kg; 1.75 m, 69 in,   range and the likely unit
500 lb)                                        (:func:`elvmass.cohort.check_demographics`)
a file's own age/height/weight out of range    not used: flag ``implausible:<input>``, then imputed
given value differs from the file's            used, flag ``override:<input>``
given sex contradicts the file's sex           ``InputValueError`` for that file unless
                                               ``force_sex=True`` (CLI ``--force-sex``), then
                                               flag ``override:sex``
predicted mass outside 30–600 g                flag ``implausible_output:lvm_g``, no LVH call
=============================================  ==================================================

Every prediction carries ``flags``: signal quality flags from the analysis plus
``imputed:<input>`` for every imputed input, ``sex_unknown``, ``no_bsa`` (no height or
weight in the file or flags: no LVMI and no LVH call) and ``outside_training_population:<rule>``
for an ECG that cohort building excludes (paced, bundle branch block, AF, QRS >= 120 ms); the
statement or measurement that triggered the rule is in ``outside_training_population``.
:func:`predict_files` returns every failing file as an error and predicts the others.

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

from elvmass.cohort import SCHEMA_BY_NAME, bsa_m2, check_demographics, classify_exclusion, demographic_problem
from elvmass.errors import ECGReadError, ElvmassError, InputValueError, UnusableECGError
from elvmass.features import PARAM_INPUTS, plausible_param, scalar_table
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
    outside_training_population: str | None = None

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
            "outside_training_population": self.outside_training_population,
        }


def _num(v) -> float | None:
    try:
        x = float(v)
    except (TypeError, ValueError):
        return None
    return x if math.isfinite(x) else None


def _as_record(record, fs_hz=None) -> ECGRecord:
    if isinstance(record, ECGRecord):
        return record
    if isinstance(record, (str, Path)) or hasattr(record, "__fspath__"):
        from elvmass import read_ecg

        return read_ecg(record, fs_hz=fs_hz)
    raise TypeError(f"expected an ECGRecord or a file path, got {type(record).__name__}")


def predict_record(bundle, record, *, path: str | None = None, age_years=None, sex=None,
                   height_cm=None, weight_kg=None, force_sex: bool = False, fs_hz=None) -> Prediction:
    """Predict one ECG: an :class:`~elvmass.record.ECGRecord` or a file path (read with ``fs_hz``
    for arrays). Explicit demographics override the file's (checked and flagged, see the module
    table); raises :class:`~elvmass.errors.InputValueError` for implausible or contradicting
    values and :class:`~elvmass.errors.UnusableECGError` for an ECG that cannot carry a prediction.
    """
    from elvmass.signal.analysis import analyze_ecg
    from elvmass.signal.quality import is_blocking

    given = check_demographics(age_years=age_years, sex=sex, height_cm=height_cm, weight_kg=weight_kg)
    record = _as_record(record, fs_hz)
    path = path or record.source_path or "<record>"
    p = record.patient
    flags: list[str] = []
    file_values = {"age_years": _num(p.age_years), "height_cm": _num(p.height_cm), "weight_kg": _num(p.weight_kg)}
    for k, v in list(file_values.items()):
        if v is not None and demographic_problem(k, v):
            flags.append(f"implausible:{k}")  # the file's own value is not used; imputed below
            file_values[k] = None
    chosen = {}
    for k in ("age_years", "height_cm", "weight_kg"):
        if given[k] is not None:
            if file_values[k] is not None and abs(file_values[k] - given[k]) > 1e-9:
                flags.append(f"override:{k}")
            chosen[k] = given[k]
        else:
            chosen[k] = file_values[k]
    age, h, w = chosen["age_years"], chosen["height_cm"], chosen["weight_kg"]
    file_sex = p.sex if p.sex in ("M", "F") else None
    sx = given["sex"] if given["sex"] is not None else file_sex
    if given["sex"] is not None and file_sex is not None and given["sex"] != file_sex:
        if not force_sex:
            raise InputValueError(f"{path}: sex {given['sex']} was given but the file says {file_sex} "
                                  f"(--force-sex, in Python force_sex=True, uses {given['sex']} anyway)")
        flags.append("override:sex")
    analysis = analyze_ecg(record, bundle.signal_config)
    flags = list(analysis.flags) + flags
    if not analysis.usable:
        raise UnusableECGError(path, [f for f in analysis.flags if is_blocking(f)])
    view = np.asarray(analysis.view, np.float32)
    if view.shape[0] != 12 or not np.isfinite(view).all():
        raise UnusableECGError(path, analysis.flags or ("view not finite",))
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
    # the model was trained on: still predicted, but said so, with the statement that matched
    excluded = classify_exclusion(record.statements, record.measurements.qrs_ms, sx or "M")
    if excluded is not None:
        flags.append(f"outside_training_population:{excluded[0]}")
    scaler = bundle.scalers[name]
    demo, par, imputed = scaler.transform(scalar_table(row))
    flags += [f"imputed:{k}" for k in imputed[0]]
    out = bundle.run(name, view[None], demo, par)
    lvm = float(scaler.to_grams(out)[0])
    bsa = float(bsa_m2(h, w)) if (h and w and h > 0 and w > 0) else None
    lvmi = lvm / bsa if bsa else None
    lvh = None
    spec = SCHEMA_BY_NAME["lvm_g"]
    plausible_out = math.isfinite(lvm) and spec.lo <= lvm <= spec.hi
    if not plausible_out:
        flags.append("implausible_output:lvm_g")  # never a silent negative or absurd mass
    if lvmi is not None and sx in ("M", "F") and plausible_out:
        lvh = bool(lvmi > bundle.lvh_cutoffs[sx])
    if bsa is None:
        flags.append("no_bsa")
    return Prediction(path, lvm, lvmi, lvh, name, flags, age, sx, h, w, bsa,
                      None if excluded is None else f"{excluded[0]}: {excluded[1]}")


def predict_ecg(model, ecg, **kwargs) -> Prediction:
    """Predict one ECG with a model: ``model`` a bundle or its folder, ``ecg`` a path or record.

    Keyword arguments as for :func:`predict_record` (``age_years``, ``sex``, ``height_cm``,
    ``weight_kg``, ``force_sex``, ``fs_hz``).
    """
    if isinstance(model, (str, Path)) or hasattr(model, "__fspath__"):
        from elvmass.bundle import load_bundle

        model = load_bundle(model)
    return predict_record(model, ecg, **kwargs)


def predict_files(bundle, paths, *, age_years=None, sex=None, height_cm=None, weight_kg=None,
                  force_sex: bool = False, fs_hz=None, progress=None) -> tuple[list[Prediction], list[ECGReadError]]:
    """Predict every file; unreadable or unusable files (and files whose sex contradicts a given
    ``sex``) come back as errors, the rest are predicted.

    Implausible demographics raise :class:`~elvmass.errors.InputValueError` before any file is read.
    ``progress(i, n)`` is called after each file.
    """
    from elvmass import read_ecg

    check_demographics(age_years=age_years, sex=sex, height_cm=height_cm, weight_kg=weight_kg)
    paths = [Path(p) for p in paths]
    preds: list[Prediction] = []
    errors: list[ECGReadError] = []
    for i, p in enumerate(paths):
        try:
            rec = read_ecg(p, fs_hz=fs_hz)
            preds.append(predict_record(bundle, rec, path=str(p), age_years=age_years, sex=sex,
                                        height_cm=height_cm, weight_kg=weight_kg, force_sex=force_sex))
        except ECGReadError as exc:
            errors.append(exc)
        except (ElvmassError, ValueError) as exc:
            msg = str(exc)
            errors.append(ECGReadError(p, msg.removeprefix(f"{p}: ")))
        if progress is not None:
            progress(i + 1, len(paths))
    return preds, errors


#: How :func:`summarize_flags` shortens a flag family in a table (the full list is in ``--json``).
_LISTED_FAMILIES = {"outside_training_population": "outside cohort", "override": "override",
                    "implausible": "implausible", "implausible_output": "implausible output"}


def summarize_flags(flags) -> str:
    """A short summary of a prediction's flags for a table: the ones that change how to read the
    result listed, imputed inputs counted, the rest as "+N more".

    >>> summarize_flags(["noisy_lead:V1", "noisy_lead:V2", "outside_training_population:paced",
    ...                  "imputed:height_cm", "imputed:weight_kg", "no_bsa"])
    'outside cohort: paced; no_bsa; imputed ×2; +2 more'
    >>> summarize_flags([])
    '–'
    """
    listed: dict[str, list[str]] = {}
    counted: dict[str, int] = {}
    plain: list[str] = []
    for f in flags:
        family, _, item = str(f).partition(":")
        if not item:
            plain.append(family)
        elif family in _LISTED_FAMILIES:
            listed.setdefault(family, []).append(item)
        else:
            counted[family] = counted.get(family, 0) + 1
    parts = [f"{_LISTED_FAMILIES[k]}: {', '.join(v)}" for k, v in listed.items()]
    parts += plain
    if counted.get("imputed"):
        parts.append(f"imputed ×{counted.pop('imputed')}")
    if counted:
        parts.append(f"+{sum(counted.values())} more")
    return "; ".join(parts) or "–"


def predictions_to_frame(preds: list[Prediction]) -> pd.DataFrame:
    """One row per prediction, flags joined with ``;`` (what ``predict --out`` writes)."""
    rows = []
    for p in preds:
        d = p.to_dict()
        d["flags"] = ";".join(d["flags"])
        rows.append(d)
    return pd.DataFrame(rows, columns=["path", "lvm_g", "lvmi_g_m2", "lvh", "model", "flags", "age_years", "sex",
                                       "height_cm", "weight_kg", "outside_training_population"])


PREDICTION_TABLE_SUFFIXES = (".csv", ".parquet", ".pq")


def check_predictions_path(path) -> Path:
    """``path`` if its suffix names a table format :func:`write_predictions` writes, else
    :class:`~elvmass.errors.InputValueError`."""
    path = Path(path)
    if path.suffix.lower() not in PREDICTION_TABLE_SUFFIXES:
        raise InputValueError(f"{path}: predictions are written as .csv or .parquet (got {path.suffix or 'no suffix'!r})")
    return path


def write_predictions(preds: list[Prediction], path) -> Path:
    """Write :func:`predictions_to_frame` atomically: Parquet for ``.parquet``/``.pq``, else CSV."""
    from elvmass.atomic import atomic_write

    path = check_predictions_path(path)
    frame = predictions_to_frame(preds)
    if path.suffix.lower() in (".parquet", ".pq"):
        return atomic_write(path, lambda tmp: frame.to_parquet(tmp, index=False))
    return atomic_write(path, lambda tmp: frame.to_csv(tmp, index=False))
