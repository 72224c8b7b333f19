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
from elvmass.errors import ECGReadError, ElvmassError, path_text
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
    if hasattr(fitted, "inputs") and hasattr(fitted, "scaler"):
        # a network model: through bundle.run, so a batching bundle (the service, archives) can gather calls
        t = fitted.inputs(data, [0])
        lvm = float(fitted.scaler.to_grams(bundle.run(name, t.ecg, t.demographics, t.params))[0])
    else:
        lvm = float(fitted.predict(data, np.array([0]))[0])
    bsa = float(bsa_m2(h, w)) if (h and w and h > 0 and w > 0) else None
    lvmi = lvm / bsa if bsa else None
    lvh = None
    if lvmi is not None and sx in ("M", "F"):
        lvh = bool(lvmi > bundle.lvh_cutoffs[sx])
    if bsa is None:
        flags.append("no_bsa")
    low, high, level, prob = _interval(bundle, name, lvm, sx, bsa, flags)
    return Prediction(path, lvm, lvmi, lvh, name, flags, age, sx, h, w, bsa, low, high, level, prob)


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
            preds.append(predict_record(bundle, rec, path=path_text(p), age_years=age_years, sex=sex,
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
    return pd.DataFrame(rows, columns=["path", "lvm_g", "lvm_g_low", "lvm_g_high", "level", "lvmi_g_m2", "lvh",
                                       "lvh_probability", "model", "flags", "age_years", "sex", "height_cm", "weight_kg"])



# --- batched prediction: one model call per batch and model, for the service and archive scoring ---------
# predict_record is left as it is (every check and field added to it flows into the batched results): it
# runs in a thread per record against a BatchingBundle, whose run() gathers the concurrent calls into one.


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

    Each job is a dict with ``record`` (an ECGRecord, or a path to read) and optionally ``path`` and the
    demographics keywords of :func:`predict_record`. Gives the same predictions as :func:`predict_record`
    one by one (to float rounding of a batched network call).
    """
    from concurrent.futures import ThreadPoolExecutor

    from elvmass import read_ecg

    jobs = list(jobs)
    results: list = [None] * len(jobs)
    if not jobs:
        return results

    def one(batched, i):
        job = dict(jobs[i])
        rec = job.pop("record")
        path = job.pop("path", None)
        try:
            if not isinstance(rec, ECGRecord):
                path = path or str(rec)
                rec = read_ecg(rec)
            results[i] = predict_record(batched, rec, path=path, **job)
        except ECGReadError as exc:
            results[i] = exc
        except (ElvmassError, ValueError) as exc:
            results[i] = ECGReadError(path or rec.source_path or "<record>", str(exc))
        finally:
            batched.leave()

    step = max(1, int(max_batch))
    with ThreadPoolExecutor(max_workers=min(step, len(jobs))) as pool:
        for start in range(0, len(jobs), step):
            idx = range(start, min(start + step, len(jobs)))
            batched = BatchingBundle(bundle, max_batch=step, max_wait_s=float("inf"))
            batched.enter(len(idx))
            list(pool.map(lambda i: one(batched, i), idx))
    return results
