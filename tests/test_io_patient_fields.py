"""Fields the files carry that were missed or misread (issue #17 items 16, 20), and file names that are not
UTF-8 end to end (item 7). Real files from ../shared/data, or copies made from them in tmp_path."""

from __future__ import annotations

import json
import os
import re
import shutil

import pytest
from typer.testing import CliRunner

from elvmass import ECGReadError, read_ecg
from elvmass.cli import app
from elvmass.errors import path_from_text, path_text


# --- item 16 -----------------------------------------------------------------------------------------
def test_ludb_header_age_and_sex_are_read(shared_data):
    """LUDB record 1's header says '#<age>: 51' and '#<sex>: F' (the dataset's own annotation)."""
    rec = read_ecg(shared_data / "ludb" / "data" / "1.hea")
    assert (rec.patient.age_years, rec.patient.sex) == (51.0, "F")
    text = (shared_data / "ludb" / "data" / "2.hea").read_text()
    age = float(re.search(r"#<age>:\s*(\d+)", text).group(1))
    sex = re.search(r"#<sex>:\s*([MF])", text).group(1)
    rec2 = read_ecg(shared_data / "ludb" / "data" / "2.hea")
    assert (rec2.patient.age_years, rec2.patient.sex) == (age, sex)


def test_hl7_patient_id_in_a_second_trial_subject_id(shared_data, tmp_path):
    """The reference aECG names subject SBJ-123; with a bare OID <id> before it, the ID is still found."""
    src = shared_data / "vendor" / "hl7-aecg" / "example-aecg.xml"
    text = src.read_text(encoding="utf-8")
    old = '<id root="2.16.840.1.113883.3.400" extension="SBJ-123"/>'
    assert old in text and read_ecg(src).patient.patient_id == "SBJ-123"
    dst = tmp_path / "second_id.xml"
    dst.write_text(text.replace(old, '<id root="2.16.840.1.113883.3.400"/>\n' + old), encoding="utf-8")
    assert read_ecg(dst).patient.patient_id == "SBJ-123"


def test_device_qtc_placeholder_zero_is_not_measured(shared_data, tmp_path):
    src = shared_data / "vendor" / "ge-muse-xml" / "muse_ecg1.xml"
    text = src.read_bytes().decode("iso-8859-1")
    assert "<QTCorrected>364</QTCorrected>" in text
    dst = tmp_path / "qtc0.xml"
    dst.write_bytes(text.replace("<QTCorrected>364</QTCorrected>", "<QTCorrected>0</QTCorrected>").encode("iso-8859-1"))
    rec = read_ecg(dst)
    assert rec.measurements.qtc_ms is None and rec.measurements.qt_ms == 364.0
    result = CliRunner().invoke(app, ["inspect", str(dst)])
    assert result.exit_code == 0 and "QTc 0 ms" not in result.output and "QT 364 ms" in result.output


# --- item 20 -----------------------------------------------------------------------------------------
def test_cinc_mat_given_directly(shared_data, tmp_path):
    mat = tmp_path / "A0001.mat"
    mat.write_bytes(b"MATLAB 5.0 MAT-file" + b"\0" * 200)
    with pytest.raises(ECGReadError) as info:
        read_ecg(mat)
    assert "give its header A0001.hea" in info.value.problem
    # with its header beside it, the .mat names the WFDB record (as x.dat does)
    src = shared_data / "ptbxl-sample" / "records500" / "00000" / "00001_hr"
    shutil.copy(src.with_suffix(".hea"), tmp_path / "00001_hr.hea")
    shutil.copy(src.with_suffix(".dat"), tmp_path / "00001_hr.dat")
    (tmp_path / "00001_hr.mat").write_bytes(b"")
    assert read_ecg(tmp_path / "00001_hr.mat").n_samples == 5000


# --- item 7 ------------------------------------------------------------------------------------------
LATIN1_NAME = os.fsdecode(b"caf\xe9.xml")


def test_path_text_round_trips_non_utf8_names(tmp_path):
    p = tmp_path / LATIN1_NAME
    p.write_text("x")
    text = path_text(p)
    assert text.endswith("caf\\xe9.xml") and text.encode("utf-8")
    assert path_from_text(text) == p and path_from_text(text).read_text() == "x"


def test_non_utf8_file_name_through_inspect_and_cohort_build(shared_data, tmp_path, monkeypatch):
    ecgs = tmp_path / "ecgs"
    ecgs.mkdir()
    shutil.copy(shared_data / "vendor" / "ge-muse-xml" / "muse_ecg1.xml", ecgs / LATIN1_NAME)
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()
    result = runner.invoke(app, ["inspect", "--json", str(ecgs / LATIN1_NAME)])
    assert result.exit_code == 0, result.output
    line = result.stdout.strip().splitlines()[0]
    assert "\\ud" not in line  # no lone surrogate escapes in the JSON
    assert json.loads(line)["path"].endswith("caf\\xe9.xml")
    pid = read_ecg(ecgs / LATIN1_NAME).patient.patient_id
    (tmp_path / "imaging.csv").write_text(
        f"patient_id,imaging_datetime,lvm_g,lvm_source,height_cm,weight_kg\n{pid},2012-01-01T00:00:00,150,ct,170,70\n")
    result = runner.invoke(app, ["cohort", "build", "--ecg-dir", "ecgs", "--imaging", "imaging.csv", "--out", "m.csv", "--json"])
    assert result.exit_code == 0, result.output
    from elvmass.cohort import read_manifest, resolve_ecg_path

    manifest_text = (tmp_path / "m.csv").read_text(encoding="utf-8")  # valid UTF-8
    excluded = (tmp_path / "m.excluded.csv").read_text(encoding="utf-8")
    assert "caf\\xe9.xml" in manifest_text + excluded
    rows = read_manifest(tmp_path / "m.csv")
    for value in rows["ecg_path"]:
        assert resolve_ecg_path(value, tmp_path).is_file()  # the manifest finds the file again


@pytest.mark.slow
def test_non_utf8_file_name_through_predict_out(shared_data, tmp_path, monkeypatch):
    from elvmass.experiments.final import train_bundle
    from elvmass.cohort import build_cohort, write_manifest
    from elvmass.synth import SynthConfig, generate_cohort

    synth = generate_cohort(SynthConfig(n=24, seed=3), tmp_path / "synth")
    manifest = write_manifest(build_cohort(synth.ecg_dir, synth.imaging_csv).manifest, tmp_path / "manifest.csv")
    bundle = train_bundle(manifest, tmp_path / "model", "quick", progress=False)
    shutil.copy(shared_data / "vendor" / "ge-muse-xml" / "muse_ecg1.xml", tmp_path / LATIN1_NAME)
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(app, ["predict", LATIN1_NAME, "--model", str(bundle), "--out", "p.csv"])
    assert result.exit_code == 0, result.output
    import pandas as pd

    frame = pd.read_csv(tmp_path / "p.csv")
    assert frame["path"].tolist() == ["caf\\xe9.xml"]
    assert path_from_text(frame["path"][0]).resolve() == (tmp_path / LATIN1_NAME).resolve()
