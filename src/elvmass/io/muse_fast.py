"""A fast path for GE MUSE XML: the same ECGRecord as the general reader, several times sooner.

Reading MUSE XML through ecgdatakit spends most of its time outside the XML parser proper:
expat building text nodes for ~140 kB of base64, then whitespace splitting and joining of
those strings, a parser-detection pass, and the generic scaling step. Archive scoring reads
thousands of files per minute, so this module reads the common case directly:

==========================  ===============================================================
step                        how (and when it declines, handing the file to the general reader)
==========================  ===============================================================
hostile XML                 ``<!ENTITY`` anywhere, or a DOCTYPE with an internal subset
                            (``<!DOCTYPE x [``): declined, never parsed here. The standard
                            ``<!DOCTYPE RestingECG SYSTEM "restecg.dtd">`` of every real
                            export is allowed (expat does not fetch external DTDs).
waveform payloads           cut out of the bytes by one regex before parsing (each must be
                            pure base64 and XML whitespace), so ElementTree parses only the
                            ~10 kB of metadata; decoded with :func:`binascii.a2b_base64` in
                            strict mode (it refuses all that ecgdatakit's
                            ``b64decode(validate=True)`` refuses, and gives the same bytes)
metadata                    ElementTree on the rest, read with ecgdatakit's own rules
                            (direct child, case-insensitive fallback, whitespace-joined text)
scaling to mV               ``samples *= LeadAmplitudeUnitsPerBit * unit/mV``, the same
                            float64 operation as ecgdatakit's auto-scaling
record                      :func:`elvmass.io._assemble.assemble_record`, as every reader
==========================  ===============================================================

Anything the general reader would warn about or refuse (comments, CDATA, namespaces, an
encoding expat rejects, a CRC mismatch, an unscaled or non-voltage lead, a non-zero lead
offset, duplicate waveforms or labels, byte/sample count mismatches, bad base64, no rhythm
waveform) makes :func:`read_muse_fast` return ``None``: the caller then reads the file with
the general reader, which gives its usual error or warning flags. So the fast path never
changes what a file reads as; ``tests/test_muse_fast.py`` checks bit-identical records on
every real and generated MUSE file.

    >>> from elvmass.io.muse_fast import read_muse_fast   # doctest: +SKIP
    >>> rec = read_muse_fast("muse_ecg1.xml")               # doctest: +SKIP
    >>> rec.signal_mv.shape, rec.measurements.qrs_ms        # doctest: +SKIP
    ((12, 5000), 78.0)
"""

from __future__ import annotations

import binascii
import re
import xml.etree.ElementTree as ET
import zlib
from datetime import date, datetime
from pathlib import Path

import numpy as np

from elvmass.io._assemble import assemble_record
from elvmass.record import DeviceMeasurements, ECGRecord, Patient

_XML_SPACE = b"\t\n\r "
_MARK = "@@elvmass-payload-"

# ecgdatakit's MUSE tables (ecgdatakit.parsing.parsers.ge_muse_xml), the fields elvmass uses
_AMPLITUDE_UNITS = {"MICROVOLTS": "uV", "MICROVOLT": "uV", "UV": "uV", "MILLIVOLTS": "mV", "MILLIVOLT": "mV",
                    "MV": "mV", "VOLTS": "V", "VOLT": "V", "V": "V", "NANOVOLTS": "nV", "NANOVOLT": "nV", "NV": "nV"}
_TO_UV = {"nV": 0.001, "uV": 1.0, "mV": 1_000.0, "V": 1_000_000.0}
_AGE_UNITS_TO_YEARS = {"YEARS": 1.0, "MONTHS": 1 / 12, "WEEKS": 7 / 365.25, "DAYS": 1 / 365.25, "HOURS": 1 / 8766}
_MEASUREMENT_MAP = {"VentricularRate": "heart_rate", "PRInterval": "pr_interval", "QRSDuration": "qrs_duration",
                    "QTInterval": "qt_interval", "QTCorrected": None, "QTcFrederica": "qtc_fridericia",
                    "PAxis": "p_axis", "RAxis": "qrs_axis", "TAxis": "t_axis", "QRSCount": "qrs_count"}
_BOUNDARY_KEYS = {"POnset": "median_p_onset", "POffset": "median_p_offset", "QOnset": "median_q_onset",
                  "QOffset": "median_q_offset", "TOffset": "median_t_offset"}
