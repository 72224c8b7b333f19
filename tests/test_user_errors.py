"""Issue 17: wrong answers and crashes a new user runs into, outside `predict` and `cohort build`
(those are in tests/test_predict.py and tests/test_cohort_cli.py, next to their fixtures)."""

from __future__ import annotations

import shutil

import pandas as pd
import pytest
from typer.testing import CliRunner

from elvmass.cli import app
from elvmass.cohort import classify_exclusion, validate_manifest

runner = CliRunner()


# ---------------------------------------------------------------- item 2: negated statements

@pytest.mark.parametrize("statement,qrs,expected", [
    # ../shared/data/vendor/philips-xml/129DYPRG.XML, device QRS 135 ms: wide QRS, not LBBB
    ("Nonspecific intraventricular conduction delay QRSd >115mS, not LBBB/RBBB", 135, "wide_qrs"),
    ("Nonspecific intraventricular conduction delay QRSd >115mS, not LBBB/RBBB", 110, None),
    ("No atrial fibrillation", 90, None),
    ("Sinus rhythm without pacing", 90, None),
    ("Atrial fibrillation ruled out", 90, None),
    ("LBBB is not present", 90, None),
    # hedges are not negations: the cohort is meant to be clean
    ("Cannot rule out atrial fibrillation", 90, "afib"),
    ("Can not rule out LBBB", 90, "lbbb"),
    ("Left bundle branch block cannot be ruled out", 90, "lbbb"),
    ("Rule out LBBB", 90, "lbbb"),
    # a negation reaches to the end of its clause only
    ("No significant change, LBBB", 150, "lbbb"),
    ("Paced rhythm, no LBBB", 150, "paced"),
])
def test_item2_statement_matching_understands_negation(statement, qrs, expected):
    hit = classify_exclusion([statement], qrs, "M")
    assert (hit[0] if hit else None) == expected
    if hit and expected != "wide_qrs":
        assert hit[1] == f"statement {statement!r}"  # the rule names the statement it matched


def test_item2_the_real_philips_file_is_excluded_as_wide_qrs(shared_data):
    from elvmass.io import read_ecg

    rec = read_ecg(shared_data / "vendor" / "philips-xml" / "129DYPRG.XML")
    assert any("not LBBB/RBBB" in s for s in rec.statements)
    assert classify_exclusion(rec.statements, rec.measurements.qrs_ms, "M") == ("wide_qrs", "device QRS 135 ms")


# ---------------------------------------------------------------- item 13: unit hints

@pytest.mark.parametrize("column,value,hint", [
    ("lvm_g", "0.15", "0.15 looks like kilograms (= 150 g)"),
    ("height_cm", "1.75", "1.75 looks like metres (= 175 cm)"),
    ("height_cm", "69", "69 looks like inches (= 175 cm)"),     # 69 in x 2.54 = 175.3 cm
    ("weight_kg", "400", "400 looks like pounds (= 181 kg)"),   # 400 lb x 0.4536 = 181.4 kg
])
def test_item13_out_of_range_values_name_the_likely_unit(column, value, hint):
    row = {"patient_id": "P1", "ecg_path": "a.xml", "lvm_g": "150", "lvm_source": "mr", "sex": "M",
           "age_years": "60", "height_cm": "175", "weight_kg": "80", column: value}
    reasons = [p.reason for p in validate_manifest(pd.DataFrame([row]), check_files=False).problems]
    assert len(reasons) == 1 and hint in reasons[0], reasons


# ---------------------------------------------------------------- items 10 and 15: beats and inspect

def test_item10_beats_prints_bracketed_file_names(shared_data, tmp_path):
    named = tmp_path / "[a] ecg.dcm"
    shutil.copy(shared_data / "vendor" / "dicom" / "waveform_ecg.dcm", named)
    res = runner.invoke(app, ["beats", str(named)], env={"COLUMNS": "200"})
    assert res.exit_code == 0, res.output
    assert "[a] ecg.dcm" in res.stdout


@pytest.mark.parametrize("command", ["inspect", "beats"])
def test_item15_a_folder_without_ecgs_fails_as_predict_does(command, tmp_path):
    (tmp_path / "notes.txt").write_text("no ECG here")
    res = runner.invoke(app, [command, str(tmp_path)])
    assert res.exit_code == 1 and "no ECG files found" in res.stderr


# ---------------------------------------------------------------- item 21: help and exit codes

def _help(*cmd) -> str:
    res = runner.invoke(app, [*cmd, "--help"], env={"COLUMNS": "200"})
    assert res.exit_code == 0
    return " ".join(res.stdout.split())


def test_item21_quiet_and_sex_specific_are_described():
    for cmd in ("train", "demo"):
        assert "No progress bars or log lines" in _help(cmd)
    study = _help("study")
    assert "--no-sex-specific" in study and "off by default" in study and "`train` fits them by default" in study


def test_item21_one_exit_code_for_an_unusable_manifest(tmp_path):
    bad = tmp_path / "m.csv"
    bad.write_text("patient_id,lvm_g\n1,100\n")  # required columns missing
    codes = {
        "study": runner.invoke(app, ["study", "--cohort", str(bad), "--out", str(tmp_path / "o"),
                                     "--preset", "quick"]).exit_code,
        "train": runner.invoke(app, ["train", "--cohort", str(bad), "--out", str(tmp_path / "b"),
                                     "--preset", "quick", "--quiet"]).exit_code,
        "cohort validate": runner.invoke(app, ["cohort", "validate", str(bad)]).exit_code,
    }
    assert codes == {"study": 2, "train": 2, "cohort validate": 2}


def test_item21_readme_documents_the_exit_codes_and_presets():
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    own = readme.split("## Using it on your own data", 1)[1].split("\n## ", 1)[0]
    assert "**Exit status**" in own and "`0`" in own and "`1`" in own and "`2`" in own
    assert "--preset" in own
