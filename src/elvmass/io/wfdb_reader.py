"""WFDB records (PhysioNet: PTB-XL, PhysioNet/CinC Challenge) read with the ``wfdb`` package.

Demographics come from the header comments when the file has them, CinC-style
(``# Age: 74``, ``# Sex: Female``, ``# Height: 170``, ``# Weight: 70``) or PTB-XL-style
(``# age: 74``, ``# sex: female``); CinC ``# Dx:`` SNOMED CT codes become statement
text. PTB-XL headers carry no comments: the dataset keeps age, sex, height, weight,
recording date and SCP statements in ``ptbxl_database.csv`` at the dataset root, which is
looked up when the record sits in the PhysioNet layout (``records500/00000/00001_hr``)::

    >>> from elvmass.io.wfdb_reader import read_wfdb_ecg
    >>> rec = read_wfdb_ecg("ptbxl/records500/00000/00136_hr")  # doctest: +SKIP
    >>> rec.patient.height_cm  # doctest: +SKIP
    167.0
"""

from __future__ import annotations

import ast
import datetime as dt
import functools
import math
import re
from pathlib import Path

import numpy as np

from elvmass.errors import ECGReadError
from elvmass.io._assemble import assemble_record, check_sampling_rate
from elvmass.record import DeviceMeasurements, ECGRecord, Patient

#: SNOMED CT codes used in the PhysioNet/CinC Challenge 2020/2021 labels -> statement text.
SNOMED_STATEMENTS: dict[str, str] = {
    "164889003": "atrial fibrillation",
    "164890007": "atrial flutter",
    "6374002": "bundle branch block",
    "426627000": "bradycardia",
    "733534002": "complete left bundle branch block",
    "713427006": "complete right bundle branch block",
    "270492004": "1st degree av block",
    "713426002": "incomplete right bundle branch block",
    "39732003": "left axis deviation",
    "445118002": "left anterior fascicular block",
    "164909002": "left bundle branch block",
    "251146004": "low qrs voltages",
    "698252002": "nonspecific intraventricular conduction disorder",
    "426783006": "sinus rhythm",
    "284470004": "premature atrial contraction",
    "10370003": "pacing rhythm",
    "365413008": "poor R wave progression",
    "427172004": "premature ventricular contractions",
    "164947007": "prolonged pr interval",
    "111975006": "prolonged qt interval",
    "164917005": "qwave abnormal",
    "47665007": "right axis deviation",
    "59118001": "right bundle branch block",
    "427393009": "sinus arrhythmia",
    "426177001": "sinus bradycardia",
    "427084000": "sinus tachycardia",
    "63593006": "supraventricular premature beats",
    "164934002": "t wave abnormal",
    "59931005": "t wave inversion",
    "17338001": "ventricular premature beats",
    "164873001": "left ventricular hypertrophy",
    "89792004": "right ventricular hypertrophy",
    "55930002": "st changes",
    "429622005": "st depression",
    "164865005": "myocardial infarction",
}

_UNIT_TO_MV = {"mv": 1.0, "uv": 1e-3, "µv": 1e-3, "μv": 1e-3, "v": 1e3, "nv": 1e-6, "": 1.0}
_PTBXL_NAME = re.compile(r"^(\d{5})_(hr|lr)$")


def wfdb_record_base(path) -> Path:
    """The record path without extension (what ``wfdb.rdrecord`` wants) for x, x.hea or x.dat."""
    path = Path(path)
    if path.suffix.lower() in (".hea", ".dat", ".mat"):
        return path.with_suffix("")
    return path


def _number_with_unit(text: str) -> tuple[float | None, str]:
    match = re.search(r"(-?\d+(?:[.,]\d+)?)\s*([A-Za-z]*)", text)
    if not match:
        return None, ""
    value = float(match.group(1).replace(",", "."))
    return (value if math.isfinite(value) else None), match.group(2).lower()


#: Header comment keys (lower case, without spaces, ``_`` or ``-``) of device measurements, as
#: :func:`elvmass.io.muse_write.write_wfdb` and GE MUSE name them -> DeviceMeasurements fields.
_MEASUREMENT_KEYS = {
    "ventricularrate": "hr_bpm", "heartrate": "hr_bpm", "hr": "hr_bpm",
    "printerval": "pr_ms", "qrsduration": "qrs_ms", "qtinterval": "qt_ms", "qtcorrected": "qtc_ms", "qtc": "qtc_ms",
    "paxis": "p_axis_deg", "raxis": "r_axis_deg", "qrsaxis": "r_axis_deg", "taxis": "t_axis_deg",
}


