"""Reading resting 12-lead ECGs from the formats hospitals and datasets keep.

One entry point, :func:`read_ecg`, detects the format from the file's content (and its
extension where content cannot tell) and returns an :class:`~elvmass.record.ECGRecord`
in millivolts, the 12 leads in standard order, with demographics, the device's
measurements and statements wherever the file has them:

========================  ==================  ==============================================
format                    name                read with
========================  ==================  ==============================================
GE MUSE XML               ``ge_muse_xml``     ecgdatakit (8 stored leads; III, aVR, aVL, aVF derived)
Philips XML 1.03/1.04     ``philips_xml``     ecgdatakit (XLI-compressed waveforms)
HL7 aECG                  ``hl7_aecg``        ecgdatakit
DICOM 12-lead waveform    ``dicom``           ecgdatakit + pydicom
WFDB (PTB-XL, CinC)       ``wfdb``            wfdb (header comments, PTB-XL database CSV)
NumPy / CSV arrays (mV)   ``npy`` / ``csv``   numpy (``fs_hz`` must be given)
========================  ==================  ==============================================

Every file is hostile input until proven otherwise: :mod:`elvmass.io.guard` refuses, before any parser
sees the bytes, files over 50 MB (``ELVMASS_MAX_FILE_MB``, ``read_ecg(..., max_bytes=)``), XML with
entity declarations or a DOCTYPE that points at a path or URL (billion laughs, quadratic blowup, XXE; in
every encoding, UTF-16 included), XML stating an implausible sampling rate, DICOM elements declaring more
bytes than the file holds, and WFDB headers declaring more samples than their signal files hold.
``benchmarks/fuzz_readers.py`` mutates real files of every format to check that nothing else gets through.

Problems that make a file unusable raise :class:`~elvmass.errors.ECGReadError` with a
one-line message naming the file; problems a caller may tolerate become ``record.flags``
(``nan_samples:V2``, ``flat_lead:V3``, ``unequal_lead_lengths:...``, ``resampled_leads:...``,
``implausible_amplitude:...``, ``short_record:...``, ``extra_leads_ignored:...``,
``reader_warning:...``)::

    >>> from elvmass.io import example_ecg_path, read_ecg
    >>> rec = read_ecg(example_ecg_path())
    >>> rec.source_format, rec.fs_hz, rec.signal_mv.shape
    ('wfdb', 500.0, (12, 5000))
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from elvmass.errors import ECGReadError
from elvmass.record import ECGRecord

FORMATS: tuple[str, ...] = ("ge_muse_xml", "philips_xml", "hl7_aecg", "dicom", "wfdb", "npy", "csv")
_ALIASES = {
    "muse": "ge_muse_xml", "ge": "ge_muse_xml", "ge_muse": "ge_muse_xml",
    "philips": "philips_xml", "sierra": "philips_xml",
    "hl7": "hl7_aecg", "aecg": "hl7_aecg",
    "dcm": "dicom",
    "physionet": "wfdb",
    "numpy": "npy",
}
#: Extensions :func:`find_ecg_files` picks up (WFDB records by their ``.hea``).
ECG_EXTENSIONS: tuple[str, ...] = (".xml", ".dcm", ".hea")
ARRAY_EXTENSIONS: tuple[str, ...] = (".npy", ".csv")
#: The parts of a WFDB record (header, signal, CinC .mat signal): read from the record's files, never as
#: one file's bytes.
WFDB_SUFFIXES: tuple[str, ...] = (".hea", ".dat", ".mat")
_SNIFF_BYTES = 4096


def _sniff_text(head: bytes) -> str:
    if head.startswith((b"\xff\xfe", b"\xfe\xff")):
        return head.decode("utf-16", errors="ignore")
    if len(head) > 1 and head[1:2] == b"\x00" and head[0:1] == b"<":
        return head.decode("utf-16-le", errors="ignore")
    return head.decode("latin-1", errors="ignore")


def detect_format(path, *, head: bytes | None = None) -> str:
    """The elvmass format name of a file (one of :data:`FORMATS`), or ECGReadError if unsupported.

    ``head``: the file's first bytes (at least the first 4 kB, or all of it) when the caller has them, so
    the file is not opened again.

    >>> from elvmass.io import example_ecg_path
    >>> detect_format(example_ecg_path())
    'wfdb'
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix in (".hea", ".dat") or (not path.exists() and path.with_suffix(".hea").is_file()):
        return "wfdb"
    if suffix == ".mat":
        # PhysioNet/CinC Challenge records keep their samples in x.mat, described by x.hea
        if path.with_suffix(".hea").is_file():
            return "wfdb"
        raise ECGReadError(
            path, f"a MATLAB .mat file is not read on its own: if it is a PhysioNet/CinC WFDB record, give its "
            f"header {path.with_suffix('.hea').name} (it must sit next to the .mat)"
        )
    if path.is_dir():
        if path.with_suffix(".hea").is_file():
            return "wfdb"
        raise ECGReadError(path, "is a folder, not an ECG file")
    if not path.exists():
        raise ECGReadError(path, "file not found")
    if head is None:
        try:
            with open(path, "rb") as fh:
                head = fh.read(_SNIFF_BYTES)
        except OSError as exc:
            raise ECGReadError(path, f"cannot open the file ({exc.strerror or exc})") from None
    else:
        head = head[:_SNIFF_BYTES]
    if not head:
        raise ECGReadError(path, "the file is empty")
    if suffix == ".npy" or head.startswith(b"\x93NUMPY"):
        return "npy"
    if head[128:132] == b"DICM":
        return "dicom"
    text = _sniff_text(head)
    if "<RestingECG" in text:
        return "ge_muse_xml"
    if "<restingecgdata" in text:
        return "philips_xml"
    if "<AnnotatedECG" in text:
        return "hl7_aecg"
    if suffix == ".dcm":
        return "dicom"
    if suffix == ".csv":
        return "csv"
    if suffix == ".xml" or text.lstrip().startswith("<"):
        if "<!" in text:  # a DOCTYPE can push the root element past the sniffed bytes: refuse a hostile one first
            from elvmass.io import guard

            guard.check_xml_bytes(path, guard.read_limited(path))
        raise ECGReadError(path, "unsupported XML: not a GE MUSE, Philips or HL7 aECG ECG (or the file is corrupt)")
    raise ECGReadError(
        path, "unsupported or unrecognised file format (expected GE MUSE/Philips/HL7 XML, DICOM, WFDB, .npy or .csv)"
    )


