"""The delineation does not depend on the record's sampling rate: ``analyze_ecg`` delineates and measures at
``DELINEATION_FS_HZ`` (500 Hz) whatever the rate, while the quality checks and the model's view stay at the
record's own rate. Checked on the same real ECGs at two rates: PTB-XL's 100-Hz and 500-Hz files of one
record, and LUDB records resampled, against the cardiologists' annotations (benchmarks/bench_rate.py has
the whole table)."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest

from elvmass import read_ecg
from elvmass.segment import analyze_ecg_hybrid
from elvmass.signal import SignalConfig, analyze_ecg
from elvmass.signal.analysis import DELINEATION_FS_HZ
from test_delineation import CSE_MS, _reference


def _errors_ms(a, base) -> dict[str, float]:
    """Chosen-beat boundary minus the cardiologists' (ms), for an analysis of a LUDB record at any rate."""
    r_s = a.beat_start_s + a.config.beat_before_s
    ref = _reference(base, r_s * 500.0)  # LUDB's annotations are in samples at 500 Hz
    return {k: a.beat_start_s * 1000.0 + a.fiducials_ms[k] - ref[k] * 2.0 for k in CSE_MS}


@pytest.mark.parametrize("record", ["00002", "00006", "00007"])
def test_ptbxl_100_hz_file_measures_as_its_500_hz_twin(shared_data, record):
    # PhysioNet ships every PTB-XL ECG at 100 and 500 Hz. Delineated at the file's own rate, the 100-Hz file
    # read QRS 15-16 ms (and QT ~10 ms) longer than the 500-Hz one of the same ECG; at 500 Hz for both they agree
    root = shared_data / "ptbxl-sample"
    hi = next((root / "records500").rglob(f"{record}_hr.hea"))
    lo = next((root / "records100").rglob(f"{record}_lr.hea"))
    a_hi, a_lo = analyze_ecg(read_ecg(hi)), analyze_ecg(read_ecg(lo))
    assert a_lo.fs_hz == 100.0 and a_hi.fs_hz == 500.0
    for key, tol in (("qrs_ms", 4.0), ("qt_ms", 6.0), ("r_axis_deg", 3.0)):
        assert abs(a_lo.measured[key] - a_hi.measured[key]) <= tol, (record, key, a_lo.measured[key], a_hi.measured[key])
    # the quality checks still judge the file at its own rate: at 100 Hz no pacing or noise band to check
    assert {"pacing_not_checked", "noise_not_checked"} <= set(a_lo.flags)
    assert not {"pacing_not_checked", "noise_not_checked"} & set(a_hi.flags)


@pytest.mark.parametrize("record", [1, 63, 87])
def test_ludb_boundaries_at_other_rates_as_at_500_hz(shared_data, record):
    # LUDB 1, 63, 87 (tuning part, sinus) resampled: delineated at the file's own rate, a boundary moved by
    # 6.6-10 ms at 100 Hz and up to 4 ms at 250 Hz from where it is on the 500-Hz original; now by at most 2 ms
    # (one 500-Hz sample) from 250 Hz up and 4 ms (0.4 of a sample) at 100 Hz, and QRS onset stays within
    # the CSE tolerance of the cardiologists' from 250 Hz up
    base = shared_data / "ludb" / "data" / str(record)
    rec = read_ecg(base.with_suffix(".hea"))
    e500 = _errors_ms(analyze_ecg(rec), base)
    assert abs(e500["qrs_on"]) <= CSE_MS["qrs_on"]
    for fs in (100.0, 250.0, 360.0, 1000.0):
        e = _errors_ms(analyze_ecg(rec.resampled(fs)), base)
        assert fs < 250.0 or abs(e["qrs_on"]) <= CSE_MS["qrs_on"], (record, fs, round(e["qrs_on"], 1))
        for k in CSE_MS:
            assert abs(e[k] - e500[k]) <= (4.0 if fs < 250.0 else 2.0) + 1e-9, (record, fs, k, round(e[k], 1), round(e500[k], 1))


def test_offsets_gaps_and_edges_at_another_rate(shared_data):
    rec = read_ecg(shared_data / "ludb" / "data" / "3.hea")
    at_1000 = rec.resampled(1000.0)
    # a lead's DC offset does not move anything (the resampler pads with zeros: the offset is taken off first)
    a, shifted = analyze_ecg(at_1000), analyze_ecg(at_1000.replace(signal_mv=at_1000.signal_mv + 1.0))
    assert shifted.measured == pytest.approx(a.measured, abs=1e-6)
    assert shifted.fiducials_ms == pytest.approx(a.fiducials_ms, abs=1e-6)
    # a lead with no finite sample: flagged flat, the other leads measured, no warning escapes
    x = rec.resampled(250.0)
    sig = x.signal_mv.copy()
    sig[3] = np.nan
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        gap = analyze_ecg(x.replace(signal_mv=sig))
    assert "flat_lead:aVR" in gap.flags and 80.0 <= gap.measured["qrs_ms"] <= 125.0
    # a crop whose only beat fits at 100 Hz still fits at 500 Hz, in median and single-beat mode (this used
    # to raise NoBeatError, or return an empty beat)
    x = rec.resampled(100.0)
    crop = x.replace(signal_mv=np.ascontiguousarray(x.signal_mv[:, 5:135]))
    for cfg in (SignalConfig(), SignalConfig(fiducials_from="single_beat")):
        a = analyze_ecg(crop, cfg)
        assert "no_beat" not in a.flags and a.beat_mv.shape == (12, 450) and math.isfinite(a.measured["qrs_ms"])


def test_analysis_of_a_250_hz_record_keeps_its_rate_where_it_should(shared_data):
    rec = read_ecg(shared_data / "ludb" / "data" / "40.hea").resampled(250.0)
    cfg = SignalConfig()
    a = analyze_ecg(rec, cfg)
    assert a.fs_hz == 250.0 and a.beat_fs_hz == DELINEATION_FS_HZ == 500.0
    assert a.beat_mv.shape == (12, round((cfg.beat_before_s + cfg.beat_after_s) * DELINEATION_FS_HZ))
    assert a.view.shape == (12, cfg.view_length)
    # the beat window starts on a sample of the record (as the view does), and the fiducials are in ms from it
    assert a.beat_start_s * 250.0 == pytest.approx(round(a.beat_start_s * 250.0), abs=1e-6)
    assert a.beat_start_s * 1000.0 + a.fiducials_ms["qrs_on"] == pytest.approx(
        analyze_ecg(read_ecg(shared_data / "ludb" / "data" / "40.hea")).beat_start_s * 1000.0
        + analyze_ecg(read_ecg(shared_data / "ludb" / "data" / "40.hea")).fiducials_ms["qrs_on"], abs=2.0)
    assert "pacing_not_checked" in a.flags


def test_hybrid_with_another_band_at_250_hz(shared_data):
    # the hybrid re-filters the record for its network when the pipeline's band is not 0.5-40 Hz: at a rate
    # other than the delineation's, it must do so at the delineation's rate (the samples it is handed)
    base = shared_data / "ludb" / "data" / "66"
    rec = read_ecg(base.with_suffix(".hea"))
    cfg = SignalConfig(low_hz=0.67, high_hz=30.0)
    p500 = analyze_ecg_hybrid(rec, cfg).fiducials_ms["p_on"]
    p250 = analyze_ecg_hybrid(rec.resampled(250.0), cfg).fiducials_ms["p_on"]
    assert math.isfinite(p500) and abs(p250 - p500) <= 4.0, (p500, p250)
