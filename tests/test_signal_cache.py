"""preprocess_cohort: analyses cached by file content and config, read errors kept in place."""

from __future__ import annotations

import shutil

import numpy as np

from elvmass.errors import ECGReadError
from elvmass.signal import SignalConfig, preprocess_cohort
from elvmass.signal.cache import cache_key


def test_cache_roundtrip_and_keys(shared_data, tmp_path):
    muse = shared_data / "vendor/ge-muse-xml/muse_ecg1.xml"
    ptb = shared_data / "ptbxl-sample/records500/00000/00002_hr"
    missing = tmp_path / "nope.xml"
    cache = tmp_path / "cache"
    cfg = SignalConfig()
    first = preprocess_cohort([muse, missing, ptb], cfg, cache)
    assert isinstance(first[1], ECGReadError) and "nope.xml" in str(first[1])
    entries = sorted(cache.rglob("*.npz"))
    assert len(entries) == 2
    mtimes = [p.stat().st_mtime_ns for p in entries]

    second = preprocess_cohort([muse, ptb], cfg, cache)
    assert [p.stat().st_mtime_ns for p in sorted(cache.rglob("*.npz"))] == mtimes  # read back, not rewritten
    for a, b in zip((first[0], first[2]), second):
        assert np.array_equal(a.view, b.view)
        assert np.allclose(a.r_peaks_s, b.r_peaks_s)
        assert a.flags == b.flags and a.to_json_dict()["criteria"] == b.to_json_dict()["criteria"]
        assert a.to_json_dict()["fiducials_ms"] == b.to_json_dict()["fiducials_ms"]
    assert second[0].device["qrs_ms"] == 78.0 and second[0].sex == "M"

    # another config -> another key; same content under another name -> same key
    preprocess_cohort([muse], SignalConfig(view="median_beat"), cache)
    assert len(list(cache.rglob("*.npz"))) == 3
    copy = tmp_path / "renamed.xml"
    shutil.copy(muse, copy)
    assert cache_key(copy, cfg) == cache_key(muse, cfg)
    # a WFDB record's key covers its .dat, whichever way the path is written
    assert cache_key(ptb, cfg) == cache_key(ptb.with_suffix(".hea"), cfg)


def test_changed_file_content_changes_key(shared_data, tmp_path):
    src = shared_data / "vendor/ge-muse-xml/muse_ecg1.xml"
    f = tmp_path / "e.xml"
    shutil.copy(src, f)
    k1 = cache_key(f, SignalConfig())
    f.write_bytes(f.read_bytes().replace(b"<QRSDuration>78", b"<QRSDuration>79"))
    assert cache_key(f, SignalConfig()) != k1
