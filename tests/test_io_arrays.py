"""NumPy/CSV arrays with a stated rate, and reading what the synth MUSE writer produces,
both made in tmp_path from a real PTB-XL record (00136_hr, Wagner et al. 2020, CC-BY-4.0)."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest

from elvmass import ECGReadError, read_ecg
from elvmass.io import detect_format, find_ecg_files
from elvmass.record import LEADS, DeviceMeasurements, Patient


@pytest.fixture(scope="module")
def real(shared_data):
    return read_ecg(shared_data / "ptbxl-sample" / "records500" / "00000" / "00136_hr")


def test_npy_in_either_orientation(real, tmp_path):
    for name, arr in (("a.npy", real.signal_mv), ("b.npy", real.signal_mv.T.copy())):
        np.save(tmp_path / name, arr)
        rec = read_ecg(tmp_path / name, fs_hz=500)
        assert rec.source_format == "npy" and rec.fs_hz == 500.0
        assert np.array_equal(rec.signal_mv, real.signal_mv)


def test_array_needs_a_rate_and_a_sane_one(real, tmp_path):
    np.save(tmp_path / "a.npy", real.signal_mv)
    with pytest.raises(ECGReadError, match="fs_hz"):
        read_ecg(tmp_path / "a.npy")
    with pytest.raises(ECGReadError, match="implausible sampling rate"):
        read_ecg(tmp_path / "a.npy", fs_hz=1_000_000)
    np.save(tmp_path / "bad.npy", real.signal_mv[:5])
    with pytest.raises(ECGReadError, match="no axis of 12"):
        read_ecg(tmp_path / "bad.npy", fs_hz=500)


def test_csv_with_header_in_any_order_and_without_header(real, tmp_path):
    order = ["V6", "I", "aVR", "II", "V1", "V2", "V3", "V4", "V5", "III", "aVL", "aVF"]
    cols = np.stack([real.lead(n) for n in order], axis=1)
    np.savetxt(tmp_path / "h.csv", cols, delimiter=",", header=",".join(order), comments="", fmt="%.3f")
    rec = read_ecg(tmp_path / "h.csv", fs_hz=500)
    assert rec.source_format == "csv"
    np.testing.assert_allclose(rec.signal_mv, real.signal_mv, atol=5e-4)
    np.savetxt(tmp_path / "n.csv", real.signal_mv.T, delimiter=",", fmt="%.3f")
    np.testing.assert_allclose(read_ecg(tmp_path / "n.csv", fs_hz=500).signal_mv, real.signal_mv, atol=5e-4)
    eight = ["I", "II", "V1", "V2", "V3", "V4", "V5", "V6"]
    np.savetxt(tmp_path / "e.csv", np.stack([real.lead(n) for n in eight], 1), delimiter=",", fmt="%.3f")
    rec8 = read_ecg(tmp_path / "e.csv", fs_hz=500)
    assert np.abs(rec8.lead("aVF") - real.lead("aVF")).max() < 3e-3


def test_duplicated_and_missing_leads_in_a_csv_header(real, tmp_path):
    names = list(LEADS)
    names[7] = "V1"
    np.savetxt(tmp_path / "d.csv", real.signal_mv.T, delimiter=",", header=",".join(names), comments="", fmt="%.3f")
    with pytest.raises(ECGReadError, match="duplicated lead V1"):
        read_ecg(tmp_path / "d.csv", fs_hz=500)
    names = [n for n in LEADS if n != "V4"]
    sig = np.stack([real.lead(n) for n in names], 1)
    np.savetxt(tmp_path / "m.csv", sig, delimiter=",", header=",".join(names), comments="", fmt="%.3f")
    with pytest.raises(ECGReadError, match="missing lead V4"):
        read_ecg(tmp_path / "m.csv", fs_hz=500)


def test_find_ecg_files_counts_a_wfdb_record_once(shared_data, tmp_path):
    found = find_ecg_files(shared_data / "vendor")
    assert len(found) == 7
    ptb = find_ecg_files(shared_data / "ptbxl-sample")
    assert len(ptb) == 400 and all(p.suffix == ".hea" for p in ptb)  # records500 + records100, no .dat
    (tmp_path / "x.npy").write_bytes(b"")
    (tmp_path / "imaging.csv").write_text("a,b\n")
    assert find_ecg_files(tmp_path) == []
    assert [p.name for p in find_ecg_files(tmp_path, include_arrays=True)] == ["imaging.csv", "x.npy"]


def test_reads_what_the_muse_writer_writes(real, tmp_path):
    from elvmass.io.muse_write import write_muse_xml

    rec = real.replace(
        patient=Patient(age_years=52.0, sex="M", height_cm=167.0, weight_kg=72.0, patient_id="P136"),
        measurements=DeviceMeasurements(hr_bpm=64.0, pr_ms=160.0, qrs_ms=92.0, qt_ms=388.0, qtc_ms=401.0,
                                        p_axis_deg=55.0, r_axis_deg=-12.0, t_axis_deg=40.0),
        acquired_at=dt.datetime(2024, 3, 5, 14, 7, 9),
        statements=("Normal sinus rhythm", "Normal ECG"),
    )
    path = write_muse_xml(rec, tmp_path / "p136.xml")
    assert detect_format(path) == "ge_muse_xml"
    back = read_ecg(path)
    assert back.source_format == "ge_muse_xml" and back.fs_hz == 500.0 and back.n_samples == 5000
    # 8 leads stored as int16 at 4.88 uV/bit: within half a step; the derived ones within 1.5 steps
    stored = ["I", "II", "V1", "V2", "V3", "V4", "V5", "V6"]
    for name in stored:
        assert np.abs(back.lead(name) - rec.lead(name)).max() <= 0.5 * 4.88e-3 + 1e-6
    for name in ("III", "aVR", "aVL", "aVF"):
        assert np.abs(back.lead(name) - rec.lead(name)).max() <= 1.5 * 4.88e-3 + 2e-3  # + PTB-XL's own 2 uV
    assert back.patient == rec.patient
    assert back.measurements == rec.measurements
    assert back.acquired_at == rec.acquired_at
    assert back.statements == rec.statements
    assert back.flags == ()


def test_array_format_follows_the_content_or_the_forced_format_not_the_extension(real, tmp_path):
    # a NumPy file without its .npy extension is detected as npy; it used to be parsed as CSV text
    # ("not a text CSV file"), and so was any file forced with format="npy"
    with open(tmp_path / "ecg_export", "wb") as fh:
        np.save(fh, real.signal_mv)
    rec = read_ecg(tmp_path / "ecg_export", fs_hz=500)
    assert rec.source_format == "npy" and np.array_equal(rec.signal_mv, real.signal_mv)
    (tmp_path / "ecg.dat").write_bytes((tmp_path / "ecg_export").read_bytes())
    assert np.array_equal(read_ecg(tmp_path / "ecg.dat", fs_hz=500, format="npy").signal_mv, real.signal_mv)
    # and a CSV under another name, forced
    np.savetxt(tmp_path / "ecg.txt", real.signal_mv.T, delimiter=",", fmt="%.4f")
    rec = read_ecg(tmp_path / "ecg.txt", fs_hz=500, format="csv")
    assert rec.source_format == "csv" and np.abs(rec.signal_mv - real.signal_mv).max() < 1e-4