def parse_header_comments(comments: list[str]) -> dict:
    """Demographics, acquisition time, device measurements and statements from WFDB header comments.

    Understands CinC style (``Age``, ``Sex``, ``Height``, ``Weight``, ``Dx`` SNOMED CT codes), PTB-XL
    style (lower case) and what :func:`elvmass.io.muse_write.write_wfdb` adds (``PatientID``,
    ``AcquisitionDate`` in ISO 8601, ``QRSDuration``-style measurements, one ``Statement`` per line;
    device statements come before the Dx labels).

    >>> d = parse_header_comments(["Age: 74", "Sex: Male", "Height: 70 in", "Weight: 150 lb", "Dx: 164909002,10370003"])
    >>> d["age_years"], d["sex"], round(d["height_cm"], 1), round(d["weight_kg"], 1)
    (74.0, 'M', 177.8, 68.0)
    >>> d["statements"]
    ['left bundle branch block [SNOMED 164909002]', 'pacing rhythm [SNOMED 10370003]']
    >>> d = parse_header_comments(["<age>: 51", "<sex>: F", "<diagnoses>:"])  # LUDB
    >>> d["age_years"], d["sex"]
    (51.0, 'F')
    >>> d = parse_header_comments(["PatientID: P-7", "AcquisitionDate: 2020-03-04T09:05:07", "QRSDuration: 88"])
    >>> d["patient_id"], d["acquired_at"].isoformat(), d["measurements"]
    ('P-7', '2020-03-04T09:05:07', {'qrs_ms': 88.0})
    """
    out: dict = {"statements": [], "measurements": {}}
    device_statements: list[str] = []
    for line in comments:
        if ":" not in line:
            continue
        key, _, value = line.partition(":")
        # LUDB writes its keys in angle brackets: "#<age>: 51", "#<sex>: F"
        key = re.sub(r"[\s_\-<>]+", "", key.strip().lower().lstrip("#"))
        value = value.strip()
        if not value or value.lower() in ("nan", "unknown", "none", "n/a"):
            continue
        if key == "age":
            age, _ = _number_with_unit(value)
            out["age_years"] = age
        elif key in ("sex", "gender"):
            v = value.strip().lower()
            if v in ("m", "male", "man"):
                out["sex"] = "M"
            elif v in ("f", "female", "woman"):
                out["sex"] = "F"
        elif key in ("height", "heightcm", "height(cm)"):
            h, unit = _number_with_unit(value)
            if h is not None and h > 0:
                out["height_cm"] = h * 2.54 if unit in ("in", "inch", "inches") else h * 100 if unit == "m" else h
        elif key in ("weight", "weightkg", "weight(kg)"):
            w, unit = _number_with_unit(value)
            if w is not None and w > 0:
                out["weight_kg"] = w * 0.45359237 if unit in ("lb", "lbs", "pound", "pounds") else w
        elif key == "dx":
            for code in re.split(r"[,;\s]+", value):
                if code:
                    text = SNOMED_STATEMENTS.get(code)
                    out["statements"].append(f"{text} [SNOMED {code}]" if text else f"SNOMED CT {code}")
        elif key in ("patientid", "id"):
            out["patient_id"] = value
        elif key in ("acquisitiondate", "acquisitiondatetime", "acquiredat"):
            try:
                out["acquired_at"] = dt.datetime.fromisoformat(value)
            except ValueError:
                pass
        elif key == "statement":
            device_statements.append(value)
        elif key in _MEASUREMENT_KEYS:
            number, _ = _number_with_unit(value)
            if number is not None:
                out["measurements"][_MEASUREMENT_KEYS[key]] = number
    out["statements"] = device_statements + out["statements"]
    return out


_PTBXL_COLUMNS = ("age", "sex", "height", "weight", "patient_id", "recording_date", "scp_codes")


@functools.lru_cache(maxsize=4)
def _ptbxl_tables(database_csv: str, mtime: float):
    """PTB-XL's database as plain per-column lists plus an ecg_id -> row map, and the SCP code
    descriptions; read once per process for each (path, modification time)."""
    import pandas as pd

    db = pd.read_csv(database_csv, index_col="ecg_id")
    columns = {c: (db[c].tolist() if c in db.columns else [None] * len(db)) for c in _PTBXL_COLUMNS}
    rows = {int(ecg_id): i for i, ecg_id in enumerate(db.index.tolist())}
    scp_path = Path(database_csv).with_name("scp_statements.csv")
    descriptions: dict[str, str] = {}
    if scp_path.is_file():
        scp = pd.read_csv(scp_path, index_col=0)
        descriptions = {str(k): str(v) for k, v in scp["description"].items()}
    return rows, columns, descriptions


