"""From a cohort manifest (or one ECG) to the arrays eLVMass-Net takes.

* :func:`cohort_features` runs the signal pipeline (:func:`elvmass.signal.preprocess_cohort`,
  cached by file content and config) over every manifest row and returns the ECG views
  (N, 12, L) float32 in mV, the per-row quality flags, the ECG parameters measured from the
  signal, and the rows whose ECG could not be used (with the reason).
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


@dataclass
class CohortFeatures:
    """The usable manifest rows and their ECG-derived arrays, aligned row for row."""

    manifest: pd.DataFrame  # usable rows only, index reset
    views: np.ndarray  # (N, 12, L) float32, mV
    measured: pd.DataFrame  # qrs_ms, p/r/t axis measured from the signal (NaN where not measurable)
    ecg_flags: list[tuple[str, ...]]
    dropped: list[dict] = field(default_factory=list)  # {"row", "ecg_path", "problem"}

    @property
    def scalars(self) -> pd.DataFrame:
        return scalar_table(self.manifest, self.measured)


def cohort_features(
    manifest: pd.DataFrame,
    signal_config,
    *,
    cache_dir: str | Path | None = None,
    base_dir: str | Path | None = None,
    drop_unusable: bool = False,
    progress=None,
) -> CohortFeatures:
    """Run the signal pipeline over every manifest row (cached) and collect the model inputs.

    Rows whose ECG cannot be read or yields no view are dropped and listed in ``dropped``. With
    ``drop_unusable=True`` so are ECGs with a blocking quality flag (pacing, noise, flat or
    saturated lead); by default they are kept with their flags (exclusions belong to the cohort
    build, :func:`elvmass.cohort.build_cohort`). ECG parameters per row: the ECG machine's measurement, else the one
    measured from the signal (``measured``); the manifest's own values take precedence in
    :func:`scalar_table`. ``progress(i, n)`` is called after each file.
    """
    from elvmass.cohort import resolve_ecg_path
    from elvmass.signal import preprocess_cohort

    if "ecg_path" not in manifest.columns:
        raise ValueError("the manifest has no ecg_path column")
    df = manifest.reset_index(drop=True)
    paths = [resolve_ecg_path(p, base_dir) for p in df["ecg_path"]]
    if cache_dir is None:
        cache_dir = ".elvmass-cache/signal"
    results = preprocess_cohort(paths, signal_config, cache_dir, progress=progress)
    keep, views, measured, flags, dropped = [], [], [], [], []
    for i, res in enumerate(results):
        view = getattr(res, "view", None)
        if isinstance(res, Exception) or view is None:
            problem = str(getattr(res, "problem", res)) if isinstance(res, Exception) else "no usable beat"
            dropped.append({"row": i, "ecg_path": str(paths[i]), "problem": problem})
            continue
        view = np.asarray(view, np.float32)
        if drop_unusable and not getattr(res, "usable", True):
            dropped.append({"row": i, "ecg_path": str(paths[i]), "problem": "quality: " + ", ".join(res.flags)})
            continue
        if not np.isfinite(view).all():
            dropped.append({"row": i, "ecg_path": str(paths[i]), "problem": "non-finite samples in the model view"})
            continue
        keep.append(i)
        views.append(view)
        m = dict(getattr(res, "measured", {}) or {})
        for k, v in (getattr(res, "device", {}) or {}).items():
            if k in PARAM_INPUTS and plausible_param(k, v):
                m[k] = float(v)  # the ECG machine's measurement wins over ours
        measured.append({k: (np.nan if m.get(k) is None else float(m[k])) for k in PARAM_INPUTS})
        flags.append(tuple(getattr(res, "flags", ())))
    length = signal_config.view_length
    arr = np.stack(views).astype(np.float32) if views else np.zeros((0, 12, length), np.float32)
    return CohortFeatures(
        df.iloc[keep].reset_index(drop=True),
        arr,
        pd.DataFrame(measured, columns=list(PARAM_INPUTS)),
        flags,
        dropped,
    )
