"""The GE MUSE XML and WFDB writers: round trips through ecgdatakit, wfdb and a genuine MUSE export."""

from __future__ import annotations

import datetime as dt
import warnings
from pathlib import Path

import numpy as np
import pytest

from elvmass.io.muse_write import MUSE_UV_PER_BIT, SNOMED_CODES, write_muse_xml, write_wfdb
from elvmass.record import LEADS, DeviceMeasurements, ECGRecord, Patient, derive_limb_leads

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
GENUINE_MUSE = DATA / "vendor" / "ge-muse-xml" / "muse_ecg1.xml"  # musePHI (MIT), GE MAC55 export


def _record(seed: int = 0) -> ECGRecord:
    rng = np.random.default_rng(seed)
    t = np.arange(5000) / 500.0
    lead_i = 0.6 * np.sin(2 * np.pi * 1.1 * t)
    lead_ii = 0.9 * np.cos(2 * np.pi * 1.3 * t)
    limb = derive_limb_leads(lead_i, lead_ii)
    chest = [rng.normal(0.0, 0.4, t.size) for _ in range(6)]
    sig = np.vstack([lead_i, lead_ii, limb["III"], limb["aVR"], limb["aVL"], limb["aVF"], *chest])
    return ECGRecord(
        sig,
        500.0,
        patient=Patient(age_years=61, sex="F", height_cm=158.0, weight_kg=55.0, patient_id="SYN00001"),
        measurements=DeviceMeasurements(hr_bpm=72, pr_ms=160, qrs_ms=88, qt_ms=380, qtc_ms=416, p_axis_deg=45, r_axis_deg=-12, t_axis_deg=40),
        acquired_at=dt.datetime(2020, 3, 4, 9, 5, 7),
        statements=("Normal sinus rhythm", "Left ventricular hypertrophy & <voltage>"),
    )


def test_ecgdatakit_reads_what_we_write(tmp_path):
    ecgdatakit = pytest.importorskip("ecgdatakit")
    rec = _record()
    path = write_muse_xml(rec, tmp_path / "a.xml")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no CRC or scaling warnings
        parsed = ecgdatakit.FileParser().parse(path)
    assert parsed.source_format == "ge_muse_xml"
    assert parsed.patient.patient_id == "SYN00001"
    assert (parsed.patient.age, parsed.patient.sex, parsed.patient.height, parsed.patient.weight) == (61, "F", 158.0, 55.0)
    assert parsed.recording.date == dt.datetime(2020, 3, 4, 9, 5, 7)
    m = parsed.measurements
    assert (m.heart_rate, m.pr_interval, m.qrs_duration, m.qt_interval) == (72, 160, 88, 380)
    assert (m.p_axis, m.qrs_axis, m.t_axis) == (45, -12, 40)
    assert [s for s, _ in parsed.interpretation.statements] == list(rec.statements)
    assert [lead.label for lead in parsed.leads] == ["I", "II", "V1", "V2", "V3", "V4", "V5", "V6"]
    assert parsed.raw_metadata["checksum_valid"] is True
    for lead in parsed.leads:
        assert lead.sampling_rate == 500 and lead.units == "mV"
        err = np.abs(lead.samples - rec.lead(lead.label))
        assert err.max() <= MUSE_UV_PER_BIT / 2000.0 + 1e-6  # half a bit


def test_genuine_muse_waveform_survives_a_rewrite_bit_exactly(tmp_path):
    ecgdatakit = pytest.importorskip("ecgdatakit")
    orig = ecgdatakit.FileParser().parse(GENUINE_MUSE)
    stored = {lead.label: lead.samples for lead in orig.leads}
    limb = derive_limb_leads(stored["I"], stored["II"])
    sig = np.vstack([stored["I"], stored["II"], limb["III"], limb["aVR"], limb["aVL"], limb["aVF"]] + [stored[f"V{i}"] for i in range(1, 7)])
    rec = ECGRecord(sig, 500.0, patient=Patient(age_years=60, sex="M", patient_id="JAX01234"))
    again = ecgdatakit.FileParser().parse(write_muse_xml(rec, tmp_path / "b.xml"))
    for lead in again.leads:
        counts_orig = np.rint(stored[lead.label] * 1000 / MUSE_UV_PER_BIT)
        counts_new = np.rint(lead.samples * 1000 / MUSE_UV_PER_BIT)
        assert np.array_equal(counts_orig, counts_new), lead.label
    # The genuine file's first stored sample of lead I is 32 counts (0.156 mV).
    assert round(float(again.leads[0].samples[0]) * 1000 / MUSE_UV_PER_BIT) == 32


def test_muse_output_is_byte_identical_for_the_same_record(tmp_path):
    a = write_muse_xml(_record(1), tmp_path / "a.xml").read_bytes()
    b = write_muse_xml(_record(1), tmp_path / "b.xml").read_bytes()
    c = write_muse_xml(_record(2), tmp_path / "c.xml").read_bytes()
    assert a == b and a != c
    assert not list(tmp_path.glob(".tmp-*"))


def test_muse_resamples_other_rates_to_500_hz(tmp_path):
    ecgdatakit = pytest.importorskip("ecgdatakit")
    rec = _record().resampled(250.0)
    parsed = ecgdatakit.FileParser().parse(write_muse_xml(rec, tmp_path / "c.xml"))
    assert parsed.leads[0].sampling_rate == 500 and parsed.leads[0].samples.size == 5000


def test_wfdb_round_trip_with_cinc_comments(tmp_path):
    wfdb = pytest.importorskip("wfdb")
    rec = _record()
    hea = write_wfdb(rec, tmp_path / "r0001", dx_codes=(SNOMED_CODES["LBBB"],))
    assert hea.name == "r0001.hea" and (tmp_path / "r0001.dat").exists()
    back = wfdb.rdrecord(str(tmp_path / "r0001"))
    assert back.sig_name == list(LEADS) and back.fs == 500
    assert np.abs(back.p_signal.T - rec.signal_mv).max() <= 0.0005 + 1e-6
    comments = dict(c.split(": ", 1) for c in back.comments)
    assert comments["Age"] == "61" and comments["Sex"] == "Female" and comments["Height"] == "158"
    assert comments["Dx"] == "164909002"
    assert comments["PatientID"] == "SYN00001" and comments["AcquisitionDate"] == "2020-03-04T09:05:07"
    assert comments["QRSDuration"] == "88" and comments["RAxis"] == "-12"
    hea_bytes = hea.read_bytes()
    write_wfdb(rec, tmp_path / "r0001", dx_codes=(SNOMED_CODES["LBBB"],))
    assert hea.read_bytes() == hea_bytes


def test_writer_rejects_non_records(tmp_path):
    with pytest.raises(TypeError, match="ECGRecord"):
        write_muse_xml(np.zeros((12, 10)), tmp_path / "x.xml")


def test_elvmass_reads_back_everything_the_wfdb_writer_stores(tmp_path):
    # synth --format wfdb writes patient ID, acquisition time, device statements and measurements as
    # header comments; the reader used to drop them, so cohort build excluded every such ECG
    # ("no patient ID in file")
    from elvmass.io import read_ecg

    rec = _record()
    back = read_ecg(write_wfdb(rec, tmp_path / "r0001", dx_codes=(SNOMED_CODES["LBBB"],)))
    assert back.patient == rec.patient
    assert back.acquired_at == rec.acquired_at
    assert back.measurements == rec.measurements
    # the device statements come first, then the Dx code as the CinC label
    assert back.statements == (*rec.statements, "left bundle branch block [SNOMED 164909002]")
