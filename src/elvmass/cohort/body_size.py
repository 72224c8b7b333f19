"""Body size and indexed mass: BMI, body surface area (Mosteller or DuBois), LVMI = LVM / BSA, and LVH
as LVMI above the sex-specific cut-off (> 72 g/m² men, > 55 g/m² women by default)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from elvmass.cohort.schema import normalize_sex
from elvmass.errors import ManifestError

BSA_FORMULAS = ("mosteller", "dubois")


def bsa_m2(height_cm, weight_kg, formula: str = "mosteller"):
    """Body surface area in m² from height (cm) and weight (kg); scalars or arrays.

    Mosteller (default): sqrt(h * w / 3600). DuBois & DuBois: 0.007184 * h^0.725 * w^0.425.
    Missing (NaN) inputs give NaN; a non-positive value raises ``ValueError``.

    >>> round(bsa_m2(170, 70), 3), round(bsa_m2(170, 70, "dubois"), 3)
    (1.818, 1.81)
    """
    key = str(formula).strip().lower().replace("-", "").replace(" ", "").replace("_", "")
    if key not in BSA_FORMULAS:
        raise ValueError(f"unknown BSA formula {formula!r}; choose one of {', '.join(BSA_FORMULAS)}")
    scalar = np.ndim(height_cm) == 0 and np.ndim(weight_kg) == 0
    h = np.asarray(height_cm, dtype=float)
    w = np.asarray(weight_kg, dtype=float)
    if np.any(h <= 0) or np.any(w <= 0):
        raise ValueError("height_cm and weight_kg must be positive to compute BSA")
    if key == "mosteller":
        out = np.sqrt(h * w / 3600.0)
    else:
        out = 0.007184 * np.power(h, 0.725) * np.power(w, 0.425)
    return float(out) if scalar else out


@dataclass(frozen=True)
class LVHCutoffs:
    """Sex-specific LVMI cut-offs (g/m²): LVH when LVMI is strictly above the cut-off."""

    male_g_m2: float = 72.0
    female_g_m2: float = 55.0

    def __post_init__(self) -> None:
        for name in ("male_g_m2", "female_g_m2"):
            v = getattr(self, name)
            if not (isinstance(v, (int, float)) and math.isfinite(v) and v > 0):
                raise ValueError(f"LVHCutoffs.{name} must be a positive number of g/m², got {v!r}")

    def for_sex(self, sex: str) -> float:
        if sex == "M":
            return float(self.male_g_m2)
        if sex == "F":
            return float(self.female_g_m2)
        raise ValueError(f"sex must be 'M' or 'F', got {sex!r}")

    def to_dict(self) -> dict[str, float]:
        return {"male_g_m2": float(self.male_g_m2), "female_g_m2": float(self.female_g_m2)}

    @classmethod
    def from_dict(cls, d: dict) -> "LVHCutoffs":
        return cls(**{k: float(v) for k, v in d.items() if k in ("male_g_m2", "female_g_m2")})


def is_lvh(lvmi_g_m2, sex, cutoffs: LVHCutoffs = LVHCutoffs()):
    """LVH per row: LVMI > cut-off for the sex (pandas nullable boolean; NA where sex/LVMI unknown)."""
    lvmi = pd.Series(np.atleast_1d(np.asarray(lvmi_g_m2, dtype=float)))
    sexes = pd.Series(np.atleast_1d(np.asarray(sex, dtype=object)))
    cut = sexes.map({"M": cutoffs.male_g_m2, "F": cutoffs.female_g_m2}).astype(float)
    res = pd.array((lvmi > cut).to_numpy(), dtype="boolean")
    res[(cut.isna() | lvmi.isna()).to_numpy()] = pd.NA
    return res


def add_derived_columns(df: pd.DataFrame, *, bsa_formula: str = "mosteller",
                        cutoffs: LVHCutoffs = LVHCutoffs()) -> pd.DataFrame:
    """Add ``bmi`` (kg/m²), ``bsa_m2``, ``lvmi_g_m2`` and ``lvh`` to a (validated) manifest.

    ``lvh`` is True when LVMI > cut-off for the row's sex (default 72 g/m² men, 55 women);
    rows with missing inputs get NaN / NA.
    """
    need = [c for c in ("height_cm", "weight_kg", "lvm_g", "sex") if c not in df.columns]
    if need:
        raise ManifestError(f"cannot derive BSA/LVMI/LVH: missing column(s) {', '.join(need)}")
    out = df.copy()
    h = pd.to_numeric(out["height_cm"], errors="coerce").astype(float)
    w = pd.to_numeric(out["weight_kg"], errors="coerce").astype(float)
    lvm = pd.to_numeric(out["lvm_g"], errors="coerce").astype(float)
    bad = (h <= 0) | (w <= 0)
    h, w = h.mask(bad), w.mask(bad)
    out["bmi"] = w / (h / 100.0) ** 2
    out["bsa_m2"] = bsa_m2(h.to_numpy(), w.to_numpy(), bsa_formula)
    out["lvmi_g_m2"] = lvm / out["bsa_m2"]
    sexes = out["sex"].map(lambda s: normalize_sex(s)[0])
    out["lvh"] = is_lvh(out["lvmi_g_m2"].to_numpy(), sexes.to_numpy(), cutoffs)
    return out


__all__ = ['BSA_FORMULAS', 'LVHCutoffs', 'add_derived_columns', 'bsa_m2', 'is_lvh']
