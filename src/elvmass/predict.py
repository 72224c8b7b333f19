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
a bundle carrying a local recalibration        the model's output mapped by its line, flag
(``elvmass recalibrate``)                      ``recalibrated``
=============================================  ==================================================

Every prediction carries ``flags``: signal quality flags from the analysis plus
``imputed:<input>`` for every imputed input, ``sex_unknown``, ``no_bsa`` (no height or
weight in the file or flags: no LVMI and no LVH call) and ``outside_training_population:<rule>``
for an ECG that cohort building excludes (paced, bundle branch block, AF, QRS >= 120 ms); the
statement or measurement that triggered the rule is in ``outside_training_population``.
:func:`predict_files` returns every failing file as an error and predicts the others.

On the bundled PTB-XL record 136 (52-year-old man, 167 cm, 72 kg, no device measurements: the pipeline's
own QRS duration and axes stand in, flagged ``measured:``) with a bundle of one untrained network (as in
:mod:`elvmass.bundle`; its mass is a number, not an estimate). LVMI is the mass over the Mosteller BSA,
sqrt(167 x 72 / 3600) = 1.8276 m^2:

    >>> import tempfile
    >>> from pathlib import Path
    >>> from elvmass.bundle import example_bundle, load_bundle
    >>> model_dir = example_bundle(Path(tempfile.mkdtemp()) / "model")
    >>> from elvmass.io import example_ecg_path
    >>> preds, errors = predict_files(load_bundle(model_dir), [example_ecg_path()])
    >>> p = preds[0]
    >>> errors, p.model, p.sex, p.age_years
    ([], 'elvmassnet', 'M', 52.0)
    >>> p.flags
    ['measured:qrs_ms', 'measured:p_axis_deg', 'measured:r_axis_deg', 'measured:t_axis_deg', 'no_interval']
    >>> round(p.lvm_g / p.lvmi_g_m2, 4), p.lvh == (p.lvmi_g_m2 > 72.0)
    (1.8276, True)
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from elvmass.cohort import SCHEMA_BY_NAME, bsa_m2, check_demographics, classify_exclusion, demographic_problem
from elvmass.errors import ECGReadError, ElvmassError, InputValueError, UnusableECGError, path_text
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
    lvm_g_low: float | None = None
    lvm_g_high: float | None = None
    level: float | None = None
    lvh_probability: float | None = None
    outside_training_population: str | None = None

    def to_dict(self) -> dict:
        """The ``--json`` line: path, lvm_g with its conformal interval (``lvm_g_low``, ``lvm_g_high``,
        ``level``; null when the bundle has no calibration), lvmi_g_m2, lvh, lvh_probability, model, flags
        (plus the inputs used)."""
        return {
            "path": self.path,
            "lvm_g": round(self.lvm_g, 1),
            "lvm_g_low": None if self.lvm_g_low is None else round(self.lvm_g_low, 1),
            "lvm_g_high": None if self.lvm_g_high is None else round(self.lvm_g_high, 1),
            "level": self.level,
            "lvh_probability": None if self.lvh_probability is None else round(self.lvh_probability, 3),
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


@dataclass
class _Prepared:
    """One ECG up to the model call: the network inputs (``ecg``, ``demographics``, ``params``, one row
    each) when the model is a network, else ``lvm_g`` already predicted; everything :func:`_finish` needs."""

    path: str
    name: str
    flags: list[str]
    age: float | None
    sex: str | None
    height_cm: float | None
    weight_kg: float | None
    excluded: tuple | None
    ecg: np.ndarray | None = None
    demographics: np.ndarray | None = None
    params: np.ndarray | None = None
    lvm_g: float | None = None


def _view_for(bundle, fitted, record, analysis) -> np.ndarray:
    """(1, 12, L) float32 model view of ``record`` for the fitted model's signal configuration."""
    sig = getattr(getattr(fitted, "spec", None), "signal", None) or bundle.signal_config
    if sig != bundle.signal_config:  # a model trained on another signal configuration (frozen dataclasses)
        from elvmass.signal.analysis import analyze_ecg

        analysis = analyze_ecg(record, sig)
    return np.asarray(analysis.view, np.float32)[None]


def _prepare(bundle, record, *, path: str | None, given: dict, force_sex: bool) -> _Prepared:
    """Everything of :func:`predict_record` before the model call (``given``: checked demographics)."""
    from elvmass.features import scalar_values
    from elvmass.signal.analysis import analyze_ecg
    from elvmass.signal.quality import is_blocking

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
    name = bundle.model_for_sex(sx)
    if sx is None:
        flags.append("sex_unknown")
    # an ECG the cohort builder would have excluded (paced, BBB, AF, wide QRS) lies outside what
    # the model was trained on: still predicted, but said so, with the statement that matched
    excluded = classify_exclusion(record.statements, record.measurements.qrs_ms, sx or "M")
    if excluded is not None:
        flags.append(f"outside_training_population:{excluded[0]}")
    fitted = bundle.fitted[name]
    prep = _Prepared(path, name, flags, age, sx, h, w, excluded)
    if hasattr(fitted, "inputs") and hasattr(fitted, "scaler"):
        # a network model: its scaler in NumPy (FeatureScaler.transform_values, the numbers of
        # fitted.inputs) and the view; the model call is the caller's, so it can batch many ECGs
        demo, par, imputed = fitted.scaler.transform_values(
            [scalar_values(age_years=age, sex=sx, height_cm=h, weight_kg=w, params=params)])
        flags += [f"imputed:{k}" for k in imputed[0]]
        prep.ecg, prep.demographics, prep.params = _view_for(bundle, fitted, record, analysis), demo, par
        return prep
    row = pd.DataFrame([{"age_years": age, "sex": sx, "height_cm": h, "weight_kg": w, **params}])
    data = record_data([record], row, analyses={bundle.signal_config: [analysis]})
    if hasattr(fitted, "imputed"):
        flags += [f"imputed:{k}" for k in fitted.imputed(data, [0])[0]]
    prep.lvm_g = float(fitted.predict(data, np.array([0]))[0])
    return prep


def _finish(bundle, prep: _Prepared, lvm: float) -> Prediction:
    """The prediction from the model's mass: LVMI, the LVH call, the interval and the remaining flags."""
    flags, h, w, sx, name, excluded = prep.flags, prep.height_cm, prep.weight_kg, prep.sex, prep.name, prep.excluded
    raw_lvm = lvm
    recal = bundle.recalibration(name) if hasattr(bundle, "recalibration") else None
    if recal is not None:  # the bundle's local linear recalibration (elvmass recalibrate), hash-checked at load
        lvm = float(recal.apply([lvm], [sx])[0])
        flags.append("recalibrated")
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
    if recal is None:
        low, high, level, prob = _interval(bundle, name, lvm, sx, bsa, flags)
    else:  # the training site's conformal interval, mapped through the same line (see docs/external-validation.md)
        low, high, level, prob = _interval(bundle, name, raw_lvm, sx, bsa, flags)
        if low is not None:
            low, high = sorted(float(v) for v in recal.apply([low, high], [sx, sx]))
            _, _, _, prob = _interval(bundle, name, lvm, sx, bsa, []) if lvm > 0 else (None, None, None, None)
    return Prediction(prep.path, lvm, lvmi, lvh, name, flags, prep.age, sx, h, w, bsa, low, high, level, prob,
                      None if excluded is None else f"{excluded[0]}: {excluded[1]}")


def predict_record(bundle, record, *, path: str | None = None, age_years=None, sex=None,
                   height_cm=None, weight_kg=None, force_sex: bool = False, fs_hz=None) -> Prediction:
    """Predict one ECG: an :class:`~elvmass.record.ECGRecord` or a file path (read with ``fs_hz``
    for arrays). Explicit demographics override the file's (checked and flagged, see the module
    table); raises :class:`~elvmass.errors.InputValueError` for implausible or contradicting
    values and :class:`~elvmass.errors.UnusableECGError` for an ECG that cannot carry a prediction.
    """
    given = check_demographics(age_years=age_years, sex=sex, height_cm=height_cm, weight_kg=weight_kg)
    record = _as_record(record, fs_hz)
    prep = _prepare(bundle, record, path=path, given=given, force_sex=force_sex)
    if prep.lvm_g is not None:
        return _finish(bundle, prep, prep.lvm_g)
    # a network model: through bundle.run, so a batching bundle (the service) can gather calls
    out = bundle.run(prep.name, prep.ecg, prep.demographics, prep.params)
    return _finish(bundle, prep, float(bundle.fitted[prep.name].scaler.to_grams(out)[0]))


def _interval(bundle, name: str, lvm: float, sex, bsa, flags: list[str]):
    """(low, high, level, LVH probability) from the bundle's conformal calibration of the model; all
    None, with the flag ``no_interval``, when the bundle has none (an interval is never made up)."""
    from elvmass.evaluate.conformal import lvh_probability

    cal = bundle.calibration(name)
    if cal is None or not lvm > 0:
        flags.append("no_interval")
        return None, None, None, None
    level = bundle.interval_level
    lo, hi = cal.interval([lvm], [sex], level)
    prob = None
    if bsa and sex in ("M", "F"):
        prob = float(lvh_probability(cal, [lvm], [sex], [bsa], bundle.lvh_cutoffs)[0])
    return float(lo[0]), float(hi[0]), level, prob


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
            preds.append(predict_record(bundle, rec, path=path_text(p), age_years=age_years, sex=sex,
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
    return pd.DataFrame(rows, columns=["path", "lvm_g", "lvm_g_low", "lvm_g_high", "level", "lvmi_g_m2", "lvh",
                                       "lvh_probability", "model", "flags", "age_years", "sex", "height_cm", "weight_kg",
                                       "outside_training_population"])


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



# --- batched prediction: one model call per batch and model, for the service and archive scoring ---------
# Both go through _prepare and _finish, so every check and field of predict_record flows into them. The
# service runs predict_record in a thread per request against a BatchingBundle, whose run() gathers the
# concurrent calls into one; predict_records (archives) prepares its ECGs in turn, then calls each model once.


class BatchingBundle:
    """A bundle whose :meth:`run` gathers concurrent calls into one model call per model (dynamic batching).

    A batch runs when every registered caller is waiting in ``run``, when ``max_batch`` calls wait, or
    when the oldest has waited ``max_wait_s``; everything else is the wrapped bundle's.
    """

    def __init__(self, bundle, *, max_batch: int = 64, max_wait_s: float = 0.01):
        import threading

        self._bundle = bundle
        self._max_batch = max(1, int(max_batch))
        self._max_wait_s = float(max_wait_s)
        self._cond = threading.Condition()
        self._pending: list[tuple[object, float, tuple]] = []
        self._results: dict[int, object] = {}
        self._inflight = 0
        self._running = False
        self.batches: list[int] = []  # the size of every model call made (for tests and benchmarks)

    def __getattr__(self, name):
        return getattr(self._bundle, name)

    def enter(self, n: int = 1) -> None:
        """Register ``n`` callers that will call :meth:`run` (or :meth:`leave` without calling it)."""
        with self._cond:
            self._inflight += n

    def leave(self) -> None:
        with self._cond:
            self._inflight -= 1
            self._cond.notify_all()

    def _ready(self, now: float) -> bool:
        if not self._pending or self._running:
            return False
        return (len(self._pending) >= self._inflight or len(self._pending) >= self._max_batch
                or now - self._pending[0][1] >= self._max_wait_s)

    def _run_batch(self, batch) -> dict[int, object]:
        groups: dict[tuple, list] = {}
        for key, _, (name, ecg, demo, par) in batch:
            groups.setdefault((name, np.shape(ecg)[1:], np.shape(demo)[1:], np.shape(par)[1:]), []).append(
                (key, ecg, demo, par))
        out: dict[int, object] = {}
        for (name, *_), items in groups.items():
            try:
                res = self._bundle.run(name, np.concatenate([np.asarray(i[1], np.float32) for i in items]),
                                       np.concatenate([np.asarray(i[2], np.float32) for i in items]),
                                       np.concatenate([np.asarray(i[3], np.float32) for i in items]))
                self.batches.append(sum(len(i[1]) for i in items))
                start = 0
                for key, ecg, _, _ in items:
                    out[key] = np.asarray(res[start:start + len(ecg)])
                    start += len(ecg)
            except Exception as exc:  # noqa: BLE001 - handed to each caller of the batch
                for key, *_ in items:
                    out[key] = exc
        return out

    def run(self, name: str, ecg, demographics, params):
        import time

        key = object()
        kid = id(key)
        with self._cond:
            self._pending.append((kid, time.monotonic(), (name, ecg, demographics, params)))
            while kid not in self._results:
                now = time.monotonic()
                if self._ready(now):
                    batch, self._pending = self._pending[:self._max_batch], self._pending[self._max_batch:]
                    self._running = True
                    self._cond.release()
                    try:
                        done = self._run_batch(batch)
                    finally:
                        self._cond.acquire()
                        self._running = False
                    self._results.update(done)
                    self._cond.notify_all()
                    continue
                wait = None
                if self._pending and not self._running and self._max_wait_s != float("inf"):
                    wait = max(0.0, self._pending[0][1] + self._max_wait_s - now)
                self._cond.wait(wait if wait is not None else 0.5)
            res = self._results.pop(kid)
        if isinstance(res, Exception):
            raise res
        return res


def predict_records(bundle, jobs, *, max_batch: int = 64) -> list:
    """Predict many records, batching the model calls: a Prediction or an ECGReadError per job, in order.

    Each job is a dict with ``record`` (an ECGRecord, or a path to read; ``data``: its bytes, when read
    already, see :func:`elvmass.io.read_ecg`) and optionally ``path`` and the demographics keywords of
    :func:`predict_record`. Every ECG is read and analysed in turn, then each
    network model runs once per ``max_batch`` of its ECGs (``None``: once for all of them). Gives the
    predictions of :func:`predict_record` one by one, to float32 rounding of a batched network call
    (``tests/test_predict_batched.py``).
    """
    from elvmass import read_ecg

    jobs = list(jobs)
    results: list = [None] * len(jobs)
    prepared: dict[int, _Prepared] = {}
    for i, job in enumerate(jobs):
        job = dict(job)
        rec = job.pop("record")
        path = job.pop("path", None)
        force_sex = bool(job.pop("force_sex", False))
        fs_hz = job.pop("fs_hz", None)
        data = job.pop("data", None)
        try:
            given = check_demographics(**job)
            if not isinstance(rec, ECGRecord):
                path = path or str(rec)
                rec = read_ecg(rec, fs_hz=fs_hz, data=data)
            prep = _prepare(bundle, rec, path=path, given=given, force_sex=force_sex)
            if prep.lvm_g is not None:
                results[i] = _finish(bundle, prep, prep.lvm_g)
            else:
                prepared[i] = prep
        except ECGReadError as exc:
            results[i] = exc
        except (ElvmassError, ValueError) as exc:
            results[i] = ECGReadError(path or getattr(rec, "source_path", None) or "<record>", str(exc))
    groups: dict[tuple, list[int]] = {}
    for i, prep in prepared.items():
        key = (prep.name, prep.ecg.shape[1:], prep.demographics.shape[1:], prep.params.shape[1:])
        groups.setdefault(key, []).append(i)
    step = len(jobs) if max_batch is None else max(1, int(max_batch))
    for (name, *_), idx in groups.items():
        scaler = bundle.fitted[name].scaler
        for start in range(0, len(idx), step):
            part = idx[start:start + step]
            try:
                out = bundle.run(name, np.concatenate([prepared[i].ecg for i in part]),
                                 np.concatenate([prepared[i].demographics for i in part]),
                                 np.concatenate([prepared[i].params for i in part]))
            except (ElvmassError, ValueError) as exc:  # each ECG of the failed call gets the error
                for i in part:
                    results[i] = ECGReadError(prepared[i].path, str(exc))
                continue
            grams = scaler.to_grams(out)
            for i, g in zip(part, grams):
                results[i] = _finish(bundle, prepared[i], float(g))
    return results
