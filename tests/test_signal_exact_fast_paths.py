"""The fast paths of the signal chain give exactly what the reference implementations give, on real ECGs
(PTB-XL sample, Wagner et al., Sci Data 2020, CC-BY-4.0; genuine vendor exports, see ../shared/data/README.md)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from scipy import signal as sps

from elvmass import read_ecg
from elvmass.io import find_ecg_files
from elvmass.signal import bandpass_filter, combine_leads
from elvmass.signal.beats import NETWORK_MAX_BEATS, median_beats
from elvmass.signal.filters import _band_sos
from elvmass.signal.peaks import neurokit_r_peaks


@pytest.fixture(scope="module")
def records(shared_data):
    paths = find_ecg_files(shared_data / "ptbxl-sample" / "records500")[:40]
    paths += find_ecg_files(shared_data / "ptbxl-sample" / "records100")[:10]
    paths += find_ecg_files(shared_data / "vendor")
    recs = [read_ecg(p) for p in paths]
    assert len(recs) == 57 and {r.fs_hz for r in recs} == {100.0, 500.0, 1000.0}
    return recs


@pytest.mark.parametrize("band", [(0.5, 40.0, None), (0.5, 150.0, 50.0), (0.05, 100.0, 60.0)])
def test_bandpass_is_scipy_sosfiltfilt_to_the_bit(records, band):
    low, high, notch = band
    for rec in records:
        sos = _band_sos(rec.fs_hz, low, high, notch)  # skips a band edge or notch above Nyquist as the filter does
        for x in (rec.signal_mv, rec.signal_mv[1], rec.signal_mv[:5, :300]):  # 12 leads, one lead, odd count
            ref = sps.sosfiltfilt(sos, x.astype(np.float64), axis=-1, padlen=min(int(rec.fs_hz), x.shape[-1] - 1))
            got = bandpass_filter(x, rec.fs_hz, low, high, notch)
            assert got.dtype == np.float32 and got.shape == x.shape
            assert np.array_equal(got, ref.astype(np.float32))


def test_bandpass_with_gaps_matches_reference_median_fill(records):
    x = records[0].signal_mv.copy()
    x[4, 1000:1100] = np.nan
    filled = x.astype(np.float64)
    filled[4, 1000:1100] = np.nanmedian(filled[4])
    ref = sps.sosfiltfilt(_band_sos(500.0, 0.5, 40.0, None), filled, axis=-1, padlen=500)
    assert np.array_equal(bandpass_filter(x, 500.0), ref.astype(np.float32))


def test_vectorised_detector_returns_neurokit2_peaks(records):
    from neurokit2 import ecg_findpeaks

    n_compared = 0
    for rec in records:
        filtered = bandpass_filter(rec.signal_mv, rec.fs_hz)
        for x in (combine_leads(filtered), filtered[1].astype(np.float64), -filtered[6].astype(np.float64)):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                ref = ecg_findpeaks(x, sampling_rate=int(round(rec.fs_hz)), method="neurokit")["ECG_R_Peaks"]
            assert np.array_equal(neurokit_r_peaks(x, rec.fs_hz), np.asarray(ref, dtype=np.int64))
            n_compared += 1
    assert n_compared == 171


def test_median_beats_is_numpy_median():
    rng = np.random.default_rng(3)
    for k in range(1, NETWORK_MAX_BEATS + 6):
        for dtype in (np.float32, np.float64):
            a = rng.standard_normal((k, 12, 40)).astype(dtype)
            a[:, 0, :5] = np.round(a[:, 0, :5], 1)  # ties
            assert np.array_equal(median_beats(a), np.median(a, axis=0)), (k, dtype)
    a = rng.standard_normal((7, 3)).astype(np.float32)
    a[2, 1] = np.nan
    assert np.array_equal(median_beats(a), np.median(a, axis=0), equal_nan=True)
