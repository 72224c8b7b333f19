"""From a cohort manifest (or one ECG) to the arrays eLVMass-Net takes.

* :func:`cohort_data` runs the signal pipeline (:func:`elvmass.signal.preprocess_cohort`,
  cached by file content and config) over every manifest row and returns a :class:`CohortData`:
  the usable rows, their ECG views (N, 12, L) float32 in mV per signal configuration, the per-row
  quality flags, the ECG parameters, and the rows whose ECG could not be used (with the reason).
  Every model family reads its inputs from it (:mod:`elvmass.models.base`).
* :func:`scalar_table` gathers the scalar inputs per row: demographics (age, sex as 1 = male,
  height, weight) and ECG parameters (QRS duration, P / R / T axis) taken from the manifest
  (which holds the ECG machine's measurements), else measured from the signal.
* :class:`FeatureScaler` learns the training fold's medians (imputation), means and SDs
  (standardisation) and the target's mean and SD, and applies them to any fold or new ECG.
  It is fitted on training rows only and serialises to a JSON-able dict for model bundles.

    >>> import numpy as np, pandas as pd
    >>> tab = pd.DataFrame({"age_years": [50., 70., np.nan], "sex_male": [1., 0., 1.], "height_cm": [170., 160., 180.],
    ...                     "weight_kg": [80., 60., 90.], "qrs_ms": [90., 100., 110.], "p_axis_deg": [40., 50., 60.],
    ...                     "r_axis_deg": [10., 20., 30.], "t_axis_deg": [30., 40., 50.]})
    >>> sc = FeatureScaler.fit(tab, np.array([150., 110., 170.]))
    >>> demo, params, imputed = sc.transform(tab)
    >>> demo.shape, params.shape, imputed[2]
    ((3, 4), (3, 4), ('age_years',))
    >>> round(float(sc.to_grams(sc.normalise_target(np.array([123.0]))[0])), 6)
    123.0
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

#: Scalar inputs of eLVMass-Net: demographics, and the ECG machine's parameters.
DEMOGRAPHIC_INPUTS: tuple[str, ...] = ("age_years", "sex_male", "height_cm", "weight_kg")
PARAM_INPUTS: tuple[str, ...] = ("qrs_ms", "p_axis_deg", "r_axis_deg", "t_axis_deg")
SCALAR_COLUMNS: tuple[str, ...] = DEMOGRAPHIC_INPUTS + PARAM_INPUTS


#: plausibility limits of ECG parameters (the manifest schema's); a device's 999 is "not measured"
PARAM_RANGES: dict[str, tuple[float, float]] = {"qrs_ms": (40.0, 300.0), "p_axis_deg": (-180.0, 360.0),
                                                "r_axis_deg": (-180.0, 360.0), "t_axis_deg": (-180.0, 360.0)}


def plausible_param(name: str, value) -> bool:
    """True when ``value`` is a finite number inside :data:`PARAM_RANGES` for ``name``."""
    try:
        v = float(value)
    except (TypeError, ValueError):
        return False
    lo, hi = PARAM_RANGES[name]
    return math.isfinite(v) and lo <= v <= hi


def sex_to_male(sex) -> float:
    """1.0 for 'M', 0.0 for 'F', NaN when unknown."""
    return 1.0 if sex == "M" else 0.0 if sex == "F" else math.nan


def scalar_table(manifest: pd.DataFrame, measured: pd.DataFrame | None = None) -> pd.DataFrame:
    """One row per manifest row with the columns of :data:`SCALAR_COLUMNS` (NaN where unknown).

    ECG parameters come from the manifest (device measurements) where present, otherwise from
    ``measured`` (the same columns measured from the signal, aligned with the manifest rows).
    """
    n = len(manifest)

    def col(df, name):
        if df is not None and name in df.columns:
            return pd.to_numeric(df[name], errors="coerce").to_numpy(float)
        return np.full(n, np.nan)

    out = pd.DataFrame(index=range(n))
    out["age_years"] = col(manifest, "age_years")
    sex = manifest["sex"].to_numpy(object) if "sex" in manifest.columns else np.full(n, None, object)
    out["sex_male"] = [sex_to_male(s) for s in sex]
    out["height_cm"] = col(manifest, "height_cm")
    out["weight_kg"] = col(manifest, "weight_kg")
    for name in PARAM_INPUTS:
        v = col(manifest, name)
        if measured is not None:
            m = col(measured.reset_index(drop=True), name)
            v = np.where(np.isfinite(v), v, m)
        out[name] = v
    return out


def _as_float(value) -> float:
    """``pd.to_numeric(..., errors="coerce")`` for one value: a float, NaN when missing or not a number."""
    if value is None or isinstance(value, (bool, np.bool_)):
        return math.nan if value is None else float(value)
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def scalar_values(*, age_years=None, sex=None, height_cm=None, weight_kg=None, params=None) -> dict[str, float]:
    """One ECG's row of :func:`scalar_table` as a plain dict (NaN where unknown), without pandas.

    >>> scalar_values(age_years=61, sex="F", height_cm=None, weight_kg=70.5, params={"qrs_ms": 92})
    {'age_years': 61.0, 'sex_male': 0.0, 'height_cm': nan, 'weight_kg': 70.5, 'qrs_ms': 92.0, 'p_axis_deg': nan, 'r_axis_deg': nan, 't_axis_deg': nan}
    """
    params = params or {}
    out = {"age_years": _as_float(age_years), "sex_male": sex_to_male(sex), "height_cm": _as_float(height_cm),
           "weight_kg": _as_float(weight_kg)}
    for name in PARAM_INPUTS:
        out[name] = _as_float(params.get(name))
    return out


def scalar_column(table: pd.DataFrame, name: str) -> np.ndarray:
    """One scalar input as floats from a :func:`scalar_table`; ``bmi`` (kg/m²) is derived from height and
    weight when the table has no such column (NaN where either is missing)."""
    if name == "bmi" and "bmi" not in table.columns:
        h = table["height_cm"].to_numpy(float) / 100.0
        return table["weight_kg"].to_numpy(float) / (h * h)
    return table[name].to_numpy(float)


def scalar_matrix(table: pd.DataFrame, names) -> np.ndarray:
    """(N, len(names)) float matrix of the named scalar inputs (see :func:`scalar_column`)."""
    return np.asarray([scalar_column(table, n) for n in names], dtype=float).T.reshape(len(table), len(names))


@dataclass
class FeatureScaler:
    """Imputation medians, standardisation statistics and target scaling, fitted on training rows."""

    demographic_inputs: tuple[str, ...] = DEMOGRAPHIC_INPUTS
    param_inputs: tuple[str, ...] = PARAM_INPUTS
    medians: dict[str, float] = field(default_factory=dict)
    means: dict[str, float] = field(default_factory=dict)
    sds: dict[str, float] = field(default_factory=dict)
    target_mean_g: float = 0.0
    target_sd_g: float = 1.0

    @classmethod
    def fit(
        cls,
        table: pd.DataFrame,
        lvm_g,
        demographic_inputs: tuple[str, ...] = DEMOGRAPHIC_INPUTS,
        param_inputs: tuple[str, ...] = PARAM_INPUTS,
    ) -> "FeatureScaler":
        """Learn from the training rows only (``table`` from :func:`scalar_table`, ``lvm_g`` in grams)."""
        y = np.asarray(lvm_g, float)
        if not np.isfinite(y).any():
            raise ValueError("cannot fit the target scaling: no finite LVM values in the training rows")
        medians, means, sds = {}, {}, {}
        for name in tuple(demographic_inputs) + tuple(param_inputs):
            v = pd.to_numeric(table[name], errors="coerce").to_numpy(float) if name in table.columns else np.array([])
            v = v[np.isfinite(v)]
            med = float(np.median(v)) if v.size else 0.0
            medians[name] = med
            filled = v if v.size else np.array([med])
            means[name] = float(filled.mean())
            sd = float(filled.std())
            sds[name] = sd if sd > 1e-8 else 1.0
        sd_y = float(np.nanstd(y))
        return cls(tuple(demographic_inputs), tuple(param_inputs), medians, means, sds,
                   float(np.nanmean(y)), sd_y if sd_y > 1e-8 else 1.0)

    def _block(self, table: pd.DataFrame, names) -> tuple[np.ndarray, list[list[str]]]:
        n = len(table)
        out = np.zeros((n, len(names)), np.float32)
        imputed: list[list[str]] = [[] for _ in range(n)]
        for j, name in enumerate(names):
            v = pd.to_numeric(table[name], errors="coerce").to_numpy(float) if name in table.columns else np.full(n, np.nan)
            miss = ~np.isfinite(v)
            for i in np.flatnonzero(miss):
                imputed[i].append(name)
            v = np.where(miss, self.medians[name], v)
            out[:, j] = (v - self.means[name]) / self.sds[name]
        return out, imputed

    def transform(self, table: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, list[tuple[str, ...]]]:
        """(demographics (N, d), params (N, p), imputed column names per row), standardised."""
        demo, imp_d = self._block(table, self.demographic_inputs)
        par, imp_p = self._block(table, self.param_inputs)
        return demo, par, [tuple(a + b) for a, b in zip(imp_d, imp_p)]

    def _block_values(self, rows, names) -> tuple[np.ndarray, list[list[str]]]:
        if not names:
            return np.zeros((len(rows), 0), np.float32), [[] for _ in rows]
        v = np.array([[_as_float(r.get(name)) for name in names] for r in rows], float).reshape(len(rows), len(names))
        miss = ~np.isfinite(v)
        imputed = [[name for name, m in zip(names, row) if m] for row in miss.tolist()]
        med = np.array([self.medians[n] for n in names], float)
        mean = np.array([self.means[n] for n in names], float)
        sd = np.array([self.sds[n] for n in names], float)
        return ((np.where(miss, med, v) - mean) / sd).astype(np.float32), imputed

    def transform_values(self, rows) -> tuple[np.ndarray, np.ndarray, list[tuple[str, ...]]]:
        """:meth:`transform` for rows given as mappings (:func:`scalar_values`), in NumPy only: the same
        numbers, without a DataFrame per ECG (what prediction uses; a name a row lacks is missing).

        >>> sc = FeatureScaler.fit(pd.DataFrame({"age_years": [50., 70.], "sex_male": [1., 0.], "height_cm": [170., 160.],
        ...                                      "weight_kg": [80., 60.], "qrs_ms": [90., 100.]}), [150., 110.])
        >>> rows = [scalar_values(age_years=None, sex="M", height_cm=175.0, weight_kg=82.0, params={"qrs_ms": 96.0})]
        >>> d, p, imp = sc.transform_values(rows)
        >>> bool((d == sc.transform(pd.DataFrame(rows))[0]).all()), imp
        (True, [('age_years', 'p_axis_deg', 'r_axis_deg', 't_axis_deg')])
        """
        rows = list(rows)
        demo, imp_d = self._block_values(rows, tuple(self.demographic_inputs))
        par, imp_p = self._block_values(rows, tuple(self.param_inputs))
        return demo, par, [tuple(a + b) for a, b in zip(imp_d, imp_p)]

    def normalise_target(self, lvm_g) -> np.ndarray:
        return ((np.asarray(lvm_g, float) - self.target_mean_g) / self.target_sd_g).astype(np.float32)

    def to_grams(self, normalised) -> np.ndarray:
        return np.asarray(normalised, float) * self.target_sd_g + self.target_mean_g

    def to_dict(self) -> dict:
        return {
            "demographic_inputs": list(self.demographic_inputs),
            "param_inputs": list(self.param_inputs),
            "medians": dict(self.medians),
            "means": dict(self.means),
            "sds": dict(self.sds),
            "target_mean_g": self.target_mean_g,
            "target_sd_g": self.target_sd_g,
        }

    @classmethod
    def from_dict(cls, d: dict) -> "FeatureScaler":
        return cls(tuple(d["demographic_inputs"]), tuple(d["param_inputs"]), {k: float(v) for k, v in d["medians"].items()},
                   {k: float(v) for k, v in d["means"].items()}, {k: float(v) for k, v in d["sds"].items()},
                   float(d["target_mean_g"]), float(d["target_sd_g"]))


def _signal_key(signal) -> str:
    import json

    return json.dumps(signal.to_dict(), sort_keys=True)


@dataclass
class CohortData:
    """What every model family sees: the usable manifest rows and, per signal configuration, their
    ECG views and analyses, aligned row for row (the same rows for every model, so every model is
    judged on the same folds).

    ``measured`` holds the ECG parameters of :data:`PARAM_INPUTS` per row (the ECG machine's
    measurement where plausible, else measured from the signal); :attr:`scalars` the model's scalar
    inputs. Views and analyses of a signal configuration are computed on first use (through the
    on-disk signal cache for a cohort) and kept.
    """

    manifest: pd.DataFrame  # usable rows only, index reset
    measured: pd.DataFrame  # qrs_ms, p/r/t axis per row (device, else measured; NaN where neither)
    flags: list[tuple[str, ...]] = field(default_factory=list)
    dropped: list[dict] = field(default_factory=list)  # {"row", "ecg_path", "problem"}
    _views: dict = field(default_factory=dict, repr=False)
    _analyses: dict = field(default_factory=dict, repr=False)
    _provider: object = field(default=None, repr=False)  # signal -> list of analyses, one per row
    _derived: dict = field(default_factory=dict, repr=False)  # key -> (N, ...) per-row array

    @classmethod
    def from_frame(cls, manifest: pd.DataFrame) -> "CohortData":
        """Rows without ECGs (for models that need none, and for tests)."""
        df = manifest.reset_index(drop=True)
        return cls(df, scalar_table(df)[list(PARAM_INPUTS)], [()] * len(df))

    @classmethod
    def from_views(cls, manifest: pd.DataFrame, signal, views: np.ndarray, measured: pd.DataFrame,
                   flags=None) -> "CohortData":
        """Rows whose view for ``signal`` is already computed (e.g. generated beats in tests)."""
        df = manifest.reset_index(drop=True)
        data = cls(df, measured.reset_index(drop=True), list(flags) if flags is not None else [()] * len(df))
        data._views[_signal_key(signal)] = np.ascontiguousarray(views, dtype=np.float32)
        return data

    def __len__(self) -> int:
        return len(self.manifest)

    @property
    def scalars(self) -> pd.DataFrame:
        return scalar_table(self.manifest, self.measured)

    @property
    def lvm_g(self) -> np.ndarray:
        if "lvm_g" not in self.manifest.columns:
            return np.full(len(self.manifest), np.nan)
        return pd.to_numeric(self.manifest["lvm_g"], errors="coerce").to_numpy(float)

    def analyses(self, signal) -> list:
        """One :class:`~elvmass.signal.ECGAnalysis` per row for ``signal``."""
        key = _signal_key(signal)
        if key not in self._analyses:
            if self._provider is None:
                raise ValueError("these rows carry no ECG analyses for this signal configuration")
            self._analyses[key] = list(self._provider(signal))
        return self._analyses[key]

    def views(self, signal) -> np.ndarray:
        """(N, 12, L) float32 model views (mV, band-passed, at ``signal.out_fs_hz``)."""
        key = _signal_key(signal)
        if key not in self._views:
            arr = [np.asarray(a.view, np.float32) for a in self.analyses(signal)]
            self._views[key] = (np.stack(arr) if arr else np.zeros((0, 12, signal.view_length), np.float32))
        return self._views[key]

    def derived(self, key: str, compute=None) -> np.ndarray | None:
        """A per-row array derived from these rows' ECGs (one row per manifest row, e.g. ECG-AI's profiles),
        computed once by ``compute(self)`` and kept under ``key``; without ``compute``, the kept array or
        None. It travels with :meth:`subset` (sliced) and to a runner's workers."""
        if key not in self._derived and compute is not None:
            arr = np.asarray(compute(self))
            if len(arr) != len(self):
                raise ValueError(f"derived input {key!r}: {len(arr)} rows for {len(self)} manifest rows")
            self._derived[key] = arr
        return self._derived.get(key)

    def subset(self, rows) -> "CohortData":
        """The given rows only (views and analyses computed so far are sliced along)."""
        rows = np.asarray(rows, dtype=int)
        out = CohortData(self.manifest.iloc[rows].reset_index(drop=True), self.measured.iloc[rows].reset_index(drop=True),
                         [self.flags[i] for i in rows] if self.flags else [], [])
        out._views = {k: v[rows] for k, v in self._views.items()}
        out._analyses = {k: [v[i] for i in rows] for k, v in self._analyses.items()}
        out._derived = {k: v[rows] for k, v in self._derived.items()}
        return out


