"""The ECG machine's own measurements (QRS duration, P/R/T axes): plausibility, and filling a manifest's
empty cells from each ECG file."""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import pandas as pd

from elvmass.cohort.schema import (
    DEVICE_MEASUREMENT_COLUMNS,
    SCHEMA_BY_NAME,
    _is_missing,
    resolve_ecg_path,
)
from elvmass.errors import ECGReadError


def _in_range(col: str, value) -> float | None:
    """A device value if it is a plausible number for the column, else None (e.g. MUSE's 999)."""
    if value is None:
        return None
    try:
        x = float(value)
    except (TypeError, ValueError):
        return None
    spec = SCHEMA_BY_NAME[col]
    if not math.isfinite(x) or not (spec.lo <= x <= spec.hi):
        return None
    return x


def fill_device_measurements(df: pd.DataFrame, base_dir=None, *, reader: Callable | None = None) -> pd.DataFrame:
    """Fill empty ``qrs_ms``/``p_axis_deg``/``r_axis_deg``/``t_axis_deg`` cells from each ECG file.

    Values already in the manifest win. Each file with an empty cell is read once with
    :func:`elvmass.io.read_ecg` and its device measurements copied when they are plausible
    (an implausible device value such as 999 stays empty). Unreadable files leave the cells
    empty; :func:`validate_manifest` reports missing files.
    """
    if reader is None:
        from elvmass.io import read_ecg as reader
    out = df.copy()
    for col in DEVICE_MEASUREMENT_COLUMNS:
        if col not in out.columns:
            out[col] = np.nan
        out[col] = pd.to_numeric(out[col], errors="coerce").astype(float)
    empty = out[list(DEVICE_MEASUREMENT_COLUMNS)].isna().any(axis=1)
    for idx in out.index[empty]:
        p = out.at[idx, "ecg_path"]
        if _is_missing(p):
            continue
        try:
            rec = reader(resolve_ecg_path(p, base_dir))
        except ECGReadError:
            continue
        m = rec.measurements
        for col in DEVICE_MEASUREMENT_COLUMNS:
            if pd.isna(out.at[idx, col]):
                v = _in_range(col, getattr(m, col, None))
                if v is not None:
                    out.at[idx, col] = v
    return out


__all__ = ['fill_device_measurements']
