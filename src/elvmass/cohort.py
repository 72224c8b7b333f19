"""The cohort manifest: one row per ECG–LVM pair, its validation, derived columns, and building it from exports.

A manifest is a CSV (or Parquet) table with these columns (units in the names; ranges are the
plausibility limits :func:`validate_manifest` enforces; see also ``docs/manifest.md``):

=================  ========  ============  ===========================================================
column             required  unit / type   allowed values
=================  ========  ============  ===========================================================
patient_id         yes       text          non-empty; the hospital's patient ID (GE MUSE ``PatientID``)
ecg_path           yes       path          the ECG file; relative paths are resolved against the manifest's folder
ecg_datetime       no        ISO 8601      ``YYYY-MM-DD[THH:MM[:SS]]`` ECG acquisition time
lvm_g              yes       grams         30 – 600
lvm_source         yes       text          ``ct``, ``mr`` or ``echo`` (also ``mri``/``cmr`` -> mr, ``tte`` -> echo)
imaging_datetime   no        ISO 8601      date/time of the CT, MR or echo study
sex                yes       text          ``M``/``F`` or ``male``/``female`` (any case); numbers are rejected
age_years          yes       years         18 – 110
height_cm          yes       cm            120 – 220
weight_kg          yes       kg            30 – 250
qrs_ms             no        ms            40 – 300; empty = take the ECG machine's measurement
p_axis_deg         no        degrees       -180 – 360; empty = take the ECG machine's measurement
r_axis_deg         no        degrees       -180 – 360; empty = take the ECG machine's measurement
t_axis_deg         no        degrees       -180 – 360; empty = take the ECG machine's measurement
=================  ========  ============  ===========================================================

Sex is never accepted as a number: PTB-XL codes 0 = male, other data sets 0 = female, so a 0/1
column is ambiguous and must be rewritten as M/F. Extra columns are kept untouched.

Derived columns (:func:`add_derived_columns`): ``bmi`` (kg/m²), ``bsa_m2`` (Mosteller by default,
DuBois selectable), ``lvmi_g_m2`` = lvm_g / bsa_m2, and ``lvh`` = LVMI above the sex-specific cut-off
(default > 72 g/m² men, > 55 g/m² women, :class:`LVHCutoffs`; exactly at the cut-off is not LVH).

>>> import pandas as pd
>>> df = pd.DataFrame({"patient_id": ["p1"], "ecg_path": ["a.xml"], "lvm_g": [150.0], "lvm_source": ["MR"],
...                    "sex": ["female"], "age_years": [60], "height_cm": [170.0], "weight_kg": [70.0]})
>>> checked = validate_manifest(df, check_files=False)
>>> checked.problems
[]
>>> out = add_derived_columns(checked.valid)
>>> round(float(out.bsa_m2[0]), 3), round(float(out.lvmi_g_m2[0]), 1), bool(out.lvh[0])
(1.818, 82.5, True)

Building a cohort from exports (:func:`build_cohort`, the data flow of Pan et al. 2025): every imaging
LVM is paired with the same patient's ECGs taken within ±``window_days``; ECGs showing a paced rhythm,
bundle branch block, atrial fibrillation/flutter (device statements, or device QRS ≥ 120 ms) or whose
patient's sex is unknown are excluded (:data:`EXCLUSION_RULES`); exactly one ECG, the closest in time,
is kept per LVM. A flow table counts what was kept and excluded at every step and why.
Patients are matched on the ECG file's patient ID (``record.patient.patient_id``; the ``PatientID``
of a GE MUSE export) against the imaging CSV's ``patient_id``, compared as trimmed text.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from elvmass.atomic import atomic_write
from elvmass.errors import ECGReadError, ManifestError, path_from_text, path_text
from elvmass.record import ECGRecord

# --------------------------------------------------------------------------------------------------
# schema
# --------------------------------------------------------------------------------------------------


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
    ColumnSpec("lvm_g", "number", True, "g", 30, 600, "grams of LV mass, not LVMI in g/m²",
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


def schema_markdown() -> str:
    """The manifest schema as a Markdown table (the table in ``docs/manifest.md`` is this text)."""
    lines = ["| column | required | unit | allowed range | meaning |", "|---|---|---|---|---|"]
    for s in MANIFEST_SCHEMA:
        lines.append(f"| `{s.name}` | {'yes' if s.required else 'no'} | {s.unit} | {s.range_text()} | {s.description} |")
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------------
# reading and writing
# --------------------------------------------------------------------------------------------------


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


# --------------------------------------------------------------------------------------------------
# validation
# --------------------------------------------------------------------------------------------------


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
        return None, (f"{spec.name} {_fmt_num(x)} is outside {spec.range_text()} {spec.unit}"
                      + (f" (expected {spec.hint})" if spec.hint else ""))
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


# --------------------------------------------------------------------------------------------------
# derived columns
# --------------------------------------------------------------------------------------------------

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


def load_manifest(path, *, check_files: bool = True, on_problem: str = "raise", bsa_formula: str = "mosteller",
                  cutoffs: LVHCutoffs = LVHCutoffs(), fill_from_ecg: bool = False) -> pd.DataFrame:
    """Read, validate and derive in one call: what an analysis wants from a manifest file.

    ``ecg_path`` comes back absolute. ``on_problem="raise"`` raises :class:`ManifestError` listing
    every bad row; ``"drop"`` keeps only the valid rows. ``fill_from_ecg`` fills empty QRS/axis
    cells from each file's device measurements (:func:`fill_device_measurements`).
    """
    if on_problem not in ("raise", "drop"):
        raise ValueError("on_problem must be 'raise' or 'drop'")
    path = Path(path)
    base = path.resolve().parent
    df = read_manifest(path)
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


# --------------------------------------------------------------------------------------------------
# device measurements
# --------------------------------------------------------------------------------------------------


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


# --------------------------------------------------------------------------------------------------
# exclusion rules
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ExclusionRule:
    """One reason to exclude an ECG from the cohort.

    ``kind`` is "statement" (a case-insensitive regular expression matching one of the device's
    interpretation statements), "qrs" (device QRS duration ≥ ``min_qrs_ms``) or "sex".
    """

    key: str
    label: str
    kind: str
    patterns: tuple[str, ...] = ()
    min_qrs_ms: float | None = None
    note: str = ""


#: The exclusions applied by :func:`build_cohort`, in the order they are tested (an ECG is counted
#: under the first rule it meets). The flow table and ``docs/manifest.md`` are built from this.
EXCLUSION_RULES: tuple[ExclusionRule, ...] = (
    ExclusionRule("paced", "paced rhythm", "statement",
                  (r"\bpac(?:ed|ing|emaker)\b", r"\bpace\b"),
                  note="paced QRS complexes do not reflect LV mass"),
    ExclusionRule("lbbb", "left bundle branch block", "statement",
                  (r"(?<!incomplete )left bundle[- ]branch block", r"\bc?lbbb\b"),
                  note="incomplete LBBB is not excluded by this rule"),
    ExclusionRule("rbbb", "right bundle branch block", "statement",
                  (r"(?<!incomplete )right bundle[- ]branch block", r"\bc?rbbb\b"),
                  note="incomplete RBBB (QRS < 120 ms) is kept"),
    ExclusionRule("bbb", "bundle branch block (side not stated)", "statement",
                  (r"(?<!left )(?<!right )(?<!incomplete )bundle[- ]branch block", r"\bbbb\b",
                   r"\b(?:bi|tri)fascicular block\b"),
                  note="includes bi- and trifascicular block"),
    ExclusionRule("wide_qrs", "wide QRS ≥ 120 ms (possible bundle branch block)", "qrs", min_qrs_ms=120.0,
                  note="device QRS duration; catches conduction delay the statements do not name"),
    ExclusionRule("afib", "atrial fibrillation", "statement",
                  (r"atrial fibrillation", r"\ba-?fib\b"),
                  note="no P waves; irregular beats"),
    ExclusionRule("aflutter", "atrial flutter", "statement",
                  (r"atrial flutter", r"\baflt\b", r"\ba-?flutter\b"),
                  note="excluded with AF: flutter waves replace P waves, so P-wave features are meaningless"),
    ExclusionRule("unknown_sex", "unknown sex", "sex",
                  note="neither the imaging CSV nor the ECG file gives M or F"),
    ExclusionRule("sex_conflict", "sex differs between imaging and ECG file", "sex",
                  note="the two records may not be the same person"),
)
EXCLUSION_BY_KEY: dict[str, ExclusionRule] = {r.key: r for r in EXCLUSION_RULES}
_COMPILED = {r.key: [re.compile(p, re.IGNORECASE) for p in r.patterns] for r in EXCLUSION_RULES}
# MUSE serial-comparison wording: "Sinus rhythm has replaced Atrial fibrillation" = now sinus.
_NO_LONGER = re.compile(r"no longer (?:present|evident|seen)|\bresolved\b", re.IGNORECASE)
_REPLACED = re.compile(r"\bha(?:s|ve) replaced\b", re.IGNORECASE)


def current_statement_text(statement: str) -> str:
    """The part of a statement that describes *this* ECG (drops serial-comparison history).

    >>> current_statement_text("Sinus rhythm has replaced Atrial fibrillation")
    'Sinus rhythm'
    >>> current_statement_text("Atrial fibrillation is no longer present")
    ''
    """
    text = str(statement)
    if _NO_LONGER.search(text):
        return ""
    m = _REPLACED.search(text)
    if m:
        text = text[: m.start()]
    return text.strip()


def classify_exclusion(statements: Iterable[str] | str | None, qrs_ms=None, sex=None) -> tuple[str, str] | None:
    """The first :data:`EXCLUSION_RULES` rule an ECG meets as ``(key, evidence)``, or None.

    Hedged statements ("possible", "consider") still exclude: the cohort is meant to be clean.

    >>> classify_exclusion(["Sinus rhythm", "Left bundle branch block"], 150, "M")
    ('lbbb', "statement 'Left bundle branch block'")
    >>> classify_exclusion(["Incomplete right bundle branch block"], 100, "F") is None
    True
    """
    if statements is None:
        statements = ()
    elif isinstance(statements, str):
        statements = [s for s in statements.split("\n")]
    current = [(s, current_statement_text(s)) for s in statements if not _is_missing(s)]
    q = _in_range("qrs_ms", qrs_ms)
    for rule in EXCLUSION_RULES:
        if rule.kind == "statement":
            for original, text in current:
                if text and any(rx.search(text) for rx in _COMPILED[rule.key]):
                    return rule.key, f"statement {original.strip()!r}"
        elif rule.kind == "qrs":
            if q is not None and q >= rule.min_qrs_ms:
                return rule.key, f"device QRS {_fmt_num(q)} ms"
        elif rule.key == "unknown_sex":
            if sex is None or _is_missing(sex) or sex == "?":
                return rule.key, "no M/F in imaging CSV or ECG file"
        elif rule.key == "sex_conflict":
            if isinstance(sex, str) and sex.startswith("conflict"):
                return rule.key, sex
    return None


def exclusion_rules_markdown() -> str:
    """The exclusion rules as a Markdown table (the table in ``docs/manifest.md`` is this text)."""
    lines = ["| order | key | excluded when | note |", "|---|---|---|---|"]
    for i, r in enumerate(EXCLUSION_RULES, 1):
        if r.kind == "statement":
            when = "a device statement matches " + ", ".join(f"`{p}`" for p in r.patterns)
        elif r.kind == "qrs":
            when = f"device QRS duration ≥ {_fmt_num(r.min_qrs_ms)} ms"
        else:
            when = r.label
        lines.append(f"| {i} | `{r.key}` | {when} | {r.note} |")
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------------
# building a cohort
# --------------------------------------------------------------------------------------------------

#: Columns of the ECG metadata table that :func:`pair_ecgs_with_imaging` works on.
ECG_META_COLUMNS: tuple[str, ...] = ("ecg_path", "patient_id", "ecg_datetime", "sex", "age_years", "height_cm",
                                     "weight_kg", "qrs_ms", "p_axis_deg", "r_axis_deg", "t_axis_deg", "statements")
FLOW_COLUMNS: tuple[str, ...] = ("step", "unit", "n_in", "n_excluded", "n_out", "reason")
EXCLUDED_COLUMNS: tuple[str, ...] = ("step", "unit", "patient_id", "ecg_path", "imaging_row", "reason")


@dataclass(frozen=True)
class CohortBuild:
    """The manifest built from exports, the flow table (counts per step) and every excluded item."""

    manifest: pd.DataFrame
    flow: pd.DataFrame
    excluded: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=list(EXCLUDED_COLUMNS)))


def ecg_metadata(record: ECGRecord, path=None) -> dict:
    """The metadata row of one ECG (everything pairing and exclusion need; no waveform)."""
    p = record.patient
    m = record.measurements
    acquired = record.acquired_at
    ts = None
    if acquired is not None:
        ts = pd.Timestamp(acquired)
        if ts.tzinfo is not None:
            ts = ts.tz_convert("UTC").tz_localize(None)
    pid = None if _is_missing(p.patient_id) else str(p.patient_id).strip()
    row = {
        "ecg_path": path_text(path if path is not None else record.source_path),
        "patient_id": pid,
        "ecg_datetime": ts,
        "sex": p.sex,
        "age_years": p.age_years,
        "height_cm": p.height_cm,
        "weight_kg": p.weight_kg,
        "statements": tuple(record.statements),
    }
    for col in DEVICE_MEASUREMENT_COLUMNS:
        row[col] = _in_range(col, getattr(m, col, None))
    return row


def ecg_metadata_table(records: Iterable[ECGRecord]) -> pd.DataFrame:
    """:func:`ecg_metadata` of many records as a DataFrame with :data:`ECG_META_COLUMNS`."""
    rows = [ecg_metadata(r) for r in records]
    return pd.DataFrame(rows, columns=list(ECG_META_COLUMNS))


def read_imaging_csv(path) -> pd.DataFrame:
    """Read the imaging export (``patient_id, imaging_datetime, lvm_g, lvm_source`` required;
    ``height_cm, weight_kg, sex, age_years`` optional) as text; rows are judged when pairing."""
    path = Path(path)
    if not path.is_file():
        raise ManifestError(f"{path}: imaging CSV not found")
    try:
        df = _read_text_table(path)
    except Exception as exc:
        raise ManifestError(f"{path}: cannot read the imaging CSV ({type(exc).__name__}: {exc})") from exc
    df.columns = [str(c).strip() for c in df.columns]
    _check_columns(df, IMAGING_REQUIRED_COLUMNS, f"imaging CSV {path}")
    return df


class _Flow:
    def __init__(self) -> None:
        self.rows: list[dict] = []
        self.excluded: list[dict] = []

    def step(self, step: str, unit: str, n_in: int, excluded: list[dict], reason: str) -> int:
        n_ex = len(excluded)
        self.rows.append({"step": step, "unit": unit, "n_in": n_in, "n_excluded": n_ex, "n_out": n_in - n_ex,
                          "reason": reason})
        for e in excluded:
            self.excluded.append({"step": step, "unit": unit, "patient_id": e.get("patient_id"),
                                  "ecg_path": e.get("ecg_path"), "imaging_row": e.get("imaging_row"),
                                  "reason": e.get("reason", reason)})
        return n_in - n_ex

    def frames(self) -> tuple[pd.DataFrame, pd.DataFrame]:
        flow = pd.DataFrame(self.rows, columns=list(FLOW_COLUMNS))
        ex = pd.DataFrame(self.excluded, columns=list(EXCLUDED_COLUMNS))
        ex["imaging_row"] = ex["imaging_row"].astype("Int64")
        return flow, ex


def _first_known(*values):
    for v in values:
        if not _is_missing(v):
            return v
    return None


def _flag_repeated_imaging_studies(img: pd.DataFrame, problems: list[list[str]]) -> None:
    """One imaging study must give one LVM: among the valid rows with the same patient, study time and
    modality, exact repeats (an export listing a study twice) are dropped after the first, and rows that
    disagree on the mass are all dropped (which one is right cannot be told)."""
    studies: dict[tuple, list[int]] = {}
    for i, key in enumerate(zip(img["patient_id"], img["imaging_datetime"], img["lvm_source"])):
        if not problems[i]:
            studies.setdefault(key, []).append(i)
    for rows in studies.values():
        if len(rows) < 2:
            continue
        masses = [float(img.at[i, "lvm_g"]) for i in rows]
        if len(set(masses)) == 1:
            for i in rows[1:]:
                problems[i].append(f"duplicate of imaging row {rows[0]} (same patient, study time, modality and LVM)")
        else:
            listed = ", ".join(map(str, rows))
            grams = ", ".join(_fmt_num(m) for m in masses)
            for i in rows:
                problems[i].append(f"imaging rows {listed} give different lvm_g for the same study ({grams} g)")


def pair_ecgs_with_imaging(ecgs: pd.DataFrame, imaging: pd.DataFrame, *, window_days: float = 183,
                           unreadable: Sequence[tuple[str, str]] = ()) -> CohortBuild:
    """Pair imaging LVMs with ECGs, apply the exclusions and count every step (pure, no files).

    ``ecgs`` has :data:`ECG_META_COLUMNS` (see :func:`ecg_metadata_table`), ``imaging`` the
    imaging CSV columns as text or numbers, ``unreadable`` the ``(path, reason)`` of ECG files
    that could not be read (they are counted and listed in the flow's first ECG step).

    An imaging study listed twice counts once; rows giving one study two different masses are
    excluded. Pairing: an ECG is a candidate for an imaging row of the same patient when
    |ecg_datetime - imaging_datetime| ≤ ``window_days`` days. Among all candidate pairs the closest
    in time are taken first, so each imaging row gets the nearest eligible ECG and no ECG is used
    twice (ties broken by imaging row, then ECG path). Sex comes from the imaging CSV, else the
    ECG file; height and weight from the imaging CSV, else the ECG file; age from the ECG file,
    else the imaging CSV; QRS and axes from the ECG's device measurements.
    """
    if not (isinstance(window_days, (int, float)) and math.isfinite(window_days) and window_days >= 0):
        raise ValueError(f"window_days must be a non-negative number, got {window_days!r}")
    _check_columns(imaging, IMAGING_REQUIRED_COLUMNS, "imaging table")
    missing_meta = [c for c in ECG_META_COLUMNS if c not in ecgs.columns]
    if missing_meta:
        raise ValueError(f"ECG metadata table lacks column(s) {', '.join(missing_meta)}")
    flow = _Flow()
    win = pd.Timedelta(days=float(window_days))
    wtxt = f"±{_fmt_num(float(window_days))} days"

    # 1. imaging rows
    imaging = imaging.reset_index(drop=True)
    img_specs = [SCHEMA_BY_NAME[c] for c in IMAGING_REQUIRED_COLUMNS] + [
        SCHEMA_BY_NAME[c] for c in IMAGING_OPTIONAL_COLUMNS]
    img_specs = [ColumnSpec(s.name, s.kind, s.name in IMAGING_REQUIRED_COLUMNS, s.unit, s.lo, s.hi, s.hint)
                 if s.kind != "sex" else s for s in img_specs]
    typed_img, img_problems = _validate_rows(imaging, img_specs)
    # sex is optional in the imaging CSV: a missing one falls back to the ECG file, a bad one is an error
    if "sex" in imaging.columns:
        for i, raw in enumerate(imaging["sex"].tolist()):
            if _is_missing(raw):
                img_problems[i] = [p for p in img_problems[i] if p != "sex is missing"]
    else:
        img_problems = [[p for p in probs if p != "sex is missing"] for probs in img_problems]
    _flag_repeated_imaging_studies(typed_img, img_problems)
    typed_img["imaging_row"] = range(len(typed_img))
    ex = [{"patient_id": typed_img.at[i, "patient_id"], "imaging_row": i, "reason": "; ".join(img_problems[i])}
          for i in range(len(typed_img)) if img_problems[i]]
    flow.step("imaging rows read", "imaging rows", len(typed_img), ex, "invalid imaging row")
    img = typed_img[[not p for p in img_problems]].copy()

    # imaging sex per patient
    img_sex: dict[str, set] = {}
    for pid, s in zip(img["patient_id"], img["sex"]):
        img_sex.setdefault(pid, set())
        if s is not None:
            img_sex[pid].add(s)

    # 2. ECG files read
    e = ecgs.reset_index(drop=True).copy()
    # object columns with None holes: a list holding None assigned to a column becomes NaN/NaT in
    # pandas 3 (and NaT among timestamps in pandas 2), which `is None` checks would miss
    e["patient_id"] = pd.Series([None if _is_missing(v) else str(v).strip() for v in e["patient_id"]],
                                index=e.index, dtype=object)
    e["ecg_datetime"] = pd.Series([None if _is_missing(v) else _parse_datetime(SCHEMA_BY_NAME["ecg_datetime"], v)[0]
                                   for v in e["ecg_datetime"]], index=e.index, dtype=object)
    ex = [{"ecg_path": path_text(p), "reason": f"unreadable: {why}"} for p, why in unreadable]
    flow.step("ECG files read", "ECGs", len(e) + len(unreadable), ex, "unreadable ECG file")

    # 3. patient ID and acquisition time present
    ex, keep = [], []
    for i, pid, path, when in zip(e.index, e["patient_id"], e["ecg_path"], e["ecg_datetime"]):
        why = [w for w, bad in (("no patient ID in file", _is_missing(pid)),
                                ("no acquisition date/time in file", _is_missing(when))) if bad]
        if why:
            ex.append({"patient_id": pid, "ecg_path": path, "reason": "; ".join(why)})
        else:
            keep.append(i)
    flow.step("ECGs with patient ID and acquisition time", "ECGs", len(e), ex, "patient ID or date missing in file")
    e = e.loc[keep]

    # 4. patient has imaging
    has_img = e["patient_id"].isin(set(img["patient_id"]))
    ex = [{"patient_id": r.patient_id, "ecg_path": r.ecg_path, "reason": "no valid imaging row for this patient ID"}
          for r in e[~has_img].itertuples()]
    flow.step("ECGs of a patient with imaging LVM", "ECGs", len(e), ex, "no imaging for this patient ID")
    e = e[has_img]

    # 5. within the window of one of the patient's imaging studies
    img_times: dict[str, list] = {}
    for pid, when in zip(img["patient_id"], img["imaging_datetime"]):
        img_times.setdefault(pid, []).append(when)
    nearest = []
    for r in e.itertuples():
        nearest.append(min(abs(r.ecg_datetime - t) for t in img_times[r.patient_id]))
    e = e.assign(near_gap=pd.Series(nearest, index=e.index, dtype="timedelta64[ns]"))  # typed even when empty
    inside = e["near_gap"] <= win
    ex = [{"patient_id": r.patient_id, "ecg_path": r.ecg_path,
           "reason": f"nearest imaging {r.near_gap.total_seconds() / 86400:.1f} days away (window {wtxt})"} for r in e[~inside].itertuples()]
    flow.step(f"ECGs within {wtxt} of the patient's imaging", "ECGs", len(e), ex, f"outside {wtxt}")
    e = e[inside]

    # 6.. exclusion rules
    def resolved_sex(r) -> str | None:
        s_img = img_sex.get(r.patient_id, set())
        s_ecg = normalize_sex(r.sex)[0] if not _is_missing(r.sex) else None
        if len(s_img) > 1:
            return "conflict: imaging rows give both M and F"
        if s_img and s_ecg and s_ecg not in s_img:
            return f"conflict: imaging {next(iter(s_img))}, ECG file {s_ecg}"
        return next(iter(s_img)) if s_img else s_ecg

    e = e.assign(res_sex=[resolved_sex(r) for r in e.itertuples()])
    hits = [classify_exclusion(r.statements, r.qrs_ms, r.res_sex) for r in e.itertuples()]
    e = e.assign(rule_key=[h[0] if h else None for h in hits], rule_evidence=[h[1] if h else None for h in hits])
    for rule in EXCLUSION_RULES:
        sel = e["rule_key"] == rule.key
        ex = [{"patient_id": r.patient_id, "ecg_path": r.ecg_path, "reason": f"{rule.label}: {r.rule_evidence}"}
              for r in e[sel].itertuples()]
        flow.step(f"exclude {rule.label}", "ECGs", len(e), ex, rule.label)
        e = e[~sel]

    # one ECG per LVM, closest in time (greedy over all candidate pairs, nearest first)
    img_by_pid: dict[str, list] = {}
    for ii, pid, irow_no, when in zip(img.index, img["patient_id"], img["imaging_row"], img["imaging_datetime"]):
        img_by_pid.setdefault(pid, []).append((ii, irow_no, when))
    cands = []
    for ei, pid, path, when in zip(e.index, e["patient_id"], e["ecg_path"], e["ecg_datetime"]):
        for ii, irow_no, img_when in img_by_pid.get(pid, ()):
            d = abs(when - img_when)
            if d <= win:
                cands.append((d, irow_no, path_text(path), ei, ii))
    cands.sort(key=lambda c: (c[0], c[1], c[2]))
    used_ecg, used_img, pairs = set(), set(), []
    for d, _, _, ei, ii in cands:
        if ei in used_ecg or ii in used_img:
            continue
        used_ecg.add(ei)
        used_img.add(ii)
        pairs.append((ii, ei))
    ex = [{"patient_id": pid, "ecg_path": path, "reason": "another ECG was closer in time to the imaging study"}
          for ei, pid, path in zip(e.index, e["patient_id"], e["ecg_path"]) if ei not in used_ecg]
    flow.step("one ECG per LVM (closest in time)", "ECGs", len(e), ex, "a closer ECG was kept")

    # imaging rows left without an ECG
    pids_with_file = {str(v).strip() for v in ecgs["patient_id"] if not _is_missing(v)}
    pids_eligible = set(e["patient_id"])
    ex = []
    for ii, pid, irow_no in zip(img.index, img["patient_id"], img["imaging_row"]):
        if ii in used_img:
            continue
        if pid not in pids_with_file:
            why = "no ECG file for this patient ID"
        elif pid not in pids_eligible:
            why = f"no eligible ECG within {wtxt} (all outside the window or excluded)"
        else:
            why = "the eligible ECGs were paired with another imaging study closer in time"
        ex.append({"patient_id": pid, "imaging_row": int(irow_no), "reason": why})
    flow.step(f"imaging rows with an eligible ECG within {wtxt}", "imaging rows", len(img), ex,
              "no eligible ECG in window")

    # assemble rows and validate them as a manifest
    img_rec = img.to_dict(orient="index")
    ecg_rec = e.to_dict(orient="index")
    rows = []
    for ii, ei in sorted(pairs, key=lambda p: img_rec[p[0]]["imaging_row"]):
        irow, r = img_rec[ii], ecg_rec[ei]
        rows.append({
            "patient_id": irow["patient_id"],
            "ecg_path": r["ecg_path"],
            "ecg_datetime": r["ecg_datetime"],
            "lvm_g": irow["lvm_g"],
            "lvm_source": irow["lvm_source"],
            "imaging_datetime": irow["imaging_datetime"],
            "sex": r["res_sex"],
            "age_years": _first_known(r["age_years"], irow["age_years"]),
            "height_cm": _first_known(irow["height_cm"], r["height_cm"]),
            "weight_kg": _first_known(irow["weight_kg"], r["weight_kg"]),
            **{c: r[c] for c in DEVICE_MEASUREMENT_COLUMNS},
            "_imaging_row": int(irow["imaging_row"]),
        })
    pairs_df = pd.DataFrame(rows, columns=list(MANIFEST_COLUMNS) + ["_imaging_row"])
    checked = validate_manifest(pairs_df.drop(columns="_imaging_row"), check_files=False)
    by_row: dict[int, list[str]] = {}
    for p in checked.problems:
        by_row.setdefault(p.row, []).append(p.reason)
    ex = [{"patient_id": pairs_df.at[i, "patient_id"], "ecg_path": pairs_df.at[i, "ecg_path"],
           "imaging_row": int(pairs_df.at[i, "_imaging_row"]), "reason": "; ".join(why)} for i, why in by_row.items()]
    flow.step("pairs with complete, plausible demographics", "pairs", len(pairs_df), ex,
              "age/height/weight missing or implausible")
    manifest = checked.valid.reset_index(drop=True)
    flow.step("final ECG–LVM pairs", "pairs", len(manifest), [], "pairs written to the manifest")
    flow_df, ex_df = flow.frames()
    return CohortBuild(manifest=manifest, flow=flow_df, excluded=ex_df)


def build_cohort(ecg_dir, imaging_csv, *, window_days: float = 183,
                 progress: Callable[[int, int], None] | None = None) -> CohortBuild:
    """Build a manifest from an ECG export folder and an imaging CSV (the paper's data flow).

    Reads every ECG file under ``ecg_dir`` (:func:`elvmass.io.find_ecg_files`), keeps only its
    metadata, and hands the table to :func:`pair_ecgs_with_imaging`. ``progress(i, n)`` is called
    after each file. ``ecg_path`` in the result is absolute.

    >>> build = build_cohort("exports/ecg", "exports/imaging.csv", window_days=183)  # doctest: +SKIP
    >>> build.flow[["step", "n_in", "n_excluded", "n_out"]]  # doctest: +SKIP
    """
    from elvmass.io import find_ecg_files, read_ecg

    ecg_dir = Path(ecg_dir)
    if not ecg_dir.is_dir():
        raise ManifestError(f"{ecg_dir}: ECG folder not found")
    imaging = read_imaging_csv(imaging_csv)
    paths = find_ecg_files(ecg_dir)
    rows, unreadable = [], []
    for i, p in enumerate(paths):
        try:
            rec = read_ecg(p)
        except ECGReadError as exc:
            unreadable.append((str(Path(p).resolve()), exc.problem))
        except Exception as exc:  # one odd file must not stop a whole archive; it is listed with its error
            unreadable.append((str(Path(p).resolve()), f"reader failed ({type(exc).__name__}: {exc})"))
        else:
            rows.append(ecg_metadata(rec, Path(p).resolve()))
        if progress is not None:
            progress(i + 1, len(paths))
    meta = pd.DataFrame(rows, columns=list(ECG_META_COLUMNS))
    return pair_ecgs_with_imaging(meta, imaging, window_days=window_days, unreadable=unreadable)


def flow_path_for(manifest_path) -> Path:
    """``<out stem>.flow.csv`` beside the manifest."""
    p = Path(manifest_path)
    return p.with_name(p.stem + ".flow.csv")


def excluded_path_for(manifest_path) -> Path:
    """``<out stem>.excluded.csv`` beside the manifest (every excluded item and why)."""
    p = Path(manifest_path)
    return p.with_name(p.stem + ".excluded.csv")


def write_table(df: pd.DataFrame, path) -> Path:
    """Write any table atomically as CSV."""
    return atomic_write(Path(path), lambda tmp: df.to_csv(tmp, index=False))


__all__ = [
    "BSA_FORMULAS", "CohortBuild", "ColumnSpec", "DERIVED_COLUMNS", "DEVICE_MEASUREMENT_COLUMNS", "ECG_META_COLUMNS",
    "EXCLUSION_RULES", "ExclusionRule", "IMAGING_OPTIONAL_COLUMNS", "IMAGING_REQUIRED_COLUMNS", "LVHCutoffs",
    "MANIFEST_COLUMNS", "MANIFEST_SCHEMA", "ManifestValidation", "REQUIRED_COLUMNS", "RowProblem",
    "add_derived_columns", "bsa_m2", "build_cohort", "classify_exclusion", "current_statement_text",
    "ecg_metadata", "ecg_metadata_table", "excluded_path_for", "exclusion_rules_markdown",
    "fill_device_measurements", "flow_path_for", "is_lvh", "load_manifest", "normalize_lvm_source",
    "normalize_sex", "pair_ecgs_with_imaging", "read_imaging_csv", "read_manifest", "resolve_ecg_path",
    "schema_markdown", "validate_manifest", "write_manifest", "write_table",
]
