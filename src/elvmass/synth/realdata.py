"""The real ECGs the generator is fitted to and judged against, and how they are split.

Two public sets (read-only, from ``../shared/data``; never copied into the project except as the
derived beat library, see ``src/elvmass/data/ATTRIBUTION.md``):

- PTB-XL v1.0.3, records 1-200 (Wagner et al., Sci Data 2020; CC-BY-4.0), 500 Hz WFDB;
- LUDB records 1-120 (Kalyakulina et al., IEEE Access 2020; ODC-By 1.0), 500 Hz WFDB.

Split, fixed and documented so the fit is never judged on the records it was fitted to:

=========  =====================================================  ======================================
part       PTB-XL                                                 LUDB
=========  =====================================================  ======================================
fit        ``strat_fold`` 1-8                                     records 1-90
holdout    ``strat_fold`` 9-10 (the PTB-XL authors' validation    records 91-120
           and test folds)
=========  =====================================================  ======================================

Both parts keep only what ``elvmass cohort build`` would keep from a synthetic export: sinus
rhythm (PTB-XL statements SR, SBRAD, STACH, SARRH; LUDB "Sinus ..." rhythms), no complete bundle
branch block, no pacing, no atrial fibrillation or flutter.

    >>> recs = real_records(part="holdout")          # doctest: +SKIP
    >>> sorted({r.source for r in recs})             # doctest: +SKIP
    ['ludb', 'ptbxl']
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

#: Default location of the shared real data, relative to the repository root.
DEFAULT_SHARED = Path(__file__).resolve().parents[3].parent / "shared" / "data"

_PTBXL_SINUS = {"SR", "SBRAD", "STACH", "SARRH"}
_PTBXL_EXCLUDE = {"AFIB", "AFLT", "CLBBB", "CRBBB", "PACE", "WPW", "ILBBB", "SVTAC", "PSVT"}


@dataclass(frozen=True)
class RealRecord:
    """One real ECG file with the demographics its database lists."""

    source: str  # 'ptbxl' or 'ludb'
    record_id: int
    path: Path  # WFDB record path without extension
    sex: str | None
    age_years: float | None
    part: str  # 'fit' or 'holdout'
    lvh_statement: bool  # PTB-XL 'LVH' statement (cardiologist's reading); LUDB hypertrophy column


def _ptbxl(shared: Path) -> list[RealRecord]:
    db = pd.read_csv(shared / "ptbxl-sample" / "ptbxl_database.csv")
    out = []
    for row in db.itertuples():
        codes = set(ast.literal_eval(row.scp_codes))
        paced = isinstance(row.pacemaker, str) and row.pacemaker.strip() != ""
        if not (codes & _PTBXL_SINUS) or codes & _PTBXL_EXCLUDE or paced:
            continue
        out.append(
            RealRecord(
                source="ptbxl",
                record_id=int(row.ecg_id),
                path=shared / "ptbxl-sample" / row.filename_hr,
                sex="M" if int(row.sex) == 0 else "F",
                age_years=float(row.age) if pd.notna(row.age) and row.age < 120 else None,
                part="holdout" if int(row.strat_fold) >= 9 else "fit",
                lvh_statement="LVH" in codes,
            )
        )
    return out


def _ludb(shared: Path) -> list[RealRecord]:
    db = pd.read_csv(shared / "ludb" / "ludb.csv", dtype=str)
    out = []
    for _, row in db.iterrows():
        get = lambda c: str(row.get(c, "") or "").strip().lower()  # noqa: E731
        rid = int(get("ID"))
        rhythm, cond, pacing = get("Rhythms"), get("Conduction abnormalities"), get("Cardiac pacing")
        if not rhythm.startswith("sinus") or "complete" in cond.replace("incomplete", "") or pacing not in ("", "nan"):
            continue
        try:
            age = float(get("Age").split()[0])
        except (ValueError, IndexError):
            age = None
        out.append(
            RealRecord(
                source="ludb",
                record_id=rid,
                path=shared / "ludb" / "data" / str(rid),
                sex={"m": "M", "f": "F"}.get(get("Sex")[:1]),
                age_years=age,
                part="holdout" if rid > 90 else "fit",
                lvh_statement="left ventricular hypertrophy" in get("Hypertrophies"),
            )
        )
    return out


def real_records(shared=None, *, part: str | None = None) -> list[RealRecord]:
    """The eligible real records of PTB-XL and LUDB (``part`` 'fit', 'holdout' or None for both)."""
    shared = Path(shared) if shared is not None else DEFAULT_SHARED
    recs = _ptbxl(shared) + _ludb(shared)
    if part is not None:
        if part not in ("fit", "holdout"):
            raise ValueError(f"part must be 'fit', 'holdout' or None, got {part!r}")
        recs = [r for r in recs if r.part == part]
    return recs


def read_real(rec: RealRecord):
    """Read one real record as an ECGRecord with the database's sex and age filled in."""
    import dataclasses

    from elvmass.io import read_ecg

    ecg = read_ecg(str(rec.path) + ".hea")
    pat = dataclasses.replace(ecg.patient, sex=rec.sex, age_years=rec.age_years)
    return dataclasses.replace(ecg, patient=pat)


__all__ = ["DEFAULT_SHARED", "RealRecord", "read_real", "real_records"]
