"""WFDB records: all 200 PTB-XL v1.0.3 sample records (Wagner et al. 2020, CC-BY-4.0) and
CinC-style headers made from a real PTB-XL record in tmp_path."""

from __future__ import annotations

import datetime as dt
import math
import shutil

import numpy as np
import pandas as pd
import pytest
import wfdb

from elvmass import read_ecg
from elvmass.io import example_ecg_path, find_ecg_files
from elvmass.io.wfdb_reader import SNOMED_STATEMENTS, parse_header_comments


@pytest.fixture(scope="module")
def ptbxl(shared_data):
    root = shared_data / "ptbxl-sample"
    db = pd.read_csv(root / "ptbxl_database.csv", index_col="ecg_id")
    return root, db


def _opt(x):
    return None if x is None or (isinstance(x, float) and math.isnan(x)) else float(x)


def test_every_ptbxl_record_reads_with_database_demographics(ptbxl):
    root, db = ptbxl
    heas = find_ecg_files(root / "records500")
    assert len(heas) == len(db) == 200
    n_height = 0
    for hea in heas:
        rec = read_ecg(hea)
        ecg_id = int(hea.stem.split("_")[0])
        row = db.loc[ecg_id]
        assert rec.source_format == "wfdb" and rec.fs_hz == 500.0 and rec.signal_mv.shape == (12, 5000)
        assert rec.patient.age_years == _opt(row["age"])
        assert rec.patient.sex == {0: "M", 1: "F"}[int(row["sex"])]
        assert rec.patient.height_cm == _opt(row["height"])
        assert rec.patient.weight_kg == _opt(row["weight"])
        assert rec.acquired_at == dt.datetime.fromisoformat(row["recording_date"])
        n_height += rec.patient.height_cm is not None
        # PTB-XL stores all 12 leads with a 1 uV step (gain 1000/mV). Independent rounding of
        # I, II, III leaves |II - I - III| <= 1.5 uV; the dataset's own processing before
        # rounding adds at most one more step (2 of 200 records reach 2 uV), so 2 steps bound it.
        s = rec.signal_mv.astype(np.float64)
        residual = np.abs(s[1] - s[0] - s[2])
        assert residual.max() <= 2e-3 + 1e-6
        assert np.mean(residual > 1.5e-3) <= 0.002
    assert n_height == int(db["height"].notna().sum()) == 8


def test_ptbxl_signal_equals_wfdb_physical_signal(ptbxl):
    root, db = ptbxl
    base = root / "records500" / "00000" / "00008_hr"
    ref = wfdb.rdrecord(str(base))
    rec = read_ecg(base)  # path without extension works
    np.testing.assert_allclose(rec.signal_mv, ref.p_signal.T.astype(np.float32), atol=1e-6)
    # scp_codes {'IMI': 35.0, 'ABQRS': 0.0, 'SR': 0.0}, described in scp_statements.csv
    assert rec.statements == (
        "inferior myocardial infarction [SCP IMI]",
        "abnormal QRS [SCP ABQRS]",
        "sinus rhythm [SCP SR]",
    )
    assert rec.patient.patient_id == str(int(db.loc[8, "patient_id"]))


def test_ptbxl_record_via_dat_and_hea_paths(ptbxl):
    root, db = ptbxl
    a = read_ecg(root / "records500" / "00000" / "00136_hr.hea")
    b = read_ecg(root / "records500" / "00000" / "00136_hr.dat")
    assert np.array_equal(a.signal_mv, b.signal_mv)
    assert (a.patient.age_years, a.patient.sex, a.patient.height_cm, a.patient.weight_kg) == (52.0, "M", 167.0, 72.0)
    assert "normal ECG [SCP NORM]" in a.statements


def test_ptbxl_lr_record_reads_at_100_hz(ptbxl):
    root, db = ptbxl
    rec = read_ecg(root / "records100" / "00000" / "00001_lr")
    assert rec.fs_hz == 100.0 and rec.n_samples == 1000
    assert rec.patient.age_years == 56.0 and rec.patient.sex == "F"


def _cinc_copy(ptbxl, tmp_path, comments, name="A0001"):
    root, _ = ptbxl
    src = root / "records500" / "00000" / "00001_hr"
    shutil.copy(src.with_suffix(".dat"), tmp_path / f"{name}.dat")
    lines = src.with_suffix(".hea").read_text().splitlines()
    lines[0] = lines[0].replace("00001_hr", name, 1)
    lines[1:] = [ln.replace("00001_hr.dat", f"{name}.dat") for ln in lines[1:]]
    (tmp_path / f"{name}.hea").write_text("\n".join(lines + [f"#{c}" for c in comments]) + "\n")
    return tmp_path / f"{name}.hea"


def test_cinc_header_comments_give_demographics_and_statements(ptbxl, tmp_path):
    hea = _cinc_copy(ptbxl, tmp_path, [
        "Age: 74", "Sex: Female", "Height: 160", "Weight: 58.5",
        "Dx: 164909002,59118001,164889003,10370003,164873001,999999", "Rx: Unknown", "Hx: Unknown",
    ])
    rec = read_ecg(hea)
    assert (rec.patient.age_years, rec.patient.sex, rec.patient.height_cm, rec.patient.weight_kg) == (74.0, "F", 160.0, 58.5)
    assert rec.statements == (
        "left bundle branch block [SNOMED 164909002]",
        "right bundle branch block [SNOMED 59118001]",
        "atrial fibrillation [SNOMED 164889003]",
        "pacing rhythm [SNOMED 10370003]",
        "left ventricular hypertrophy [SNOMED 164873001]",
        "SNOMED CT 999999",
    )
    # header demographics win: the PTB-XL database is not consulted for a renamed copy
    assert rec.patient.patient_id is None


