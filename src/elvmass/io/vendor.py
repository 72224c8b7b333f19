"""Vendor ECG exports (GE MUSE XML, Philips XML, HL7 aECG, DICOM waveform) read with ecgdatakit.

ecgdatakit decodes the files (base64, XLI compression, DICOM multiplex groups) and scales
the samples to millivolts; this module maps its fields into an :class:`~elvmass.record.ECGRecord`:
patient demographics, acquisition time, the device's global measurements and its
interpretation statements. On the genuine GE MUSE export in the repository's real test data
(``../shared/data/vendor/ge-muse-xml/muse_ecg1.xml``, from the MIT-licensed musePHI package; the file's
``QRSDuration`` is 78 ms and its first statement "Ventricular-paced rhythm")::

    >>> import os
    >>> from pathlib import Path
    >>> import elvmass
    >>> from elvmass.io.vendor import read_vendor_ecg
    >>> # ../shared/data beside the checkout, or ELVMASS_SHARED_DATA (as the test suite reads it)
    >>> data = Path(os.environ.get("ELVMASS_SHARED_DATA") or Path(elvmass.__file__).resolve().parents[2].parent / "shared" / "data")
    >>> rec = read_vendor_ecg(data / "vendor" / "ge-muse-xml" / "muse_ecg1.xml", "ge_muse_xml")
    >>> rec.fs_hz, rec.signal_mv.shape, rec.patient.sex, rec.patient.age_years
    (500.0, (12, 5000), 'M', 60.0)
    >>> rec.measurements.qrs_ms, rec.statements[0]
    (78.0, 'Ventricular-paced rhythm')
"""

from __future__ import annotations

import re
import warnings
from pathlib import Path

from elvmass.errors import ECGReadError
from elvmass.io._assemble import assemble_record
from elvmass.record import DeviceMeasurements, ECGRecord, Patient

#: elvmass format name -> the ecgdatakit parser class that must have read it.
_EXPECTED_PARSER = {
    "ge_muse_xml": "GEMuseXMLParser",
    "philips_xml": "SierraXMLParser",
    "hl7_aecg": "HL7aECGParser",
    "dicom": "DICOMWaveformParser",
}
_FORMAT_LABEL = {
    "ge_muse_xml": "GE MUSE XML",
    "philips_xml": "Philips XML",
    "hl7_aecg": "HL7 aECG",
    "dicom": "DICOM waveform",
}
# Where formats keep a corrected QT that ecgdatakit leaves in the annotations.
_QTC_ANNOTATION_KEYS = ("QTCorrected", "QTc Interval", "MDC_ECG_TIME_PD_QTc", "qtc", "QTc")


def _number(value) -> float | None:
    """First number in a value such as ``370``, ``"370 ms"`` or ``"393 ms (formula not stated)"``."""
    if value is None:
        return None
    if isinstance(value, (int, float)):
        return float(value)
    match = re.search(r"-?\d+(?:\.\d+)?", str(value))
    return float(match.group()) if match else None


def _one_line(text: str, limit: int = 160) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _parse_with_ecgdatakit(path: Path, fmt: str):
    from ecgdatakit import ECGDataKitError, FileParser, UnsupportedFormatError

    label = _FORMAT_LABEL[fmt]

    def inner(exc) -> str:  # the library's reason, without repeating the path we already print
        return _one_line(str(exc).replace(str(path), path.name))

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            parsed = FileParser.parse(path, auto_scale=True, units="mV")
        except ImportError as exc:
            raise ECGReadError(path, f"cannot read {label}: a dependency is missing ({inner(exc)})") from None
        except UnsupportedFormatError:
            raise ECGReadError(path, f"not a readable {label} file (content not recognised; corrupt?)") from None
        except ECGDataKitError as exc:
            raise ECGReadError(path, f"corrupt or truncated {label} file ({inner(exc)})") from None
        except Exception as exc:  # noqa: BLE001 - any decoder failure is a bad file, reported in one line
            raise ECGReadError(path, f"corrupt or truncated {label} file ({type(exc).__name__}: {inner(exc)})") from None
    parser = parsed.file_format.parser
    if parser != _EXPECTED_PARSER[fmt]:
        raise ECGReadError(path, f"looks like {label} but could not be read as one (detected as {parser or 'nothing'})")
    notes = tuple(dict.fromkeys(_one_line(w.message, 100) for w in caught))
    return parsed, notes


