"""The manifest schema (one row per ECG–LVM pair: columns, units, plausible ranges) and reading /
writing manifest tables (CSV or Parquet) without judging them.

Missing cells are read as ``None`` whatever the pandas version (:func:`text_cells`).
"""

from __future__ import annotations

import math
import re
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from elvmass.atomic import atomic_write
from elvmass.errors import ManifestError, path_from_text


@dataclass(frozen=True)
class ColumnSpec:
    """One manifest column: its kind, unit, whether a value is required and its plausible range."""

    name: str
    kind: str  # "text" | "path" | "datetime" | "number" | "sex" | "source"
    required: bool
    unit: str = ""
    lo: float | None = None
    hi: float | None = None
    hint: str = ""
    description: str = ""

    def range_text(self) -> str:
        if self.lo is None:
            return ""
        return f"{_fmt_num(self.lo)} – {_fmt_num(self.hi)}"


def _fmt_num(x: float | None) -> str:
    if x is None:
        return ""
    return str(int(x)) if float(x).is_integer() else f"{x:g}"


MANIFEST_SCHEMA: tuple[ColumnSpec, ...] = (
    ColumnSpec("patient_id", "text", True, "text",
               description="The hospital's patient identifier (GE MUSE PatientID); matches ECG and imaging."),
    ColumnSpec("ecg_path", "path", True, "path",
               description="The ECG file (any format elvmass reads); relative paths resolve against the manifest's folder."),
    ColumnSpec("ecg_datetime", "datetime", False, "ISO 8601",
               description="ECG acquisition date and time, YYYY-MM-DD[THH:MM[:SS]]."),
    ColumnSpec("lvm_g", "number", True, "g", 30, 600, "grams of LV mass (not kilograms, not LVMI in g/m²)",
               description="Imaging-derived left ventricular mass."),
    ColumnSpec("lvm_source", "source", True, "ct|mr|echo",
               description="Modality that measured LVM: ct, mr or echo (aliases: mri, cmr -> mr; tte -> echo)."),
    ColumnSpec("imaging_datetime", "datetime", False, "ISO 8601",
               description="Date and time of the CT, MR or echo study, YYYY-MM-DD[THH:MM[:SS]]."),
    ColumnSpec("sex", "sex", True, "M|F",
               description="M or F (male/female accepted, any case). Numbers are rejected: 0/1 coding differs between data sets."),
    ColumnSpec("age_years", "number", True, "years", 18, 110, "age in whole or decimal years",
               description="Age at the ECG."),
    ColumnSpec("height_cm", "number", True, "cm", 120, 220, "centimetres; 1.75 would be metres, 69 inches",
               description="Body height."),
    ColumnSpec("weight_kg", "number", True, "kg", 30, 250, "kilograms; pounds are 2.2 times larger",
               description="Body weight."),
    ColumnSpec("qrs_ms", "number", False, "ms", 40, 300, "milliseconds; 0.1 would be seconds",
               description="QRS duration; empty = filled from the ECG machine's measurement."),
    ColumnSpec("p_axis_deg", "number", False, "degrees", -180, 360, "frontal-plane axis in degrees",
               description="P axis; empty = filled from the ECG machine's measurement."),
    ColumnSpec("r_axis_deg", "number", False, "degrees", -180, 360, "frontal-plane axis in degrees",
               description="QRS (R) axis; empty = filled from the ECG machine's measurement."),
    ColumnSpec("t_axis_deg", "number", False, "degrees", -180, 360, "frontal-plane axis in degrees",
               description="T axis; empty = filled from the ECG machine's measurement."),
)
SCHEMA_BY_NAME: dict[str, ColumnSpec] = {s.name: s for s in MANIFEST_SCHEMA}
MANIFEST_COLUMNS: tuple[str, ...] = tuple(s.name for s in MANIFEST_SCHEMA)
REQUIRED_COLUMNS: tuple[str, ...] = tuple(s.name for s in MANIFEST_SCHEMA if s.required)
DEVICE_MEASUREMENT_COLUMNS: tuple[str, ...] = ("qrs_ms", "p_axis_deg", "r_axis_deg", "t_axis_deg")
DERIVED_COLUMNS: tuple[str, ...] = ("bmi", "bsa_m2", "lvmi_g_m2", "lvh")

#: Columns of the imaging export read by :func:`build_cohort` (the rest of an imaging row is optional).
IMAGING_REQUIRED_COLUMNS: tuple[str, ...] = ("patient_id", "imaging_datetime", "lvm_g", "lvm_source")
IMAGING_OPTIONAL_COLUMNS: tuple[str, ...] = ("height_cm", "weight_kg", "sex", "age_years")

_TEXT_COLUMNS = ("patient_id", "ecg_path", "ecg_datetime", "lvm_source", "imaging_datetime", "sex")
_SEX_WORDS = {"m": "M", "male": "M", "f": "F", "female": "F"}
_SOURCE_WORDS = {"ct": "ct", "mr": "mr", "mri": "mr", "cmr": "mr", "echo": "echo", "tte": "echo"}


