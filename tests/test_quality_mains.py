"""Mains interference: said to be what it is, and removable with the configured notch.

A real LUDB record with a 0.1-mV mains line added (LUDB's own files have none) is flagged noisy, and
``mains_interference:50`` says what to fix; with ``notch_hz=50`` the line is filtered out of the signal and,
since then, also left out of the noise check, so the ECG is usable again and delineated as the clean one.
No genuine file here (LUDB, PTB-XL, vendor) is flagged for mains, including PTB-XL's noisy records.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from elvmass import read_ecg
from elvmass.signal import SignalConfig, analyze_ecg


def _with_mains(record, hz: float, mv: float = 0.1):
    t = np.arange(record.signal_mv.shape[1]) / record.fs_hz
    phase = np.random.default_rng(1).uniform(0.0, 2.0 * np.pi, (12, 1))
    return dataclasses.replace(record, signal_mv=(record.signal_mv + mv * np.sin(2 * np.pi * hz * t + phase)).astype(np.float32))


@pytest.mark.parametrize("hz", [50.0, 60.0])
def test_mains_line_flagged_and_removed_by_the_notch(shared_data, hz):
    clean = read_ecg(shared_data / "ludb" / "data" / "39.hea")
    noisy = _with_mains(clean, hz)
    a = analyze_ecg(noisy)
    assert "excessive_noise" in a.flags and f"mains_interference:{hz:g}" in a.flags
    assert sum(f.startswith("noisy_lead:") for f in a.flags) == 12
    # with the notch: no noise flag, and the same beat measured as on the clean file
    notched = analyze_ecg(noisy, SignalConfig(notch_hz=hz))
    assert not [f for f in notched.flags if f.startswith(("noisy_lead", "excessive_noise", "mains"))]
    ref = analyze_ecg(clean, SignalConfig(notch_hz=hz))
    for key in ("qrs_ms", "pr_ms", "qt_ms"):
        assert abs(notched.measured[key] - ref.measured[key]) <= 2.0, (key, notched.measured[key], ref.measured[key])
    # without the notch the line wrecks the boundaries: this is why the flag names the fix
    assert abs(a.measured["qrs_ms"] - ref.measured["qrs_ms"]) > 5.0 or abs(a.measured["pr_ms"] - ref.measured["pr_ms"]) > 5.0


def test_no_genuine_file_is_flagged_for_mains(shared_data):
    files = sorted((shared_data / "ptbxl-sample" / "records500").rglob("*_hr.hea"))
    noisy = 0
    for f in files:
        flags = analyze_ecg(read_ecg(f)).flags
        noisy += any(x.startswith("noisy_lead") for x in flags)
        assert not [x for x in flags if x.startswith("mains")], (f.name, flags)
    assert len(files) == 200 and noisy >= 10  # PTB-XL's noisy records (static, burst, electrode noise) are not mains
