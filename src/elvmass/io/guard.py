"""Checks every ECG file passes before any parser sees its bytes: size, and XML that could attack the reader.

ECG files come from outside (other hospitals, patients' uploads to the service), so every reader path
treats them as hostile. The checks run once, in :func:`elvmass.io.read_ecg`, whatever library then
decodes the file:

======================================  ===============================================================
check                                   refused with :class:`~elvmass.errors.ECGReadError` when
======================================  ===============================================================
:func:`check_file_size`                 the file (or a WFDB record's signal file) is larger than
                                        :func:`max_file_bytes` (50 MB unless ``ELVMASS_MAX_FILE_MB`` or
                                        ``read_ecg(..., max_bytes=)`` says otherwise); checked with
                                        ``stat`` before a byte is read
:func:`check_xml_bytes`                 the XML declares entities (``<!ENTITY``: billion laughs,
                                        quadratic blowup, external entities / XXE), has a DOCTYPE with
                                        an internal subset (``[...]``), or a DOCTYPE whose external
                                        identifier is anything but a bare file name (a URL, an absolute
                                        or relative path: ``file:///etc/passwd``, ``http://...``,
                                        ``../x.dtd``)
======================================  ===============================================================

The XML scan looks for the markup in every encoding an XML parser (or ecgdatakit's lossless re-decode)
could read the file in: ASCII-compatible 8-bit (UTF-8, ISO-8859-x), UTF-16 LE/BE and UTF-32 LE/BE, with
or without a byte-order mark, and the encoding the XML declaration names. GE MUSE exports carry
``<!DOCTYPE RestingECG SYSTEM "restecg.dtd">``: a bare file name is allowed, and it is never opened
(Python's expat, which ecgdatakit uses through defusedxml and xmltodict, does not load external DTDs;
tests/test_hostile_files.py checks with an audit hook that no such file is opened). ecgdatakit itself
refuses entity declarations too (defusedxml, ``xmltodict.parse(disable_entities=True)``); this guard
makes the rule independent of that library's version and gives one clear message::

    >>> check_xml_bytes("x.xml", b'<?xml version="1.0"?><!DOCTYPE a [<!ENTITY e "x">]><a>&e;</a>')
    Traceback (most recent call last):
    ...
    elvmass.errors.ECGReadError: x.xml: refused: the XML declares entities (<!ENTITY), which ECG exports never need (entity expansion or external-entity attack)
    >>> check_xml_bytes("x.xml", '<?xml version="1.0" encoding="utf-16"?><!DOCTYPE a SYSTEM "file:///etc/passwd"><a/>'.encode("utf-16"))
    Traceback (most recent call last):
    ...
    elvmass.errors.ECGReadError: x.xml: refused: the XML DOCTYPE references 'file:///etc/passwd' (only a bare DTD file name is allowed; it is never fetched)
    >>> check_xml_bytes("x.xml", b'<?xml version="1.0"?><!DOCTYPE RestingECG SYSTEM "restecg.dtd"><RestingECG/>')
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from elvmass.errors import ECGReadError

#: Files larger than this are refused before they are read (a 10-s 12-lead ECG is 0.1-2 MB in any format).
DEFAULT_MAX_FILE_MB = 50.0
_ENV_MAX_MB = "ELVMASS_MAX_FILE_MB"

# Encodings an XML parser may read a file in without a declaration it can see (BOM or byte pattern), plus
# ASCII-compatible 8-bit ones (latin-1 stands for all of them: the markup is ASCII).
_SCAN_ENCODINGS = ("latin-1", "utf-16-le", "utf-16-be", "utf-32-le", "utf-32-be")
_DECL = re.compile(r"<\?xml[^>]*?encoding\s*=\s*[\"']([A-Za-z0-9._:-]{1,40})[\"']")
_DOCTYPE = re.compile(r"<!DOCTYPE(.{0,2000}?)(>|\[)", re.S)
_EXTERNAL_ID = re.compile(r"""^\s*[^\s\[>]+\s+(?:SYSTEM|PUBLIC\s+(?:"[^"]*"|'[^']*'))\s+(?:"([^"]*)"|'([^']*)')\s*$""", re.S)
_BARE_NAME = re.compile(r"^[A-Za-z0-9._-]{1,100}$")


def max_file_bytes(max_bytes: int | None = None) -> int:
    """The size limit in bytes: ``max_bytes`` if given, else ``ELVMASS_MAX_FILE_MB`` (MB), else 50 MB.

    >>> max_file_bytes(1000), max_file_bytes() == 50 * 1024 * 1024 or "ELVMASS_MAX_FILE_MB is set"
    (1000, True)
    """
    if max_bytes is not None:
        return int(max_bytes)
    text = os.environ.get(_ENV_MAX_MB, "").strip()
    try:
        mb = float(text) if text else DEFAULT_MAX_FILE_MB
    except ValueError:
        mb = DEFAULT_MAX_FILE_MB
    return int(mb * 1024 * 1024)


def check_file_size(path, max_bytes: int | None = None, *, shown=None) -> int:
    """The file's size in bytes, or ECGReadError (naming ``shown`` or ``path``) when over the limit."""
    limit = max_file_bytes(max_bytes)
    try:
        size = os.stat(path).st_size
    except OSError as exc:
        raise ECGReadError(shown or path, f"cannot open the file ({exc.strerror or exc})") from None
    if size > limit:
        raise ECGReadError(
            shown or path,
            f"refused: {Path(path).name} is {size / 1e6:.1f} MB, over the {limit / 1e6:.1f} MB limit for one ECG "
            f"(raise it with {_ENV_MAX_MB} or read_ecg(..., max_bytes=))",
        )
    return size


def read_limited(path, max_bytes: int | None = None) -> bytes:
    """The file's bytes, after :func:`check_file_size` (and never more than the limit, should it grow)."""
    limit = max_file_bytes(max_bytes)
    size = check_file_size(path, limit)
    try:
        with open(path, "rb") as fh:
            data = fh.read(min(size, limit) + 1)  # read(n) allocates n up front: ask only for what is there
    except OSError as exc:
        raise ECGReadError(path, f"cannot open the file ({exc.strerror or exc})") from None
    if len(data) > min(size, limit):
        raise ECGReadError(path, "refused: the file grew while being read (written to as it was read?)")
    return data


def _exotic_encoding(data: bytes) -> str | None:
    """The codec the XML declaration names, when it is not one the byte scan already covers."""
    import codecs

    for enc in _SCAN_ENCODINGS:
        head = data[: 400 * (4 if "32" in enc else 2 if "16" in enc else 1)].decode(enc, errors="replace")
        match = _DECL.search(head)
        if match:
            try:
                name = codecs.lookup(match.group(1).lower()).name
            except LookupError:
                return None
            covered = ("utf-8", "ascii", "latin-1", "iso8859-1", "utf-16", "utf-16-le", "utf-16-be", "utf-32",
                       "utf-32-le", "utf-32-be")
            return None if name in covered else name
    return None


def check_xml_bytes(path, data: bytes) -> None:
    """Refuse XML that declares entities or points its DOCTYPE anywhere but at a bare file name (see module).

    Searches the bytes for the markup as each encoding writes it (no copy of the file is made), and decodes
    the whole file only when its declaration names some other codec."""
    views: list[tuple[str, bytes | str]] = [(enc, data) for enc in _SCAN_ENCODINGS]
    exotic = _exotic_encoding(data)
    if exotic is not None:
        try:
            views.append((exotic, data.decode(exotic, errors="replace")))
        except Exception:  # noqa: BLE001 - a codec that cannot decode at all leaves nothing to scan
            pass
    bangs = _bang_positions(data)
    for enc, view in views:
        encode = (lambda s: s) if isinstance(view, str) else (lambda s, e=enc: s.encode(e))
        if _occurrences(view, encode("<!ENTITY"), bangs, first_only=True):
            raise ECGReadError(
                path,
                "refused: the XML declares entities (<!ENTITY), which ECG exports never need "
                "(entity expansion or external-entity attack)",
            )
        for at in _occurrences(view, encode("<!DOCTYPE"), bangs):
            width = 4 if "32" in enc else 2 if "16" in enc else 1
            chunk = view[at : at + 2100 * (1 if isinstance(view, str) else width)]
            text = chunk if isinstance(chunk, str) else chunk.decode(enc, errors="replace")
            _check_doctype(path, text)


#: more "!" bytes than this and the markup is searched for directly (see :func:`_occurrences`)
_MAX_BANGS = 256


def _bang_positions(data: bytes) -> list[int] | None:
    """Where the byte ``!`` (0x21) is in ``data``, or None when there are more than :data:`_MAX_BANGS`.

    Every markup the guard looks for starts with ``<!``, and each scanned encoding writes ``!`` as a 0x21
    byte (padded with zero bytes in UTF-16/32), so every occurrence of the markup, in any of them, holds
    one of these bytes at a fixed offset. An ECG export has one or two (its DOCTYPE; base64 has none):
    looking there instead of searching a 150-kB file ten times costs microseconds instead of 0.3 ms.
    """
    out: list[int] = []
    at = data.find(b"!")
    while at >= 0:
        if len(out) == _MAX_BANGS:
            return None
        out.append(at)
        at = data.find(b"!", at + 1)
    return out


def _occurrences(view: bytes | str, marker: bytes | str, bangs: list[int] | None, *, first_only: bool = False) -> list[int]:
    """Start offsets of ``marker`` in ``view``, in order: those :func:`_bang_positions` allows for bytes
    (the same offsets as repeated ``find``), else by ``find``."""
    if isinstance(view, bytes) and bangs is not None:
        off = marker.index(b"!")
        return [p - off for p in bangs if p >= off and view.startswith(marker, p - off)][: 1 if first_only else None]
    out = []
    at = view.find(marker)
    while at >= 0:
        out.append(at)
        if first_only:
            break
        at = view.find(marker, at + 1)
    return out


def _check_doctype(path, text: str) -> None:
    match = _DOCTYPE.match(text)
    if match is None:
        raise ECGReadError(path, "refused: an XML DOCTYPE that does not end within 2000 characters")
    body, end = match.group(1), match.group(2)
    if end == "[":
        raise ECGReadError(path, "refused: the XML DOCTYPE has an internal subset ([...]), which ECG exports never need")
    ext = _EXTERNAL_ID.match(body)
    if ext is None:
        if len(body.split()) > 1:
            raise ECGReadError(path, f"refused: unreadable XML DOCTYPE ({' '.join(body.split())[:80]!r})")
        return
    ref = ext.group(1) if ext.group(1) is not None else ext.group(2)
    if not _BARE_NAME.match(ref) or ref in (".", ".."):
        raise ECGReadError(
            path, f"refused: the XML DOCTYPE references {ref[:120]!r} (only a bare DTD file name is allowed; it is never fetched)"
        )


# --- DICOM: every declared length must fit in the file --------------------------------------------------
_LONG_VRS = {b"OB", b"OD", b"OF", b"OL", b"OV", b"OW", b"SQ", b"SV", b"UC", b"UN", b"UR", b"UT", b"UV"}
_UNDEFINED = 0xFFFFFFFF
_IMPLICIT_LE = "1.2.840.10008.1.2"
_EXPLICIT_BE = "1.2.840.10008.1.2.2"
_DEFLATED = ("1.2.840.10008.1.2.1.99",)


def check_dicom_lengths(path, data: bytes, *, max_elements: int = 2_000_000) -> None:
    """Refuse a DICOM file where any element, sequence or item declares more bytes than the file holds.

    Walks the element headers (file meta in explicit VR little endian, then the data set in the transfer
    syntax the meta states) without reading a value, so a length field of 4 GB costs nothing. A deflated
    data set, or a structure the walk cannot follow, is left to pydicom (whose reads are then bounded by
    the file's size, itself bounded by :func:`check_file_size`).

    >>> import struct
    >>> head = b"\\0" * 128 + b"DICM"
    >>> meta = struct.pack("<HH2sH", 2, 0x10, b"UI", 20) + b"1.2.840.10008.1.2.1\\0"
    >>> elem = struct.pack("<HH2sHI", 0x5400, 0x1010, b"OW", 0, 0x7FFFFFF0) + b"\\0\\0"
    >>> check_dicom_lengths("w.dcm", head + meta + elem)
    Traceback (most recent call last):
    ...
    elvmass.errors.ECGReadError: w.dcm: refused: DICOM element (5400,1010) declares 2147483632 bytes at offset 160, but the file ends 2 bytes later
    """
    import struct

    size = len(data)
    pos = 132 if data[128:132] == b"DICM" else 0
    explicit, little = True, True
    in_meta = pos == 132
    syntax = None
    count = 0
    while pos + 8 <= size:
        count += 1
        if count > max_elements:
            raise ECGReadError(path, f"refused: the DICOM file holds more than {max_elements} elements")
        fmt = "<" if little else ">"
        group, elem = struct.unpack_from(fmt + "HH", data, pos)
        if in_meta and group != 0x0002:
            in_meta = False
            if syntax in _DEFLATED:
                return
            explicit = syntax != _IMPLICIT_LE
            little = syntax != _EXPLICIT_BE
            fmt = "<" if little else ">"
            group, elem = struct.unpack_from(fmt + "HH", data, pos)
        start = pos
        if group == 0xFFFE:  # item and delimiters: always tag + 4-byte length
            (length,) = struct.unpack_from(fmt + "I", data, pos + 4)
            pos += 8
            is_container = True
        elif explicit:
            vr = data[pos + 4 : pos + 6]
            if not (vr.isalpha() and vr.isupper()):
                return  # not explicit VR after all (or corrupt): pydicom decides
            if vr in _LONG_VRS:
                if pos + 12 > size:
                    raise ECGReadError(path, f"refused: DICOM element ({group:04X},{elem:04X}) is cut off at the end of the file")
                (length,) = struct.unpack_from(fmt + "I", data, pos + 8)
                pos += 12
            else:
                (length,) = struct.unpack_from(fmt + "H", data, pos + 6)
                pos += 8
            is_container = vr == b"SQ" or (vr == b"UN" and length == _UNDEFINED)
            if vr == b"UN" and length == _UNDEFINED:
                return  # implicit VR inside: leave it to pydicom
        else:
            (length,) = struct.unpack_from(fmt + "I", data, pos + 4)
            pos += 8
            is_container = length == _UNDEFINED  # implicit VR: an undefined length is a sequence
        if length == _UNDEFINED:
            continue  # contents follow (items / encapsulated fragments), ended by a delimiter
        if pos + length > size:
            raise ECGReadError(
                path,
                f"refused: DICOM element ({group:04X},{elem:04X}) declares {length} bytes at offset {start}, "
                f"but the file ends {size - pos} bytes later",
            )
        if in_meta and (group, elem) == (0x0002, 0x0010):
            syntax = data[pos : pos + length].rstrip(b"\0 ").decode("ascii", errors="replace")
        if not is_container or (group == 0xFFFE and elem != 0xE000):
            pos += length  # a value (or a delimiter): skip it
        # a sequence or item of defined length: walk into it


# --- sampling rates stated in XML, judged before the waveform is decoded ---------------------------------
_RATE_PATTERNS = {
    "ge_muse_xml": [(re.compile(r"<SampleBase>\s*([^<\s]{1,40})\s*</SampleBase>"), "SampleBase", None)],
    "philips_xml": [
        (re.compile(r"""samplespersecond\s*=\s*["']([^"']{1,40})["']"""), "samplespersecond", None),
        (re.compile(r"<samplingrate>\s*([^<\s]{1,40})\s*</samplingrate>"), "samplingrate", None),
    ],
    "hl7_aecg": [
        (re.compile(r"""<increment\s+value\s*=\s*["']([^"']{1,40})["']\s+unit\s*=\s*["'](s|ms)["']"""), "increment", "period"),
    ],
}


def _xml_text(data: bytes) -> str:
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        return data.decode("utf-16", errors="replace")
    if data[1:2] == b"\x00" and data[:1] == b"<":
        return data.decode("utf-16-le", errors="replace")
    if data[:1] == b"\x00" and data[1:2] == b"<":
        return data.decode("utf-16-be", errors="replace")
    return data.decode("latin-1")


def check_declared_rates(path, fmt: str, data: bytes) -> None:
    """Refuse an XML ECG whose stated sampling rate is implausible (0 Hz, 10 MHz), before its waveform is
    decoded (a Philips file at a stated 10 MHz would otherwise ask for 110 million samples per lead).

    HL7 aECG states the sampling period (``<increment value="0.002" unit="s"/>``), the others the rate.
    """
    from elvmass.io._assemble import check_sampling_rate

    patterns = _RATE_PATTERNS.get(fmt)
    if not patterns:
        return
    text = _xml_text(data)
    for pattern, field, kind in patterns:
        for match in pattern.finditer(text):
            value = match.group(1)
            if kind == "period":
                try:
                    period_s = float(value) * (1e-3 if match.group(2) == "ms" else 1.0)
                except ValueError:
                    raise ECGReadError(path, f"sampling period {value!r} ({field}) is not a number") from None
                if period_s <= 0 or period_s != period_s:
                    raise ECGReadError(path, f"implausible sampling period {value!r} {match.group(2)} ({field}): not positive")
                fs = 1.0 / period_s
                try:
                    check_sampling_rate(path, fs)
                except ECGReadError:
                    raise ECGReadError(
                        path, f"implausible sampling rate {fs:g} Hz (from the {field} {value} {match.group(2)}; expected 50-20000 Hz)"
                    ) from None
            else:
                try:
                    check_sampling_rate(path, value)
                except ECGReadError as exc:
                    raise ECGReadError(path, f"{exc.problem} ({field})") from None
