"""Write an :class:`~elvmass.record.ECGRecord` as a GE MUSE ``RestingECG`` XML file (and as WFDB).

The layout follows genuine MUSE 9 exports from a MAC 5500 cart (the files in
``shared/data/vendor/ge-muse-xml``, from the MIT-licensed musePHI package, and GE's
``restecg.dtd``): a ``RestingECG`` root with ``MuseInfo``, ``PatientDemographics`` (PatientID,
PatientAge + AgeUnits, Gender MALE/FEMALE, HeightCM, WeightKG), ``TestDemographics``
(AcquisitionDate ``MM-DD-YYYY``, AcquisitionTime ``HH:MM:SS``), ``RestingECGMeasurements``,
``Diagnosis`` with one ``DiagnosisStatement``/``StmtText`` per line (``StmtFlag`` ENDSLINE),
and a ``Rhythm`` ``Waveform`` with 8 stored leads (I, II, V1-V6; MUSE never stores III, aVR,
aVL, aVF, they are derived), each a base64 block of little-endian int16 at
4.88 microvolts per bit, with its CRC32 as MUSE writes it.

The output is a pure function of the record: no "now" timestamps, fixed number formatting and
fixed element order, so the same record always gives byte-identical files.

    >>> import numpy as np, tempfile, pathlib
    >>> from elvmass.record import ECGRecord, Patient
    >>> rec = ECGRecord(np.zeros((12, 5000), np.float32), 500.0, patient=Patient(patient_id="P1", sex="F"))
    >>> p = write_muse_xml(rec, pathlib.Path(tempfile.mkdtemp()) / "p1.xml")
    >>> p.read_bytes()[:38]
    b'<?xml version="1.0" encoding="ISO-8859'
"""

from __future__ import annotations

import base64
import math
import os
import tempfile
import zlib
from pathlib import Path
from xml.sax.saxutils import escape

import numpy as np

from elvmass.atomic import atomic_write_bytes
from elvmass.record import LEAD_INDEX, LEADS, ECGRecord

#: MUSE stores these 8 leads; the other 4 follow from Einthoven and Goldberger.
MUSE_STORED_LEADS: tuple[str, ...] = ("I", "II", "V1", "V2", "V3", "V4", "V5", "V6")
#: Amplitude resolution of a MAC 5500 / MUSE export (microvolts per bit).
MUSE_UV_PER_BIT = 4.88
MUSE_FS_HZ = 500

#: SNOMED CT codes used in the PhysioNet/CinC 2020-21 ``#Dx`` header comment.
SNOMED_CODES: dict[str, str] = {
    "LBBB": "164909002",
    "RBBB": "59118001",
    "AF": "164889003",
    "PACED": "10370003",
    "SR": "426783006",  # sinus rhythm
    "LVH": "164873001",
}

_B64_LINE = 68  # characters per base64 line, as in MUSE exports


def _fmt_int(value: float | None) -> str | None:
    if value is None:
        return None
    try:
        value = float(value)
    except (TypeError, ValueError):
        return None
    if not math.isfinite(value):
        return None
    return str(int(round(value)))


def _fmt_num(value: float | None, decimals: int = 1) -> str | None:
    if value is None or not math.isfinite(float(value)):
        return None
    text = f"{float(value):.{decimals}f}"
    return text.rstrip("0").rstrip(".") if "." in text else text


def _quantise_counts(signal_mv: np.ndarray, uv_per_bit: float) -> np.ndarray:
    """mV -> int16 counts (rounded half to even, clipped to the int16 range)."""
    counts = np.rint(np.asarray(signal_mv, dtype=np.float64) * 1000.0 / uv_per_bit)
    counts = np.nan_to_num(counts, nan=0.0)
    return np.clip(counts, -32768, 32767).astype("<i2")


