"""Validating a manifest: every bad row with every reason (never stops at the first), and the typed
valid rows; :func:`load_manifest` reads, validates and derives in one call."""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from elvmass.cohort.body_size import LVHCutoffs, add_derived_columns
from elvmass.cohort.device import fill_device_measurements
from elvmass.cohort.schema import (
    MANIFEST_SCHEMA,
    REQUIRED_COLUMNS,
    SCHEMA_BY_NAME,
    ColumnSpec,
    _ecg_file_exists,
    _fmt_num,
    _is_missing,
    normalize_lvm_source,
    normalize_sex,
    read_manifest,
    resolve_ecg_path,
    unit_hint,
)
from elvmass.errors import ManifestError


@dataclass(frozen=True)
class RowProblem:
    """One problem with one manifest row. ``row`` is the 0-based data row (CSV line = row + 2)."""

    row: int
    patient_id: str | None
    reason: str

    def __str__(self) -> str:
        who = f" (patient {self.patient_id})" if self.patient_id else ""
        return f"row {self.row}{who}: {self.reason}"


@dataclass(frozen=True)
class ManifestValidation:
    """The rows that passed (typed and normalised) and every problem found in the others."""

    valid: pd.DataFrame
    problems: list[RowProblem] = field(default_factory=list)
    n_rows: int = 0

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def bad_rows(self) -> list[int]:
        return sorted({p.row for p in self.problems})

    def problems_frame(self) -> pd.DataFrame:
        return pd.DataFrame([p.__dict__ for p in self.problems], columns=["row", "patient_id", "reason"])








def _parse_number(spec: ColumnSpec, value) -> tuple[float | None, str | None]:
    if _is_missing(value):
        return None, (f"{spec.name} is missing" if spec.required else None)
    if isinstance(value, (bool, np.bool_)):
        return None, f"{spec.name} {value!r} is not a number"
    try:
        x = float(str(value).strip()) if isinstance(value, str) else float(value)
    except (TypeError, ValueError):
        return None, f"{spec.name} {str(value).strip()!r} is not a number (write the number only, in {spec.unit})"
    if not math.isfinite(x):
        return None, f"{spec.name} {value!r} is not a finite number"
    if spec.lo is not None and not (spec.lo <= x <= spec.hi):
        hint = unit_hint(spec.name, x) if spec.name in SCHEMA_BY_NAME else (f"expected {spec.hint}" if spec.hint else "")
        return None, f"{spec.name} {_fmt_num(x)} is outside {spec.range_text()} {spec.unit}" + (f" ({hint})" if hint else "")
    return x, None


def _parse_datetime(spec: ColumnSpec, value) -> tuple[pd.Timestamp | None, str | None]:
    if _is_missing(value):
        return None, (f"{spec.name} is missing" if spec.required else None)
    if isinstance(value, (pd.Timestamp, np.datetime64)) or hasattr(value, "year"):
        ts = pd.Timestamp(value)
    else:
        text = str(value).strip()
        if not re.fullmatch(r"\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?)?(Z|[+-]\d{2}:?\d{2})?", text):
            return None, f"{spec.name} {text!r} is not an ISO 8601 date (write YYYY-MM-DD or YYYY-MM-DDTHH:MM:SS)"
        try:
            ts = pd.Timestamp(text)
        except (ValueError, TypeError):
            return None, f"{spec.name} {text!r} is not a valid date"
    if ts.tzinfo is not None:  # keep one clock: naive UTC
        ts = ts.tz_convert("UTC").tz_localize(None)
    return ts, None


def _check_cell(spec: ColumnSpec, value):
    if spec.kind == "number":
        return _parse_number(spec, value)
    if spec.kind == "datetime":
        return _parse_datetime(spec, value)
    if spec.kind == "sex":
        return normalize_sex(value)
    if spec.kind == "source":
        return normalize_lvm_source(value)
    # text / path
    if _is_missing(value):
        return None, (f"{spec.name} is missing" if spec.required else None)
    return str(value).strip(), None


def _check_columns(df: pd.DataFrame, required: Sequence[str], what: str) -> None:
    missing = [c for c in required if c not in df.columns]
    if missing:
        raise ManifestError(f"{what} lacks required column(s) {', '.join(missing)} "
                            f"(has: {', '.join(map(str, df.columns)) or 'none'})")