# as in elvmass.io.vendor: where a corrected QT is kept when the device states no Bazett value
_QTC_ANNOTATION_KEYS = ("QTCorrected", "QTc Interval", "MDC_ECG_TIME_PD_QTc", "qtc", "QTc")


class _Decline(Exception):
    """The file is not the plain case this path reads exactly: use the general reader."""


def _text(el) -> str:
    if el is None:
        return ""
    return " ".join("".join(el.itertext()).split())


def _get(node, tag: str) -> str:
    if node is None:
        return ""
    el = node.find(tag)
    if el is None:
        low = tag.lower()
        el = next((c for c in node if c.tag.lower() == low), None)
    return _text(el)


def _num(text: str) -> float | None:
    try:
        return float(text.replace(",", "."))
    except (ValueError, AttributeError):
        return None


def _number(value) -> float | None:
    if value is None:
        return None
    if isinstance(value, (int, float)):
        return float(value)
    match = re.search(r"-?\d+(?:\.\d+)?", str(value))
    return float(match.group()) if match else None


def _parse_date(text: str) -> date | None:
    for fmt in ("%m-%d-%Y", "%m/%d/%Y", "%Y-%m-%d", "%Y%m%d", "%d-%b-%Y"):
        try:
            return datetime.strptime(text.strip(), fmt).date()
        except ValueError:
            continue
    return None


def _parse_datetime(date_text: str, time_text: str) -> datetime | None:
    d = _parse_date(date_text) if date_text else None
    if d is None or not time_text:
        return None
    for fmt in ("%H:%M:%S", "%H:%M"):
        try:
            return datetime.combine(d, datetime.strptime(time_text.strip(), fmt).time())
        except ValueError:
            continue
    return None


def _strip_payloads(raw: bytes) -> tuple[bytes, list[bytes]]:
    """The document with every WaveFormData payload replaced by a marker, and the payloads."""
    first = raw.find(b"<!")
    if first >= 0:  # only one markup declaration is allowed: a DOCTYPE without an internal subset
        end = raw.find(b">", first)
        if not raw.startswith(b"<!DOCTYPE", first) or end < 0 or b"[" in raw[first:end] \
                or raw.find(b"<!", end) >= 0:
            raise _Decline  # ENTITY declarations, internal subsets, comments, CDATA
    if b"xmlns" in raw or not raw.lstrip(b"\xef\xbb\xbf \t\r\n").startswith(b"<"):
        raise _Decline
    payloads: list[bytes] = []
    parts: list[bytes] = []
    pos = 0
    find = raw.find
    while (i := find(b"<WaveFormData>", pos)) >= 0:
        i += len(b"<WaveFormData>")
        j = find(b"</WaveFormData>", i)
        if j < 0 or find(b"<", i, j) >= 0:
            raise _Decline
        parts.append(raw[pos:i])
        parts.append(f"{_MARK}{len(payloads)}".encode("ascii"))
        payloads.append(raw[i:j])
        pos = j
    parts.append(raw[pos:])
    return b"".join(parts), payloads


def _decode_lead(ld, rate: int, payloads: list[bytes], used: set[int]):
    """(label, float64 samples in mV) of one LeadData, exactly as ecgdatakit + auto-scaling give it."""
    from ecgdatakit.parsing.helpers import normalize_lead_label

    lead_id = _get(ld, "LeadID")
    marker = _get(ld, "WaveFormData")
    if not lead_id or not marker.startswith(_MARK):
        raise _Decline
    try:
        index = int(marker[len(_MARK):])
    except ValueError:
        raise _Decline from None
    if index in used or index >= len(payloads):
        raise _Decline
    used.add(index)
    try:
        # strict mode refuses everything b64decode(validate=True) refuses (and no more on real data)
        payload = binascii.a2b_base64(payloads[index].translate(None, _XML_SPACE), strict_mode=True)
    except (binascii.Error, ValueError):
        raise _Decline from None
    size = int(_num(_get(ld, "LeadSampleSize")) or 2)
    if size not in (1, 2, 4) or len(payload) % size:
        raise _Decline
    expected_bytes = _num(_get(ld, "LeadByteCountTotal"))
    expected_samples = _num(_get(ld, "LeadSampleCountTotal"))
    if expected_bytes is not None and int(expected_bytes) != len(payload):
        raise _Decline
    if expected_samples is not None and int(expected_samples) * size != len(payload):
        raise _Decline
    crc = _get(ld, "LeadDataCRC32")
    if crc.isdigit() and (zlib.crc32(payload) & 0xFFFFFFFF) != int(crc):
        raise _Decline  # the general reader warns (ChecksumWarning -> reader_warning flag)
    for tag in ("FirstSampleBaseline", "LeadOffsetFirstSample"):
        if _num(_get(ld, tag)):
            raise _Decline  # the general reader warns that the offset is not applied
    scale = _num(_get(ld, "LeadAmplitudeUnitsPerBit"))
    unit = _AMPLITUDE_UNITS.get(_get(ld, "LeadAmplitudeUnits").upper(), "") if scale is not None else ""
    if not unit or not scale:
        raise _Decline  # unscaled or zero-scale: the general reader warns and then refuses the file
    samples = np.frombuffer(payload, dtype=f"<i{size}").astype(np.float64)
    samples *= scale * (_TO_UV[unit] / _TO_UV["mV"])
    return normalize_lead_label(lead_id), samples, rate


