"""`elvmass cohort build` and `elvmass cohort validate`, end to end on a small export made here.

The ECG export is made of real waveforms (PTB-XL record 1, CC-BY-4.0, Wagner et al. 2020, from
../shared/data) written as GE MUSE XML files with chosen patient IDs, acquisition times, device
statements and measurements, as a hospital's MUSE export would hold them.
"""

from __future__ import annotations

import datetime as dt
import json

import pandas as pd
import pytest
from typer.testing import CliRunner

from elvmass.cli import app
from elvmass.io import read_ecg
from elvmass.io.muse_write import write_muse_xml
from elvmass.record import DeviceMeasurements, Patient

runner = CliRunner()

NORMAL = ("Normal sinus rhythm", "Normal ECG")
# (file, patient_id, acquired, sex, statements, qrs_ms)
ECGS = [
    ("p001_a.xml", "P001", dt.datetime(2021, 5, 25, 9, 0), "M", NORMAL, 96),      # 6.6 days before MR: kept
    ("p001_b.xml", "P001", dt.datetime(2021, 3, 1, 9, 0), "M", NORMAL, 98),       # 92 days: a closer one wins
    ("p001_c.xml", "P001", dt.datetime(2020, 6, 1, 9, 0), "M", NORMAL, 94),       # 365 days: outside window
    ("p002_a.xml", "P002", dt.datetime(2021, 6, 3, 8, 0), "F", ("Ventricular paced rhythm", "Abnormal ECG"), 164),
    ("p002_b.xml", "P002", dt.datetime(2021, 8, 15, 8, 0), "F", NORMAL, 88),      # 75 days: kept
    ("p003_a.xml", "P003", dt.datetime(2021, 6, 2, 8, 0), "M",
     ("Sinus rhythm", "Left bundle branch block", "Abnormal ECG"), 156),           # LBBB: P003 gets no ECG
    ("p004_a.xml", "P004", dt.datetime(2021, 6, 2, 8, 0), None, NORMAL, 90),      # sex unknown everywhere
    ("p006_a.xml", "P006", dt.datetime(2021, 6, 2, 8, 0), "M",
     ("Sinus rhythm", "Nonspecific intraventricular conduction delay"), 128),      # wide QRS
    ("p007_a.xml", "P007", dt.datetime(2021, 6, 2, 8, 0), "F", NORMAL, 90),       # no imaging for P007
    ("sub/p009_a.xml", "P009", dt.datetime(2021, 6, 20, 8, 0), "F",
     ("Atrial fibrillation with controlled ventricular response",), 92),           # AF, in a sub-folder
]
IMAGING = """patient_id,imaging_datetime,lvm_g,lvm_source,height_cm,weight_kg,sex
P001,2021-06-01T08:30,162.5,MR,178,82,M
P002,2021-06-01,104,ct,,,F
P003,2021-06-01,190,echo,172,90,M
P004,2021-06-01,120,mr,165,70,
P005,2021-06-01,140,mr,170,75,F
P006,2021-06-01,150,mr,180,85,M
P008,2021-06-01,1500,mr,180,85,M
P009,2021-06-01,118,ct,160,60,F
"""


@pytest.fixture(scope="module")
def export(shared_data, tmp_path_factory):
    base = read_ecg(shared_data / "ptbxl-sample" / "records500" / "00000" / "00001_hr")
    root = tmp_path_factory.mktemp("export")
    ecg_dir = root / "ecg"
    for name, pid, when, sex, statements, qrs in ECGS:
        rec = base.replace(
            patient=Patient(age_years=63.0, sex=sex, height_cm=168.0, weight_kg=64.0, patient_id=pid),
            measurements=DeviceMeasurements(hr_bpm=64, qrs_ms=qrs, p_axis_deg=52, r_axis_deg=18, t_axis_deg=41),
            acquired_at=when, statements=statements, source_path=None)
        write_muse_xml(rec, ecg_dir / name)
    (ecg_dir / "broken.xml").write_text("<RestingECG><PatientDemographics>", encoding="utf-8")
    (root / "imaging.csv").write_text(IMAGING, encoding="utf-8")
    return root