def _b64_block(payload: bytes, indent: str) -> str:
    text = base64.b64encode(payload).decode("ascii")
    lines = [text[i : i + _B64_LINE] for i in range(0, len(text), _B64_LINE)]
    return "\n".join(lines)


def render_muse_xml(
    record: ECGRecord,
    *,
    acquisition_device: str = "MAC55",
    site_name: str = "elvmass synthetic",
    original_statements: tuple[str, ...] | None = None,
    ac_filter_hz: int | None = 60,
) -> bytes:
    """The MUSE XML document for ``record`` as bytes (ISO-8859-1), see :func:`write_muse_xml`."""
    if not isinstance(record, ECGRecord):
        raise TypeError(f"write_muse_xml needs an ECGRecord, got {type(record).__name__}")
    rec = record if abs(record.fs_hz - MUSE_FS_HZ) < 1e-9 else record.resampled(MUSE_FS_HZ)
    pat, meas = rec.patient, rec.measurements
    out: list[str] = ['<?xml version="1.0" encoding="ISO-8859-1"?>', '<!DOCTYPE RestingECG SYSTEM "restecg.dtd">']
    out.append("<RestingECG>")
    out.append("   <MuseInfo>\n      <MuseVersion>9.0.9.18167</MuseVersion>\n   </MuseInfo>")

    def block(tag: str, items: list[tuple[str, str | None]], indent: str = "   ") -> None:
        out.append(f"{indent}<{tag}>")
        for key, val in items:
            if val is not None and val != "":
                out.append(f"{indent}   <{key}>{escape(str(val))}</{key}>")
        out.append(f"{indent}</{tag}>")

    gender = {"M": "MALE", "F": "FEMALE"}.get(pat.sex or "", None)
    block(
        "PatientDemographics",
        [
            ("PatientID", pat.patient_id),
            ("PatientAge", _fmt_int(pat.age_years)),
            ("AgeUnits", "YEARS" if _fmt_int(pat.age_years) is not None else None),
            ("Gender", gender),
            ("HeightCM", _fmt_int(pat.height_cm)),
            ("WeightKG", _fmt_int(pat.weight_kg)),
        ],
    )
    acq = rec.acquired_at
    block(
        "TestDemographics",
        [
            ("DataType", "RESTING"),
            ("SiteName", site_name),
            ("AcquisitionDevice", acquisition_device),
            ("Status", "UNCONFIRMED"),
            ("Priority", "NORMAL"),
            ("AcquisitionTime", acq.strftime("%H:%M:%S") if acq else None),
            ("AcquisitionDate", acq.strftime("%m-%d-%Y") if acq else None),
            ("AcquisitionSoftwareVersion", "010B"),
            ("AnalysisSoftwareVersion", "241"),
        ],
    )
    m_items = [
        ("VentricularRate", _fmt_int(meas.hr_bpm)),
        ("AtrialRate", _fmt_int(meas.hr_bpm) if meas.pr_ms is not None else None),
        ("PRInterval", _fmt_int(meas.pr_ms)),
        ("QRSDuration", _fmt_int(meas.qrs_ms)),
        ("QTInterval", _fmt_int(meas.qt_ms)),
        ("QTCorrected", _fmt_int(meas.qtc_ms)),
        ("PAxis", _fmt_int(meas.p_axis_deg)),
        ("RAxis", _fmt_int(meas.r_axis_deg)),
        ("TAxis", _fmt_int(meas.t_axis_deg)),
        ("ECGSampleBase", str(MUSE_FS_HZ)),
        ("ECGSampleExponent", "0"),
    ]
    block("RestingECGMeasurements", m_items)
    block("OriginalRestingECGMeasurements", m_items)

    def diagnosis(tag: str, lines: tuple[str, ...]) -> None:
        out.append(f"   <{tag}>")
        out.append("      <Modality>RESTING</Modality>")
        for line in lines:
            out.append("      <DiagnosisStatement>")
            out.append("         <StmtFlag>ENDSLINE</StmtFlag>")
            out.append(f"         <StmtText>{escape(line)}</StmtText>")
            out.append("      </DiagnosisStatement>")
        out.append(f"   </{tag}>")

    diagnosis("Diagnosis", rec.statements)
    diagnosis("OriginalDiagnosis", tuple(original_statements) if original_statements is not None else rec.statements)

    n = rec.n_samples
    out.append("   <Waveform>")
    for key, val in [
        ("WaveformType", "Rhythm"),
        ("WaveformStartTime", "0"),
        ("NumberofLeads", str(len(MUSE_STORED_LEADS))),
        ("SampleType", "CONTINUOUS_SAMPLES"),
        ("SampleBase", str(MUSE_FS_HZ)),
        ("SampleExponent", "0"),
        ("HighPassFilter", "16"),
        ("LowPassFilter", "150"),
        ("ACFilter", str(ac_filter_hz) if ac_filter_hz else "NONE"),
    ]:
        out.append(f"      <{key}>{val}</{key}>")
    for name in MUSE_STORED_LEADS:
        counts = _quantise_counts(rec.signal_mv[LEAD_INDEX[name]], MUSE_UV_PER_BIT)
        payload = counts.tobytes()
        crc = zlib.crc32(payload) & 0xFFFFFFFF
        out.append("      <LeadData>")
        for key, val in [
            ("LeadByteCountTotal", str(len(payload))),
            ("LeadTimeOffset", "0"),
            ("LeadSampleCountTotal", str(n)),
            ("LeadAmplitudeUnitsPerBit", f"{MUSE_UV_PER_BIT:.2f}"),
            ("LeadAmplitudeUnits", "MICROVOLTS"),
            ("LeadHighLimit", "32767"),
            ("LeadLowLimit", "-32768"),
            ("LeadID", name),
            ("LeadOffsetFirstSample", "0"),
            ("FirstSampleBaseline", "0"),
            ("LeadSampleSize", "2"),
            ("LeadOff", "FALSE"),
            ("BaselineSway", "FALSE"),
            ("LeadDataCRC32", str(crc)),
        ]:
            out.append(f"         <{key}>{val}</{key}>")
        out.append("         <WaveFormData>")
        out.append(_b64_block(payload, ""))
        out.append("         </WaveFormData>")
        out.append("      </LeadData>")
    out.append("   </Waveform>")
    out.append("</RestingECG>")
    return ("\n".join(out) + "\n").encode("iso-8859-1", errors="xmlcharrefreplace")