_DATABASE_NEAR: dict[str, str] = {}


def _ptbxl_database_near(folder: str) -> str | None:
    """``ptbxl_database.csv`` in ``folder`` or one of the two folders above it (the PhysioNet layout).
    Found locations are remembered for the process (a vanished file then fails its stat and reads as none)."""
    hit = _DATABASE_NEAR.get(folder)
    if hit is not None:
        return hit
    for parent in [Path(folder), *list(Path(folder).parents)[:2]]:
        csv = parent / "ptbxl_database.csv"
        if csv.is_file():
            if len(_DATABASE_NEAR) < 4096:
                _DATABASE_NEAR[folder] = str(csv)
            return str(csv)
    return None


def ptbxl_metadata(record_base: Path) -> dict | None:
    """Age, sex, height, weight, date and statements of a PTB-XL record from ``ptbxl_database.csv``.

    The record must be named like ``00001_hr`` and the CSV must sit in one of the
    three folders above it (the PhysioNet layout). PTB-XL codes sex as 0 = male, 1 = female.
    The table is read once per process (and again if the file changes).
    """
    match = _PTBXL_NAME.match(record_base.name)
    if not match:
        return None
    csv = _ptbxl_database_near(str(record_base.parent))
    if csv is None:
        return None
    try:
        rows, columns, descriptions = _ptbxl_tables(csv, Path(csv).stat().st_mtime)
        i = rows[int(match.group(1))]
    except (KeyError, ValueError, OSError):
        return None
    row = {c: columns[c][i] for c in _PTBXL_COLUMNS}

    def finite(x):
        try:
            x = float(x)
        except (TypeError, ValueError):
            return None
        return x if math.isfinite(x) else None

    out: dict = {}
    out["age_years"] = finite(row.get("age"))
    sex = finite(row.get("sex"))
    out["sex"] = {0.0: "M", 1.0: "F"}.get(sex) if sex is not None else None
    out["height_cm"] = finite(row.get("height"))
    out["weight_kg"] = finite(row.get("weight"))
    pid = finite(row.get("patient_id"))
    out["patient_id"] = str(int(pid)) if pid is not None else None
    try:
        out["acquired_at"] = dt.datetime.fromisoformat(str(row.get("recording_date")))
    except ValueError:
        out["acquired_at"] = None
    statements = []
    try:
        codes = ast.literal_eval(str(row.get("scp_codes")))
    except (ValueError, SyntaxError):
        codes = {}
    for code in codes:
        text = descriptions.get(code)
        statements.append(f"{text} [SCP {code}]" if text else f"SCP {code}")
    out["statements"] = statements
    return {k: v for k, v in out.items() if v is not None}


class _Header:
    """What the fast path needs from a single-segment WFDB header (same field semantics as ``wfdb``)."""

    __slots__ = ("fs", "sig_len", "names", "units", "gains", "baselines", "dat_path", "comments", "base_date", "base_time")


def _fast_header(hea: Path) -> _Header | None:
    """Parse a header with ``wfdb``'s own line patterns; None unless it is the plain case the fast reader
    handles exactly like ``wfdb.rdrecord``: one segment, every signal in one format-16 file with no skew,
    offset or extra samples per frame, a stated length that matches the file size, and named leads."""
    from wfdb.io.header import parse_header_content, rx_record, rx_signal, wfdb_strptime

    try:
        text = hea.read_text(encoding="ascii", errors="ignore")
    except OSError:
        return None
    lines, comment_lines = parse_header_content(text)
    if len(lines) < 2:
        return None
    m = rx_record.match(lines[0])
    if m is None or m["n_seg"] or not m["n_sig"] or not m["fs"] or not m["sig_len"]:
        return None
    n_sig, sig_len = int(m["n_sig"]), int(m["sig_len"])
    if n_sig < 1 or sig_len < 1 or len(lines) - 1 != n_sig:
        return None
    h = _Header()
    try:
        h.fs = float(m["fs"])
        h.base_time = wfdb_strptime(m["base_time"]) if m["base_time"] else None
        h.base_date = dt.datetime.strptime(m["base_date"], "%d/%m/%Y").date() if m["base_date"] else None
    except ValueError:
        return None
    h.sig_len = sig_len
    files, h.names, h.units, h.gains, h.baselines = set(), [], [], [], []
    for line in lines[1:]:
        s = rx_signal.match(line)
        if s is None or s["fmt"] != "16" or s["samps_per_frame"] not in ("", "1") or s["skew"] not in ("", "0"):
            return None
        if s["byte_offset"] not in ("", "0") or not s["sig_name"] or s["file_name"].startswith("~"):
            return None
        files.add(s["file_name"])
        try:
            gain = float(s["adc_gain"]) if s["adc_gain"] else 200.0
            baseline = int(s["baseline"]) if s["baseline"] else int(s["adc_zero"] or 0)
        except ValueError:
            return None
        h.gains.append(200.0 if gain == 0 else gain)
        h.baselines.append(baseline)
        h.units.append(s["units"] or "mV")
        h.names.append(s["sig_name"])
    if len(files) != 1:
        return None
    h.dat_path = hea.with_name(files.pop())
    try:
        if h.dat_path.stat().st_size != 2 * n_sig * sig_len:
            return None
    except OSError:
        return None
    h.comments = [line.strip(" \t#") for line in comment_lines]
    return h