def _patient(parsed) -> Patient:
    p = parsed.patient
    sex = p.sex.upper() if p.sex else None
    return Patient(
        age_years=float(p.age) if p.age is not None else None,
        sex=sex if sex in ("M", "F") else None,
        height_cm=float(p.height) if p.height else None,
        weight_kg=float(p.weight) if p.weight else None,
        patient_id=str(p.patient_id) if p.patient_id else None,
    )


_ID_PLACEHOLDERS = {"", "unknown", "none", "null", "n/a", "na", "-", "0"}


def _hl7_subject_id(path: Path) -> str | None:
    """The first usable ``extension`` of any ``trialSubject/id`` (ecgdatakit reads only the first ``id``, so a
    file whose first id is a bare OID root and whose second carries the subject's ID lost it). The file has
    passed :func:`elvmass.io.guard.check_xml_bytes`; it is parsed with defusedxml all the same."""
    from defusedxml import ElementTree as SafeET

    try:
        root = SafeET.parse(str(path)).getroot()
    except Exception:  # noqa: BLE001 - ecgdatakit parsed it; if this parse fails the ID is simply not found
        return None
    for el in root.iter():
        if isinstance(el.tag, str) and el.tag.rsplit("}", 1)[-1] == "trialSubject":
            for child in el:
                if isinstance(child.tag, str) and child.tag.rsplit("}", 1)[-1] == "id":
                    ext = (child.get("extension") or "").strip()
                    if ext.lower() not in _ID_PLACEHOLDERS:
                        return ext
    return None


def _measurements(parsed) -> DeviceMeasurements:
    m = parsed.measurements
    hr = _number(m.heart_rate)
    if hr is None and m.rr_interval:
        # The device's own RR interval, stated in the file (DICOM stores RR, not rate).
        hr = round(60000.0 / float(m.rr_interval), 1)
    qtc = _number(m.qtc_bazett)
    if qtc is None:
        qtc = next((_number(parsed.annotations[k]) for k in _QTC_ANNOTATION_KEYS if k in parsed.annotations), None)
    if qtc is None:
        qtc = _number(m.qtc_fridericia)
    return DeviceMeasurements(
        hr_bpm=hr,
        pr_ms=_number(m.pr_interval),
        qrs_ms=_number(m.qrs_duration),
        qt_ms=_number(m.qt_interval),
        qtc_ms=qtc,
        p_axis_deg=_number(m.p_axis),
        r_axis_deg=_number(m.qrs_axis),
        t_axis_deg=_number(m.t_axis),
    )


def _statements(parsed) -> tuple[str, ...]:
    """Interpretation lines: the confirmed/overread ones if present, else the device's own."""
    lines = []
    for left, right in parsed.interpretation.statements:
        text = " ".join(s for s in (str(left).strip(), str(right).strip()) if s)
        if text:
            lines.append(text)
    if not lines:
        machine = parsed.annotations.get("machine_interpretation", "")
        lines = [s.strip() for s in str(machine).splitlines() if s.strip()]
    return tuple(lines)


def read_vendor_ecg(path, fmt: str, *, partial_leads: bool = False) -> ECGRecord:
    """Read one GE MUSE / Philips / HL7 aECG / DICOM file into the 12-lead record (mV).

    ``fmt`` is one of ``ge_muse_xml``, ``philips_xml``, ``hl7_aecg``, ``dicom``. Raises
    :class:`ECGReadError` for a corrupt, truncated or unscaled file.
    """
    path = Path(path)
    parsed, notes = _parse_with_ecgdatakit(path, fmt)
    if not parsed.leads:
        raise ECGReadError(path, f"the {_FORMAT_LABEL[fmt]} file holds no rhythm waveform")
    raw = [lead.label for lead in parsed.leads if lead.is_raw]
    if raw:
        raise ECGReadError(path, f"the file does not state the amplitude scale of leads {', '.join(raw)}")
    pairs = []
    for lead in parsed.leads:
        if (lead.units or "").lower() != "mv":
            raise ECGReadError(path, f"lead {lead.label} is in {lead.units!r}, not a voltage unit")
        pairs.append((lead.label, lead.samples))
    flags = tuple(f"reader_warning:{n}" for n in notes)
    patient = _patient(parsed)
    if patient.patient_id is None and fmt == "hl7_aecg":
        pid = _hl7_subject_id(path)
        if pid is not None:
            patient = Patient(**{**patient.__dict__, "patient_id": pid})
    return assemble_record(
        path,
        pairs,
        [lead.sampling_rate for lead in parsed.leads],
        source_format=fmt,
        flags=flags,
        partial_leads=partial_leads,
        patient=patient,
        measurements=_measurements(parsed),
        acquired_at=parsed.recording.date,
        statements=_statements(parsed),
    )