def _validate_rows(df: pd.DataFrame, specs: Sequence[ColumnSpec]) -> tuple[pd.DataFrame, list[list[str]]]:
    """Typed copy of ``df`` for the given specs plus a list of problems per row (positional)."""
    out = df.copy()
    problems: list[list[str]] = [[] for _ in range(len(df))]
    for spec in specs:
        if spec.name not in df.columns:
            out[spec.name] = pd.Series([None] * len(df), index=df.index, dtype=object)
            continue
        values = []
        for i, raw in enumerate(df[spec.name].tolist()):
            v, why = _check_cell(spec, raw)
            if why:
                problems[i].append(why)
            values.append(v)
        if spec.kind == "number":
            out[spec.name] = pd.Series([np.nan if v is None else v for v in values], index=df.index, dtype=float)
        elif spec.kind == "datetime":
            out[spec.name] = pd.to_datetime(pd.Series(values, index=df.index, dtype=object))
        else:
            out[spec.name] = pd.Series(values, index=df.index, dtype=object)
    return out, problems


def validate_manifest(df: pd.DataFrame, *, base_dir=None, check_files: bool = True) -> ManifestValidation:
    """Check every row of a manifest; report every bad row with every reason (never stops early).

    Returns the valid rows (sex as 'M'/'F', lvm_source canonical, numbers as float, date-times as
    timestamps) and a :class:`RowProblem` per problem. With ``check_files`` each ``ecg_path``
    (resolved against ``base_dir``) must exist. Missing required *columns* make the whole table
    unusable and raise :class:`~elvmass.errors.ManifestError`.

    >>> import pandas as pd
    >>> bad = pd.DataFrame({"patient_id": ["a"], "ecg_path": ["x.xml"], "lvm_g": [15.0], "lvm_source": ["mr"],
    ...                     "sex": ["0"], "age_years": [50], "height_cm": [1.7], "weight_kg": [70]})
    >>> for p in validate_manifest(bad, check_files=False).problems: print(p.reason.split(" (")[0])
    lvm_g 15 is outside 30 – 600 g
    sex '0' is a number, which is ambiguous
    height_cm 1.7 is outside 120 – 220 cm
    """
    if not isinstance(df, pd.DataFrame):
        raise ManifestError(f"expected a pandas DataFrame, got {type(df).__name__}")
    _check_columns(df, REQUIRED_COLUMNS, "manifest")
    df = df.reset_index(drop=True)
    typed, problems = _validate_rows(df, MANIFEST_SCHEMA)
    if check_files:
        for i, p in enumerate(typed["ecg_path"].tolist()):
            if p is None:
                continue
            resolved = resolve_ecg_path(p, base_dir)
            if not _ecg_file_exists(resolved):
                problems[i].append(f"ECG file not found: {resolved}")
    seen_pair: dict[tuple, int] = {}
    owner: dict[str, tuple[int, str | None]] = {}
    for i, (pid, path, when, lvm) in enumerate(zip(typed["patient_id"].tolist(), typed["ecg_path"].tolist(),
                                                  typed["imaging_datetime"].tolist(), typed["lvm_g"].tolist())):
        if path is None:
            continue
        key = (pid, path, when, lvm)
        if key in seen_pair:
            problems[i].append(f"duplicate of row {seen_pair[key]} (same ECG and same LVM)")
        else:
            seen_pair[key] = i
        first = owner.setdefault(path, (i, pid))
        if pid is not None and first[1] is not None and first[1] != pid:
            problems[i].append(f"ecg_path is also used in row {first[0]} for another patient ({first[1]})")
    pids = typed["patient_id"].tolist()
    row_problems = [RowProblem(i, pids[i], why) for i in range(len(df)) for why in problems[i]]
    good = [i for i in range(len(df)) if not problems[i]]
    valid = typed.iloc[good].copy()
    return ManifestValidation(valid=valid, problems=row_problems, n_rows=len(df))


#: Demographic inputs of a prediction, checked against the manifest's ranges by :func:`check_demographics`.
DEMOGRAPHIC_COLUMNS: tuple[str, ...] = ("age_years", "height_cm", "weight_kg")


