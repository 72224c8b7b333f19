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


def _reference_noise_mv(raw, fs_hz):
    """The scipy/NumPy computation ``high_frequency_noise_mv`` replaced (band-pass, |.|, middle value)."""
    from elvmass.signal.quality import _noise_band_sos

    band = np.abs(sps.sosfilt(_noise_band_sos(float(fs_hz)), raw, axis=1)[:, int(0.25 * fs_hz):])
    half = band.shape[1] // 2
    return 1.4826 * np.partition(band, half, axis=1)[:, half]


def _reference_lead_checks(raw, filt, step, spike_mv, rail_mv):
    """The NumPy reductions ``lead_checks`` replaced, on float64 copies."""
    xs = raw.astype(np.float64)[:, ::step]
    spike = np.abs(xs[:, 1:-1] - (xs[:, :-2] + xs[:, 2:]) * 0.5).max(axis=0)
    p2p = filt.max(axis=1).astype(np.float64) - filt.min(axis=1).astype(np.float64)
    r64 = raw.astype(np.float64)
    hi, lo = r64.max(axis=1, keepdims=True), r64.min(axis=1, keepdims=True)
    rail = np.maximum(np.count_nonzero(r64 >= hi - rail_mv, axis=1), np.count_nonzero(r64 <= lo + rail_mv, axis=1))
    return (np.flatnonzero(spike > spike_mv) + 1) * step, p2p, rail


def test_quality_kernels_are_numpy_to_the_bit(records):
    """The compiled quality sums (elvmass.signal.kernels) give NumPy's numbers on every real record, at
    100, 500 and 1000 Hz, in float32 and float64, and on a record with pacing spikes and a clipped lead."""
    from elvmass.signal.kernels import lead_checks
    from elvmass.signal.quality import PACING_SPIKE_MV, high_frequency_noise_mv, noise_band_exists

    paced = records[0].signal_mv.copy()
    paced[:, 400::500] += 1.0  # one-sample spikes in every lead
    paced[2] = np.clip(paced[2], -0.1, 0.1)  # a clipped lead
    signals = [(r.signal_mv, r.fs_hz) for r in records] + [(paced, 500.0)]
    n_spiky = n_clipped = 0
    for raw, fs in signals:
        for x in (raw, raw.astype(np.float64)):
            odd = x[:, :-1]  # an odd and an even number of samples after the start-up
            for y in (x, odd):
                if noise_band_exists(fs):
                    assert np.array_equal(high_frequency_noise_mv(y, fs), _reference_noise_mv(y, fs))
                else:  # 100 Hz: no band above the ECG's to measure
                    assert np.isnan(high_frequency_noise_mv(y, fs)).all()
            filt = bandpass_filter(x, fs)
            step = max(1, int(round(fs / 500.0)))
            got = lead_checks(x, filt, step, PACING_SPIKE_MV, 1e-6)
            ref = _reference_lead_checks(x, filt, step, PACING_SPIKE_MV, 1e-6)
            assert np.array_equal(got[0], ref[0]) and np.array_equal(got[1], ref[1]) and np.array_equal(got[2], ref[2])
            n_spiky += got[0].size >= 5
            n_clipped += int(got[2].max() >= 0.02 * x.shape[1])
    assert n_spiky >= 2 and n_clipped >= 2  # the paced, clipped copy in both dtypes (and any real ones)


def test_unit_gradient_is_numpy_gradient(records):
    from elvmass.signal.peaks import unit_gradient

    for rec in records:
        combined = combine_leads(bandpass_filter(rec.signal_mv, rec.fs_hz))
        for x in (combined, combined[:3], combined[:2]):
            assert np.array_equal(unit_gradient(x), np.gradient(x))


def test_median_1d_is_numpy_median():
    from elvmass.median import median_1d

    rng = np.random.default_rng(5)
    for n in range(1, 70):
        for dtype in (np.float64, np.float32, np.int64):
            x = (rng.normal(size=n) * 100).astype(dtype)
            assert median_1d(x) == float(np.median(x)), (n, dtype)
    assert np.isnan(median_1d(np.array([1.0, np.nan, 3.0])))