def _fast_physical(h: _Header) -> np.ndarray:
    """(n_sig, sig_len) float64 physical signal, bit-identical to ``wfdb.rdrecord(...).p_signal.T``
    (digital -32768 is WFDB's missing-sample code for format 16 and becomes NaN)."""
    digital = np.fromfile(h.dat_path, dtype="<i2").reshape(h.sig_len, len(h.names))
    p = np.array(digital.T, dtype=np.float64, order="C")
    np.subtract(p, np.asarray(h.baselines, dtype=np.float64)[:, None], out=p)
    np.divide(p, np.asarray(h.gains, dtype=np.float64)[:, None], out=p)
    missing = digital.T == -32768
    if missing.any():
        p[missing] = np.nan
    return p


class _FastRecord:
    """The few ``wfdb.Record`` attributes :func:`read_wfdb_ecg` uses, from the fast path."""

    def __init__(self, h: _Header):
        self.fs = h.fs
        self.sig_name = h.names
        self.units = h.units
        self.comments = h.comments
        self.base_date = h.base_date
        self.base_time = h.base_time
        self.signals = _fast_physical(h)  # (leads, n)


#: Most samples (all leads together) a header may declare: 10 min of 12 leads at 1 kHz is 7.2 million.
MAX_DECLARED_SAMPLES = 50_000_000


def check_header_bounds(hea: Path, shown, max_bytes: int | None = None) -> None:
    """Refuse, before any sample is read, a header whose rate is implausible or whose declared length
    does not fit its signal files (``12 500 1000000000`` with a 120-kB ``.dat``), and signal files over
    the size limit. Lines the patterns cannot read are left to ``wfdb`` (it reports them)."""
    from wfdb.io._signal import BYTES_PER_SAMPLE
    from wfdb.io.header import parse_header_content, rx_record, rx_signal

    from elvmass.io.guard import check_file_size

    check_file_size(hea, max_bytes, shown=shown)
    try:
        text = hea.read_text(encoding="ascii", errors="ignore")
    except OSError as exc:
        raise ECGReadError(shown, f"cannot open the WFDB header ({exc.strerror or exc})") from None
    lines, _ = parse_header_content(text)
    m = rx_record.match(lines[0]) if lines else None
    if m is None:
        return
    if m["fs"]:
        check_sampling_rate(shown, m["fs"])
    n_sig = int(m["n_sig"] or 0)
    sig_len = int(m["sig_len"] or 0)
    if n_sig * sig_len > MAX_DECLARED_SAMPLES:
        raise ECGReadError(
            shown, f"refused: the header declares {sig_len} samples x {n_sig} signals, over the "
            f"{MAX_DECLARED_SAMPLES} a resting ECG could hold"
        )
    if m["n_seg"]:
        return  # a multi-segment record: each segment's header is checked by wfdb against its file
    need: dict[str, float] = {}
    for line in lines[1 : 1 + n_sig]:
        sm = rx_signal.match(line)
        if sm is None or sm["file_name"].startswith("~") or sm["fmt"] not in BYTES_PER_SAMPLE:
            return
        per_frame = BYTES_PER_SAMPLE[sm["fmt"]] * int(sm["samps_per_frame"] or 1)
        offset = int(sm["byte_offset"] or 0)
        need[sm["file_name"]] = need.get(sm["file_name"], offset) + per_frame * sig_len
    for name, n_bytes in need.items():
        dat = hea.with_name(name)
        if not dat.is_file():
            continue  # wfdb reports the missing file
        size = check_file_size(dat, max_bytes, shown=shown)
        if sig_len and n_bytes > size + 4:  # formats 212/310/311 pad to whole bytes
            raise ECGReadError(
                shown, f"the header declares {sig_len} samples per signal ({n_bytes:.0f} bytes) but {name} holds "
                f"only {size} bytes (truncated signal file, or a corrupt header)"
            )