def _waveforms(root, payloads: list[bytes]) -> list[tuple[str, np.ndarray, int]]:
    seen: set[str] = set()
    used: set[int] = set()
    rhythm: list[tuple[str, np.ndarray, int]] = []
    for wf in root.findall("Waveform"):
        kind = _get(wf, "WaveformType").lower() or "rhythm"
        if kind in seen:
            raise _Decline  # an additional waveform of a kind: the general reader warns
        seen.add(kind)
        base = _num(_get(wf, "SampleBase"))
        exponent = _num(_get(wf, "SampleExponent")) or 0
        if not base or base <= 0:
            raise _Decline
        rate = int(round(base * 10 ** exponent))
        leads = [_decode_lead(ld, rate, payloads, used) for ld in wf.findall("LeadData")]
        if len({label for label, _, _ in leads}) != len(leads):
            raise _Decline  # duplicate labels get suffixes there
        if kind == "rhythm":
            rhythm = leads
    if len(used) != len(payloads) or not rhythm or all(len(s) == 0 for _, s, _ in rhythm):
        raise _Decline
    return rhythm


def _patient(demo, acquired: datetime | None) -> Patient:
    if demo is None:
        return Patient()
    gender = _get(demo, "Gender").upper()
    sex = ("M" if gender in ("M", "MALE") else "F" if gender in ("F", "FEMALE") else None) if gender else None
    birth = None
    dob = _get(demo, "DateofBirth")
    if dob:
        d = _parse_date(dob)
        birth = datetime.combine(d, datetime.min.time()) if d else None
    age = _num(_get(demo, "PatientAge"))
    factor = _AGE_UNITS_TO_YEARS.get(_get(demo, "AgeUnits").upper())
    years = None
    if age is not None and factor:
        years = int(age * factor)
    elif age is None and birth and acquired:
        a, b = acquired.date(), birth.date()
        years = a.year - b.year - ((a.month, a.day) < (b.month, b.day))
    height = _num(_get(demo, "HeightCM"))
    if height is None and _num(_get(demo, "HeightIN")) is not None:
        height = round(_num(_get(demo, "HeightIN")) * 2.54, 1)
    weight = _num(_get(demo, "WeightKG"))
    if weight is None and _num(_get(demo, "WeightLBS")) is not None:
        weight = round(_num(_get(demo, "WeightLBS")) * 0.45359237, 1)
    height, weight = height or None, weight or None
    pid = _get(demo, "PatientID")
    return Patient(
        age_years=float(years) if years is not None else None,
        sex=sex,
        height_cm=float(height) if height else None,
        weight_kg=float(weight) if weight else None,
        patient_id=str(pid) if pid else None,
    )