#: Unit mix-ups worth naming when a number is out of range: (factor to the column's unit, the unit it
#: would then be in). ``unit_hint("height_cm", 69)`` says 69 inches = 175 cm.
UNIT_MIXUPS: dict[str, tuple[tuple[float, str], ...]] = {
    "lvm_g": ((1000.0, "kilograms"),),
    "height_cm": ((100.0, "metres"), (2.54, "inches")),
    "weight_kg": ((0.45359237, "pounds"),),
    "qrs_ms": ((1000.0, "seconds"),),
}


def unit_hint(name: str, value: float) -> str:
    """Why an out-of-range number may be in another unit, or the column's fixed hint.

    >>> unit_hint("lvm_g", 0.15)
    '0.15 looks like kilograms (= 150 g); write grams of LV mass'
    >>> unit_hint("height_cm", 69)
    '69 looks like inches (= 175 cm); write centimetres'
    >>> unit_hint("age_years", 200)
    'expected age in whole or decimal years'
    """
    spec = SCHEMA_BY_NAME[name]
    for factor, unit in UNIT_MIXUPS.get(name, ()):
        y = float(value) * factor
        if spec.lo is not None and spec.lo <= y <= spec.hi:
            wanted = {"g": "grams of LV mass", "cm": "centimetres", "kg": "kilograms", "ms": "milliseconds"}[spec.unit]
            return f"{_fmt_num(float(value))} looks like {unit} (= {y:.0f} {spec.unit}); write {wanted}"
    return f"expected {spec.hint}" if spec.hint else ""


def schema_markdown() -> str:
    """The manifest schema as a Markdown table (the table in ``docs/manifest.md`` is this text)."""
    lines = ["| column | required | unit | allowed range | meaning |", "|---|---|---|---|---|"]
    for s in MANIFEST_SCHEMA:
        lines.append(f"| `{s.name}` | {'yes' if s.required else 'no'} | {s.unit} | {s.range_text()} | {s.description} |")
    return "\n".join(lines)


def _is_missing(v) -> bool:
    if v is None:
        return True
    if isinstance(v, float) and math.isnan(v):
        return True
    if v is pd.NA or v is pd.NaT:
        return True
    if isinstance(v, str) and v.strip().lower() in ("", "nan", "none", "null", "na", "n/a"):
        return True
    return False


def _is_parquet(path: Path) -> bool:
    return path.suffix.lower() in (".parquet", ".pq")


def _csv_separator(path: Path) -> str:
    """``,`` unless the header line has no comma but semicolons or tabs (Excel in many European
    locales saves "CSV" with semicolons, since the comma is their decimal mark)."""
    with open(path, encoding="utf-8-sig", errors="replace") as fh:
        header = fh.readline()
    if "," not in header:
        for sep in (";", "\t"):
            if sep in header:
                return sep
    return ","


def _read_text_table(path: Path) -> pd.DataFrame:
    """A CSV (comma, semicolon or tab separated; UTF-8 with or without a byte-order mark, else
    Windows-1252 as Excel on Windows saves it) with every cell as text."""
    sep = _csv_separator(path)
    try:
        df = pd.read_csv(path, sep=sep, dtype=object, encoding="utf-8-sig", skipinitialspace=True)
    except UnicodeDecodeError:
        df = pd.read_csv(path, sep=sep, dtype=object, encoding="cp1252", skipinitialspace=True)
    return text_cells(df)


def text_cells(df: pd.DataFrame) -> pd.DataFrame:
    """Every column as Python objects with ``None`` for a missing cell, whatever the pandas version.

    pandas 2 reads text as ``object`` with ``NaN`` holes, pandas 3 as its ``str`` dtype with ``NaN``;
    code that asks ``value is None`` (or ``dtype == object``) then behaves differently. Reading through
    this one function makes a missing cell ``None`` everywhere.

    >>> text_cells(pd.DataFrame({"a": ["x", float("nan")]}))["a"].tolist()
    ['x', None]
    """
    out = df.astype(object)
    return out.where(out.notna(), None)


def read_manifest(path) -> pd.DataFrame:
    """Read a manifest CSV or Parquet file as written (no row is dropped or judged here).

    Text columns stay text (``patient_id`` "00123" keeps its zeros); a numeric column whose cells
    all parse becomes float, otherwise it is kept as text so :func:`validate_manifest` can name
    the bad cell. Raises :class:`~elvmass.errors.ManifestError` when the file cannot be read.

    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "m.csv"
    >>> _ = p.write_text("patient_id,lvm_g\\n007,151.5\\n")
    >>> df = read_manifest(p)
    >>> df.patient_id[0], float(df.lvm_g[0])
    ('007', 151.5)
    """
    path = Path(path)
    if not path.is_file():
        raise ManifestError(f"{path}: manifest file not found")
    try:
        if _is_parquet(path):
            df = pd.read_parquet(path)
        else:
            df = _read_text_table(path)
    except Exception as exc:  # pandas/pyarrow raise many types for corrupt files
        raise ManifestError(f"{path}: cannot read the manifest ({type(exc).__name__}: {exc})") from exc
    df.columns = [str(c).strip() for c in df.columns]
    for col in df.columns:
        spec = SCHEMA_BY_NAME.get(col)
        if spec is not None and spec.kind == "number" and not pd.api.types.is_numeric_dtype(df[col]):
            parsed = pd.to_numeric(df[col].str.strip() if hasattr(df[col], "str") else df[col], errors="coerce")
            nonempty = df[col].notna() & (df[col].astype(str).str.strip() != "")
            if not (parsed.isna() & nonempty).any():
                df[col] = parsed.astype(float)
        elif col in _TEXT_COLUMNS and not pd.api.types.is_datetime64_any_dtype(df[col]):
            df[col] = pd.Series([None if _is_missing(v) else str(v) for v in df[col]], index=df.index, dtype=object)
    return df