def read_wfdb_ecg(path, *, max_bytes: int | None = None, partial_leads: bool = False) -> ECGRecord:
    """Read a WFDB record (``x``, ``x.hea`` or ``x.dat``) into the 12-lead record in mV.

    The common case (PTB-XL and most PhysioNet ECG databases: one format-16 file) is read directly with
    NumPy, giving exactly the samples ``wfdb.rdrecord`` gives at a fraction of its per-file cost; anything
    else (other formats, multi-segment records, a file that does not match its header) goes through
    ``wfdb.rdrecord`` and its error handling.
    """
    base = wfdb_record_base(path)
    shown = base.with_suffix(".hea") if base.with_suffix(".hea").exists() else Path(path)
    if not base.with_suffix(".hea").is_file():
        raise ECGReadError(path, "WFDB header (.hea) not found")
    check_header_bounds(base.with_suffix(".hea"), shown, max_bytes)
    header = _fast_header(base.with_suffix(".hea"))
    if header is not None:
        try:
            rec = _FastRecord(header)
        except (OSError, ValueError):
            rec = _rdrecord(base, shown)
    else:
        rec = _rdrecord(base, shown)
    if isinstance(rec, _FastRecord):
        signals = rec.signals
    else:
        if rec.p_signal is None or rec.sig_name is None or rec.p_signal.size == 0:
            raise ECGReadError(shown, "the WFDB record holds no samples")
        signals = rec.p_signal.T
    return _record_from_wfdb(rec, signals, base, shown, partial_leads)


def _rdrecord(base: Path, shown: Path):
    import wfdb

    try:
        return wfdb.rdrecord(str(base), physical=True)
    except FileNotFoundError as exc:
        raise ECGReadError(shown, f"WFDB signal file missing ({Path(exc.filename or '').name or exc})") from None
    except ValueError as exc:
        if "reshape" in str(exc) or "buffer" in str(exc):
            raise ECGReadError(shown, "WFDB signal file is truncated or does not match its header") from None
        raise ECGReadError(shown, f"corrupt WFDB record ({' '.join(str(exc).split())[:150]})") from None
    except Exception as exc:  # noqa: BLE001 - wfdb raises many types for bad headers; one line each
        raise ECGReadError(shown, f"corrupt WFDB header ({type(exc).__name__}: {' '.join(str(exc).split())[:150]})") from None



def _record_from_wfdb(rec, signals: np.ndarray, base: Path, shown: Path, partial_leads: bool = False) -> ECGRecord:
    fs = check_sampling_rate(shown, rec.fs)
    pairs = []
    for i, (name, unit) in enumerate(zip(rec.sig_name, rec.units or [""] * len(rec.sig_name))):
        factor = _UNIT_TO_MV.get(str(unit or "").strip().lower())
        if factor is None:
            raise ECGReadError(shown, f"lead {name} is in {unit!r}, not a voltage unit")
        pairs.append((name, signals[i] if factor == 1.0 else signals[i] * factor))

    info = parse_header_comments(list(rec.comments or []))
    acquired_at = info.get("acquired_at")
    if rec.base_date is not None:
        acquired_at = dt.datetime.combine(rec.base_date, rec.base_time or dt.time())
    if not any(k in info for k in ("age_years", "sex", "height_cm", "weight_kg")):
        sidecar = ptbxl_metadata(base)
        if sidecar:
            sidecar_statements = sidecar.pop("statements", [])
            acquired_at = acquired_at or sidecar.pop("acquired_at", None)
            sidecar.pop("acquired_at", None)
            info = {**sidecar, **{k: v for k, v in info.items() if k != "statements"},
                    "statements": info["statements"] + sidecar_statements}
    patient = Patient(
        age_years=info.get("age_years"),
        sex=info.get("sex"),
        height_cm=info.get("height_cm"),
        weight_kg=info.get("weight_kg"),
        patient_id=info.get("patient_id"),
    )
    return assemble_record(
        shown,
        pairs,
        [fs] * len(pairs),
        source_format="wfdb",
        partial_leads=partial_leads,
        patient=patient,
        acquired_at=acquired_at,
        measurements=DeviceMeasurements(**info.get("measurements", {})),
        statements=tuple(info.get("statements", ())),
    )

