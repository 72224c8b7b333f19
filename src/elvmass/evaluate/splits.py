"""Cross-validation splits of the eLVMass-Net paper, by patient.

Pan et al. (2025) form five folds by sorting the cohort on LV mass and assigning every fifth
case to a fold, so every fold covers the whole LVM range. In each iteration one fold is the
test set and about 10 % of the remaining cases form the validation set used for early
stopping and model selection. Sex-specific models use the same folds restricted to one sex.

Splitting is by patient: a patient with several rows is placed by their first row in sorted
order and all their rows go to the same fold (and the same side of the validation split).

    >>> import pandas as pd
    >>> df = pd.DataFrame({"patient_id": list("abcdefghij"), "lvm_g": range(100, 200, 10)})
    >>> assign_folds(df).tolist()
    [0, 1, 2, 3, 4, 0, 1, 2, 3, 4]
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd


@dataclass(frozen=True)
class Split:
    """Row indices (positions in the manifest) of one cross-validation iteration."""

    fold: int
    train: np.ndarray
    val: np.ndarray
    test: np.ndarray


def _patient_order(df: pd.DataFrame, target: str, patient_col: str) -> pd.Series:
    """Rank of each patient (0..P-1) in the order of their first row after sorting on target."""
    if target not in df.columns:
        raise ValueError(f"the manifest has no {target!r} column to sort on")
    # a row without a patient ID is its own patient (pandas 3 keeps missing values missing in
    # astype(str), so they would otherwise all collapse into one "patient")
    rows = pd.Series([f"\x00row{i}" for i in range(len(df))], index=df.index)
    if patient_col in df.columns:
        raw = df[patient_col]
        pid = raw.astype(object).where(raw.notna(), None).map(lambda v: None if v is None else str(v))
        pid = pid.where(pid.notna(), rows)
    else:
        pid = rows
    order = pd.DataFrame({"pid": pid.to_numpy(), "y": df[target].to_numpy(dtype=float), "row": np.arange(len(df))})
    if order["y"].isna().any():
        raise ValueError(f"{int(order['y'].isna().sum())} rows have no {target}; drop them before splitting")
    order = order.sort_values(["y", "pid", "row"], kind="mergesort")
    first = order.drop_duplicates("pid", keep="first")
    rank = pd.Series(np.arange(len(first)), index=first["pid"].to_numpy())
    return pid.map(rank)


def assign_folds(df: pd.DataFrame, n_folds: int = 5, *, target: str = "lvm_g", patient_col: str = "patient_id") -> np.ndarray:
    """Fold number (0..n_folds-1) of each row: patients sorted by LVM, every n-th to a fold."""
    if n_folds < 2:
        raise ValueError("n_folds must be at least 2")
    rank = _patient_order(df, target, patient_col).to_numpy()
    return (rank % n_folds).astype(int)


def make_splits(
    df: pd.DataFrame,
    n_folds: int = 5,
    val_fraction: float = 0.1,
    *,
    sex: str | None = None,
    target: str = "lvm_g",
    patient_col: str = "patient_id",
) -> list[Split]:
    """One :class:`Split` per fold. ``sex='M'`` or ``'F'`` restricts every set to that sex
    while keeping the folds of the whole cohort (the paper's sex-specific protocol).

    The validation set is stratified the same way: the remaining patients, in LVM order,
    every ``round(1 / val_fraction)``-th one (offset by the fold number) is held out.
    """
    step = _val_step(val_fraction)
    folds = assign_folds(df, n_folds, target=target, patient_col=patient_col)
    rank = _patient_order(df, target, patient_col).to_numpy()
    keep = _sex_mask(df, sex)
    rows = np.arange(len(df))
    splits = []
    for k in range(n_folds):
        test = rows[(folds == k) & keep]
        rest_rows = rows[(folds != k) & keep]
        in_val = _every_nth_patient(rank[rest_rows], step, offset=k)
        splits.append(Split(k, rest_rows[~in_val], rest_rows[in_val], test))
    return splits


def _val_step(val_fraction: float) -> int:
    if not 0 < val_fraction < 0.5:
        raise ValueError("val_fraction must be between 0 and 0.5")
    return max(2, int(round(1.0 / val_fraction)))


def _every_nth_patient(ranks: np.ndarray, step: int, offset: int = 0) -> np.ndarray:
    """Mask over rows (given their patients' LVM ranks): the patients re-ranked among themselves,
    every ``step``-th one (starting ``offset`` places later) is selected, with all of its rows."""
    pos = np.searchsorted(np.unique(ranks), ranks)
    return (pos + offset) % step == 0


def _sex_mask(df: pd.DataFrame, sex: str | None) -> np.ndarray:
    if sex is None:
        return np.ones(len(df), bool)
    if sex not in ("M", "F"):
        raise ValueError(f"sex must be 'M' or 'F', got {sex!r}")
    return df["sex"].astype(str).to_numpy() == sex


def train_val_split(
    df: pd.DataFrame,
    val_fraction: float = 0.1,
    *,
    sex: str | None = None,
    target: str = "lvm_g",
    patient_col: str = "patient_id",
) -> tuple[np.ndarray, np.ndarray]:
    """(train rows, validation rows) over the whole cohort, for fitting a final model.

    The same stratified rule as inside each fold: patients in LVM order, every
    ``round(1 / val_fraction)``-th one is validation; optionally one sex only.

    >>> df = pd.DataFrame({"patient_id": list("abcdefghij"), "lvm_g": range(10)})
    >>> tr, va = train_val_split(df, 0.2)
    >>> va.tolist()
    [0, 5]
    """
    step = _val_step(val_fraction)
    rank = _patient_order(df, target, patient_col).to_numpy()
    rows = np.flatnonzero(_sex_mask(df, sex))
    in_val = _every_nth_patient(rank[rows], step)
    return rows[~in_val], rows[in_val]


def hold_out_patients(df: pd.DataFrame, rows, fraction: float, *, offset: int | None = None, target: str = "lvm_g",
                      patient_col: str = "patient_id") -> tuple[np.ndarray, np.ndarray]:
    """Split ``rows`` into (kept, held out): among their patients in LVM order, every
    ``round(1 / fraction)``-th one (from ``offset``, default half a step, so it differs from the
    validation rule's) is held out with all of its rows — e.g. conformal calibration rows.

    >>> df = pd.DataFrame({"patient_id": list("abcdefghij"), "lvm_g": range(10)})
    >>> kept, held = hold_out_patients(df, np.arange(10), 0.2)
    >>> held.tolist()
    [2, 7]
    """
    rows = np.asarray(rows, dtype=int)
    step = _val_step(fraction)
    rank = _patient_order(df, target, patient_col).to_numpy()
    sel = _every_nth_patient(rank[rows], step, offset=step - step // 2 if offset is None else offset)
    return rows[~sel], rows[sel]