def test_ptbxl_style_lowercase_comments_and_unknowns(ptbxl, tmp_path):
    hea = _cinc_copy(ptbxl, tmp_path, ["age: 63", "sex: male", "height: NaN", "weight: Unknown"], name="X1")
    rec = read_ecg(hea)
    assert (rec.patient.age_years, rec.patient.sex, rec.patient.height_cm, rec.patient.weight_kg) == (63.0, "M", None, None)


def test_header_comment_units_are_converted():
    d = parse_header_comments(["Height: 1.72 m", "Weight: 176 lbs", "Sex: M"])
    assert d["height_cm"] == pytest.approx(172.0)
    assert d["weight_kg"] == pytest.approx(79.83, abs=0.01)
    assert d["sex"] == "M"


def test_required_snomed_codes_are_mapped():
    for code, word in [("164909002", "left bundle branch block"), ("59118001", "right bundle branch block"),
                       ("164889003", "atrial fibrillation"), ("10370003", "pacing"),
                       ("164873001", "left ventricular hypertrophy")]:
        assert word in SNOMED_STATEMENTS[code]


def test_bundled_example_is_the_ptbxl_record_with_its_demographics(ptbxl):
    root, db = ptbxl
    ex = read_ecg(example_ecg_path())
    orig = read_ecg(root / "records500" / "00000" / "00136_hr")
    assert np.array_equal(ex.signal_mv, orig.signal_mv)
    row = db.loc[136]
    assert (ex.patient.age_years, ex.patient.height_cm, ex.patient.weight_kg) == (row["age"], row["height"], row["weight"])
    assert ex.patient.sex == "M" and int(row["sex"]) == 0
    assert ex.acquired_at == orig.acquired_at == dt.datetime(1986, 2, 21, 16, 49, 2)
    assert "NORM" in row["scp_codes"] and ex.flags == ()
    attribution = (example_ecg_path().parent / "ATTRIBUTION.md").read_text()
    assert "PTB-XL" in attribution and "CC BY 4.0" in attribution and "Wagner" in attribution


@pytest.mark.parametrize("folder", ["records500", "records100"])
def test_direct_format16_reader_gives_exactly_wfdb_samples(ptbxl, folder):
    # The fast path (NumPy on the .dat) must give bit-for-bit the samples wfdb.rdrecord gives.
    from elvmass.io.wfdb_reader import _fast_header

    root, _ = ptbxl
    heas = find_ecg_files(root / folder)
    assert len(heas) == 200
    for hea in heas:
        assert _fast_header(hea) is not None, hea
        ref = wfdb.rdrecord(str(hea.with_suffix("")))
        assert np.array_equal(read_ecg(hea).signal_mv, ref.p_signal.T.astype(np.float32)), hea


def _edited_copy(ptbxl, tmp_path, name, edit_header, edit_data=None):
    root, _ = ptbxl
    src = root / "records500" / "00000" / "00001_hr"
    data = src.with_suffix(".dat").read_bytes()
    (tmp_path / f"{name}.dat").write_bytes(edit_data(data) if edit_data else data)
    text = src.with_suffix(".hea").read_text().replace("00001_hr", name)
    (tmp_path / f"{name}.hea").write_text(edit_header(text))
    return tmp_path / f"{name}.hea"


def test_records_outside_the_fast_path_still_read_through_wfdb(ptbxl, tmp_path):
    from elvmass.io.wfdb_reader import _fast_header

    ref = read_ecg(ptbxl[0] / "records500" / "00000" / "00001_hr")
    # a byte offset (10 bytes of preamble in the .dat): wfdb handles it
    hea = _edited_copy(ptbxl, tmp_path, "off", lambda t: t.replace(".dat 16 ", ".dat 16+10 "), lambda d: b"\0" * 10 + d)
    assert _fast_header(hea) is None
    assert np.array_equal(read_ecg(hea).signal_mv, ref.signal_mv)
    # a .dat one sample longer than the header says: not the plain case, wfdb reads the stated length
    hea = _edited_copy(ptbxl, tmp_path, "long", lambda t: t, lambda d: d + b"\0" * 24)
    assert _fast_header(hea) is None
    assert np.array_equal(read_ecg(hea).signal_mv, ref.signal_mv)


def test_wfdb_missing_sample_code_becomes_nan_like_wfdb(ptbxl, tmp_path):
    def poke(data):  # samples 100-109 of lead V2 (column 7) set to -32768, WFDB's "no sample" for format 16
        a = np.frombuffer(data, dtype="<i2").reshape(-1, 12).copy()
        a[100:110, 7] = -32768
        return a.tobytes()

    hea = _edited_copy(ptbxl, tmp_path, "gap", lambda t: t, poke)
    rec = read_ecg(hea)
    ref = wfdb.rdrecord(str(hea.with_suffix("")))
    assert np.isnan(rec.signal_mv[7, 100:110]).all() and np.isnan(ref.p_signal[100:110, 7]).all()
    assert np.array_equal(rec.signal_mv, ref.p_signal.T.astype(np.float32), equal_nan=True)
    assert "nan_samples:V2" in rec.flags
