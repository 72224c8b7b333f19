"""Building a manifest from exports: an ECG folder and an imaging CSV, paired by patient and time, with
the exclusions applied and every step counted (the flow table)."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from elvmass.atomic import atomic_write
from elvmass.cohort.device import _in_range
from elvmass.cohort.exclusions import EXCLUSION_RULES, classify_exclusion
from elvmass.cohort.schema import (
    DEVICE_MEASUREMENT_COLUMNS,
    IMAGING_OPTIONAL_COLUMNS,
    IMAGING_REQUIRED_COLUMNS,
    MANIFEST_COLUMNS,
    SCHEMA_BY_NAME,
    ColumnSpec,
    _fmt_num,
    _is_missing,
    _read_text_table,
    normalize_sex,
)
from elvmass.cohort.validation import (
    _check_columns,
    _parse_datetime,
    _validate_rows,
    validate_manifest,
)
from elvmass.errors import ECGReadError, ManifestError, path_text
from elvmass.record import ECGRecord

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
    if path.is_dir():
        raise ManifestError(f"{path}: is a folder; --imaging expects the imaging CSV file "
                            "(patient_id, imaging_datetime, lvm_g, lvm_source)")
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


def _file_metadata(p) -> tuple[str, dict | None, str | None]:
    """One ECG file: (resolved path, its metadata row, None), or (path, None, the problem)."""
    from elvmass.io import read_ecg

    path = Path(p).resolve()
    try:
        return str(path), ecg_metadata(read_ecg(p), path), None
    except ECGReadError as exc:
        return str(path), None, exc.problem
    except Exception as exc:  # one odd file must not stop a whole archive; it is listed with its error
        return str(path), None, path_text(f"reader failed ({type(exc).__name__}: {exc})")


def _read_metadata(paths, workers: int):
    """``_file_metadata`` of every path, in order; by ``workers`` processes when > 1."""
    if workers <= 1 or len(paths) < 64:
        yield from map(_file_metadata, paths)
        return
    from elvmass.process_pool import fork_pool

    with fork_pool(workers) as pool:
        yield from pool.map(_file_metadata, paths, chunksize=32)


def build_cohort(ecg_dir, imaging_csv, *, window_days: float = 183,
                 progress: Callable[[int, int], None] | None = None, workers: int = 1) -> CohortBuild:
    """Build a manifest from an ECG export folder and an imaging CSV (the paper's data flow).

    Reads every ECG file under ``ecg_dir`` (:func:`elvmass.io.find_ecg_files`), keeps only its
    metadata, and hands the table to :func:`pair_ecgs_with_imaging`. ``progress(i, n)`` is called
    after each file. ``ecg_path`` in the result is absolute. ``workers`` > 1 reads the files in that
    many processes (same result, in the same order).

    On 6 generated patients (12 synthetic MUSE files; 3 ECGs fall outside the window and 3 are not the
    closest to their CT, which leaves one ECG per patient):

    >>> import tempfile
    >>> from elvmass.synth import SynthConfig, generate_cohort
    >>> out = generate_cohort(SynthConfig(n=6, seed=0), tempfile.mkdtemp())
    >>> build = build_cohort(out.ecg_dir, out.imaging_csv, window_days=183)
    >>> flow = build.flow.set_index("step")
    >>> int(flow.loc["ECG files read", "n_out"]), int(flow.loc["ECGs within ±183 days of the patient's imaging", "n_excluded"])
    (12, 3)
    >>> int(flow.loc["one ECG per LVM (closest in time)", "n_excluded"]), len(build.manifest)
    (3, 6)
    >>> build.manifest.patient_id.is_unique, build.manifest.columns[:4].tolist()
    (True, ['patient_id', 'ecg_path', 'ecg_datetime', 'lvm_g'])
    """
    from elvmass.io import find_ecg_files

    ecg_dir = Path(ecg_dir)
    if ecg_dir.is_file():
        raise ManifestError(f"{ecg_dir}: is a file; --ecg-dir expects the folder holding the ECG files "
                            f"(for one file, give its folder {ecg_dir.parent})")
    if not ecg_dir.is_dir():
        raise ManifestError(f"{ecg_dir}: ECG folder not found")
    imaging = read_imaging_csv(imaging_csv)
    paths = find_ecg_files(ecg_dir)
    rows, unreadable = [], []
    for i, (path, meta_row, problem) in enumerate(_read_metadata(paths, workers)):
        if problem is None:
            rows.append(meta_row)
        else:
            unreadable.append((path, problem))
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


__all__ = ['CohortBuild', 'ECG_META_COLUMNS', 'EXCLUDED_COLUMNS', 'FLOW_COLUMNS', 'build_cohort', 'ecg_metadata', 'ecg_metadata_table', 'excluded_path_for', 'flow_path_for', 'pair_ecgs_with_imaging', 'read_imaging_csv', 'write_table']