def read_ecg(path, *, fs_hz: float | None = None, format: str | None = None,  # noqa: A002
             max_bytes: int | None = None, data: bytes | None = None, partial_leads: bool = False) -> ECGRecord:
    """Read one resting 12-lead ECG of any supported format into an :class:`ECGRecord` (mV).

    Parameters
    ----------
    path : a file, or a WFDB record given as ``x``, ``x.hea`` or ``x.dat``.
    fs_hz : sampling rate for ``.npy``/``.csv`` arrays (which store none); ignored otherwise.
    format : force a format (one of :data:`FORMATS`) instead of detecting it.
    max_bytes : refuse files larger than this before reading them (default 50 MB, or the
        ``ELVMASS_MAX_FILE_MB`` environment variable; see :mod:`elvmass.io.guard`).
    data : the file's bytes, when the caller has read them already (archive scoring hashes them), e.g.
        with :func:`elvmass.io.guard.read_limited`: the file is then not read again. Ignored for WFDB
        records (header and signal files), which are read from ``path``.
    partial_leads : accept a record without all 12 leads (a 2-lead Holter or PhysioNet record such as
        QTDB's, for delineation: ``elvmass beats``): the leads it lacks are all NaN, flagged
        ``missing_leads:<leads>``, which :func:`elvmass.signal.quality.is_blocking` makes blocking, since
        the model needs all 12; modified limb leads (``MLII``) count as their standard lead. By default a
        missing lead is an error.

    Every file is treated as hostile input: XML that declares entities or points its DOCTYPE
    at a path or URL, a DICOM file whose declared lengths exceed the file, and a WFDB header
    declaring more samples than its signal file holds are refused before a parser sees them.

    Raises :class:`~elvmass.errors.ECGReadError` naming the file and the problem.

    >>> from elvmass.io import example_ecg_path
    >>> rec = read_ecg(example_ecg_path())
    >>> rec.patient.sex, rec.patient.age_years
    ('M', 52.0)
    """
    from elvmass.io import guard

    p = Path(path)
    if data is not None and len(data) > guard.max_file_bytes(max_bytes):
        data = None  # not the bytes of a file within the limit: the file's own size is checked below
    if p.suffix.lower() not in WFDB_SUFFIXES and p.is_file():
        guard.check_file_size(p, max_bytes)  # before a byte is read, even to detect the format
    if format is not None:
        fmt = _ALIASES.get(str(format).lower(), str(format).lower())
        if fmt not in FORMATS:
            raise ECGReadError(path, f"unknown format {format!r} (choose from {', '.join(FORMATS)})")
        if fmt != "wfdb" and not Path(path).is_file():
            raise ECGReadError(path, "file not found")
    else:
        fmt = detect_format(path, head=data)
    if fmt == "wfdb":
        from elvmass.io.wfdb_reader import read_wfdb_ecg

        return read_wfdb_ecg(path, max_bytes=max_bytes, partial_leads=partial_leads)
    if fmt in ("npy", "csv"):
        from elvmass.io.arrays import read_array_ecg

        return read_array_ecg(path, fs_hz=fs_hz, fmt=fmt, partial_leads=partial_leads)
    from elvmass.io.vendor import read_vendor_ecg

    if data is None:
        data = guard.read_limited(path, max_bytes)
    if fmt == "dicom":
        guard.check_dicom_lengths(path, data)
    else:
        guard.check_xml_bytes(path, data)
        guard.check_declared_rates(path, fmt, data)
    if fmt == "ge_muse_xml":  # after the guard: plain MUSE files read fast to the identical record, else it declines
        from elvmass.io.muse_fast import read_muse_fast

        if (record := read_muse_fast(path, data=data, partial_leads=partial_leads)) is not None:
            return record
    del data
    return read_vendor_ecg(path, fmt, partial_leads=partial_leads)


