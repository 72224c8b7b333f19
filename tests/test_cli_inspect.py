"""`elvmass inspect` run as a user would: through the typer app and once through the installed
console script. Real files from ../shared/data (sources in its README)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from elvmass.cli import app
from elvmass.io import example_ecg_path

JSON_KEYS = {"path", "format", "fs_hz", "leads", "n_samples", "patient", "measurements", "flags"}


def _json_lines(text):
    return [json.loads(ln) for ln in text.splitlines() if ln.strip()]


def test_inspect_json_for_dicom_and_muse(shared_data):
    dcm = shared_data / "vendor" / "dicom" / "waveform_ecg.dcm"
    muse = shared_data / "vendor" / "ge-muse-xml" / "muse_ecg1.xml"
    result = CliRunner().invoke(app, ["inspect", "--json", str(dcm), str(muse)])
    assert result.exit_code == 0, result.output
    first, second = _json_lines(result.stdout)
    assert JSON_KEYS <= set(first)
    assert first["path"] == str(dcm) and first["format"] == "dicom" and first["fs_hz"] == 1000.0
    assert first["n_samples"] == 10000 and len(first["leads"]) == 12 and first["leads"][0] == "I"
    assert first["measurements"]["qrs_ms"] == 75.0
    assert [first["measurements"][k] for k in ("p_axis_deg", "r_axis_deg", "t_axis_deg")] == [74.0, 52.0, 57.0]
    assert first["patient"] == {"patient_id": "642341", "age_years": 42.0, "sex": "F", "height_cm": None,
                                "weight_kg": None}
    assert set(first["measurements"]) >= {"hr_bpm", "pr_ms", "qrs_ms", "qt_ms", "p_axis_deg", "r_axis_deg", "t_axis_deg"}
    assert second["format"] == "ge_muse_xml" and second["measurements"]["qrs_ms"] == 78.0 and second["flags"] == []


def test_inspect_example_text(shared_data):
    result = CliRunner().invoke(app, ["inspect", "--example"])
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert str(example_ecg_path()) in out
    assert "wfdb" in out and "500 Hz" in out and "10.00 s" in out
    assert "age 52 y" in out and "sex M" in out and "height 167 cm" in out and "weight 72 kg" in out
    assert "flags        none" in out


def test_inspect_plot_one_png_per_file(shared_data, tmp_path):
    files = [example_ecg_path(), shared_data / "vendor" / "philips-xml" / "129DYPRG.XML", tmp_path / "missing.xml"]
    out = tmp_path / "plots" / "out.png"
    result = CliRunner().invoke(app, ["inspect", "--plot", str(out)] + [str(f) for f in files])
    assert result.exit_code == 1  # the missing file
    assert "missing.xml" in result.stderr
    made = sorted(p.name for p in out.parent.iterdir())
    assert made == ["out-2.png", "out.png"]
    import matplotlib.image as mpimg

    img = mpimg.imread(out)
    assert img.shape[1] > 1500 and img.shape[0] > 700
    # the grid is drawn: pinkish pixels (red > blue) are common, and the trace (dark) is present
    rgb = img[..., :3]
    assert np.mean((rgb[..., 0] - rgb[..., 2]) > 0.15) > 0.05
    assert np.mean(rgb.sum(axis=-1) < 0.6) > 0.002


def test_inspect_array_file_needs_fs_hz(shared_data, tmp_path):
    from elvmass import read_ecg

    np.save(tmp_path / "ecg.npy", read_ecg(example_ecg_path()).signal_mv)
    runner = CliRunner()
    bad = runner.invoke(app, ["inspect", str(tmp_path / "ecg.npy")])
    assert bad.exit_code == 1 and "--fs-hz" in bad.stderr and "Traceback" not in bad.output
    good = runner.invoke(app, ["inspect", "--json", "--fs-hz", "500", str(tmp_path / "ecg.npy")])
    assert good.exit_code == 0
    assert _json_lines(good.stdout)[0]["format"] == "npy"


def test_inspect_a_folder_scans_it(shared_data):
    result = CliRunner().invoke(app, ["inspect", "--json", str(shared_data / "vendor")])
    assert result.exit_code == 0, result.stderr
    assert sorted(d["format"] for d in _json_lines(result.stdout)) == sorted(
        ["dicom", "ge_muse_xml", "ge_muse_xml", "hl7_aecg", "hl7_aecg", "philips_xml", "philips_xml"]
    )


def test_console_script_bad_file_one_line_no_traceback(tmp_path):
    exe = Path(sys.executable).with_name("elvmass")
    if not exe.exists():
        exe = shutil.which("elvmass")
    if exe is None:
        pytest.fail("the elvmass console script is not installed next to the interpreter")
    bad = tmp_path / "broken.xml"
    bad.write_bytes(example_ecg_path().read_bytes()[:10] + b"<RestingECG><Patient")
    proc = subprocess.run([str(exe), "inspect", str(bad), str(example_ecg_path())],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and str(bad) in lines[0]
    assert "ptbxl_00136_hr.hea" in proc.stdout


def test_inspect_plot_into_an_existing_folder_names_pngs_after_the_ecgs(shared_data, tmp_path):
    # `--plot plots/` used to fail with "Is a directory: '/tmp/.tmp-...' -> 'plots'"
    files = [shared_data / "vendor" / "ge-muse-xml" / "muse_ecg1.xml", shared_data / "vendor" / "ge-muse-xml" / "muse_ecg2.xml",
             shared_data / "ptbxl-sample" / "records100" / "00000" / "00001_lr.hea"]
    (tmp_path / "plots").mkdir()
    result = CliRunner().invoke(app, ["inspect", "--json", "--plot", str(tmp_path / "plots")] + [str(f) for f in files])
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in (tmp_path / "plots").iterdir()) == ["00001_lr.png", "muse_ecg1.png", "muse_ecg2.png"]


def test_inspect_json_carries_the_patient_id_the_text_shows(shared_data):
    # cohort building matches on this ID, so a script reading --json needs it as much as a person does
    muse = shared_data / "vendor" / "ge-muse-xml" / "muse_ecg1.xml"
    result = CliRunner().invoke(app, ["inspect", "--json", str(muse)])
    assert _json_lines(result.stdout)[0]["patient"]["patient_id"] == "JAX01234"


def test_error_line_prints_bracketed_file_names_literally(tmp_path):
    """Rich markup in a file name ('[archive]', '[bold]') is printed as written, never interpreted."""
    from typer.testing import CliRunner

    from elvmass.cli import app

    bad = tmp_path / "[archive]" / "[bold]ecg.xml"
    bad.parent.mkdir()
    bad.write_text("not an ECG")
    res = CliRunner().invoke(app, ["inspect", str(bad)])
    assert res.exit_code == 1
    assert "[archive]" in res.stderr and "[bold]ecg.xml" in res.stderr
    assert "Traceback" not in res.stderr + res.stdout
