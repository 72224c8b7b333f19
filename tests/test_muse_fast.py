"""The fast GE MUSE reader gives bit-identical records to the general (ecgdatakit) reader, on the genuine
MUSE exports in ../shared/data and on generated ones, and hands every unusual file to the general reader."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from elvmass.errors import ECGReadError

from elvmass.io import read_ecg
from elvmass.io.muse_fast import read_muse_fast
from elvmass.io.vendor import read_vendor_ecg


def _assert_identical(fast, general):
    for f in dataclasses.fields(general):
        a, b = getattr(fast, f.name), getattr(general, f.name)
        if isinstance(b, np.ndarray):
            assert a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes(), f.name
        else:
            assert a == b, f.name


@pytest.fixture(scope="module")
def generated_muse(trained_bundle):
    """Every MUSE file of the synthetic cohort the session's bundle was trained on."""
    files = sorted((trained_bundle.parent / "synth" / "ecgs").glob("*.xml"))
    assert len(files) >= 60
    return files


def test_bit_identical_on_real_muse_exports(shared_data):
    files = sorted((shared_data / "vendor" / "ge-muse-xml").glob("*.xml"))
    assert len(files) == 2
    for f in files:
        fast = read_muse_fast(f)
        assert fast is not None, f"the fast path declined the genuine export {f.name}"
        general = read_vendor_ecg(f, "ge_muse_xml")
        _assert_identical(fast, general)
        # the device's own numbers, as written in the file (QRSDuration, axes)
        assert fast.measurements.qrs_ms == general.measurements.qrs_ms is not None
        _assert_identical(read_ecg(f), general)


def test_bit_identical_on_generated_muse_files(generated_muse):
    for f in generated_muse:
        fast = read_muse_fast(f)
        assert fast is not None, f.name
        _assert_identical(fast, read_vendor_ecg(f, "ge_muse_xml"))


def _variant(src, tmp_path, name, edit):
    text = src.read_bytes()
    out = tmp_path / name
    out.write_bytes(edit(text))
    return out


@pytest.mark.parametrize("name,edit", [
    ("entity.xml", lambda t: t.replace(b'<!DOCTYPE RestingECG SYSTEM "restecg.dtd">',
                                       b'<!DOCTYPE RestingECG [<!ENTITY a "xxxxxxxx">]>', 1)),
    ("entity_no_doctype.xml", lambda t: t.replace(b"<RestingECG>", b'<!ENTITY a "x"><RestingECG>', 1)),
    ("comment.xml", lambda t: t.replace(b"<RestingECG>", b"<RestingECG><!-- note -->", 1)),
    ("crc.xml", lambda t: t.replace(b"<LeadDataCRC32>2559656393<", b"<LeadDataCRC32>1<", 1)),
    ("badb64.xml", lambda t: t.replace(b"<WaveFormData>", b"<WaveFormData>*", 1)),
    ("truncated.xml", lambda t: t[: len(t) // 2]),
    ("nounits.xml", lambda t: t.replace(b"<LeadAmplitudeUnits>MICROVOLTS</LeadAmplitudeUnits>", b"", 1)),
])
def test_unusual_files_go_to_the_general_reader(shared_data, tmp_path, name, edit):
    src = shared_data / "vendor" / "ge-muse-xml" / "muse_ecg1.xml"
    f = _variant(src, tmp_path, name, edit)
    assert f.read_bytes() != src.read_bytes()
    assert read_muse_fast(f) is None
    if b"<!ENTITY" in f.read_bytes():  # refused by the hostile-XML guard before any reader parses it
        with pytest.raises(ECGReadError, match="declares entities"):
            read_ecg(f)
        return
    # read_ecg then gives exactly what the general reader gives: the same record or the same error
    try:
        expected = read_vendor_ecg(f, "ge_muse_xml")
    except Exception as exc:  # noqa: BLE001
        with pytest.raises(type(exc)) as got:
            read_ecg(f)
        assert str(got.value) == str(exc)
    else:
        _assert_identical(read_ecg(f), expected)


def test_entity_declarations_are_refused(shared_data, tmp_path):
    src = shared_data / "vendor" / "ge-muse-xml" / "muse_ecg1.xml"
    f = _variant(src, tmp_path, "bomb.xml", lambda t: t.replace(
        b'<!DOCTYPE RestingECG SYSTEM "restecg.dtd">',
        b'<!DOCTYPE RestingECG [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;">]>', 1).replace(
        b"<PatientID>JAX01234</PatientID>", b"<PatientID>&b;</PatientID>", 1))
    from elvmass.errors import ECGReadError

    assert read_muse_fast(f) is None
    with pytest.raises(ECGReadError):
        read_ecg(f)
