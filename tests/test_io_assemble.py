"""Lead naming, order, derivation and quality flags, on leads taken from a real PTB-XL record
(00001_hr, Wagner et al. 2020, CC-BY-4.0) and written back as array files in tmp_path."""

from __future__ import annotations

import numpy as np
import pytest

from elvmass import ECGReadError, read_ecg
from elvmass.io._assemble import assemble_record, canonical_lead_name, trim_calibration_pulse
from elvmass.record import LEADS


@pytest.fixture(scope="module")
def real(shared_data):
    return read_ecg(shared_data / "ptbxl-sample" / "records500" / "00000" / "00001_hr")


def _pairs(rec, names=LEADS, label=lambda n: n):
    return [(label(n), rec.lead(n).astype(np.float64)) for n in names]


def test_mdc_and_other_labels_map_to_standard_order(real):
    shuffled = list(reversed(LEADS))
    rec = assemble_record("x", _pairs(real, shuffled, lambda n: f"MDC_ECG_LEAD_{n.upper()}"), [500.0] * 12,
                          source_format="test")
    assert np.array_equal(rec.signal_mv, real.signal_mv)
    assert canonical_lead_name("Lead aVF") == "aVF" and canonical_lead_name("v6") == "V6"
    assert canonical_lead_name("V4R") is None and canonical_lead_name("MDC_ECG_LEAD_V7") is None


def test_eight_stored_leads_give_derived_limb_leads(real):
    rec = assemble_record("x", _pairs(real, ("I", "II", "V1", "V2", "V3", "V4", "V5", "V6")), [500.0] * 8,
                          source_format="test")
    # PTB-XL stores all 12 at 1 uV steps; derived ones match the stored ones to ~2 uV
    for name in ("III", "aVR", "aVL", "aVF"):
        assert np.abs(rec.lead(name) - real.lead(name)).max() <= 2.5e-3
    assert rec.flags == ()


def test_limb_lead_i_derived_from_ii_and_iii(real):
    names = [n for n in LEADS if n not in ("I", "aVR", "aVL", "aVF")]
    rec = assemble_record("x", _pairs(real, names), [500.0] * len(names), source_format="test")
    assert np.abs(rec.lead("I") - real.lead("I")).max() <= 2.5e-3


def test_missing_precordial_lead_is_an_error(real):
    names = [n for n in LEADS if n != "V4"]
    with pytest.raises(ECGReadError, match="missing lead V4") as info:
        assemble_record("some/file.xml", _pairs(real, names), [500.0] * 11, source_format="test")
    assert str(info.value).startswith("some/file.xml: ")
    with pytest.raises(ECGReadError, match="missing lead II"):
        assemble_record("f", _pairs(real, ("I", "V1", "V2", "V3", "V4", "V5", "V6")), [500.0] * 7, source_format="t")


def test_duplicated_lead_is_an_error(real):
    pairs = _pairs(real) + [("V2", real.lead("V3"))]
    with pytest.raises(ECGReadError, match="duplicated lead V2"):
        assemble_record("f", pairs, [500.0] * 13, source_format="test")
    pairs = _pairs(real)[:-1] + [("MDC_ECG_LEAD_V5", real.lead("V6"))]
    with pytest.raises(ECGReadError, match="duplicated lead V5"):
        assemble_record("f", pairs, [500.0] * 12, source_format="test")


def test_extra_leads_are_ignored_with_a_flag(real):
    pairs = _pairs(real) + [("V4R", real.lead("V4")), ("Pacer", real.lead("I"))]
    rec = assemble_record("f", pairs, [500.0] * 14, source_format="test")
    assert "extra_leads_ignored:V4R,Pacer" in rec.flags


def test_nan_and_flat_channels_are_flagged_not_fatal(real):
    sig = real.signal_mv.astype(np.float64).copy()
    sig[LEADS.index("V2"), 100:120] = np.nan
    sig[LEADS.index("V3")] = 0.002
    rec = assemble_record("f", list(zip(LEADS, sig)), [500.0] * 12, source_format="test")
    assert rec.flags == ("nan_samples:V2", "flat_lead:V3")
    assert np.isnan(rec.lead("V2")[100:120]).all()
    assert real.flags == ()


@pytest.mark.parametrize("fs", [0.0, -500.0, 5.0, 1e6, float("nan"), "fast"])
def test_absurd_sampling_rate_is_an_error(real, fs):
    with pytest.raises(ECGReadError, match="sampling rate"):
        assemble_record("f.npy", _pairs(real), [fs] * 12, source_format="test")


def test_unequal_lengths_are_cut_to_the_shortest_with_a_flag(real):
    pairs = _pairs(real)
    pairs[7] = (pairs[7][0], pairs[7][1][:4800])
    rec = assemble_record("f", pairs, [500.0] * 12, source_format="test")
    assert rec.n_samples == 4800
    assert "unequal_lead_lengths:truncated_to_4800" in rec.flags
    assert np.array_equal(rec.lead("I"), real.lead("I")[:4800])