def find_ecg_files(directory, *, include_arrays: bool = False) -> list[Path]:
    """ECG files under ``directory`` (recursive, sorted): XML, DICOM and WFDB records (by ``.hea``).

    ``.npy``/``.csv`` arrays are left out unless ``include_arrays`` (they need a stated rate
    and folders often hold other CSV tables). Hidden files and folders are skipped.

    >>> from elvmass.io import example_ecg_path
    >>> [p.name for p in find_ecg_files(example_ecg_path().parent)]
    ['ptbxl_00136_hr.hea']
    """
    directory = Path(directory)
    if not directory.is_dir():
        raise ECGReadError(directory, "is not a folder")
    wanted = ECG_EXTENSIONS + (ARRAY_EXTENSIONS if include_arrays else ())
    found = []
    for p in directory.rglob("*"):
        rel = p.relative_to(directory)
        if any(part.startswith(".") for part in rel.parts):
            continue
        if p.is_file() and p.suffix.lower() in wanted:
            found.append(p)
    return sorted(found)


def read_ecgs(paths: Iterable, *, fs_hz: float | None = None) -> tuple[list[ECGRecord], list[ECGReadError]]:
    """Read many ECGs, continuing past bad ones: (records in input order, one error per bad file)."""
    records: list[ECGRecord] = []
    errors: list[ECGReadError] = []
    for path in paths:
        try:
            records.append(read_ecg(path, fs_hz=fs_hz))
        except ECGReadError as exc:
            errors.append(exc)
    return records, errors


def example_ecg_path() -> Path:
    """Path of the bundled example ECG: PTB-XL record 136 (normal ECG, 52-year-old man, CC-BY-4.0).

    >>> example_ecg_path().name
    'ptbxl_00136_hr.hea'
    """
    return Path(__file__).resolve().parent.parent / "data" / "ptbxl_00136_hr.hea"


def __getattr__(name):
    # The MUSE writer lives in its own module (synth side); import it on first use.
    if name == "write_muse_xml":
        from elvmass.io.muse_write import write_muse_xml

        return write_muse_xml
    raise AttributeError(name)


__all__ = [
    "ARRAY_EXTENSIONS",
    "ECG_EXTENSIONS",
    "FORMATS",
    "detect_format",
    "example_ecg_path",
    "find_ecg_files",
    "read_ecg",
    "read_ecgs",
]