def _for_output(df: pd.DataFrame, *, datetimes_as_text: bool) -> pd.DataFrame:
    out = df.copy()
    for col in ("ecg_datetime", "imaging_datetime"):
        if col in out.columns and pd.api.types.is_datetime64_any_dtype(out[col]):
            if datetimes_as_text:
                out[col] = out[col].dt.strftime("%Y-%m-%dT%H:%M:%S").where(out[col].notna(), None)
    front = [c for c in MANIFEST_COLUMNS if c in out.columns]
    return out[front + [c for c in out.columns if c not in front]]


def write_manifest(df: pd.DataFrame, path, *, relative_paths: bool = False) -> Path:
    """Write a manifest atomically as CSV, or Parquet when the name ends in ``.parquet``/``.pq``.

    Schema columns come first in schema order; date-times are written as ISO 8601 text in CSV.
    With ``relative_paths=True`` each ``ecg_path`` is rewritten relative to the manifest's folder
    (so the manifest and the ECGs can be moved together); paths in ``df`` must then be absolute or
    relative to the current directory (as :func:`build_cohort` and :func:`load_manifest` give them).
    """
    path = Path(path)
    out = df.copy()
    if relative_paths and "ecg_path" in out.columns:
        base = path.resolve().parent
        out["ecg_path"] = [
            v if _is_missing(v) else os.path.relpath(Path(str(v)).resolve(), base) for v in out["ecg_path"]
        ]
    if _is_parquet(path):
        out = _for_output(out, datetimes_as_text=False)
        return atomic_write(path, lambda tmp: out.to_parquet(tmp, index=False))
    out = _for_output(out, datetimes_as_text=True)
    return atomic_write(path, lambda tmp: out.to_csv(tmp, index=False))


def resolve_ecg_path(ecg_path: str, base_dir=None) -> Path:
    """The file a manifest's ``ecg_path`` names: relative paths are taken from ``base_dir``."""
    p = path_from_text(str(ecg_path).strip()).expanduser()
    if not p.is_absolute() and base_dir is not None:
        p = Path(base_dir) / p
    return p


def _ecg_file_exists(p: Path) -> bool:
    # a WFDB record may be named without its extension
    return p.is_file() or p.with_name(p.name + ".hea").is_file()


def normalize_sex(value) -> tuple[str | None, str | None]:
    """``(sex, problem)``: 'M'/'F' for M/F/male/female (any case), else None and why.

    >>> normalize_sex(" Female "), normalize_sex(1)[0]
    (('F', None), None)
    """
    if _is_missing(value):
        return None, "sex is missing"
    if isinstance(value, (bool, int, float, np.number)) or re.fullmatch(r"\s*[-+]?\d+(\.\d*)?\s*", str(value)):
        return None, (f"sex {value!r} is a number, which is ambiguous (PTB-XL codes 0 = male, other data sets "
                      f"0 = female); write M or F")
    word = str(value).strip().lower()
    if word in _SEX_WORDS:
        return _SEX_WORDS[word], None
    return None, f"unknown sex {str(value).strip()!r} (write M or F)"


def normalize_lvm_source(value) -> tuple[str | None, str | None]:
    """``(source, problem)``: 'ct', 'mr' or 'echo' (aliases mri/cmr -> mr, tte -> echo)."""
    if _is_missing(value):
        return None, "lvm_source is missing"
    word = str(value).strip().lower()
    if word in _SOURCE_WORDS:
        return _SOURCE_WORDS[word], None
    return None, f"unknown lvm_source {str(value).strip()!r} (use ct, mr or echo)"


__all__ = ['ColumnSpec', 'DERIVED_COLUMNS', 'DEVICE_MEASUREMENT_COLUMNS', 'IMAGING_OPTIONAL_COLUMNS', 'IMAGING_REQUIRED_COLUMNS', 'MANIFEST_COLUMNS', 'MANIFEST_SCHEMA', 'REQUIRED_COLUMNS', 'SCHEMA_BY_NAME', 'read_manifest', 'resolve_ecg_path', 'schema_markdown', 'text_cells', 'unit_hint', 'UNIT_MIXUPS', 'write_manifest', 'normalize_lvm_source', 'normalize_sex']