def write_muse_xml(record: ECGRecord, path, **options) -> Path:
    """Write ``record`` as a GE MUSE RestingECG XML file; returns the path written.

    The 12-lead signal is resampled to 500 Hz if needed; the 8 independent leads (I, II, V1-V6)
    are stored as int16 at 4.88 uV/bit (values beyond +-160 mV are clipped). Demographics,
    acquisition date/time, device measurements and statements are written where the record has
    them. Options (keyword): ``acquisition_device``, ``site_name``, ``original_statements``
    (the unedited machine statements, default = ``record.statements``), ``ac_filter_hz``.
    The file is written atomically (temporary file + rename).

        >>> import numpy as np, tempfile, pathlib
        >>> from elvmass.record import ECGRecord
        >>> rec = ECGRecord(np.ones((12, 1000), np.float32), 500.0, statements=("Normal sinus rhythm",))
        >>> write_muse_xml(rec, pathlib.Path(tempfile.mkdtemp()) / "a.xml").name
        'a.xml'
    """
    path = Path(path)
    data = render_muse_xml(record, **options)
    atomic_write_bytes(path, data)
    return path


def write_wfdb(record: ECGRecord, path, *, dx_codes: tuple[str, ...] = (), uv_per_unit: float = 1.0) -> Path:
    """Write ``record`` as a WFDB record (``.hea`` + ``.dat``, format 16, all 12 leads); returns the .hea path.

    ``path`` is the record path with or without ``.hea``. The header carries PhysioNet/CinC
    2020-21 style comments (``#Age``, ``#Sex`` Male/Female, ``#Height``, ``#Weight``, ``#Dx``
    with SNOMED CT codes, e.g. ``SNOMED_CODES["LBBB"]``) plus ``#PatientID:``,
    ``#AcquisitionDate:`` (ISO 8601) and one ``#Statement:`` line per device statement, and the
    device measurements as ``#QRSDuration:`` etc. Nothing in it depends on the time of writing.

        >>> import numpy as np, tempfile, pathlib
        >>> from elvmass.record import ECGRecord
        >>> rec = ECGRecord(np.zeros((12, 1000), np.float32), 500.0)
        >>> write_wfdb(rec, pathlib.Path(tempfile.mkdtemp()) / "r1").name
        'r1.hea'
    """
    import wfdb

    path = Path(path)
    if path.suffix in (".hea", ".dat"):
        path = path.with_suffix("")
    path.parent.mkdir(parents=True, exist_ok=True)
    name = path.name
    pat, meas = record.patient, record.measurements
    sex = {"M": "Male", "F": "Female"}.get(pat.sex or "", "Unknown")
    comments = [
        f"Age: {_fmt_int(pat.age_years) or 'NaN'}",
        f"Sex: {sex}",
        f"Height: {_fmt_int(pat.height_cm) or 'NaN'}",
        f"Weight: {_fmt_int(pat.weight_kg) or 'NaN'}",
        f"Dx: {','.join(dx_codes) if dx_codes else SNOMED_CODES['SR']}",
        "Rx: Unknown",
        "Hx: Unknown",
        "Sx: Unknown",
        f"PatientID: {pat.patient_id or ''}",
        f"AcquisitionDate: {record.acquired_at.isoformat(timespec='seconds') if record.acquired_at else ''}",
    ]
    for key, val in [
        ("VentricularRate", meas.hr_bpm),
        ("PRInterval", meas.pr_ms),
        ("QRSDuration", meas.qrs_ms),
        ("QTInterval", meas.qt_ms),
        ("QTCorrected", meas.qtc_ms),
        ("PAxis", meas.p_axis_deg),
        ("RAxis", meas.r_axis_deg),
        ("TAxis", meas.t_axis_deg),
    ]:
        if _fmt_int(val) is not None:
            comments.append(f"{key}: {_fmt_int(val)}")
    comments += [f"Statement: {s}" for s in record.statements]

    gain = 1000.0 / uv_per_unit  # ADC units per mV
    d_signal = np.clip(np.rint(np.nan_to_num(record.signal_mv.astype(np.float64)) * gain), -32767, 32767).astype(np.int16)
    # Write into a temporary folder then move, so a half-written record is never visible.
    tmpdir = Path(tempfile.mkdtemp(prefix=".tmp-wfdb-", dir=path.parent))
    try:
        wfdb.wrsamp(
            name,
            fs=float(record.fs_hz),
            units=["mV"] * len(LEADS),
            sig_name=list(LEADS),
            d_signal=d_signal.T.astype(np.int64),
            fmt=["16"] * len(LEADS),
            adc_gain=[gain] * len(LEADS),
            baseline=[0] * len(LEADS),
            comments=comments,
            write_dir=str(tmpdir),
        )
        for ext in (".dat", ".hea"):
            os.replace(tmpdir / f"{name}{ext}", path.parent / f"{name}{ext}")
    finally:
        for leftover in tmpdir.iterdir():
            leftover.unlink()
        tmpdir.rmdir()
    return path.with_suffix(".hea")


__all__ = ["MUSE_STORED_LEADS", "MUSE_UV_PER_BIT", "SNOMED_CODES", "render_muse_xml", "write_muse_xml", "write_wfdb"]