def test_cohort_build_end_to_end(export, tmp_path):
    out = tmp_path / "study" / "manifest.csv"
    res = runner.invoke(app, ["cohort", "build", "--ecg-dir", str(export / "ecg"), "--imaging",
                              str(export / "imaging.csv"), "--out", str(out), "--window-days", "183", "--json"])
    assert res.exit_code == 0, res.output
    summary = json.loads(res.stdout)
    assert summary["n_pairs"] == 2

    flow = pd.read_csv(tmp_path / "study" / "manifest.flow.csv")
    counts = {r.step: (r.n_in, r.n_excluded, r.n_out) for r in flow.itertuples()}
    assert counts["imaging rows read"] == (8, 1, 7)                    # P008: lvm_g 1500
    assert counts["ECG files read"] == (11, 1, 10)                     # broken.xml
    assert counts["ECGs with patient ID and acquisition time"] == (10, 0, 10)
    assert counts["ECGs of a patient with imaging LVM"] == (10, 1, 9)  # P007
    assert counts["ECGs within ±183 days of the patient's imaging"] == (9, 1, 8)  # p001_c
    assert counts["exclude paced rhythm"] == (8, 1, 7)
    assert counts["exclude left bundle branch block"] == (7, 1, 6)
    assert counts["exclude right bundle branch block"] == (6, 0, 6)
    assert counts["exclude wide QRS ≥ 120 ms (possible bundle branch block)"] == (6, 1, 5)
    assert counts["exclude atrial fibrillation"] == (5, 1, 4)
    assert counts["exclude unknown sex"] == (4, 1, 3)
    assert counts["one ECG per LVM (closest in time)"] == (3, 1, 2)   # p001_b
    assert counts["imaging rows with an eligible ECG within ±183 days"] == (7, 5, 2)  # P003 P004 P005 P006 P009
    assert counts["final ECG–LVM pairs"] == (2, 0, 2)
    assert summary["flow"] == json.loads(flow.to_json(orient="records"))

    excluded = pd.read_csv(tmp_path / "study" / "manifest.excluded.csv", dtype=str)
    why = dict(zip(excluded["ecg_path"].fillna(excluded["patient_id"]).map(lambda s: s.split("/")[-1]),
                   excluded["reason"]))
    assert why["p002_a.xml"] == "paced rhythm: statement 'Ventricular paced rhythm'"
    assert why["p003_a.xml"] == "left bundle branch block: statement 'Left bundle branch block'"
    assert why["p006_a.xml"] == "wide QRS ≥ 120 ms (possible bundle branch block): device QRS 128 ms"
    assert why["p001_c.xml"] == "nearest imaging 365.0 days away (window ±183 days)"
    assert why["broken.xml"].startswith("unreadable:")
    assert why["P005"] == "no ECG file for this patient ID"
    assert why["P008"].startswith("lvm_g 1500 is outside 30 – 600 g")

    # the manifest: relative paths, imaging values preferred, ECG file as fallback, device measurements
    man = pd.read_csv(out, dtype={"patient_id": str})
    assert man["patient_id"].tolist() == ["P001", "P002"]
    assert all(p.startswith("..") for p in man["ecg_path"])
    assert [(out.parent / p).resolve().name for p in man["ecg_path"]] == ["p001_a.xml", "p002_b.xml"]
    p1, p2 = man.iloc[0], man.iloc[1]
    assert (p1.lvm_g, p1.lvm_source, p1.sex, p1.height_cm, p1.weight_kg) == (162.5, "mr", "M", 178.0, 82.0)
    assert (p2.lvm_source, p2.sex, p2.height_cm, p2.weight_kg) == ("ct", "F", 168.0, 64.0)  # from the ECG file
    assert p1.ecg_datetime == "2021-05-25T09:00:00" and p1.imaging_datetime == "2021-06-01T08:30:00"
    assert (p1.age_years, p1.qrs_ms, p1.p_axis_deg, p1.r_axis_deg, p1.t_axis_deg) == (63.0, 96.0, 52.0, 18.0, 41.0)

    # the written manifest validates cleanly from its own folder
    res = runner.invoke(app, ["cohort", "validate", str(out), "--json"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout) == {"manifest": str(out), "n_rows": 2, "n_valid": 2, "n_bad_rows": 0,
                                      "problems": []}


def test_cohort_build_prints_flow_table_and_parquet(export, tmp_path):
    out = tmp_path / "manifest.parquet"
    res = runner.invoke(app, ["cohort", "build", "--ecg-dir", str(export / "ecg"), "--imaging",
                              str(export / "imaging.csv"), "--out", str(out), "--window-days", "30"])
    assert res.exit_code == 0, res.output
    assert "Cohort flow" in res.stdout and "paced rhythm" in res.stdout
    man = pd.read_parquet(out)
    assert man["patient_id"].tolist() == ["P001"]  # P002's remaining ECG is 75 days away
    flow = pd.read_csv(tmp_path / "manifest.flow.csv")
    assert flow.set_index("step").loc["ECGs within ±30 days of the patient's imaging", "n_excluded"] == 3


def test_cohort_validate_lists_every_bad_row(export, tmp_path):
    (tmp_path / "ecg.xml").write_text("<x/>")
    m = tmp_path / "m.csv"
    m.write_text(
        "patient_id,ecg_path,lvm_g,lvm_source,sex,age_years,height_cm,weight_kg\n"
        "A,ecg.xml,150,mr,M,60,170,70\n"
        "B,ecg_missing.xml,150,mr,1,60,170,70\n"
        "C,ecg.xml,150,pet,F,60,5.6,70\n", encoding="utf-8")
    res = runner.invoke(app, ["cohort", "validate", str(m), "--json"])
    assert res.exit_code == 1
    got = json.loads(res.stdout)
    assert (got["n_rows"], got["n_valid"], got["n_bad_rows"]) == (3, 1, 2)
    reasons = [(p["row"], p["patient_id"], p["reason"].split(" (")[0]) for p in got["problems"]]
    assert reasons == [
        (1, "B", "sex '1' is a number, which is ambiguous"),
        (1, "B", f"ECG file not found: {tmp_path / 'ecg_missing.xml'}"),
        (2, "C", "unknown lvm_source 'pet'"),
        (2, "C", "height_cm 5.6 is outside 120 – 220 cm"),
        (2, "C", "ecg_path is also used in row 0 for another patient"),
    ]
    before = sorted(p.name for p in tmp_path.iterdir())
    res = runner.invoke(app, ["cohort", "validate", str(m)])
    assert res.exit_code == 1 and "3 rows: 1 valid, 2 bad" in res.stdout
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # writes nothing
    # an unusable file is one clear line and exit status 2
    (tmp_path / "cols.csv").write_text("patient_id,lvm_g\nA,100\n")
    res = runner.invoke(app, ["cohort", "validate", str(tmp_path / "cols.csv")])
    assert res.exit_code == 2 and "lacks required column(s) ecg_path, lvm_source" in res.stderr
    assert "Traceback" not in res.output


def test_cohort_build_bad_inputs_are_one_line(tmp_path):
    (tmp_path / "ecg").mkdir()
    (tmp_path / "imaging.csv").write_text("patient_id,lvm_g\nA,100\n")
    res = runner.invoke(app, ["cohort", "build", "--ecg-dir", str(tmp_path / "ecg"), "--imaging",
                              str(tmp_path / "imaging.csv"), "--out", str(tmp_path / "m.csv")])
    assert res.exit_code == 2
    assert "lacks required column(s) imaging_datetime, lvm_source" in res.stderr
    assert not (tmp_path / "m.csv").exists()


def _build_json(ecg_dir, imaging, out):
    res = runner.invoke(app, ["cohort", "build", "--ecg-dir", str(ecg_dir), "--imaging", str(imaging),
                              "--out", str(out), "--json"])
    return res


def test_cohort_build_when_no_ecg_matches_any_imaging_row(shared_data, tmp_path):
    # the genuine MUSE exports belong to JAX01234 / JAX12345; an imaging export of other patients
    # used to end in a pandas TypeError traceback once no ECG was left after the patient-ID step
    (tmp_path / "imaging.csv").write_text("patient_id,imaging_datetime,lvm_g,lvm_source\nP999,2021-05-10,150,mr\n")
    res = _build_json(shared_data / "vendor" / "ge-muse-xml", tmp_path / "imaging.csv", tmp_path / "m.csv")
    assert res.exit_code == 0, res.output
    assert "Traceback" not in res.output
    summary = json.loads(res.stdout)
    assert summary["n_pairs"] == 0
    counts = {r["step"]: (r["n_in"], r["n_excluded"], r["n_out"]) for r in summary["flow"]}
    assert counts["ECGs of a patient with imaging LVM"] == (2, 2, 0)
    assert counts["ECGs within ±183 days of the patient's imaging"] == (0, 0, 0)
    assert counts["imaging rows with an eligible ECG within ±183 days"] == (1, 1, 0)
    assert pd.read_csv(tmp_path / "m.csv").empty


def test_cohort_build_counts_a_duplicated_imaging_row_once(shared_data, tmp_path):
    # one MR study exported twice must give one ECG-LVM pair, not the same LVM paired with two ECGs
    base = read_ecg(shared_data / "ptbxl-sample" / "records500" / "00000" / "00001_hr")
    for name, day in (("a.xml", 2), ("b.xml", 20)):
        write_muse_xml(base.replace(patient=Patient(age_years=63.0, sex="F", height_cm=168.0, weight_kg=64.0,
                                                    patient_id="P001"),
                                    acquired_at=dt.datetime(2021, 6, day, 9, 0), statements=NORMAL),
                       tmp_path / "ecg" / name)
    (tmp_path / "imaging.csv").write_text(
        "patient_id,imaging_datetime,lvm_g,lvm_source\n"
        "P001,2021-06-01,150,mr\n"
        "P001,2021-06-01,150,MR\n"     # the same study twice
        "P001,2021-09-01,90,ct\n"      # another study: the 20 June ECG goes here if it were alone
        "P001,2021-09-01,95,ct\n", encoding="utf-8")  # two different masses for one study: ambiguous
    res = _build_json(tmp_path / "ecg", tmp_path / "imaging.csv", tmp_path / "m.csv")
    assert res.exit_code == 0, res.output
    man = pd.read_csv(tmp_path / "m.csv")
    assert man[["ecg_path", "lvm_g"]].values.tolist() == [["ecg/a.xml", 150.0]]
    excluded = pd.read_csv(tmp_path / "m.excluded.csv")
    img = excluded[excluded["step"] == "imaging rows read"]
    assert img["imaging_row"].tolist() == [1, 2, 3]
    assert img["reason"].tolist()[0] == "duplicate of imaging row 0 (same patient, study time, modality and LVM)"
    assert img["reason"].tolist()[1].startswith("imaging rows 2, 3 give different lvm_g for the same study")


def test_cohort_build_reads_semicolon_separated_imaging_csv(shared_data, tmp_path):
    # Excel in many European locales saves "CSV" with semicolons (and a byte-order mark)
    (tmp_path / "imaging.csv").write_bytes(
        "\ufeffpatient_id;imaging_datetime;lvm_g;lvm_source\r\nJAX01234;2021-05-01;150;mr\r\n".encode("utf-8"))
    res = _build_json(shared_data / "vendor" / "ge-muse-xml", tmp_path / "imaging.csv", tmp_path / "m.csv")
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["flow"][0]["n_out"] == 1
    # a decimal comma is named as the problem
    (tmp_path / "imaging.csv").write_text("patient_id;imaging_datetime;lvm_g;lvm_source\nJAX01234;2021-05-01;150,5;mr\n")
    res = _build_json(shared_data / "vendor" / "ge-muse-xml", tmp_path / "imaging.csv", tmp_path / "m.csv")
    assert res.exit_code == 0, res.output
    ex = pd.read_csv(tmp_path / "m.excluded.csv")
    assert ex["reason"].iloc[0].startswith("lvm_g '150,5' is not a number")


def test_cohort_build_reads_a_windows_1252_imaging_export_and_names_an_unwritable_manifest(shared_data, tmp_path):
    # Excel on Windows saves CSV in Windows-1252: "Müller" is the byte 0xFC, not UTF-8
    (tmp_path / "imaging.csv").write_bytes(
        "patient_id,imaging_datetime,lvm_g,lvm_source,sex\nJAX01234,2021-05-01,150,mr,M\nMüller,2021-05-01,90,mr,F\n"
        .encode("cp1252"))
    res = _build_json(shared_data / "vendor" / "ge-muse-xml", tmp_path / "imaging.csv", tmp_path / "m.csv")
    assert res.exit_code == 0, res.output
    ex = pd.read_csv(tmp_path / "m.excluded.csv")
    assert "Müller" in ex["patient_id"].tolist()
    # a manifest that cannot be written is named in the one-line error (not a temporary file's name)
    (tmp_path / "file").write_text("")
    res = _build_json(shared_data / "vendor" / "ge-muse-xml", tmp_path / "imaging.csv", tmp_path / "file" / "m.csv")
    assert res.exit_code == 2 and "Traceback" not in res.output
    assert res.stderr.startswith(f"error: cannot write {tmp_path / 'file' / 'm.csv'}")


# ------------------------------------------------------------------ issue 17: what a new user runs into

def _muse_without_acquisition_time(shared_data, out):
    """muse_ecg2.xml (a real GE MUSE export, patient JAX12345) with AcquisitionDate/Time deleted."""
    import re

    raw = (shared_data / "vendor" / "ge-muse-xml" / "muse_ecg2.xml").read_bytes()
    stripped = re.sub(rb"<Acquisition(?:Date|Time)>[^<]*</Acquisition(?:Date|Time)>", b"", raw)
    assert stripped != raw
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(stripped)
    return out


def test_item6_an_ecg_without_acquisition_date_is_excluded_at_the_date_step(shared_data, tmp_path):
    # was: TypeError: bad operand type for abs(): 'NaTType', exit 1, no manifest (fixed on main by the
    # pandas-3 None/NaN change, 786d645; this keeps it fixed)
    import shutil

    ecg = tmp_path / "ecg"
    _muse_without_acquisition_time(shared_data, ecg / "nodate.xml")
    shutil.copy(shared_data / "vendor" / "ge-muse-xml" / "muse_ecg1.xml", ecg / "paced.xml")
    (tmp_path / "imaging.csv").write_text("patient_id,imaging_datetime,lvm_g,lvm_source,height_cm,weight_kg\n"
                                          "JAX12345,2021-05-20,150,mr,175,80\n")
    res = _build_json(ecg, tmp_path / "imaging.csv", tmp_path / "m.csv")
    assert res.exit_code == 0, res.output
    assert (tmp_path / "m.csv").is_file()
    ex = pd.read_csv(tmp_path / "m.excluded.csv")
    row = ex[ex.ecg_path.astype(str).str.endswith("nodate.xml")]
    assert row.step.tolist() == ["ECGs with patient ID and acquisition time"]
    assert row.reason.tolist() == ["no acquisition date/time in file"]


def test_item5_an_ecg_file_without_patient_id_is_excluded_at_the_id_step(shared_data, tmp_path):
    # read through build_cohort, where pandas turns the missing ID into NaN (not None)
    base = read_ecg(shared_data / "ptbxl-sample" / "records500" / "00000" / "00001_hr")
    ecg = tmp_path / "ecg"
    for name, pid in (("noid.xml", None), ("withid.xml", "P1")):
        write_muse_xml(base.replace(patient=Patient(age_years=60.0, sex="F", patient_id=pid),
                                    acquired_at=dt.datetime(2021, 6, 1, 9), statements=NORMAL,
                                    source_path=None), ecg / name)
    (tmp_path / "imaging.csv").write_text("patient_id,imaging_datetime,lvm_g,lvm_source,height_cm,weight_kg\n"
                                          "P1,2021-06-02,120,mr,165,60\n")
    res = _build_json(ecg, tmp_path / "imaging.csv", tmp_path / "m.csv")
    assert res.exit_code == 0, res.output
    flow = pd.read_csv(tmp_path / "m.flow.csv").set_index("step")
    assert flow.loc["ECGs with patient ID and acquisition time", ["n_in", "n_excluded"]].tolist() == [2, 1]
    assert flow.loc["ECGs of a patient with imaging LVM", "n_excluded"] == 0
    ex = pd.read_csv(tmp_path / "m.excluded.csv")
    assert ex.loc[ex.ecg_path.str.endswith("noid.xml"), "reason"].tolist() == ["no patient ID in file"]


def test_item12_wrong_kinds_of_paths_say_what_was_expected(tmp_path):
    (tmp_path / "ecg").mkdir()
    a_file = tmp_path / "one.xml"
    a_file.write_text("<x/>")
    csv = tmp_path / "imaging.csv"
    csv.write_text("patient_id,imaging_datetime,lvm_g,lvm_source\n")
    res = runner.invoke(app, ["cohort", "build", "--ecg-dir", str(a_file), "--imaging", str(csv),
                              "--out", str(tmp_path / "m.csv")])
    assert res.exit_code == 2 and "is a file; --ecg-dir expects the folder" in res.stderr
    assert "not found" not in res.stderr
    res = runner.invoke(app, ["cohort", "build", "--ecg-dir", str(tmp_path / "ecg"), "--imaging", str(tmp_path / "ecg"),
                              "--out", str(tmp_path / "m.csv")])
    assert res.exit_code == 2 and "is a folder; --imaging expects the imaging CSV file" in res.stderr


def test_item15_validate_a_header_only_manifest_is_unusable(tmp_path):
    from elvmass.cohort import MANIFEST_COLUMNS

    m = tmp_path / "m.csv"
    m.write_text(",".join(MANIFEST_COLUMNS) + "\n")
    res = runner.invoke(app, ["cohort", "validate", str(m)])
    assert res.exit_code == 2 and "no data rows" in res.stderr
    res = runner.invoke(app, ["study", "--cohort", str(m), "--out", str(tmp_path / "s"), "--preset", "quick"])
    assert res.exit_code == 2 and "no data rows" in res.stderr


def test_mixed_problem_folder_builds_and_names_each_problem_file_once(shared_data, tmp_path):
    """Every kind of problem file in one export: the build completes, writes a manifest, and names each
    problem file exactly once with its reason (issue 17, "what it must show")."""
    import shutil

    base = read_ecg(shared_data / "ptbxl-sample" / "records500" / "00000" / "00001_hr")
    ecg = tmp_path / "ecg"
    ecg.mkdir()

    def muse(name, pid, when, statements=NORMAL, qrs=92):
        write_muse_xml(base.replace(patient=Patient(age_years=60.0, sex="F", height_cm=165.0, weight_kg=60.0,
                                                    patient_id=pid),
                                    measurements=DeviceMeasurements(hr_bpm=64, qrs_ms=qrs, p_axis_deg=50,
                                                                    r_axis_deg=20, t_axis_deg=40),
                                    acquired_at=when, statements=statements, source_path=None), ecg / name)

    muse("good.xml", "P1", dt.datetime(2021, 6, 1, 9))
    expected = {  # file -> a part of the reason it must be listed with
        "far.xml": "days away",
        "noid.xml": "no patient ID in file",
        "stranger.xml": "no valid imaging row for this patient ID",
    }
    muse("far.xml", "P1", dt.datetime(2019, 1, 1, 9))
    muse("noid.xml", None, dt.datetime(2021, 6, 1, 9))
    muse("stranger.xml", "P404", dt.datetime(2021, 6, 1, 9))
    muse("lbbb.xml", "P2", dt.datetime(2021, 6, 1, 9), ("Sinus rhythm", "Left bundle branch block"), 150)
    expected["lbbb.xml"] = "left bundle branch block: statement 'Left bundle branch block'"
    _muse_without_acquisition_time(shared_data, ecg / "nodate.xml")
    expected["nodate.xml"] = "no acquisition date/time in file"
    shutil.copy(shared_data / "vendor" / "ge-muse-xml" / "muse_ecg1.xml", ecg / "paced.xml")
    expected["paced.xml"] = "paced rhythm: statement 'Ventricular-paced rhythm'"
    shutil.copy(shared_data / "vendor" / "philips-xml" / "129DYPRG.XML", ecg / "negated_lbbb.XML")
    expected["negated_lbbb.XML"] = "wide QRS ≥ 120 ms (possible bundle branch block): device QRS 135 ms"
    (ecg / "broken.xml").write_text("<RestingECG><PatientDemographics>", encoding="utf-8")
    expected["broken.xml"] = "unreadable: "
    (ecg / "empty.xml").write_bytes(b"")
    expected["empty.xml"] = "unreadable: "
    (ecg / "not_an_ecg.xml").write_text("<html><body>a web page</body></html>", encoding="utf-8")
    expected["not_an_ecg.xml"] = "unreadable: "
    dcm = (shared_data / "vendor" / "dicom" / "waveform_ecg.dcm").read_bytes()
    (ecg / "truncated.dcm").write_bytes(dcm[: len(dcm) // 3])
    expected["truncated.dcm"] = "unreadable: "
    shutil.copy(shared_data / "ptbxl-sample" / "records500" / "00000" / "00002_hr.hea", ecg / "no_dat.hea")
    expected["no_dat.hea"] = "unreadable: "
    (ecg / "garbage.dcm").write_bytes(bytes(range(256)) * 8)
    expected["garbage.dcm"] = "unreadable: "
    # a Latin-1-named file (issue 17 item 7): not UTF-8, so it is listed under its reversible \xNN text form
    import os

    with open(os.fsencode(ecg) + b"/caf\xe9.xml", "wb") as fh:
        fh.write(b"<RestingECG><PatientDemographics>")  # and unreadable, so it must be named with its reason
    expected["caf\\xe9.xml"] = "unreadable: "
    (tmp_path / "imaging.csv").write_text(
        "patient_id,imaging_datetime,lvm_g,lvm_source,height_cm,weight_kg,sex\n"
        "P1,2021-06-02,120,mr,165,60,F\n"
        "P2,2021-06-02,130,mr,165,60,F\n"
        "JAX12345,2021-05-20,150,mr,175,80,M\n"
        "JAX01234,2021-05-20,150,mr,175,80,M\n"
        "1112010721168bdc,2011-12-05,170,echo,180,85,M\n")
    res = runner.invoke(app, ["cohort", "build", "--ecg-dir", str(ecg), "--imaging", str(tmp_path / "imaging.csv"),
                              "--out", str(tmp_path / "m.csv")])
    assert res.exit_code == 0, res.output
    assert "Traceback" not in res.output
    manifest = pd.read_csv(tmp_path / "m.csv")
    assert [p.rsplit("/", 1)[-1] for p in manifest.ecg_path] == ["good.xml"]
    ex = pd.read_csv(tmp_path / "m.excluded.csv")
    listed = ex.ecg_path.dropna().map(lambda p: p.rsplit("/", 1)[-1]).tolist()
    assert sorted(listed) == sorted(expected), ex  # every problem file, each exactly once
    for name, why in expected.items():
        reason = ex.loc[ex.ecg_path.fillna("").str.endswith("/" + name), "reason"].item()
        assert why in reason, (name, reason)
        if why == "unreadable: ":
            assert len(reason) > len(why) + 5  # the reader's own explanation, not just "unreadable"
