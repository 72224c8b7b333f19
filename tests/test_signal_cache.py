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


def test_worker_processes_give_the_serial_results(shared_data, tmp_path):
    """The process pool (issue 18) is parallelism only: 2 workers and 1 give the same analyses, in
    input order, with an unreadable file kept in its place; the serial cache serves the pool's entries."""
    recs = shared_data / "ptbxl-sample/records500/00000"
    paths = [recs / f"{i:05d}_hr" for i in range(1, 10)]
    paths.insert(4, tmp_path / "missing.xml")
    seen = []
    pooled = preprocess_cohort(paths, SignalConfig(), tmp_path / "pool", workers=2, progress=lambda i, n: seen.append((i, n)))
    serial = preprocess_cohort(paths, SignalConfig(), tmp_path / "serial", workers=1)
    assert seen[-1] == (10, 10) and [i for i, _ in seen] == list(range(1, 11))
    assert isinstance(pooled[4], ECGReadError) and "missing.xml" in str(pooled[4])
    for a, b, p in zip(pooled, serial, paths):
        if isinstance(b, ECGReadError):
            assert str(a) == str(b)
            continue
        assert a.source_path == str(p)
        assert np.array_equal(a.view, b.view) and np.array_equal(a.r_peaks_s, b.r_peaks_s)
        assert a.to_json_dict() == b.to_json_dict()
    assert len(list((tmp_path / "pool").rglob("*.npz"))) == 9
    again = preprocess_cohort(paths, SignalConfig(), tmp_path / "pool", workers=1)
    assert all(np.array_equal(a.view, b.view) for a, b in zip(again, serial) if not isinstance(b, ECGReadError))
