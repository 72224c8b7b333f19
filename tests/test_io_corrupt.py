"""Bad input, made in tmp_path from real files: for each format a truncated and a garbage copy
give an ECGReadError naming the file, and `elvmass inspect` exits non-zero without a traceback."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
from typer.testing import CliRunner

from elvmass import ECGReadError, read_ecg
from elvmass.cli import app
from elvmass.io import read_ecgs

VENDOR_FILES = [
    "ge-muse-xml/muse_ecg1.xml",
    "philips-xml/129DYPRG.XML",
    "philips-xml/3191723_ZZDEMOPTONLY_1-04_orig.xml",
    "hl7-aecg/example-aecg.xml",
    "dicom/waveform_ecg.dcm",
]
PTBXL_RECORD = "ptbxl-sample/records500/00000/00001_hr"


def _truncated(src, dst, fraction=0.5):
    data = src.read_bytes()
    dst.write_bytes(data[: int(len(data) * fraction)])
    return dst


def _garbage(src, dst, seed=0):
    n = src.stat().st_size
    dst.write_bytes(np.random.default_rng(seed).integers(0, 256, n, dtype=np.uint8).tobytes())
    return dst


def _wfdb_copy(shared_data, tmp_path, name):
    src = shared_data / PTBXL_RECORD
    shutil.copy(src.with_suffix(".dat"), tmp_path / f"{name}.dat")
    text = src.with_suffix(".hea").read_text().replace("00001_hr", name)
    (tmp_path / f"{name}.hea").write_text(text)
    return tmp_path / f"{name}.hea"


def _array_copies(shared_data, tmp_path):
    rec = read_ecg(shared_data / PTBXL_RECORD)
    npy = tmp_path / "ecg.npy"
    np.save(npy, rec.signal_mv)
    csv = tmp_path / "ecg.csv"
    np.savetxt(csv, rec.signal_mv.T, delimiter=",", header=",".join(
        ["I", "II", "III", "aVR", "aVL", "aVF", "V1", "V2", "V3", "V4", "V5", "V6"]), comments="", fmt="%.3f")
    return npy, csv


def bad_copies(shared_data, tmp_path):
    """(kind, path) for a truncated and a garbage copy of a real file of every format."""
    out = []
    for rel in VENDOR_FILES:
        src = shared_data / "vendor" / rel
        out.append((f"truncated {rel}", _truncated(src, tmp_path / f"trunc_{src.name}")))
        out.append((f"garbage {rel}", _garbage(src, tmp_path / f"garbage_{src.name}")))
    hea = _wfdb_copy(shared_data, tmp_path, "trunc_rec")
    _truncated((shared_data / PTBXL_RECORD).with_suffix(".dat"), hea.with_suffix(".dat"))
    out.append(("truncated wfdb .dat", hea))
    hea2 = _wfdb_copy(shared_data, tmp_path, "trunc_hea")
    _truncated((shared_data / PTBXL_RECORD).with_suffix(".hea"), hea2, 0.3)
    out.append(("truncated wfdb .hea", hea2))
    hea3 = _wfdb_copy(shared_data, tmp_path, "garbage_rec")
    _garbage((shared_data / PTBXL_RECORD).with_suffix(".hea"), hea3)
    out.append(("garbage wfdb .hea", hea3))
    npy, csv = _array_copies(shared_data, tmp_path)
    out.append(("truncated npy", _truncated(npy, tmp_path / "trunc.npy")))
    out.append(("garbage npy", _garbage(npy, tmp_path / "garbage.npy")))
    out.append(("truncated csv", _truncated(csv, tmp_path / "trunc.csv", 0.503)))
    out.append(("garbage csv", _garbage(csv, tmp_path / "garbage.csv")))
    return out


def test_every_bad_copy_raises_an_error_naming_the_file(shared_data, tmp_path):
    cases = bad_copies(shared_data, tmp_path)
    assert len(cases) == 2 * len(VENDOR_FILES) + 3 + 4
    for kind, path in cases:
        with pytest.raises(ECGReadError) as info:
            read_ecg(path, fs_hz=500.0)
        message = str(info.value)
        assert message.startswith(str(path)), (kind, message)
        assert "\n" not in message, (kind, message)
        assert len(info.value.problem) > 10, (kind, message)


def test_truncated_wfdb_signal_file_is_reported_as_truncated(shared_data, tmp_path):
    hea = _wfdb_copy(shared_data, tmp_path, "rec")
    _truncated((shared_data / PTBXL_RECORD).with_suffix(".dat"), hea.with_suffix(".dat"), 0.7)
    with pytest.raises(ECGReadError, match="truncated"):
        read_ecg(hea)
    hea.with_suffix(".dat").unlink()
    with pytest.raises(ECGReadError, match="signal file missing"):
        read_ecg(hea)


def test_garbage_wfdb_signal_data_is_flagged_not_silently_passed(shared_data, tmp_path):
    # Random bytes in a .dat of the right size decode to +-32 mV noise: readable, but flagged.
    hea = _wfdb_copy(shared_data, tmp_path, "noise")
    _garbage((shared_data / PTBXL_RECORD).with_suffix(".dat"), hea.with_suffix(".dat"))
    rec = read_ecg(hea)
    assert any(f.startswith("implausible_amplitude:") for f in rec.flags)


def test_empty_missing_and_unsupported_files(tmp_path):
    empty = tmp_path / "empty.xml"
    empty.write_bytes(b"")
    with pytest.raises(ECGReadError, match="empty"):
        read_ecg(empty)
    with pytest.raises(ECGReadError, match="not found"):
        read_ecg(tmp_path / "nope.xml")
    other = tmp_path / "notes.xml"
    other.write_text("<?xml version='1.0'?><note>hello</note>")
    with pytest.raises(ECGReadError, match="unsupported XML"):
        read_ecg(other)
    pdf = tmp_path / "scan.pdf"
    pdf.write_bytes(b"%PDF-1.4\n" + b"x" * 100)
    with pytest.raises(ECGReadError, match="unsupported"):
        read_ecg(pdf)
    with pytest.raises(ECGReadError, match="folder"):
        read_ecg(tmp_path)


def test_read_ecgs_continues_past_bad_files(shared_data, tmp_path):
    good = [shared_data / "vendor" / "ge-muse-xml" / "muse_ecg1.xml", shared_data / PTBXL_RECORD]
    bad = _truncated(shared_data / "vendor" / "ge-muse-xml" / "muse_ecg2.xml", tmp_path / "bad.xml")
    records, errors = read_ecgs([good[0], bad, good[1], tmp_path / "missing.dcm"])
    assert [r.source_format for r in records] == ["ge_muse_xml", "wfdb"]
    assert [e.path for e in errors] == [str(bad), str(tmp_path / "missing.dcm")]


def test_inspect_cli_reports_every_bad_file_in_one_line_and_exits_nonzero(shared_data, tmp_path):
    cases = bad_copies(shared_data, tmp_path)
    good = shared_data / "vendor" / "ge-muse-xml" / "muse_ecg1.xml"
    args = ["inspect", "--json", "--fs-hz", "500", str(good)] + [str(p) for _, p in cases]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 1
    assert isinstance(result.exception, SystemExit)  # a clean exit, not a crash
    assert "Traceback" not in result.output and "Traceback" not in result.stderr
    err_lines = [ln for ln in result.stderr.splitlines() if ln.strip()]
    assert len(err_lines) == len(cases)
    for (_, path), line in zip(cases, err_lines):
        assert str(path) in line
    # the good file was still inspected
    out_lines = [ln for ln in result.stdout.splitlines() if ln.strip()]
    assert len(out_lines) == 1 and '"format": "ge_muse_xml"' in out_lines[0]