def _measurements(root) -> tuple[DeviceMeasurements, dict]:
    values: dict[str, int] = {}
    annotations: dict[str, str] = {}
    current = root.find("RestingECGMeasurements")
    primary = current if current is not None else root.find("OriginalRestingECGMeasurements")
    if primary is not None:
        for child in primary:
            value = _text(child)
            if not value:
                continue
            name = _MEASUREMENT_MAP.get(child.tag)
            number = _num(value)
            if name and number is not None:
                values[name] = int(round(number))
            elif child.tag not in ("ECGSampleBase", "ECGSampleExponent"):
                annotations[_BOUNDARY_KEYS.get(child.tag, child.tag)] = value
    rr = _num(_get(root.find("QRSTimesTypes"), "GlobalRR"))
    if rr is None:
        rr = _num(_get(root.find("PharmaData"), "PharmaRRinterval"))
    rr_ms = int(round(rr)) if rr else None
    hr = _number(values.get("heart_rate"))
    if hr is None and rr_ms:
        hr = round(60000.0 / float(rr_ms), 1)
    qtc = next((_number(annotations[k]) for k in _QTC_ANNOTATION_KEYS if k in annotations), None)
    if qtc is None:
        qtc = _number(values.get("qtc_fridericia"))
    return DeviceMeasurements(
        hr_bpm=hr,
        pr_ms=_number(values.get("pr_interval")),
        qrs_ms=_number(values.get("qrs_duration")),
        qt_ms=_number(values.get("qt_interval")),
        qtc_ms=qtc,
        p_axis_deg=_number(values.get("p_axis")),
        r_axis_deg=_number(values.get("qrs_axis")),
        t_axis_deg=_number(values.get("t_axis")),
    ), annotations


def _diagnosis_lines(diag) -> list[str]:
    if diag is None:
        return []
    items = []
    for stmt in diag.findall("DiagnosisStatement"):
        flags = {_text(f).upper() for f in stmt.findall("StmtFlag")}
        items.append((_get(stmt, "StmtText"), "ENDSLINE" in flags))
    if not any(end for _, end in items):
        return [t for t, _ in items if t]
    lines, current = [], []
    for text, end in items:
        if text:
            current.append(text)
        if end and current:
            lines.append(" ".join(current))
            current = []
    if current:
        lines.append(" ".join(current))
    return lines


def _statements(root, test) -> tuple[str, ...]:
    """The confirmed/overread lines if present, else the device's own (vendor.py's rule on ecgdatakit's)."""
    current = _diagnosis_lines(root.find("Diagnosis"))
    original = _diagnosis_lines(root.find("OriginalDiagnosis"))
    status = _get(test, "Status").upper()
    overreader = " ".join(p for p in (_get(test, "OverreaderFirstName"), _get(test, "OverreaderLastName")) if p)
    overreader = overreader or _get(test, "OverreaderID")
    expert = status == "CONFIRMED" or bool(overreader)
    machine = ""
    statements = list(current)
    if expert and current:
        if original:
            machine = "\n".join(original)
    elif current and original and original != current:
        machine = "\n".join(original)
    elif not current and original:
        statements = list(original)
    lines = [s.strip() for s in statements if s.strip()]
    if not lines:
        lines = [s.strip() for s in machine.splitlines() if s.strip()]
    return tuple(lines)


def read_muse_fast(path, data: bytes | None = None, *, partial_leads: bool = False) -> ECGRecord | None:
    """The GE MUSE record of ``path``, or None where the general reader must read it (see module doc).

    ``data``: the file's bytes when the caller has read them already (e.g. for its own checks).
    Never raises for a bad or unreadable file: it declines, and the general reader gives the error.
    """
    path = Path(path)
    raw = data
    if raw is None:
        try:
            raw = path.read_bytes()
        except OSError:
            return None
    try:
        stripped, payloads = _strip_payloads(raw)
        try:
            root = ET.fromstring(stripped)
        except ET.ParseError:
            raise _Decline from None
        if root.tag.lower() != "restingecg":
            raise _Decline
        test = root.find("TestDemographics")
        acquired = None
        if test is not None:
            acquired = _parse_datetime(_get(test, "AcquisitionDate"), _get(test, "AcquisitionTime"))
        leads = _waveforms(root, payloads)
        patient = _patient(root.find("PatientDemographics"), acquired)
        measurements, _ = _measurements(root)
        statements = _statements(root, test)
    except _Decline:
        return None
    return assemble_record(
        path,
        [(label, samples) for label, samples, _ in leads],
        [rate for _, _, rate in leads],
        source_format="ge_muse_xml",
        flags=(),
        partial_leads=partial_leads,
        patient=patient,
        measurements=measurements,
        acquired_at=acquired,
        statements=statements,
    )
