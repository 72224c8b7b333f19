"""The cohort manifest: one row per ECG–LVM pair, its validation, derived columns, and building it from exports.

One concept per module: :mod:`~elvmass.cohort.schema` (columns, reading and writing),
:mod:`~elvmass.cohort.validation`, :mod:`~elvmass.cohort.body_size` (BSA, LVMI, LVH),
:mod:`~elvmass.cohort.device` (the ECG machine's measurements), :mod:`~elvmass.cohort.exclusions` and
:mod:`~elvmass.cohort.build` (pairing exports); everything is importable from ``elvmass.cohort``.

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

from elvmass.cohort.body_size import *  # noqa: F401,F403
from elvmass.cohort.body_size import __all__ as _a2
from elvmass.cohort.build import *  # noqa: F401,F403
from elvmass.cohort.build import __all__ as _a6
from elvmass.cohort.device import *  # noqa: F401,F403
from elvmass.cohort.device import __all__ as _a3
from elvmass.cohort.device import _in_range  # noqa: F401
from elvmass.cohort.exclusions import *  # noqa: F401,F403
from elvmass.cohort.exclusions import EXCLUSION_BY_KEY  # noqa: F401
from elvmass.cohort.exclusions import __all__ as _a4
from elvmass.cohort.schema import *  # noqa: F401,F403
from elvmass.cohort.schema import (  # noqa: F401  (private helpers other layers use)
    SCHEMA_BY_NAME,
    _ecg_file_exists,
    _fmt_num,
    _is_missing,
    _read_text_table,
    text_cells,
)
from elvmass.cohort.schema import __all__ as _a1
from elvmass.cohort.validation import *  # noqa: F401,F403
from elvmass.cohort.validation import __all__ as _a5

__all__ = sorted({*_a1, *_a2, *_a3, *_a4, *_a5, *_a6})
