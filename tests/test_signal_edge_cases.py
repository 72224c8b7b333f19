"""Edge cases a user's archive will contain: the signal stage must answer with flags, never a traceback
(a single bad file must not abort a study of a thousand), and never spray numpy warnings on the console."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest

from elvmass.record import ECGRecord
from elvmass.signal import SignalConfig, analyze_ecg, preprocess_cohort


@pytest.fixture(scope="module")
def muse(shared_data):
    from elvmass import read_ecg

    return read_ecg(shared_data / "vendor" / "ge-muse-xml" / "muse_ecg2.xml")  # sinus rhythm, 60 bpm, 500 Hz


@pytest.mark.parametrize("n_samples", [0, 1, 5, 7])
def test_a_record_too_short_to_filter_is_flagged_not_raised(muse, n_samples):
    rec = muse.replace(signal_mv=muse.signal_mv[:, :n_samples])
    a = analyze_ecg(rec, SignalConfig())
    assert "no_beat" in a.flags and "too_few_beats" in a.flags
    assert not a.usable
    assert a.view.shape == (12, SignalConfig().view_length) and np.isnan(a.view).all()
    assert math.isnan(a.measured["hr_bpm"]) and math.isnan(a.measured["qrs_ms"])


def test_a_short_wfdb_file_does_not_abort_preprocessing(tmp_path, muse):
    """A 5-sample WFDB record among good files: it comes back as a flagged analysis (the study drops it
    as 'no usable beat'); before, ValueError('signal too short to filter') escaped and ended the study."""
    import wfdb

    from elvmass.record import LEADS

    sig = np.tile(np.linspace(0.0, 1.0, 5)[:, None], (1, 12))
    wfdb.wrsamp("tiny", fs=500, units=["mV"] * 12, sig_name=list(LEADS), p_signal=sig, fmt=["16"] * 12,
                write_dir=str(tmp_path))
    good = muse.source_path
    res = preprocess_cohort([tmp_path / "tiny.hea", good], SignalConfig(), tmp_path / "cache")
    assert [type(r).__name__ for r in res] == ["ECGAnalysis", "ECGAnalysis"]
    assert "no_beat" in res[0].flags and np.isnan(res[0].view).all()
    assert res[1].usable and np.isfinite(res[1].view).all()


def test_whole_lead_of_nan_is_flagged_without_numpy_warnings(muse):
    x = muse.signal_mv.copy()
    x[3] = np.nan  # aVR missing entirely
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # "All-NaN slice encountered" used to leak to the console
        a = analyze_ecg(muse.replace(signal_mv=x), SignalConfig())
        b = analyze_ecg(muse.replace(signal_mv=np.full_like(x, np.nan)), SignalConfig())
    assert "flat_lead:aVR" in a.flags and np.isfinite(a.view).all()
    assert a.measured["hr_bpm"] == pytest.approx(60.0, abs=0.5)
    assert "no_beat" in b.flags and np.isnan(b.view).all()


def test_all_zero_lead_and_all_zero_record(muse):
    x = muse.signal_mv.copy()
    x[7] = 0.0
    a = analyze_ecg(muse.replace(signal_mv=x), SignalConfig())
    assert a.flags == ("flat_lead:V2",)
    z = analyze_ecg(muse.replace(signal_mv=np.zeros_like(x)), SignalConfig())
    assert {"no_beat", "too_few_beats", "flat_lead:I", "flat_lead:V6"} <= set(z.flags)


@pytest.mark.parametrize("labelled_fs, hr_bpm", [(250.0, 30.0), (1500.0, 179.6)])
def test_slow_and_fast_heart_rates(muse, labelled_fs, hr_bpm):
    """The real 60 bpm record played at half or three times its speed (then back at 500 Hz): 30 and 180 bpm."""
    rec = muse.replace(fs_hz=labelled_fs).resampled(500.0)
    a = analyze_ecg(rec, SignalConfig())
    assert a.measured["hr_bpm"] == pytest.approx(hr_bpm, abs=0.5)
    assert np.isfinite(a.view).all() and "no_beat" not in a.flags


def test_inverted_leads_keep_the_beats_and_flip_the_axis(muse):
    a, b = analyze_ecg(muse), analyze_ecg(muse.replace(signal_mv=-muse.signal_mv))
    assert np.allclose(a.r_peaks_s, b.r_peaks_s)
    assert b.view == pytest.approx(-a.view, abs=1e-5)
    flipped = (a.measured["r_axis_deg"] + 180.0 + 180.0) % 360.0 - 180.0
    assert b.measured["r_axis_deg"] == pytest.approx(flipped, abs=1.0)


def test_other_sampling_rates_give_the_same_view(muse):
    """The model's view is at ``out_fs_hz`` whatever the file's rate (the DICOM in shared/data is 1000 Hz)."""
    cfg = SignalConfig()
    ref = analyze_ecg(muse, cfg)
    for fs in (250.0, 1000.0):
        a = analyze_ecg(muse.resampled(fs), cfg)
        assert a.view.shape == ref.view.shape
        assert a.measured["hr_bpm"] == pytest.approx(60.0, abs=0.2)
        corr = np.corrcoef(a.view.ravel(), ref.view.ravel())[0, 1]
        assert corr > 0.99, (fs, corr)


def test_direct_record_with_nan_samples(muse):
    x = muse.signal_mv.copy()
    x[:, ::997] = np.nan
    a = analyze_ecg(ECGRecord(x, 500.0), SignalConfig())
    assert np.isfinite(a.view).all() and a.usable
