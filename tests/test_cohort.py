"""Cohort manifest: schema, validation, derived columns, exclusion rules and the pairing logic."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from elvmass.cohort import (
    EXCLUSION_RULES,
    MANIFEST_COLUMNS,
    LVHCutoffs,
    add_derived_columns,
    bsa_m2,
    classify_exclusion,
    ecg_metadata_table,
    exclusion_rules_markdown,
    fill_device_measurements,
    load_manifest,
    pair_ecgs_with_imaging,
    read_manifest,
    schema_markdown,
    validate_manifest,
    write_manifest,
)
from elvmass.errors import ManifestError
from elvmass.io import read_ecg

REPO = Path(__file__).resolve().parents[1]


def _row(**kw):
    base = {"patient_id": "P1", "ecg_path": "ecg/p1.xml", "ecg_datetime": "2021-03-01T10:00:00", "lvm_g": "150",
            "lvm_source": "mr", "imaging_datetime": "2021-03-10", "sex": "M", "age_years": "60",
            "height_cm": "170", "weight_kg": "70", "qrs_ms": "", "p_axis_deg": "", "r_axis_deg": "", "t_axis_deg": ""}
    base.update(kw)
    return base


# ---------------------------------------------------------------------------- BSA / LVMI / LVH


def test_bsa_known_values():
    assert bsa_m2(170, 70) == pytest.approx(1.8181, abs=1e-4)  # sqrt(170*70/3600)
    assert bsa_m2(170, 70, "dubois") == pytest.approx(1.8097, abs=1e-4)  # 0.007184*170^.725*70^.425
    assert bsa_m2(180, 80, "DuBois") == pytest.approx(0.007184 * 180**0.725 * 80**0.425)
    arr = bsa_m2(np.array([160.0, 190.0]), np.array([50.0, 100.0]))
    np.testing.assert_allclose(arr, [np.sqrt(160 * 50 / 3600), np.sqrt(190 * 100 / 3600)])
    with pytest.raises(ValueError, match="unknown BSA formula"):
        bsa_m2(170, 70, "haycock")
    with pytest.raises(ValueError, match="positive"):
        bsa_m2(0, 70)


def test_derived_columns_and_lvh_edges():
    bsa = bsa_m2(170, 70)
    df = pd.DataFrame({
        "sex": ["M", "M", "F", "F", "M"],
        "height_cm": [170.0] * 5, "weight_kg": [70.0] * 5,
        # exactly at the cut-off is NOT LVH; just above is
        "lvm_g": [72 * bsa, 72 * bsa + 0.01, 55 * bsa, 55 * bsa + 0.01, np.nan],
    })
    out = add_derived_columns(df)
    assert out["bmi"].iloc[0] == pytest.approx(70 / 1.7**2)
    assert out["lvmi_g_m2"].iloc[0] == pytest.approx(72.0)
    assert out["lvh"].iloc[:4].tolist() == [False, True, False, True]
    assert pd.isna(out["lvh"].iloc[4])
    # configurable cut-offs and DuBois
    out2 = add_derived_columns(df, bsa_formula="dubois", cutoffs=LVHCutoffs(male_g_m2=60, female_g_m2=50))
    assert out2["bsa_m2"].iloc[0] == pytest.approx(1.8097, abs=1e-4)
    assert out2["lvh"].iloc[:4].tolist() == [True, True, True, True]
    with pytest.raises(ValueError):
        LVHCutoffs(male_g_m2=-1)


# ---------------------------------------------------------------------------- validation


def test_validation_reports_every_bad_row_with_reasons(tmp_path):
    (tmp_path / "ecg").mkdir()
    for i in range(1, 9):
        (tmp_path / "ecg" / f"p{i}.xml").write_text("<x/>")
    (tmp_path / "ecg" / "rec1.hea").write_text("rec1 12 500 5000\n")  # WFDB record named without extension
    rows = [
        _row(),                                                    # 0 good
        _row(patient_id="P2", ecg_path="ecg/p2.xml", sex="0"),     # 1 numeric sex
        _row(patient_id="P3", ecg_path="ecg/p3.xml", height_cm="1.75", weight_kg="70 kg"),  # 2 metres + text
        _row(patient_id="P4", ecg_path="ecg/missing.xml"),         # 3 missing file
        _row(patient_id="P5", ecg_path="ecg/p5.xml", sex="unknown", lvm_source="spect"),  # 4 unknown sex + source
        _row(patient_id="P6", ecg_path="ecg/p6.xml", sex="female", lvm_source="MRI", lvm_g="15"),  # 5 lvm range
        _row(patient_id="P7", ecg_path="ecg/p7.xml", ecg_datetime="03/01/2021", age_years="300"),  # 6 date, age
        _row(patient_id="", ecg_path="ecg/p8.xml", qrs_ms="0.1"),  # 7 no id, qrs in seconds
        _row(patient_id="P9", ecg_path="ecg/rec1", sex="Female", lvm_source="echo"),  # 8 good (WFDB stem)
    ]
    df = pd.DataFrame(rows)
    res = validate_manifest(df, base_dir=tmp_path)
    assert res.n_rows == 9
    assert res.bad_rows == [1, 2, 3, 4, 5, 6, 7]
    by_row = {}
    for p in res.problems:
        by_row.setdefault(p.row, []).append(p.reason)
    assert "ambiguous" in by_row[1][0] and "write M or F" in by_row[1][0]
    assert len(by_row[2]) == 2 and "height_cm 1.75 is outside 120 – 220 cm" in by_row[2][0]
    assert "'70 kg' is not a number" in by_row[2][1]
    assert by_row[3] == [f"ECG file not found: {tmp_path / 'ecg' / 'missing.xml'}"]
    assert by_row[4] == ["unknown lvm_source 'spect' (use ct, mr or echo)", "unknown sex 'unknown' (write M or F)"]
    assert by_row[5][0].startswith("lvm_g 15 is outside 30 – 600 g")
    assert "ISO 8601" in by_row[6][0] and "age_years 300 is outside 18 – 110" in by_row[6][1]
    assert by_row[7][0] == "patient_id is missing" and by_row[7][1].startswith("qrs_ms 0.1 is outside 40 – 300 ms")
    # valid rows are typed and normalised
    v = res.valid
    assert v["patient_id"].tolist() == ["P1", "P9"]
    assert v["sex"].tolist() == ["M", "F"]
    assert v["lvm_source"].tolist() == ["mr", "echo"]
    assert v["ecg_datetime"].iloc[0] == pd.Timestamp("2021-03-01 10:00:00")
    assert v["lvm_g"].dtype == float and np.isnan(v["qrs_ms"].iloc[0])
    # without the file check the missing file is fine
    assert 3 not in validate_manifest(df, base_dir=tmp_path, check_files=False).bad_rows


def test_missing_required_columns_is_one_clear_error():
    df = pd.DataFrame([_row()]).drop(columns=["lvm_g", "sex"])
    with pytest.raises(ManifestError, match="lacks required column\\(s\\) lvm_g, sex"):
        validate_manifest(df)


def test_duplicate_pair_and_shared_ecg_are_reported():
    df = pd.DataFrame([_row(), _row(), _row(patient_id="Q"), _row(lvm_g="160", imaging_datetime="2021-04-01")])
    res = validate_manifest(df, check_files=False)
    assert [(p.row, p.reason) for p in res.problems] == [
        (1, "duplicate of row 0 (same ECG and same LVM)"),
        (2, "ecg_path is also used in row 0 for another patient (P1)"),
    ]


@pytest.mark.parametrize("name", ["m.csv", "m.parquet"])
def test_manifest_round_trip_keeps_ids_and_types(tmp_path, name):
    (tmp_path / "ecg").mkdir()
    (tmp_path / "ecg" / "p1.xml").write_text("<x/>")
    df = pd.DataFrame([_row(patient_id="000123", extra_note="kept")])
    typed = validate_manifest(df, base_dir=tmp_path).valid
    path = write_manifest(typed, tmp_path / name)
    back = read_manifest(path)
    assert list(back.columns[: len(MANIFEST_COLUMNS)]) == list(MANIFEST_COLUMNS)
    assert back["patient_id"].iloc[0] == "000123"
    assert back["extra_note"].iloc[0] == "kept"
    assert float(back["lvm_g"].iloc[0]) == 150.0
    again = validate_manifest(back, base_dir=tmp_path)
    assert again.problems == []
    assert again.valid["ecg_datetime"].iloc[0] == pd.Timestamp("2021-03-01 10:00:00")
    assert not list(tmp_path.glob(".tmp-*"))  # atomic write leaves no temp file
    loaded = load_manifest(path)
    assert Path(loaded["ecg_path"].iloc[0]) == tmp_path / "ecg" / "p1.xml"
    assert loaded["lvmi_g_m2"].iloc[0] == pytest.approx(150 / bsa_m2(170, 70))


def test_write_manifest_relative_paths(tmp_path):
    ecg = tmp_path / "exports" / "a.xml"
    ecg.parent.mkdir()
    ecg.write_text("<x/>")
    df = validate_manifest(pd.DataFrame([_row(ecg_path=str(ecg))])).valid
    out = write_manifest(df, tmp_path / "study" / "manifest.csv", relative_paths=True)
    back = read_manifest(out)
    assert back["ecg_path"].iloc[0] == str(Path("..") / "exports" / "a.xml")
    assert validate_manifest(back, base_dir=out.parent).problems == []


def test_load_manifest_raises_listing_rows(tmp_path):
    p = tmp_path / "m.csv"
    pd.DataFrame([_row(sex="1"), _row(patient_id="P2", weight_kg="400")]).to_csv(p, index=False)
    with pytest.raises(ManifestError, match="2 bad row") as info:
        load_manifest(p, check_files=False)
    assert "row 0 (patient P1)" in str(info.value) and "row 1 (patient P2)" in str(info.value)
    assert load_manifest(p, check_files=False, on_problem="drop").empty


# ---------------------------------------------------------------------------- exclusion rules


@pytest.mark.parametrize("statements,qrs,sex,expected", [
    (["Sinus rhythm", "Normal ECG"], 90, "M", None),
    (["Electronic ventricular pacemaker"], 160, "M", "paced"),
    (["Atrial-sensed ventricular-paced rhythm"], None, "F", "paced"),
    (["Sinus rhythm", "Left bundle branch block"], 150, "F", "lbbb"),
    (["CLBBB"], None, "M", "lbbb"),
    (["Right bundle-branch block", "Left anterior fascicular block"], 130, "M", "rbbb"),
    (["Incomplete right bundle branch block"], 104, "M", None),
    (["Bifascicular block"], 100, "M", "bbb"),
    (["Nonspecific intraventricular conduction delay"], 124, "M", "wide_qrs"),
    (["Atrial fibrillation with rapid ventricular response"], 90, "M", "afib"),
    (["Sinus rhythm has replaced Atrial fibrillation"], 90, "M", None),
    (["Atrial fibrillation is no longer present"], 90, "F", None),
    (["Atrial flutter with 2:1 A-V conduction"], 90, "M", "aflutter"),
    (["Premature atrial complexes (PACs)"], 90, "M", None),
    (["Sinus rhythm"], 90, None, "unknown_sex"),
    (["Sinus rhythm"], 90, "conflict: imaging F, ECG file M", "sex_conflict"),
    (["Sinus rhythm"], 999, "M", None),  # implausible device QRS (sentinel) is ignored
])
def test_classify_exclusion(statements, qrs, sex, expected):
    hit = classify_exclusion(statements, qrs, sex)
    assert (hit[0] if hit else None) == expected


def test_docs_share_the_schema_and_rules():
    doc = (REPO / "docs" / "manifest.md").read_text(encoding="utf-8")
    assert schema_markdown() in doc
    assert exclusion_rules_markdown() in doc
    assert len({r.key for r in EXCLUSION_RULES}) == len(EXCLUSION_RULES)


# ---------------------------------------------------------------------------- pairing (pure)


def _ecg(path, pid, when, statements=("Sinus rhythm",), qrs=92.0, sex="M", age=61.0, h=None, w=None):
    return {"ecg_path": path, "patient_id": pid, "ecg_datetime": pd.Timestamp(when), "sex": sex, "age_years": age,
            "height_cm": h, "weight_kg": w, "qrs_ms": qrs, "p_axis_deg": 50.0, "r_axis_deg": 30.0,
            "t_axis_deg": 40.0, "statements": tuple(statements)}


def test_pairing_flow_counts_and_choices():
    imaging = pd.DataFrame([
        {"patient_id": "A", "imaging_datetime": "2021-06-01", "lvm_g": "160", "lvm_source": "MR",
         "height_cm": "175", "weight_kg": "80", "sex": ""},
        {"patient_id": "B", "imaging_datetime": "2021-06-01", "lvm_g": "110", "lvm_source": "ct",
         "height_cm": "160", "weight_kg": "60", "sex": "F"},
        {"patient_id": "C", "imaging_datetime": "2021-06-01", "lvm_g": "130", "lvm_source": "echo",
         "height_cm": "", "weight_kg": "", "sex": "M"},
        {"patient_id": "D", "imaging_datetime": "2021-06-01", "lvm_g": "abc", "lvm_source": "mr"},  # invalid
        {"patient_id": "E", "imaging_datetime": "2021-06-01", "lvm_g": "140", "lvm_source": "mr"},  # no ECG
    ])
    ecgs = pd.DataFrame([
        _ecg("a1", "A", "2021-05-20"),                       # 12 days: kept for A
        _ecg("a2", "A", "2021-03-01"),                       # 92 days: farther
        _ecg("a3", "A", "2020-01-01"),                       # outside window
        _ecg("b1", "B", "2021-06-02", sex="F", statements=("Ventricular paced rhythm",)),
        _ecg("b2", "B", "2021-07-01", sex="F", statements=("Left bundle branch block",), qrs=150),
        _ecg("b3", "B", "2021-09-01", sex="F"),              # 92 days: the only eligible one
        _ecg("c1", "C", "2021-06-05", h=180, w=90, sex=None),  # sex from imaging, height/weight from file
        _ecg("c2", "C", "2021-06-06", sex="F"),              # sex conflict with imaging (M)
        _ecg("x1", "X", "2021-06-01"),                       # no imaging for this patient
        _ecg("n1", None, "2021-06-01"),                      # no patient id
    ])
    build = pair_ecgs_with_imaging(ecgs, imaging, window_days=183, unreadable=[("bad.xml", "not an ECG")])
    flow = build.flow.set_index("step")
    assert flow.loc["imaging rows read", ["n_in", "n_excluded", "n_out"]].tolist() == [5, 1, 4]
    assert flow.loc["ECG files read", ["n_in", "n_excluded", "n_out"]].tolist() == [11, 1, 10]
    assert flow.loc["ECGs with patient ID and acquisition time", "n_out"] == 9
    assert flow.loc["ECGs of a patient with imaging LVM", ["n_excluded", "n_out"]].tolist() == [1, 8]
    assert flow.loc["ECGs within ±183 days of the patient's imaging", ["n_excluded", "n_out"]].tolist() == [1, 7]
    assert flow.loc["exclude paced rhythm", "n_excluded"] == 1
    assert flow.loc["exclude left bundle branch block", "n_excluded"] == 1
    assert flow.loc["exclude sex differs between imaging and ECG file", "n_excluded"] == 1
    assert flow.loc["exclude atrial fibrillation", "n_excluded"] == 0
    assert flow.loc["one ECG per LVM (closest in time)", ["n_in", "n_excluded", "n_out"]].tolist() == [4, 1, 3]
    assert flow.loc["imaging rows with an eligible ECG within ±183 days", ["n_in", "n_excluded", "n_out"]].tolist() \
        == [4, 1, 3]
    assert flow.loc["final ECG–LVM pairs", "n_out"] == 3
    # chained counts: each ECG step starts where the previous one ended
    ecg_steps = build.flow[build.flow.unit == "ECGs"]
    assert (ecg_steps.n_in.iloc[1:].to_numpy() == ecg_steps.n_out.iloc[:-1].to_numpy()).all()

    m = build.manifest.set_index("patient_id")
    assert m.loc["A", "ecg_path"] == "a1" and m.loc["A", "lvm_source"] == "mr" and m.loc["A", "sex"] == "M"
    assert m.loc["B", "ecg_path"] == "b3"
    assert m.loc["C", "ecg_path"] == "c1" and m.loc["C", "sex"] == "M"
    assert (m.loc["C", "height_cm"], m.loc["C", "weight_kg"]) == (180.0, 90.0)
    assert m.loc["A", "qrs_ms"] == 92.0
    ex = build.excluded
    assert ex.loc[ex.patient_id == "E", "reason"].item() == "no ECG file for this patient ID"
    assert "lvm_g 'abc' is not a number" in ex.loc[ex.patient_id == "D", "reason"].item()
    assert ex.loc[ex.ecg_path == "b2", "reason"].item() == "left bundle branch block: statement 'Left bundle branch block'"
    assert ex.loc[ex.ecg_path == "bad.xml", "reason"].item() == "unreadable: not an ECG"


def test_one_ecg_never_serves_two_lvms_and_missing_demographics_excluded():
    imaging = pd.DataFrame([
        {"patient_id": "A", "imaging_datetime": "2021-01-01", "lvm_g": "150", "lvm_source": "mr",
         "height_cm": "170", "weight_kg": "70"},
        {"patient_id": "A", "imaging_datetime": "2021-01-20", "lvm_g": "155", "lvm_source": "mr",
         "height_cm": "170", "weight_kg": "70"},
        {"patient_id": "B", "imaging_datetime": "2021-01-20", "lvm_g": "155", "lvm_source": "mr"},  # no height
    ])
    ecgs = pd.DataFrame([_ecg("a1", "A", "2021-01-18"), _ecg("b1", "B", "2021-01-18")])
    build = pair_ecgs_with_imaging(ecgs, imaging, window_days=30)
    flow = build.flow.set_index("step")
    # a1 is nearest to the second study; the first study has no other ECG
    assert build.manifest["imaging_datetime"].tolist() == [pd.Timestamp("2021-01-20")]
    assert flow.loc["imaging rows with an eligible ECG within ±30 days", "n_excluded"] == 1
    assert flow.loc["pairs with complete, plausible demographics", ["n_in", "n_excluded"]].tolist() == [2, 1]
    ex = build.excluded
    assert "paired with another imaging study closer in time" in ex.loc[ex.imaging_row == 0, "reason"].item()
    assert "height_cm is missing" in ex.loc[ex.ecg_path == "b1", "reason"].item()
    # window boundary is inclusive
    b = pair_ecgs_with_imaging(pd.DataFrame([_ecg("a1", "A", "2020-12-02")]), imaging.iloc[:1], window_days=30)
    assert len(b.manifest) == 1
    b = pair_ecgs_with_imaging(pd.DataFrame([_ecg("a1", "A", "2020-12-01 23:00")]), imaging.iloc[:1], window_days=30)
    assert len(b.manifest) == 0


# ---------------------------------------------------------------------------- real vendor files


def test_fill_device_measurements_from_real_files(shared_data):
    vendor = shared_data / "vendor"
    df = pd.DataFrame([
        _row(patient_id="JAX01234", ecg_path="ge-muse-xml/muse_ecg1.xml", p_axis_deg="60"),  # given value wins
        _row(patient_id="642341", ecg_path="dicom/waveform_ecg.dcm", sex="F"),
        _row(patient_id="X", ecg_path="ge-muse-xml/none.xml"),  # missing file: stays empty
    ])
    out = fill_device_measurements(df, vendor)
    cols = ["qrs_ms", "p_axis_deg", "r_axis_deg", "t_axis_deg"]
    # GE MUSE RestingECGMeasurements of muse_ecg1 (QRS 78 ms, axes 49/54/46), P axis kept from the manifest
    assert out.loc[0, cols].tolist() == [78.0, 60.0, 54.0, 46.0]
    # the Mortara DICOM file's annotations: QRS 75 ms, axes 74/52/57 (shared/data/README.md)
    assert out.loc[1, cols].tolist() == [75.0, 74.0, 52.0, 57.0]
    assert out.loc[2, cols].isna().all()
    assert validate_manifest(out.iloc[:2], base_dir=vendor).problems == []


def test_real_muse_paced_ecg_is_excluded(shared_data):
    # genuine GE MUSE export whose first statement is "Ventricular-paced rhythm"
    rec = read_ecg(shared_data / "vendor" / "ge-muse-xml" / "muse_ecg1.xml")
    meta = ecg_metadata_table([rec])
    assert meta.loc[0, "patient_id"] == "JAX01234" and meta.loc[0, "ecg_datetime"] == pd.Timestamp("2021-05-10 13:15:18")
    imaging = pd.DataFrame([{"patient_id": "JAX01234", "imaging_datetime": "2021-06-01", "lvm_g": "150",
                             "lvm_source": "mr", "height_cm": "175", "weight_kg": "80"}])
    build = pair_ecgs_with_imaging(meta, imaging)
    assert build.manifest.empty
    assert build.excluded.loc[build.excluded.unit == "ECGs", "reason"].tolist() == [
        "paced rhythm: statement 'Ventricular-paced rhythm'"]
    # the same ECG with the pacing statement removed is paired, its device measurements carried along
    build = pair_ecgs_with_imaging(ecg_metadata_table([rec.replace(statements=("Sinus rhythm",))]), imaging)
    row = build.manifest.iloc[0]
    assert (row.patient_id, row.sex, row.age_years, row.qrs_ms, row.r_axis_deg) == ("JAX01234", "M", 60.0, 78.0, 54.0)
