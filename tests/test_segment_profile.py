"""The ECG profile (elvmass.segment.profile): its documentation matches the code, and its global values
on a genuine GE MUSE export agree with the device's own measurements."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from elvmass import read_ecg
from elvmass.segment import load_segmenter
from elvmass.segment.profile import LEAD_FEATURES, PROFILE_NAMES, ecg_profile, render_doc
from elvmass.signal import bandpass_filter

DOC = Path(__file__).resolve().parents[1] / "docs" / "ecg_profile.md"


def test_doc_is_generated_from_the_code():
    assert DOC.read_text() == render_doc(), "regenerate: python -m elvmass.segment.profile > docs/ecg_profile.md"
    text = DOC.read_text()
    for name, unit, definition in LEAD_FEATURES:
        assert f"| `{name}` | {unit} | {definition} |" in text
    assert all(n in text for n in PROFILE_NAMES)
    assert len(PROFILE_NAMES) == len(set(PROFILE_NAMES)) >= 300


def circ_diff(a: float, b: float) -> float:
    return abs((a - b + 180.0) % 360.0 - 180.0)


def test_profile_of_muse_export_matches_device(shared_data):
    rec = read_ecg(shared_data / "vendor" / "ge-muse-xml" / "muse_ecg1.xml")
    dev = rec.measurements
    x = bandpass_filter(rec.signal_mv, rec.fs_hz, 0.5, 40.0, None)
    prof = ecg_profile(x, rec.fs_hz, load_segmenter().segment_signal(x, rec.fs_hz))
    assert tuple(prof) == PROFILE_NAMES
    assert abs(prof["global_qrs_ms_median"] - dev.qrs_ms) <= 15
    assert abs(prof["global_pr_ms_median"] - dev.pr_ms) <= 20
    assert abs(prof["global_qt_ms_median"] - dev.qt_ms) <= 30
    assert abs(prof["global_hr_bpm"] - dev.hr_bpm) <= 2
    assert circ_diff(prof["global_qrs_axis_deg"], dev.r_axis_deg) <= 20
    assert circ_diff(prof["global_t_axis_deg"], dev.t_axis_deg) <= 25
    # amplitudes are consistent with the waveform itself: R in V5 is the QRS maximum above the PR level
    assert prof["V5_r_mv_median"] > 0.3 and prof["V5_r_mv_median"] <= float(np.max(x[10])) + 0.2
    assert prof["aVR_qrs_area_mvms_median"] < 0 < prof["II_qrs_area_mvms_median"]  # normal axis: aVR negative
    finite = np.isfinite([prof[n] for n in PROFILE_NAMES])
    assert finite.mean() > 0.9