def _measured_params(res) -> dict:
    m = dict(getattr(res, "measured", {}) or {})
    for k, v in (getattr(res, "device", {}) or {}).items():
        if k in PARAM_INPUTS and plausible_param(k, v):
            m[k] = float(v)  # the ECG machine's measurement wins over ours
    return {k: (np.nan if m.get(k) is None else float(m[k])) for k in PARAM_INPUTS}


def _row_problem(res, drop_unusable: bool) -> str | None:
    view = getattr(res, "view", None)
    if isinstance(res, Exception) or view is None:
        return str(getattr(res, "problem", res)) if isinstance(res, Exception) else "no usable beat"
    if drop_unusable and not getattr(res, "usable", True):
        return "quality: " + ", ".join(res.flags)
    if not np.isfinite(np.asarray(view)).all():
        return "non-finite samples in the model view"
    return None


def cohort_data(
    manifest: pd.DataFrame,
    signals,
    *,
    cache_dir: str | Path | None = None,
    base_dir: str | Path | None = None,
    drop_unusable: bool = False,
    progress=None,
) -> CohortData:
    """Run the signal pipeline over every manifest row (cached) for each signal configuration.

    ``signals``: one :class:`~elvmass.signal.SignalConfig` or several; the first is the reference
    whose measured parameters and quality flags the rows carry. Rows whose ECG cannot be read or
    yields no view in any of them are dropped and listed in ``dropped``. With ``drop_unusable=True``
    so are ECGs with a blocking quality flag (pacing, noise, flat or saturated lead); by default they
    are kept with their flags (exclusions belong to the cohort build,
    :func:`elvmass.cohort.build_cohort`). ``progress(i, n)`` is called after each file. Signal
    configurations asked for later (``data.views(other)``) are computed then, through the same cache.
    """
    from elvmass.cohort import resolve_ecg_path
    from elvmass.signal import SignalConfig, preprocess_cohort

    if "ecg_path" not in manifest.columns:
        raise ValueError("the manifest has no ecg_path column")
    if isinstance(signals, SignalConfig):
        signals = [signals]
    signals = list(dict.fromkeys(signals))
    if not signals:
        raise ValueError("cohort_data needs at least one signal configuration")
    df = manifest.reset_index(drop=True)
    paths = [resolve_ecg_path(p, base_dir) for p in df["ecg_path"]]
    cache_dir = Path(cache_dir) if cache_dir is not None else Path(".elvmass-cache/signal")
    per_signal = [preprocess_cohort(paths, sig, cache_dir, progress=progress) for sig in signals]
    keep, dropped = [], []
    for i in range(len(df)):
        problem = next((p for p in (_row_problem(res[i], drop_unusable) for res in per_signal) if p), None)
        if problem is None:
            keep.append(i)
        else:
            dropped.append({"row": i, "ecg_path": str(paths[i]), "problem": problem})
    ref = per_signal[0]
    kept_paths = [paths[i] for i in keep]
    data = CohortData(
        df.iloc[keep].reset_index(drop=True),
        pd.DataFrame([_measured_params(ref[i]) for i in keep], columns=list(PARAM_INPUTS)),
        [tuple(getattr(ref[i], "flags", ())) for i in keep],
        dropped,
        _provider=lambda sig: preprocess_cohort(kept_paths, sig, cache_dir),
    )
    for sig, res in zip(signals, per_signal):
        data._analyses[_signal_key(sig)] = [res[i] for i in keep]
    return data


def record_data(records, rows: pd.DataFrame, *, analyses: dict | None = None) -> CohortData:
    """Rows built from ECG records in memory (what ``predict`` does for new ECGs): ``rows`` holds
    each record's demographics (and ECG parameters, when known); the analyses of any signal
    configuration are computed from the records on demand with :func:`elvmass.signal.analyze_ecg`.
    The ``measured`` parameters are taken from the rows (they already hold device, else measured);
    ``analyses`` (signal config -> one analysis per record) passes on what is already computed."""
    from elvmass.signal import analyze_ecg

    records = list(records)
    df = rows.reset_index(drop=True)
    measured = pd.DataFrame({k: pd.to_numeric(df[k], errors="coerce") if k in df.columns else np.nan
                             for k in PARAM_INPUTS}, index=df.index).astype(float)
    data = CohortData(df, measured, [()] * len(df), _provider=lambda sig: [analyze_ecg(r, sig) for r in records])
    for sig, done in (analyses or {}).items():
        data._analyses[_signal_key(sig)] = list(done)
    return data