def test_a_lead_at_another_rate_is_resampled_with_a_flag(real):
    pairs = _pairs(real)
    v1_250 = real.resampled(250.0).lead("V1")
    pairs[6] = ("V1", v1_250)
    rates = [500.0] * 12
    rates[6] = 250.0
    rec = assemble_record("f", pairs, rates, source_format="test")
    assert rec.fs_hz == 500.0 and rec.n_samples == 5000
    assert "resampled_leads:V1@500Hz" in rec.flags
    # down and up again keeps the band below 125 Hz: close to the original lead
    err = rec.lead("V1")[200:-200] - real.lead("V1")[200:-200]
    assert np.sqrt(np.mean(err**2)) < 0.02


def test_no_samples_is_an_error(real):
    with pytest.raises(ECGReadError, match="no samples"):
        assemble_record("f", [(n, np.array([])) for n in LEADS], [500.0] * 12, source_format="test")


def test_trailing_calibration_pulse_is_cut_and_real_ecg_is_not(real):
    sig = real.signal_mv.astype(np.float64)
    untouched, cut = trim_calibration_pulse(sig, 500.0)
    assert cut == 0 and untouched.shape == sig.shape
    padded = np.concatenate([sig, np.zeros((12, 150))], axis=1)
    padded[:, 5050:5100] = 1.0
    out, cut = trim_calibration_pulse(padded, 500.0)
    assert cut == 150 and np.array_equal(out, sig)
    zeros_only = np.concatenate([sig, np.zeros((12, 150))], axis=1)
    assert trim_calibration_pulse(zeros_only, 500.0)[1] == 0  # no pulse: nothing is guessed away


def test_the_record_is_the_float32_cast_of_the_stacked_leads_with_and_without_a_pulse(real):
    """Records whose ends show no calibration pulse are cast lead by lead into float32 (no float64 stack):
    the same bits as stacking and casting; one with a pulse still goes through the trimming on float64."""
    rng = np.random.default_rng(3)
    leads = {n: rng.normal(0.0, 0.4, 5000) for n in LEADS}
    rec = assemble_record("x", list(leads.items()), [500.0] * 12, source_format="test")
    assert rec.signal_mv.dtype == np.float32
    assert np.array_equal(rec.signal_mv, np.stack([leads[n] for n in LEADS]).astype(np.float32))
    pulse = {n: np.r_[v, np.zeros(150)] for n, v in leads.items()}
    for v in pulse.values():
        v[5050:5100] = 1.0
    rec = assemble_record("x", list(pulse.items()), [500.0] * 12, source_format="test")
    assert "calibration_pulse_removed:150_samples" in rec.flags
    assert np.array_equal(rec.signal_mv, np.stack([leads[n] for n in LEADS]).astype(np.float32))


def test_percentiles_are_numpy_percentiles_to_the_bit(real):
    from elvmass.io._assemble import _percentiles_1_99

    rng = np.random.default_rng(0)
    arrays = [real.signal_mv, real.signal_mv[:, :999], np.round(rng.standard_normal((5, 101)), 1).astype(np.float32)]
    arrays += [rng.standard_normal((3, n)).astype(np.float32) for n in (1, 2, 3, 7, 100, 5001)]
    for a in arrays:
        lo, hi = _percentiles_1_99(a.copy())
        ref = np.percentile(a, [1, 99], axis=1)
        assert np.array_equal(lo, ref[0]) and np.array_equal(hi, ref[1]), a.shape


def test_implausible_amplitude_flag_and_its_value(real):
    from elvmass.io._assemble import quality_flags

    assert quality_flags(real.signal_mv, 500.0) == []  # a clean ECG proven plausible without percentiles
    big = real.signal_mv * 100.0  # stored in 10 uV instead of mV, say
    typical = float(np.median(np.diff(np.percentile(big, [1, 99], axis=1), axis=0)))
    assert typical > 30.0
    assert quality_flags(big, 500.0) == [f"implausible_amplitude:{typical:.3g}mV"]
    tiny = real.signal_mv / 60.0  # most leads still above the 10 uV flat-line limit
    live = np.ptp(tiny, axis=1) >= 0.01
    typical = float(np.median(np.diff(np.percentile(tiny[live], [1, 99], axis=1), axis=0)))
    assert 6 <= live.sum() < 12 and typical < 0.02
    flags = quality_flags(tiny, 500.0)
    assert flags[-1] == f"implausible_amplitude:{typical:.3g}mV"
    assert flags[:-1] == [f"flat_lead:{LEADS[i]}" for i in np.flatnonzero(~live)]
    # the cheap certificate does not hide a record whose leads are mostly a flat line with rare spikes
    spiky = np.zeros_like(real.signal_mv)
    spiky[:, ::200] = 1.0  # 0.5 % of samples: the 1-99 % range is 0 although the peak-to-peak is 1 mV
    assert quality_flags(spiky, 500.0) == ["implausible_amplitude:0mV"]