def demographic_problem(name: str, value) -> str | None:
    """None when ``value`` is missing or within the manifest's plausible range for ``name``
    (one of :data:`DEMOGRAPHIC_COLUMNS`), else the problem with the range and a unit hint.

    >>> demographic_problem("height_cm", 175) is None, demographic_problem("height_cm", None) is None
    (True, True)
    >>> demographic_problem("height_cm", 1.75)
    'height_cm 1.75 is outside 120 – 220 cm (1.75 looks like metres (= 175 cm); write centimetres)'
    """
    spec = SCHEMA_BY_NAME[name]
    optional = ColumnSpec(spec.name, spec.kind, False, spec.unit, spec.lo, spec.hi, spec.hint)
    return _parse_number(optional, value)[1]


def check_demographics(*, age_years=None, sex=None, height_cm=None, weight_kg=None) -> dict:
    """The one plausibility check of demographics a caller gives (command-line options, keyword
    arguments, service request fields): the manifest's ranges and unit hints
    (:data:`~elvmass.cohort.schema.MANIFEST_SCHEMA`), sex as for the manifest.

    Returns ``{"age_years", "sex", "height_cm", "weight_kg"}`` (floats, 'M'/'F', None where not
    given); raises :class:`~elvmass.errors.InputValueError` naming every bad value.

    >>> check_demographics(sex="female", height_cm="170")
    {'age_years': None, 'sex': 'F', 'height_cm': 170.0, 'weight_kg': None}
    >>> check_demographics(age_years=-5, weight_kg=500)
    Traceback (most recent call last):
    ...
    elvmass.errors.InputValueError: age_years -5 is outside 18 – 110 years (expected age in whole or decimal years); weight_kg 500 is outside 30 – 250 kg (500 looks like pounds (= 227 kg); write kilograms)
    """
    from elvmass.errors import InputValueError

    out: dict = {}
    problems: list[str] = []
    for name, value in (("age_years", age_years), ("height_cm", height_cm), ("weight_kg", weight_kg)):
        why = demographic_problem(name, value)
        if why:
            problems.append(why)
            out[name] = None
        else:
            out[name] = None if _is_missing(value) else float(value)
    if _is_missing(sex):
        out["sex"] = None
    else:
        s, why = normalize_sex(sex)
        if why:
            problems.append(why)
        out["sex"] = s
    if problems:
        raise InputValueError("; ".join(problems))
    return {k: out[k] for k in ("age_years", "sex", "height_cm", "weight_kg")}


def load_manifest(path, *, check_files: bool = True, on_problem: str = "raise", bsa_formula: str = "mosteller",
                  cutoffs: LVHCutoffs = LVHCutoffs(), fill_from_ecg: bool = False) -> pd.DataFrame:
    """Read, validate and derive in one call: what an analysis wants from a manifest file.

    ``ecg_path`` comes back absolute. A file without data rows raises :class:`ManifestError`. ``on_problem="raise"`` raises :class:`ManifestError` listing
    every bad row; ``"drop"`` keeps only the valid rows. ``fill_from_ecg`` fills empty QRS/axis
    cells from each file's device measurements (:func:`fill_device_measurements`).
    """
    if on_problem not in ("raise", "drop"):
        raise ValueError("on_problem must be 'raise' or 'drop'")
    path = Path(path)
    base = path.resolve().parent
    df = read_manifest(path)
    if len(df) == 0:
        raise ManifestError(f"{path}: the manifest has no data rows (only a header)")
    checked = validate_manifest(df, base_dir=base, check_files=check_files)
    if checked.problems and on_problem == "raise":
        lines = "; ".join(str(p) for p in checked.problems[:20])
        more = f" (and {len(checked.problems) - 20} more)" if len(checked.problems) > 20 else ""
        raise ManifestError(f"{path}: {len(checked.bad_rows)} bad row(s): {lines}{more}")
    valid = checked.valid.copy()
    valid["ecg_path"] = [str(resolve_ecg_path(p, base)) for p in valid["ecg_path"]]
    if fill_from_ecg:
        valid = fill_device_measurements(valid, base)
    return add_derived_columns(valid, bsa_formula=bsa_formula, cutoffs=cutoffs)


__all__ = ['DEMOGRAPHIC_COLUMNS', 'check_demographics', 'demographic_problem', 'ManifestValidation', 'RowProblem', 'load_manifest', 'validate_manifest']
